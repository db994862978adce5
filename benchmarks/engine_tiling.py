"""Row-band and column tiling on a fixed input buffer: a ResNet-18 or VGG-16 on the engine, DRAM bytes vs the compulsory bound.

ResNet-18 (`--model`: the CIFAR stem at 32x32, or `resnet18-imagenet`, the 7x7 stride-2 stem at
224x224) or VGG-16 at 224x224 (`vgg16-imagenet`: its 224- to 28-column layers need column tiles
on 32 KiB) with PS4_P4 on its 3x3 convolutions (`--scheme dense`: none), W8A8 (seeded random weights,
quantized on synthetic images: the shapes and sparsity are real, accuracy does not matter here),
compiled for a 4x4-MAC engine with a 64-bit bus (`--bus-bits`), once with an input buffer that holds every
input whole and once with `--glb-kib 16`. Per conv layer: the band size, the bands, the column
tiles (output columns x tiles, `-`: full rows), the loop nest
(resident lane groups or streamed weights), the engine's DRAM bytes, the compulsory bytes (each
nonzero weight at W bits in its smallest format with its metadata, each input and output once at
A bits, and the bias/requant table at the contract's 53 bits per output channel: `hwgen.analysis`'s
lower bound), their ratio, the schedule's cycles and its utilization tiled beside untiled. The
engine compiler's bytes are checked against the generic analytical model's prediction from the
`arch.yaml` + `mapping.yaml` that `hwgen generate` writes (tensor by tensor, every layer).

With `--simulate N` the tiled engine is also generated and every conv layer (or those of
`--layers`) simulated in Verilator on N images under a hostile DRAM (random latency and stalls on
every stream): outputs bit-exact against the reference and bytes measured per tensor equal to
the prediction.

    .venv/bin/python benchmarks/engine_tiling.py [--glb-kib 16] [--weight-kib 64] [--simulate 1]
    .venv/bin/python benchmarks/engine_tiling.py --model vgg16-imagenet --glb-kib 32 [--scheme dense] [--weight-kib 256] [--bus-bits 32]
    .venv/bin/python benchmarks/engine_tiling.py --model resnet18-imagenet --glb-kib 32 [--scheme dense]
        [--simulate 1 --layers features.0,features.4.body.0,features.6.body.0]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from hwgen import engine, sim_target
from hwgen.analysis import analyze
from hwgen.engine import describe
from models.synthetic import quantized_zoo


def compulsory(graph) -> dict[str, int]:
    """Per conv layer: the analysis's lower bound (weights, inputs, outputs, bias/requant tables; the same for
    any buffer and bus, so taken from the engine preset's untiled engine)."""
    return {r.layer.name: r.compulsory_bytes["total"] for r in analyze(graph, "engine").layers}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="resnet18-cifar", choices=["resnet18-cifar", "resnet18-imagenet", "vgg16-imagenet"])
    ap.add_argument("--scheme", default="PS4_P4", help="periodic scheme of the 3x3 convolutions, or dense")
    ap.add_argument("--glb-kib", type=int, default=16)
    ap.add_argument("--bus-bits", type=int, default=64)
    ap.add_argument("--weight-kib", type=int, help="weight buffer size (default: one lane group of the widest layer)")
    ap.add_argument("--simulate", type=int, default=0, metavar="N", help="also simulate every layer on N images")
    ap.add_argument("--layers", help="comma-separated conv layers to simulate (default: all)")
    args = ap.parse_args()
    t0 = time.time()
    graph = quantized_zoo(args.model, scheme=None if args.scheme == "dense" else args.scheme)
    print(f"{args.model} {args.scheme} W8A8, 4x4 MACs, {args.bus_bits}-bit bus (graph built in {time.time() - t0:.1f} s)")
    t0 = time.time()
    whole = engine.build(graph, engine.EngineConfig(bus_bits=args.bus_bits))
    tiled = engine.build(graph, engine.EngineConfig(bus_bits=args.bus_bits, glb_kib=args.glb_kib,
                                                    weight_kib=args.weight_kib))
    bound = compulsory(graph)
    print(f"compiled twice in {time.time() - t0:.1f} s; input buffer {whole.params.input_buffer_bytes} B whole, "
          f"{tiled.params.input_buffer_bytes} B tiled; weight buffer "
          f"{tiled.params.weight_buffer_bytes} B")
    print(f"{'layer':<22}{'input':>14}{'k':>3}{'band':>5}{'bands':>6}{'cols':>5}{'resident':>9}{'DRAM B':>10}{'bound B':>10}"
          f"{'ratio':>7}{'untiled':>8}{'cycles':>10}{'util':>7}{'untiled':>8}")
    totals = {"tiled": 0, "whole": 0, "bound": 0}
    for plan, s_t, s_w in zip(tiled.plans, tiled.schedules, whole.schedules):
        t, b = s_t.tiling, bound[s_t.name]
        dram_t, dram_w = sum(s_t.bytes.values()), sum(s_w.bytes.values())
        totals["tiled"] += dram_t
        totals["whole"] += dram_w
        totals["bound"] += b
        shape = "x".join(map(str, plan.in_shape))
        cols = f"{t.col_beats * tiled.params.beat_elems}x{t.col_tiles}" if t.col_beats else "-"
        print(f"{s_t.name:<22}{shape:>14}{plan.kernel:>3}{t.band_rows:>5}{t.bands:>6}{cols:>5}"
              f"{t.resident_groups or '-':>9}{dram_t:>10}{b:>10}{dram_t / b:>7.3f}{dram_w / b:>8.3f}{s_t.cycles:>10}"
              f"{s_t.utilization:>7.1%}{s_w.utilization:>8.1%}")
    print(f"{'network':<22}{'':>42}{totals['tiled']:>10}{totals['bound']:>10}"
          f"{totals['tiled'] / totals['bound']:>7.3f}{totals['whole'] / totals['bound']:>8.3f}")
    for name, build in (("untiled", whole), (f"{args.glb_kib} KiB", tiled)):
        with tempfile.TemporaryDirectory() as tmp:
            arch, mapping = Path(tmp) / "arch.yaml", Path(tmp) / "mapping.yaml"
            describe.write(build, arch, mapping)
            t0 = time.time()
            generic = sim_target.generic_prediction(graph, arch, mapping)
        same = sum(generic[s.name] == s.bytes for s in build.schedules)
        print(f"{name}: generic model (arch.yaml + mapping.yaml, {time.time() - t0:.1f} s) = engine compiler's bytes, "
              f"tensor by tensor, on {same} of {len(build.schedules)} layers")
        if same != len(build.schedules):
            raise SystemExit("the generic model's prediction differs from the engine compiler's count")
    cyc_t = sum(s.cycles for s in tiled.schedules)
    cyc_w = sum(s.cycles for s in whole.schedules)
    print(f"cycles per image (schedule model): {cyc_t} tiled, {cyc_w} untiled ({cyc_t / cyc_w - 1:+.1%})")
    if args.simulate:
        layers = args.layers.split(",") if args.layers else [n.name for n in engine.engine_layers(graph)]
        simulate_all(graph, args.glb_kib, args.weight_kib, args.bus_bits, args.simulate, layers)


def simulate_all(graph, glb_kib: int, weight_kib: int | None, bus_bits: int, images: int, layers: list[str]) -> None:
    from hwgen.generate import generate
    from hwgen.simulate import simulate

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "gen"
        generate(graph, out, glb_kib=glb_kib, weight_kib=weight_kib, bus_bits=bus_bits)
        t0 = time.time()
        report = simulate(out, images=images, layers=layers, progress=True)
    bad = [lay.name for lay in report.layers if not (lay.passed and lay.bytes_match)]
    print(f"RTL (Verilator, hostile DRAM, {images} image(s), {time.time() - t0:.0f} s): "
          f"{sum(lay.mismatches for lay in report.layers)} mismatching elements, "
          f"bytes measured = predicted on {len(report.layers) - len(bad)} of {len(report.layers)} layers, "
          f"logits {'equal' if report.logits_match else 'DIFFERENT'}")
    if bad or not report.logits_match:
        raise SystemExit(f"layers that differ: {', '.join(bad) or 'none'}")


if __name__ == "__main__":
    main()
