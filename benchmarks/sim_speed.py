"""How fast `hwgen simulate` verifies: the reference mode (cocotb DRAM model) and the fast mode (the
same DRAM model as HDL inside Verilator) side by side.

1. One PS4_P4 layer (64 -> 64 channels, 3x3, 32x32, W8A8, random weights) on a 4x4-lane engine with
   a 64-bit bus: generate, build each mode's Verilog with Verilator into an empty cache (so the build
   is timed, against the 60 s bound for a layer), run one image under the hostile DRAM in both modes
   with the same seed, and check both bit-exact against hwgen.reference. Prints build and
   simulation seconds and engine cycles per second of each mode, and whether the two modes agree
   on cycles and DRAM bytes (they model the same memory with the same stall draws).
2. With `--network resnet18-cifar`: a whole ResNet-18 CIFAR image (PS4_P4 W8A8, 16 KiB input and
   32 KiB weight buffers, every conv layer on the engine) in the fast mode, with `--timing`; add
   `--network-reference` to run the reference mode on the same image beside it (minutes).

    .venv/bin/python benchmarks/sim_speed.py [--size 32] [--channels 64] [--timing hostile|ideal]
        [--network resnet18-cifar [--network-reference]]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from hwgen import sim_target, simulate
from hwgen.layercases import conv_graph, random_input

BOUND_SECONDS = 60.0  # one layer, build included
TARGET_CYCLES_PER_S = 1_000_000  # fast mode (issue 13)
TARGET_IMAGE_S = 30.0  # a ResNet-18 CIFAR image in the fast mode
MODES = ("reference", "fast")


def layer_table(args, tmp: Path) -> bool:
    graph = conv_graph(0, cin=args.channels, cout=args.channels, h=args.size, w=args.size, scheme="PS4_P4")
    x = random_input(graph, 0)[None]
    t0 = time.perf_counter()
    target = sim_target.from_graph(graph, tmp / "gen")
    gen_s = time.perf_counter() - t0
    rows, reports = [], {}
    for mode in MODES:
        t1 = time.perf_counter()
        simulate.build(target, mode, cache_dir=tmp / "cache")
        t2 = time.perf_counter()
        report = simulate.run_network(target, x, None, timing=args.timing, seed=args.seed, workdir=tmp / f"sim-{mode}",
                                      cache_dir=tmp / "cache", mode=mode)
        t3 = time.perf_counter()
        lr = report.layers[0]
        reports[mode] = report
        total = gen_s + (t3 - t1)
        rows.append((mode, f"{t2 - t1:.1f}", f"{t3 - t2:.1f}", f"{total:.1f}", "met" if total < BOUND_SECONDS else "MISSED",
                     "yes" if report.passed else "NO", f"{lr.cycles:,}", f"{lr.dram_bytes_measured:,}",
                     f"{lr.cycles / (t3 - t2):,.0f}", f"{report.sim_cpu_seconds:.1f}",
                     f"{lr.cycles / max(report.sim_cpu_seconds, 1e-9):,.0f}"))
    print(f"layer: PS4_P4 {args.channels}->{args.channels} 3x3 at {args.size}x{args.size}, engine 4x4 lanes, "
          f"64-bit bus, {args.timing} DRAM (seed {args.seed}), Verilator; generate (Amaranth) {gen_s:.1f} s")
    head = ("mode", "build s", "simulate s", "total s", f"< {BOUND_SECONDS:.0f} s", "bit-exact", "engine cycles",
            "DRAM B", "engine cycles/s", "sim CPU s", "cycles/CPU s")
    widths = [max(len(r[i]) for r in rows + [head]) for i in range(len(head))]
    for r in [head] + rows:
        print("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))))
    ref, fast = (reports[m].layers[0] for m in MODES)
    same = (ref.cycles, ref.traffic) == (fast.cycles, fast.traffic)
    print(f"fast vs reference: cycles and DRAM traffic per region {'equal' if same else 'DIFFER'}; "
          f"speed-up of the simulate step {float(rows[0][2]) / max(float(rows[1][2]), 1e-9):.1f}x")
    return same and all(r.passed for r in reports.values())


def network(args, tmp: Path) -> bool:
    from hwgen.generate import generate
    from models.synthetic import quantized_zoo

    graph = quantized_zoo(args.network, scheme="PS4_P4")
    out = tmp / "net"
    generate(graph, out, glb_kib=16, weight_kib=32)
    ok = True
    modes = MODES if args.network_reference else ("fast",)
    print(f"{args.network} PS4_P4 W8A8, 4x4 lanes, 64-bit bus, 16 KiB input + 32 KiB weight buffers, "
          f"1 image, {args.timing} DRAM (seed {args.seed}), Verilator")
    cycles = {}
    for mode in modes:
        target = sim_target.load_generated(out)
        t0 = time.perf_counter()
        simulate.build(target, mode, cache_dir=tmp / "cache")
        t1 = time.perf_counter()
        x, labels = simulate.sample_inputs(target.graph, 1, args.seed)
        report = simulate.run_network(target, x, labels, timing=args.timing, seed=args.seed,
                                      workdir=tmp / f"net-{mode}", cache_dir=tmp / "cache", mode=mode)
        t2 = time.perf_counter()
        t = report.totals()
        cycles[mode] = [lr.cycles for lr in report.layers]
        verdict = ""
        if mode == "fast":
            verdict = (f"; targets >= {TARGET_CYCLES_PER_S:,} cycles/s, < {TARGET_IMAGE_S:.0f} s per image: "
                       f"{'met' if t['cycles'] / (t2 - t1) >= TARGET_CYCLES_PER_S and t2 - t1 < TARGET_IMAGE_S else 'MISSED'}")
        print(f"{mode:<10} build {t1 - t0:6.1f} s, image {t2 - t1:7.1f} s (simulator CPU {report.sim_cpu_seconds:.1f} s), "
              f"{len(report.layers)} engine layers, {t['cycles']:,} engine cycles ({t['cycles'] / (t2 - t1):,.0f}/s; "
              f"{t['cycles'] / max(report.sim_cpu_seconds, 1e-9):,.0f} per CPU second), DRAM {t['dram_bytes_measured']:,} B "
              f"(predicted {t['dram_bytes_predicted']:,}), {t['mismatches']} mismatches, logits "
              f"{'equal' if report.logits_match else 'DIFFER'}{verdict}")
        ok = ok and report.passed
    if len(cycles) == 2:
        print(f"fast vs reference: cycles per layer {'equal' if cycles['fast'] == cycles['reference'] else 'DIFFER'}")
        ok = ok and cycles["fast"] == cycles["reference"]
    return ok


def load_average() -> str:
    try:
        return Path("/proc/loadavg").read_text().split()[0]
    except OSError:
        return "?"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--timing", choices=("hostile", "ideal"), default="hostile")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--network", choices=("resnet18-cifar",), help="also a whole image of this network, fast mode")
    ap.add_argument("--network-reference", action="store_true", help="and the same image in the reference mode")
    args = ap.parse_args()
    print(f"load average at the start: {load_average()} ({os.cpu_count()} cores; wall times stretch with it, "
          "CPU seconds less so)")
    with tempfile.TemporaryDirectory() as tmp:
        ok = layer_table(args, Path(tmp))
        if args.network:
            ok = network(args, Path(tmp)) and ok
    print(f"load average at the end: {load_average()}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
