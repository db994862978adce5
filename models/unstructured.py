"""Unstructured magnitude pruning with fine-tuning: the baseline pattern sparsity is compared to.

The smallest-magnitude weights of the sparse convolutions (`periodic.sparse_convs`: 3x3, not the
first; the classifier stays dense, as for the other methods) are zeroed, globally across layers or
per layer, in a few rounds of growing sparsity with masked fine-tuning after each round (gradual
pruning recovers accuracy better than one cut). Exactly `round(sparsity * n)` weights are pruned.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from .periodic import sparse_convs
from .train import Data, FitOptions, fit

SCOPES = ("global", "layer")


def magnitude_masks(convs: list[nn.Conv2d], sparsity: float, scope: str = "global") -> dict:
    """{conv: 0/1 mask} zeroing the `sparsity` fraction of smallest |w| (ties to the lower index)."""
    if not 0.0 <= sparsity < 1.0:
        raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
    if scope not in SCOPES:
        raise ValueError(f"scope must be one of {SCOPES}, got '{scope}'")
    mags = [c.weight.detach().abs().double().flatten().cpu().numpy() for c in convs]
    groups = [mags] if scope == "global" else [[m] for m in mags]
    keeps = []
    for group in groups:
        flat = np.concatenate(group)
        keep = np.ones(flat.size, dtype=np.float32)
        keep[np.argsort(flat, kind="stable")[:int(round(sparsity * flat.size))]] = 0.0
        keeps += np.split(keep, np.cumsum([m.size for m in group])[:-1])
    return {c: torch.from_numpy(k.reshape(c.weight.shape)).to(c.weight.device) for c, k in zip(convs, keeps)}


def magnitude_prune(model: nn.Module, data: Data, sparsity: float, *, scope: str = "global", rounds: int = 3,
                    epochs_per_round: int = 5, lr: float = 1e-3, seed: int = 0,
                    progress: bool = True, options: FitOptions = FitOptions()) -> dict:
    """Prune a trained `model` in place to `sparsity` over its sparse convs; returns {conv: mask}."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    convs = sparse_convs(model)
    masks = {}
    for r in range(rounds):
        masks = magnitude_masks(convs, sparsity * (r + 1) / rounds, scope)
        with torch.no_grad():
            for conv, mask in masks.items():
                conv.weight.mul_(mask)
        fit(model, data, epochs_per_round, lr, seed + r, masks=masks, progress=progress, options=options,
            desc=f"unstructured round {r + 1}/{rounds}")
    return masks
