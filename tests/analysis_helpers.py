"""Workloads built directly (no checkpoint) for the analysis tests."""

from __future__ import annotations

import numpy as np

from hwgen.analysis.workload import Layer


def conv_layer(name: str, m: int, c: int, size: int, k: int = 3, stride: int = 1, mask=None,
               kind: str = "dense", period: int | None = None, bits: int = 8) -> Layer:
    pad = k // 2
    out = (size + 2 * pad - k) // stride + 1
    if mask is None:
        mask = np.ones((m, c, k, k), dtype=bool)
    return Layer(name, "conv2d", m, c, k, k, size, size, out, out, (stride, stride), (pad, pad), (1, 1),
                 bits, bits, bits, np.asarray(mask, dtype=bool), kind, period)


def export_sparse(model_name: str, sparsity: str, path) -> None:
    """Export a zoo model (random weights, seed 0) as .pt2 with `sparsity` applied to its 3x3 convs:
    'dense', a periodic scheme name (e.g. PSD1_P16), 'pattern' (8-pattern library, 25% of kernels
    removed) or 'unstructured' (70% of weights, by magnitude)."""
    import torch

    from models import pattern_pruning, periodic, unstructured
    from models.zoo import build, export_pt2

    torch.manual_seed(0)
    model, shape = build(model_name)
    convs = periodic.sparse_convs(model)
    if sparsity == "pattern":
        library = pattern_pruning.pattern_library(convs, k=8)
        masks = pattern_pruning.masks_of(pattern_pruning.project(convs, library, 0.25))
    elif sparsity == "unstructured":
        masks = unstructured.magnitude_masks(convs, 0.7)
    elif sparsity != "dense":
        periodic.apply_periodic(model, sparsity)
        masks = {}
    else:
        masks = {}
    with torch.no_grad():
        for conv, mask in masks.items():
            conv.weight.mul_(mask)
    export_pt2(model, shape, path)
