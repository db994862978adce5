"""A folded layer (`plan.can_fold`: spare x lanes on twice the output channels), generated as Verilog and
run in cocotb/Verilator: the manifest says it folds; bit-exact against hwgen.reference under hostile DRAM
timing, and with ideal memory DRAM bytes equal to the schedule model's and cycles within 3% of it.
(ResNet-18 CIFAR's folded layers at 8x8 lanes run in `benchmarks/throughput.py --lanes 8x8`.)
"""

from __future__ import annotations

import json

import pytest
from hwgen.layercases import conv_graph
from sim_helpers import check_single_layer

from hwgen import sim_target

CYCLE_TOLERANCE = 0.03


@pytest.fixture(scope="module")
def folded(tmp_path_factory):
    graph = conv_graph(23, cin=16, cout=24, h=4, w=4, scheme="PS4_P4")
    return sim_target.from_graph(graph, tmp_path_factory.mktemp("fold-engine"), m_lanes=4, x_lanes=8, bus_bits=64)


def test_manifest_says_folded(folded):
    manifest = json.loads((folded.image_path.parent / "manifest.json").read_text())
    assert manifest["layers"][0]["fold"] == 2 and manifest["params"]["fold"] == 2


@pytest.mark.parametrize("timing", ["ideal", "hostile"])
def test_folded_layer_is_bit_exact_with_predicted_bytes_and_cycles(folded, tmp_path, cache, timing):
    check_single_layer(folded, tmp_path, cache, timing, 5, CYCLE_TOLERANCE)
