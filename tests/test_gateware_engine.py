"""The whole engine in amaranth.sim against hwgen.reference, with random stalls on every stream."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np
import pytest
from hwgen.layercases import conv_graph, expected, load_image, pattern_library_graph, random_input

from hwgen import engine
from hwgen.engine.params import MAX_PIPELINE
from hwgen.gateware.engine import Engine
from hwgen.gateware.sim_memory import run_layer


def run_case(graph, seed, *, m_lanes=4, x_lanes=4, bus_bits=64, stall=0.3, dense_only=False, folded=False, **buffer):
    """One conv layer in amaranth.sim; `buffer`: input buffer parameters (input_words, max_width) to force
    row bands and several rows per word; `folded`: the layer as the compiler folds it (it must)."""
    plan = engine.plan_node(graph, graph.node("conv"), dense_only=dense_only, m_lanes=m_lanes)

    def fit(plan):
        return dataclasses.replace(engine.fit_params([plan], m_lanes=m_lanes, x_lanes=x_lanes, bus_bits=bus_bits,
                                                     sparse=False if dense_only else None), **buffer)

    params = fit(plan)
    if folded:
        (plan,) = engine.fold_plans([plan], params)
        assert plan.fold > 1, "the compiler does not fold this layer"
        params = fit(plan)
    img = engine.dram_image([plan], params)
    x = random_input(graph, seed)
    image = load_image(img, x, params)
    before = bytes(image)
    traffic = run_layer(Engine(params), image, img.layers[0].descriptor, stall=stall, seed=seed, max_cycles=200_000)
    reg = img.layers[0]
    got = engine.unpack_activations(image[reg.output:reg.output + reg.output_bytes], plan.out_shape,
                                    graph.node("conv").quant.signed, params)
    np.testing.assert_array_equal(got, expected(graph, x))
    # nothing outside the output region was written
    assert image[:reg.output] == before[:reg.output]
    assert image[reg.output + reg.output_bytes:] == before[reg.output + reg.output_bytes:]
    return plan, params, traffic


CASES = {
    # name: (conv_graph kwargs, knobs kwargs)
    "ps4p4": (dict(cin=6, cout=8, h=6, w=7, scheme="PS4_P4"), {}),
    "ps4p4_stride2": (dict(cin=5, cout=6, h=7, w=9, scheme="PS4_P4", stride=2), {}),
    "first_layer_signed_dense": (dict(cin=1, cout=5, h=5, w=6, in_signed=True), dict(x_lanes=2)),
    "dense_3x3_no_relu": (dict(cin=3, cout=4, h=4, w=5, relu=False), dict(bus_bits=32)),
    "pointwise_stride2": (dict(cin=7, cout=9, h=6, w=6, kernel=1, stride=2), {}),
    # one-step passes: a pass's last step issues while the previous pass's is still in flight
    "pointwise_one_channel": (dict(cin=1, cout=7, h=8, w=7, kernel=1, stride=2, weight_bits=6, act_bits=5),
                              dict(m_lanes=16, x_lanes=2, bus_bits=16)),
    "psd4p8_narrow_bits": (dict(cin=9, cout=8, h=3, w=5, scheme="PSD4_P8", weight_bits=4, act_bits=5),
                           dict(m_lanes=8, bus_bits=32)),
    "ps3p3_wide_bus": (dict(cin=4, cout=3, h=5, w=11, scheme="PS3_P3"), dict(m_lanes=2, x_lanes=8, bus_bits=128)),
    "ps2p2_lanes16": (dict(cin=3, cout=17, h=3, w=4, scheme="PS2_P2"), dict(m_lanes=16, x_lanes=1, bus_bits=8)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_layer_matches_reference(name):
    kwargs, knobs = CASES[name]
    run_case(conv_graph(seed=zlib.crc32(name.encode()) % 1000, **kwargs), seed=len(name), **knobs)


def test_dense_only_engine_runs_periodic_layer_as_dense():
    graph = conv_graph(3, cin=4, cout=4, h=4, w=4, scheme="PS4_P4")
    plan, params, _ = run_case(graph, 3, dense_only=True)
    assert plan.dense and plan.taps == 9 and not params.sparse


@pytest.mark.parametrize("make, knobs", [
    (lambda: conv_graph(5, cin=8, cout=8, h=6, w=8, scheme="PS4_P4"), {}),
    (lambda: conv_graph(6, cin=6, cout=12, h=7, w=9, kernel=1, stride=2), dict(m_lanes=8, x_lanes=2, bus_bits=32)),
    (lambda: pattern_library_graph(7, cin=8, cout=8, h=5, w=5), dict(bus_bits=128)),
])
def test_traffic_and_cycles_match_schedule(make, knobs):
    from hwgen.engine import schedule

    plan, params, traffic = run_case(make(), 5, stall=0.0, **knobs)
    model = schedule.layer_schedule(plan, params)
    assert traffic.read_bytes == model.read_bytes
    assert traffic.write_bytes == model.write_bytes
    # cycles: the model is analytical, documented as within 3% of the unstalled simulation
    assert abs(traffic.cycles - model.cycles) <= 0.03 * traffic.cycles


def pipeline_case(name):
    kwargs, knobs = CASES[name]
    return conv_graph(seed=zlib.crc32(name.encode()) % 1000, **kwargs), knobs


@pytest.mark.parametrize("pipeline", range(MAX_PIPELINE + 1))
@pytest.mark.parametrize("name", ["ps4p4", "pointwise_one_channel"])
def test_every_pipeline_depth_is_bit_exact(name, pipeline):
    """Each depth of register cuts, bit-exact under stalls; one-step passes put several last steps in flight."""
    graph, knobs = pipeline_case(name)
    run_case(graph, seed=pipeline, pipeline=pipeline, **knobs)


@pytest.mark.parametrize("name", ["ps4p4", "pointwise_one_channel"])
def test_schedule_counts_pipeline_latency_exactly(name):
    """Without stalls, each depth's measured cycles exceed the single-cycle datapath's by exactly what the
    schedule adds (its `pipeline_latency` once per lane-group run)."""
    from hwgen.engine import schedule

    graph, knobs = pipeline_case(name)
    gaps = []
    for pipeline in range(MAX_PIPELINE + 1):
        plan, params, traffic = run_case(graph, seed=1, stall=0.0, pipeline=pipeline, **knobs)
        gaps.append(traffic.cycles - schedule.layer_schedule(plan, params).cycles)
    assert gaps == [gaps[0]] * len(gaps), gaps


def test_layers_with_different_periods_share_one_engine():
    graphs = [conv_graph(21, cin=3, cout=8, h=4, w=5, scheme="PS2_P2"),
              conv_graph(22, cin=5, cout=8, h=5, w=4, scheme="PS4_P4", stride=2)]
    plans = [engine.plan_node(g, g.node("conv")) for g in graphs]
    params = engine.fit_params(plans, m_lanes=8, x_lanes=2, bus_bits=32)
    assert params.lane_period == 4 and params.select_lanes == 4 and len(params.patterns) == 6
    assert run_layers_on_one_engine(graphs, plans, params).table_bases == [0, 2]


def run_layers_on_one_engine(graphs, plans, params):
    """Every layer of `graphs` from one DRAM image on one engine under stalls, each against the reference."""
    img = engine.dram_image(plans, params)
    image = bytearray(img.size)
    image[:len(img.data)] = img.data
    for i, (graph, plan, reg) in enumerate(zip(graphs, plans, img.layers)):
        x = random_input(graph, i)
        blob = engine.pack_activations(x, params)
        image[reg.input:reg.input + len(blob)] = blob
        run_layer(Engine(params), image, reg.descriptor, stall=0.3, seed=i)
        got = engine.unpack_activations(image[reg.output:reg.output + reg.output_bytes], plan.out_shape, False, params)
        np.testing.assert_array_equal(got, expected(graph, x), err_msg=f"layer {i}")
    return img


@pytest.mark.parametrize("m_lanes, x_lanes, bus_bits, stride", [(4, 4, 64, 1), (8, 2, 32, 2), (2, 4, 128, 1)])
def test_pattern_library_layer_runs_with_kernel_ids(m_lanes, x_lanes, bus_bits, stride):
    graph = pattern_library_graph(31 + m_lanes, cin=6, cout=9, h=5, w=6, stride=stride)
    plan, params, _ = run_case(graph, 31, m_lanes=m_lanes, x_lanes=x_lanes, bus_bits=bus_bits)
    assert plan.structure == "library" and plan.taps == 4 and len(plan.masks) == 3
    assert params.library and params.select_lanes == params.m_lanes


TILED = {
    # name: (conv_graph kwargs, knobs kwargs, resident lane groups the compiler must pick (None: any))
    # inputs heavier than weights, one group's weights fit: weights streamed once per band
    "ps4p4_streamed": (dict(cin=6, cout=16, h=9, w=30, scheme="PS4_P4"), dict(input_words=6 * 4), 0),
    # one lane group: its weights stay while the bands run
    "dense_one_group_resident": (dict(cin=5, cout=3, h=8, w=5), dict(input_words=5 * 3), 1),
    # a weight buffer for 16 channels holds all three groups: weights and input rows read once
    "ps4p4_resident_set": (dict(cin=4, cout=12, h=8, w=6, scheme="PS4_P4"), dict(input_words=4 * 4, max_channels=16), 3),
    # two sets of resident groups: every band read twice
    "dense_two_sets": (dict(cin=3, cout=16, h=7, w=5), dict(m_lanes=4, input_words=3 * 3, max_channels=8), 2),
    # stride 2, four rows per word (as for a narrow layer of a wider network), bands of 2 output rows
    "ps4p4_stride2_packed_rows": (dict(cin=4, cout=8, h=11, w=6, scheme="PS4_P4", stride=2),
                                  dict(bus_bits=32, max_width=24, input_words=5), None),
    "pointwise_stride2": (dict(cin=7, cout=9, h=9, w=6, kernel=1, stride=2), dict(input_words=7 * 2), None),
    "psd4p8_residue": (dict(cin=9, cout=16, h=7, w=5, scheme="PSD4_P8"), dict(m_lanes=4, input_words=9 * 4), None),
    # packed activations: A = 4, two per byte (a row of 30 in two beats); A = 2, four per byte,
    # two rows per word, stride 2
    "ps4p4_a4": (dict(cin=6, cout=16, h=9, w=30, scheme="PS4_P4", act_bits=4), dict(input_words=6 * 4), None),
    "psd4p8_a2_stride2": (dict(cin=4, cout=8, h=11, w=6, scheme="PSD4_P8", stride=2, act_bits=2),
                          dict(bus_bits=32, max_width=24, input_words=8), None),
}


@pytest.mark.parametrize("name", sorted(TILED))
def test_tiled_layer_matches_reference_and_schedule(name):
    """Row bands on a small input buffer: bit-exact under stalls; bytes and cycles as the compiler says."""
    from hwgen.engine import schedule

    kwargs, knobs, resident = TILED[name]
    graph = conv_graph(seed=zlib.crc32(name.encode()) % 1000, **kwargs)
    plan, params, _ = run_case(graph, seed=len(name), **knobs)
    tiling = engine.layer_tiling(plan, params)
    assert tiling.bands > 1
    if resident is not None:
        assert tiling.resident_groups == resident
    _, _, traffic = run_case(graph, seed=len(name), stall=0.0, **knobs)
    model = schedule.layer_schedule(plan, params)
    assert traffic.read_bytes == model.read_bytes
    assert traffic.write_bytes == model.write_bytes
    assert abs(traffic.cycles - model.cycles) <= 0.03 * traffic.cycles, (traffic.cycles, model.cycles)


@pytest.mark.parametrize("seed", range(3))
def test_random_band_sizes(seed):
    """Random layers (k = 1, 3, 5, 7) on random input buffer sizes, from the smallest band that fits to the
    whole input; activations of 2, 4 or 8 bits (packed 4, 2 or 1 per DRAM byte)."""
    random_tiled_case(seed)


def random_tiled_case(seed):
    rng = np.random.default_rng(4000 + seed)
    kernel = int(rng.choice([3, 3, 1, 5, 7]))
    wide = kernel > 3  # k * k steps per channel: fewer channels
    graph = conv_graph(seed, cin=int(rng.integers(1, 3 if wide else 9)), cout=int(rng.integers(1, 6 if wide else 12)),
                       h=int(rng.integers(3, 13)), w=int(rng.integers(1, 17)), kernel=kernel,
                       stride=int(rng.integers(1, 3)),
                       scheme=None if kernel != 3 else rng.choice([None, "PS4_P4", "PSD4_P8"]),
                       weight_bits=int(rng.integers(2, 9)), act_bits=int(rng.choice([2, 4, 8])))
    m_lanes = int(rng.choice([1, 2, 4, 8]))
    bus_bits = int(rng.choice([16, 32, 64]))
    plan = engine.plan_node(graph, graph.node("conv"), m_lanes=m_lanes)
    full = engine.fit_params([plan], m_lanes=m_lanes, x_lanes=2, bus_bits=bus_bits)
    smallest = engine.band_words(plan, full, 1)
    words = int(rng.integers(smallest, full.input_words + 1))
    sets = int(rng.integers(1, 4))  # a weight buffer for 1 to 3 groups
    run_case(graph, seed, m_lanes=m_lanes, x_lanes=2, bus_bits=bus_bits, input_words=words,
             max_channels=full.max_channels * sets, wide_kernel_words=full.wide_kernel_words * sets,
             stall=float(rng.choice([0.3, 0.6])))


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(60))
def test_random_band_sizes_soak(seed):
    random_tiled_case(100 + seed)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(150))
def test_random_layers_soak(seed):
    """Random shapes, schemes, bit widths and engine parameters, under random stalls."""
    rng = np.random.default_rng(1000 + seed)
    kernel = int(rng.choice([3, 3, 3, 1]))
    scheme = None if kernel == 1 else rng.choice([None, "PS4_P4", "PS2_P4", "PSD4_P8", "PS3_P3", "PS1_P2", "library"])
    kwargs = dict(cin=int(rng.integers(1, 12)), cout=int(rng.integers(1, 20)), h=int(rng.integers(1, 9)),
                  w=int(rng.integers(1, 13)), kernel=kernel, stride=int(rng.integers(1, 3)),
                  in_signed=bool(rng.integers(0, 2)), relu=bool(rng.integers(0, 2)),
                  weight_bits=int(rng.integers(2, 9)), act_bits=int(rng.integers(2, 9)))
    if scheme == "library":
        kwargs.pop("kernel")
        graph = pattern_library_graph(seed, **kwargs)
    else:
        graph = conv_graph(seed, scheme=scheme, **kwargs)
    bus_bits = int(rng.choice([8, 16, 32, 64, 128, 256]))
    x_lanes = int(rng.choice([x for x in (1, 2, 4, 8) if x <= bus_bits // 8]))
    run_case(graph, seed, m_lanes=int(rng.choice([1, 2, 4, 8, 16])), x_lanes=x_lanes, bus_bits=bus_bits,
             stall=float(rng.choice([0.0, 0.3, 0.6])))


KERNEL_CASES = {
    # name: (conv_graph kwargs, knobs kwargs): dense k x k layers, every k at stride 1 and 2
    "k1_stride1": (dict(cin=3, cout=5, h=6, w=7, kernel=1), {}),
    "k1_stride2": (dict(cin=3, cout=5, h=7, w=6, kernel=1, stride=2), dict(x_lanes=2)),
    "k3_stride1": (dict(cin=2, cout=5, h=6, w=7, kernel=3), {}),
    "k3_stride2": (dict(cin=2, cout=5, h=7, w=8, kernel=3, stride=2), dict(x_lanes=2)),
    "k5_stride1": (dict(cin=3, cout=5, h=6, w=9, kernel=5), {}),
    "k5_stride2": (dict(cin=2, cout=6, h=9, w=7, kernel=5, stride=2, weight_bits=4), dict(x_lanes=2, bus_bits=32)),
    "k7_stride1": (dict(cin=2, cout=3, h=8, w=9, kernel=7, in_signed=True), dict(m_lanes=2)),
    "k7_stride2": (dict(cin=3, cout=5, h=11, w=12, kernel=7, stride=2, act_bits=6), {}),
}


@pytest.mark.parametrize("name", sorted(KERNEL_CASES))
def test_kernel_sizes_match_reference(name):
    """Dense k x k layers (k = 1, 3, 5, 7, padding k // 2) on an engine sized to them, under stalls."""
    kwargs, knobs = KERNEL_CASES[name]
    plan, params, _ = run_case(conv_graph(seed=zlib.crc32(name.encode()) % 1000, **kwargs), seed=len(name), **knobs)
    k = kwargs["kernel"]
    assert plan.kernel == k and plan.dense and plan.taps == k * k
    assert params.kernel_max == max(3, k) and params.win_cols == 2 * (params.x_lanes - 1) + max(3, k)


@pytest.mark.parametrize("kernel, stride, knobs", [
    (7, 2, dict(input_words=3 * 9)),  # a stem: three channels, bands of two output rows (9 input rows)
    (5, 1, dict(m_lanes=2, input_words=4 * 6, bus_bits=32)),  # bands of 2 output rows, 4 halo rows each
])
def test_wide_kernel_tiled_matches_reference_and_schedule(kernel, stride, knobs):
    """Row bands of a 5x5 and a 7x7 layer: k rows per window, k - stride halo rows; bit-exact under stalls,
    bytes as predicted and cycles within 3% of the schedule without stalls."""
    from hwgen.engine import schedule

    graph = conv_graph(60 + kernel, cin=3 if kernel == 7 else 4, cout=6, h=13, w=10, kernel=kernel, stride=stride)
    plan, params, _ = run_case(graph, seed=kernel, **knobs)
    tiling = engine.layer_tiling(plan, params)
    assert tiling.bands > 2 and tiling.chan_rows == (tiling.band_rows - 1) * stride + kernel
    _, _, traffic = run_case(graph, seed=kernel, stall=0.0, **knobs)
    model = schedule.layer_schedule(plan, params)
    assert traffic.read_bytes == model.read_bytes and traffic.write_bytes == model.write_bytes
    assert abs(traffic.cycles - model.cycles) <= 0.03 * traffic.cycles, (traffic.cycles, model.cycles)


def test_seven_by_seven_engine_runs_every_layer_kind():
    """One engine (kernel_max 7) for a 7x7 stem, a 5x5, a PS4_P4 3x3, a residue-grouped PSD 3x3, a pattern
    library 3x3 and a 1x1 layer: the smaller kernels sit in the middle of the 7-row window."""
    graphs = [conv_graph(71, cin=3, cout=4, h=9, w=9, kernel=7, stride=2, in_signed=True),
              conv_graph(72, cin=4, cout=5, h=6, w=7, kernel=5),
              conv_graph(73, cin=5, cout=8, h=5, w=6, scheme="PS4_P4", stride=2),
              conv_graph(74, cin=9, cout=16, h=4, w=5, scheme="PSD1_P16"),
              pattern_library_graph(75, cin=4, cout=5, h=5, w=4),
              conv_graph(76, cin=6, cout=7, h=5, w=6, kernel=1, stride=2)]
    plans = [engine.plan_node(g, g.node("conv")) for g in graphs]
    assert [p.structure for p in plans] == ["dense", "dense", "periodic", "periodic", "library", "dense"]
    assert plans[3].residue_groups
    params = engine.fit_params(plans, m_lanes=4, x_lanes=2, bus_bits=32)
    assert params.kernel_max == 7 and params.wide_kernel_words == 3 * 49 and params.sparse
    run_layers_on_one_engine(graphs, plans, params)


def column_tiled_case(seed: int, stall: float | None = None):
    """A random layer (k = 1, 3, 5, 7, stride 1 or 2, A = 2, 4 or 8) on an input buffer too small for one
    output row of full width but holding a column tile: the compiler picks a tile width; random words
    (rows of a wider network's word) and buffer depth between the smallest tile and the full row's.
    Returns the run's plan, params, traffic and tiling."""
    rng = np.random.default_rng(5000 + seed)
    while True:
        kernel = int(rng.choice([1, 3, 5, 7]))
        stride = int(rng.integers(1, 3))
        graph = conv_graph(seed, cin=int(rng.integers(1, 4 if kernel > 3 else 7)), cout=int(rng.integers(1, 7)),
                           h=int(rng.integers(2, 7)), w=int(rng.integers(12, 41)), kernel=kernel, stride=stride,
                           scheme=None if kernel != 3 else rng.choice([None, "PS4_P4"]),
                           weight_bits=int(rng.integers(2, 9)), act_bits=int(rng.choice([2, 4, 8])),
                           in_signed=bool(rng.integers(0, 2)))
        knobs = dict(m_lanes=int(rng.choice([1, 2, 4])), x_lanes=int(rng.choice([1, 2])),
                     bus_bits=int(rng.choice([16, 32])))
        plan = engine.plan_node(graph, graph.node("conv"), m_lanes=knobs["m_lanes"])
        full = engine.fit_params([plan], **knobs)
        wide = dataclasses.replace(full, max_width=full.max_width * int(rng.choice([2, 4, 8])))
        fits_full = engine.band_words(plan, wide, 1)
        least = min(engine.band_words(plan, wide, 1, cb) for cb in range(1, wide.row_beats(plan.out_shape[2])))\
            if wide.row_beats(plan.out_shape[2]) > 1 else fits_full
        if least < fits_full:
            break
    words = int(rng.integers(least, fits_full))
    sets = int(rng.integers(1, 3))
    buffer = dict(input_words=words, max_width=wide.max_width, max_channels=full.max_channels * sets,
                  wide_kernel_words=full.wide_kernel_words * sets)
    stall = float(rng.choice([0.3, 0.6])) if stall is None else stall
    plan, params, traffic = run_case(graph, seed, stall=stall, **knobs, **buffer)
    tiling = engine.layer_tiling(plan, params)
    assert tiling.col_beats > 0 and tiling.col_tiles > 1
    return plan, params, traffic, tiling


@pytest.mark.parametrize("seed", [0, 1, 2, 4, 5, 8])  # k = 3, 5, 1, 7 at stride 2, 3 at A = 4, 7 at stride 1
def test_random_column_tiles(seed):
    """Column tiles (halo columns, whole beats of each row) bit-exact under stalls; bytes as the compiler says."""
    from hwgen.engine import schedule

    plan, params, traffic, _ = column_tiled_case(seed)
    model = schedule.layer_schedule(plan, params)
    assert traffic.read_bytes == model.read_bytes and traffic.write_bytes == model.write_bytes


def test_column_tiles_cycles_match_schedule():
    """Without stalls a column-tiled layer (stride 2, 5x5) takes the schedule's cycles within 3%."""
    from hwgen.engine import schedule

    graph = conv_graph(81, cin=2, cout=5, h=7, w=30, kernel=5, stride=2)
    knobs = dict(m_lanes=2, x_lanes=2, bus_bits=16, max_width=120)
    plan = engine.plan_node(graph, graph.node("conv"), m_lanes=2)
    wide = dataclasses.replace(engine.fit_params([plan], m_lanes=2, x_lanes=2, bus_bits=16), max_width=120)
    words = engine.band_words(plan, wide, 1) - 1
    plan, params, traffic = run_case(graph, 3, stall=0.0, input_words=words, **knobs)
    tiling = engine.layer_tiling(plan, params)
    assert tiling.col_beats and tiling.col_tiles > 1 and plan.stride == 2
    model = schedule.layer_schedule(plan, params)
    assert traffic.read_bytes == model.read_bytes and traffic.write_bytes == model.write_bytes
    assert abs(traffic.cycles - model.cycles) <= 0.03 * traffic.cycles, (traffic.cycles, model.cycles)


@pytest.mark.parametrize("kind", ["residue", "library"])
def test_column_tiles_of_residue_and_library_layers(kind):
    """Residue-grouped (PSD, rows fetched per pattern) and pattern-library layers in column tiles, under stalls."""
    from hwgen.engine import schedule

    graph = (conv_graph(91, cin=9, cout=16, h=4, w=30, scheme="PSD1_P16") if kind == "residue"
             else pattern_library_graph(92, cin=6, cout=5, h=4, w=30))
    plan = engine.plan_node(graph, graph.node("conv"), m_lanes=4)
    assert plan.residue_groups if kind == "residue" else plan.ids is not None
    wide = dataclasses.replace(engine.fit_params([plan], m_lanes=4, x_lanes=2, bus_bits=16), max_width=120)
    words = engine.band_words(plan, wide, 1) - 1
    plan, params, traffic = run_case(graph, 3, m_lanes=4, x_lanes=2, bus_bits=16, max_width=120, input_words=words,
                                     stall=0.4)
    assert engine.layer_tiling(plan, params).col_tiles > 1
    model = schedule.layer_schedule(plan, params)
    assert traffic.read_bytes == model.read_bytes and traffic.write_bytes == model.write_bytes


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(40))
def test_random_column_tiles_soak(seed):
    test_random_column_tiles(100 + seed)
