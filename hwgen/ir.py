"""The network IR: a small typed graph of the layers hwgen reasons about.

Every ingestion path (torch.export programs, hwgen checkpoints) produces a `Graph`; every later
stage (sparsity detection, quantization, the integer reference, analysis, generation) reads one.

Shapes omit the batch dimension: activations are `(C, H, W)` after convolutions and `(F,)` after
`flatten`. Batch norm never appears: ingestion folds it into the preceding convolution.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import numpy as np

from .errors import HwgenError

OPS = ("input", "conv2d", "linear", "relu", "clip", "maxpool2d", "avgpool2d", "add", "concat", "flatten",
       "sigmoid", "silu")
# Elementwise ops whose output has their input's shape.
ELEMENTWISE_OPS = ("relu", "clip", "sigmoid", "silu")
WEIGHTED_OPS = ("conv2d", "linear")
# Sizes past these are not a network anyone runs, but a corrupt or hostile file: refused before any
# count or buffer is derived from them (2**28 float32 values are 1 GiB for one activation).
MAX_DIM = 1 << 16
MAX_ELEMENTS = 1 << 28


@dataclass
class Requant:
    """Per-output-channel requantization `y = clamp((acc * M + (1 << (S - 1))) >> S, lo, hi)`.

    See `hwgen.intmath` for the arithmetic; the arrays have one entry per output channel.
    `rounding` is "half_up" (the shift above; what `hwgen quantize` uses) or "half_even" (ties to
    the even neighbour: how QONNX and ONNX quantizers round, kept for models loaded with theirs).
    """

    multiplier: np.ndarray  # int64, 0 <= M < 2**intmath.MULT_BITS
    shift: np.ndarray  # int64, 1 <= S <= intmath.MAX_SHIFT
    lo: int
    hi: int
    rounding: str = "half_up"


@dataclass
class QuantInfo:
    """The integer view of one node, filled in by `hwgen.quantize`.

    The real value of an output activation is `q * out_scale`. Every node of a quantized graph has
    one; nodes that only move integers (relu, maxpool2d, flatten) copy their input's scale.
    """

    act_bits: int  # bits of this node's output activations
    out_scale: float
    signed: bool  # output range is signed [-2^(A-1), 2^(A-1)-1] or unsigned [0, 2^A-1]
    weight_bits: int | None = None  # conv2d / linear
    weight: np.ndarray | None = None  # int64, same shape as Node.weight, W-bit signed values
    weight_scale: np.ndarray | None = None  # float64, one per output channel
    bias: np.ndarray | None = None  # int64, int32 range, in accumulator units
    requant: Requant | None = None  # None on the last linear: its int32 accumulators are the logits
    input_multipliers: list[int] | None = None  # add: one multiplier per input, sharing requant.shift


@dataclass
class Node:
    """One operation. `inputs` name producer nodes; `attrs` hold the op's hyper-parameters.

    attrs by op:
      conv2d:    kernel (kh, kw), stride (sh, sw), padding (ph, pw), dilation (dh, dw), groups
                 (a batch norm that follows no conv is a depthwise 1x1 conv2d: a per-channel affine)
      linear:    (none)
      clip:      lo, hi (floats; -inf / inf for an open side): ReLU6, hardtanh, Clip
      maxpool2d: kernel, stride, padding (pairs), ceil_mode (bool, torch's rule: the last window
                 may overhang the padded input, but must start inside it)
      avgpool2d: kernel, stride, padding (pairs); global average pooling has kernel = (H, W)
      concat:    (none): two or more inputs joined along channels (C, H, W) or features (F,)
      input, relu, add, flatten, sigmoid, silu: (none)
    weight: float32 `(M, C/groups, kh, kw)` for conv2d, `(N, F)` for linear; bias `(M,)` or None.
    """

    name: str
    op: str
    inputs: tuple[str, ...] = ()
    attrs: dict = field(default_factory=dict)
    weight: np.ndarray | None = None
    bias: np.ndarray | None = None
    out_shape: tuple[int, ...] = ()
    quant: QuantInfo | None = None


def _pair(v) -> tuple[int, int]:
    if isinstance(v, (list, tuple)):
        if len(v) == 1:
            return (int(v[0]), int(v[0]))
        return (int(v[0]), int(v[1]))
    return (int(v), int(v))


def conv_out_size(size: int, kernel: int, stride: int, padding: int, dilation: int = 1) -> int:
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def pool_out_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool = False) -> int:
    """torch's pooling output size: with ceil_mode a last, partial window counts if it starts
    inside the input or its left padding."""
    if not ceil_mode:
        return conv_out_size(size, kernel, stride, padding)
    out = -(-(size + 2 * padding - kernel) // stride) + 1
    if (out - 1) * stride >= size + padding:
        out -= 1
    return out


@dataclass
class Graph:
    """Nodes in topological order; the first is the single `input` node."""

    name: str
    nodes: list[Node]
    output: str

    def __post_init__(self):
        self._index = {n.name: n for n in self.nodes}
        if len(self._index) != len(self.nodes):
            raise HwgenError(f"graph '{self.name}': duplicate node names")

    # -- lookup ---------------------------------------------------------------------------------
    def node(self, name: str) -> Node:
        try:
            return self._index[name]
        except KeyError:
            raise HwgenError(f"graph '{self.name}' has no node named '{name}'") from None

    def __iter__(self):
        return iter(self.nodes)

    @property
    def input(self) -> Node:
        return self.nodes[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.nodes[0].out_shape

    def in_shape(self, node: Node) -> tuple[int, ...]:
        return self.node(node.inputs[0]).out_shape

    def consumers(self, name: str) -> list[Node]:
        return [n for n in self.nodes if name in n.inputs]

    def layers(self) -> list[Node]:
        """The weighted layers (conv2d and linear), in order."""
        return [n for n in self.nodes if n.op in WEIGHTED_OPS]

    def copy(self) -> "Graph":
        return Graph(self.name, [dataclasses.replace(n, attrs=dict(n.attrs)) for n in self.nodes], self.output)

    # -- validation and shapes --------------------------------------------------------------------
    def infer_shapes(self, input_shape: tuple[int, ...] | None = None) -> "Graph":
        """Propagate shapes from the input, checking every op's constraints. Returns self."""
        if not self.nodes or self.nodes[0].op != "input":
            raise HwgenError(f"graph '{self.name}': the first node must be the input")
        if input_shape is not None:
            self.nodes[0].out_shape = tuple(int(d) for d in input_shape)
        if not self.nodes[0].out_shape:
            raise HwgenError(f"graph '{self.name}': input shape unknown (pass --input-shape C,H,W)")
        seen = set()
        for n in self.nodes:
            if n.op not in OPS:
                raise HwgenError(f"node '{n.name}': unsupported op '{n.op}'")
            for i in n.inputs:
                if i not in seen:
                    raise HwgenError(f"node '{n.name}': input '{i}' is not defined before it")
            n.out_shape = self._shape_of(n) if n.op != "input" else n.out_shape
            _check_size(n)
            seen.add(n.name)
        if self.output not in seen:
            raise HwgenError(f"graph '{self.name}': output node '{self.output}' does not exist")
        return self

    def _shape_of(self, n: Node) -> tuple[int, ...]:
        ins = [self.node(i).out_shape for i in n.inputs]
        if n.op == "concat":
            return self._concat_shape(n, ins)
        want_inputs = 2 if n.op == "add" else 1
        if len(ins) != want_inputs:
            raise HwgenError(f"node '{n.name}': {n.op} takes {want_inputs} input(s), got {len(ins)}")
        x = ins[0]
        if n.op == "clip":
            lo, hi = n.attrs.get("lo"), n.attrs.get("hi")
            if not all(isinstance(v, (int, float)) and not math.isnan(v) for v in (lo, hi)) or not lo < hi:
                raise HwgenError(f"node '{n.name}': clip needs float bounds lo < hi, got {lo!r}, {hi!r}")
            return x
        if n.op in ELEMENTWISE_OPS:
            return x
        if n.op == "add":
            if ins[0] != ins[1]:
                raise HwgenError(f"node '{n.name}': add of mismatched shapes {ins[0]} and {ins[1]}")
            return x
        if n.op == "flatten":
            return (math.prod(x),)
        if n.op == "linear":
            if len(x) != 1:
                raise HwgenError(f"node '{n.name}': linear needs a flat input, got shape {x}")
            w = n.weight
            if w is None or w.ndim != 2 or w.shape[1] != x[0]:
                raise HwgenError(f"node '{n.name}': linear weight {None if w is None else w.shape} does not fit input {x}")
            return (int(w.shape[0]),)
        if len(x) != 3:
            raise HwgenError(f"node '{n.name}': {n.op} needs a (C, H, W) input, got shape {x}")
        c, h, w_ = x
        if n.op == "conv2d":
            a = n.attrs
            for key in ("kernel", "stride", "padding", "dilation"):
                a[key] = _pair(a.get(key, 1 if key in ("stride", "dilation") else 0))
            a["groups"] = int(a.get("groups", 1))
            wt = n.weight
            if wt is None or wt.ndim != 4:
                raise HwgenError(f"node '{n.name}': conv2d needs a 4-d weight")
            m, cg, kh, kw = wt.shape
            a["kernel"] = (kh, kw)
            if a["groups"] < 1 or c % a["groups"] or m % a["groups"] or cg * a["groups"] != c:
                raise HwgenError(f"node '{n.name}': weight {wt.shape} with groups={a['groups']} does not fit {c} input channels")
            oh = conv_out_size(h, kh, a["stride"][0], a["padding"][0], a["dilation"][0])
            ow = conv_out_size(w_, kw, a["stride"][1], a["padding"][1], a["dilation"][1])
            if oh < 1 or ow < 1:
                raise HwgenError(f"node '{n.name}': output would be empty for input {x}")
            return (int(m), oh, ow)
        if n.op in ("maxpool2d", "avgpool2d"):
            a = n.attrs
            a["kernel"] = _pair(a["kernel"])
            a["stride"] = _pair(a.get("stride") or a["kernel"])
            a["padding"] = _pair(a.get("padding", 0))
            ceil = bool(a.pop("ceil_mode", False))  # kept only when set: the attrs of floor pooling stay as they were
            if ceil and n.op != "maxpool2d":
                raise HwgenError(f"node '{n.name}': ceil_mode is for max pooling only")
            if ceil:
                a["ceil_mode"] = True
            oh = pool_out_size(h, a["kernel"][0], a["stride"][0], a["padding"][0], ceil)
            ow = pool_out_size(w_, a["kernel"][1], a["stride"][1], a["padding"][1], ceil)
            if oh < 1 or ow < 1:
                raise HwgenError(f"node '{n.name}': pooling output would be empty for input {x}")
            return (c, oh, ow)
        raise HwgenError(f"node '{n.name}': unsupported op '{n.op}'")

    @staticmethod
    def _concat_shape(n: Node, ins: list[tuple[int, ...]]) -> tuple[int, ...]:
        if len(ins) < 2:
            raise HwgenError(f"node '{n.name}': concat takes two or more inputs, got {len(ins)}")
        if len({len(x) for x in ins}) != 1 or len({x[1:] for x in ins}) != 1:
            raise HwgenError(f"node '{n.name}': concat of shapes {ins} that differ beyond the channels")
        return (sum(x[0] for x in ins),) + ins[0][1:]


def _check_size(n: Node) -> None:
    shape = n.out_shape
    if any(not isinstance(d, (int, np.integer)) or d < 1 for d in shape):
        raise HwgenError(f"node '{n.name}': shape {shape} must be positive integers")
    if len(shape) == 3 and max(shape) > MAX_DIM:
        raise HwgenError(f"node '{n.name}': shape {shape} has a dimension over the limit of {MAX_DIM}")
    if math.prod(shape) > MAX_ELEMENTS:
        raise HwgenError(f"node '{n.name}': shape {shape} has {math.prod(shape):,} values, over the limit of "
                         f"{MAX_ELEMENTS:,} per activation")


# -- counts -----------------------------------------------------------------------------------------
def macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates of the dense layer (every weight, zero or not)."""
    if node.op == "conv2d":
        _, oh, ow = node.out_shape
        return math.prod(int(d) for d in node.weight.shape) * int(oh) * int(ow)
    if node.op == "linear":
        return math.prod(int(d) for d in node.weight.shape)
    return 0


def effectual_macs(graph: Graph, node: Node) -> int:
    """Multiply-accumulates with a nonzero weight (padding taps still count, as in the field)."""
    w = node.quant.weight if node.quant is not None and node.quant.weight is not None else node.weight
    if node.op == "conv2d":
        _, oh, ow = node.out_shape
        return int(np.count_nonzero(w)) * int(oh) * int(ow)
    if node.op == "linear":
        return int(np.count_nonzero(w))
    return 0
