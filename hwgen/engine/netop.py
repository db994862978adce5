"""Network-op descriptors: the ops between convolutions that the engine's network-op unit runs.

A network-op descriptor is 64 bytes like a layer descriptor, with its own fields and its own magic
at the same bit offset, so a chain of descriptors (`hwgen.gateware.chain`) can hold both kinds and
dispatch on the magic alone. Ops (`op` field):

- ADD: `y = clamp((a*Ma + b*Mb + 2^(S-1)) >> S, lo, hi)` elementwise over two maps of one shape
  (`a_addr`, `b_addr`), the residual add of `hwgen.reference` (ReLU after it by `lo = 0`); each
  operand signed or not on its own (`in_signed`, `b_signed`: a ResNet's conv branch is signed,
  its identity shortcut the block input after a ReLU);
- MAXPOOL2: 2x2 windows, stride 2, no padding (floor): the max of 4;
- AVGPOOL2: same windows, `y = requant(sum of 4)` with one `M`, `S`;
- GAP: global average pooling, `y = requant(sum over H x W)` per channel, output `(C, 1, 1)`;
- LINEAR: the classifier (a linear layer whose output is the graph's raw logits, `requant` None)
  on the map its flatten reads: `logit[o] = bias[o] + sum x[c, y, x] * w[o, (c*H + y)*W + x]`, in
  `LOGIT_BITS`-bit two's complement, one beat per logit (`unpack_logits`). Its weights
  (`b_addr`, `linear_block`) are one block per output: a beat holding the bias, then the weight
  row as a map in the input's layout (8-bit fields, 0 in the padding), so a weight beat meets the
  input beat of the same fields; the flatten is that layout, no data moves for it.

Every map is in the engine's DRAM activation layout (`memory_map`: rows padded to whole beats,
A-bit fields). `plan_netop` turns a graph node into the descriptor's fields, or refuses, in one
line, a node the unit cannot run.
"""

from __future__ import annotations

import numpy as np
from amaranth.hdl import Shape, signed
from amaranth.lib import data

from .. import intmath
from ..errors import HwgenError
from .descriptor import DESCRIPTOR_BYTES, LAYOUT as CONV_LAYOUT, pack_layout

NETOP_MAGIC = 0x4E4F  # "NO"
MAGIC_OFFSET = CONV_LAYOUT["magic"].offset  # both kinds carry their magic here
OP_ADD, OP_MAXPOOL2, OP_AVGPOOL2, OP_GAP, OP_LINEAR = 1, 2, 3, 4, 5
OPS = {"add": OP_ADD, "maxpool2": OP_MAXPOOL2, "avgpool2": OP_AVGPOOL2, "gap": OP_GAP, "linear": OP_LINEAR}
LOGIT_BITS = 32  # a logit's field: the low 4 bytes of its beat
OP_NAMES = {code: name for name, code in OPS.items()}

_FIELDS = {
    "a_addr": 32,  # the input map (ADD: the first operand)
    "b_addr": 32,  # ADD: the second operand (same shape and layout); LINEAR: the weight blocks
    "out_addr": 32,
    "op": 4,
    "in_signed": 1,  # the input fields are two's complement
    "half_even": 1,  # round exact ties to even (intmath.requantize rounding="half_even")
    "b_signed": 1,  # ADD: the second operand's fields are two's complement (each operand has its own)
    "_flags_pad": 1,
    "channels": 16,
    "height": 16,
    "width": 16,
    "in_row_beats": 16,
    "out_height": 16,
    "out_width": 16,  # LINEAR: the logits (out features)
    "out_row_beats": 16,
    "ma": 16,  # ADD: Ma; AVGPOOL2 / GAP: the requant multiplier M
    "mb": 16,  # ADD: Mb
    "shift": 8,  # S
    "lo": signed(16),
    "hi": signed(16),
}
_used = sum(Shape.cast(s).width for s in _FIELDS.values())
LAYOUT = data.StructLayout({**_FIELDS, "_pad": MAGIC_OFFSET - _used, "magic": 16,
                            "_tail": 8 * DESCRIPTOR_BYTES - MAGIC_OFFSET - 16})
assert LAYOUT.size == 8 * DESCRIPTOR_BYTES and LAYOUT["magic"].offset == MAGIC_OFFSET



def pack(**fields) -> bytes:
    """The descriptor's 64 bytes; every field of FIELDS except magic must be given."""
    return pack_layout(LAYOUT, "network-op descriptor", dict(fields, magic=NETOP_MAGIC))


def plan_netop(graph, name: str) -> dict:
    """The descriptor fields of node `name` except addresses and row beats: op, shapes, M, S, lo, hi.

    Refuses (HwgenError, one line) what the unit does not run: pools other than 2x2 stride 2
    without padding (or global), per-channel multipliers that differ, multipliers over 16 bits.
    """
    node = graph.node(name)
    src = linear_map(graph, node) if node.op == "linear" else graph.node(node.inputs[0])
    q, qin = node.quant, src.quant
    if q is None or qin is None:
        raise HwgenError(f"node '{name}': the network-op unit runs quantized graphs only")
    c, h, w = src.out_shape
    _, oh, ow = (1, 1, node.out_shape[0]) if node.op == "linear" else node.out_shape
    fields = {"in_signed": int(bool(qin.signed)), "channels": c, "height": h, "width": w,
              "out_height": oh, "out_width": ow, "ma": 0, "mb": 0, "shift": 1, "lo": 0, "hi": 0, "half_even": 0, "b_signed": 0}
    if node.op == "linear":
        if q.requant is not None or graph.output != name:
            raise HwgenError(f"node '{name}': the network-op unit runs a linear layer only as the classifier "
                             f"(the graph's output, raw logits), not a requantized hidden layer")
        from ..reference import accumulator_bits

        bits = accumulator_bits(graph, node)
        if bits > LOGIT_BITS:
            raise HwgenError(f"node '{name}': its logits need a {bits}-bit accumulator; the network-op unit "
                             f"writes {LOGIT_BITS}-bit logits")
        fields.update(op=OP_LINEAR)
        return fields
    if node.op == "maxpool2d":
        _check_pool(node)
        fields.update(op=OP_MAXPOOL2, lo=-(1 << 15), hi=(1 << 15) - 1)
        return fields
    r = q.requant
    mult, shift = _one(name, r.multiplier, "multiplier"), _one(name, r.shift, "shift")
    fields.update(lo=int(r.lo), hi=int(r.hi), shift=shift, half_even=int(r.rounding == "half_even"), ma=mult)
    if node.op == "add":
        other = graph.node(node.inputs[1])
        if other.out_shape != src.out_shape:
            raise HwgenError(f"node '{name}': add of maps of different shapes {tuple(src.out_shape)} and "
                             f"{tuple(other.out_shape)}")
        ma, mb = (int(v) for v in q.input_multipliers)
        if mult != 1:
            raise HwgenError(f"node '{name}': add with a requant multiplier {mult} (the contract has 1)")
        fields.update(op=OP_ADD, ma=ma, mb=mb, b_signed=int(bool(other.quant.signed)))
    elif node.op == "avgpool2d" and tuple(node.attrs["kernel"]) == (h, w) and (oh, ow) == (1, 1) \
            and not any(node.attrs.get("padding", (0, 0))):
        fields.update(op=OP_GAP)
    elif node.op == "avgpool2d":
        _check_pool(node)
        fields.update(op=OP_AVGPOOL2)
    else:
        raise HwgenError(f"node '{name}': op '{node.op}' is not a network op the engine runs")
    for key in ("ma", "mb"):
        if not 0 <= fields[key] < 1 << intmath.MULT_BITS:
            raise HwgenError(f"node '{name}': multiplier {fields[key]} does not fit {intmath.MULT_BITS} bits")
    return fields


def _one(name: str, values, what: str) -> int:
    vals = {int(v) for v in (values if hasattr(values, "__len__") else [values])}
    if len(vals) != 1:
        raise HwgenError(f"node '{name}': per-channel requant {what}s differ; the network-op unit takes one")
    return vals.pop()


def _check_pool(node) -> None:
    a = node.attrs
    if (tuple(a["kernel"]) != (2, 2) or tuple(a["stride"]) != (2, 2) or any(a.get("padding", (0, 0)))
            or a.get("ceil_mode")):
        raise HwgenError(f"node '{node.name}': the network-op unit pools 2x2 windows at stride 2 without "
                         f"padding, not kernel {a['kernel']} stride {a['stride']} padding {a.get('padding')}"
                         f"{' in ceil mode' if a.get('ceil_mode') else ''}")


def linear_map(graph, node):
    """The node whose (C, H, W) map a linear layer reads: its flatten's input (or its own input
    when that is already a map). A linear layer on a vector of another kind is refused."""
    src = graph.node(node.inputs[0])
    if src.op == "flatten":
        src = graph.node(src.inputs[0])
    if len(src.out_shape) != 3:
        raise HwgenError(f"node '{node.name}': the network-op unit runs a linear layer on a flattened map only, "
                         f"not on the output of '{src.name}' ({src.op})")
    return src


def linear_block(graph, name: str, params) -> bytes:
    """The weight blocks of LINEAR node `name`: per output, a beat whose low LOGIT_BITS hold the bias,
    then the output's weight row as a map in the input's DRAM layout (one byte per weight)."""
    node = graph.node(name)
    c, h, w = linear_map(graph, node).out_shape
    q = node.quant
    bb, row = params.beat_bytes, params.row_beats(w) * params.beat_bytes
    blocks = np.zeros((q.weight.shape[0], bb + c * h * row), np.uint8)
    blocks[:, :LOGIT_BITS // 8] = np.asarray(q.bias, "<i4").view(np.uint8).reshape(-1, LOGIT_BITS // 8)
    rows = np.zeros((q.weight.shape[0], c, h, row), np.int8)
    rows[..., :w] = np.asarray(q.weight, np.int64).reshape(-1, c, h, w)
    blocks[:, bb:] = rows.reshape(q.weight.shape[0], -1).view(np.uint8)
    return blocks.tobytes()


def logits_bytes(count: int, params) -> int:
    """DRAM bytes of `count` logits: one beat each."""
    return count * params.beat_bytes


def unpack_logits(raw: bytes, count: int, params) -> np.ndarray:
    """The `count` logits (int64) from their beats: the low LOGIT_BITS of each, two's complement."""
    beats = np.frombuffer(raw, np.uint8)[:count * params.beat_bytes].reshape(count, params.beat_bytes)
    return beats[:, :LOGIT_BITS // 8].copy().view("<i4").reshape(count).astype(np.int64)


def ops_mask(ops) -> int:
    """The NETOPS configuration register: bit `code` set for each op (a name of OPS) the unit has."""
    return sum(1 << OPS[op] for op in ops)


def pack_netop(graph, name: str, params, **kw) -> bytes:
    """The descriptor of node `name` (the arguments of `netop_fields`)."""
    return pack(**netop_fields(graph, name, params, **kw))


def moved_bytes(fields: dict, params) -> int:
    """The DRAM bytes the unit moves for a descriptor of `fields` (its own 64 included): every input
    field a window uses and every output once; LINEAR reads the input map once and each weight
    block once (`linear_block`)."""
    bb = params.beat_bytes
    plane = fields["channels"] * fields["height"] * fields["in_row_beats"] * bb
    out = fields["channels"] * fields["out_height"] * fields["out_row_beats"] * bb
    op = fields["op"]
    if op == OP_ADD:
        moved = 3 * plane
    elif op in (OP_MAXPOOL2, OP_AVGPOOL2):  # an odd last row is in no window: not read
        moved = fields["channels"] * 2 * (fields["height"] // 2) * fields["in_row_beats"] * bb + out
    elif op == OP_GAP:
        moved = plane + out
    else:
        logits = fields["out_width"]
        moved = plane + logits * (bb + plane) + logits_bytes(logits, params)
    return DESCRIPTOR_BYTES + moved


def netop_fields(graph, name: str, params, *, a_addr: int, out_addr: int, b_addr: int = 0, chunk: int,
                 ops=tuple(OPS)) -> dict:
    """The descriptor fields of node `name` for an engine of `params` whose unit has a FIFO of `chunk`
    beats and runs `ops` (names of OPS); an op the unit was built without is refused in one line."""
    fields = plan_netop(graph, name)
    if OP_NAMES[fields["op"]] not in ops:
        raise HwgenError(f"node '{name}': this build's network-op unit has no {OP_NAMES[fields['op']]} "
                         f"(it was generated with {', '.join(ops) or 'no network ops'})")
    if fields["op"] == OP_LINEAR and params.act_field_bits != 8:
        raise HwgenError(f"node '{name}': the network-op unit's linear layer needs one byte per activation "
                         f"(A = 5 to 8), not A = {params.act_bits}")
    in_row, out_row = params.row_beats(fields["width"]), params.row_beats(fields["out_width"])
    if fields["op"] == OP_LINEAR:
        out_row = 1  # one beat per logit
    if fields["op"] in (OP_MAXPOOL2, OP_AVGPOOL2) and in_row > chunk:
        raise HwgenError(f"node '{name}': an input row of {in_row} beats does not fit the network-op unit's "
                         f"{chunk}-beat FIFO")
    return dict(fields, a_addr=a_addr, b_addr=b_addr, out_addr=out_addr, in_row_beats=in_row, out_row_beats=out_row)
