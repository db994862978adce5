"""Shared helpers of the engine simulation tests: the session's build cache, single-layer checks.

Random conv chains live in hwgen.randomnet (they are `hwgen verify --random`'s cases too).
"""

from __future__ import annotations

import os
from pathlib import Path


def session_cache(tmp_path_factory) -> Path:
    """One Verilator build cache for the test session, shared by pytest-xdist workers.

    Builds are keyed by the Verilog's hash and locked, so a worker that needs a design another is
    building waits for it instead of compiling it again.
    """
    base = tmp_path_factory.getbasetemp()
    path = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "hwgen-sim-cache"
    path.mkdir(exist_ok=True)
    return path


def assert_single_layer_exact(report, images: int, timing: str, cycle_tolerance: float) -> None:
    """A one-layer run is bit-exact; with ideal memory its bytes and cycles are the schedule's."""
    assert report.error is None, report.error
    (lr,) = report.layers
    assert lr.mismatches == 0 and lr.images == images, lr.notes
    assert lr.bytes_match and report.logits_match
    if timing == "ideal":
        assert lr.dram_bytes_measured == lr.dram_bytes_predicted
        assert abs(lr.cycles - lr.cycles_predicted) <= cycle_tolerance * lr.cycles, (lr.cycles, lr.cycles_predicted)


def check_single_layer(target, tmp_path, cache, timing: str, seed: int, cycle_tolerance: float, images: int = 2):
    """Simulate a one-layer target on `images` seeded inputs and `assert_single_layer_exact`."""
    from hwgen import simulate

    inputs, _ = simulate.sample_inputs(target.graph, images, seed)
    report = simulate.run_network(target, inputs, None, seed=seed, timing=timing, workdir=tmp_path / "sim",
                                  cache_dir=cache)
    assert_single_layer_exact(report, images, timing, cycle_tolerance)
    return report
