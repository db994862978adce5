"""A PSD layer with residue-grouped lanes, generated as Verilog and run in cocotb/Verilator.

The generated folder's manifest must say the layer is residue-grouped; the layer must be
bit-exact against hwgen.reference under hostile DRAM timing, and with ideal memory its DRAM bytes
must equal the schedule model's and its cycles be within 3% of the prediction.
"""

from __future__ import annotations

import json

import pytest
from hwgen.layercases import conv_graph
from sim_helpers import check_single_layer

from hwgen import sim_target

CYCLE_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def psd(tmp_path_factory):
    graph = conv_graph(21, cin=16, cout=32, h=4, w=6, scheme="PSD1_P16")
    return sim_target.from_graph(graph, tmp_path_factory.mktemp("psd-engine"), m_lanes=2, x_lanes=2, bus_bits=64)


def test_manifest_says_residue_grouped(psd):
    layer = json.loads((psd.image_path.parent / "manifest.json").read_text())["layers"][0]
    assert (layer["structure"], layer["grouping"], layer["period"], layer["taps"]) == ("periodic", "residue", 16, 9)


@pytest.mark.parametrize("timing", ["ideal", "hostile"])
def test_psd_layer_is_bit_exact_with_predicted_bytes_and_cycles(psd, tmp_path, cache, timing):
    check_single_layer(psd, tmp_path, cache, timing, 5, CYCLE_TOLERANCE)
