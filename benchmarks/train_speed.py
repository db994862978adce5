"""Training speed on the CPU: images per second of float training, of quantization-aware training
(`models.qat.QATNet`, whose forward is the integer pipeline in float64) and of the integer reference
(`hwgen eval`), for the digits CNN and ResNet-18-CIFAR at reduced and full width.

Each figure times `models.train.fit` for one epoch over `--images` random images (batch 64, the
thread count of --threads), after one untimed warm-up step, in CPU seconds of this process
(`time.process_time`): on a shared, loaded machine wall time measures the neighbours, CPU time
measures the code. With one thread, images per CPU second are images per second on an idle core.

    .venv/bin/python benchmarks/train_speed.py [--threads 1] [--images 256] [--models digits,resnet18-cifar:16,...]
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from hwgen.ir import macs
from models import experiments as ex
from models.qat import QATNet
from models.train import Data, FitOptions, fit

DEFAULT = "digits,resnet18-cifar:16,resnet18-cifar:64"
NATIVE = {"digits-cnn": (1, 8), "resnet18-cifar": (3, 32)}


def images_per_second(model, data: Data, options: FitOptions) -> float:
    warm = Data(data.x_train[:options.batch_size], data.y_train[:options.batch_size], data.x_test, data.y_test)
    fit(model, warm, 1, 1e-3, options=options, progress=False)
    start = time.process_time()
    fit(model, data, 1, 1e-3, options=options, progress=False)
    return len(data.x_train) / (time.process_time() - start)


def reference_images_per_second(net: QATNet, x: torch.Tensor) -> float:
    graph = net.quantized_graph()
    start = time.process_time()
    ex.reference_logits(graph, x.numpy())
    return len(x) / (time.process_time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--models", default=DEFAULT, help="name[:width],... (default %(default)s)")
    args = parser.parse_args()
    options = FitOptions(device="cpu", threads=args.threads)
    print(f"CPU, {args.threads} thread(s), batch {options.batch_size}, {args.images} images per figure; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print("| model | width | MMACs / image | float training img/s | QAT img/s | integer reference img/s |  (per CPU second)")
    print("|---|---:|---:|---:|---:|---:|")
    for spec in args.models.split(","):
        name, _, width = spec.partition(":")
        arch = ex.Arch(name, int(width) if width else None)
        channels, side = NATIVE[arch.name]
        g = torch.Generator().manual_seed(0)
        x = torch.rand(args.images, channels, side, side, generator=g)
        y = torch.randint(0, 10, (args.images,), generator=g)
        y[:10] = torch.arange(10)
        data = Data(x, y, x[:64], y[:64])
        model = arch.build(data, 0)
        float_speed = images_per_second(model, data, options)
        net = QATNet(model, 8, 8, x[:64])
        qat_speed = images_per_second(net, data, options)
        torch.set_num_threads(args.threads)
        ref_speed = reference_images_per_second(net, x[:64])
        g_ir = net.graph()
        mmacs = sum(macs(g_ir, n) for n in g_ir.layers()) / 1e6
        print(f"| {arch.name} | {arch.width or 'paper'} | {mmacs:.1f} | {float_speed:.1f} | {qat_speed:.1f} | "
              f"{ref_speed:.1f} |", flush=True)


if __name__ == "__main__":
    main()
