"""Post-training quantization of a float model into an hwgen integer checkpoint (.hwq).

Weights become signed W-bit integers with one scale per output channel; activations A-bit
integers whose scales are calibrated as max |y| over the calibration images (signed at the input,
unsigned after a ReLU); every layer gets its integer bias and requantization M, S. The classifier
keeps its raw integer accumulators as logits. See docs/quantization.md.

Examples:
  hwgen quantize dense.pt2 --calib digits --weight-bits 8 --act-bits 8 --out dense_w8a8.hwq
  hwgen quantize model.pt2 --calib images.npy --calib-count 256 --weight-bits 4 --act-bits 4 --out m.hwq

`--calib digits` uses the training split of scikit-learn's digits (1437 images of 1x8x8);
`FILE.npy` is a float array (N, C, H, W) read without pickle. The same arguments write a
byte-identical checkpoint.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..errors import HwgenError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("model", type=Path, help="float model: torch.export .pt2 or float .hwq")
    parser.add_argument("--calib", required=True, help="calibration images: 'digits' or a .npy file (N, C, H, W)")
    parser.add_argument("--weight-bits", type=int, default=8, help="weight bits, 2..8 (default 8)")
    parser.add_argument("--act-bits", type=int, default=8, help="activation bits, 2..8 (default 8)")
    parser.add_argument("--out", type=Path, required=True, help="output checkpoint (.hwq)")
    parser.add_argument("--calib-count", type=int, help="use only the first N calibration images (default: all)")
    parser.add_argument("--input-shape", help="C,H,W, if the model file does not fix it")
    parser.add_argument("--json", type=Path, help="also write the per-node quantization summary as JSON")


def load_calibration(spec: str, count: int | None) -> np.ndarray:
    """The calibration batch named on the command line: 'digits' or a .npy file, first `count` images."""
    if count is not None and count < 1:
        raise HwgenError(f"--calib-count must be at least 1, got {count}")
    if spec == "digits":
        from ..datasets import load_digits_split

        x = load_digits_split()[0]
    else:
        x = load_array(Path(spec), "calibration file")
        if x.dtype.kind != "f":
            raise HwgenError(f"calibration file {spec}: expected float images, got dtype {x.dtype}")
    return x[:count] if count is not None else x


def load_array(path: Path, what: str) -> np.ndarray:
    """A .npy array, never unpickled; every problem as one HwgenError line."""
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise HwgenError(f"{what} {path}: no such file") from None
    except (ValueError, OSError, EOFError) as e:
        raise HwgenError(f"{what} {path}: not a readable .npy array ({str(e).splitlines()[0][:120]})") from None


def _parse_shape(text: str | None) -> tuple[int, ...] | None:
    if text is None:
        return None
    try:
        shape = tuple(int(d) for d in text.split(","))
    except ValueError:
        raise HwgenError(f"--input-shape must be integers separated by commas, got {text!r}") from None
    if not shape or min(shape) < 1:
        raise HwgenError(f"--input-shape dimensions must be positive, got {text!r}")
    return shape


def summary(graph) -> list[dict]:
    """One row per node: its integer view (for the table and --json)."""
    from ..reference import accumulator_bits

    rows = []
    for n in graph.nodes:
        q = n.quant
        r = q.requant
        rows.append({
            "name": n.name, "op": n.op, "out_shape": list(n.out_shape),
            "weight_bits": q.weight_bits, "act_bits": q.act_bits, "signed": q.signed, "out_scale": q.out_scale,
            "multiplier": None if r is None else [int(r.multiplier.min()), int(r.multiplier.max())],
            "shift": None if r is None else [int(r.shift.min()), int(r.shift.max())],
            "acc_bits": accumulator_bits(graph, n) if n.op in ("conv2d", "linear", "avgpool2d") else None,
            "output": "logits (int accumulators)" if r is None and q.weight is not None else
                      f"{'int' if q.signed else 'uint'}{q.act_bits}",
        })
    return rows


def _span(v) -> str:
    return "" if v is None else (str(v[0]) if v[0] == v[1] else f"{v[0]}..{v[1]}")


def format_table(rows: list[dict]) -> str:
    header = ("node", "op", "shape", "W", "output", "scale", "M", "S", "acc bits")
    body = [(r["name"], r["op"], "x".join(map(str, r["out_shape"])), r["weight_bits"] or "", r["output"],
             f"{r['out_scale']:.4g}", _span(r["multiplier"]), _span(r["shift"]), r["acc_bits"] or "") for r in rows]
    cells = [header] + [tuple(str(c) for c in row) for row in body]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from .. import checkpoint
    from ..ingest import load_model
    from ..quantize import quantize_graph

    graph = load_model(args.model, _parse_shape(args.input_shape))
    if any(n.quant is not None for n in graph.nodes):
        print(f"note: {args.model} is already quantized; quantizing again from its float weights")
    calib = load_calibration(args.calib, args.calib_count)
    q = quantize_graph(graph, calib, args.weight_bits, args.act_bits)
    checkpoint.save(q, args.out)
    rows = summary(q)
    print(format_table(rows))
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), "weight_bits": args.weight_bits,
                                         "act_bits": args.act_bits, "calib_images": len(calib), "nodes": rows},
                                        indent=1) + "\n")
    print(f"quantized {len(q.layers())} layers of '{q.name}' to W{args.weight_bits}/A{args.act_bits} "
          f"with {len(calib)} calibration images -> {args.out}")
    return 0
