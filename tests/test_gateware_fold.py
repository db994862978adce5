"""Folded layers (`plan.can_fold`): the spare x lanes of a narrow output on more output channels.

The compiler's choice (which layers fold, and that engines without one are unchanged), then folded
layers in amaranth.sim against hwgen.reference under random stalls on every stream: 3x3 periodic and
dense, 1x1 and stride 2, short last groups, row bands, packed W4 / A4, prefetch and every pipeline
depth; with DRAM bytes equal to the schedule's and cycles within 3% of it without stalls.
"""

from __future__ import annotations

import dataclasses

import pytest
from hwgen.layercases import conv_graph
from test_gateware_engine import run_case

from hwgen import engine
from hwgen.engine import descriptor, plan as planning, schedule
from hwgen.engine.params import MAX_PIPELINE


def built(graph, **knobs):
    return engine.build(graph, engine.EngineConfig(**knobs))


def test_compiler_folds_only_layers_with_spare_x_lanes():
    """4x4 outputs on 8 x lanes fold (twice the channels per group, the descriptor says so); 8-wide rows do
    not, nor layers the fold cannot share a pattern or kernel ids on; an engine without a folded layer is
    built as before (fold 1: no wider weight word, table or row buffer)."""
    narrow = built(conv_graph(1, cin=8, cout=16, h=4, w=4, scheme="PS4_P4"), m_lanes=4, x_lanes=8)
    (plan,), params = narrow.plans, narrow.params
    assert plan.fold == 2 and params.fold == 2 and params.out_lanes == 8
    assert [len(g) for g in planning.group_channels(plan, 4)] == [8, 8]
    at = narrow.image.layers[0].descriptor
    fields = descriptor.unpack(narrow.image.data[at:at + descriptor.DESCRIPTOR_BYTES])
    assert fields["fold"] == 1 and fields["x_groups"] == 1 and fields["m_groups"] == 2
    wide = built(conv_graph(1, cin=8, cout=16, h=8, w=8, scheme="PS4_P4"), m_lanes=4, x_lanes=8)
    assert wide.plans[0].fold == 1 and wide.params.fold == 1
    for graph, m_lanes in [(conv_graph(2, cin=8, cout=16, h=4, w=4, scheme="PSD1_P16"), 4),  # residue groups
                           (conv_graph(3, cin=8, cout=16, h=4, w=4, scheme="PS3_P3"), 4)]:  # P does not divide lanes
        b = built(graph, m_lanes=m_lanes, x_lanes=8)
        assert not planning.can_fold(b.plans[0], m_lanes, 8) and b.params.fold == 1
    assert not planning.can_fold(plan, 4, 1)


def test_fold_needs_room_and_fewer_cycles():
    """The compiler folds only where the schedule gives fewer cycles: a 1x1 layer of few input channels
    would wait on the drain of twice the channels; a folded group must fit the weight buffer."""
    few = built(conv_graph(4, cin=6, cout=9, h=8, w=8, kernel=1, stride=2), m_lanes=4, x_lanes=8)
    assert few.plans[0].fold == 1
    dense = built(conv_graph(5, cin=8, cout=16, h=4, w=4), m_lanes=4, x_lanes=8)  # one dense group fills the buffer
    assert dense.plans[0].fold == 1
    roomy = built(conv_graph(5, cin=8, cout=16, h=4, w=4), m_lanes=4, x_lanes=8, weight_kib=2)
    assert roomy.plans[0].fold == 2
    unfolded = schedule.layer_schedule(dataclasses.replace(roomy.plans[0], fold=1), roomy.params)
    assert roomy.schedules[0].cycles < unfolded.cycles
    assert roomy.schedules[0].bytes == unfolded.bytes  # the same bytes, in larger lane groups

FOLDED = {
    # name: (conv_graph kwargs, engine knobs); every one leaves half the x lanes idle unfolded, and the compiler
    # folds it: the fold must save cycles (a 16 -> 24 1x1 layer at 8x8 lanes does not: its 16 steps a pass are no
    # more than a folded pass's drain)
    "ps4p4_4wide": (dict(cin=5, cout=16, h=4, w=4, scheme="PS4_P4"), dict(m_lanes=4, x_lanes=8)),
    "ps4p4_stride2": (dict(cin=8, cout=16, h=8, w=8, scheme="PS4_P4", stride=2), dict(m_lanes=4, x_lanes=8)),
    "pointwise_stride2": (dict(cin=24, cout=9, h=8, w=8, kernel=1, stride=2), dict(m_lanes=4, x_lanes=8)),
    "dense_stride2_3wide": (dict(cin=3, cout=6, h=6, w=5, stride=2), dict(m_lanes=2, x_lanes=8, weight_words=64)),
    "ps4p4_w4_a4": (dict(cin=4, cout=8, h=3, w=2, scheme="PS4_P4", weight_bits=4, act_bits=4),
                    dict(m_lanes=4, x_lanes=4, bus_bits=32)),
    # row bands, two folded groups' weights resident
    "dense_row_bands": (dict(cin=4, cout=16, h=9, w=4), dict(m_lanes=4, x_lanes=8, input_words=16, weight_words=80)),
    "ps4p4_8x8_lanes": (dict(cin=32, cout=24, h=4, w=4, scheme="PS4_P4"), dict(m_lanes=8, x_lanes=8, weight_words=96)),
    # prefetched runs of 3 one-pass rows whose 8 channels take the writer longer than a pass (24 cycles against 20):
    # each run's first row waits in the drain until the writer has sent the run before's last (same buffer)
    "ps4p4_writer_bound": (dict(cin=5, cout=32, h=3, w=4, scheme="PS4_P4"), dict(m_lanes=4, x_lanes=8, weight_words=64)),
}


@pytest.mark.parametrize("name", sorted(FOLDED))
def test_folded_layer_matches_reference(name):
    kwargs, knobs = FOLDED[name]
    run_case(conv_graph(seed=len(name), **kwargs), seed=len(name), stall=0.3, folded=True, **knobs)


@pytest.mark.parametrize("name", ["ps4p4_4wide", "pointwise_stride2", "ps4p4_writer_bound"])
def test_folded_traffic_and_cycles_match_schedule(name):
    kwargs, knobs = FOLDED[name]
    plan, params, traffic = run_case(conv_graph(seed=len(name), **kwargs), seed=1, stall=0.0, folded=True, **knobs)
    model = schedule.layer_schedule(plan, params)
    assert traffic.read_bytes == model.read_bytes
    assert traffic.write_bytes == model.write_bytes
    assert abs(traffic.cycles - model.cycles) <= 0.03 * traffic.cycles, (traffic.cycles, model.cycles)


@pytest.mark.parametrize("pipeline", [0, MAX_PIPELINE])
def test_folded_layer_at_pipeline_depths(pipeline):
    kwargs, knobs = FOLDED["ps4p4_4wide"]
    run_case(conv_graph(seed=9, **kwargs), seed=pipeline, stall=0.3, folded=True, pipeline=pipeline, **knobs)


@pytest.mark.parametrize("kwargs", [dict(cin=3, cout=16, h=8, w=8, in_signed=True),  # ResNet-18's stem
                                    dict(cin=5, cout=20, h=8, w=8, scheme="PS4_P4")])
def test_unfolded_layer_in_an_engine_that_folds(kwargs):
    """An engine with a folded layer runs its other layers as before: their groups of `m_lanes`-byte steps may
    end in the middle of its wider weight words (27 beats of the 3-channel stem at 8x8 lanes: one beat per write),
    and their tables fill the low half of the table registers."""
    plan, params, _ = run_case(conv_graph(seed=6, **kwargs), seed=2, stall=0.3, m_lanes=8, x_lanes=8, fold=2)
    assert plan.fold == 1 and params.fold == 2 and params.weight_write_bits < params.weight_word_bytes * 8
