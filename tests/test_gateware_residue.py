"""Residue-grouped lanes (PSD layers at their sparse speed): planning, packing, and the engine in amaranth.sim.

A lane group of a residue-grouped layer holds output channels `r + (k0 + m) * P`, so every lane
shares the pattern of input channel `c` and the group steps that pattern's own taps. Checked:
the generator picks it only when the schedule model predicts fewer cycles, every output channel
lands in exactly one lane of one group, and whole layers (odd channel counts, partial groups,
stalls) are bit-exact against hwgen.reference with DRAM bytes equal to the schedule model's and
cycles within 3%.
"""

from __future__ import annotations

import dataclasses

import pytest
from hwgen.layercases import conv_graph, pattern_library_graph
from test_gateware_engine import run_case

from hwgen import engine
from hwgen.engine import descriptor, plan as planning, schedule


def plan_of(graph, m_lanes, dense_only=False):
    return engine.plan_node(graph, graph.node("conv"), dense_only=dense_only, m_lanes=m_lanes)


@pytest.mark.parametrize("scheme, cout, m_lanes, residue", [
    ("PSD1_P16", 32, 2, True),
    ("PSD4_P8", 19, 2, True),
    ("PSD4_P8", 8, 8, False),  # one channel per class: strided groups would be mostly idle lanes
    ("PS4_P4", 16, 4, False),  # every kernel has the same taps: contiguous groups are as fast
])
def test_grouping_is_chosen_by_predicted_pass_cycles(scheme, cout, m_lanes, residue):
    plan = plan_of(conv_graph(1, cin=12, cout=cout, h=3, w=3, scheme=scheme), m_lanes)
    assert plan.residue_groups == residue
    if residue:
        contiguous = plan_of(conv_graph(1, cin=12, cout=cout, h=3, w=3, scheme=scheme), m_lanes, dense_only=True)
        assert engine.pass_cycles(plan, m_lanes) < engine.pass_cycles(contiguous, m_lanes)
        assert not plan.dense and plan.taps == 9 and plan.structure == "periodic"


def test_residue_groups_cover_each_channel_once_within_one_class():
    plan = plan_of(conv_graph(2, cin=10, cout=19, h=3, w=3, scheme="PSD4_P8"), 2)
    groups = engine.group_channels(plan, 2)
    assert sorted(mo for g in groups for mo in g) == list(range(19))
    assert all(len({mo % plan.period for mo in g}) == 1 and 1 <= len(g) <= 2 for g in groups)
    # 19 = 2*8 + 3: classes 0-2 hold 3 channels (two groups, one short), classes 3-7 hold 2
    assert [len(g) for g in groups] == [2, 1] * 3 + [2] * 5
    params = engine.fit_params([plan], m_lanes=2, x_lanes=2, bus_bits=32)
    raw = engine.pack_descriptor(plan, params, in_addr=0, out_addr=0, weight_addr=0, table_addr=0, table_base=0)
    d = descriptor.unpack(raw)
    assert (d["residue_groups"], d["class_channels"], d["class_extra"], d["m_groups"]) == (1, 2, 3, 11)
    # every group's weights hold exactly its pattern's taps per channel (padded to the largest group)
    assert len(engine.pack_weights(plan, params)) == 11 * engine.weight_group_beats(plan, params) * 4
    assert engine.group_steps(plan, 0) == sum(len(engine.tap_order(plan.masks[c % 8])) for c in range(10))


CASES = {
    # name: (conv_graph kwargs, knobs kwargs)
    "psd1p16": (dict(cin=16, cout=32, h=3, w=3, scheme="PSD1_P16"), dict(m_lanes=2, x_lanes=2)),
    "psd4p8_partial_groups_stride2": (dict(cin=10, cout=19, h=5, w=6, scheme="PSD4_P8", stride=2),
                                      dict(m_lanes=2, x_lanes=2, bus_bits=32)),
    "psd1p4_signed_narrow": (dict(cin=7, cout=12, h=3, w=7, scheme="PSD1_P4", in_signed=True, relu=False,
                                  weight_bits=5, act_bits=6), dict(m_lanes=2, x_lanes=4, bus_bits=64)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_residue_grouped_layer_is_bit_exact_under_stalls(name):
    kwargs, knobs = CASES[name]
    plan, _, _ = run_case(conv_graph(seed=len(name), **kwargs), seed=3, stall=0.3, **knobs)
    assert plan.residue_groups


@pytest.mark.parametrize("name", sorted(CASES))
def test_residue_grouped_traffic_and_cycles_match_schedule(name):
    kwargs, knobs = CASES[name]
    plan, params, traffic = run_case(conv_graph(seed=len(name) + 1, **kwargs), seed=4, stall=0.0, **knobs)
    model = schedule.layer_schedule(plan, params)
    assert traffic.read_bytes == model.read_bytes and traffic.write_bytes == model.write_bytes
    assert abs(traffic.cycles - model.cycles) <= 0.03 * traffic.cycles, (traffic.cycles, model.cycles)


@pytest.mark.parametrize("make, structure, fmt", [
    (lambda: conv_graph(8, cin=16, cout=64, h=4, w=4, scheme="PSD1_P16"), "periodic", "periodic"),
    (lambda: pattern_library_graph(9, cin=8, cout=8, h=4, w=4), "library", "pattern"),
])
def test_engine_analysis_reports_the_layers_own_structure_and_schedule(make, structure, fmt):
    from hwgen.analysis import analyze
    from hwgen.engine import plan_graph

    graph = make()
    a = analyze(graph, arch="engine")
    (r,) = a.layers
    (plan,) = plan_graph(graph, m_lanes=a.arch.engine.m_lanes)
    assert plan.structure == structure and r.format == fmt
    params = engine.fit_params([plan], m_lanes=a.arch.engine.m_lanes, x_lanes=a.arch.engine.x_lanes,
                               bus_bits=a.arch.engine.bus_bits)
    sched = schedule.layer_schedule(plan, params)
    assert r.cycles == sched.cycles and r.dram_bytes["weights"] == sched.bytes["weights"]


def test_residue_engines_get_a_window_fifo_deep_enough_for_one_step_channels():
    # a PSD1_P16 class walks one dense channel (9 steps, 3 rows) then 15 one-step, one-row channels:
    # with 2 windows in the FIFO the fetch falls behind after each dense channel, with 4 it does not
    steps = [9 if c % 16 == 0 else 1 for c in range(64)]
    rows = [3 if c % 16 == 0 else 1 for c in range(64)]
    assert planning._fetch_bound_pass(steps, rows, 2) == sum(steps) + 4 * 2
    assert planning._fetch_bound_pass(steps, rows, 4) == sum(steps)
    residue = plan_of(conv_graph(1, cin=16, cout=32, h=3, w=3, scheme="PSD1_P16"), 2)
    contiguous = plan_of(conv_graph(1, cin=16, cout=16, h=3, w=3, scheme="PS4_P4"), 2)
    depths = [engine.fit_params(plans, m_lanes=2, x_lanes=2).window_depth
              for plans in ([residue], [contiguous], [residue, contiguous])]
    assert depths == [4, 2, 4]
    assert engine.fit_params([residue], m_lanes=2, x_lanes=2, pipeline=0).window_depth == 0


def test_deep_window_fifo_alone_is_bit_exact_under_stalls():
    # pipeline 1: the `window` cut is the only one, so the 4-window FIFO meets the issue directly
    kwargs, knobs = CASES["psd1p16"]
    plan, params, _ = run_case(conv_graph(seed=7, **kwargs), seed=6, stall=0.3, pipeline=1, **knobs)
    assert plan.residue_groups and params.window_depth == 4 and params.mac_cuts == ("window",)


def test_window_fifo_depth_is_what_the_rtl_runs():
    # the schedule at the engine's depth, not at 2, predicts the RTL: the two differ by 6 % here
    kwargs, knobs = CASES["psd1p16"]
    plan, params, traffic = run_case(conv_graph(seed=9, **kwargs), seed=5, stall=0.0, **knobs)
    shallow = schedule.layer_schedule(plan, dataclasses.replace(params, residue_groups=False)).cycles
    deep = schedule.layer_schedule(plan, params).cycles
    assert params.window_depth == 4 and shallow - deep > 0.05 * deep
    assert abs(traffic.cycles - deep) <= 0.02 * traffic.cycles, (traffic.cycles, deep, shallow)
