"""Throughput at the achieved Fmax: ResNet-18 CIFAR W8A8, PS4_P4 and PSD1_P16 beside the same network dense.

For each scheme: the network (random weights, seed 0, quantized W8A8) is generated on a 4x4-lane
engine (`--lanes MxX`) with a 64-bit bus and 16 KiB input + 32 KiB weight buffers (`--weight-kib`);
the engine, specialized to that checkpoint, is placed and routed (`hwgen implement --target
ecp5-85k`, seed 1, 150 MHz target) for its Fmax and DSP count; one image runs in RTL (Verilator, fast mode, ideal DRAM, bit-exact
against the reference) for its cycles. From those:

- images/s = Fmax / engine cycles per image (the conv layers: the add, pooling and classifier
  still run on the host, issue 11);
- effectual GOP/s = 2 x MACs with a nonzero weight per image x images/s, and per DSP;
- dense-equivalent GOP/s = 2 x the dense network's MACs x images/s: what the sparse engine is
  worth to a user who compares it with a dense accelerator;
- DRAM bytes per image as the RTL moved them, against the compulsory traffic (each tensor once in
  its smallest format, from the analysis): the price of the compiler's tiling and banding.

Each P&R takes minutes; `--fmax-mhz F` skips it and uses F for every engine (DSP: the engine's
MAC count). Exits 1 when an image is not bit-exact.

    .venv/bin/python benchmarks/throughput.py [--schemes dense,PS4_P4,PSD1_P16] [--fmax-mhz F] [--per-layer]
                                              [--lanes 4x4] [--weight-kib 32]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from hwgen import sim_target, simulate
from hwgen.generate import generate
from hwgen.implement import implement

NETWORK = "resnet18-cifar"


def measure(scheme: str, tmp: Path, fmax_mhz: float | None, lanes: tuple[int, int], weight_kib: int) -> dict:
    from models.synthetic import quantized_zoo

    graph = quantized_zoo(NETWORK, scheme=None if scheme == "dense" else scheme)
    out = tmp / scheme
    generate(graph, out, m_lanes=lanes[0], x_lanes=lanes[1], bus_bits=64, glb_kib=16, weight_kib=weight_kib)
    if fmax_mhz is None:
        r = implement(out, "ecp5-85k", freq_mhz=150.0, seed=1)
        fmax, dsp = r["fmax_mhz"], r["resources"]["DSP"]["used"]
    else:
        fmax, dsp = fmax_mhz, None
    target = sim_target.load_generated(out)
    x, labels = simulate.sample_inputs(target.graph, 1, 0)
    report = simulate.run_network(target, x, labels, timing="ideal", seed=0, workdir=tmp / f"sim-{scheme}",
                                  cache_dir=tmp / "cache", mode="fast")
    t = report.totals()
    return {"scheme": scheme, "fmax": fmax, "dsp": dsp, "cycles": t["cycles"], "utilization": t["utilization"],
            "effectual_macs": sum(lr.effectual_macs for lr in report.layers), "passed": report.passed,
            "dram_bytes": t["dram_bytes_measured"], "compulsory_bytes": t["dram_bytes_compulsory"],
            "lanes": report.layers[0].lanes, "layers": report.layers}


def print_layers(r: dict) -> None:
    """Each conv layer of one scheme: cycles measured in RTL beside the schedule's, and MAC utilization."""
    print(f"\n{r['scheme']}: per layer (RTL, ideal DRAM)")
    print(f"{'layer':<24}{'cycles':>12}{'predicted':>12}{'error':>8}{'utilization':>13}")
    for lr in r["layers"]:
        print(f"{lr.name:<24}{lr.cycles:>12,}{lr.cycles_predicted:>12,}"
              f"{(lr.cycles_predicted - lr.cycles) / lr.cycles:>+8.2%}{lr.utilization:>13.1%}")
    print(f"{'lowest':<24}{'':>32}{min(lr.utilization for lr in r['layers']):>13.1%}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--schemes", default="dense,PS4_P4,PSD1_P16", help="comma separated; dense is the baseline")
    ap.add_argument("--fmax-mhz", type=float, help="skip place-and-route: this Fmax for every engine")
    ap.add_argument("--per-layer", action="store_true", help="also print each conv layer's cycles and utilization")
    ap.add_argument("--lanes", default="4x4", help="MxX: output-channel x pixel lanes of the engine")
    ap.add_argument("--weight-kib", type=int, default=32, help="weight buffer KiB (a 512-channel lane group of 8 "
                                                               "lanes needs more than 32)")
    args = ap.parse_args()
    schemes = args.schemes.split(",")
    try:
        lanes = tuple(int(v) for v in args.lanes.lower().split("x"))
        assert len(lanes) == 2
    except (ValueError, AssertionError):
        ap.error(f"--lanes must be MxX (e.g. 8x8), got {args.lanes!r}")
    with tempfile.TemporaryDirectory(prefix="hwgen-bench-") as tmp:
        rows = [measure(s, Path(tmp), args.fmax_mhz, lanes, args.weight_kib) for s in schemes]
    dense = next((r for r in rows if r["scheme"] == "dense"), None)
    where = "--fmax-mhz (no P&R)" if args.fmax_mhz else "nextpnr-ecp5, LFE5U-85F speed 6, seed 1"
    print(f"{NETWORK} W8A8, random weights (seed 0), {lanes[0]}x{lanes[1]} lanes, 64-bit bus, 16 KiB input + "
          f"{args.weight_kib} KiB weight buffers; "
          f"Fmax: {where}; cycles: 1 image in RTL (Verilator fast mode, ideal DRAM), conv layers")
    head = ("scheme", "Fmax MHz", "DSP", "cycles/image", "utilization", "images/s", "eff. GOP/s", "GOP/s/DSP",
            "dense-eq GOP/s", "vs dense", "DRAM B/image", "/ compulsory", "bit-exact")
    print("".join(f"{h:>15}" for h in head))
    for r in rows:
        images_s = r["fmax"] * 1e6 / r["cycles"]
        eff = 2 * r["effectual_macs"] * images_s / 1e9
        dsp = r["dsp"] if r["dsp"] is not None else r["lanes"]
        cells = (r["scheme"], f"{r['fmax']:.2f}", f"{dsp}", f"{r['cycles']:,}", f"{r['utilization']:.1%}",
                 f"{images_s:,.1f}", f"{eff:.2f}", f"{eff / dsp:.3f}",
                 "" if dense is None else f"{2 * dense['effectual_macs'] * images_s / 1e9:.2f}",
                 "" if dense is None else f"{images_s / (dense['fmax'] * 1e6 / dense['cycles']):.2f}x",
                 f"{r['dram_bytes']:,}", f"{r['dram_bytes'] / r['compulsory_bytes']:.3f}",
                 "yes" if r["passed"] else "NO")
        print("".join(f"{c:>15}" for c in cells))
    if args.fmax_mhz is None:
        print("DSP: as placed (MULT18X18D); without P&R the column counts the engine's MACs")
    if args.per_layer:
        for r in rows:
            print_layers(r)
    return 0 if all(r["passed"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
