"""ResNet-18 (CIFAR stem) on the digits upscaled to 32x32: dense float twin vs PSD1_P16 W8A8 (QAT,
integer reference on the written checkpoint), with the CPU and wall time the table takes.

Runs `hwgen train --table --model resnet18-cifar --width W --scheme PSD1_P16 --epochs E --qat-epochs Q`
and exits 1 when the PSD1_P16 integer accuracy is more than 1.5 points below the dense float twin,
or when QAT's accuracy is not the checkpoint's. Width 16 (a 16x cheaper ResNet-18) takes about 10
CPU-minutes; the paper's width 64 is about 10x that on a CPU (benchmarks/train_speed.py).

    .venv/bin/python benchmarks/resnet18_digits.py [--width 16] [--epochs 8] [--qat-epochs 2] \
        [--threads 1] [--checkpoint-dir runs/r18-digits]

With --checkpoint-dir the table saves every epoch there, and the same command resumes an
interrupted run (the times printed are then those of the resumed part).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from hwgen.cli import main as hwgen

MAX_GAP_POINTS = 1.5


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--width", type=int, default=16)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (the result depends on it)")
    parser.add_argument("--checkpoint-dir", type=Path, help="save every epoch there and resume from it")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "table.json"
        wall, cpu = time.perf_counter(), time.process_time()
        code = hwgen(["train", "--table", "--model", "resnet18-cifar", "--width", str(args.width), "--scheme",
                      "PSD1_P16", "--epochs", str(args.epochs), "--qat-epochs", str(args.qat_epochs),
                      "--threads", str(args.threads), "--no-progress", "--out", str(out)]
                     + ([] if args.checkpoint_dir is None else ["--checkpoint-dir", str(args.checkpoint_dir)]))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        if code:
            return code
        rows = json.loads(out.read_text())["rows"]
    dense, psd = rows
    gap = 100 * (dense["float"] - psd["w8a8"])
    print(f"dense float twin {100 * dense['float']:.2f} %, PSD1_P16 W8A8 integer reference "
          f"{100 * psd['w8a8']:.2f} %: gap {gap:+.2f} points (bound {MAX_GAP_POINTS}); "
          f"{cpu / 60:.1f} CPU-minutes, {wall / 60:.1f} minutes wall")
    exact = all(r["w8a8"] == r["w8a8_qat"] for r in rows)
    return 0 if gap <= MAX_GAP_POINTS and exact else 1


if __name__ == "__main__":
    sys.exit(main())
