"""A W=4 layer with weights packed two per byte in DRAM, generated as Verilog and run in cocotb/Verilator.

The manifest must say the weights travel at 4 bits; the layer must be bit-exact against
hwgen.reference under hostile DRAM timing, and with ideal memory its DRAM bytes must equal the
schedule model's (which counts the packed weights) and its cycles be within 3% of the prediction.
"""

from __future__ import annotations

import json

import pytest
from hwgen.layercases import conv_graph
from sim_helpers import check_single_layer

from hwgen import sim_target

CYCLE_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    graph = conv_graph(33, cin=8, cout=8, h=5, w=6, scheme="PS4_P4", weight_bits=4)
    return sim_target.from_graph(graph, tmp_path_factory.mktemp("packed-engine"), m_lanes=4, x_lanes=2, bus_bits=32)


def test_manifest_says_weights_packed(packed):
    manifest = json.loads((packed.image_path.parent / "manifest.json").read_text())
    assert manifest["params"]["weight_pack"] == 2 and manifest["widths"]["weight_dram_bits"] == 4
    layer = manifest["layers"][0]
    # 8 channels x 4 taps x 4 lanes = 128 weights per group at 4 bits: 64 bytes, 16 beats of 4 bytes
    assert layer["weights"]["bytes"] == 2 * 64 == layer["schedule"]["bytes"]["weights"]


@pytest.mark.parametrize("timing", ["ideal", "hostile"])
def test_packed_layer_is_bit_exact_with_predicted_bytes_and_cycles(packed, tmp_path, cache, timing):
    check_single_layer(packed, tmp_path, cache, timing, 7, CYCLE_TOLERANCE)
