"""Row bands, column tiles and loop nests: how each layer runs on the engine's fixed buffers, and what it moves.

The input buffer holds one tile of a layer: every input channel's rows for `band_rows` output
rows (halo rows included), of every column, or, when not even one output row of full width
fits, of a column tile of `col_beats` output beats (`col_beats * beat_elems` output columns,
halo columns included). The weight buffer holds one or more lane groups' weights. Per layer
`layer_tiling` picks the column tile width (full rows when they fit), the tallest band that fits
and the loop nest (weights streamed once per tile, or resident for several groups while the
tiles run) with the fewest DRAM bytes; `tiled_bytes` counts them from the nest. The engine walks
the same nest (`gateware/engine.py`).

DRAM rows keep their layout (padded to whole beats): a column tile reads, of each input row, the
whole beats covering the columns its windows touch (`col_inputs`), and writes whole output beats
(tiles start on a beat boundary of the output row, so the last beat of a tile is never shared).
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
    """How a layer runs on the engine's buffers: row bands, column tiles and the loop nest.

    Band `b` computes output rows `b * band_rows ..` (the last band may be shorter) from the input
    rows `band_inputs[b] = (lo, hi)` its windows read (halo rows included, rows outside the tensor
    left out). `col_beats` = 0: a band spans every column; n > 0: a band runs in column tiles of n
    output beats, tile `t` computing output columns from `t * n * beat_elems` and reading the input
    beats `col_inputs[t] = (lo, hi)` of each row (halo columns included). The tiles of a band run
    left to right, bands top to bottom. Each input channel gets `chan_rows` input buffer slots,
    `2**slot_shift` rows (of a tile) per word.
    `resident_groups` = 0: weights streamed, tiles outside lane groups (input rows read once, every
    group's weights and table once per tile); k > 0: k lane groups' weights stay in the weight
    buffer while every tile runs on them (weights read once, input rows once per k groups, tables
    once per tile).
    `prefetch`: the weight buffer holds two lane groups, so while a group runs, the next group of
    the tile has its table and weights read into the other half (the same bytes, read earlier);
    without it a group's loads wait for the previous group's run. In the resident nest the runs of a
    set's first tile read the next group's weights into its slot (the set's first group's are read
    before that tile), and every run the next group's table.
    `double`: two bands fit the input buffer (full rows only), so while a band's runs go, the next band's
    input (resident: the set's next band, or the next set's first after its last) is read into the other
    half (`second_word`): only the layer's first input load waits; the reads share the port with the prefetch.
    """

    band_rows: int
    chan_rows: int
    slot_shift: int
    resident_groups: int
    band_inputs: tuple[tuple[int, int], ...]
    col_beats: int = 0
    col_inputs: tuple[tuple[int, int], ...] = ()
    prefetch: bool = False
    double: bool = False

    @property
    def bands(self) -> int:
        return len(self.band_inputs)

    @property
    def col_tiles(self) -> int:
        return max(1, len(self.col_inputs))

    @property
    def tiles(self) -> int:
        """Tiles the layer runs in: bands x column tiles (what the streamed weights and the tables are read for)."""
        return self.bands * self.col_tiles


def band_inputs(plan: LayerPlan, band_rows: int) -> list[tuple[int, int]]:
    """(lo, hi): the input rows each band of `band_rows` output rows reads (the engine's BAND_ROWS state)."""
    h, oh, s = plan.in_shape[1], plan.out_shape[1], plan.stride
    rows, pad = plan.kernel, plan.kernel // 2
    out = []
    for oy0 in range(0, oh, band_rows):
        y0 = oy0 * s - pad
        out.append((max(y0, 0), min(y0 + (min(band_rows, oh - oy0) - 1) * s + rows, h)))
    return out


def col_spans(plan: LayerPlan, params: EngineParams, col_beats: int) -> list[tuple[int, int]]:
    """(lo, hi): the input columns each column tile of `col_beats` output beats touches (the engine's
    TILE_COLS state): its windows' columns, halo included, clipped to the row."""
    w, ow, s, pad = plan.in_shape[2], plan.out_shape[2], plan.stride, plan.kernel // 2
    out = []
    for ox0 in range(0, ow, col_beats * params.beat_elems):
        last = min(ox0 + col_beats * params.beat_elems, ow) - 1
        out.append((max(ox0 * s - pad, 0), min(last * s - pad + plan.kernel, w)))
    return out


def col_inputs(plan: LayerPlan, params: EngineParams, col_beats: int) -> list[tuple[int, int]]:
    """(lo, hi): the input beats of a row each column tile reads: the whole beats covering its columns."""
    be = params.beat_elems
    return [(lo // be, ceil_div(hi, be)) for lo, hi in col_spans(plan, params, col_beats)]


def tile_slot_shift(plan: LayerPlan, params: EngineParams, col_beats: int) -> int:
    """log2 of the input rows (of a column tile, or whole) one input buffer word holds: a tile's row
    keeps only its columns (the fill shifts them to the slot's start), in power-of-two slots."""
    if not col_beats:
        return params.slot_shift(plan.in_shape[2])
    return params.slot_shift(max(hi - lo for lo, hi in col_spans(plan, params, col_beats)))


def band_words(plan: LayerPlan, params: EngineParams, band_rows: int, col_beats: int = 0) -> int:
    """Input buffer words a band of `band_rows` output rows (in column tiles of `col_beats` output beats) needs."""
    chan_rows = max(hi - lo for lo, hi in band_inputs(plan, band_rows))
    return ceil_div(plan.in_shape[0] * chan_rows, 1 << tile_slot_shift(plan, params, col_beats))


def group_buffer_words(plan: LayerPlan, params: EngineParams) -> int:
    """Weight buffer memory words one lane group's weights take (a fill beat per word part)."""
    return ceil_div(weight_group_beats(plan, params), params.weight_beats_per_word)


def can_prefetch(plan: LayerPlan, params: EngineParams) -> bool:
    """Whether streamed weights can be double-buffered: two lane groups' weights fit the weight buffer,
    and the layer has no kernel ids (the kernel-id buffer holds one group's) and more than one group."""
    return (plan.ids is None and groups(plan, params) > 1
            and 2 * group_buffer_words(plan, params) <= params.weight_mem_depth)


def tiled_bytes(plan: LayerPlan, params: EngineParams, tiling: Tiling) -> dict:
    """DRAM bytes per tensor of a layer run with `tiling`: what its loop nest reads and writes."""
    bb = params.beat_bytes
    c, _, w = plan.in_shape
    m, oh, ow = plan.out_shape
    g = groups(plan, params)
    row = sum(hi - lo for lo, hi in tiling.col_inputs) if tiling.col_beats else row_beats(w, params)
    once = c * sum(hi - lo for lo, hi in tiling.band_inputs) * row * bb
    k = tiling.resident_groups
    return {
        "descriptor": ceil_div(descriptor.DESCRIPTOR_BYTES, bb) * bb,
        "weights": (1 if k else tiling.tiles) * g * weight_group_beats(plan, params) * bb,
        "tables": tiling.tiles * g * table_group_beats(params, plan.fold) * bb,
        "inputs": (ceil_div(g, k) if k else 1) * once,
        "outputs": m * oh * row_beats(ow, params) * bb,
    }


# A double-buffered choice may move this much more than the fewest bytes (its shorter bands re-read halo rows
# and, resident, the bands once per set)
DOUBLE_BYTES_SLACK = 0.20
MAX_RESIDENT = 255  # lane groups whose weights stay at once (the descriptor's 8-bit field)
MAX_COL_BEATS = 255  # output beats of a column tile (the descriptor's 8-bit field)


def _tallest_band(plan: LayerPlan, params: EngineParams, col_beats: int) -> int | None:
    """The most output rows a band (of column tiles of `col_beats` output beats) holds in the input buffer."""
    capacity = params.input_words << tile_slot_shift(plan, params, col_beats)
    start = min(plan.out_shape[1], capacity // plan.in_shape[0] // plan.stride + 3)
    return next((b for b in range(start, 0, -1) if band_words(plan, params, b, col_beats) <= params.input_words),
                None)


def can_double(plan: LayerPlan, params: EngineParams, band_rows: int, col_beats: int) -> bool:
    """Whether bands of `band_rows` rows can be double-buffered: an engine built for it, full rows, more than
    one band, two bands in the input buffer, and the second band's first slot in 16 bits (the engine's register)."""
    if not params.double_bands or col_beats or band_rows >= plan.out_shape[1]:
        return False
    words = band_words(plan, params, band_rows)
    return 2 * words <= params.input_words and words << tile_slot_shift(plan, params, 0) < 1 << 16


def second_word(plan: LayerPlan, tiling: Tiling) -> int:
    """The input buffer word where a double-buffered layer's second band starts (after the first band's
    words), or 0."""
    return ceil_div(plan.in_shape[0] * tiling.chan_rows, 1 << tiling.slot_shift) if tiling.double else 0


def nests(plan: LayerPlan, params: EngineParams, band_rows: int, col_beats: int) -> list[Tiling]:
    """The streamed and the resident loop nest of a band size and column tile width, streamed first, each
    single- then double-buffered where the bands can be (`can_double`)."""
    rows = tuple(band_inputs(plan, band_rows))
    cols = tuple(col_inputs(plan, params, col_beats)) if col_beats else ()
    streamed = Tiling(band_rows, max(hi - lo for lo, hi in rows), tile_slot_shift(plan, params, col_beats), 0, rows,
                      col_beats, cols, can_prefetch(plan, params))
    k = min(groups(plan, params), MAX_RESIDENT, 1 if plan.ids is not None else
            params.weight_mem_depth // group_buffer_words(plan, params))
    out = [streamed, dataclasses.replace(streamed, resident_groups=k)]
    if can_double(plan, params, band_rows, col_beats):
        out += [dataclasses.replace(t, double=True) for t in out]
    return out


def layer_tiling(plan: LayerPlan, params: EngineParams, glb_kib: int | None = None) -> Tiling:
    """The row bands, column tiles and loop nest of `plan` on `params`' buffers with the fewest DRAM bytes.

    The tallest band that fits the input buffer needs the fewest halo rows and re-reads in either
    nest; then as many lane groups as the weight buffer holds stay resident, if that moves fewer
    bytes than streaming the weights (ties: streamed, the untiled engine's nest). Pattern library
    layers keep one group resident at most (the kernel-id buffer holds one group's ids). Only when
    not one output row of full width fits does a band run in column tiles: of every width from one
    output beat to one beat short of the row, with its tallest band and either nest, the fewest
    bytes (ties: the wider tile). On an engine that double-buffers bands (`params.double_bands`), a layer
    of full-row bands takes the fewest cycles (schedule) among that choice and every band height whose two
    bands fit, double-buffered, in either nest, within DOUBLE_BYTES_SLACK more bytes.
    """
    k = plan.kernel
    if k > params.kernel_max:
        raise HwgenError(f"layer '{plan.name}': a {k}x{k} kernel needs an engine built for {k}x{k} windows, "
                         f"this one has {params.kernel_max}x{params.kernel_max}")
    band_rows = _tallest_band(plan, params, 0)
    if band_rows is not None:
        candidates = nests(plan, params, band_rows, 0)
    else:
        candidates = []
        for cb in range(min(MAX_COL_BEATS, params.row_beats(plan.out_shape[2]) - 1), 0, -1):
            rows = _tallest_band(plan, params, cb)
            if rows is not None:
                candidates += nests(plan, params, rows, cb)
    if not candidates:
        c = plan.in_shape[0]
        least = 1 if params.row_beats(plan.out_shape[2]) > 1 else 0
        need = band_words(plan, params, 1, least) * params.row_elems * params.act_bits
        what = f"one output row of {c} channels" + (f", {params.beat_elems} columns" if least else "")
        raise HwgenError(f"layer '{plan.name}': its smallest tile ({what}) needs "
                         f"--glb-kib {ceil_div(need, 8 * 1024)} or more, got {glb_kib}")
    def total(t: Tiling) -> int:
        return sum(tiled_bytes(plan, params, t).values())

    fewest = min((t for t in candidates if not t.double), key=total)
    # a layer whose input fits whole keeps one band: splitting it to hide all but its first band's load moves more
    # bytes for little (features.0 of ResNet-18 CIFAR: 0.1 %), and would double-buffer most small layers
    if band_rows is None or band_rows >= plan.out_shape[1] or not params.double_bands:
        return fewest
    from .schedule import layer_schedule  # the schedule runs a tiling: it imports this module

    budget = total(fewest) * (1 + DOUBLE_BYTES_SLACK)
    doubled = [t for rows in range(1, band_rows + 1) for t in nests(plan, params, rows, 0)
               if t.double and total(t) <= budget]
    return min([fewest, *doubled], key=lambda t: (layer_schedule(plan, params, tiling=t).cycles, total(t)))
