"""Sub-byte activations in DRAM: the same 64->64 3x3 layer at A8 and A4, activation bytes measured in RTL.

A 64 -> 64 3x3 convolution with ReLU (`--scheme` on its weights, W8, seeded random weights
quantized on synthetic images: `models.synthetic.quantized_graph`; it follows a dense 64 -> 64
conv + ReLU, so its input is unsigned as in a network) at A = 8 and at A = 4, each generated
(`hwgen generate`, 4x4 MACs, 64-bit bus) and simulated as Verilog in cocotb/Verilator on
`--images` inputs under `--timing` DRAM (the layer alone: the host computes the first conv). At A = 4 the engine keeps two activations per DRAM
byte (`EngineParams.act_pack`): it unpacks input rows on read and packs output rows on write.
Per precision: the input and output bytes measured in simulation beside the compiler's
prediction (`tiling.tiled_bytes`) and the compulsory bytes (each element once at A bits), the
layer's total DRAM bytes against its compulsory bytes, then the A4 / A8 ratio of the measured
activation bytes and, for comparison, the A4 layer's DRAM bytes with one byte per activation (the
engine before packing, by the schedule model). Exit 1 on any mismatching output element or any measured count that differs
from the prediction.

    .venv/bin/python benchmarks/activation_packing.py [--size 16] [--scheme PS4_P4] [--images 1] [--timing hostile]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import tempfile
import time
from pathlib import Path

from hwgen import engine, sim_target, simulate
from hwgen.analysis.engine import engine_compulsory
from hwgen.analysis.workload import layer_from_node
from hwgen.engine import schedule
from models.synthetic import quantized_graph


def layer_graph(size: int, scheme: str | None, act_bits: int):
    import torch

    # the scheme applies to every 3x3 conv but the first: the measured layer is the second, whose
    # input comes after a ReLU as in any network
    model = torch.nn.Sequential(torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU(),
                                torch.nn.Conv2d(64, 64, 3, padding=1), torch.nn.ReLU())
    return quantized_graph(model, (64, size, size), scheme=scheme, act_bits=act_bits, seed=7)


def measure(act_bits: int, args, work: Path) -> dict:
    graph = layer_graph(args.size, args.scheme, act_bits)
    target = sim_target.from_graph(graph, work / f"a{act_bits}" / "gen")
    inputs, _ = simulate.sample_inputs(graph, args.images, args.seed)
    measured = engine.engine_layers(graph)[-1].name
    report = simulate.run_network(target, inputs, None, seed=args.seed, timing=args.timing, layers=[measured],
                                  workdir=work / f"a{act_bits}" / "sim", cache_dir=work / "cache")
    (lay,) = report.layers
    bound = engine_compulsory(layer_from_node(graph, graph.node(lay.name)))
    # the same layer with one byte per activation (the engine before packing), by the schedule model
    built = engine.build(graph, engine.EngineConfig())
    bytewise = schedule.layer_schedule(built.plans[-1], dataclasses.replace(built.params, act_bits=8))
    return {"report": report, "layer": lay, "bound": bound, "bytewise": sum(bytewise.bytes.values())}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=16, help="input height and width (default 16)")
    ap.add_argument("--scheme", default="PS4_P4", help="periodic scheme of the weights, or 'dense' (default PS4_P4)")
    ap.add_argument("--images", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timing", choices=simulate.TIMINGS, default="hostile")
    args = ap.parse_args()
    scheme = None if args.scheme == "dense" else args.scheme
    args.scheme = scheme
    print(f"64->64 3x3 {scheme or 'dense'} W8 at {args.size}x{args.size}, 4x4 MACs, 64-bit bus, Verilator, "
          f"{args.images} image(s), {args.timing} DRAM")
    print(f"{'A':>2}{'in meas':>10}{'in pred':>10}{'in comp':>10}{'out meas':>10}{'out pred':>10}{'out comp':>10}"
          f"{'DRAM meas':>11}{'DRAM pred':>11}{'DRAM comp':>11}{'ratio':>7}{'mismatch':>10}{'cycles':>9}{'wall s':>8}")
    ok, act, bytewise = True, {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for bits in (8, 4):
            t0 = time.time()
            r = measure(bits, args, Path(tmp))
            lay, bound = r["layer"], r["bound"]
            meas, pred = lay.tensor_bytes_measured, lay.tensor_bytes_predicted
            act[bits] = meas.get("inputs", 0) + meas.get("outputs", 0)
            bytewise[bits] = (r["bytewise"], r["bytewise"] / lay.dram_bytes_compulsory)
            good = r["report"].error is None and lay.passed and lay.bytes_match
            ok &= bool(good)
            print(f"{bits:>2}{meas.get('inputs', 0):>10,}{pred['inputs']:>10,}{bound['inputs']:>10,}"
                  f"{meas.get('outputs', 0):>10,}{pred['outputs']:>10,}{bound['outputs']:>10,}"
                  f"{lay.dram_bytes_measured:>11,}{lay.dram_bytes_predicted:>11,}{lay.dram_bytes_compulsory:>11,}"
                  f"{lay.dram_bytes_measured / lay.dram_bytes_compulsory:>7.3f}{lay.mismatches:>10}{lay.cycles:>9,}"
                  f"{time.time() - t0:>8.0f}" + ("" if good else f"  FAILED: {r['report'].error or lay.notes}"))
    print(f"activation bytes (inputs + outputs) measured: A4 / A8 = {act[4]:,} / {act[8]:,} = {act[4] / act[8]:.3f} "
          "(packing two per byte: 0.5)")
    print(f"A4 at one byte per activation (the engine before packing; schedule model): DRAM {bytewise[4][0]:,} B, "
          f"{bytewise[4][1]:.3f} x compulsory")
    if not ok:
        print("FAILED: a mismatch, or measured bytes differ from the prediction", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
