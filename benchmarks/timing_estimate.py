"""Pre-placement timing estimate of the shipped checkpoint's engines (hwgen.implement.estimate).

Generates the digits engine (models/digits_ps4p4_w8a8.hwq) at each `--engines` lane count (64-bit
bus), synthesizes it for ECP5 as `hwgen implement` does (the same netlist, reused from `--keep DIR`
when its sources are unchanged), and prints the estimated arrival at every register input at the
`--freq` target: how many miss the period, their total negative slack, the worst arrival, and the
registers the most missing paths start from. Seconds after synthesis, and no placement noise: for
ranking a register cut before spending the 5-20 minutes per seed of `implement_fmax.py` on it.
`--routed DIR...` instead reads folders `hwgen implement` has placed and routed (DIR/implement/
netlist.json and nextpnr-report.json) and prints, beside the estimate, nextpnr's failing endpoints
and the correlation r of the estimated with the routed arrival times at the same endpoints.

    .venv/bin/python benchmarks/timing_estimate.py [--engines 4x4[,8x8]] [--freq 150] [--keep DIR]
    .venv/bin/python benchmarks/timing_estimate.py --routed DIR [DIR ...] [--freq 150]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from hwgen.checkpoint import load
from hwgen.generate import generate
from hwgen.implement import WORK_DIR, estimate, fpga, synthesize

ROOT = Path(__file__).resolve().parent.parent
CHECKPOINT = ROOT / "models" / "digits_ps4p4_w8a8.hwq"
SOURCES_SHOWN = 15


def netlist_module(folder: Path) -> dict:
    netlist = json.loads((folder / WORK_DIR / fpga.NETLIST).read_text(encoding="utf-8"))
    return netlist["modules"][fpga.WRAPPER_MODULE]


def show(name: str, module: dict, freq: float) -> None:
    e = estimate.estimate(module, freq, block=fpga.block, signal=fpga.signal, top=SOURCES_SHOWN)
    print(f"{name}: estimated at {freq:g} MHz ({e['period_ns']:.2f} ns): {e['failing']} of {e['endpoints']} "
          f"endpoints miss, total negative slack {e['tns_ns']:.1f} ns, worst arrival {e['worst_ns']:.2f} ns")
    w = e["worst_path"]
    if w:
        print("  worst path: " + " -> ".join(f"{fpga.block(c['cell'])}.{fpga.signal(c['cell']) or '$'} "
                                            f"({c['arrival_ns']:.2f})" for c in w["cells"]) + f" -> {w['end']}")
    print(f"{'failing':>9}{'worst ns':>10}  the register the paths start from")
    for s in e["sources"]:
        print(f"{s['failing']:>9}{s['worst_ns']:>10.2f}  {s['block']}{'.' + s['signal'] if s['signal'] else ''}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--engines", default="4x4", help="MxX lane counts, comma separated")
    ap.add_argument("--freq", type=float, default=150.0, help="target MHz (issue 10's goal)")
    ap.add_argument("--keep", type=Path, help="generate and synthesize here (reused when unchanged)")
    ap.add_argument("--routed", type=Path, nargs="+", metavar="DIR",
                    help="folders hwgen implement placed and routed: the estimate against nextpnr's report")
    args = ap.parse_args()
    if args.routed:
        for folder in args.routed:
            module = netlist_module(folder)
            report = json.loads((folder / WORK_DIR / "nextpnr-report.json").read_text(encoding="utf-8"))
            routed = fpga.endpoint_slack(report, args.freq)
            c = estimate.compare(module, report)
            show(str(folder), module, args.freq)
            print(f"  nextpnr (routed): {routed['failing']} of {routed['endpoints']} miss, total negative slack "
                  f"{routed['tns_ns']:.1f} ns; estimate vs routed arrival at {c['matched']} endpoints: r = {c['r']} "
                  f"(means {c['mean_estimate_ns']} / {c['mean_routed_ns']} ns)\n")
        return
    graph = load(CHECKPOINT)
    with tempfile.TemporaryDirectory(prefix="hwgen-estimate-") as scratch:
        for spec in args.engines.split(","):
            m, x = (int(v) for v in spec.split("x"))
            out = Path(args.keep or scratch) / spec
            generate(graph, out, m_lanes=m, x_lanes=x, bus_bits=64)
            synthesize(out, "ecp5-85k")
            show(f"digits engine {spec}", netlist_module(out), args.freq)


if __name__ == "__main__":
    main()
