"""The engine compiler's planning: whether and how the engine runs each conv layer.

`plan_node` checks a quantized conv2d against what the engine runs (kernel, stride, padding,
groups, bit widths; refusals name the layer) and fixes its `LayerPlan`: the pattern table, the tap
steps per input channel and how output channels are grouped onto the lanes. Square odd kernels
from 1x1 to 7x7 (`KERNELS`) with padding k // 2 run; only 3x3 layers can be periodic, residue-grouped
or a pattern library (their masks are 3x3), every other size is dense.

A periodic layer's patterns come from `periodic_table`: kernel `(m, c)` takes mask
`table[(m + c) % P]`, where `table[r]` is the union of the nonzero masks of all kernels of
residue `r` (`hwgen.sparsity.ResidueStats`, shared with the sparsity detection). The union always
covers every nonzero weight, so any P is correct; the P chosen is the smallest that minimises
the step count, then the table's mean taps.

Residue grouping: when every lane of a group holds an output channel of one residue class
`r (mod P)`, all its kernels on input channel `c` share the pattern `table[(r + c) % P]`, so the
group steps exactly that pattern's taps on `c` (9 on the dense residue of a PSD layer, n on the
others) and every step is effectual. `plan_conv` takes it when the passes need fewer cycles
than contiguous groups (`pass_cycles`), i.e. for tables whose tap counts differ (PSD).

Pattern library layers (PCONV/PatDNN: a small set of kernel shapes) give each kernel the id of
the first library shape covering it; the ids travel with the weights (`memory_map`).
"""

from __future__ import annotations

import dataclasses
import functools
from dataclasses import dataclass

import numpy as np

from ..errors import HwgenError
from ..sparsity import ResidueStats
from .params import DEFAULT_PIPELINE, FOLD, KERNEL_MAX, MAX_PERIOD, TAPS, window_depth

KERNELS = tuple(range(1, KERNEL_MAX + 1, 2))  # square kernel sizes the engine runs (padding k // 2)
MAX_LIBRARY = 32  # pattern library masks per layer (ids travel as one byte per kernel)
LOOSE_TABLE = 1.25  # a periodic table with this many more slots than nonzeros does not explain the zeros
CENTRE_MASK = 1 << 4


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
    kernel: int  # k of the k x k kernel (KERNELS)
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
    fold: int = 1  # output channels per MAC lane: FOLD folds the spare x lanes onto more channels (`can_fold`)

    @property
    def kernel1x1(self) -> bool:
        return self.kernel == 1

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
        if self.residue_groups:
            first, last = row_span(self.masks[(mo + c) % self.period])
            return last - first + 1
        return self.kernel

    def lane_taps(self, mo: int, c: int) -> list[int]:
        """Raster taps (of the k x k kernel) lane of output channel `mo` visits on input channel `c`, step by step."""
        if self.dense:
            return list(range(self.kernel * self.kernel))
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
    if kh != kw or kh not in KERNELS:
        raise HwgenError(f"layer '{name}': the engine runs square odd kernels from 1x1 to "
                         f"{KERNEL_MAX}x{KERNEL_MAX} only, not {kh}x{kw}")
    want_pad = kh // 2
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
    if kh == 1:
        period, masks, taps, dense = 1, [CENTRE_MASK], 1, True
    elif kh != 3:  # periodic and pattern tables are 3x3: larger kernels run dense
        period, masks, taps, dense = 1, [(1 << kh * kh) - 1], kh * kh, True
    else:
        stats = stats or residue_stats(weight)
        period, masks = periodic_table(stats)
        taps = max(bin(t).count("1") for t in masks)
        dense = taps == TAPS or dense_only
        if dense:
            period, masks, taps = 1, [(1 << TAPS) - 1], TAPS
    plan = LayerPlan(name, weight, np.asarray(bias, dtype=np.int64).reshape(m),
                     np.asarray(multiplier, dtype=np.int64).reshape(m), np.asarray(shift, dtype=np.int64).reshape(m),
                     int(lo), int(hi), (c, h, w), (m, oh, ow), stride, kh, bool(in_signed), dense, period,
                     masks, taps, int(weight_bits), int(act_bits), half_even=bool(half_even))
    if kh != 3 or dense_only:
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


def can_fold(plan: LayerPlan, m_lanes: int, x_lanes: int) -> bool:
    """Whether the engine can fold the layer's spare x lanes onto more output channels (`plan.fold` = FOLD).

    A folded lane group holds `FOLD * m_lanes` contiguous output channels; MAC lane `m` computes
    channel `m` on pixel lanes `0 .. x_lanes / FOLD - 1` and channel `m + m_lanes` on the others, at
    the same pixels. Both read the same window, and (every lane's pattern being its residue) the same
    ROM pattern when `m_lanes` is a multiple of the layer's period: dense, 1x1 and such periodic
    layers fold; residue-grouped and pattern-library layers (per-lane kernel ids) do not. Only layers
    whose rows leave x lanes idle fold (OW below `x_lanes`, or past a multiple of it by at most half):
    elsewhere a fold only makes lane groups larger, which saves a fraction of a percent.
    """
    if x_lanes < FOLD or plan.residue_groups or plan.ids is not None or (not plan.dense and m_lanes % plan.period):
        return False
    ow, half = plan.out_shape[2], x_lanes // FOLD
    return -(-ow // half) * half < -(-ow // x_lanes) * x_lanes


def group_channels(plan: LayerPlan, m_lanes: int) -> list[list[int]]:
    """The output channels of each lane group, lane 0 first (the last group of a class may be short);
    a folded layer's groups hold `fold * m_lanes` channels."""
    m = plan.out_shape[0]
    if not plan.residue_groups:
        lanes = m_lanes * plan.fold
        return [list(range(g, min(g + lanes, m))) for g in range(0, m, lanes)]
    out = []
    for r in range(plan.period):
        cls = list(range(r, m, plan.period))
        out += [cls[i:i + m_lanes] for i in range(0, len(cls), m_lanes)]
    return out


# planning, before the engine's parameters exist, assumes the default depth's window FIFO, as deep
# as the engine it plans gets when the plan is residue-grouped (contiguous groups do not depend on it)
PLANNING_WINDOW_DEPTH = window_depth(DEFAULT_PIPELINE, residue_groups=True)


def pass_cycles(plan: LayerPlan, m_lanes: int, window_depth: int = PLANNING_WINDOW_DEPTH) -> int:
    """MAC-array cycles of one pass (output row x pixel group) summed over the lane groups.

    Per input channel a group takes its tap steps, but about at least the window fetch (k row
    reads for a k x k kernel, the rows its pattern touches for a residue group); a pass lasts at
    least the drain of the previous one (a cycle per output channel of the group, plus one).
    `window_depth`: windows the `window` cut's FIFO holds (`EngineParams.window_depth`, 0: no cut).
    """
    return sum(group_pass_cycles(plan, chans[0], m_lanes, window_depth) for chans in group_channels(plan, m_lanes))


def group_pass_steps(plan: LayerPlan, first_channel: int) -> int:
    """Tap steps the MAC array issues in one pass of the lane group from `first_channel`: the cycles
    of the pass it works in (the MAC_ACTIVE counter), whatever the fetch or the drain add."""
    return sum(plan.channel_steps(first_channel, c) for c in range(plan.in_shape[0]))


def group_pass_cycles(plan: LayerPlan, first_channel: int, m_lanes: int, window_depth: int) -> int:
    if not plan.residue_groups:  # the same steps and fetch on every channel: the slower of the two paces it
        return max(plan.in_shape[0] * max(plan.taps, plan.channel_rows(first_channel, 0)), m_lanes * plan.fold + 1)
    return _residue_pass_cycles(plan, first_channel % plan.period, m_lanes, window_depth)


@functools.lru_cache(maxsize=4096)
def _residue_pass_cycles_of(masks: tuple[int, ...], residue: int, channels: int, m_lanes: int,
                            window_depth: int) -> int:
    patterns = [masks[(residue + c) % len(masks)] for c in range(channels)]
    steps = [bin(mk).count("1") for mk in patterns]
    fetch = [row_span(mk)[1] - row_span(mk)[0] + 1 for mk in patterns]
    return max(_fetch_bound_pass(steps, fetch, window_depth), m_lanes + 1)


def _residue_pass_cycles(plan: LayerPlan, residue: int, m_lanes: int, window_depth: int) -> int:
    """A residue group's pass: every group of one class walks the same patterns, so it is cached."""
    return _residue_pass_cycles_of(tuple(plan.masks), residue, plan.in_shape[0], m_lanes, window_depth)


def _fetch_bound_pass(steps: list[int], fetch: list[int], window_depth: int) -> int:
    """Cycles of a pass in steady state when some channels take fewer steps than a window's fetch.

    The input buffer's fetch (`input_buffer.py`) reads a window's rows one per cycle (`fetch[c]`
    reads) and holds one finished window ahead: it may start window i's reads once window i-2 has
    left it and its stage holds window i-1's last row. Window i is offered the cycle after that
    stage passes it on (window i-1 left). Without the MAC array's window FIFO a window leaves when
    the array takes it, after the previous channel's steps; with it (the `window` cut, a FIFO of
    `window_depth` windows) it leaves into the FIFO once window i - window_depth is out of it, and
    the array takes it a cycle later at the earliest. Walked over three passes (the fetch runs on
    across passes), the third's duration is the steady state's.
    """
    seq, rows = steps * 3, fetch * 3
    last_row, left, taken = [], [], []  # per window: its last row in stage B, it leaves the buffer, the array takes it
    for i in range(len(seq)):
        first_read = 0 if i == 0 else max(last_row[i - 1], left[i - 2] if i >= 2 else 0)
        last_row.append(first_read + rows[i])
        offered = max(last_row[i], left[i - 1] if i >= 1 else 0) + 1
        after_steps = taken[i - 1] + seq[i - 1] if i >= 1 else 0
        if window_depth:
            left.append(max(offered, taken[i - window_depth] + 1 if i >= window_depth else 0))
            taken.append(max(left[i] + 1, after_steps))
        else:
            taken.append(max(offered, after_steps))
            left.append(taken[i])
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
    return dataclasses.replace(plan, dense=False, period=1, masks=library, taps=taps, ids=ids, residue_groups=False)


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
    if plan.kernel == 3 and not dense_only:
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


def check_weights_covered(plan: LayerPlan) -> None:
    """Every nonzero weight lies on a tap the engine visits (true by construction; guards edits)."""
    if plan.dense:
        return
    m, c = plan.weight.shape[:2]
    masks = np.asarray(plan.masks, dtype=np.int64)
    visited = masks[plan.ids] if plan.ids is not None else \
        masks[(np.arange(m)[:, None] + np.arange(c)[None, :]) % plan.period]
    lost = np.argwhere(kernel_masks(plan.weight) & ~visited)
    if len(lost):
        mo, ci = lost[0]
        raise HwgenError(f"layer '{plan.name}': kernel ({mo}, {ci}) has weights off its pattern")


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
