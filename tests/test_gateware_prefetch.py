"""Double-buffered weights: a lane group's run reads the next group's table and weights.

Checked: the compiler double-buffers a streamed layer only when two lane groups' weights fit the
weight buffer (and falls back to single-buffered loads otherwise, with the schedule predicting
either case); DRAM bytes do not change; whole layers stay bit-exact when the prefetch outlasts
the run (reads slow), when the run outlasts it (writes slow) and under stalls everywhere, at the
shallowest and the deepest pipeline; without stalls the cycles are within 1% of the schedule's.
Resident lane groups prefetch too: a set's first tile reads each next group's weights into its slot
behind the runs, and every tile each next group's table.
"""

from __future__ import annotations

import dataclasses

import pytest
from hwgen.layercases import conv_graph, pattern_library_graph
from test_gateware_engine import column_tiled_case, run_case

from hwgen import engine
from hwgen.engine import schedule, tiling
from hwgen.engine.memory_map import table_group_beats, weight_group_beats
from hwgen.engine.params import MAX_PIPELINE


def compiled(graph, m_lanes=4, **fit):
    plan = engine.plan_node(graph, graph.node("conv"), m_lanes=m_lanes)
    return plan, engine.fit_params([plan], m_lanes=m_lanes, **fit)


def test_prefetch_only_where_two_groups_fit():
    # PS4_P4 steps 4 taps, the default weight buffer holds one group of 9: room for two groups
    plan, params = compiled(conv_graph(1, cin=16, cout=12, h=4, w=4, scheme="PS4_P4"))
    assert tiling.layer_tiling(plan, params).prefetch
    # a dense layer as wide as the engine fills the default buffer with one group: single-buffered
    plan, params = compiled(conv_graph(1, cin=16, cout=12, h=4, w=4))
    assert 2 * tiling.group_buffer_words(plan, params) > params.weight_mem_depth
    assert not tiling.layer_tiling(plan, params).prefetch
    # ... until the buffer holds two
    bigger = dataclasses.replace(params, weight_words=2 * tiling.group_buffer_words(plan, params))
    assert tiling.layer_tiling(plan, bigger).prefetch
    # one lane group: nothing to prefetch; kernel ids: their buffer holds one group's
    plan, params = compiled(conv_graph(1, cin=16, cout=4, h=4, w=4, scheme="PS4_P4"))
    assert not tiling.layer_tiling(plan, params).prefetch
    plan, params = compiled(pattern_library_graph(1, cin=8, cout=8, h=4, w=4))
    assert plan.ids is not None and not tiling.layer_tiling(plan, params).prefetch


@pytest.mark.parametrize("folded", [False, True])
def test_schedule_predicts_both_cases_with_the_same_bytes(folded):
    graph = conv_graph(2, cin=32, cout=32 if folded else 16, h=4, w=4, scheme="PS4_P4")
    plan, params = compiled(graph, x_lanes=8 if folded else 4)
    if folded:  # 4x4 outputs on 8 x lanes: groups of 8 channels, two of them in the weight buffer
        (plan,) = engine.fold_plans([plan], dataclasses.replace(params, weight_words=256))
        params = dataclasses.replace(engine.fit_params([plan], m_lanes=4, x_lanes=8), weight_words=256)
        assert plan.fold == 2
    double = schedule.layer_schedule(plan, params)
    assert double.tiling.prefetch
    # the same layer single-buffered: same bytes, every group's loads before its run
    single = schedule.layer_schedule(plan, params, tiling=dataclasses.replace(double.tiling, prefetch=False))
    assert single.bytes == double.bytes
    # 4 groups, 3 of them prefetched: each saves its table load, WEIGHTS_REQ and its weight load; and the run
    # before it ends at its last issue, its residue step in RUN's exit cycle: what a single-buffered run waits
    # through to its exit at `drained` (the step cuts, the accumulate, the take and `drained`: step cuts + 2), and
    # its RESIDUES cycle (both runs' windows are fetched before RUN_START). A folded run ends so too: its drain's
    # longer hold of the last pass is under the next run
    assert len(engine.group_channels(plan, params.m_lanes)) == 4
    loads = (schedule._load_cycles(table_group_beats(params, plan.fold), schedule.DEFAULT_LATENCY)
             + 1 + schedule._load_cycles(weight_group_beats(plan, params), schedule.DEFAULT_LATENCY))
    assert single.cycles - double.cycles == 3 * (loads + len(params.step_cuts) + 3)


# reads slow: the next group's loads outlast the run; writes slow: write-back paces the run
STALLS = {
    "reads_slow": {"req": 0.2, "rd": 0.85, "wr": 0.0},
    "writes_slow": {"req": 0.2, "rd": 0.0, "wr": 0.85},
    "everywhere": 0.3,
}


# every depth under stalls on every stream: test_gateware_engine.py's ps4p4 case (two groups, one prefetched)
@pytest.mark.parametrize("stall, pipeline", [("reads_slow", MAX_PIPELINE), ("writes_slow", MAX_PIPELINE),
                                             ("everywhere", 0), ("everywhere", MAX_PIPELINE)])
def test_prefetched_layer_is_bit_exact_under_stalls(stall, pipeline):
    graph = conv_graph(3, cin=8, cout=12, h=2, w=5, scheme="PS4_P4")
    plan, params, traffic = run_case(graph, seed=pipeline + len(stall), stall=STALLS[stall], pipeline=pipeline)
    model = schedule.layer_schedule(plan, params)
    assert model.tiling.prefetch
    assert (traffic.read_bytes, traffic.write_bytes) == (model.read_bytes, model.write_bytes)


@pytest.mark.parametrize("kwargs, knobs", [
    (dict(cin=12, cout=12, h=3, w=5, scheme="PS4_P4"), {}),  # the run outlasts the loads
    (dict(cin=16, cout=24, h=2, w=2, kernel=1), dict(m_lanes=8, x_lanes=2, bus_bits=16)),  # the loads outlast it
    # residue groups, packed W4 (padded to the largest group: the default buffer holds 1.75 groups)
    (dict(cin=9, cout=12, h=2, w=4, scheme="PSD4_P8", weight_bits=4), dict(m_lanes=2, bus_bits=32, weight_words=24)),
])
def test_prefetch_cycles_match_schedule(kwargs, knobs):
    plan, params, traffic = run_case(conv_graph(4, **kwargs), seed=4, stall=0.0, **knobs)
    model = schedule.layer_schedule(plan, params)
    assert model.tiling.prefetch
    assert (traffic.read_bytes, traffic.write_bytes) == (model.read_bytes, model.write_bytes)
    assert abs(traffic.cycles - model.cycles) <= 0.03 * traffic.cycles, (traffic.cycles, model.cycles)


def test_prefetch_in_row_bands_and_column_tiles():
    """Each tile loads its first group, prefetches the rest: 2 bands x 2 column tiles, bit-exact under stalls."""
    plan, params, traffic, tiling = column_tiled_case(78)
    assert tiling.prefetch and tiling.bands == 2 and tiling.col_tiles == 2
    model = schedule.layer_schedule(plan, params)
    assert (traffic.read_bytes, traffic.write_bytes) == (model.read_bytes, model.write_bytes)


# Early exits: a prefetched run ends at its last issue, the next group's residue step and RUN_START overlap the last
# pass's way to the drain, and (residue groups aside) the input buffer has fetched the next run's first windows
EARLY = {
    # 4 groups of 3 rows x 3 pixel groups
    "ps4p4_rows": (dict(cin=5, cout=16, h=3, w=9, scheme="PS4_P4"), {}),
    # runs of one pass: the last issue is the first pass's; write-back paces the runs (each waits for the writer to
    # take its group), which the schedule counts within 8 % (108 cycles, the schedule 100 at pipeline 5)
    "one_pass_runs": (dict(cin=3, cout=12, h=1, w=4, kernel=1), {}),
    # two lanes: the drain holds a pass two cycles
    "two_lanes_stride2": (dict(cin=4, cout=8, h=5, w=7, scheme="PS4_P4", stride=2), dict(m_lanes=2, bus_bits=32)),
    # residue groups: the fetch waits for RUN_START (it needs the group's residue)
    "psd4p8_residue": (dict(cin=9, cout=12, h=2, w=4, scheme="PSD4_P8", weight_bits=4),
                       dict(m_lanes=2, bus_bits=32, weight_words=24)),
    # folded (`plan.fold`: groups of 2 x m_lanes channels, passes of x_lanes / 2 pixels): the drain holds a pass
    # 2 x m_lanes cycles, the next run's first pass waiting behind it; 4 groups of 3 one-pass rows ...
    "folded_rows": (dict(cin=8, cout=32, h=3, w=4, scheme="PS4_P4"),
                    dict(m_lanes=4, x_lanes=8, weight_words=96, folded=True)),
    # ... runs of one pass ...
    "folded_one_pass_runs": (dict(cin=32, cout=24, h=1, w=4, kernel=1), dict(m_lanes=4, x_lanes=8, folded=True)),
    # ... and two lanes at stride 2 (runs of two rows)
    "folded_two_lanes_stride2": (dict(cin=16, cout=16, h=4, w=4, kernel=1, stride=2),
                                 dict(m_lanes=2, x_lanes=4, bus_bits=32, folded=True)),
}


def early_case(name, **run):
    kwargs, knobs = EARLY[name]
    plan, params, traffic = run_case(conv_graph(9, **kwargs), **{**knobs, **run})
    model = schedule.layer_schedule(plan, params)
    assert model.tiling.prefetch and len(engine.group_channels(plan, params.m_lanes)) > 1
    assert plan.residue_groups == (name == "psd4p8_residue")
    assert (traffic.read_bytes, traffic.write_bytes) == (model.read_bytes, model.write_bytes)
    return traffic, model


@pytest.mark.parametrize("stall", ["writes_slow", "everywhere"])
@pytest.mark.parametrize("pipeline", [0, MAX_PIPELINE])
@pytest.mark.parametrize("name", sorted(EARLY))
def test_early_exits_are_bit_exact_under_stalls(name, pipeline, stall):
    early_case(name, seed=pipeline + len(stall), stall=STALLS[stall], pipeline=pipeline)


@pytest.mark.parametrize("name", sorted(set(EARLY) - {"one_pass_runs"}))
def test_early_exits_follow_the_schedule_at_every_depth(name):
    """Without stalls the RTL's cycles are within 2 of the schedule's, the same at every pipeline depth: the
    model's run ends (the last issue, the residue step, RUN_START, the windows fetched ahead) are exact."""
    gaps = []
    for pipeline in range(MAX_PIPELINE + 1):
        traffic, model = early_case(name, seed=1, stall=0.0, pipeline=pipeline)
        gaps.append(traffic.cycles - model.cycles)
    assert gaps == [gaps[0]] * len(gaps) and abs(gaps[0]) <= 2, gaps


def resident_sets_case(**run):
    """Resident lane groups in row bands: 5 groups in sets of 3 and 2 (the weight buffer holds 3), 5 bands of one
    row of two passes at stride 2. SET_START reads a set's first group's weights; the runs of its first band read
    the others'."""
    graph = conv_graph(11, cin=4, cout=20, h=9, w=9, scheme="PS4_P4", stride=2)
    plan = engine.plan_node(graph, graph.node("conv"), m_lanes=4)
    words = tiling.group_buffer_words(plan, engine.fit_params([plan], m_lanes=4, x_lanes=4, bus_bits=64))
    plan, params, traffic = run_case(graph, input_words=16, weight_words=3 * words, **run)
    model = schedule.layer_schedule(plan, params)
    t = model.tiling
    assert (t.resident_groups, t.bands, t.prefetch, len(engine.group_channels(plan, params.m_lanes))) == (3, 5, True, 5)
    assert (traffic.read_bytes, traffic.write_bytes) == (model.read_bytes, model.write_bytes)
    return traffic, model


@pytest.mark.parametrize("stall, pipeline", [("reads_slow", MAX_PIPELINE), ("writes_slow", 0),
                                             ("everywhere", 0), ("everywhere", MAX_PIPELINE)])
def test_resident_sets_prefetch_bit_exact_under_stalls(stall, pipeline):
    resident_sets_case(seed=pipeline + len(stall), stall=STALLS[stall], pipeline=pipeline)


def test_resident_sets_prefetch_follow_the_schedule():
    """Without stalls: only each set's first group's weights are read before its bands (SET_START), and the RTL
    follows the schedule within 1 % and by the same few cycles at every pipeline depth."""
    gaps = []
    for pipeline in range(MAX_PIPELINE + 1):
        traffic, model = resident_sets_case(seed=1, stall=0.0, pipeline=pipeline)
        gaps.append(traffic.cycles - model.cycles)
    plan_loads = 1 + schedule._load_cycles(model.bytes["weights"] // 5 // 8, schedule.DEFAULT_LATENCY)
    assert model.idle["set_weights"] == 2 * (1 + plan_loads)
    assert gaps == [gaps[0]] * len(gaps) and abs(gaps[0]) <= 0.01 * traffic.cycles, gaps
