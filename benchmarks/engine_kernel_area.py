"""Area of the engine's window size: the same engine built for 3x3, 5x5 and 7x7 windows (Yosys).

A checkpoint with a k x k layer (k > 3) gets an engine whose windows are k rows of
`2*(x_lanes-1) + k` columns (`EngineParams.kernel_max`): the input buffer's fetch holds k - 1 rows,
and every pixel lane of the MAC array chooses among k * k window positions. This benchmark
elaborates the engine of one PS4_P4 64->64 3x3 layer (as `engine_area.py`) with `kernel_max` 3, 5
and 7 and synthesizes each with Yosys (`synth_xilinx` by default), printing the resources and
their growth over the 3x3 engine.

    .venv/bin/python benchmarks/engine_kernel_area.py [--kernels 3,7] [--m-lanes 4 --x-lanes 4]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from pathlib import Path

from engine_area import engine_arguments, layer_graph

from hwgen import engine, templates
from hwgen.gateware.synth import synthesize
from hwgen.generate import ENGINE_MODULE, FILES, engine_verilog


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    engine_arguments(ap, m_lanes=4)
    ap.add_argument("--kernels", default="3,5,7", help="comma-separated kernel_max values")
    args = ap.parse_args()
    graph = layer_graph(args.size)
    base = engine.build(graph, engine.EngineConfig(m_lanes=args.m_lanes, x_lanes=args.x_lanes,
                                                   bus_bits=args.bus_bits)).params
    results = {}
    for k in (int(v) for v in args.kernels.split(",")):
        params = dataclasses.replace(base, kernel_max=k, sram_cells=True).validate()
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.time()
            engine_v, sram_v = Path(tmp) / FILES["engine"], Path(tmp) / FILES["sram"]
            engine_v.write_text(engine_verilog(params), encoding="utf-8")
            sram_v.write_text(templates.text(FILES["sram"]), encoding="utf-8")
            results[k] = (synthesize([sram_v, engine_v], ENGINE_MODULE, args.target)["resources"], time.time() - t0)
    print(f"PS4_P4 64->64 3x3 engine at {args.size}x{args.size}, {args.m_lanes}x{args.x_lanes} MACs, "
          f"{args.bus_bits}-bit bus, Yosys synth_{args.target}, by the window its kernel_max gives")
    ks = list(results)
    print(f"{'resource':<10}" + "".join(f"{f'{k}x{k}':>10}{'growth':>9}" for k in ks))
    for name in results[ks[0]][0]:
        ref = results[ks[0]][0][name]
        cells = "".join(f"{results[k][0][name]:>10}{(f'{(results[k][0][name] - ref) / ref:+.1%}' if ref else '-'):>9}"
                        for k in ks)
        print(f"{name:<10}{cells}")
    print("synthesis time: " + ", ".join(f"{k}x{k} {t:.0f} s" for k, (_, t) in results.items()))


if __name__ == "__main__":
    main()
