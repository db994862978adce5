"""ECP5 DSP cells with their own registers (`hwgen generate --dsp ecp5`, `hwgen.gateware.dsp`): parameters,
the generated folder, refusals, and what Yosys makes of the 4x4 digits engine: its 24 data-path multipliers
are MULT18X18D cells registered on both sides, and the fabric flip-flops fall by exactly the widths of
the cuts the cells' registers replace. (The cells run in Verilator: tests/test_sim_dsp.py.)
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from amaranth.hdl import Fragment, Signal, signed, unsigned
from gateware_helpers import refused

from hwgen import checkpoint, engine, intmath, tools
from hwgen.engine.params import MAX_PIPELINE, EngineParams
from hwgen.errors import HwgenError
from hwgen.gateware import dsp
from hwgen.gateware.requant import PART_BITS, Requant
from hwgen.gateware.synth import NO_REREAD
from hwgen.cli import main
from hwgen.generate import FILES, generate
from hwgen.implement import fpga, implement, targets
from hwgen.layercases import conv_graph
from test_generate import DIGITS, verilator_env


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    """The 4x4 digits engine generated both ways: {dsp: (folder, manifest)}."""
    graph = checkpoint.load(DIGITS)
    out = {}
    for kind in ("fabric", "ecp5"):
        folder = tmp_path_factory.mktemp(f"digits-{kind}")
        out[kind] = folder, generate(graph, folder, dsp=kind)
    return out


def test_multiplier_operands_fit_the_cell():
    mults = [dsp.Multiplier(signed(18), unsigned(18)), dsp.Multiplier(unsigned(17), unsigned(15))]
    assert mults[0].p.shape() == (Signal(signed(18)) * Signal(unsigned(18))).shape()
    assert mults[1].p.shape() == unsigned(32)
    for mult in mults:  # elaborated, as an engine would (an unelaborated component warns)
        Fragment.get(mult, None)
    for a, b in ((signed(19), signed(8)), (unsigned(8), unsigned(19)), (unsigned(0), signed(8))):
        refused(lambda: dsp.Multiplier(a, b), ValueError, "1 to 18 bits")


def test_dsp_option_is_validated():
    with pytest.raises(HwgenError, match="dsp must be one of fabric, ecp5"):
        EngineParams(dsp="xilinx").validate()
    # the cells' registers are the operand and product cuts: every cut must be there
    with pytest.raises(HwgenError, match=f"needs pipeline {MAX_PIPELINE}"):
        EngineParams(dsp="ecp5", pipeline=MAX_PIPELINE - 1).validate()
    EngineParams(dsp="ecp5").validate()
    refused(lambda: Requant(24, ("product", "rounding"), dsp="ecp5"), ValueError, "`inputs` and `product` cuts")
    refused(lambda: Requant(24, (), dsp="asic"), ValueError, "dsp must be one of")


def test_ecp5_folder_holds_the_model_and_lints_clean(digits):
    fabric_dir, fabric = digits["fabric"]
    folder, manifest = digits["ecp5"]
    assert fabric["params"]["dsp"] == "fabric" and "dsp_model" not in fabric["files"]
    assert not (fabric_dir / dsp.MODEL).exists() and dsp.CELL not in (fabric_dir / FILES["engine"]).read_text()
    assert manifest["params"]["dsp"] == "ecp5" and manifest["files"]["dsp_model"] == dsp.MODEL
    assert (folder / dsp.MODEL).is_file()
    core = (folder / FILES["core"]).read_text()
    assert "filesets: [rtl]\n" in core and "filesets: [rtl, sim_models, waivers]" in core
    files = [FILES["sram"], FILES["engine"], FILES["top"], dsp.MODEL, FILES["waivers"]]
    proc = subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "hwgen_top", *files], cwd=folder,
                          capture_output=True, text=True, env=verilator_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_model_refuses_registers_it_does_not_model(tmp_path):
    (tmp_path / dsp.MODEL).write_text((Path(dsp.__file__).parents[1] / "rtl_templates" / dsp.MODEL).read_text())
    (tmp_path / "top.v").write_text('module top(input wire clk, output wire p);\n'
                                    '  MULT18X18D #(.REG_OUTPUT_CLK("CLK1")) m (.CLK0(clk), .P0(p));\nendmodule\n')
    proc = subprocess.run(["verilator", "--lint-only", "-Wno-fatal", "--top-module", "top", "top.v", dsp.MODEL],
                          cwd=tmp_path, capture_output=True, text=True, env=verilator_env())
    assert proc.returncode != 0 and "MULT18X18D_model_supports_only_NONE_or_CLK0_registers" in proc.stderr


def test_ecp5_engine_is_refused_where_there_is_no_ecp5(digits, tmp_path, capsys):
    folder, _ = digits["ecp5"]
    for target in ("asic", "ice40-up5k"):
        with pytest.raises(HwgenError, match="ECP5 DSP cells"):
            implement(folder, target)
    with pytest.raises(HwgenError, match="synthesizes for ECP5 only"):
        generate(checkpoint.load(DIGITS), tmp_path, dsp="ecp5", synth="xilinx")
    # the CLI's one line is the refusal, with no "synthesizing" line before it
    assert main(["generate", str(DIGITS), "--out", str(tmp_path / "cli"), "--dsp", "ecp5", "--synth", "xilinx"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "synthesizes for ECP5 only, not xilinx" in err[0]


def cut_bits(p: EngineParams) -> int:
    """Flip-flops of the cuts the cells' registers replace: the MAC array's operand and product registers
    (a weight per lane, a pixel per tap selection and pixel lane, a product per MAC) and each requantizer's
    accumulator and multiplier registers and partial products."""
    weight, pixel = Signal(signed(p.weight_bits)), Signal(signed(p.act_bits + 1))
    mac = p.weight_bits * p.out_lanes + len(pixel) * p.select_lanes * p.x_lanes + len(weight * pixel) * p.mac_count
    m = Signal(unsigned(intmath.MULT_BITS))
    starts = range(0, p.acc_bits, PART_BITS)
    slices = [Signal(unsigned(min(PART_BITS, p.acc_bits - lo))) for lo in starts]
    slices[-1] = Signal(signed(len(slices[-1])))
    parts = sum(len(piece * m) for piece in slices)
    return mac + p.x_lanes * (p.acc_bits + len(m) + parts)


def yosys_netlist(folder: Path) -> dict:
    """The engine elaborated and flattened, every flip-flop one bit (no optimization beyond dead wires)."""
    script = "; ".join([f"read_verilog -sv {FILES['sram']} {FILES['engine']}", NO_REREAD, "hierarchy -top hwgen_engine",
                        "proc", "flatten", "opt_clean", "simplemap t:$dff", "write_json netlist.json"])
    tools.yosys_run(tools.command("yosys", "the DSP test"), ["-p", script], folder)
    (module,) = json.loads((folder / "netlist.json").read_text())["modules"].values()
    return module["cells"]


def test_yosys_sees_registered_cells_and_fewer_flip_flops(digits):
    cells = {kind: yosys_netlist(folder) for kind, (folder, _) in digits.items()}
    mults = [c for c in cells["ecp5"].values() if c["type"] == dsp.CELL]
    p = engine.build(checkpoint.load(DIGITS)).params
    # 16 MACs and two partial products (17 + 7 bits of a 24-bit accumulator) in each of 4 requantizers
    assert p.acc_bits == 24 and len(mults) == p.mac_count + 2 * p.x_lanes == 24
    for c in mults:
        assert {k: c["parameters"][k] for k in ("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK")} == \
            dict.fromkeys(("REG_INPUTA_CLK", "REG_INPUTB_CLK", "REG_OUTPUT_CLK"), "CLK0")
    assert not any(c["type"] == dsp.CELL for c in cells["fabric"].values())
    flops = {kind: sum(c["type"] == "$_DFF_P_" for c in netlist.values()) for kind, netlist in cells.items()}
    assert flops["fabric"] - flops["ecp5"] == cut_bits(p) == 820


def test_synth_ecp5_keeps_the_engine_around_the_cells(tmp_path):
    """The implement flow's synthesis (synth_ecp5 behind the wrapper) of a small engine with the cells: Yosys
    0.70 re-reads a module that instantiates a parametrized black box at synth_ecp5's last hierarchy check,
    dropping the synthesized netlist, unless the flow clears the mark that asks for it (`NO_REREAD`)."""
    out = tmp_path / "tiny"
    manifest = generate(conv_graph(3, cin=8, cout=8, h=4, w=4, scheme="PS4_P4"), out, m_lanes=1, x_lanes=1,
                        bus_bits=32, dsp="ecp5")
    (tmp_path / "work").mkdir()
    cells, _ = fpga.synthesize(out, tmp_path / "work", manifest, targets.get("ecp5-85k"))
    parts = -(-manifest["params"]["acc_bits"] // PART_BITS)
    assert cells[dsp.CELL] >= 1 + parts and cells["TRELLIS_FF"] > 0
    netlist = json.loads((tmp_path / "work" / "netlist.json").read_text())
    registered = [c for m in netlist["modules"].values() for c in m["cells"].values()
                  if c["type"] == dsp.CELL and c["parameters"].get("REG_OUTPUT_CLK") == "CLK0"]
    assert len(registered) == 1 + parts  # the MAC and the requantizer's partial products
