"""Float vs integer agreement on scikit-learn's digits: post-training quantization at W/A 8, 6, 4.

Trains the DigitsCNN briefly with `models.train.fit` (or takes a `.pt2` with --pt2), ingests it
into the IR, and on the fixed test split (360 images) prints, per bit width:
  - top-1 accuracy of the float IR (`reference.float_forward`) and of the integer reference;
  - how often the two agree on the predicted class;
  - mean |logit difference| (integer logits dequantized) relative to the float logit range.
The torch model's own accuracy is printed next to the float IR's: they must agree.

    .venv/bin/python benchmarks/quant_agreement.py [--pt2 model.pt2] [--epochs 15] [--calib-count N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


from hwgen import quantize, reference
from hwgen.datasets import load_digits_split
from hwgen.ingest import load_model

BITS = (8, 6, 4)


def trained_pt2(path: Path, epochs: int, seed: int) -> float:
    """Train DigitsCNN on the digits training split, export it to `path`; returns torch's test accuracy."""
    import torch

    from models.train import Data, evaluate, fit
    from models.zoo import DigitsCNN, export_pt2

    data = Data.digits()
    torch.manual_seed(seed)
    model = DigitsCNN()
    fit(model, data, epochs=epochs, seed=seed, progress=False)
    export_pt2(model, (1, 8, 8), path)
    return evaluate(model, data.x_test, data.y_test)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--pt2", type=Path, help="a float model of 1x8x8 digits (default: train DigitsCNN)")
    ap.add_argument("--epochs", type=int, default=15)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--calib-count", type=int, help="calibration images from the training split (default: all)")
    args = ap.parse_args()

    x_tr, _, x_te, y_te = load_digits_split()
    calib = x_tr[:args.calib_count] if args.calib_count else x_tr
    with tempfile.TemporaryDirectory() as tmp:
        path = args.pt2 or Path(tmp) / "digits.pt2"
        torch_acc = None if args.pt2 else trained_pt2(path, args.epochs, args.seed)
        graph = load_model(path)

    t0 = time.perf_counter()
    f = reference.float_forward(graph, x_te)
    t_float = time.perf_counter() - t0
    float_acc = float((f.argmax(1) == y_te).mean())
    span = float(np.ptp(f))

    print(f"digits test split: {len(x_te)} images; calibration: {len(calib)} training images (max |y|)")
    print(f"float IR top-1 {100 * float_acc:.2f}%" + ("" if torch_acc is None else
          f"   (torch model: {100 * torch_acc:.2f}%)") + f"   float logit range {span:.3f}")
    header = f"{'W/A':>5}  {'float top-1':>11}  {'int top-1':>9}  {'same class':>10}  {'mean |dlogit|/range':>19}  {'int run (s)':>11}"
    print(header)
    print("-" * len(header))
    for bits in BITS:
        q = quantize.quantize_graph(graph, calib, bits, bits)
        x_int = quantize.quantize_input(q, x_te)
        t0 = time.perf_counter()
        logits = reference.run(q, x_int)
        t_int = time.perf_counter() - t0
        real = quantize.dequantize(q.node(q.output).quant, logits)
        int_acc = float((logits.argmax(1) == y_te).mean())
        same = float((logits.argmax(1) == f.argmax(1)).mean())
        rel = float(np.abs(real - f).mean() / span)
        print(f"{bits:>2}/{bits:<2}  {100 * float_acc:>10.2f}%  {100 * int_acc:>8.2f}%  {100 * same:>9.2f}%  "
              f"{rel:>19.4f}  {t_int:>11.3f}")
    print(f"(float IR forward of the test split: {t_float:.3f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
