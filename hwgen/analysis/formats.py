"""Weight storage formats and their exact bit costs (stored values and metadata separately).

Conventions (docs/analysis.md has the worked examples the tests check):
- a *row* is one output channel; its columns run over (input channel, kernel row, kernel col);
- `csr4` / `csr8`: each stored entry is a W-bit value plus a b-bit relative index counting the
  zeros before it in its row (EIE / Deep Compression). A run of g zeros longer than 2^b - 1
  inserts g // 2^b filler entries (a stored zero with its index). Trailing zeros cost nothing.
  Row pointers: M + 1 of them, each wide enough for the entry count: bit_length(entries);
- `bitmask`: one bit per weight plus the nonzero values;
- `pattern` (PCONV): the library is the layer's pattern shapes (from sparsity detection; the
  table of a periodic layer), each kernel stored in the smallest shape that contains it (a kernel
  that quantization thinned keeps its shape, with stored zeros); per kept kernel a ceil(log2 K)-bit id and the values at its pattern's taps; the kept-kernel
  list only when whole kernels are removed, as the cheaper of a bitmap (M*C bits) or an index
  list (ceil(log2 C) bits per kept kernel plus M + 1 row pointers); the library once (K*R*S bits);
- `periodic` (pSConv): the values at the taps of table[(m + c) mod P] for every kernel, and the P
  masks once (P*R*S bits); the offset is folded into the table by rotating it, so nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FORMATS = ("dense", "bitmask", "csr4", "csr8", "pattern", "periodic")


@dataclass(frozen=True, eq=False)
class FormatCost:
    row_values: np.ndarray  # stored weight values per output channel (with filler/structural zeros)
    weight_bits: int
    meta_bits: int  # everything else: masks, indices, pointers, ids, tables
    kernel_values: np.ndarray | None = None  # (M, C) stored values per kernel, for formats that store kernels whole
    kernel_ids: bool = False  # each kernel names its shape by an id (pattern)

    @property
    def values(self) -> int:
        return int(self.row_values.sum())

    @property
    def data_bits(self) -> int:
        return self.values * self.weight_bits

    @property
    def bits(self) -> int:
        return self.data_bits + self.meta_bits


def _ceil_log2(n: int) -> int:
    return max(0, int(n - 1).bit_length())


def _rows(mask: np.ndarray) -> np.ndarray:
    return mask.reshape(mask.shape[0], -1)


def dense(mask: np.ndarray, wbits: int) -> FormatCost:
    m, c, r, s = mask.shape
    per_kernel = np.full((m, c), r * s, dtype=np.int64)
    return FormatCost(per_kernel.sum(axis=1), wbits, 0, per_kernel)


def bitmask(mask: np.ndarray, wbits: int) -> FormatCost:
    per_kernel = np.count_nonzero(mask.reshape(*mask.shape[:2], -1), axis=2).astype(np.int64)
    return FormatCost(per_kernel.sum(axis=1), wbits, int(mask.size), per_kernel)


def zero_runs(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, length) of every run of zeros that a nonzero of the same row follows.

    Runs at the end of a row are left out: CSR never encodes them.
    """
    rows = _rows(mask)
    m, width = rows.shape
    padded = np.zeros((m, width + 2), dtype=np.int8)
    padded[:, 1:-1] = ~rows
    step = np.diff(padded.ravel())
    starts, ends = np.flatnonzero(step == 1), np.flatnonzero(step == -1)
    followed = ends % (width + 2) != width
    return starts[followed] // (width + 2), (ends - starts)[followed]


def csr(mask: np.ndarray, wbits: int, index_bits: int, runs: tuple[np.ndarray, np.ndarray] | None = None) -> FormatCost:
    """`runs`: `zero_runs(mask)` if already computed (csr4 and csr8 share it)."""
    m = mask.shape[0]
    run_row, run_len = zero_runs(mask) if runs is None else runs
    fillers = np.bincount(run_row, weights=run_len >> index_bits, minlength=m).astype(np.int64)
    row_entries = np.count_nonzero(_rows(mask), axis=1).astype(np.int64) + fillers
    entries = int(row_entries.sum())
    pointers = (m + 1) * entries.bit_length()
    return FormatCost(row_entries, wbits, entries * index_bits + pointers)


def _kernel_codes(mask: np.ndarray) -> np.ndarray:
    """Each kernel's mask as an integer (bit i = tap i in raster order), shape (M, C)."""
    m, c = mask.shape[:2]
    packed = np.packbits(mask.reshape(m, c, -1).astype(bool), axis=2, bitorder="little")
    wide = np.zeros((m, c, 8), dtype=np.uint8)  # kernels up to 8x8 taps: one little-endian int64 each
    wide[:, :, :packed.shape[2]] = packed
    return wide.view("<i8")[:, :, 0]


def _popcount(codes: np.ndarray) -> np.ndarray:
    return np.unpackbits(codes.astype(">u8").view(np.uint8).reshape(*codes.shape, 8), axis=-1).sum(axis=-1)


def _library_codes(patterns: np.ndarray) -> np.ndarray:
    """Masks (K, R, S) of 0/1 as kernel codes, shape (K,)."""
    pats = np.asarray(patterns).astype(bool)
    return _kernel_codes(pats.reshape(1, pats.shape[0], *pats.shape[1:]))[0]


def periodic_table(mask: np.ndarray, period: int, table: np.ndarray | None = None,
                   codes: np.ndarray | None = None) -> np.ndarray:
    """The P table masks as codes, indexed by (m + c) mod P: the detected `table` (P, R, S) if
    given, joined with the union of the masks of each residue class (so no nonzero is ever lost).

    A tap that quantization happened to zero in some kernel is still a tap of its pattern.
    `codes`: the mask's `_kernel_codes`, if already computed (as for the other formats below).
    """
    m, c = mask.shape[:2]
    residue = (np.arange(m)[:, None] + np.arange(c)[None, :]) % period
    out = np.zeros(period, dtype=np.int64) if table is None else _library_codes(table)
    np.bitwise_or.at(out, residue.ravel(), (_kernel_codes(mask) if codes is None else codes).ravel())
    return out


def pattern(mask: np.ndarray, wbits: int, library: np.ndarray | None = None,
            codes: np.ndarray | None = None) -> FormatCost:
    """`library`: the layer's pattern masks (K, R, S) if known (sparsity detection, or the table of
    a periodic layer); kernels are stored in the smallest library shape that contains them, and a
    kernel no shape contains adds its own. Without a library, the distinct kernel masks are it."""
    m, c, r, s = mask.shape
    codes = _kernel_codes(mask) if codes is None else codes
    kept = codes != 0
    lib = np.unique(_library_codes(library)) if library is not None else np.zeros(0, dtype=np.int64)
    lib = lib[lib != 0]
    uncovered = ~((codes[kept][:, None] & ~lib[None, :]) == 0).any(axis=1)
    lib = np.union1d(lib, codes[kept][uncovered])
    sizes = _popcount(lib)
    fits = (codes[:, :, None] & ~lib[None, None, :]) == 0
    per_kernel = np.where(fits, sizes[None, None, :], r * s + 1).min(axis=2) * kept
    n_kept = int(kept.sum())
    ids = n_kept * _ceil_log2(lib.size)
    if n_kept == m * c:
        kept_list = 0
    else:
        index_list = n_kept * _ceil_log2(c) + (m + 1) * int(n_kept).bit_length()
        kept_list = min(m * c, index_list)
    per_kernel = per_kernel.astype(np.int64)
    return FormatCost(per_kernel.sum(axis=1), wbits, ids + kept_list + lib.size * r * s, per_kernel, True)


def periodic(mask: np.ndarray, wbits: int, period: int, table: np.ndarray | None = None,
             codes: np.ndarray | None = None) -> FormatCost:
    m, c, r, s = mask.shape
    residue = (np.arange(m)[:, None] + np.arange(c)[None, :]) % period
    per_kernel = _popcount(periodic_table(mask, period, table, codes))[residue].astype(np.int64)
    return FormatCost(per_kernel.sum(axis=1), wbits, period * r * s, per_kernel)


def codes_to_masks(codes: np.ndarray, r: int, s: int) -> np.ndarray:
    return ((codes[:, None] >> np.arange(r * s)) & 1).astype(bool).reshape(-1, r, s)


def storage(mask: np.ndarray, wbits: int, kind: str, period: int | None,
            patterns: np.ndarray | None = None) -> dict[str, FormatCost | None]:
    """Every format's cost for a layer of sparsity `kind`; None where a format does not apply.

    `patterns` (K, R, S): the pattern library sparsity detection found, if any; for a periodic
    layer its table indexed by (m + c) mod P. A periodic layer is a pattern layer whose library
    is its table.
    """
    codes = _kernel_codes(mask) if kind in ("pattern", "connectivity", "periodic") else None
    if kind == "periodic":
        patterns = codes_to_masks(periodic_table(mask, period, patterns, codes), *mask.shape[2:])
    runs = zero_runs(mask)
    return {
        "dense": dense(mask, wbits),
        "bitmask": bitmask(mask, wbits),
        "csr4": csr(mask, wbits, 4, runs),
        "csr8": csr(mask, wbits, 8, runs),
        "pattern": pattern(mask, wbits, patterns, codes) if codes is not None else None,
        "periodic": periodic(mask, wbits, period, patterns, codes) if kind == "periodic" else None,
    }


def smallest(costs: dict[str, FormatCost | None]) -> str:
    """The applicable format with the fewest bits (the earlier in FORMATS on a tie)."""
    return min((name for name in FORMATS if costs[name] is not None), key=lambda n: costs[n].bits)
