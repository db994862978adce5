"""Pattern pruning (PCONV, PatDNN) with connectivity pruning, by ADMM or iterative projection.

Every kept 3x3 kernel of a sparse convolution keeps `taps` weights (4 by default, the centre always
among them) in one of the K shapes of a *pattern library*; connectivity pruning removes whole
kernels. The library is the K most frequent shapes of a trained model (each kernel votes for the
shape of its largest non-centre magnitudes). Given a library and a connectivity rate, `project`
is the Euclidean projection onto the constraint set: each kernel takes the library pattern that
keeps the most of its energy, then the lowest-norm projected kernels of the layer are dropped.

Two ways to reach the constraint set from a trained dense model:
  - `admm_prune` (the PCONV / ADMM-NN method): an auxiliary Z = project(W + U) and a scaled dual
    U; the loss carries rho/2 ||W - Z + U||^2, Z and U are updated after every epoch
    (Z <- project(W + U), U <- U + W - Z), then W is hard-pruned to project(W) and retrained
    with the masks fixed;
  - `iterative_prune`: project, fine-tune with the masks fixed, repeat, with the connectivity
    rate growing to its target over the rounds.
The first convolution, 1x1 convolutions and the classifier stay dense (`periodic.sparse_convs`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .periodic import CENTRE, sparse_convs
from .train import Data, FitOptions, TrainHook, fit

KERNEL_TAPS = 9


def candidate_patterns(taps: int = 4) -> np.ndarray:
    """All 3x3 shapes with `taps` weights including the centre, (N, 9) uint8, in lexicographic order."""
    if not 1 <= taps <= KERNEL_TAPS:
        raise ValueError(f"taps must be 1..9, got {taps}")
    ring = [i for i in range(KERNEL_TAPS) if i != CENTRE]
    shapes = []
    for keep in itertools.combinations(ring, taps - 1):
        s = np.zeros(KERNEL_TAPS, dtype=np.uint8)
        s[[CENTRE, *keep]] = 1
        shapes.append(s)
    return np.stack(shapes)


def _kernels(conv: nn.Conv2d) -> np.ndarray:
    """The layer's kernels as float64 (M * C, 9)."""
    return conv.weight.detach().double().reshape(-1, KERNEL_TAPS).cpu().numpy()


def pattern_library(convs: list[nn.Conv2d], k: int = 8, taps: int = 4) -> np.ndarray:
    """The `k` most frequent `taps`-weight shapes (centre kept) of the kernels of `convs`, (k, 3, 3).

    A kernel votes for the shape made of the centre and its `taps - 1` largest other magnitudes;
    ties in magnitude and in frequency go to the lower index, so the library is deterministic.
    """
    cands = candidate_patterns(taps)
    if not 1 <= k <= len(cands):
        raise ValueError(f"library size must be 1..{len(cands)} for {taps}-tap patterns, got {k}")
    index = {c.tobytes(): i for i, c in enumerate(cands)}
    votes = np.zeros(len(cands), dtype=np.int64)
    for conv in convs:
        mag = np.abs(_kernels(conv))
        mag[:, CENTRE] = np.inf  # the centre is always kept
        top = np.argsort(-mag, axis=1, kind="stable")[:, :taps]
        shapes = np.zeros_like(mag, dtype=np.uint8)
        np.put_along_axis(shapes, top, 1, axis=1)
        for s in shapes:
            votes[index[s.tobytes()]] += 1
    order = np.argsort(-votes, kind="stable")[:k]
    return cands[np.sort(order)].reshape(k, 3, 3)


@dataclass
class Projection:
    """A layer's pattern assignment: pattern id per kernel (-1 = pruned) and the 0/1 weight mask."""

    pattern: np.ndarray  # int64 (M, C)
    mask: np.ndarray  # float32 (M, C, 3, 3)


def project_weight(weight: np.ndarray, library: np.ndarray, connectivity: float) -> Projection:
    """Euclidean projection of a (M, C, 3, 3) weight onto `library` patterns with whole-kernel pruning.

    Exactly `round(connectivity * M * C)` kernels are pruned: those whose best projection keeps the
    least energy (ties to the lower kernel index).
    """
    if not 0.0 <= connectivity < 1.0:
        raise ValueError(f"connectivity rate must be in [0, 1), got {connectivity}")
    m, c = weight.shape[:2]
    lib = library.reshape(len(library), KERNEL_TAPS).astype(np.float64)
    energy = (weight.reshape(m * c, KERNEL_TAPS).astype(np.float64) ** 2) @ lib.T  # (kernels, K)
    best = np.argmax(energy, axis=1)  # first maximum: ties to the lower pattern id
    kept_energy = energy[np.arange(m * c), best]
    n_pruned = int(round(connectivity * m * c))
    pruned = np.argsort(kept_energy, kind="stable")[:n_pruned]
    pattern = best.copy()
    pattern[pruned] = -1
    mask = lib[best].copy()
    mask[pruned] = 0.0
    return Projection(pattern.reshape(m, c), mask.reshape(m, c, 3, 3).astype(np.float32))


def project(convs: list[nn.Conv2d], library: np.ndarray, connectivity: float) -> dict:
    """{conv: Projection} of the current weights of `convs`."""
    return {conv: project_weight(conv.weight.detach().cpu().numpy(), library, connectivity) for conv in convs}


def masks_of(projections: dict) -> dict:
    return {conv: torch.from_numpy(p.mask).to(conv.weight.device) for conv, p in projections.items()}


class ADMMHook(TrainHook):
    """The ADMM pieces of `fit`: the augmented-Lagrangian penalty and the Z / U updates per epoch."""

    def __init__(self, convs: list[nn.Conv2d], library: np.ndarray, connectivity: float, rho: float):
        self.convs, self.library, self.connectivity, self.rho = convs, library, connectivity, rho
        self.u = {c: torch.zeros_like(c.weight) for c in convs}
        self.z = self._project_plus_u()

    def _project_plus_u(self) -> dict:
        z = {}
        for c in self.convs:
            v = (c.weight.detach() + self.u[c])
            p = project_weight(v.cpu().numpy(), self.library, self.connectivity)
            z[c] = v * torch.from_numpy(p.mask).to(v.device)
        return z

    def penalty(self, model):
        return sum((c.weight - self.z[c] + self.u[c]).pow(2).sum() for c in self.convs) * (self.rho / 2)

    def after_epoch(self, model, epoch):
        self.z = self._project_plus_u()
        for c in self.convs:
            self.u[c] = self.u[c] + c.weight.detach() - self.z[c]

    def state_dict(self) -> dict:
        return {"z": [self.z[c] for c in self.convs], "u": [self.u[c] for c in self.convs]}

    def load_state_dict(self, state: dict) -> None:
        self.z = dict(zip(self.convs, state["z"]))
        self.u = dict(zip(self.convs, state["u"]))


def _hard_prune(convs, library, connectivity) -> dict:
    projections = project(convs, library, connectivity)
    masks = masks_of(projections)
    with torch.no_grad():
        for conv, mask in masks.items():
            conv.weight.mul_(mask)
    return masks


def admm_prune(model: nn.Module, data: Data, *, k: int = 8, taps: int = 4, connectivity: float = 0.25,
               rho: float = 1e-2, admm_epochs: int = 10, retrain_epochs: int = 10, lr: float = 1e-3,
               seed: int = 0, progress: bool = True,
               options: FitOptions = FitOptions()) -> tuple[dict, np.ndarray]:
    """Pattern- and connectivity-prune a trained `model` in place by ADMM, then retrain with masks.

    Returns ({conv: mask}, library). The masks are fixed: pass them to later `fit` calls (e.g. QAT).
    """
    convs = sparse_convs(model)
    library = pattern_library(convs, k, taps)
    admm = ADMMHook(convs, library, connectivity, rho)
    fit(model, data, admm_epochs, lr, seed, hooks=[admm], progress=progress, options=options,
        desc="pattern admm")
    masks = _hard_prune(convs, library, connectivity)
    fit(model, data, retrain_epochs, lr, seed + 1, masks=masks, progress=progress, options=options,
        desc="pattern retrain")
    return masks, library


def iterative_prune(model: nn.Module, data: Data, *, k: int = 8, taps: int = 4, connectivity: float = 0.25,
                    rounds: int = 3, epochs_per_round: int = 5, lr: float = 1e-3, seed: int = 0,
                    progress: bool = True, options: FitOptions = FitOptions()) -> tuple[dict, np.ndarray]:
    """Pattern- and connectivity-prune a trained `model` in place by iterative magnitude projection."""
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    convs = sparse_convs(model)
    library = pattern_library(convs, k, taps)
    masks = {}
    for r in range(rounds):
        masks = _hard_prune(convs, library, connectivity * (r + 1) / rounds)
        fit(model, data, epochs_per_round, lr, seed + r, masks=masks, progress=progress, options=options,
            desc=f"pattern round {r + 1}/{rounds}")
    return masks, library
