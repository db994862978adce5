"""Pre-defined periodic sparsity (pSConv): masks fixed before training, repeating with period P.

The kernel of output channel `m` and input channel `c` takes `table[(m + c + 1) % P]`. Schemes:
  - `pSC{n}`: n of 9 taps per kernel, the shapes of `PS{n}_P4` (`pSC9` is dense);
  - `PS{n}_P{P}`: n taps per kernel, period P;
  - `PSD{n}_P{P}`: like PS, but the kernel of residue 0 is dense.
Pattern k keeps the centre and an arc of n-1 taps of the 8-tap ring starting at ring position
2k-1, so for n = 4 the four patterns are the four 2x2 quadrants that contain the centre, and the
shapes rotate by a quarter turn from one residue to the next (period 4 at most, then repeating).
The first convolution, 1x1 convolutions and the classifier stay dense.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

# Raster tap indices (row * 3 + col) around the 3x3 ring, clockwise from the top-left corner.
RING = (0, 1, 2, 5, 8, 7, 6, 3)
CENTRE = 4


@dataclass(frozen=True)
class Scheme:
    name: str
    taps: int  # nonzeros per sparse kernel
    period: int
    dense_residue0: bool  # PSD: residue 0 is a dense kernel

    def table(self) -> np.ndarray:
        """The P masks, shape (P, 3, 3), uint8."""
        masks = np.zeros((self.period, 9), dtype=np.uint8)
        for k in range(self.period):
            if self.dense_residue0 and k == 0 or self.taps == 9:
                masks[k] = 1
                continue
            masks[k, CENTRE] = 1 if self.taps >= 1 else 0
            for j in range(self.taps - 1):
                masks[k, RING[(2 * k - 1 + j) % 8]] = 1
        return masks.reshape(self.period, 3, 3)

    def density(self) -> float:
        return float(self.table().mean())


def parse_scheme(name: str) -> Scheme:
    m = re.fullmatch(r"pSC([1-9])", name)
    if m:
        return Scheme(name, int(m.group(1)), 4, False)
    m = re.fullmatch(r"(PSD|PS)([1-9])_P([1-9][0-9]*)", name)
    if m:
        return Scheme(name, int(m.group(2)), int(m.group(3)), m.group(1) == "PSD")
    raise ValueError(f"unknown periodic scheme '{name}' (expected pSC<n>, PS<n>_P<P> or PSD<n>_P<P>)")


def layer_mask(table: np.ndarray, out_channels: int, in_channels: int) -> np.ndarray:
    """The (M, C, 3, 3) 0/1 mask of a layer: kernel (m, c) takes table[(m + c + 1) % P]."""
    p = table.shape[0]
    residue = (np.arange(out_channels)[:, None] + np.arange(in_channels)[None, :] + 1) % p
    return table[residue]


def sparse_convs(model) -> list:
    """The convolutions a periodic scheme applies to: 3x3, ungrouped, not the first."""
    from torch import nn

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    return [c for c in convs[1:] if c.kernel_size == (3, 3) and c.groups == 1]


def apply_periodic(model, scheme: str | Scheme) -> dict:
    """Zero the masked weights of every sparse conv and keep them zero through training.

    Returns {conv module: mask tensor}. Gradients are masked by a hook; `reapply` after each
    optimizer step guards against optimizers that move zero-gradient weights (e.g. weight decay).
    """
    import torch

    sch = parse_scheme(scheme) if isinstance(scheme, str) else scheme
    table = sch.table()
    masks = {}
    for conv in sparse_convs(model):
        mask = torch.from_numpy(layer_mask(table, conv.out_channels, conv.in_channels)).to(conv.weight.device, conv.weight.dtype)
        with torch.no_grad():
            conv.weight.mul_(mask)
        conv.weight.register_hook(lambda g, mask=mask: g * mask)
        masks[conv] = mask
    return masks


def reapply(masks: dict) -> None:
    import torch

    with torch.no_grad():
        for conv, mask in masks.items():
            conv.weight.mul_(mask)
