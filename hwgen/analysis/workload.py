"""The workload of one weighted layer: shapes, bit widths and the nonzero mask, taken from the IR.

Every layer becomes a convolution `M x C x R x S` over a `P x Q` output (a linear layer is a 1x1
convolution on a 1x1 image), so formats, mapping and counts need one code path. Batch size is 1.
A grouped (or depthwise) convolution keeps C as the input channels of one group: its weights are
`M x C x R x S`, and a tile of output channels reads only its own groups' input channels.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from ..errors import HwgenError
from ..intmath import check_bits
from ..ir import Graph, Node
from ..sparsity import KINDS, detect
from .formats import FormatCost, storage


@dataclass(frozen=True)
class Layer:
    name: str
    op: str  # conv2d | linear
    m: int  # output channels
    c: int  # input channels
    r: int  # kernel rows
    s: int  # kernel cols
    h: int  # input rows (unpadded)
    w: int  # input cols
    p: int  # output rows
    q: int  # output cols
    stride: tuple[int, int]
    padding: tuple[int, int]
    dilation: tuple[int, int]
    weight_bits: int
    in_bits: int  # bits of the input activations
    out_bits: int  # bits of the output activations (32 for a classifier that emits accumulators)
    mask: np.ndarray  # bool (M, C, R, S): the nonzero weights
    kind: str  # one of KINDS
    period: int | None  # P of a periodic layer
    patterns: np.ndarray | None = None  # (K, R, S) library; periodic: table by (m + c) mod P
    groups: int = 1  # grouped convolution: c is the input channels of one group, m the outputs of all

    @cached_property
    def costs(self) -> dict[str, FormatCost | None]:
        """Every weight format's cost (`formats.storage`), computed once however many analyses read it."""
        return storage(self.mask, self.weight_bits, self.kind, self.period, self.patterns)

    @property
    def in_channels(self) -> int:
        return self.c * self.groups

    def group_span(self, m_tile):
        """Input channels an output-channel tile of `m_tile` reads: its groups' (all C when not grouped)."""
        if self.groups == 1:
            return self.c
        return self.c * -(-np.asarray(m_tile) // (self.m // self.groups))

    @property
    def n_weights(self) -> int:
        return self.m * self.c * self.r * self.s

    @property
    def nonzeros(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def macs(self) -> int:
        return self.n_weights * self.p * self.q

    @property
    def effectual_macs(self) -> int:
        return self.nonzeros * self.p * self.q

    def touched(self, axis: int, start: int, stop: int) -> np.ndarray:
        """The input rows (axis 0) or cols (axis 1) read by output rows/cols `start..stop-1`.

        Padding positions are left out: they are generated on chip, never fetched.
        """
        k, size = (self.r, self.h) if axis == 0 else (self.s, self.w)
        return touched(k, size, self.stride[axis], self.padding[axis], self.dilation[axis], start, stop)


def touched(k: int, size: int, stride: int, pad: int, dil: int, start: int, stop: int) -> np.ndarray:
    """The input positions (of `size`) that kernel taps `k` read for outputs `start..stop-1` (`Layer.touched`)."""
    pos = (np.arange(start, stop)[:, None] * stride - pad + np.arange(k)[None, :] * dil).ravel()
    return np.unique(pos[(pos >= 0) & (pos < size)])


def _producer_bits(graph: Graph, node: Node, default: int) -> int:
    src = graph.node(node.inputs[0])
    return src.quant.act_bits if src.quant is not None else default


def layer_from_node(graph: Graph, node: Node, weight_bits: int = 8, act_bits: int = 8) -> Layer:
    """The workload of a conv2d or linear node; bit widths come from its QuantInfo if it has one."""
    weight_bits = check_bits(weight_bits, "weight bits")
    act_bits = check_bits(act_bits, "activation bits")
    q = node.quant
    if q is not None and q.weight is not None:
        w, wbits = q.weight, int(q.weight_bits)
        # A classifier without requant emits its int32 accumulators.
        out_bits = int(q.act_bits) if q.requant is not None else 32
    else:
        w, wbits, out_bits = node.weight, weight_bits, act_bits
    in_bits = _producer_bits(graph, node, act_bits)
    groups = 1
    if node.op == "conv2d":
        a = node.attrs
        groups = int(a.get("groups", 1))
        m, c, r, s = w.shape
        ci, h, wi = graph.in_shape(node)
        _, p, qq = node.out_shape
        stride, padding, dilation = tuple(a["stride"]), tuple(a["padding"]), tuple(a["dilation"])
        mask = np.asarray(w) != 0
    elif node.op == "linear":
        m, c = w.shape
        r = s = h = wi = p = qq = 1
        stride = dilation = (1, 1)
        padding = (0, 0)
        mask = (np.asarray(w) != 0).reshape(m, c, 1, 1)
    else:
        raise HwgenError(f"node '{node.name}': analyze covers conv2d and linear layers, not {node.op}")
    kind, period, patterns = _structure(node, mask)
    return Layer(node.name, node.op, int(m), int(c), int(r), int(s), int(h), int(wi), int(p), int(qq),
                 stride, padding, dilation, wbits, int(in_bits), int(out_bits), mask, kind, period, patterns, groups)


def _structure(node: Node, mask: np.ndarray) -> tuple[str, int | None, np.ndarray | None]:
    """(kind, period, patterns) from `hwgen.sparsity.detect`.

    patterns: a pattern layer's library (K, R, S); a periodic layer's table indexed by
    (m + c) mod P, i.e. with detect's offset folded in (what the periodic format stores).
    """
    info = detect(node)
    kind = str(info.kind)
    if kind not in KINDS:
        raise HwgenError(f"layer '{node.name}': unknown sparsity kind '{kind}'")
    if kind not in ("periodic", "pattern", "connectivity"):
        return kind, None, None
    r, s = mask.shape[2:]
    patterns = np.asarray(info.patterns, dtype=bool).reshape(-1, r, s)
    if kind == "periodic":
        p = int(info.period)
        return kind, p, patterns[(np.arange(p) + int(info.offset)) % p]
    return kind, None, patterns


def workload(graph: Graph, weight_bits: int = 8, act_bits: int = 8) -> list[Layer]:
    """The weighted layers of `graph`, in order."""
    layers = [layer_from_node(graph, n, weight_bits, act_bits) for n in graph.layers()]
    if not layers:
        raise HwgenError(f"graph '{graph.name}' has no conv2d or linear layer to analyze")
    return layers
