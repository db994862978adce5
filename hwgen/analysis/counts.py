"""Closed-form access counts of one layer under one mapping (vectorised over candidate mappings).

The model, two levels (DRAM <-> global buffer <-> MAC array):
- A mapping tiles the output channels M, input channels C and output rows P / cols Q; the buffer
  holds one tile of each tensor at a time (single-buffered), kernels whole. The tiles are visited
  in a loop order (outermost first). A tensor's tile is fetched again whenever a loop it depends
  on advances; a loop it does not depend on that sits *outside* its innermost relevant loop (of
  more than one trip) re-fetches it that many times (weights depend on M, C; inputs on C, P, Q;
  outputs on M, P, Q).
- A grouped convolution's input tile holds the C-tile channels of each group its M tile covers,
  and is fetched again for every M tile (the trips of C, P, Q are in its sum already).
- Inputs are the rows/cols of the input a tile actually reads, without padding (generated on
  chip); neighbouring tiles re-read their shared halo, so halos cost traffic only when P or Q
  is tiled. Weights move in their storage format, metadata with them.
- Outputs are written once at their bit width. When C is tiled the buffer holds `psum_bits`
  partial sums; if the C loop also sits outside an output loop, partial sums spill to DRAM:
  written on each of the V visits but the last, read back on each but the first.
- The array computes `rows` output channels x `cols` pixels per step and skips nothing within
  a format's stored values: a group of `rows` channels takes as many steps as its busiest
  channel has stored values, for each block of `cols` pixels. Cycles are the larger of those
  steps and DRAM bytes / bandwidth.

An architecture may describe how its DRAM moves data (hwgen.analysis.arch): whole beats, a
per-layer record, activations as whole contiguous rows, values in fixed-width fields, weights
in lane groups (`lane_steps`: the M loop then steps over lane groups, a tile holding
ceil(M tile / rows) of them) and per-channel tables loaded with each lane group for every output
tile. A mapping may keep outputs out of the buffer (`bypass: [outputs]`: written straight to
DRAM, so C must not be tiled) and group lanes by residue class (`lanes: residue`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..errors import HwgenError
from ..intmath import REQUANT_ENTRY_BITS
from .arch import Architecture
from .energy import EnergyTable
from .formats import FormatCost
from .workload import Layer, touched

DIMS = "MCPQ"
RELEVANT = {"weights": "MC", "inputs": "CPQ", "outputs": "MPQ"}


LANES = ("contiguous", "residue")


@dataclass(frozen=True)
class Mapping:
    order: str  # DRAM-level loop order, outermost first: a permutation of MCPQ
    m: int  # tile sizes held in the global buffer
    c: int
    p: int
    q: int
    lanes: str = "contiguous"  # output channels of a lane group: consecutive, or one residue class mod `period`
    period: int = 1
    bypass: tuple[str, ...] = ()  # tensors the buffer does not hold (outputs: written as they are computed)
    fold: int = 1  # the array runs the layer as rows * fold x cols / fold (lane groups of rows * fold channels)

    def as_dict(self) -> dict:
        out = {"order": self.order, "tiles": {"M": self.m, "C": self.c, "P": self.p, "Q": self.q}}
        if self.lanes != "contiguous":
            out["lanes"] = self.lanes
        if self.fold != 1:
            out["fold"] = self.fold
        if self.bypass:
            out["bypass"] = list(self.bypass)
        return out


def _ceil_div(a, b):
    return -(-a // b)


def refetches(order: str, trips: dict, tensor: str):
    """How many times each tile of `tensor` is fetched: the trips of the loops it does not depend
    on that sit outside its innermost relevant loop. A loop of one trip does not move any tile."""
    rel = RELEVANT[tensor]
    mult, inside_relevant = 1, False
    for d in reversed(order):
        if d in rel:
            inside_relevant = inside_relevant | (trips[d] > 1)
        else:
            mult = mult * np.where(inside_relevant, trips[d], 1)
    return mult


class Extents:
    """Per tile size of output rows (cols): the input rows (cols) read, summed and maximal over tiles.

    `span`: a tile reads the contiguous run from its first to its last touched row (a DMA of whole
    rows), rather than the touched rows alone.
    """

    def __init__(self, layer: Layer, axis: int, span: bool = False):
        self.layer, self.axis, self.span = layer, axis, span
        self.size = layer.p if axis == 0 else layer.q
        # what the counts depend on: equal layers (a sweep's many points) share them
        self.geometry = ((layer.r, layer.s)[axis], (layer.h, layer.w)[axis], self.size, layer.stride[axis],
                         layer.padding[axis], layer.dilation[axis], span)
        self._last = (None, None)  # the mapping search asks for the same tiles once per loop order

    def __call__(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        key = (tiles.shape, tiles.tobytes())
        if self._last[0] != key:
            uniq, inv = np.unique(tiles, return_inverse=True)
            table = np.array([_extent(self.geometry, int(t)) for t in uniq], dtype=np.int64).reshape(-1, 2)
            self._last = (key, (table[inv, 0].reshape(tiles.shape), table[inv, 1].reshape(tiles.shape)))
        return self._last[1]

    def total(self) -> int:
        return self.layer.touched(self.axis, 0, self.size).size

    def beats(self, tiles: np.ndarray, field_bits: int, beat_bytes: int) -> tuple[np.ndarray, np.ndarray]:
        """(sum, max) over the tiles of the whole beats each reads of a row of `field_bits` fields padded
        to beats: the beats covering the run from its first to its last touched position, or the whole
        row when one tile spans the layer (`rows` transfers)."""
        return beat_cover(self.geometry, tiles, field_bits, beat_bytes)


def beat_cover(geometry: tuple, tiles: np.ndarray, field_bits: int, beat_bytes: int) -> tuple[np.ndarray, np.ndarray]:
    """`Extents.beats` of an axis' `geometry` (an output axis: kernel 1, stride 1, no padding)."""
    uniq, inv = np.unique(np.asarray(tiles), return_inverse=True)
    table = np.array([_beat_extent(geometry, int(t), field_bits, 8 * beat_bytes) for t in uniq],
                     dtype=np.int64).reshape(-1, 2)
    shape = np.shape(tiles)
    return table[inv, 0].reshape(shape), table[inv, 1].reshape(shape)


@lru_cache(maxsize=None)
def _extent(geometry: tuple, tile: int) -> tuple[int, int]:
    """(sum, max) over the tiles of `tile` output rows of the input rows each reads (see Extents)."""
    k, extent, size, stride, pad, dil, span = geometry
    starts = np.arange(0, size, tile)
    stops = np.minimum(starts + tile, size)
    if dil == 1 and stride <= k:  # a window's rows are contiguous and overlap the next's: one run per tile
        lo = np.maximum(starts * stride - pad, 0)
        hi = np.minimum((stops - 1) * stride - pad + k - 1, extent - 1)
        counts = np.maximum(hi - lo + 1, 0)
    else:
        counts = []
        for a, b in zip(starts, stops):
            t = touched(k, extent, stride, pad, dil, int(a), int(b))
            counts.append(int(t[-1] - t[0] + 1) if span and t.size else t.size)
        counts = np.asarray(counts)
    return int(counts.sum()), int(counts.max())


@lru_cache(maxsize=None)
def _beat_extent(geometry: tuple, tile: int, field_bits: int, beat_bits: int) -> tuple[int, int]:
    """(sum, max) over the tiles of `tile` outputs of the beats covering the positions each reads (see Extents.beats)."""
    k, extent, size, stride, pad, dil, _ = geometry
    if tile >= size:
        whole = _ceil_div(extent * field_bits, beat_bits)
        return whole, whole
    counts = []
    for a in range(0, size, tile):
        t = touched(k, extent, stride, pad, dil, a, min(a + tile, size))
        counts.append(_ceil_div((int(t[-1]) + 1) * field_bits, beat_bits) - int(t[0]) * field_bits // beat_bits
                      if t.size else 0)
    return sum(counts), max(counts)


def compute_steps(layer: Layer, cost: FormatCost, arch: Architecture) -> int:
    rows = cost.row_values
    pad = (-rows.size) % arch.rows
    busiest = np.concatenate([rows, np.zeros(pad, dtype=rows.dtype)]).reshape(-1, arch.rows).max(axis=1)
    return int(busiest.sum()) * _ceil_div(layer.p * layer.q, arch.cols)


def lane_group_steps(cost: FormatCost, rows: int, lanes: str, period: int) -> np.ndarray:
    """Weight steps of each lane group of `rows` output channels (arch `lane_steps`).

    Per input channel a group steps through its busiest lane's stored values; contiguous groups run
    one step count for the whole layer (its largest kernel's), residue groups their own.
    """
    kv = cost.kernel_values
    m, c = kv.shape
    if lanes == "contiguous":
        return np.full(_ceil_div(m, rows), c * int(kv.max(initial=0)), dtype=np.int64)
    cls = np.arange(m) % period
    per_class = _ceil_div(np.bincount(cls, minlength=period), rows)
    group = (np.concatenate([[0], np.cumsum(per_class)[:-1]])[cls] + (np.arange(m) // period) // rows)
    busiest = np.zeros((int(per_class.sum()), c), dtype=np.int64)
    np.maximum.at(busiest, group, kv)
    return busiest.sum(axis=1)


def evaluate(layer: Layer, cost: FormatCost, arch: Architecture, table: EnergyTable, order: str,
             m, c, p, q, rows: Extents, cols: Extents, lanes: str = "contiguous", period: int = 1,
             bypass: tuple[str, ...] = (), fold: int = 1) -> dict:
    """Counts for tile sizes m, c, p, q (numpy arrays, broadcast together) in loop `order`.

    Returns arrays: DRAM bytes per tensor, the buffer bits the tiles need, buffer and register
    file bits moved, energy per level (pJ), cycles.
    """
    return Candidates(layer, cost, arch, table, m, c, p, q, rows, cols, lanes, period, bypass, fold).counts(order)


class Candidates:
    """Tile-size candidates of one layer: what does not depend on the loop order is computed once,
    `counts(order)` adds the order's refetches (the mapping search tries every order on them)."""

    def __init__(self, layer: Layer, cost: FormatCost, arch: Architecture, table: EnergyTable, m, c, p, q,
                 rows: Extents, cols: Extents, lanes: str = "contiguous", period: int = 1, bypass: tuple[str, ...] = (),
                 fold: int = 1):
        m, c, p, q = (np.asarray(x, dtype=np.int64) for x in (m, c, p, q))
        group_rows = arch.rows * fold  # output channels of a lane group
        lane_slots, m = m, np.minimum(m, layer.m)
        self.layer, self.arch = layer, arch

        def beats(bits):  # bytes of one transfer of `bits`, in whole beats
            return _ceil_div(_ceil_div(bits, 8), arch.beat_bytes) * arch.beat_bytes

        in_field, out_field = arch.act_field(layer.in_bits), arch.act_field(layer.out_bits)
        w_field = arch.weight_field(layer.weight_bits)
        if arch.lane_steps:
            if cost.kernel_values is None:
                raise HwgenError(f"layer '{layer.name}': its weight format does not store whole kernels, so it "
                                 f"cannot move in lane steps")
            steps = lane_group_steps(cost, group_rows, lanes, period)
            n_groups, tile_groups = steps.size, _ceil_div(lane_slots, group_rows)
            group_bytes = beats(int(steps.max(initial=0)) * group_rows * w_field)
            id_bytes = beats(layer.c * group_rows * arch.id_bits) if cost.kernel_ids else 0
            m_trips = _ceil_div(n_groups, tile_groups)
            self.weights_once, self.metadata_once = n_groups * group_bytes, n_groups * id_bytes
            # on chip a weight and an id take their own bits, not their DRAM fields
            weight_tile_bits = np.minimum(tile_groups, n_groups) * group_rows * (
                int(steps.max(initial=0)) * layer.weight_bits + (layer.c * arch.id_bits if cost.kernel_ids else 0))
        else:
            n_groups = _ceil_div(layer.m, group_rows)
            m_trips = _ceil_div(layer.m, m)
            self.weights_once, self.metadata_once = beats(cost.values * w_field), beats(cost.meta_bits)
            weight_tile_bits = _ceil_div(cost.bits * m * c, layer.m * layer.c)
        trips = {"M": m_trips, "C": _ceil_div(layer.c, c), "P": _ceil_div(layer.p, p), "Q": _ceil_div(layer.q, q)}
        self.trips = trips
        row_sum, row_max = rows(p)
        col_sum, col_max = cols(q)
        outputs_n = layer.m * layer.p * layer.q
        if arch.row_transfers:  # rows in whole beats: of each, the beats covering a column tile's columns
            beat_sum, _ = cols.beats(q, in_field, arch.beat_bytes)
            channel_bits = row_sum * 8 * arch.beat_bytes * beat_sum
            # on chip a column tile's row keeps its columns from the first touched to the last, at A bits
            row_bits = np.where(q >= layer.q, layer.w, col_max) * layer.in_bits
        else:
            channel_bits = row_sum * col_sum * in_field
            row_bits = col_max * layer.in_bits
        self.input_bits_once = layer.c * channel_bits  # every input tile fetched once
        if layer.groups > 1:  # each output-channel tile reads its own groups' inputs: the input tile depends on M too
            self.grouped_inputs = _ceil_div(trips["M"] * layer.group_span(m) * channel_bits, 8)
        if arch.row_transfers:  # each output row's beats covering a column tile's columns, tile by tile
            out_cols = (1, layer.q, layer.q, 1, 0, 1, False)
            self.outputs = layer.m * layer.p * arch.beat_bytes * beat_cover(out_cols, q, out_field, arch.beat_bytes)[0]
        else:
            self.outputs = _ceil_div(outputs_n * out_field, 8)
        self.psum_bits_per_visit = 2 * outputs_n * arch.psum_bits
        self.tables = (n_groups * beats(8 * group_rows * arch.channel_bytes) * trips["P"] * trips["Q"]
                       if arch.channel_bytes else 0)
        self.descriptor = beats(8 * arch.layer_bytes) if arch.layer_bytes else 0

        c_tiled = trips["C"] > 1
        out_need = 0 if "outputs" in bypass else m * p * q * np.where(c_tiled, arch.psum_bits, layer.out_bits)
        self.need_bits = weight_tile_bits + c * (layer.group_span(m) // layer.c) * row_max * row_bits + out_need

        # Buffer traffic: fills from and drains to DRAM, array reads, output writes, partial sums.
        self.steps = compute_steps(layer, cost, arch)
        pixel_blocks = _ceil_div(layer.p * layer.q, arch.cols)
        array_reads = cost.bits * pixel_blocks + (self.steps // pixel_blocks) * layer.p * layer.q * layer.in_bits
        glb_psums = 2 * (trips["C"] - 1) * outputs_n * arch.psum_bits
        self.array_bits = array_reads + outputs_n * layer.out_bits + glb_psums  # buffer <-> array, not DRAM fills
        self.executed = cost.values * layer.p * layer.q
        self.rf_bits = self.executed * (layer.weight_bits + layer.in_bits + 2 * arch.psum_bits)
        self.dram_pj = table.memory(arch.dram_energy, arch.name).pj_per_bit()
        self.glb_pj = table.memory(arch.glb_energy, arch.name).pj_per_bit(arch.glb_kib)
        self.e_rf = self.rf_bits * table.memory(arch.rf_energy, arch.name).pj_per_bit(arch.rf_bytes / 1024)
        self.e_mac = self.executed * table.mac(arch.mac_energy, arch.name).pj(layer.weight_bits, layer.in_bits)

    def counts(self, order: str) -> dict:
        """The counts of every candidate in loop `order` (see `evaluate`)."""
        trips = self.trips
        w_mult = refetches(order, trips, "weights")
        weights, metadata = self.weights_once * w_mult, self.metadata_once * w_mult
        if self.layer.groups == 1:
            inputs = _ceil_div(self.input_bits_once * refetches(order, trips, "inputs"), 8)
        else:
            inputs = self.grouped_inputs
        outputs = np.zeros_like(weights) + self.outputs
        psums = _ceil_div((refetches(order, trips, "outputs") - 1) * self.psum_bits_per_visit, 8)
        tables = np.zeros_like(weights) + self.tables
        descriptor = np.full_like(weights, self.descriptor)
        dram = weights + metadata + tables + descriptor + inputs + outputs + psums
        glb_bits = 8 * dram + self.array_bits
        e_dram = 8 * dram * self.dram_pj
        e_sram = glb_bits * self.glb_pj + self.e_rf
        cycles = np.maximum(self.steps, np.ceil(dram / self.arch.dram_bytes_per_cycle).astype(np.int64))
        return {
            "weights": weights, "metadata": metadata, "tables": tables, "descriptor": descriptor, "inputs": inputs,
            "outputs": outputs, "psums": psums, "dram": dram, "need_bits": self.need_bits, "glb_bits": glb_bits,
            "array_bits": self.array_bits, "rf_bits": self.rf_bits, "macs": self.executed, "e_dram": e_dram,
            "e_sram": e_sram, "e_mac": self.e_mac, "energy": e_dram + e_sram + self.e_mac, "cycles": cycles,
        }


def compulsory(layer: Layer, smallest: FormatCost, rows: Extents, cols: Extents, tables: bool = False) -> dict:
    """Each tensor moved once, weights in their smallest format, inputs without padding.

    `tables`: the architecture moves each output channel's bias and requantization through DRAM
    too (the generated engine), counted once at `intmath.REQUANT_ENTRY_BITS`.
    """
    inputs = _ceil_div(layer.in_channels * rows.total() * cols.total() * layer.in_bits, 8)
    padded_h = layer.h + 2 * layer.padding[0]
    padded_w = layer.w + 2 * layer.padding[1]
    out = {
        "weights": _ceil_div(smallest.data_bits, 8) + _ceil_div(smallest.meta_bits, 8),
        "inputs": inputs,
        "outputs": _ceil_div(layer.m * layer.p * layer.q * layer.out_bits, 8),
        "tables": _ceil_div(layer.m * REQUANT_ENTRY_BITS, 8) if tables else 0,
    }
    out["total"] = out["weights"] + out["inputs"] + out["outputs"] + out["tables"]
    out["inputs_padded"] = _ceil_div(layer.in_channels * padded_h * padded_w * layer.in_bits, 8)
    return out
