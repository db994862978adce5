"""The layer descriptor: what the engine reads from DRAM at `desc_addr` before running a layer.

One `lib.data.StructLayout` defines it for both sides: the gateware views the loaded bits through
it, and `pack` writes the same fields little-endian for the DRAM image. 64 bytes, fields in order.
Derived quantities the hardware would otherwise divide for (beats per row, lane groups) are
precomputed by the generator and carried here.
"""

from __future__ import annotations

from amaranth.hdl import Shape, signed
from amaranth.lib import data

from ..errors import HwgenError

DESCRIPTOR_BYTES = 64
MAGIC = 0x4857  # "HW"

LAYOUT = data.StructLayout({
    "in_addr": 32,  # byte address of the input activations
    "out_addr": 32,  # byte address of the output activations
    "weight_addr": 32,  # byte address of the packed weights (lane group after lane group)
    "table_addr": 32,  # byte address of the bias/requant table
    "channels": 16,  # C: input channels
    "height": 16,  # H: input rows
    "width": 16,  # W: input columns
    "out_channels": 16,  # M
    "out_height": 16,  # OH
    "out_width": 16,  # OW
    "in_row_beats": 16,  # beats per input row in DRAM
    "out_row_beats": 16,  # beats per output row in DRAM
    "x_groups": 16,  # ceil(OW / x_lanes), folded: ceil(OW / (x_lanes / FOLD))
    "m_groups": 16,  # ceil(M / m_lanes), folded: ceil(M / (FOLD * m_lanes))
    "weight_group_beats": 16,  # beats of packed weights per lane group
    # 0: one row band in the input buffer; n: two, the second from word n, the next band's input read behind the runs
    # (a table group's beats, which this field carried, are the engine's constant)
    "second_word": 16,
    "id_words": 16,  # weight-buffer words of kernel ids before each group's weights (library layers)
    "taps": 8,  # tap steps per input channel (k * k dense, n for periodic)
    "period": 8,  # P (1 for dense layers)
    "table_base": 8,  # index of the layer's first pattern in the pattern ROM
    "stride2": 1,
    "kernel1x1": 1,  # kernel == 1
    "dense": 1,  # taps follow raster order instead of the pattern ROM
    "in_signed": 1,
    "library": 1,  # a pattern library layer: lanes take their pattern from the kernel ids
    "residue_groups": 1,  # lane groups hold one residue class mod P each; steps follow each channel's pattern
    "prefetch": 1,  # two lane groups in the weight buffer: a run reads the next group's loads (resident: its table,
    # and its weights in the set's first tile)
    "fold": 1,  # FOLD output channels per MAC lane, x_lanes / FOLD pixels per pass (`plan.can_fold`)
    "lo": signed(16),  # output clamp range (requant lo/hi)
    "hi": signed(16),
    "magic": 16,
    "class_channels": 16,  # residue groups: M // P (output channels of a class, plus one if r < class_extra)
    "class_extra": 8,  # residue groups: M % P
    "band_rows": 16,  # output rows per row band (the last band may be shorter)
    "bands": 16,  # row bands: ceil(OH / band_rows)
    "chan_rows": 16,  # input buffer rows per input channel in a band: (band_rows - 1) * stride + kernel rows
    "slot_shift": 4,  # log2 of the input rows one input buffer word holds
    "resident_groups": 8,  # 0: weights streamed per band; k: k lane groups' weights stay while every band runs
    "kernel": 4,  # k of the k x k kernel (odd, 1 to 7; engines for 3x3 at most read kernel1x1 only)
    "col_beats": 8,  # 0: bands span every column; n: bands run in column tiles of n output beats
})
assert LAYOUT.size <= 8 * DESCRIPTOR_BYTES

SIGNED = ("lo", "hi")
FIELDS = tuple(name for name, _ in LAYOUT if not name.startswith("_"))


def pack(**fields) -> bytes:
    """The descriptor's 64 bytes; every field of FIELDS except magic must be given."""
    return pack_layout(LAYOUT, "descriptor", dict(fields, magic=MAGIC))


def pack_layout(layout: data.StructLayout, what: str, fields: dict) -> bytes:
    """The 64 bytes of a descriptor of `layout` (this one, or a network op's): every field not
    starting with "_" given, each in range (signed fields as two's complement)."""
    names = [n for n, _ in layout if not n.startswith("_")]
    missing = [f for f in names if f not in fields]
    extra = [f for f in fields if f not in names]
    if missing or extra:
        raise HwgenError(f"{what}: missing fields {missing}, unknown fields {extra}")
    word = 0
    for name in names:
        fld = layout[name]
        width, signed_ = fld.width, Shape.cast(fld.shape).signed
        value = int(fields[name])
        low, high = (-(1 << (width - 1)), 1 << (width - 1)) if signed_ else (0, 1 << width)
        if not low <= value < high:
            raise HwgenError(f"{what}: {name}={value} does not fit {width}{' signed' if signed_ else ''} bits")
        word |= (value & ((1 << width) - 1)) << fld.offset
    return word.to_bytes(DESCRIPTOR_BYTES, "little")


def unpack(raw: bytes) -> dict:
    """The fields of a packed descriptor (lo/hi signed), for tools and tests."""
    word = int.from_bytes(raw[:DESCRIPTOR_BYTES], "little")
    out = {}
    for name, fld in LAYOUT:
        if name.startswith("_"):
            continue
        v = (word >> fld.offset) & ((1 << fld.width) - 1)
        if name in SIGNED and v >= 1 << 15:
            v -= 1 << 16
        out[name] = v
    if out["magic"] != MAGIC:
        raise HwgenError(f"not an hwgen layer descriptor (magic {out['magic']:#06x})")
    return out
