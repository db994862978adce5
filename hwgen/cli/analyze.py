"""Weight storage formats, DRAM traffic, energy and cycles of a model on a memory hierarchy.

For every conv2d / linear layer: the exact bits of each weight format (dense, bitmask, csr4,
csr8, pattern, periodic), a mapping searched within the global buffer (or fixed with --mapping),
DRAM bytes per tensor, buffer accesses, energy, cycles, and the compulsory lower bound. The
table compares dense weights with each layer's smallest format; --compare puts whole-network
totals of several formats side by side. Presets: --arch generic | eyeriss-like | engine (the
engine `hwgen generate` emits, counted by its own schedule; or a YAML file), --energy
horowitz45 | eyeriss | lpddr4 | ddr3 | gddr5 | hbm2 (or a YAML file).
"""

from __future__ import annotations

import argparse

from ..errors import HwgenError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", help="a .pt2 export or an .hwq checkpoint (anything `hwgen inspect` reads)")
    p.add_argument("--input-shape", metavar="C,H,W", help="input shape if the model does not fix it")
    p.add_argument("--weight-bits", type=int, default=8, metavar="W", help="weight bits of a float model (default 8)")
    p.add_argument("--act-bits", type=int, default=8, metavar="A", help="activation bits of a float model (default 8)")
    p.add_argument("--arch", default="generic", metavar="PRESET|FILE", help="architecture (default generic)")
    p.add_argument("--glb-kib", type=float, metavar="N", help="override the global buffer size, KiB")
    p.add_argument("--energy", default="horowitz45", metavar="NAME|FILE", help="energy table (default horowitz45)")
    p.add_argument("--objective", choices=("dram", "energy"), default="dram", help="what the mapping search minimises")
    p.add_argument("--mapping", metavar="FILE", help="YAML of fixed mappings (default and per layer); others are searched")
    p.add_argument("--compare", metavar="F1,F2,...", help="totals per weight format, e.g. dense,csr8,pattern,periodic")
    p.add_argument("--json", metavar="FILE", help="write the per-layer analysis as JSON")
    p.add_argument("--csv", metavar="FILE", help="write the per-layer analysis as CSV")
    p.add_argument("--plot", metavar="FILE", help="write a PNG: DRAM bytes by tensor and energy, dense beside sparse")


def _compare_formats(text: str | None) -> list[str]:
    from ..analysis import FORMATS

    if text is None:
        return []
    names = [f.strip() for f in text.split(",") if f.strip()]
    bad = [f for f in names if f not in FORMATS]
    if bad or not names:
        raise HwgenError(f"--compare: unknown format '{bad[0] if bad else text}' (formats: {', '.join(FORMATS)})")
    return list(dict.fromkeys(names))


def _write(path: str, text: str) -> None:
    try:
        with open(path, "w", encoding="utf-8", newline="") as f:
            f.write(text)
    except OSError as e:
        raise HwgenError(f"cannot write '{path}': {e.strerror}") from None


def run(args) -> int:
    from ..analysis import analyze, load_arch, load_energy, report, workload
    from ..analysis.mapping import FixedMappings
    from ..ingest import load_model
    from .inspect import parse_shape

    formats = _compare_formats(args.compare)
    graph = load_model(args.model, parse_shape(args.input_shape) if args.input_shape else None)
    arch, energy = load_arch(args.arch), load_energy(args.energy)
    fixed = FixedMappings(args.mapping) if args.mapping else None
    common = dict(arch=arch, energy=energy, objective=args.objective, weight_bits=args.weight_bits,
                  act_bits=args.act_bits, glb_kib=args.glb_kib, mapping=fixed, progress=True,
                  layers=workload(graph, args.weight_bits, args.act_bits))
    native = analyze(graph, **common)
    dense = analyze(graph, fmt="dense", **common)
    compare = {f: analyze(graph, fmt=f, **common) for f in formats}
    print(report.compare_table(compare) if compare else report.table(dense, native), end="")
    if args.json:
        _write(args.json, report.dumps_json(report.to_dict(native, _inspect_layers(graph), compare)))
    if args.csv:
        _write(args.csv, report.to_csv(native))
    if args.plot:
        try:
            report.write_plot(dense, native, args.plot)
        except OSError as e:
            raise HwgenError(f"cannot write '{args.plot}': {e.strerror}") from None
    return 0


def _inspect_layers(graph) -> dict[str, dict]:
    """inspect's per-layer JSON dicts of the weighted layers, which the analysis JSON extends."""
    from .inspect import summarize

    return {d["name"]: d for d in summarize(graph)["layers"] if d["weight_shape"] is not None}
