"""An analytical sweep of 1,000 architecture configurations on ImageNet ResNet-18, timed.

Writes a sweep spec (ImageNet ResNet-18 with random weights, the generic architecture with its
MAC array rows x cols, global buffer size, DRAM bandwidth and search objective swept: 1,024 grid
points, 1,000 drawn at random), runs `hwgen sweep` on it with the local executor on every core,
and prints the wall time next to the bound (60 s) and ZigZag's time for one point (the same
network with its own mapping search: benchmarks/analyze_vs_zigzag.py measured 74-105 s; pass
--zigzag to run it here first). Then it reruns the finished sweep, which must do no work, and
draws the Pareto front (energy vs cycles per image) with `hwgen sweep DIR --report`.

Usage: python benchmarks/sweep_analysis.py [--points 1000] [--workers 2] [--out DIR] [--zigzag]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


BOUND_S = 60.0
ZIGZAG_ONE_POINT_S = (74.0, 105.0)  # analyze_vs_zigzag.py on this machine (README)
GRID = {
    "arch": "generic",
    "mac_rows": [4, 8, 16, 32],
    "mac_cols": [4, 8, 16, 32],
    "glb_kib": [16, 32, 64, 128, 256, 512, 1024, 2048],
    "dram_bytes_per_cycle": [4, 8, 16, 32],
    "objective": ["dram", "energy"],
}


def write_spec(path: Path, model: Path, points: int) -> None:
    import yaml

    spec = {"name": f"resnet18-imagenet-{points}", "seed": 0, "inputs": [{"checkpoint": str(model)}],
            "parameters": {"grid": GRID, "sample": points}}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--points", type=int, default=1000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", type=Path, default=None, help="sweep folder (default: a temporary one)")
    ap.add_argument("--plot", type=Path, default=Path(__file__).resolve().parent / "sweep_resnet18_pareto.png")
    ap.add_argument("--zigzag", action="store_true", help="time ZigZag on one point first (analyze_vs_zigzag.py)")
    args = ap.parse_args()

    from hwgen.sweep import run_sweep, spec
    from resnet18_imagenet import export

    if args.zigzag:
        subprocess.run([sys.executable, str(Path(__file__).with_name("analyze_vs_zigzag.py"))], check=False)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = export(tmp / "resnet18_imagenet.pt2")
        spec_path = tmp / "sweep_resnet18.yaml"
        write_spec(spec_path, model, args.points)
        out = args.out or tmp / "sweep"
        s = spec.load(spec_path)
        t0 = time.perf_counter()
        first = run_sweep(s, out, workers=args.workers, progress=False)
        wall = time.perf_counter() - t0
        again = run_sweep(spec.load(spec_path), out, workers=args.workers, progress=False)
        subprocess.run([sys.executable, "-m", "hwgen", "sweep", str(out), "--report", "--plot", str(args.plot)],
                       check=True, stdout=subprocess.DEVNULL)
    print(f"ImageNet ResNet-18 (21 conv/linear layers), generic architecture, mapping search per layer; "
          f"{args.workers} local workers")
    print(f"{'points':>7} {'ok':>6} {'errors':>6} {'wall s':>8} {'ms/point':>9} {'bound s':>8} "
          f"{'ZigZag s/point':>15} {'ZigZag s x points':>18}")
    zz = f"{ZIGZAG_ONE_POINT_S[0]:.0f}-{ZIGZAG_ONE_POINT_S[1]:.0f}"
    zz_all = f"{ZIGZAG_ONE_POINT_S[0] * first['points'] / 3600:.0f}-{ZIGZAG_ONE_POINT_S[1] * first['points'] / 3600:.0f} h"
    print(f"{first['points']:>7} {first['ok']:>6} {first['error']:>6} {wall:>8.1f} {1000 * wall / first['points']:>9.1f} "
          f"{BOUND_S:>8.0f} {zz:>15} {zz_all:>18}")
    print(f"rerun of the finished sweep: ran {again['ran']} rows, skipped {again['skipped']} ({again['wall_s']:.1f} s)")
    print(f"Pareto plot: {args.plot}")
    print(f"{'within' if wall < BOUND_S else 'OVER'} the {BOUND_S:.0f} s bound (machine load: {load()})")
    return 0 if first["error"] == 0 and again["ran"] == 0 else 1


def load() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
