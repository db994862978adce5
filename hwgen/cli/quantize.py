"""Post-training quantization of a float model into an hwgen integer checkpoint (.hwq).

Weights become signed W-bit integers with one scale per output channel; activations A-bit
integers whose scales are calibrated as max |y| over the calibration images (signed at the input,
unsigned after a ReLU); every layer gets its integer bias and requantization M, S. The classifier
keeps its raw integer accumulators as logits. See docs/quantization.md.

Examples:
  hwgen quantize dense.pt2 --calib digits --weight-bits 8 --act-bits 8 --out dense_w8a8.hwq
  hwgen quantize model.pt2 --calib images.npy --calib-count 256 --weight-bits 4 --act-bits 4 --out m.hwq

A model that learned its own quantization (an ONNX file with QONNX Quant nodes or QDQ nodes, from
Brevitas or FINN) keeps it: its integer weights, bit widths and scales are written to the checkpoint
as they are, without calibration (see docs/ingest-and-sparsity.md):
  hwgen quantize brevitas_qonnx.onnx --out m.hwq

`--weight-granularity tensor` gives each layer one weight scale instead of one per output channel
(keep it when the source model learned per-tensor scales).

`--calib digits` uses the training split of scikit-learn's digits (1437 images of 1x8x8);
`FILE.npy` is a float array (N, C, H, W) read without pickle. The same arguments write a
byte-identical checkpoint.
"""

from __future__ import annotations

import argparse
import json
import zipfile
from pathlib import Path

import numpy as np

from ..errors import HwgenError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("model", type=Path, help="float model: torch.export .pt2, ONNX or float .hwq; "
                        "or an ONNX model with learned quantization (kept as it is)")
    parser.add_argument("--calib", help="calibration images: 'digits' or a .npy file (N, C, H, W); "
                        "required unless the model carries its own quantization")
    parser.add_argument("--weight-bits", type=int, help="weight bits, 2..8 (default 8)")
    parser.add_argument("--act-bits", type=int, help="activation bits, 2..8 (default 8)")
    parser.add_argument("--weight-granularity", choices=("channel", "tensor"), default="channel",
                        help="one weight scale per output channel (default) or per layer")
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
    learned = graph.input.quant is not None and not zipfile.is_zipfile(args.model)  # not an .hwq
    if learned:
        return _keep_learned(graph, args)
    if any(n.quant is not None for n in graph.nodes):
        print(f"note: {args.model} is already quantized; quantizing again from its float weights")
    if args.calib is None:
        raise HwgenError("--calib is required to quantize a float model")
    w_bits, a_bits = args.weight_bits or 8, args.act_bits or 8
    calib = load_calibration(args.calib, args.calib_count)
    q = quantize_graph(graph, calib, w_bits, a_bits, weight_granularity=args.weight_granularity)
    checkpoint.save(q, args.out)
    rows = summary(q)
    print(format_table(rows))
    _write_json(args, rows, weight_bits=w_bits, act_bits=a_bits, calib_images=len(calib))
    print(f"quantized {len(q.layers())} layers of '{q.name}' to W{w_bits}/A{a_bits} "
          f"with {len(calib)} calibration images -> {args.out}")
    return 0


def _write_json(args, rows: list[dict], **info) -> None:
    if args.json:
        args.json.write_text(json.dumps({"model": str(args.model), **info, "nodes": rows}, indent=1) + "\n")


def _keep_learned(graph, args) -> int:
    """Save a model's own learned quantization as a checkpoint, after checking nothing asks to change it."""
    from .. import checkpoint
    from ..ingest.qonnx import exactness

    given = [f"--{k.replace('_', '-')}" for k in ("calib", "weight_bits", "act_bits", "calib_count")
             if getattr(args, k) is not None]
    if args.weight_granularity != "channel":
        given.append("--weight-granularity")
    if given:
        raise HwgenError(f"{args.model} carries its own learned quantization, which is kept as it is; "
                         f"{', '.join(given)} would change it (remove them)")
    checkpoint.save(graph, args.out)
    rows = summary(graph)
    print(format_table(rows))
    inexact = exactness(graph)
    _write_json(args, rows, learned=True, inexact_nodes=inexact)
    print(f"kept the learned quantization of {len(graph.layers())} layers of '{graph.name}' -> {args.out}; "
          + (f"not bit-exact with the model's own arithmetic at: {', '.join(inexact)} (within 1 LSB per layer)"
             if inexact else "bit-exact with the model's own arithmetic"))
    return 0
