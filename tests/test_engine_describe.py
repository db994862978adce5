"""The generic analytical model predicts the engine's DRAM bytes from `generate`'s arch.yaml + mapping.yaml.

The prediction is computed by the workload x architecture x mapping evaluator (hwgen.analysis),
not by the engine compiler's own count of its loop nest (`tiling.tiled_bytes`): the two are
compared tensor by tensor over random layers, engines and buffer sizes. The RTL's measured bytes
are compared with the same generic prediction by `hwgen simulate` (tests/test_sim_*.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from hwgen.layercases import conv_graph, pattern_library_graph
from hwgen import engine, sim_target
from hwgen.engine import describe
from hwgen.errors import HwgenError


def generic_prediction(build, tmp_path) -> dict[str, dict]:
    arch, mapping = tmp_path / "arch.yaml", tmp_path / "mapping.yaml"
    describe.write(build, arch, mapping)
    return sim_target.generic_prediction(build.graph, arch, mapping)


def random_build(seed: int):
    rng = np.random.default_rng(7000 + seed)
    kernel = int(rng.choice([3, 3, 3, 1, 5, 7]))
    scheme = None if kernel != 3 else rng.choice([None, "PS4_P4", "PS2_P4", "PSD4_P8", "PSD1_P16", "library"])
    kwargs = dict(cin=int(rng.integers(1, 24)), cout=int(rng.integers(1, 40)), h=int(rng.integers(1, 20)),
                  w=int(rng.integers(1, 40)), stride=int(rng.integers(1, 3)),
                  weight_bits=int(rng.integers(2, 9)), act_bits=int(rng.integers(2, 9)))
    if scheme == "library":
        graph = pattern_library_graph(seed, **kwargs)
    else:
        graph = conv_graph(seed, kernel=kernel, scheme=scheme, **kwargs)
    bus_bits = int(rng.choice([16, 32, 64, 128]))
    config = engine.EngineConfig(m_lanes=int(rng.choice([1, 2, 4, 8, 16])), x_lanes=int(rng.choice([1, 2])),
                                 bus_bits=bus_bits, glb_kib=int(rng.choice([1, 1, 2, 4])) if rng.random() < 0.7 else None)
    return engine.build(graph, config)


@pytest.mark.parametrize("seed", range(60))
def test_generic_model_predicts_tiled_bytes(seed, tmp_path):
    try:
        build = random_build(seed)
        build.tilings
    except HwgenError as e:  # a band that does not fit this buffer: refused in one line
        assert "needs --glb-kib" in str(e)
        return
    predicted = generic_prediction(build, tmp_path)
    assert list(predicted) == [s.name for s in build.schedules]
    for sched in build.schedules:
        assert predicted[sched.name] == sched.bytes, (sched.name, sched.tiling)


def column_tiled_build(seed: int):
    """A random layer (k = 1, 3, 5, 7, stride 1 or 2) on the largest --glb-kib that puts it in column tiles."""
    rng = np.random.default_rng(9000 + seed)
    while True:
        kernel = int(rng.choice([1, 3, 5, 7]))
        graph = conv_graph(seed, kernel=kernel, scheme=None if kernel != 3 else rng.choice([None, "PS4_P4", "PSD4_P8"]),
                           cin=int(rng.integers(8, 48)), cout=int(rng.integers(1, 40)), h=int(rng.integers(1, 12)),
                           w=int(rng.integers(16, 120)), stride=int(rng.integers(1, 3)),
                           weight_bits=int(rng.integers(2, 9)), act_bits=int(rng.choice([2, 4, 8])))
        bus_bits = int(rng.choice([16, 32, 64]))
        knobs = dict(m_lanes=int(rng.choice([1, 2, 4, 8])), x_lanes=int(rng.choice([1, 2])), bus_bits=bus_bits)
        for kib in range(8, 0, -1):
            try:
                build = engine.build(graph, engine.EngineConfig(glb_kib=kib, **knobs))
                if build.tilings[0].col_beats:
                    return build
            except HwgenError as e:
                assert "its smallest tile" in str(e) and "needs --glb-kib" in str(e)
                break


@pytest.mark.parametrize("seed", range(30))
def test_generic_model_predicts_column_tiled_bytes(seed, tmp_path):
    """Column tiles: each reads, of its input rows, the whole beats covering its columns (halo included)."""
    build = column_tiled_build(seed)
    tiling = build.tilings[0]
    assert tiling.col_tiles > 1
    predicted = generic_prediction(build, tmp_path)
    sched = build.schedules[0]
    assert predicted[sched.name] == sched.bytes, (sched.name, tiling)


@pytest.mark.parametrize("kwargs", [dict(cin=5, cout=12, h=4, w=4, scheme="PS4_P4"),
                                    dict(cin=24, cout=9, h=8, w=8, kernel=1, stride=2),
                                    dict(cin=16, cout=40, h=5, w=3)])
def test_generic_model_predicts_folded_bytes(kwargs, tmp_path):
    """A folded layer (`plan.can_fold`) moves lane groups of twice the channels: mapping `fold: 2`."""
    build = engine.build(conv_graph(3, **kwargs), engine.EngineConfig(m_lanes=4, x_lanes=8, weight_kib=4))
    assert build.plans[0].fold == 2
    sched = build.schedules[0]
    assert generic_prediction(build, tmp_path)[sched.name] == sched.bytes
