"""RTL sweep of 8 digits-engine configurations on Ray: 2 workers vs 1, speed-up measured.

The sweep: the shipped digits checkpoint on engines of m_lanes 1, 2, 4, 8 x x_lanes 2, 4; per
point `analyze`, `generate` and `simulate` (1 image, ideal DRAM, cocotb + Verilator, bit-exact
against the reference). The Verilator builds are made once first (a warm-up sweep into a shared
build cache, as a sweep's points share them), then the same sweep runs from an empty folder on
Ray with 1 worker and with 2 workers (`ray.init(num_cpus=N)`), timed from the start of the sweep
to its last row, Ray's own start-up excluded. The machine is shared: the load average is printed
with the figures, since other processes take the cores the second worker should have.

Usage: python benchmarks/sweep_rtl.py [--repeat 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET = 1.7
SPEC = """
name: digits-rtl-8
seed: 0
inputs:
  - checkpoint: {ckpt}
parameters:
  grid:
    m_lanes: [1, 2, 4, 8]
    x_lanes: [2, 4]
stages:
  generate: true
  simulate: {{images: 1, timing: ideal}}
"""


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def timed(s, out: Path, workers: int, cache: Path) -> tuple[float, dict]:
    import ray

    from hwgen.sweep import run_sweep, store

    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        t0 = time.perf_counter()
        summary = run_sweep(s, out, executor="ray", workers=workers, cache_dir=cache, progress=False)
        wall = time.perf_counter() - t0
        # Seconds the stages took, summed: over the wall time, how many ran at once on average. With
        # 2 workers, ~2 with a low speed-up means the stages ran side by side but each slower (the
        # cores were busy with other work); ~1 would mean they did not run side by side.
        summary["busy_s"] = sum(r["wall_s"] for r in store.load(out))
        return wall, summary
    finally:
        ray.shutdown()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=1)
    args = ap.parse_args()

    from hwgen.sweep import run_sweep, spec

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        path = tmp / "rtl.yaml"
        path.write_text(SPEC.format(ckpt=ROOT / "models" / "digits_ps4p4_w8a8.hwq"))
        s = spec.load(path)
        cache = tmp / "sim-cache"
        t0 = time.perf_counter()
        warm = run_sweep(s, tmp / "warm", workers=2, cache_dir=cache, progress=False)
        warm_s = time.perf_counter() - t0
        times = {1: [], 2: []}
        results = {}
        for r in range(args.repeat):
            for workers in (1, 2):
                wall, summary = timed(s, tmp / f"w{workers}-{r}", workers, cache)
                times[workers].append(wall)
                results[workers] = summary
        loads = load()
    t1, t2 = statistics.median(times[1]), statistics.median(times[2])
    print("8 digits engines (m_lanes 1/2/4/8 x x_lanes 2/4): analyze + generate + simulate 1 image "
          "(Verilator, bit-exact), Ray, Verilator builds cached")
    print(f"warm-up (8 builds, 2 local workers): {warm_s:.0f} s, {warm['ok']} rows ok, {warm['error']} errors, "
          f"{warm['mismatch']} mismatches")
    print(f"{'workers':>8} {'wall s':>8} {'rows ok':>8} {'stages at once':>15} {'speed-up':>9} {'target':>7}")
    for w, t, target in ((1, t1, ""), (2, t2, f"{TARGET:.1f}")):
        at_once = results[w]["busy_s"] / t
        print(f"{w:>8} {t:>8.1f} {results[w]['ok']:>8} {at_once:>15.2f} {t1 / t:>9.2f} {target:>7}")
    print(f"load average at the end (1, 5, 15 min): {loads} on {__import__('os').cpu_count()} cores"
          " (a shared machine: a depressed speed-up means other processes held the second core)")
    ok = all(r["error"] == 0 and r["mismatch"] == 0 for r in results.values())
    return 0 if ok and warm["error"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
