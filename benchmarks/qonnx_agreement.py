"""hwgen on Brevitas QAT exports, against the executors of the model's own toolchain.

A `models.brevitas_digits.BrevitasDigitsCNN` (4-bit weights, 8-bit activations, PS4_P4 periodic
masks on the three sparse convolutions) is trained on the digits split twice: with power-of-two
scales (FINN's usual case) and with float scales. Over all 360 test digits it prints:
  - power-of-two, QONNX: `hwgen run` (dequantized with the output scale) against qonnx's
    `execute_onnx`, bit for bit, raw export and after qonnx-cleanup;
  - power-of-two, QDQ (export_onnx_qcdq) against onnxruntime;
  - float scales, QONNX and QDQ: the largest logit difference in LSBs (of the output scale), the
    largest per-layer difference (each layer fed the model's own input), top-1 agreement;
  - `hwgen generate` + `hwgen simulate` (Verilator, random bus stalls) of the power-of-two network
    against `hwgen run` on --sim-images images (0 skips it; the Verilator build takes minutes).
Exits 1 if anything promised bit-exact is not.

  .venv/bin/python benchmarks/qonnx_agreement.py [--epochs 10] [--sim-images 8]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from hwgen import reference, sim_target, simulate
from hwgen.datasets import load_digits_split
from hwgen.ingest.onnx import _parse
from hwgen.ingest.qonnx import exactness, load_quantized
from hwgen.quantize import quantize_input
from models import brevitas_digits as bd


def hwgen_logits(path, x):
    tensors = {}
    g = load_quantized(path, _parse(path), None, tensors)
    acc = reference.run(g, quantize_input(g, x))
    return g, tensors, acc, g.node(g.output).quant.out_scale


def compare(name, ours_acc, scale, theirs, labels, rows):
    ours = (ours_acc * scale).astype(np.float32)
    lsb = np.abs(ours_acc - theirs.astype(np.float64) / scale).max()
    rows.append((name, int(np.all(ours == theirs, axis=1).sum()), len(theirs), f"{lsb:.3g}",
                 f"{np.abs(ours_acc).max():.0f}",
                 f"{(ours.argmax(1) == theirs.argmax(1)).mean() * 100:.2f}",
                 f"{(ours.argmax(1) == labels).mean() * 100:.2f}", f"{(theirs.argmax(1) == labels).mean() * 100:.2f}"))
    return bool(np.array_equal(ours, theirs))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--sim-images", type=int, default=8)
    ap.add_argument("--images", type=int, default=360, help="test images compared (default: all 360)")
    args = ap.parse_args()
    _, _, x, y = load_digits_split()
    x, y = x[:args.images], y[:args.images]
    work = Path(tempfile.mkdtemp(prefix="qonnx_agreement_"))
    rows, ok, notes = [], True, []
    t0 = time.time()
    for pow2 in (True, False):
        tag = "pow2" if pow2 else "float"
        model, masks = bd.build(pow2=pow2)
        bd.train(model, masks, args.epochs)
        qonnx_file = bd.export(model, work / f"{tag}_qonnx.onnx")
        qcdq_file = bd.export(model, work / f"{tag}_qcdq.onnx", "qcdq")
        clean_file = bd.cleanup(qonnx_file, work / f"{tag}_clean.onnx")
        g, tensors, acc, scale = hwgen_logits(qonnx_file, x)
        oracle = bd.run_qonnx(qonnx_file, x, names=sorted(set(tensors.values())))
        diffs = bd.layer_lsb_diffs(g, tensors, oracle)
        same = compare(f"{tag} scales, QONNX vs qonnx execute_onnx", acc, scale, oracle["output"], y, rows)
        notes.append(f"{tag}: inexact nodes {exactness(g) or 'none'}; per-layer max |diff| (LSB) "
                     + ", ".join(f"{k} {v}" for k, v in diffs.items()))
        _, _, acc_c, scale_c = hwgen_logits(clean_file, x)
        same_c = compare(f"{tag} scales, QONNX after qonnx-cleanup", acc_c, scale_c, oracle["output"], y, rows)
        _, _, acc_q, scale_q = hwgen_logits(qcdq_file, x)
        same_q = compare(f"{tag} scales, QDQ vs onnxruntime", acc_q, scale_q, bd.run_onnxruntime(qcdq_file, x), y, rows)
        if pow2:
            ok &= same and same_c and same_q and not exactness(g) and max(diffs.values()) == 0
            pow2_graph = g
        else:
            ok &= max(diffs.values()) <= 1
    header = ("model / oracle", "bit-exact images", "of", "max |logit diff| (LSB)", "max |logit| (LSB)",
              "top-1 agree %",
              "hwgen acc %", "oracle acc %")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    for n in notes:
        print(n)
    print(f"(training {args.epochs} epochs per network and both executors: {time.time() - t0:.0f} s)")
    if args.sim_images:
        t1 = time.time()
        engine = sim_target.from_graph(pow2_graph, work / "gen")
        rep = simulate.run_network(engine, quantize_input(pow2_graph, x[:args.sim_images]), y[:args.sim_images],
                                   workdir=work / "gen" / "sim")
        net = rep.to_json()["network"]
        tot = rep.to_json()["totals"]
        print(f"hwgen generate + simulate (Verilator, hostile bus) on {args.sim_images} images of the pow2 network: "
              f"{tot['mismatches']} mismatches, logits equal to hwgen run: {net['logits_match']}, "
              f"DRAM bytes {tot['dram_bytes_measured']} measured = {tot['dram_bytes_predicted']} predicted "
              f"({time.time() - t1:.0f} s)")
        ok &= rep.passed and bool(net["logits_match"])
    print("PASS" if ok else "FAIL: a promised bit-exact comparison differs")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
