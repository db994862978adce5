"""Row bands and loop nests: how each layer runs on the engine's fixed buffers, and what it moves.

The input buffer holds one row band of a layer (every input channel's rows for `band_rows`
output rows, halo rows included); the weight buffer one or more lane groups' weights. Per layer
`layer_tiling` picks the tallest band that fits and the loop nest (weights streamed once per
band, or resident for several groups while the bands run) with the fewest DRAM bytes;
`tiled_bytes` counts them from the nest. The engine walks the same nest (`gateware/engine.py`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import HwgenError
from . import descriptor
from .memory_map import ceil_div, groups, row_beats, table_group_beats, weight_group_beats
from .params import EngineParams
from .plan import LayerPlan


@dataclass(frozen=True)
class Tiling:
    """How a layer runs on the engine's buffers: row bands and the loop nest.

    Band `b` computes output rows `b * band_rows ..` (the last band may be shorter) from the input
    rows `band_inputs[b] = (lo, hi)` its windows read (halo rows included, rows outside the tensor
    left out). Each input channel gets `chan_rows` input buffer slots, `2**slot_shift` rows per word.
    `resident_groups` = 0: weights streamed, bands outside lane groups (input rows read once, every
    group's weights and table once per band); k > 0: k lane groups' weights stay in the weight
    buffer while every band runs on them (weights read once, input rows once per k groups, tables
    once per band).
    """

    band_rows: int
    chan_rows: int
    slot_shift: int
    resident_groups: int
    band_inputs: tuple[tuple[int, int], ...]

    @property
    def bands(self) -> int:
        return len(self.band_inputs)


def band_inputs(plan: LayerPlan, band_rows: int) -> list[tuple[int, int]]:
    """(lo, hi): the input rows each band of `band_rows` output rows reads (the engine's BAND_ROWS state)."""
    h, oh, s = plan.in_shape[1], plan.out_shape[1], plan.stride
    rows, pad = plan.kernel, plan.kernel // 2
    out = []
    for oy0 in range(0, oh, band_rows):
        y0 = oy0 * s - pad
        out.append((max(y0, 0), min(y0 + (min(band_rows, oh - oy0) - 1) * s + rows, h)))
    return out


def band_words(plan: LayerPlan, params: EngineParams, band_rows: int) -> int:
    """Input buffer words a band of `band_rows` output rows needs."""
    chan_rows = max(hi - lo for lo, hi in band_inputs(plan, band_rows))
    return ceil_div(plan.in_shape[0] * chan_rows, 1 << params.slot_shift(plan.in_shape[2]))


def group_buffer_words(plan: LayerPlan, params: EngineParams) -> int:
    """Weight buffer memory words one lane group's weights take (a fill beat per word part)."""
    return ceil_div(weight_group_beats(plan, params), params.weight_beats_per_word)


def tiled_bytes(plan: LayerPlan, params: EngineParams, tiling: Tiling) -> dict:
    """DRAM bytes per tensor of a layer run with `tiling`: what its loop nest reads and writes."""
    bb = params.beat_bytes
    c, _, w = plan.in_shape
    m, oh, ow = plan.out_shape
    g = groups(plan, params)
    once = c * sum(hi - lo for lo, hi in tiling.band_inputs) * row_beats(w, params) * bb
    k = tiling.resident_groups
    return {
        "descriptor": ceil_div(descriptor.DESCRIPTOR_BYTES, bb) * bb,
        "weights": (1 if k else tiling.bands) * g * weight_group_beats(plan, params) * bb,
        "tables": tiling.bands * g * table_group_beats(params) * bb,
        "inputs": (ceil_div(g, k) if k else 1) * once,
        "outputs": m * oh * row_beats(ow, params) * bb,
    }


MAX_RESIDENT = 255  # lane groups whose weights stay at once (the descriptor's 8-bit field)


def layer_tiling(plan: LayerPlan, params: EngineParams, glb_kib: int | None = None) -> Tiling:
    """The row bands and loop nest of `plan` on `params`' buffers with the fewest DRAM bytes.

    The tallest band that fits the input buffer needs the fewest halo rows and re-reads in either
    nest; then as many lane groups as the weight buffer holds stay resident, if that moves fewer
    bytes than streaming the weights (ties: streamed, the untiled engine's nest). Pattern library
    layers keep one group resident at most (the kernel-id buffer holds one group's ids).
    """
    k = plan.kernel
    if k > params.kernel_max:
        raise HwgenError(f"layer '{plan.name}': a {k}x{k} kernel needs an engine built for {k}x{k} windows, "
                         f"this one has {params.kernel_max}x{params.kernel_max}")
    c, oh = plan.in_shape[0], plan.out_shape[1]
    shift = params.slot_shift(plan.in_shape[2])
    capacity = params.input_words << shift
    start = min(oh, capacity // c // plan.stride + 3)
    band_rows = next((b for b in range(start, 0, -1) if band_words(plan, params, b) <= params.input_words), None)
    if band_rows is None:
        need = band_words(plan, params, 1) * params.row_elems * params.act_bits
        raise HwgenError(f"layer '{plan.name}': its smallest row band (one output row of {c} channels) needs "
                         f"--glb-kib {ceil_div(need, 8 * 1024)} or more, got {glb_kib}")
    rows = tuple(band_inputs(plan, band_rows))
    streamed = Tiling(band_rows, max(hi - lo for lo, hi in rows), shift, 0, rows)
    k = min(groups(plan, params), MAX_RESIDENT, 1 if plan.ids is not None else
            params.weight_mem_depth // group_buffer_words(plan, params))
    resident = dataclasses.replace(streamed, resident_groups=k)
    if sum(tiled_bytes(plan, params, resident).values()) < sum(tiled_bytes(plan, params, streamed).values()):
        return resident
    return streamed
