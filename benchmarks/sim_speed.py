"""How fast `hwgen simulate` verifies a layer: Verilator build plus cocotb simulation, against a 60 s bound.

Generates the engine for one PS4_P4 layer (64 -> 64 channels, 3x3, 32x32, W8A8, random weights),
builds its Verilog with Verilator into an empty cache (so the build is timed), runs one input image
through it under the hostile DRAM model and checks the output bit-exact against hwgen.reference.
Prints build and simulation seconds beside the 60 s target, and engine cycles per second of
simulation (the cocotb DRAM model runs in Python every cycle, so it sets the pace).

    .venv/bin/python benchmarks/sim_speed.py [--size 32] [--channels 64] [--timing hostile|ideal]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

from hwgen.layercases import conv_graph, random_input
from hwgen import sim_target, simrunner, simulate

BOUND_SECONDS = 60.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--timing", choices=("hostile", "ideal"), default="hostile")
    args = ap.parse_args()
    graph = conv_graph(0, cin=args.channels, cout=args.channels, h=args.size, w=args.size, scheme="PS4_P4")
    x = random_input(graph, 0)[None]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        target = sim_target.from_graph(graph, tmp / "gen")
        t1 = time.perf_counter()
        simrunner.build(target.sources, target.toplevel, cache_dir=tmp / "cache")
        t2 = time.perf_counter()
        report = simulate.run_network(target, x, None, timing=args.timing, workdir=tmp / "sim", cache_dir=tmp / "cache")
        t3 = time.perf_counter()
    lr = report.layers[0]
    total = t3 - t0
    print(f"layer: PS4_P4 {args.channels}->{args.channels} 3x3 at {args.size}x{args.size}, engine 4x4 lanes, "
          f"64-bit bus, {args.timing} DRAM, Verilator")
    print(f"{'step':<28}{'seconds':>10}")
    print(f"{'generate (Amaranth)':<28}{t1 - t0:>10.1f}")
    print(f"{'Verilator build':<28}{t2 - t1:>10.1f}")
    print(f"{'simulate + compare':<28}{t3 - t2:>10.1f}")
    print(f"{'total':<28}{total:>10.1f}   bound {BOUND_SECONDS:.0f} s: {'met' if total < BOUND_SECONDS else 'MISSED'}")
    print(f"bit-exact: {'yes' if report.passed else 'NO'} ({lr.mismatches} mismatches)")
    print(f"engine cycles: {lr.cycles:,}; simulated cycles (with reset and host work): {report.cycles_simulated:,}")
    print(f"simulation speed: {report.cycles_simulated / (t3 - t2):,.0f} cycles/s "
          f"({lr.cycles / (t3 - t2):,.0f} engine cycles per second of the simulate step)")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
