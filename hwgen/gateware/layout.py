"""The engine's DRAM layouts, in pure Python: used by the generator, the testbenches and the host.

Activations (`pack_activations` / `unpack_activations`): one byte per element (the low A bits,
two's complement when signed), channel-major `(C, H, W)`; every row starts on a beat boundary and
is zero-padded to whole beats, so row `(c, y)` is at `base + (c * H + y) * row_beats * beat_bytes`.

Packed weights (`pack_weights`): lane group after lane group (`group_channels`: output channels
`g*m_lanes ..`, or, for residue-grouped layers, `r + (k0 + m) * P`, one residue class after the
other); in a group, for each input channel `c`, for each tap step `t < channel_steps`, one word
of `m_lanes` bytes (lane 0 first): lane `m`'s weight at the `t`-th tap of its kernel's pattern,
raster order. Only the pattern's taps travel (no indices); a lane whose pattern has fewer taps
than the step count, or a lane without an output channel, gets a zero byte. For W = 2 and 4
(`params.weight_pack` = 8 // W weights per byte) these bytes travel packed: weight `i` of the
group's stream at bits `(i % pack) * W ..` of byte `i // pack`. Each group is padded to whole
beats (the same count for every group of a layer).

Residue grouping: when every lane of a group holds an output channel of one residue class
`r (mod P)`, all its kernels on input channel `c` share the pattern `table[(r + c) % P]`, so the
group steps exactly that pattern's taps on `c` (9 on the dense residue of a PSD layer, n on the
others) and every step is effectual. `plan_conv` takes it when the passes need fewer cycles
than contiguous groups (`pass_cycles`), i.e. for tables whose tap counts differ (PSD).

Pattern library layers (PCONV/PatDNN: a small set of kernel shapes) put, before each group's
weights, the group's kernel ids: for each input channel one word of `m_lanes` bytes, the ROM
index of each lane's shape, padded to whole weight-buffer words.

Bias/requant table (`pack_table`): per output channel 8 bytes, `bias` int32, `M` uint16, `S`
uint8, one flags byte (bit 0: round ties to even, `Requant.rounding == "half_even"`); lane groups
padded to whole beats.

A periodic layer's patterns come from `periodic_table`: kernel `(m, c)` takes mask
`table[(m + c) % P]`, where `table[r]` is the union of the nonzero masks of all kernels of
residue `r`. The union always covers every nonzero weight, so any P is correct; the P chosen
is the smallest that minimises the step count, then the table's mean taps.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from dataclasses import dataclass

import numpy as np

from ..errors import HwgenError
from ..sparsity import ResidueStats
from . import descriptor
from .params import MAX_PERIOD, TAPS, EngineParams

TABLE_ENTRY_BYTES = 8
MAX_LIBRARY = 32  # pattern library masks per layer (ids travel as one byte per kernel)
LOOSE_TABLE = 1.25  # a periodic table with this many more slots than nonzeros does not explain the zeros
CENTRE_MASK = 1 << 4


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def row_beats(width: int, params: EngineParams) -> int:
    return ceil_div(width, params.beat_bytes)


def activation_bytes(shape: tuple[int, int, int], params: EngineParams) -> int:
    c, h, w = shape
    return c * h * row_beats(w, params) * params.beat_bytes


def pack_activations(x: np.ndarray, params: EngineParams) -> bytes:
    """DRAM bytes of an integer activation tensor `(C, H, W)`."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise HwgenError(f"activations must be (C, H, W), got shape {x.shape}")
    c, h, w = x.shape
    padded = np.zeros((c, h, row_beats(w, params) * params.beat_bytes), dtype=np.uint8)
    padded[:, :, :w] = (x.astype(np.int64) & 0xFF).astype(np.uint8)
    return padded.tobytes()


def unpack_activations(raw: bytes, shape: tuple[int, int, int], signed: bool, params: EngineParams) -> np.ndarray:
    """The int64 tensor `(C, H, W)` stored in `raw` (padding bytes ignored)."""
    c, h, w = shape
    need = activation_bytes(shape, params)
    if len(raw) < need:
        raise HwgenError(f"activation region holds {len(raw)} bytes, shape {shape} needs {need}")
    a = np.frombuffer(bytes(raw[:need]), dtype=np.uint8).reshape(c, h, -1)[:, :, :w].astype(np.int64)
    if signed:
        a = np.where(a >= 128, a - 256, a)
    return a


def tap_order(mask: int) -> list[int]:
    """The raster taps (row * 3 + col) a 9-bit mask keeps, in the order weights are packed."""
    return [t for t in range(TAPS) if mask >> t & 1]


def row_span(mask: int) -> tuple[int, int]:
    """(first, last) kernel row a 9-bit mask touches: the rows a residue group's window fetch reads."""
    rows = [t // 3 for t in tap_order(mask)] or [1]
    return min(rows), max(rows)


def kernel_masks(weight: np.ndarray) -> np.ndarray:
    """(M, C) 9-bit masks of the nonzero taps of a 3x3 integer weight."""
    w = np.asarray(weight)
    nz = (w.reshape(w.shape[0], w.shape[1], TAPS) != 0).astype(np.int64)
    return nz @ (1 << np.arange(TAPS, dtype=np.int64))


def periodic_table(stats: ResidueStats) -> tuple[int, list[int]]:
    """(P, masks): the smallest period whose residue-union masks need the fewest tap steps."""
    best = None
    for p in range(1, MAX_PERIOD + 1):
        table, slots = _residue_table(stats, p)
        # fewest steps first, then fewest weight slots (PSD: 9 steps at any P, but its P fits tightest)
        key = (max(bin(t).count("1") for t in table), slots)
        if best is None or key < best[0]:
            best = (key, p, table)
    return best[1], best[2]


def table_slots(stats: ResidueStats, period: int, masks: list[int]) -> int:
    """Weight slots a periodic table gives the layer's kernels (>= its nonzeros)."""
    size, _ = stats.residues(period)
    return int(sum(int(n) * bin(t).count("1") for n, t in zip(size, masks)))


@dataclass
class LayerPlan:
    """One conv layer as the engine runs it (everything the DRAM image and descriptor need)."""

    name: str
    weight: np.ndarray  # int64 (M, C, kh, kw)
    bias: np.ndarray  # int64 (M,)
    multiplier: np.ndarray  # int64 (M,)
    shift: np.ndarray  # int64 (M,)
    lo: int
    hi: int
    in_shape: tuple[int, int, int]
    out_shape: tuple[int, int, int]
    stride: int
    kernel1x1: bool
    in_signed: bool
    dense: bool
    period: int
    masks: list[int]  # the P masks (periodic) or [all-ones] (dense)
    taps: int  # tap steps per input channel
    weight_bits: int
    act_bits: int  # bits of the input activations
    ids: np.ndarray | None = None  # pattern library layers: (M, C) index into masks of every kernel
    residue_groups: bool = False  # lane groups hold one residue class mod P each (see the module doc)
    half_even: bool = False  # requant rounds ties to even (`Requant.rounding`)

    @property
    def structure(self) -> str:
        return "library" if self.ids is not None else "dense" if self.dense else "periodic"

    def max_taps_per_output(self) -> int:
        """Nonzero weights of the fullest output channel: the accumulator's worst case."""
        return int(max(np.count_nonzero(self.weight.reshape(self.weight.shape[0], -1), axis=1).max(), 1))

    def channel_steps(self, mo: int, c: int) -> int:
        """Tap steps the lane group holding output channel `mo` runs on input channel `c`."""
        if self.residue_groups:
            return bin(self.masks[(mo + c) % self.period]).count("1")
        return self.taps

    def channel_rows(self, mo: int, c: int) -> int:
        """Input rows the window fetch reads for that group on input channel `c` (`row_span`)."""
        if self.kernel1x1:
            return 1
        if self.residue_groups:
            first, last = row_span(self.masks[(mo + c) % self.period])
            return last - first + 1
        return 3

    def lane_taps(self, mo: int, c: int) -> list[int]:
        """Raster taps lane of output channel `mo` visits on input channel `c`, step by step."""
        if self.kernel1x1:
            return [4]
        if self.dense:
            return list(range(TAPS))
        if self.ids is not None:
            return tap_order(self.masks[self.ids[mo, c]])
        return tap_order(self.masks[(mo + c) % self.period])


def plan_conv(name: str, weight, bias, multiplier, shift, lo: int, hi: int, in_shape, stride: int,
              padding: int, in_signed: bool, weight_bits: int = 8, act_bits: int = 8,
              dense_only: bool = False, m_lanes: int = 4, stats: ResidueStats | None = None,
              half_even: bool = False) -> LayerPlan:
    """Check that the engine can run a conv layer and fix how (raises HwgenError naming the layer).

    `m_lanes`: the engine's output-channel lanes, which decide between contiguous and residue groups.
    `stats`: the weight's `residue_stats`, if the caller has them.
    """
    weight = np.asarray(weight, dtype=np.int64)
    if weight.ndim != 4:
        raise HwgenError(f"layer '{name}': expected a 4-d conv weight, got shape {weight.shape}")
    m, c, kh, kw = weight.shape
    if (kh, kw) not in ((3, 3), (1, 1)):
        raise HwgenError(f"layer '{name}': the engine runs 3x3 and 1x1 kernels only, not {kh}x{kw}")
    want_pad = 1 if kh == 3 else 0
    if padding != want_pad:
        raise HwgenError(f"layer '{name}': a {kh}x{kw} kernel must have padding {want_pad} on the engine, got {padding}")
    if stride not in (1, 2):
        raise HwgenError(f"layer '{name}': the engine runs stride 1 and 2 only, got {stride}")
    if tuple(in_shape)[0] != c:
        raise HwgenError(f"layer '{name}': weight has {c} input channels, input shape is {tuple(in_shape)}")
    _, h, w = in_shape
    oh, ow = (h + 2 * want_pad - kh) // stride + 1, (w + 2 * want_pad - kw) // stride + 1
    wlo, whi = -(1 << (weight_bits - 1)), (1 << (weight_bits - 1)) - 1
    if weight.min(initial=0) < wlo or weight.max(initial=0) > whi:
        raise HwgenError(f"layer '{name}': weights exceed {weight_bits}-bit signed range")
    kernel1x1 = kh == 1
    if kernel1x1:
        period, masks, taps, dense = 1, [CENTRE_MASK], 1, True
    else:
        stats = stats or residue_stats(weight)
        period, masks = periodic_table(stats)
        taps = max(bin(t).count("1") for t in masks)
        dense = taps == TAPS or dense_only
        if dense:
            period, masks, taps = 1, [(1 << TAPS) - 1], TAPS
    plan = LayerPlan(name, weight, np.asarray(bias, dtype=np.int64).reshape(m),
                     np.asarray(multiplier, dtype=np.int64).reshape(m), np.asarray(shift, dtype=np.int64).reshape(m),
                     int(lo), int(hi), (c, h, w), (m, oh, ow), stride, kernel1x1, bool(in_signed), dense, period,
                     masks, taps, int(weight_bits), int(act_bits), half_even=bool(half_even))
    if kernel1x1 or dense_only:
        return plan
    residue = residue_plan(plan, stats)
    if residue is not None and pass_cycles(residue, m_lanes) < pass_cycles(plan, m_lanes):
        return residue
    return plan


def residue_plan(plan: LayerPlan, stats: ResidueStats) -> LayerPlan | None:
    """`plan` with residue-grouped lanes, under the period whose table gives the fewest weight slots.

    None when no such period leaves a kernel sparse, or when a residue class would be empty (P > M).
    """
    m = plan.out_shape[0]
    best = None
    for p in range(2, min(MAX_PERIOD, m) + 1):
        table, _ = _residue_table(stats, p)
        size, _ = stats.residues(p)
        slots = int(sum(int(n) * bin(t).count("1") for n, t in zip(size, table)))
        if best is None or slots < best[0]:
            best = (slots, p, table)
    if best is None or all(t == (1 << TAPS) - 1 for t in best[2]):
        return None
    _, period, table = best
    return dataclasses.replace(plan, dense=False, period=period, masks=table,
                               taps=max(bin(t).count("1") for t in table), residue_groups=True)


def residue_stats(weight: np.ndarray) -> ResidueStats:
    w = np.asarray(weight)
    return ResidueStats(w.reshape(w.shape[0], w.shape[1], -1) != 0)


def _residue_table(stats: ResidueStats, period: int) -> tuple[list[int], int]:
    """(masks, slots): per residue mod `period`, the union of its kernels' nonzero masks (the centre
    tap for a residue without kernels or without weights), and the weight slots that gives."""
    size, count = stats.residues(period)
    unions = ((count > 0).astype(np.int64) << np.arange(count.shape[1])).sum(1)
    table = [int(u) or CENTRE_MASK for u in unions]
    slots = int(sum(int(n) * bin(int(u)).count("1") for n, u in zip(size, unions)))
    return table, slots


def group_channels(plan: LayerPlan, m_lanes: int) -> list[list[int]]:
    """The output channels of each lane group, lane 0 first (the last group of a class may be short)."""
    m = plan.out_shape[0]
    if not plan.residue_groups:
        return [list(range(g, min(g + m_lanes, m))) for g in range(0, m, m_lanes)]
    out = []
    for r in range(plan.period):
        cls = list(range(r, m, plan.period))
        out += [cls[i:i + m_lanes] for i in range(0, len(cls), m_lanes)]
    return out


def pass_cycles(plan: LayerPlan, m_lanes: int) -> int:
    """MAC-array cycles of one pass (output row x pixel group) summed over the lane groups.

    Per input channel a group takes its tap steps, but about at least the window fetch (3 row
    reads, 1 for a 1x1 kernel, the rows its pattern touches for a residue group); a pass lasts at
    least the drain of the previous one (m_lanes + 1).
    """
    return sum(group_pass_cycles(plan, chans[0], m_lanes) for chans in group_channels(plan, m_lanes))


def group_pass_cycles(plan: LayerPlan, first_channel: int, m_lanes: int) -> int:
    if not plan.residue_groups:  # the same steps and fetch on every channel: the slower of the two paces it
        return max(plan.in_shape[0] * max(plan.taps, plan.channel_rows(first_channel, 0)), m_lanes + 1)
    return _residue_pass_cycles(plan, first_channel % plan.period, m_lanes)


@functools.lru_cache(maxsize=4096)
def _residue_pass_cycles_of(masks: tuple[int, ...], residue: int, channels: int, m_lanes: int) -> int:
    patterns = [masks[(residue + c) % len(masks)] for c in range(channels)]
    steps = [bin(mk).count("1") for mk in patterns]
    fetch = [row_span(mk)[1] - row_span(mk)[0] + 1 for mk in patterns]
    return max(_fetch_bound_pass(steps, fetch), m_lanes + 1)


def _residue_pass_cycles(plan: LayerPlan, residue: int, m_lanes: int) -> int:
    """A residue group's pass: every group of one class walks the same patterns, so it is cached."""
    return _residue_pass_cycles_of(tuple(plan.masks), residue, plan.in_shape[0], m_lanes)


def _fetch_bound_pass(steps: list[int], fetch: list[int]) -> int:
    """Cycles of a pass in steady state when some channels take fewer steps than a window's fetch.

    The input buffer's fetch (`input_buffer.py`) reads a window's rows one per cycle (`fetch[c]`
    reads) and holds one finished window ahead of the array: it may start window i's reads once
    window i-2 is taken and its stage holds window i-1's last row. Window i is offered the cycle
    after that stage passes it on (window i-1 taken), and the array takes it after the previous
    channel's steps. Walked over three passes (the fetch runs on across passes), the third's
    duration is the steady state's.
    """
    seq, rows = steps * 3, fetch * 3
    last_row, taken = [], []  # per window: cycle its last row is in stage B, cycle the array takes it
    for i in range(len(seq)):
        first_read = 0 if i == 0 else max(last_row[i - 1], taken[i - 2] if i >= 2 else 0)
        last_row.append(first_read + rows[i])
        offered = max(last_row[i], taken[i - 1] if i >= 1 else 0) + 1
        taken.append(max(offered, taken[i - 1] + seq[i - 1]) if i >= 1 else offered)
    c = len(steps)
    return taken[2 * c] - taken[c]


def library_plan(plan: LayerPlan, library: list[int]) -> LayerPlan:
    """`plan` as a pattern-library layer: each kernel gets the id of the first library mask covering it.

    Kernels no library mask covers (weights the detection set aside) add their own mask; a layer
    needing more than MAX_LIBRARY masks, or whose library keeps all 9 taps, stays dense.
    """
    library = [mk for mk in dict.fromkeys(library) if mk]
    masks = kernel_masks(plan.weight)
    ids = np.zeros(masks.shape, dtype=np.int64)
    for (mo, c), km in np.ndenumerate(masks):
        for k, lib in enumerate(library):
            if km & ~lib == 0:
                ids[mo, c] = k
                break
        else:
            library.append(int(km))
            ids[mo, c] = len(library) - 1
    taps = max(bin(mk).count("1") for mk in library) if library else TAPS
    if len(library) > MAX_LIBRARY or taps == TAPS:
        return plan
    return dataclasses.replace(plan, dense=False, period=1, masks=library, taps=taps, ids=ids)


def plan_node(graph, node, dense_only: bool = False, m_lanes: int = 4) -> LayerPlan:
    """The plan of a quantized conv2d node of an hwgen Graph."""
    a = node.attrs
    q = node.quant
    if node.op != "conv2d":
        raise HwgenError(f"layer '{node.name}': the engine runs conv2d layers only, not {node.op}")
    if q is None or q.weight is None or q.requant is None:
        raise HwgenError(f"layer '{node.name}' is not quantized (run hwgen quantize first)")
    if a.get("groups", 1) != 1:
        raise HwgenError(f"layer '{node.name}': grouped/depthwise convolution (groups={a['groups']}) is not supported by the engine")
    if tuple(a.get("dilation", (1, 1))) != (1, 1):
        raise HwgenError(f"layer '{node.name}': dilated convolution is not supported by the engine")
    stride, padding = tuple(a["stride"]), tuple(a["padding"])
    if stride[0] != stride[1] or padding[0] != padding[1]:
        raise HwgenError(f"layer '{node.name}': the engine needs equal strides and paddings, got {stride}, {padding}")
    producer = graph.node(node.inputs[0])
    in_signed = bool(producer.quant.signed) if producer.quant is not None else True
    bias = q.bias if q.bias is not None else np.zeros(q.weight.shape[0], dtype=np.int64)
    rq = q.requant
    act_bits = producer.quant.act_bits if producer.quant is not None else q.act_bits
    stats = residue_stats(q.weight) if np.asarray(q.weight).shape[2:] == (3, 3) else None
    plan = plan_conv(node.name, q.weight, bias, rq.multiplier, rq.shift, rq.lo, rq.hi, graph.in_shape(node),
                     stride[0], padding[0], in_signed, q.weight_bits, act_bits, dense_only, m_lanes, stats,
                     rq.rounding == "half_even")
    if not plan.kernel1x1 and not dense_only:
        # zeros no period explains tightly may be a pattern library: then take whichever needs fewer steps
        from ..sparsity import detect

        period, masks = periodic_table(stats)
        loose = table_slots(stats, period, masks) > LOOSE_TABLE * max(1, np.count_nonzero(plan.weight))
        info = detect(node) if loose else None
        if info is not None and info.kind == "pattern":
            library = library_plan(plan, [int((np.asarray(t).reshape(-1) != 0).astype(np.int64)
                                              @ (1 << np.arange(TAPS))) for t in info.patterns])
            if library.taps < plan.taps:
                plan = library
    return plan


def fit_params(plans: list[LayerPlan], *, m_lanes: int = 4, x_lanes: int = 4, bus_bits: int = 64,
               glb_kib: int | None = None, sparse: bool | None = None) -> EngineParams:
    """The smallest engine of the given lanes and bus that runs every layer of `plans`.

    `glb_kib`: the input buffer's size; layers whose input does not fit run in row bands
    (`layer_tiling`). Without it the buffer holds the largest input whole.
    """
    from .. import intmath

    if not plans:
        raise HwgenError("no conv layers to generate an engine for")
    weight_bits = {p.weight_bits for p in plans}
    act_bits = max(p.act_bits for p in plans)
    if len(weight_bits) != 1:
        raise HwgenError(f"layers mix weight widths {sorted(weight_bits)}; the engine has one weight width")
    acc = max(intmath.accumulator_bits(p.weight_bits, p.act_bits, p.in_signed, p.max_taps_per_output(),
                                       int(np.abs(p.bias).max(initial=0))) for p in plans)
    rom, _ = rom_tables(plans)
    params = EngineParams(
        m_lanes=m_lanes, x_lanes=x_lanes, bus_bits=bus_bits, weight_bits=weight_bits.pop(), act_bits=act_bits,
        acc_bits=max(acc, 8), max_width=max(p.in_shape[2] for p in plans),
        max_out_width=max(p.out_shape[2] for p in plans), max_channels=max(p.in_shape[0] for p in plans),
        patterns=tuple(rom), sparse=any(not p.dense for p in plans) if sparse is None else sparse,
        lane_period=0 if any(p.ids is not None for p in plans) else math.lcm(*(p.period for p in plans)),
        library=any(p.ids is not None for p in plans),
    ).validate()
    if glb_kib is None:
        words = max(band_words(p, params, p.out_shape[1]) for p in plans)
    else:
        if not isinstance(glb_kib, int) or glb_kib < 1:
            raise HwgenError(f"glb-kib must be a positive integer, got {glb_kib!r}")
        words = glb_kib * 1024 * 8 // (params.row_elems * params.act_bits)
    params = dataclasses.replace(params, input_words=max(words, 1))
    for p in plans:
        layer_tiling(p, params, glb_kib)  # refuses a layer whose smallest band does not fit
    if not params.sparse and any(not p.dense for p in plans):
        raise HwgenError("a dense-only engine cannot run periodic layers; plan them with dense_only=True")
    return params


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
    rows, pad = (1, 0) if plan.kernel1x1 else (3, 1)
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
    return ceil_div(weight_group_beats(plan, params), params.weight_word_bytes * 8 // (params.bus_bits * params.weight_pack))


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


def groups(plan: LayerPlan, params: EngineParams) -> int:
    return len(group_channels(plan, params.m_lanes))


def id_words(plan: LayerPlan, params: EngineParams) -> int:
    """Weight-buffer memory words of a lane group's kernel ids (0 unless a pattern library layer)."""
    if plan.ids is None:
        return 0
    return ceil_div(plan.in_shape[0] * params.m_lanes, params.weight_word_bytes)


def group_steps(plan: LayerPlan, first_channel: int) -> int:
    """Weight words (tap steps over all input channels) of the lane group holding `first_channel`."""
    return sum(plan.channel_steps(first_channel, c) for c in range(plan.in_shape[0]))


def weight_group_beats(plan: LayerPlan, params: EngineParams) -> int:
    """Beats of one lane group's packed weights: the largest group's, so groups sit at a fixed stride."""
    ids = id_words(plan, params) * params.weight_word_bytes
    firsts = range(plan.period) if plan.residue_groups else [0]
    words = max(group_steps(plan, r) for r in firsts)
    return ceil_div(ids + words * params.m_lanes, params.beat_bytes * params.weight_pack)


def table_group_beats(params: EngineParams) -> int:
    return ceil_div(params.m_lanes * TABLE_ENTRY_BYTES, params.beat_bytes)


def pack_weights(plan: LayerPlan, params: EngineParams, table_base: int = 0) -> bytes:
    m, c = plan.weight.shape[:2]
    flat = plan.weight.reshape(m, c, -1)
    out = bytearray()
    id_bytes = id_words(plan, params) * params.weight_word_bytes
    for chans in group_channels(plan, params.m_lanes):
        if plan.ids is not None:  # the group's kernel ids first: ROM index per (channel, lane)
            ids = np.full((c, params.m_lanes), table_base, dtype=np.int64)
            ids[:, :len(chans)] += plan.ids[chans].T
            blob = ids.astype(np.uint8).tobytes()
            out += blob + bytes(id_bytes - len(blob))
        blob = bytearray()
        for ci in range(c):
            words = np.zeros((plan.channel_steps(chans[0], ci), params.m_lanes), dtype=np.int64)
            for lane, mo in enumerate(chans):
                for t, tap in enumerate(plan.lane_taps(mo, ci)):
                    words[t, lane] = flat[mo, ci, 0 if plan.kernel1x1 else tap]
            blob += (words.reshape(-1) & 0xFF).astype(np.uint8).tobytes()
        blob = _pack_fields(bytes(blob), params.weight_pack)
        out += blob + bytes(weight_group_beats(plan, params) * params.beat_bytes - id_bytes - len(blob))
    return bytes(out)


def _pack_fields(blob: bytes, pack: int) -> bytes:
    """`pack` weights per byte at 8 // pack bits each, the first in the low bits (1: bytes as they are)."""
    if pack == 1:
        return blob
    bits = 8 // pack
    fields = np.frombuffer(blob + bytes(-len(blob) % pack), dtype=np.uint8).reshape(-1, pack) & ((1 << bits) - 1)
    return (fields.astype(np.int64) << (bits * np.arange(pack))).sum(axis=1).astype(np.uint8).tobytes()


def pack_table(plan: LayerPlan, params: EngineParams) -> bytes:
    out = bytearray()
    for chans in group_channels(plan, params.m_lanes):
        blob = bytearray()
        for lane in range(params.m_lanes):
            if lane < len(chans):
                mo = chans[lane]
                b, mul, s = int(plan.bias[mo]), int(plan.multiplier[mo]), int(plan.shift[mo])
            else:
                b, mul, s = 0, 0, 1
            blob += (b & 0xFFFFFFFF).to_bytes(4, "little") + mul.to_bytes(2, "little") + bytes([s, int(plan.half_even)])
        out += blob + bytes(table_group_beats(params) * params.beat_bytes - len(blob))
    return bytes(out)


def check_weights_covered(plan: LayerPlan) -> None:
    """Every nonzero weight lies on a tap the engine visits (true by construction; guards edits)."""
    if plan.kernel1x1 or plan.dense:
        return
    m, c = plan.weight.shape[:2]
    masks = np.asarray(plan.masks, dtype=np.int64)
    visited = masks[plan.ids] if plan.ids is not None else \
        masks[(np.arange(m)[:, None] + np.arange(c)[None, :]) % plan.period]
    lost = np.argwhere(kernel_masks(plan.weight) & ~visited)
    if len(lost):
        mo, ci = lost[0]
        raise HwgenError(f"layer '{plan.name}': kernel ({mo}, {ci}) has weights off its pattern")


def pack_descriptor(plan: LayerPlan, params: EngineParams, *, in_addr: int, out_addr: int, weight_addr: int,
                    table_addr: int, table_base: int) -> bytes:
    c, h, w = plan.in_shape
    m, oh, ow = plan.out_shape
    tiling = layer_tiling(plan, params)
    return descriptor.pack(
        band_rows=tiling.band_rows, bands=tiling.bands, chan_rows=tiling.chan_rows, slot_shift=tiling.slot_shift,
        resident_groups=tiling.resident_groups,
        in_addr=in_addr, out_addr=out_addr, weight_addr=weight_addr, table_addr=table_addr,
        channels=c, height=h, width=w, out_channels=m, out_height=oh, out_width=ow,
        in_row_beats=row_beats(w, params), out_row_beats=row_beats(ow, params),
        x_groups=ceil_div(ow, params.x_lanes), m_groups=groups(plan, params),
        weight_group_beats=weight_group_beats(plan, params), table_group_beats=table_group_beats(params),
        taps=plan.taps, period=plan.period, table_base=table_base,
        id_words=id_words(plan, params), library=int(plan.ids is not None),
        stride2=int(plan.stride == 2), kernel1x1=int(plan.kernel1x1), dense=int(plan.dense),
        in_signed=int(plan.in_signed), lo=plan.lo, hi=plan.hi, residue_groups=int(plan.residue_groups),
        class_channels=m // plan.period if plan.residue_groups else 0,
        class_extra=m % plan.period if plan.residue_groups else 0,
    )


REGION_ALIGN = 64  # every region starts on a 64-byte boundary (the widest beat)


@dataclass
class LayerRegions:
    """Byte addresses and sizes of one layer's regions in the DRAM image."""

    name: str
    descriptor: int
    weights: int
    weight_bytes: int
    table: int
    table_bytes: int
    input: int
    input_bytes: int
    output: int
    output_bytes: int


@dataclass
class DramImage:
    """The generator's DRAM image: descriptors, packed weights and tables; activation regions reserved.

    `data` holds the initialized part (descriptors, weights, tables) and is `size` bytes once the
    activation regions, left zero, are appended by whoever runs the layers.
    """

    data: bytes
    size: int
    layers: list[LayerRegions]
    table_bases: list[int]


def _align(addr: int) -> int:
    return ceil_div(addr, REGION_ALIGN) * REGION_ALIGN


def rom_tables(plans: list[LayerPlan]) -> tuple[list[int], list[int]]:
    """(pattern ROM masks, ROM index of each layer's first pattern); layers share identical tables."""
    rom, bases, seen = [], [], {}
    for plan in plans:
        if plan.dense:
            bases.append(0)
            continue
        key = tuple(plan.masks)
        if key not in seen:
            seen[key] = len(rom)
            rom += list(key)
        bases.append(seen[key])
    return rom, bases


def dram_image(plans: list[LayerPlan], params: EngineParams) -> DramImage:
    """Lay out every layer: descriptors first, then weights and tables, then activation regions."""
    _, bases = rom_tables(plans)
    cursor = _align(len(plans) * descriptor.DESCRIPTOR_BYTES)
    blobs, regions = {}, []
    for plan, base in zip(plans, bases):
        w, t = pack_weights(plan, params, base), pack_table(plan, params)
        w_addr = cursor
        t_addr = _align(w_addr + len(w))
        cursor = _align(t_addr + len(t))
        blobs[w_addr], blobs[t_addr] = w, t
        regions.append([plan, w_addr, len(w), t_addr, len(t)])
    static_end = cursor
    layers = []
    for i, (plan, w_addr, w_len, t_addr, t_len) in enumerate(regions):
        in_bytes, out_bytes = activation_bytes(plan.in_shape, params), activation_bytes(plan.out_shape, params)
        in_addr = cursor
        out_addr = _align(in_addr + in_bytes)
        cursor = _align(out_addr + out_bytes)
        desc = i * descriptor.DESCRIPTOR_BYTES
        blobs[desc] = pack_descriptor(plan, params, in_addr=in_addr, out_addr=out_addr, weight_addr=w_addr,
                                      table_addr=t_addr, table_base=bases[i])
        layers.append(LayerRegions(plan.name, desc, w_addr, w_len, t_addr, t_len, in_addr, in_bytes, out_addr,
                                   out_bytes))
    if cursor >= 1 << 32:
        raise HwgenError(f"the DRAM image needs {cursor} bytes, more than the 32-bit address space")
    data = bytearray(static_end)
    for addr, blob in blobs.items():
        data[addr:addr + len(blob)] = blob
    return DramImage(bytes(data), cursor, layers, bases)
