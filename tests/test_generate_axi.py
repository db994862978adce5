"""`hwgen generate --interface axi`: the AXI top's files, register map emitters, lint, refusals.

The register map is defined once (hwgen.engine.registers); registers.json, the C header and the
Python module must all say the same offsets, and the Verilog's ports must be the AXI names.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess

import pytest

from hwgen import checkpoint
from hwgen.cli import main
from hwgen.engine import registers as regs
from hwgen.generate import AXI_FILES, FILES, generate

from test_generate import DIGITS, lint


@pytest.fixture(scope="module")
def axi_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits-axi")
    return out, generate(checkpoint.load(DIGITS), out, interface="axi", axi_id_bits=3)


def test_files_manifest_and_ports(axi_out):
    out, manifest = axi_out
    for name in list(FILES.values()) + list(AXI_FILES.values()):
        assert (out / name).exists(), name
    iface = manifest["interface"]
    assert iface["kind"] == "axi" and iface["id_bits"] == 3
    ports = manifest["ports"]
    assert ports["m_axi_wdata"] == 64 and ports["m_axi_wstrb"] == 8 and ports["m_axi_arid"] == 3
    assert ports["s_axil_awaddr"] == regs.ADDR_BITS and ports["irq"] == 1
    top = (out / FILES["top"]).read_text()
    for name in ports:
        assert f" {name};" in top or f"] {name};" in top, name


def test_register_map_emitters_agree(axi_out):
    out, manifest = axi_out
    j = json.loads((out / AXI_FILES["registers"]).read_text())
    assert {r["name"]: r["offset"] for r in j["registers"]} == {r.name: r.offset for r in regs.REGISTERS}
    assert j["build_id"] == manifest["interface"]["build_id"]
    assert j["config"]["M_LANES"] == manifest["params"]["m_lanes"]
    spec = importlib.util.spec_from_file_location("hwgen_regs", out / AXI_FILES["py_regs"])
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert all(getattr(mod, f"REG_{r.name}") == r.offset for r in regs.REGISTERS)
    assert mod.STATUS_DONE == regs.bit("STATUS", "DONE") and mod.BUILD_ID == j["build_id"]
    assert mod.LAYERS["conv2"]["out_addr"] == manifest["layers"][1]["output"]["addr"]
    # the C header compiles and has the same numbers
    header = out / AXI_FILES["c_header"]
    probe = out / "probe.c"
    probe.write_text('#include "hwgen_regs.h"\n#include <stdio.h>\nint main(void){printf("%u %u %u\\n", '
                     "HWGEN_REG_IRQ_STATUS, HWGEN_STATUS_DONE, HWGEN_LAYER_CONV2_OUT_ADDR); return 0;}\n")
    exe = out / "probe"
    subprocess.run(["cc", "-Wall", "-Werror", "-I", str(header.parent), str(probe), "-o", str(exe)], check=True)
    got = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split()
    assert [int(v) for v in got] == [regs.offset("IRQ_STATUS"), regs.bit("STATUS", "DONE"),
                                     manifest["layers"][1]["output"]["addr"]]


def test_axi_verilog_is_lint_clean(axi_out):
    out, _ = axi_out
    proc = lint(out)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_output_is_byte_identical(axi_out, tmp_path):
    out, _ = axi_out
    generate(checkpoint.load(DIGITS), tmp_path, interface="axi", axi_id_bits=3)
    for name in [FILES["top"], FILES["manifest"], FILES["waivers"]] + list(AXI_FILES.values()):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


@pytest.mark.parametrize("args, message", [
    (["--bus-bits", "16"], "--interface axi needs --bus-bits of 32"),
    (["--axi-id-bits", "0"], "--axi-id-bits must be from 1 to 16"),
])
def test_cli_refuses_impossible_axi_parameters(tmp_path, capsys, args, message):
    assert main(["generate", str(DIGITS), "--out", str(tmp_path), "--interface", "axi", *args]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
