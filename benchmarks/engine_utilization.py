"""MAC utilization of the engine in amaranth.sim: PS4_P4, PSD1_P16, PSD4_P8 64->64 3x3, sparse beside dense.

Runs randomly initialised layers (64 -> 64 channels, 3x3, stride 1) on the generated engine in
`amaranth.sim` with a memory that never stalls, once as planned by the generator (PS: contiguous
lane groups; PSD: residue-grouped lanes) and once generated dense-only (all 9 taps: what PSD
layers ran at before residue grouping, when they were planned dense). Prints cycles from
simulation beside the analytical schedule, the ideal bound (effectual MACs / MAC lanes: every
lane-cycle a nonzero weight), the share of MAC lane-cycles doing effectual MACs (padding taps
count, as in the field), and the dense/sparse cycle ratio beside the MAC ratio. Outputs are
checked bit-exact against hwgen.reference as well.

    .venv/bin/python benchmarks/engine_utilization.py [--size 8] [--m-lanes 8] [--x-lanes 4]
                                                     [--schemes PS4_P4,PSD1_P16,PSD4_P8]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from hwgen.layercases import conv_graph, expected, load_image, random_input
from hwgen import engine
from hwgen.engine import schedule
from hwgen.gateware.engine import Engine
from hwgen.gateware.sim_memory import run_layer


def measure(graph, x, dense_only: bool, m_lanes: int, x_lanes: int, bus_bits: int) -> dict:
    plan = engine.plan_node(graph, graph.node("conv"), dense_only=dense_only, m_lanes=m_lanes)
    params = engine.fit_params([plan], m_lanes=m_lanes, x_lanes=x_lanes, bus_bits=bus_bits,
                               sparse=False if dense_only else None)
    img = engine.dram_image([plan], params)
    image = load_image(img, x, params)
    t0 = time.time()
    traffic = run_layer(Engine(params), image, img.layers[0].descriptor)
    reg = img.layers[0]
    got = engine.unpack_activations(image[reg.output:reg.output + reg.output_bytes], plan.out_shape, False, params)
    if not np.array_equal(got, expected(graph, x)):
        raise SystemExit("engine output differs from hwgen.reference")
    model = schedule.layer_schedule(plan, params)
    effectual = int(np.count_nonzero(plan.weight)) * plan.out_shape[1] * plan.out_shape[2]
    return {
        "mode": "dense-only" if dense_only else "residue" if plan.residue_groups else plan.structure,
        "taps": plan.taps, "cycles": traffic.cycles, "ideal": -(-effectual // params.mac_count),
        "model_cycles": model.cycles, "compute_cycles": model.compute_cycles,
        "util": effectual / (traffic.cycles * params.mac_count),
        "compute_util": effectual / (model.compute_cycles * params.mac_count),
        "dram_bytes": traffic.read_bytes + traffic.write_bytes, "model_bytes": model.read_bytes + model.write_bytes,
        "seconds": time.time() - t0,
    }


def engine_arguments(doc: str) -> argparse.ArgumentParser:
    """The options every engine benchmark takes: the layer size and the engine's shape."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--size", type=int, default=8, help="input height and width (default 8)")
    ap.add_argument("--m-lanes", type=int, default=8)
    ap.add_argument("--x-lanes", type=int, default=4)
    ap.add_argument("--bus-bits", type=int, default=64)
    return ap


def main() -> None:
    ap = engine_arguments(__doc__)
    ap.add_argument("--schemes", default="PS4_P4,PSD1_P16,PSD4_P8", help="comma-separated periodic schemes")
    args = ap.parse_args()
    print(f"64->64 3x3 at {args.size}x{args.size}, {args.m_lanes}x{args.x_lanes} MACs, {args.bus_bits}-bit bus, "
          "memory without stalls (amaranth.sim)")
    print(f"{'layer':<10}{'engine':<12}{'taps':>5}{'sim cycles':>12}{'model':>9}{'ideal':>9}{'DRAM B sim':>12}"
          f"{'model':>9}{'util (all)':>12}{'util (passes)':>15}{'sim s':>7}")
    for scheme in args.schemes.split(","):
        graph = conv_graph(11, cin=64, cout=64, h=args.size, w=args.size, scheme=scheme)
        x = random_input(graph, 11)
        rows = [measure(graph, x, d, args.m_lanes, args.x_lanes, args.bus_bits) for d in (False, True)]
        for r in rows:
            print(f"{scheme:<10}{r['mode']:<12}{r['taps']:>5}{r['cycles']:>12}{r['model_cycles']:>9}{r['ideal']:>9}"
                  f"{r['dram_bytes']:>12}{r['model_bytes']:>9}{r['util']:>12.1%}{r['compute_util']:>15.1%}"
                  f"{r['seconds']:>7.1f}")
        macs = 9 * 64 * 64 / np.count_nonzero(graph.node("conv").quant.weight)
        print(f"{scheme:<10}dense-only / sparse cycles: {rows[1]['cycles'] / rows[0]['cycles']:.2f} "
              f"(dense / effectual MACs {macs:.2f}); sparse cycles / ideal: {rows[0]['cycles'] / rows[0]['ideal']:.2f}")


if __name__ == "__main__":
    main()
