"""Where the row-banded layers' cycles go, and what overlapping their band input loads could win (schedule model, no RTL).

ResNet-18 CIFAR PS4_P4 W8A8 (random weights, seed 0) compiled as `benchmarks/throughput.py` does
(`--lanes MxX`, 64-bit bus, 16 KiB input buffer, `--weight-kib` weights, the compiler's folds).
Part 1, per conv layer: the schedule's cycles (ideal DRAM), MAC utilization, and its cycles outside
the passes by cause (`schedule.IDLE_CAUSES`, summing to them): the descriptor, the layer's first
tile's input load, the other tiles' input loads, the resident sets' weight loads, each group's
residue steps and table (and streamed weights), each run's start, cuts and tail.

Part 2, for each layer under `--target`: its candidate tilings (every band height up to the tallest
that fits, both loop nests, each single- and, where two bands fit, double-buffered, `2x`:
`tiling.nests`) with their cycles, utilization and DRAM bytes, whether two such bands fit the input
buffer, and the utilization if every input load but the layer's first were hidden behind the runs
(`cycles - idle["inputs"]`: what a double-buffered tiling approaches, its reads sharing the port with
the weights' and tables'). The compiler's choice is marked `*`.

    .venv/bin/python benchmarks/band_idle.py [--lanes 4x4] [--weight-kib 32] [--target 0.95]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from hwgen import engine
from hwgen.engine import schedule, tiling
from models.synthetic import quantized_zoo

NETWORK = "resnet18-cifar"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lanes", default="4x4", help="MxX: output-channel x pixel lanes")
    ap.add_argument("--weight-kib", type=int, default=32)
    ap.add_argument("--glb-kib", type=int, default=16)
    ap.add_argument("--target", type=float, default=0.95, help="utilization under which a layer's levers are listed")
    args = ap.parse_args()
    try:
        m_lanes, x_lanes = (int(v) for v in args.lanes.lower().split("x"))
    except ValueError:
        ap.error(f"--lanes must be MxX (e.g. 8x8), got {args.lanes!r}")
    b = engine.build(quantized_zoo(NETWORK, scheme="PS4_P4"),
                     engine.EngineConfig(m_lanes=m_lanes, x_lanes=x_lanes, bus_bits=64, glb_kib=args.glb_kib,
                                         weight_kib=args.weight_kib))
    p = b.params
    print(f"{NETWORK} PS4_P4 W8A8, {m_lanes}x{x_lanes} lanes, 64-bit bus, {args.glb_kib} KiB input + "
          f"{args.weight_kib} KiB weight buffers; schedule model, ideal DRAM")
    causes = schedule.IDLE_CAUSES
    print(f"{'layer':<24}{'fold':>5}{'bands':>6}{'res':>5}{'cycles':>11}{'util':>7}"
          + "".join(f"{c:>13}" for c in causes))
    for s, plan in zip(b.schedules, b.plans):
        t = s.tiling
        print(f"{s.name:<24}{plan.fold:>5}{t.bands:>6}{t.resident_groups or '-':>5}{s.cycles:>11,}"
              f"{s.utilization:>7.1%}" + "".join(f"{s.idle[c]:>13,}" for c in causes))
    total = sum(s.cycles for s in b.schedules)
    eff = sum(s.effectual_macs for s in b.schedules)
    print(f"{'network':<40}{total:>11,}{eff / (total * p.mac_count):>7.1%}"
          + "".join(f"{sum(s.idle[c] for s in b.schedules):>13,}" for c in causes))
    for s, plan in zip(b.schedules, b.plans):
        if s.utilization >= args.target:
            continue
        print(f"\n{s.name} {plan.in_shape} k{plan.kernel} s{plan.stride}: band heights and nests "
              f"(input buffer {p.input_words} words)")
        print(f"{'':2}{'band rows':>10}{'nest':>13}{'words':>7}{'2 fit':>7}{'cycles':>11}{'util':>7}"
              f"{'DRAM B':>10}{'inputs hidden':>15}{'util':>7}")
        tallest = tiling.layer_tiling(plan, dataclasses.replace(p, double_bands=False)).band_rows
        for rows in range(1, tallest + 1):
            for t in tiling.nests(plan, p, rows, 0):
                alt = schedule.layer_schedule(plan, p, tiling=t)
                words = tiling.band_words(plan, p, rows)
                hidden = alt.cycles - alt.idle["inputs"]
                nest = (f"res {t.resident_groups}" if t.resident_groups else ("str pf" if t.prefetch else "str")) \
                    + (" 2x" if t.double else "")
                print(f"{'*' if t == s.tiling else '':2}{rows:>10}{nest:>13}{words:>7}"
                      f"{'yes' if 2 * words <= p.input_words else 'no':>7}{alt.cycles:>11,}{alt.utilization:>7.1%}"
                      f"{sum(alt.bytes.values()):>10,}{hidden:>15,}"
                      f"{alt.effectual_macs / (hidden * p.mac_count):>7.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
