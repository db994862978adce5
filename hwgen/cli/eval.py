"""Top-1 accuracy of a quantized checkpoint on a data set, computed by the bit-exact integer reference;
with --rtl N, also by the generated engine's Verilog (cocotb + Verilator) on the first N test images.

Examples:
  hwgen eval models/digits_ps4p4_w8a8.hwq                     (the digits test split)
  hwgen eval resnet18_psd1_p16_w8a8.hwq --data cifar10/ --json
  hwgen eval models/digits_ps4p4_w8a8.hwq --rtl 4             (engine RTL on 4 images as well)

--data is what `hwgen train --data` takes: a folder of class sub-folders of images (optionally
train/ and test/ or val/ inside), or an .npz with x, y (optionally x_test, y_test); images are
converted to the checkpoint's channels and resized to its input size. The test part is evaluated
(without one, the same fixed 80/20 split as training). Without --data: the digits test split, upscaled
to the checkpoint's input size. Exit 0 when the RTL logits equal the reference's, 1 when they differ.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from ..errors import HwgenError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("checkpoint", type=Path, metavar="C.hwq", help="quantized hwgen checkpoint")
    parser.add_argument("--data", type=Path, help="image folder or .npz (default: the digits test split)")
    parser.add_argument("--split", choices=("test", "train"), default="test", help="which part (default test)")
    parser.add_argument("--limit", type=int, metavar="N", help="evaluate only the first N images")
    parser.add_argument("--rtl", type=int, metavar="N", help="also run the first N images on the engine's RTL")
    parser.add_argument("--m-lanes", type=int, default=4, help="--rtl: engine output-channel lanes (default 4)")
    parser.add_argument("--x-lanes", type=int, default=4, help="--rtl: engine pixel lanes (default 4)")
    parser.add_argument("--sim", choices=("verilator", "icarus"), default="verilator", help="--rtl: simulator")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")


def _data(args, graph):
    from .. import datasets

    c, h, w = graph.input_shape
    if args.data is None:
        if c != datasets.INPUT_SHAPE[0] or h != w:
            raise HwgenError(f"{args.checkpoint} takes {c}x{h}x{w} images, not the digits: give --data")
        ds = datasets.digits_dataset(h)
    else:
        ds = datasets.load_dataset(args.data, c, h)
        if ds.x_train.shape[1:] != (c, h, w):
            raise HwgenError(f"{args.data}: images are {ds.x_train.shape[1:]}, {args.checkpoint} takes {(c, h, w)}")
    x, y = (ds.x_test, ds.y_test) if args.split == "test" else (ds.x_train, ds.y_train)
    classes = int(np.prod(graph.node(graph.output).out_shape))
    if int(y.max()) >= classes:
        raise HwgenError(f"labels go up to {int(y.max())} but {args.checkpoint} has {classes} outputs")
    if args.limit is not None:
        if args.limit < 1:
            raise HwgenError(f"--limit must be >= 1, got {args.limit}")
        x, y = x[:args.limit], y[:args.limit]
    return x, y


def run(args) -> int:
    from .. import checkpoint
    from ..quantize import quantize_input
    from models.experiments import reference_logits

    graph = checkpoint.load(args.checkpoint)
    if graph.input.quant is None:
        raise HwgenError(f"{args.checkpoint} is a float checkpoint; quantize it first (hwgen quantize)")
    x, y = _data(args, graph)
    logits = reference_logits(graph, x, progress=not args.no_progress)
    result = {"checkpoint": str(args.checkpoint), "images": len(y),
              "top1_reference": float((logits.argmax(1) == y).mean())}
    code = 0
    if args.rtl is not None:
        if not 1 <= args.rtl <= len(y):
            raise HwgenError(f"--rtl must be 1..{len(y)}, got {args.rtl}")
        from ..sim_target import from_graph
        from ..simulate import run_network

        with tempfile.TemporaryDirectory() as tmp:
            engine = from_graph(graph, Path(tmp) / "engine", m_lanes=args.m_lanes, x_lanes=args.x_lanes)
            report = run_network(engine, quantize_input(graph, x[:args.rtl]), y[:args.rtl], sim=args.sim,
                                 workdir=Path(tmp) / "sim", progress=not args.no_progress)
        result.update({"rtl_images": args.rtl, "top1_rtl": report.accuracy(report.engine_top1),
                       "top1_reference_same_images": report.accuracy(report.reference_top1),
                       "rtl_logits_equal_reference": report.passed})
        code = 0 if report.passed else 1
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        line = f"{args.checkpoint}: top-1 {100 * result['top1_reference']:.2f}% on {len(y)} images (integer reference)"
        if args.rtl is not None:
            line += (f"; RTL {100 * result['top1_rtl']:.2f}% on the first {args.rtl} "
                     f"(reference {100 * result['top1_reference_same_images']:.2f}%), logits "
                     f"{'equal' if result['rtl_logits_equal_reference'] else 'DIFFER'}")
        print(line)
    return code
