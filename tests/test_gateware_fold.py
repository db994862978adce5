"""Folded layers (`plan.can_fold`): the spare x lanes of a narrow output on more output channels.

The compiler's choice (which layers fold, and that engines without one are unchanged), then folded
layers in amaranth.sim against hwgen.reference under random stalls on every stream: 3x3 periodic and
dense, 1x1 and stride 2, short last groups, row bands, packed W4 / A4, prefetch and every pipeline
depth; with DRAM bytes equal to the schedule's and cycles within 3% of it without stalls.
"""

from __future__ import annotations

import pytest
from hwgen.layercases import conv_graph
from test_gateware_engine import run_case

from hwgen import engine
from hwgen.engine import schedule
from hwgen.engine.params import MAX_PIPELINE

FOLDED = {
    # name: (conv_graph kwargs, engine knobs); every one leaves half the x lanes idle unfolded
    "ps4p4_4wide": (dict(cin=5, cout=12, h=4, w=4, scheme="PS4_P4"), dict(m_lanes=4, x_lanes=8)),
    "pointwise_stride2": (dict(cin=16, cout=9, h=8, w=8, kernel=1, stride=2), dict(m_lanes=4, x_lanes=8)),
    "dense_stride2_3wide": (dict(cin=3, cout=6, h=6, w=5, stride=2), dict(m_lanes=2, x_lanes=8, weight_words=64)),
    "ps4p4_w4_a4": (dict(cin=4, cout=8, h=3, w=2, scheme="PS4_P4", weight_bits=4, act_bits=4),
                    dict(m_lanes=4, x_lanes=4, bus_bits=32)),
    "dense_row_bands": (dict(cin=4, cout=8, h=9, w=4), dict(m_lanes=4, x_lanes=8, input_words=16, weight_words=64)),
}


@pytest.mark.parametrize("name", sorted(FOLDED))
def test_folded_layer_matches_reference(name):
    kwargs, knobs = FOLDED[name]
    run_case(conv_graph(seed=len(name), **kwargs), seed=len(name), stall=0.3, fold=True, **knobs)


@pytest.mark.parametrize("name", ["ps4p4_4wide", "pointwise_stride2"])
def test_folded_traffic_and_cycles_match_schedule(name):
    kwargs, knobs = FOLDED[name]
    plan, params, traffic = run_case(conv_graph(seed=len(name), **kwargs), seed=1, stall=0.0, fold=True, **knobs)
    model = schedule.layer_schedule(plan, params)
    assert traffic.read_bytes == model.read_bytes
    assert traffic.write_bytes == model.write_bytes
    assert abs(traffic.cycles - model.cycles) <= 0.03 * traffic.cycles, (traffic.cycles, model.cycles)


@pytest.mark.parametrize("pipeline", [0, MAX_PIPELINE])
def test_folded_layer_at_pipeline_depths(pipeline):
    kwargs, knobs = FOLDED["ps4p4_4wide"]
    run_case(conv_graph(seed=9, **kwargs), seed=pipeline, stall=0.3, fold=True, pipeline=pipeline, **knobs)
