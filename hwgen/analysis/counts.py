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
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from ..intmath import REQUANT_ENTRY_BITS
from .arch import Architecture
from .energy import EnergyTable
from .formats import FormatCost
from .workload import Layer

DIMS = "MCPQ"
RELEVANT = {"weights": "MC", "inputs": "CPQ", "outputs": "MPQ"}


@dataclass(frozen=True)
class Mapping:
    order: str  # DRAM-level loop order, outermost first: a permutation of MCPQ
    m: int  # tile sizes held in the global buffer
    c: int
    p: int
    q: int

    def as_dict(self) -> dict:
        return {"order": self.order, "tiles": {"M": self.m, "C": self.c, "P": self.p, "Q": self.q}}


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
    """Per tile size of output rows (cols): the input rows (cols) read, summed and maximal over tiles."""

    def __init__(self, layer: Layer, axis: int):
        self.layer, self.axis = layer, axis
        self.size = layer.p if axis == 0 else layer.q
        self._lookup = lru_cache(maxsize=None)(self._compute)

    def _compute(self, tile: int) -> tuple[int, int]:
        counts = [self.layer.touched(self.axis, s, min(s + tile, self.size)).size for s in range(0, self.size, tile)]
        return sum(counts), max(counts)

    def __call__(self, tiles: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        uniq, inv = np.unique(tiles, return_inverse=True)
        table = np.array([self._lookup(int(t)) for t in uniq], dtype=np.int64).reshape(-1, 2)
        return table[inv, 0].reshape(tiles.shape), table[inv, 1].reshape(tiles.shape)

    def total(self) -> int:
        return self.layer.touched(self.axis, 0, self.size).size


def compute_steps(layer: Layer, cost: FormatCost, arch: Architecture) -> int:
    rows = cost.row_values
    pad = (-rows.size) % arch.rows
    busiest = np.concatenate([rows, np.zeros(pad, dtype=rows.dtype)]).reshape(-1, arch.rows).max(axis=1)
    return int(busiest.sum()) * _ceil_div(layer.p * layer.q, arch.cols)


def evaluate(layer: Layer, cost: FormatCost, arch: Architecture, table: EnergyTable, order: str,
             m, c, p, q, rows: Extents, cols: Extents) -> dict:
    """Counts for tile sizes m, c, p, q (numpy arrays, broadcast together) in loop `order`.

    Returns arrays: DRAM bytes per tensor, the buffer bits the tiles need, buffer and register
    file bits moved, energy per level (pJ), cycles.
    """
    m, c, p, q = (np.asarray(x, dtype=np.int64) for x in (m, c, p, q))
    trips = {"M": _ceil_div(layer.m, m), "C": _ceil_div(layer.c, c),
             "P": _ceil_div(layer.p, p), "Q": _ceil_div(layer.q, q)}
    row_sum, row_max = rows(p)
    col_sum, col_max = cols(q)
    outputs_n = layer.m * layer.p * layer.q

    w_mult = refetches(order, trips, "weights")
    weights = _ceil_div(cost.data_bits, 8) * w_mult
    metadata = _ceil_div(cost.meta_bits, 8) * w_mult
    if layer.groups == 1:
        inputs = _ceil_div(layer.c * row_sum * col_sum * layer.in_bits * refetches(order, trips, "inputs"), 8)
    else:  # each output-channel tile reads its own groups' inputs: the input tile depends on M too
        inputs = _ceil_div(trips["M"] * layer.group_span(m) * row_sum * col_sum * layer.in_bits, 8)
    outputs = np.full_like(weights, _ceil_div(outputs_n * layer.out_bits, 8))
    visits = refetches(order, trips, "outputs")
    psums = _ceil_div(2 * (visits - 1) * outputs_n * arch.psum_bits, 8)
    dram = weights + metadata + inputs + outputs + psums

    c_tiled = trips["C"] > 1
    need = (_ceil_div(cost.bits * m * c, layer.m * layer.c)
            + c * (layer.group_span(m) // layer.c) * row_max * col_max * layer.in_bits
            + m * p * q * np.where(c_tiled, arch.psum_bits, layer.out_bits))

    # Buffer traffic: fills from and drains to DRAM, array reads, output writes, partial sums.
    steps = compute_steps(layer, cost, arch)
    pixel_blocks = _ceil_div(layer.p * layer.q, arch.cols)
    array_reads = cost.bits * pixel_blocks + (steps // pixel_blocks) * layer.p * layer.q * layer.in_bits
    glb_psums = 2 * (trips["C"] - 1) * outputs_n * arch.psum_bits
    array_bits = array_reads + outputs_n * layer.out_bits + glb_psums  # buffer <-> array, not DRAM fills
    glb_bits = 8 * dram + array_bits
    executed = cost.values * layer.p * layer.q
    rf_bits = executed * (layer.weight_bits + layer.in_bits + 2 * arch.psum_bits)

    e_dram = 8 * dram * table.memory(arch.dram_energy, arch.name).pj_per_bit()
    e_sram = (glb_bits * table.memory(arch.glb_energy, arch.name).pj_per_bit(arch.glb_kib)
              + rf_bits * table.memory(arch.rf_energy, arch.name).pj_per_bit(arch.rf_bytes / 1024))
    e_mac = executed * table.mac(arch.mac_energy, arch.name).pj(layer.weight_bits, layer.in_bits)
    cycles = np.maximum(steps, np.ceil(dram / arch.dram_bytes_per_cycle).astype(np.int64))
    return {
        "weights": weights, "metadata": metadata, "inputs": inputs, "outputs": outputs, "psums": psums,
        "dram": dram, "need_bits": need, "glb_bits": glb_bits, "array_bits": array_bits, "rf_bits": rf_bits, "macs": executed,
        "e_dram": e_dram, "e_sram": e_sram, "e_mac": e_mac, "energy": e_dram + e_sram + e_mac, "cycles": cycles,
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
