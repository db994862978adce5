"""Randomized verification campaign: random conv chains on random engines, simulated bit for bit.

`hwgen verify --random N --out DIR` runs cases SEED .. SEED+N-1. Each case draws layer shapes,
strides, kernel sizes (3x3, 1x1), periodic sparsity or dense, weight and activation bits, engine
lanes and bus width and input data from its seed, generates the engine, simulates it in
cocotb/Verilator under DRAM stalls drawn from the same seed, and compares every output element
with the integer reference and the DRAM bytes with the schedule model. Results go to
DIR/results.parquet (reruns skip passed cases); a failure is printed with its seed, its
configuration and a one-line command that replays it, and keeps its files in DIR/cases/SEED.
Exit status 1 if any case fails. --mode fast simulates with the DRAM model as HDL inside Verilator
(`hwgen simulate --mode fast`). --chains-per-engine K makes each case K random chains sharing one
engine (its bits, lanes, bus, input shape and stall seed), so one Verilator build and one
simulation verify K chains. --interface axi generates the AXI top and runs each case on
cocotbext-axi, layer by layer and as a whole chain from one start (protocol monitor, counters).
See docs/sweep.md.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--random", type=int, required=True, metavar="N", help="number of random cases")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="first case's seed (cases S .. S+N-1; default 0)")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="campaign folder (created; reruns resume)")
    p.add_argument("--timing", choices=("hostile", "ideal"), default="hostile",
                   help="DRAM behaviour: random stalls and latency from each case's seed (default), or always ready")
    p.add_argument("--mode", choices=("reference", "fast"), default="reference",
                   help="simulation mode (hwgen simulate --mode): the cocotb DRAM model (default) or fast, the same "
                        "model as HDL inside Verilator")
    p.add_argument("--interface", choices=("stream", "axi"), default="stream",
                   help="the engine's top (hwgen generate --interface): the stream bus (default), or axi: "
                        "cocotbext-axi with random pauses on every channel, the driver and the protocol monitor, "
                        "each case run layer by layer and as a whole chain from one start (reference mode only)")
    p.add_argument("--chains-per-engine", type=int, default=1, metavar="K",
                   help="random chains per case, sharing its engine (bits, lanes, bus), input shape and stall seed: "
                        "one build and one simulation verify K chains (default 1)")
    p.add_argument("--executor", choices=("local", "ray"), default="local", help="local process pool (default) or Ray")
    p.add_argument("--workers", type=int, default=None, metavar="N", help="parallel cases (default: every core)")
    p.add_argument("--address", default=None, metavar="ADDR", help="join an existing Ray cluster")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from ..sweep.verify import run_campaign

    s = run_campaign(args.random, args.out, seed=args.seed, timing=args.timing, executor=args.executor,
                     workers=args.workers, address=args.address, progress=not args.no_progress,
                     mode=args.mode, chains=args.chains_per_engine, interface=args.interface)
    failures = []
    for r in s["failed"]:
        doc = json.loads(r["result"]) if r["result"] else {}
        failures.append({"seed": r["seed"], "status": r["status"], "error": r["error"],
                         "description": doc.get("description"), "replay": doc.get("replay")})
    if args.json:
        print(json.dumps({k: v for k, v in s.items() if k != "failed"} | {"failures": failures}, indent=1))
    else:
        rate = f"{s['cases_per_hour']:,.0f} cases/hour" if s["cases_per_hour"] else "nothing to run"
        if s["cases_per_hour"] and s["chains"] > 1:
            rate += f", {s['chains']} chains each: {s['chains_per_hour']:,.0f} chains/hour"
        print(f"verify: {s['cases']} random cases, {s['passed']} bit-exact, {len(failures)} failed; ran {s['ran']} "
              f"in {s['wall_s']:.1f} s on {s['executor']} ({rate}), {s['skipped']} already passed")
        for f in failures:
            print(f"FAIL seed {f['seed']} ({f['status']}): {f['error']}")
            if f["description"]:
                print(f"  case: {f['description']}")
            print(f"  replay: {f['replay']}")
    return 1 if failures else 0
