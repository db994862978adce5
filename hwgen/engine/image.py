"""The DRAM image: layer descriptors, packed weights and tables, and the activation regions' addresses."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import HwgenError
from . import descriptor
from .memory_map import (activation_bytes, ceil_div, groups, id_words, pack_table, pack_weights, row_beats,
                         weight_group_beats)
from .params import EngineParams
from .plan import LayerPlan, rom_tables
from .tiling import layer_tiling, second_word


def pack_descriptor(plan: LayerPlan, params: EngineParams, *, in_addr: int, out_addr: int, weight_addr: int,
                    table_addr: int, table_base: int) -> bytes:
    c, h, w = plan.in_shape
    m, oh, ow = plan.out_shape
    tiling = layer_tiling(plan, params)
    return descriptor.pack(
        band_rows=tiling.band_rows, bands=tiling.bands, chan_rows=tiling.chan_rows, slot_shift=tiling.slot_shift,
        resident_groups=tiling.resident_groups, col_beats=tiling.col_beats, prefetch=int(tiling.prefetch),
        second_word=second_word(plan, tiling),
        in_addr=in_addr, out_addr=out_addr, weight_addr=weight_addr, table_addr=table_addr,
        channels=c, height=h, width=w, out_channels=m, out_height=oh, out_width=ow,
        in_row_beats=row_beats(w, params), out_row_beats=row_beats(ow, params),
        x_groups=ceil_div(ow, params.x_lanes // plan.fold), fold=int(plan.fold > 1), m_groups=groups(plan, params),
        weight_group_beats=weight_group_beats(plan, params),
        taps=plan.taps, period=plan.period, table_base=table_base,
        id_words=id_words(plan, params), library=int(plan.ids is not None),
        stride2=int(plan.stride == 2), kernel1x1=int(plan.kernel1x1), kernel=plan.kernel, dense=int(plan.dense),
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


def weights_and_tables(plans: list[LayerPlan], params: EngineParams, cursor: int) -> tuple[dict, list, int]:
    """Every layer's packed weights and table from address `cursor` on: ({addr: bytes},
    [(plan, weight addr, bytes, table addr, bytes)], the first free aligned address)."""
    _, bases = rom_tables(plans)
    blobs, regions = {}, []
    for plan, base in zip(plans, bases):
        w, t = pack_weights(plan, params, base), pack_table(plan, params)
        w_addr = cursor
        t_addr = _align(w_addr + len(w))
        cursor = _align(t_addr + len(t))
        blobs[w_addr], blobs[t_addr] = w, t
        regions.append((plan, w_addr, len(w), t_addr, len(t)))
    return blobs, regions, cursor


def dram_image(plans: list[LayerPlan], params: EngineParams) -> DramImage:
    """Lay out every layer: descriptors first, then weights and tables, then activation regions."""
    _, bases = rom_tables(plans)
    blobs, regions, cursor = weights_and_tables(plans, params, _align(len(plans) * descriptor.DESCRIPTOR_BYTES))
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
