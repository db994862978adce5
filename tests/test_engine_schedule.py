"""The schedule model's account of a layer's cycles outside its passes (`LayerSchedule.idle`).

The RTL is held to the model's cycles by the gateware and simulation tests; here the model's own
breakdown is held to its total, over random layers, engines and buffers (row bands, column tiles,
both loop nests, prefetch, folds), so a benchmark's "where the cycles go" adds up to what the RTL runs.
"""

from __future__ import annotations

import numpy as np
import pytest
from hwgen import engine
from hwgen.engine import schedule
from hwgen.errors import HwgenError
from hwgen.layercases import conv_graph


def random_build(seed: int):
    rng = np.random.default_rng(11000 + seed)
    kernel = int(rng.choice([1, 3, 3, 5]))
    graph = conv_graph(seed, kernel=kernel, scheme=rng.choice([None, "PS4_P4"]) if kernel == 3 else None,
                       cin=int(rng.integers(1, 40)), cout=int(rng.integers(1, 70)), h=int(rng.integers(1, 24)),
                       w=int(rng.integers(1, 40)), stride=int(rng.integers(1, 3)), weight_bits=8, act_bits=8)
    config = engine.EngineConfig(m_lanes=int(rng.choice([2, 4, 8])), x_lanes=int(rng.choice([2, 4, 8])),
                                 bus_bits=64, glb_kib=int(rng.choice([2, 4, 8])),
                                 weight_kib=[None, 4, 16][int(rng.integers(3))])
    return engine.build(graph, config)


@pytest.mark.parametrize("seed", range(40))
def test_idle_causes_sum_to_the_cycles_outside_the_passes(seed):
    try:
        build = random_build(seed)
        schedules = build.schedules
    except HwgenError as e:  # a band or a group that does not fit these buffers: refused in one line
        assert "needs --glb-kib" in str(e) or "--weight-kib" in str(e)
        return
    for s in schedules:
        t = s.tiling
        assert tuple(s.idle) == schedule.IDLE_CAUSES
        assert all(v >= 0 for v in s.idle.values()), s.idle
        assert sum(s.idle.values()) == s.cycles - s.compute_cycles, (s.idle, s.cycles, s.compute_cycles)
        sets = -(-engine.groups(build.plans[0], build.params) // t.resident_groups) if t.resident_groups else 1
        assert (s.idle["inputs"] > 0) == (t.tiles * sets > 1), (t, s.idle)
        assert (s.idle["set_weights"] > 0) == (t.resident_groups > 0), (t, s.idle)
        assert s.idle["first_input"] > 0 and s.idle["descriptor"] > 0 and s.idle["runs"] > 0


def test_idle_inputs_are_the_band_loads():
    """A one-band layer has no later input loads; the same layer in bands pays each further band's load."""
    graph = conv_graph(3, kernel=3, scheme=None, cin=16, cout=8, h=16, w=16, stride=1, weight_bits=8, act_bits=8)
    whole = engine.build(graph, engine.EngineConfig(glb_kib=None)).schedules[0]
    banded = engine.build(graph, engine.EngineConfig(glb_kib=1)).schedules[0]
    assert whole.tiling.bands == 1 and whole.idle["inputs"] == 0
    assert banded.tiling.bands > 1 and banded.idle["inputs"] > 0
    assert banded.idle["first_input"] < whole.idle["first_input"]  # the first band holds fewer rows
