"""What the pipelined datapath costs in cycles: `--pipeline 0` (single-cycle) against the default depth.

1. The shipped digits checkpoint (models/digits_ps4p4_w8a8.hwq) on the 4x4-MAC engine, 64-bit
   bus, generated twice and simulated in Verilator (cocotb) on one image with an ideal DRAM:
   measured cycles per layer and for the network, beside the schedule's prediction, outputs
   checked bit-exact against the reference.
2. The same digits engine and ResNet-18 CIFAR, PS4_P4 on its 3x3 convolutions, W8A8 (seeded
   random weights: shapes and sparsity are real), 4x4 MACs, 64-bit bus: the schedule's cycles per
   conv layer at both depths (the schedule's latency term is tested equal to the RTL's at every
   depth, tests/test_gateware_engine.py).
The target is at most 2 % more cycles; the script prints the largest growth and exits 1 on a
mismatching output.

    .venv/bin/python benchmarks/pipeline_cycles.py [--no-rtl]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from hwgen import checkpoint, engine, sim_target, simulate
from hwgen.engine.params import DEFAULT_PIPELINE
from models.synthetic import quantized_zoo

ROOT = Path(__file__).resolve().parent.parent
CKPT = ROOT / "models" / "digits_ps4p4_w8a8.hwq"
TARGET = 0.02


def table(title: str, rows: list[tuple[str, int, int, str]]) -> float:
    """Print rows of (layer, cycles single-cycle, cycles pipelined, note); returns the largest growth."""
    print(title)
    print(f"{'layer':<24}{'pipeline 0':>11}{f'pipeline {DEFAULT_PIPELINE}':>12}{'growth':>9}  note")
    worst = 0.0
    for name, base, piped, note in rows:
        growth = piped / base - 1
        worst = max(worst, growth)
        print(f"{name:<24}{base:>11,}{piped:>12,}{growth:>+9.2%}  {note}")
    base, piped = sum(r[1] for r in rows), sum(r[2] for r in rows)
    print(f"{'network':<24}{base:>11,}{piped:>12,}{piped / base - 1:>+9.2%}")
    return worst


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--no-rtl", action="store_true", help="skip the Verilator runs (part 1)")
    args = ap.parse_args()
    ok = True
    print(f"pipeline {DEFAULT_PIPELINE} (the default): latency "
          f"{engine.EngineParams(pipeline=DEFAULT_PIPELINE).pipeline_latency} cycles per lane-group run; target growth "
          f"<= {TARGET:.0%}\n")
    if not args.no_rtl:
        digits = checkpoint.load(CKPT)
        inputs, labels = simulate.sample_inputs(digits, 1, 0)
        reports = {}
        with tempfile.TemporaryDirectory() as tmp:
            for depth in (0, DEFAULT_PIPELINE):
                out = Path(tmp) / f"p{depth}"
                target = sim_target.from_graph(digits, out, pipeline=depth)
                reports[depth] = simulate.run_network(target, inputs, labels, timing="ideal", workdir=out / "sim",
                                                      cache_dir=Path(tmp) / "cache")
                ok &= reports[depth].passed
        rows = [(a.name, a.cycles, b.cycles, f"predicted {a.cycles_predicted:,} / {b.cycles_predicted:,}, "
                 f"{'bit-exact' if a.passed and b.passed else 'MISMATCH'}")
                for a, b in zip(reports[0].layers, reports[DEFAULT_PIPELINE].layers)]
        worst = table(f"1. {digits.name}, 4x4 MACs, 64-bit bus, Verilator, ideal DRAM, measured cycles", rows)
        print(f"largest layer growth {worst:+.2%}\n")
    for name, graph in (("digits", checkpoint.load(CKPT)),
                        ("resnet18-cifar PS4_P4 W8A8", quantized_zoo("resnet18-cifar", scheme="PS4_P4"))):
        builds = {d: engine.build(graph, engine.EngineConfig(pipeline=d)) for d in (0, DEFAULT_PIPELINE)}
        rows = [(a.name, a.cycles, b.cycles, f"util {a.utilization:.1%} -> {b.utilization:.1%}")
                for a, b in zip(builds[0].schedules, builds[DEFAULT_PIPELINE].schedules)]
        worst = table(f"2. {name}, 4x4 MACs, 64-bit bus, schedule cycles", rows)
        print(f"largest layer growth {worst:+.2%} (target <= {TARGET:.0%}: {'met' if worst <= TARGET else 'MISSED'})\n")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
