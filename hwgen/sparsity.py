"""Sparsity structure of a conv2d / linear layer, detected from its weights.

`detect(node)` looks at the 0/1 mask of every kernel (the `kh x kw` weights of one output channel
`m` and one input channel `c` of its group; a linear layer is a 1x1 convolution) and reports the
first of these that explains the zeros:

- `dense`: no zero weight.
- `periodic` (pSConv): the mask of kernel (m, c) is a function of (m + c) mod P, for the smallest
  such P (1 <= P <= MAX_PERIOD, every residue class holding at least two kernels), and the masks are
  not all dense. Reported in the paper's convention `mask(m, c) = table[(m + c + offset) % P]`
  with the offset always 1: the table is rotated to fit, so a layer masked by `models.periodic`
  reports exactly its scheme's table (at its smallest period: PS4_P8 repeats after 4).
- `pattern` (PCONV / PatDNN): the kept kernels use a small library of masks (at most
  MAX_PATTERNS, and at most a quarter as many masks as kept kernels), not all dense. Kernels that
  are entirely zero are connectivity sparsity: `kept_kernels < total_kernels`, `connectivity` True.
- `connectivity`: only whole kernels are removed; every kept kernel is dense (an all-zero layer
  is connectivity with no kept kernel and an empty library).
- `unstructured`: anything else with zeros (and zeros in 1x1 kernels, where removing a kernel is
  removing a weight).

Quantization can zero a weight inside a pattern. The *structural mask* of a residue class (or of a
library pattern) is the union of the nonzero positions of its kernels; a layer matches exactly
when every kernel fills its structural mask. When neither periodic nor pattern matches exactly, a
structure still counts if at least MIN_FILL of its structural positions hold nonzeros (the rest are
taken as weights quantized to zero) and the structure accounts for at least MIN_EXPLAINED of the
layer's zeros (so scattered zeros are not mistaken for structure); of a periodic and a pattern
explanation, the fuller wins.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .errors import HwgenError
from .ir import Node

KINDS = ("dense", "periodic", "pattern", "connectivity", "unstructured")
MAX_PERIOD = 64
MAX_PATTERNS = 32
MIN_FILL = 0.6
MIN_EXPLAINED = 0.75
PERIODIC_OFFSET = 1  # the pSConv paper's convention: table[(m + c + 1) % P]
_MAX_DISTINCT_MASKS = 1024  # beyond this a layer is unstructured; bounds the subset search
_FILL_SLACK = 0.01  # multiples of the true period can fill a little better by chance


@dataclass
class SparsityInfo:
    kind: str  # one of KINDS
    period: int | None  # periodic: P
    offset: int | None  # periodic: always PERIODIC_OFFSET
    patterns: list  # periodic: the P-entry table; pattern/connectivity: the library; else []
    nonzeros: int  # nonzero weights
    weights: int  # all weights
    kept_kernels: int  # kernels with at least one nonzero weight
    total_kernels: int  # M * C / groups
    taps_per_kernel: int  # most taps any kernel's structural mask has (what the datapath must hold)
    kernel_shape: tuple[int, int]
    # pattern/connectivity: (M, C/groups) library index of each kernel's structural mask, -1 if removed
    pattern_ids: np.ndarray | None = None
    exact: bool = True  # every kept kernel fills its structural mask (no quantized-away taps)

    @property
    def connectivity(self) -> bool:
        """Whole kernels are removed."""
        return self.kept_kernels < self.total_kernels

    def to_json(self) -> dict:
        """The fields of `hwgen inspect --json` (the issue's schema)."""
        return {"kind": self.kind, "period": self.period, "offset": self.offset, "patterns": self.patterns}


def kernel_masks(node: Node) -> np.ndarray:
    """The bool (M, C/groups, kh * kw) nonzero masks of a conv2d or linear layer's kernels."""
    if node.op not in ("conv2d", "linear") or node.weight is None:
        raise HwgenError(f"node '{node.name}': sparsity is defined for conv2d and linear layers, not {node.op}")
    w = np.asarray(node.weight)
    if node.op == "linear":
        w = w[:, :, None, None]
    if w.ndim != 4:
        raise HwgenError(f"node '{node.name}': weight of shape {w.shape} is not a layer weight")
    m, cg, kh, kw = w.shape
    return (w != 0).reshape(m, cg, kh * kw)


def detect(node: Node) -> SparsityInfo:
    """The sparsity structure of a conv2d or linear layer (see the module docstring)."""
    nz = kernel_masks(node)
    m, cg, taps = nz.shape
    shape = (1, 1) if node.op == "linear" else tuple(int(s) for s in node.weight.shape[2:])
    kept = nz.any(-1)
    base = dict(nonzeros=int(nz.sum()), weights=int(nz.size), kept_kernels=int(kept.sum()),
                total_kernels=int(m * cg), kernel_shape=shape)
    if base["nonzeros"] == nz.size:
        return SparsityInfo("dense", None, None, [], taps_per_kernel=taps, **base)
    if base["nonzeros"] == 0:
        return SparsityInfo("connectivity", None, None, [], taps_per_kernel=0, **base)  # every kernel removed
    periodic = _periodic(nz, base["nonzeros"])
    if periodic is not None and periodic[2] == 1.0:
        return _periodic_info(periodic, shape, base)
    distinct = _distinct_masks(nz, kept) if taps > 1 else None
    library = _library(nz, kept, distinct, base["nonzeros"], exact_only=True) if distinct else None
    # An exact library larger than the period's table is the table plus the subsets that weights
    # quantized to zero carve out of it: the period is then the simpler explanation, decided below.
    if library is not None and (periodic is None or len(library[0]) <= len(np.unique(periodic[1], axis=0))):
        return _library_info(library, shape, base)
    library = _library(nz, kept, distinct, base["nonzeros"], exact_only=False) if distinct else None
    if periodic is not None and (library is None or periodic[2] >= library[2]):
        return _periodic_info(periodic, shape, base)
    if library is not None:
        return _library_info(library, shape, base)
    return SparsityInfo("unstructured", None, None, [], taps_per_kernel=int(nz.sum(-1).max()), **base)


class ResidueStats:
    """Kernel statistics per residue `(m + c) % P`, for any period P, from one pass over the kernels.

    Residue classes are sums of anti-diagonals `d = m + c`, so after counting per anti-diagonal
    (how many kernels, how many keep each tap) each candidate P costs O((M + C) * T), not
    O(M * C * T). The sparsity detection and the engine compiler's pattern tables both use it.
    """

    def __init__(self, nz: np.ndarray):
        m, cg, taps = nz.shape
        diagonal = (np.arange(m)[:, None] + np.arange(cg)[None, :]).ravel()
        self.diagonals = m + cg - 1
        flat = nz.reshape(-1, taps)
        self.diag_size = np.bincount(diagonal, minlength=self.diagonals)
        self.diag_taps = np.stack([np.bincount(diagonal, weights=flat[:, t], minlength=self.diagonals)
                                   for t in range(taps)], 1)

    def residues(self, p: int) -> tuple[np.ndarray, np.ndarray]:
        """(kernels per residue (P,), kernels keeping each tap per residue (P, T)) for period `p`."""
        rows = -(-self.diagonals // p) * p
        size = np.zeros(rows, dtype=self.diag_size.dtype)
        size[:self.diagonals] = self.diag_size
        count = np.zeros((rows, self.diag_taps.shape[1]))
        count[:self.diagonals] = self.diag_taps
        return size.reshape(-1, p).sum(0), count.reshape(-1, p, count.shape[1]).sum(0)


def _periodic(nz: np.ndarray, nonzeros: int):
    """(P, structural masks (P, T) indexed by (m + c) % P, fill) of the best period, or None."""
    stats = ResidueStats(nz)
    candidates = []
    for p in range(1, min(MAX_PERIOD, stats.diagonals) + 1):
        size, count = stats.residues(p)
        if size.min() < 2:
            continue  # a class of one kernel is no evidence of a period
        struct = count > 0
        if struct.all():
            continue
        structural = int((struct.sum(1) * size).sum())
        fill = nonzeros / structural
        if fill == 1.0:
            return p, struct, 1.0
        if _explains(structural, nonzeros, nz.size):
            candidates.append((p, struct, fill))
    if not candidates:
        return None
    best = max(c[2] for c in candidates)
    p, struct, fill = next(c for c in candidates if c[2] >= best - _FILL_SLACK)
    return (p, struct, fill) if fill >= MIN_FILL else None


def _explains(structural: int, nonzeros: int, weights: int) -> bool:
    """Whether a structure keeping `structural` positions accounts for enough of the zeros."""
    return structural == nonzeros or (weights - structural) >= MIN_EXPLAINED * (weights - nonzeros)


def _periodic_info(found, shape, base) -> SparsityInfo:
    p, struct, fill = found
    table = struct[(np.arange(p) - PERIODIC_OFFSET) % p]  # table[(r + offset) % P] = struct[r]
    return SparsityInfo("periodic", int(p), PERIODIC_OFFSET, [_nested(t, shape) for t in table],
                        taps_per_kernel=int(struct.sum(1).max()), exact=fill == 1.0, **base)


def _distinct_masks(nz: np.ndarray, kept: np.ndarray):
    """(distinct masks (K, T) bool, index of each kept kernel's mask, kernels per mask)."""
    taps = nz.shape[-1]
    rows = nz.reshape(-1, taps)[kept.ravel()]
    if taps > 62:
        masks, inverse, counts = np.unique(rows, axis=0, return_inverse=True, return_counts=True)
        return masks, inverse.ravel(), counts
    # One int64 code per kernel: a 1-d unique is much faster than a row-wise one.
    codes, inverse, counts = np.unique(rows @ (np.int64(1) << np.arange(taps, dtype=np.int64)),
                                       return_inverse=True, return_counts=True)
    masks = ((codes[:, None] >> np.arange(taps)) & 1).astype(bool)
    return masks, inverse.ravel(), counts


def _library(nz: np.ndarray, kept: np.ndarray, distinct, nonzeros: int, exact_only: bool):
    """(library (K, T) bool, per-kernel ids (M, C), fill) of a pattern library, or None."""
    m, cg, taps = nz.shape
    kept_flat = kept.ravel()
    masks, inverse, counts = distinct
    n_kept = int(kept_flat.sum())
    if exact_only:
        if len(masks) > MAX_PATTERNS or 4 * len(masks) > n_kept:
            return None
        library, assign = masks, np.arange(len(masks))
    else:
        if len(masks) > _MAX_DISTINCT_MASKS:
            return None
        # The library is the maximal masks; each kernel takes the smallest library mask holding it.
        subset = (masks[:, None, :] <= masks[None, :, :]).all(-1)  # subset[i, j]: mask i inside mask j
        maximal = ~((subset & ~subset.T).any(1))
        library = masks[maximal]
        if len(library) > MAX_PATTERNS or 4 * len(library) > n_kept:
            return None
        inside = subset[:, maximal]
        sizes = library.sum(1)
        assign = np.argmin(np.where(inside, sizes[None, :], taps + 1), axis=1)
    structural = int((library.sum(1)[assign] * counts).sum())
    fill = nonzeros / structural
    if fill < MIN_FILL or not _explains(structural, nonzeros, nz.size):
        return None
    # Library order: most used first, then by mask bits, so the ids are deterministic.
    usage = np.bincount(assign, weights=counts, minlength=len(library))
    order = sorted(range(len(library)), key=lambda k: (-usage[k], [-int(b) for b in library[k]]))
    rank = np.empty(len(library), dtype=np.int64)
    rank[order] = np.arange(len(library))
    ids = np.full(m * cg, -1, dtype=np.int64)
    ids[kept_flat] = rank[assign[inverse]]
    return library[order], ids.reshape(m, cg), fill


def _library_info(found, shape, base) -> SparsityInfo:
    library, ids, fill = found
    kind = "connectivity" if library.all() else "pattern"
    return SparsityInfo(kind, None, None, [_nested(t, shape) for t in library],
                        taps_per_kernel=int(library.sum(1).max()), pattern_ids=ids, exact=fill == 1.0, **base)


def _nested(mask: np.ndarray, shape: tuple[int, int]) -> list:
    """A flat 0/1 mask as kh lists of kw ints (the JSON form)."""
    return np.asarray(mask, dtype=np.int64).reshape(shape).tolist()
