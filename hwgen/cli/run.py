"""Run the bit-exact integer reference of a quantized checkpoint (.hwq) on inputs.

The model may also be an ONNX file with learned quantization (QONNX Quant nodes from Brevitas's
export_qonnx or FINN, or QuantizeLinear/DequantizeLinear from export_onnx_qcdq): it runs with the
model's own integer weights, bit widths and scales (see docs/ingest-and-sparsity.md). Multiply the
output by the output node's scale (`hwgen quantize --json`) to compare with the model's float output.

The input X.npy is a batch (N, C, H, W), or one image (C, H, W). A float array is quantized
with the input node's scale (round half to even, clamp); an integer array is taken as the input
node's integers as is (and must lie in its signed A-bit range). The output Y.npy holds int64:
the graph's output (the integer logits of a classifier), or with --layer the output of that
node. Arrays are read and written without pickle.

Examples:
  hwgen run digits_w8a8.hwq --input x.npy --out logits.npy
  hwgen run digits_w8a8.hwq --input x.npy --out conv2.npy --layer features.3
  hwgen run brevitas_qonnx.onnx --input x.npy --out logits.npy
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ..errors import HwgenError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("checkpoint", type=Path, help="quantized checkpoint (.hwq), or a QONNX / QDQ ONNX model")
    parser.add_argument("--input", type=Path, required=True, help="inputs X.npy: float or integer, (N, C, H, W)")
    parser.add_argument("--out", type=Path, required=True, help="where to write the int64 outputs (.npy)")
    parser.add_argument("--layer", help="write this node's output instead of the graph's")


def run(args: argparse.Namespace) -> int:
    from .. import reference
    from ..ingest import load_model
    from ..quantize import integer_inputs
    from .quantize import load_array

    graph = load_model(args.checkpoint)
    if graph.input.quant is None:
        kind = "checkpoint" if args.checkpoint.suffix.lower() == ".hwq" else "model"
        raise HwgenError(f"{args.checkpoint} is a float {kind}; quantize it first (hwgen quantize)")
    node = graph.node(args.layer) if args.layer else graph.node(graph.output)
    x_int = integer_inputs(graph, load_array(args.input, "input"), f"input {args.input}")
    y = reference.run_all(graph, x_int)[node.name] if args.layer else reference.run(graph, x_int)
    with open(args.out, "wb") as f:  # np.save(path) would append .npy to other names
        np.save(f, y, allow_pickle=False)
    what = "logits" if node.quant.requant is None and node.quant.weight is not None else "outputs"
    extra = f", argmax of the first: {int(y[0].argmax())}" if what == "logits" and len(y) else ""
    print(f"ran {len(y)} input(s) through '{graph.name}': {what} of '{node.name}' {y.dtype} "
          f"{tuple(y.shape)} in [{int(y.min()) if y.size else 0}, {int(y.max()) if y.size else 0}] -> {args.out}{extra}")
    return 0
