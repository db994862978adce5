"""Implement a generated engine: FPGA synthesis and place-and-route, or an ASIC estimate.

DIR is a folder written by `hwgen generate`. For an FPGA target, Yosys synthesizes the engine
behind a pin-light wrapper (four pins; every engine port is registered and kept live, so the wide
buses are not limited by the package's I/O and nothing is optimized away) and nextpnr places and
routes it with a fixed --seed. Written into DIR: implement.json (target, seed, `fmax_mhz`,
utilization against the device, critical paths, the endpoints that miss --freq by block and
signal; wall times only under `wall_seconds`),
implement.txt (the readable report) and implement/ (logs, nextpnr's report, the bitstream with
--bitstream). A design slower than --freq is reported as MISSED with its critical path, exit 0.
--target asic: generic Yosys synthesis to CMOS gates: kGE (NAND2 equivalents), transistors,
logic levels and SRAM bits; with --liberty F.lib also the cell area in that library.
Takes minutes (nextpnr on the 4x4 digits engine: about 4 minutes of CPU). See docs/implement.md.
"""

from __future__ import annotations

import argparse

from ..implement.targets import TARGETS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("dir", metavar="DIR", help="a folder written by hwgen generate")
    p.add_argument("--target", required=True, metavar="T",
                   help="device: " + ", ".join(f"{n} ({t.device})" for n, t in TARGETS.items()))
    p.add_argument("--freq", type=float, default=100.0, metavar="MHZ",
                   help="target clock frequency in MHz for place and route (default 100)")
    p.add_argument("--seed", type=int, default=1, metavar="S", help="nextpnr placement seed (default 1)")
    p.add_argument("--bitstream", action="store_true",
                   help="also pack the bitstream (ecppack / icepack) into DIR/implement/")
    p.add_argument("--liberty", metavar="F.lib", help="--target asic: also map to this standard-cell library")
    p.add_argument("--json", action="store_true", help="print implement.json instead of the report")


def run(args) -> int:
    import json

    from ..implement import REPORT_FILE, implement

    result = implement(args.dir, args.target, freq_mhz=args.freq, seed=args.seed, bitstream=args.bitstream,
                       liberty=args.liberty)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        from pathlib import Path

        print((Path(args.dir) / REPORT_FILE).read_text(encoding="utf-8"), end="")
    return 0
