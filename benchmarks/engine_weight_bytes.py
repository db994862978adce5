"""Engine weight DRAM bytes with W-bit packing, beside one byte per weight and `hwgen analyze`'s format size.

For W = 8, 4, 2 and a PS4_P4 and a dense 64 -> 64 3x3 layer (random weights, `--size` square
input): the engine's weight bytes per layer with weights one byte each (before packing), packed at
W bits (what the engine moves now: `params.weight_pack` = 8 // W weights per byte for W = 2, 4),
and the bits of the layer's format in `hwgen analyze` (`hwgen.analysis.formats`: periodic at the
engine's period for PS4_P4, i.e. nonzeros x W plus its table; dense: 9 x M x C x W) divided by 8. The packed layer also runs in amaranth.sim
(no stalls, output checked against hwgen.reference) to show the simulated DRAM bytes equal the
schedule's, with cycles beside the model's (the weight fill takes one cycle per packed beat).

    .venv/bin/python benchmarks/engine_weight_bytes.py [--size 8] [--m-lanes 8] [--x-lanes 4] [--bus-bits 64]
"""

from __future__ import annotations

import dataclasses

from engine_utilization import engine_arguments, measure
from hwgen import engine
from hwgen.analysis import formats
from hwgen.engine import schedule
from hwgen.layercases import conv_graph, random_input


def main() -> None:
    ap = engine_arguments(__doc__)
    args = ap.parse_args()
    print(f"64->64 3x3 at {args.size}x{args.size}, {args.m_lanes}x{args.x_lanes} MACs, {args.bus_bits}-bit bus; "
          "weight bytes in DRAM per layer")
    print(f"{'layer':<8}{'W':>3}{'bytes/wt':>10}{'packed':>9}{'analyze':>9}{'fmt':>10}{'packed/an':>11}"
          f"{'cyc bytes':>11}{'cyc packed':>12}{'sim cycles':>12}{'DRAM B sim':>12}{'model':>9}")
    for scheme in ("PS4_P4", None):
        for bits in (8, 4, 2):
            graph = conv_graph(11, cin=64, cout=64, h=args.size, w=args.size, scheme=scheme, weight_bits=bits)
            plan = engine.plan_node(graph, graph.node("conv"), m_lanes=args.m_lanes)
            params = engine.fit_params([plan], m_lanes=args.m_lanes, x_lanes=args.x_lanes, bus_bits=args.bus_bits)
            packed = schedule.layer_schedule(plan, params)
            unpacked = schedule.layer_schedule(plan, dataclasses.replace(params, weight_bits=8))
            mask = plan.weight != 0
            fmt = "dense" if plan.dense else "periodic"
            cost = formats.dense(mask, bits) if plan.dense else formats.periodic(mask, bits, plan.period)
            fmt_bytes = cost.bits / 8
            sim = measure(graph, random_input(graph, 11), False, args.m_lanes, args.x_lanes, args.bus_bits)
            print(f"{scheme or 'dense':<8}{bits:>3}{unpacked.bytes['weights']:>10}{packed.bytes['weights']:>9}"
                  f"{fmt_bytes:>9.0f}{fmt:>10}{packed.bytes['weights'] / fmt_bytes:>11.3f}{unpacked.cycles:>11}"
                  f"{packed.cycles:>12}{sim['cycles']:>12}{sim['dram_bytes']:>12}{sim['model_bytes']:>9}")


if __name__ == "__main__":
    main()
