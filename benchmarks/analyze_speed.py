"""How long `hwgen analyze` takes on ImageNet ResNet-18 (21 conv/linear layers, mapping search on).

Prints the wall time of loading the .pt2 and analyzing it (sparsity detection, formats, mapping
search per layer, counts, energy) next to the issue's bound (5 s on 2 cores) and ZigZag's figure
for its per-layer mapping search of the same network (about 74 s; benchmarks/analyze_vs_zigzag.py
measures it here). Usage: python benchmarks/analyze_speed.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path


BOUND_S = 5.0
ZIGZAG_ISSUE_S = 74.0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()

    import torch

    from hwgen.analysis import analyze
    from hwgen.ingest import load_model
    from resnet18_imagenet import export

    torch.set_num_threads(2)
    with tempfile.TemporaryDirectory() as tmp:
        rows = []
        for label, scheme in (("dense", None), ("PSD1_P16", "PSD1_P16")):
            path = export(Path(tmp) / f"r18_{label}.pt2", scheme)
            for objective in ("dram", "energy"):
                times = []
                for _ in range(args.repeat):
                    t0 = time.perf_counter()
                    result = analyze(load_model(path), objective=objective)
                    times.append(time.perf_counter() - t0)
                rows.append((label, objective, len(result.layers), statistics.median(times),
                             result.totals["dram_bytes"]["total"]))
    print("ImageNet ResNet-18 (224x224), arch generic (256 KiB buffer), load + analyze incl. mapping search")
    print(f"{'weights':<10} {'objective':<9} {'layers':>6} {'hwgen s':>8} {'bound s':>8} {'ZigZag s (issue)':>17} "
          f"{'speed-up':>9} {'DRAM MB':>8}")
    for label, objective, n, t, dram in rows:
        print(f"{label:<10} {objective:<9} {n:>6} {t:>8.2f} {BOUND_S:>8.1f} {ZIGZAG_ISSUE_S:>17.0f} "
              f"{ZIGZAG_ISSUE_S / t:>8.0f}x {dram / 1e6:>8.2f}")
    worst = max(r[3] for r in rows)
    print(f"slowest run {worst:.2f} s: {'within' if worst < BOUND_S else 'OVER'} the {BOUND_S:.0f} s bound")
    return 0 if worst < BOUND_S else 1


if __name__ == "__main__":
    sys.exit(main())
