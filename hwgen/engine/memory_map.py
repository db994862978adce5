"""The engine's DRAM layouts, in pure Python: used by the compiler, the testbenches and the host.

Activations (`pack_activations` / `unpack_activations`): channel-major `(C, H, W)`, each element
in a field of `params.act_field_bits` bits (the low A bits of the field hold the value, two's
complement when signed): one byte per element for A >= 5, two per byte for A = 3 and 4 (4-bit
fields), four per byte for A = 2 (`params.act_pack` elements per byte). Element `i` of a row sits
at bits `(i % pack) * field ..` of the row's byte `i // pack`, the packed weights' convention.
Every row starts on a beat boundary and is zero-padded to whole beats (`params.beat_elems`
elements each), so row `(c, y)` is at `base + (c * H + y) * row_beats * beat_bytes`.

Packed weights (`pack_weights`): lane group after lane group (`group_channels`: output channels
`g*m_lanes ..`, or, for residue-grouped layers, `r + (k0 + m) * P`, one residue class after the
other); in a group, for each input channel `c`, for each tap step `t < channel_steps`, one word
of `m_lanes` bytes (lane 0 first; `fold * m_lanes` in a folded layer's groups): lane `m`'s weight
at the `t`-th tap of its kernel's pattern, raster order (a dense k x k kernel: all k * k taps, row
after row). Only the pattern's taps travel (no indices); a lane whose pattern has fewer taps than
the step count, or a lane without an output channel, gets a zero byte. For W = 2 and 4
(`params.weight_pack` = 8 // W weights per byte) these bytes travel packed: weight `i` of the
group's stream at bits `(i % pack) * W ..` of byte `i // pack`. Each group is padded to whole
beats (the same count for every group of a layer).

Pattern library layers put, before each group's weights, the group's kernel ids: for each input
channel one word of `m_lanes` bytes, the ROM index of each lane's shape, padded to whole
weight-buffer words.

Bias/requant table (`pack_table`): per output channel 8 bytes, `bias` int32, `M` uint16, `S`
uint8, one flags byte (bit 0: round ties to even, `Requant.rounding == "half_even"`); lane groups
padded to whole beats.
"""

from __future__ import annotations

import numpy as np

from ..errors import HwgenError
from .params import EngineParams
from .plan import LayerPlan, group_channels

TABLE_ENTRY_BYTES = 8


def ceil_div(a: int, b: int) -> int:
    return -(-a // b)


def row_beats(width: int, params: EngineParams) -> int:
    return params.row_beats(width)


def activation_bytes(shape: tuple[int, int, int], params: EngineParams) -> int:
    c, h, w = shape
    return c * h * row_beats(w, params) * params.beat_bytes


def pack_activations(x: np.ndarray, params: EngineParams) -> bytes:
    """DRAM bytes of an integer activation tensor `(C, H, W)`."""
    x = np.asarray(x)
    if x.ndim != 3:
        raise HwgenError(f"activations must be (C, H, W), got shape {x.shape}")
    c, h, w = x.shape
    padded = np.zeros((c, h, row_beats(w, params) * params.beat_elems), dtype=np.uint8)
    padded[:, :, :w] = (x.astype(np.int64) & 0xFF).astype(np.uint8)
    return _pack_fields(padded.tobytes(), params.act_pack)


def unpack_activations(raw: bytes, shape: tuple[int, int, int], signed: bool, params: EngineParams) -> np.ndarray:
    """The int64 tensor `(C, H, W)` stored in `raw` (padding bytes ignored)."""
    c, h, w = shape
    need = activation_bytes(shape, params)
    if len(raw) < need:
        raise HwgenError(f"activation region holds {len(raw)} bytes, shape {shape} needs {need}")
    fields = _unpack_fields(bytes(raw[:need]), params.act_pack)
    a = np.frombuffer(fields, dtype=np.uint8).reshape(c, h, -1)[:, :, :w].astype(np.int64)
    if signed:
        half = 1 << (params.act_field_bits - 1)
        a = np.where(a >= half, a - 2 * half, a)
    return a


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
    return ceil_div(ids + words * params.m_lanes * plan.fold, params.beat_bytes * params.weight_pack)


def table_group_beats(params: EngineParams, fold: int = 1) -> int:
    """Beats of one lane group's bias/requant table (a layer folded `fold` times has `fold * m_lanes` entries)."""
    return ceil_div(params.m_lanes * fold * TABLE_ENTRY_BYTES, params.beat_bytes)


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
            words = np.zeros((plan.channel_steps(chans[0], ci), params.m_lanes * plan.fold), dtype=np.int64)
            for lane, mo in enumerate(chans):
                for t, tap in enumerate(plan.lane_taps(mo, ci)):
                    words[t, lane] = flat[mo, ci, tap]
            blob += (words.reshape(-1) & 0xFF).astype(np.uint8).tobytes()
        blob = _pack_fields(bytes(blob), params.weight_pack)
        out += blob + bytes(weight_group_beats(plan, params) * params.beat_bytes - id_bytes - len(blob))
    return bytes(out)


def _pack_fields(blob: bytes, pack: int) -> bytes:
    """`pack` values (weights or activations) per byte at 8 // pack bits each, the first in the low
    bits (1: bytes as they are)."""
    if pack == 1:
        return blob
    bits = 8 // pack
    fields = np.frombuffer(blob + bytes(-len(blob) % pack), dtype=np.uint8).reshape(-1, pack) & ((1 << bits) - 1)
    return (fields.astype(np.int64) << (bits * np.arange(pack))).sum(axis=1).astype(np.uint8).tobytes()


def _unpack_fields(blob: bytes, pack: int) -> bytes:
    """The inverse of `_pack_fields`: one byte per field, the field's bits in its low bits."""
    if pack == 1:
        return blob
    bits = 8 // pack
    packed = np.frombuffer(blob, dtype=np.uint8).astype(np.int64)[:, None]
    return ((packed >> (bits * np.arange(pack))) & ((1 << bits) - 1)).astype(np.uint8).tobytes()


def pack_table(plan: LayerPlan, params: EngineParams) -> bytes:
    out = bytearray()
    for chans in group_channels(plan, params.m_lanes):
        blob = bytearray()
        for lane in range(params.m_lanes * plan.fold):
            if lane < len(chans):
                mo = chans[lane]
                b, mul, s = int(plan.bias[mo]), int(plan.multiplier[mo]), int(plan.shift[mo])
            else:
                b, mul, s = 0, 0, 1
            blob += (b & 0xFFFFFFFF).to_bytes(4, "little") + mul.to_bytes(2, "little") + bytes([s, int(plan.half_even)])
        out += blob + bytes(table_group_beats(params, plan.fold) * params.beat_bytes - len(blob))
    return bytes(out)
