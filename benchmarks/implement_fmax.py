"""Fmax and utilization of the shipped checkpoint's engines on ECP5-85k (nextpnr), and the ASIC estimate.

Generates the digits engine (models/digits_ps4p4_w8a8.hwq) at 4x4 and 8x8 MACs (64-bit bus), runs
`hwgen implement --target ecp5-85k` (LFE5U-85F speed 6, 150 MHz target) on each, for each placement
seed, and prints Fmax against the 38.7 MHz baseline of the first engine before the pipeline (the
one-cycle requantization in the write-back), LUT / FF / DSP / BRAM use, the critical path and the
endpoints that miss the target (how many, and their total negative slack: what is left to cut when a
change moves the worst path but not Fmax); with more than one seed also the min / median / max Fmax of each engine (one seed's Fmax is one
placement: the spread shows whether a change beats placement noise). Then the ASIC estimate (kGE,
transistors, logic levels, SRAM bits) of the 4x4 engine. Each engine is synthesized once; each P&R
takes minutes, and `--jobs N` runs N of them at once (each in its own copy of the synthesized folder). `--pipeline N`
generates with that many register cuts (default: the generator's; 0 is the single-cycle datapath).
`--dsp ecp5` builds the multipliers as `hwgen generate --dsp ecp5` does (MULT18X18D cells with their
own registers; ECP5 targets only; measured below main's default `fabric` on three seeds, docs/implement.md,
"2026-12-02 (dspreg)"); the ASIC estimate is always of the `fabric` engine (it has no DSP cells).
`--keep DIR` leaves each run's folder (`DIR/4x4-seed1/implement.json`, `implement.txt`, the Yosys and
nextpnr logs) for reading the paths behind the worst one; without it they go to a temporary folder.

    .venv/bin/python benchmarks/implement_fmax.py [--engines 4x4,8x8] [--pipeline N] [--freq 150]
                                                  [--seeds 1[,2,3]] [--jobs 1] [--no-asic] [--keep DIR]
                                                  [--dsp fabric|ecp5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from hwgen.checkpoint import load
from hwgen.engine.params import DEFAULT_PIPELINE, DSPS
from hwgen.generate import generate
from hwgen.implement import implement, synthesize

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "models" / "digits_ps4p4_w8a8.hwq"
BASELINE_MHZ = 38.7  # the 4x4 engine before issue 10 (docs/implement.md): --pipeline 0


def place(out: Path, target: str, freq: float, seed: int) -> dict:
    return implement(out, target, freq_mhz=freq, seed=seed)


def synthesis_seconds(out: Path, target: str) -> float:
    t0 = time.monotonic()
    synthesize(out, target)
    return time.monotonic() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="4x4,8x8", help="MxX lane counts, comma separated")
    ap.add_argument("--pipeline", type=int, default=DEFAULT_PIPELINE, help="register cuts per long path")
    ap.add_argument("--freq", type=float, default=150.0, help="target MHz (the issue's goal)")
    ap.add_argument("--seeds", default="1", help="nextpnr placement seeds, comma separated")
    ap.add_argument("--jobs", type=int, default=1, help="place-and-route runs at once")
    ap.add_argument("--target", default="ecp5-85k")
    ap.add_argument("--no-asic", action="store_true", help="skip the ASIC estimate")
    ap.add_argument("--keep", type=Path, help="write the runs' folders here (not in a temporary folder)")
    ap.add_argument("--dsp", choices=DSPS, default="fabric", help="the multipliers (hwgen generate --dsp)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    graph = load(CHECKPOINT)
    specs = args.engines.split(",")
    asic = None
    with tempfile.TemporaryDirectory(prefix="hwgen-bench-") as scratch, ProcessPoolExecutor(args.jobs) as pool:
        tmp = args.keep or scratch
        runs, synthesizing = {}, {}
        for spec in specs:
            m, x = (int(v) for v in spec.split("x"))
            out = Path(tmp) / spec
            generate(graph, out, m_lanes=m, x_lanes=x, bus_bits=64, pipeline=args.pipeline, dsp=args.dsp)
            synthesizing[spec] = pool.submit(synthesis_seconds, out, args.target)
        synthesis_s = {}
        for spec in specs:  # each engine's seeds start as soon as its own synthesis is done
            synthesis_s[spec] = synthesizing[spec].result()
            out = Path(tmp) / spec
            for seed in seeds:
                copy = Path(tmp) / f"{spec}-seed{seed}"
                shutil.copytree(out, copy, dirs_exist_ok=True)
                runs[spec, seed] = pool.submit(place, copy, args.target, args.freq, seed)
        if "4x4" in specs and not args.no_asic:
            out = Path(tmp) / "4x4"
            if args.dsp != "fabric":  # the estimate has no DSP cells: the fabric engine
                out = Path(tmp) / "4x4-asic"
                generate(graph, out, m_lanes=4, x_lanes=4, bus_bits=64, pipeline=args.pipeline)
            asic = implement(out, "asic")
        results = {key: f.result() for key, f in runs.items()}
    print(f"digits engine (models/digits_ps4p4_w8a8.hwq), pipeline {args.pipeline}, dsp {args.dsp}, {args.target}, "
          f"target {args.freq:g} MHz; baseline 4x4 (single-cycle datapath): {BASELINE_MHZ} MHz")
    print(f"{'engine':<8}{'seed':>5}{'Fmax MHz':>10}{'vs base':>9}{'LUT':>8}{'FF':>8}{'DSP':>6}{'BRAM':>6}  critical path")
    for (spec, seed), r in results.items():
        res = r["resources"]
        path = r["critical_paths"][0]
        via = " -> ".join(dict.fromkeys(t["block"] for t in path["through"]))
        print(f"{spec:<8}{seed:>5}{r['fmax_mhz']:>10.2f}{r['fmax_mhz'] / BASELINE_MHZ:>8.2f}x{res['LUT']['used']:>8}"
              f"{res['FF']['used']:>8}{res['DSP']['used']:>6}{res['BRAM']['used']:>6}  "
              f"{path['delay_ns']:.2f} ns (routing {path['routing_ns']:.2f}): {via}")
        print(f"{'':<13}from {path['start']}\n{'':<13}to   {path['end']}")
        ends = r["endpoints"]
        print(f"{'':<13}failing endpoints at {args.freq:g} MHz: {ends['failing']} of {ends['endpoints']}, "
              f"total negative slack {ends['tns_ns']:.1f} ns")
        print(f"{'':<13}P&R wall time {r['wall_seconds']['place_and_route']:.0f} s, "
              f"synthesis (once for the engine's seeds) {synthesis_s[spec]:.0f} s")
    if len(seeds) > 1:
        for spec in specs:
            fmax = sorted(results[spec, s]["fmax_mhz"] for s in seeds)
            print(f"{spec}: Fmax over seeds {args.seeds}: min {fmax[0]:.2f}, median {statistics.median(fmax):.2f}, "
                  f"max {fmax[-1]:.2f} MHz")
    if asic:
        print(f"ASIC estimate, 4x4 engine: {asic['kge']:.1f} kGE, {asic['transistors']} transistors, "
              f"{asic['flip_flops']} flip-flops, {asic['logic_levels']} logic levels, "
              f"{asic['memory_bits']} SRAM bits")


if __name__ == "__main__":
    main()
