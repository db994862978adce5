"""The cost of the AXI top over the engine's private stream bus: cycles and area, side by side.

Generates the shipped digits engine twice with the same parameters, `--interface stream` and
`--interface axi`, runs every layer of one digits image in Verilator with an ideal memory (the
stream DRAM model always ready; AxiRam without pauses) and prints the cycles per layer, then
synthesizes both with Yosys (the stream engine module; the AXI top with the engine, adapters,
registers and counters) and prints LUT / FF / DSP / BRAM and the delta. Aim: cycles within 2 %.

    .venv/bin/python benchmarks/axi_cost.py [--target xilinx|ice40|ecp5] [--no-synth]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from hwgen import checkpoint, simulate
from hwgen.gateware.synth import TARGETS
from hwgen.generate import generate
from hwgen.sim_target import load_generated

ROOT = Path(__file__).resolve().parent.parent
CKPT = ROOT / "models" / "digits_ps4p4_w8a8.hwq"
INTERFACES = ("stream", "axi")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target", choices=tuple(TARGETS), default="xilinx")
    ap.add_argument("--no-synth", action="store_true", help="cycles only")
    args = ap.parse_args()
    graph = checkpoint.load(CKPT)
    cycles, resources = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for kind in INTERFACES:
            out = Path(tmp) / kind
            manifest = generate(graph, out, interface=kind, synth=None if args.no_synth else args.target)
            resources[kind] = manifest.get("synth", {}).get("resources")
            target = load_generated(out)
            inputs, labels = simulate.sample_inputs(graph, 1, 0)
            report = simulate.run_network(target, inputs, labels, timing="ideal", workdir=out / "sim")
            if not report.passed:
                raise SystemExit(f"{kind}: the simulation did not pass bit-exact with the predicted bytes")
            cycles[kind] = {lr.name: lr.cycles for lr in report.layers}
    print("digits engine (4x4 MACs, 64-bit bus), one image, ideal memory, Verilator; bit-exact and bytes = "
          "prediction on both")
    print(f"{'layer':<8}{'stream':>10}{'axi':>10}{'delta':>9}")
    for name in cycles["stream"]:
        s, a = cycles["stream"][name], cycles["axi"][name]
        print(f"{name:<8}{s:>10,}{a:>10,}{(a - s) / s:>+9.2%}")
    s, a = sum(cycles["stream"].values()), sum(cycles["axi"].values())
    print(f"{'total':<8}{s:>10,}{a:>10,}{(a - s) / s:>+9.2%}")
    if args.no_synth:
        return
    print(f"\nYosys synth_{args.target}: stream = module hwgen_engine, axi = hwgen_top (engine + AXI4 master + "
          "AXI4-Lite registers + counters)")
    print(f"{'resource':<10}{'stream':>10}{'axi':>10}{'delta':>10}")
    for k in resources["stream"]:
        s, a = resources["stream"][k], resources["axi"][k]
        print(f"{k:<10}{s:>10,}{a:>10,}{a - s:>+10,}")


if __name__ == "__main__":
    main()
