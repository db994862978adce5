"""Row-band tiling in the generated Verilog: a layer on a 1 KiB input buffer (at A = 8 and, packed two
activations per DRAM byte, at A = 4), a 7x7 stride-2 stem on 1 KiB, column tiles (a 3x3 and a 7x7
stride-2 layer whose full-width rows do not fit 1 KiB), and ResNet-18 CIFAR on 16 KiB.

The single layers run in cocotb/Verilator bit-exact against hwgen.reference under hostile DRAM
timing, with DRAM bytes equal to the compiler's prediction for their loop nest (halo rows and
re-read weights included) and, with ideal memory, cycles within 3% of the schedule's. The soak
runs every conv layer of a ResNet-18 for CIFAR on a 16 KiB input buffer the same way.
"""

from __future__ import annotations

import json

import pytest
from hwgen.layercases import conv_graph
from sim_helpers import check_single_layer

from hwgen import engine, sim_target, simulate

CYCLE_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def tiled(tmp_path_factory):
    graph = conv_graph(41, cin=8, cout=12, h=12, w=10, scheme="PS4_P4")
    return sim_target.from_graph(graph, tmp_path_factory.mktemp("tiled-engine"), m_lanes=4, x_lanes=2, bus_bits=32,
                                 glb_kib=1)


def test_manifest_gives_the_bands(tiled):
    layer = json.loads((tiled.image_path.parent / "manifest.json").read_text())["layers"][0]
    # 1 KiB = 64 words of 16 B: 8 rows per channel; the top band needs no row above the tensor, so
    # it takes 7 output rows (input rows 0..7), the second the other 5 (rows 6..11: two halo rows)
    assert (layer["tiling"]["band_rows"], layer["tiling"]["bands"]) == (7, 2)
    assert layer["tiling"]["band_inputs"] == [[0, 8], [6, 12]]
    assert layer["schedule"]["bytes"]["inputs"] == 8 * (8 + 6) * 12


@pytest.mark.parametrize("timing", ["ideal", "hostile"])
def test_tiled_layer_is_bit_exact_with_predicted_bytes_and_cycles(tiled, tmp_path, cache, timing):
    check_single_layer(tiled, tmp_path, cache, timing, 5, CYCLE_TOLERANCE)


@pytest.fixture(scope="module")
def tiled_a4(tmp_path_factory):
    graph = conv_graph(43, cin=8, cout=12, h=12, w=20, scheme="PS4_P4", act_bits=4)
    return sim_target.from_graph(graph, tmp_path_factory.mktemp("tiled-a4-engine"), m_lanes=4, x_lanes=2, bus_bits=32,
                                 glb_kib=1)


def test_manifest_gives_the_packed_activation_layout(tiled_a4):
    manifest = json.loads((tiled_a4.image_path.parent / "manifest.json").read_text())
    assert manifest["dram"]["activation_field_bits"] == 4 and manifest["dram"]["activation_elements_per_byte"] == 2
    layer = manifest["layers"][0]
    # a row of 20 4-bit activations is 10 bytes, padded to 3 beats of 4 bytes (bytes per element: 6 beats)
    assert layer["input"]["row_beats"] == 3 and layer["input"]["bytes"] == 8 * 12 * 3 * 4
    assert layer["tiling"]["bands"] > 1


@pytest.mark.parametrize("timing", ["ideal", "hostile"])
def test_tiled_packed_layer_is_bit_exact_with_predicted_bytes(tiled_a4, tmp_path, cache, timing):
    """A = 4, two activations per DRAM byte, in row bands: read unpacked, written packed."""
    check_single_layer(tiled_a4, tmp_path, cache, timing, 6, CYCLE_TOLERANCE)


@pytest.fixture(scope="module")
def stem(tmp_path_factory):
    """An ImageNet-style stem in miniature: 7x7, stride 2, signed input, three channels."""
    graph = conv_graph(47, cin=3, cout=6, h=20, w=18, kernel=7, stride=2, in_signed=True)
    return sim_target.from_graph(graph, tmp_path_factory.mktemp("stem-engine"), m_lanes=4, x_lanes=2, bus_bits=32,
                                 glb_kib=1)


@pytest.mark.slow  # its own engine build; make test keeps the column-tiled 7x7 stride-2 layer
@pytest.mark.parametrize("timing", ["ideal", "hostile"])
def test_tiled_7x7_stem_is_bit_exact_with_predicted_bytes_and_cycles(stem, tmp_path, cache, timing):
    manifest = json.loads((stem.image_path.parent / "manifest.json").read_text())
    layer = manifest["layers"][0]
    # 1 KiB = 32 rows of 32 B: 10 rows per channel, bands of 2 output rows (7 + 2 input rows)
    assert manifest["params"]["kernel_max"] == 7 and layer["kernel"] == 7 and layer["taps"] == 49
    assert (layer["tiling"]["band_rows"], layer["tiling"]["bands"], layer["tiling"]["chan_rows"]) == (2, 5, 9)
    check_single_layer(stem, tmp_path, cache, timing, 7, CYCLE_TOLERANCE)


@pytest.fixture(scope="module")
def columns(tmp_path_factory):
    """64 columns of 8 channels: one output row of full width needs 24 of the 16 words of 64 B."""
    graph = conv_graph(51, cin=8, cout=6, h=10, w=64, scheme="PS4_P4")
    return sim_target.from_graph(graph, tmp_path_factory.mktemp("column-engine"), m_lanes=4, x_lanes=2, bus_bits=32,
                                 glb_kib=1)


@pytest.mark.parametrize("timing", ["ideal", "hostile"])
def test_column_tiled_layer_is_bit_exact_with_predicted_bytes_and_cycles(columns, tmp_path, cache, timing):
    layer = json.loads((columns.image_path.parent / "manifest.json").read_text())["layers"][0]
    # tiles of 3 output beats (12 columns) read 5 input beats of each row (14 columns with a halo column
    # each side, in whole beats of 4) and keep the 14 columns in 4-beat slots, four rows per word: 8 rows
    # a channel, bands of 7 output rows
    assert (layer["tiling"]["col_beats"], layer["tiling"]["col_tiles"], layer["tiling"]["band_rows"]) == (3, 6, 7)
    assert layer["tiling"]["col_inputs"] == [[0, 4], [2, 7], [5, 10], [8, 13], [11, 16], [14, 16]]
    assert layer["tiling"]["band_inputs"] == [[0, 8], [6, 10]] and layer["tiling"]["rows_per_word"] == 4
    assert layer["schedule"]["bytes"]["inputs"] == 8 * (8 + 4) * (4 + 5 + 5 + 5 + 5 + 2) * 4
    check_single_layer(columns, tmp_path, cache, timing, 8, CYCLE_TOLERANCE)


@pytest.fixture(scope="module")
def column_stem(tmp_path_factory):
    """A 7x7 stride-2 stem at A = 4 on 120 columns: column tiles of one output beat (8 columns, 21 input columns)."""
    graph = conv_graph(51, cin=4, cout=5, h=9, w=120, kernel=7, stride=2, act_bits=4, in_signed=True)
    return sim_target.from_graph(graph, tmp_path_factory.mktemp("column-stem-engine"), m_lanes=4, x_lanes=2,
                                 bus_bits=32, glb_kib=1)


def test_column_tiled_7x7_stride2_packed_is_bit_exact(column_stem, tmp_path, cache):
    layer = json.loads((column_stem.image_path.parent / "manifest.json").read_text())["layers"][0]
    assert (layer["tiling"]["col_beats"], layer["tiling"]["col_tiles"]) == (1, 8)
    check_single_layer(column_stem, tmp_path, cache, "hostile", 9, CYCLE_TOLERANCE)


@pytest.mark.slow
def test_resnet18_cifar_on_16_kib_is_bit_exact(tmp_path, cache):
    from models.synthetic import quantized_zoo

    graph = quantized_zoo("resnet18-cifar", scheme="PS4_P4")
    target = sim_target.from_graph(graph, tmp_path / "gen", glb_kib=16)
    assert any(lay.bytes_predicted["inputs"] > 0 for lay in target.layers)
    inputs, labels = simulate.sample_inputs(graph, 1, 3)
    report = simulate.run_network(target, inputs, labels, seed=3, workdir=tmp_path / "sim", cache_dir=cache,
                                  layers=[n.name for n in engine.engine_layers(graph)])
    assert report.error is None, report.error
    for lay in report.layers:
        assert lay.mismatches == 0 and lay.bytes_match, (lay.name, lay.notes)
    assert report.logits_match
