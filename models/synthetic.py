"""Real-size networks with seeded random weights, quantized on synthetic calibration images.

The hardware benchmarks and soak tests need the shapes, sparsity and bit widths of real networks
(ResNet-18, VGG-16), not their accuracy: `quantized_graph` applies a periodic scheme to a torch
model's sparse convolutions, exports it through `torch.export` and hwgen's own loader, and
quantizes it on a few seeded Gaussian images, so the result is the same on every machine.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np


def quantized_graph(model, input_shape: tuple[int, int, int], *, scheme: str | None = None, weight_bits: int = 8,
                    act_bits: int = 8, seed: int = 0, calib_images: int = 4):
    """The quantized hwgen Graph of `model` (random weights from `seed`) with `scheme` on its 3x3 convs."""
    import torch

    from hwgen.ingest import load_model
    from hwgen.quantize import quantize_graph
    from models.periodic import apply_periodic
    from models.zoo import export_pt2

    torch.manual_seed(seed)
    for p in model.parameters():  # a fresh draw even for a model built before the seed was set
        torch.nn.init.normal_(p, std=0.1) if p.dim() > 1 else None
    if scheme:
        apply_periodic(model, scheme)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.pt2"
        export_pt2(model, input_shape, path)
        graph = load_model(path)
    calib = np.random.default_rng(seed).standard_normal((calib_images, *input_shape)).astype(np.float32)
    return quantize_graph(graph, calib, weight_bits=weight_bits, act_bits=act_bits)


def quantized_zoo(name: str, **kwargs):
    """`quantized_graph` of a model of `models.zoo` by name (e.g. "resnet18-cifar")."""
    from models.zoo import build

    model, shape = build(name)
    return quantized_graph(model, shape, **kwargs)
