"""Graphs for the quantization, reference and checkpoint tests, built with hwgen.ir directly."""

from __future__ import annotations

import numpy as np

from hwgen import intmath
from hwgen.ir import Graph, Node, QuantInfo, Requant


def _conv(rng, name, src, cin, cout, k=3, stride=1, padding=1, groups=1, dilation=1, bias=True):
    w = (rng.standard_normal((cout, cin // groups, k, k)) * (1.5 / np.sqrt(cin // groups * k * k))).astype(np.float32)
    b = (rng.standard_normal(cout) * 0.1).astype(np.float32) if bias else None
    return Node(name, "conv2d", (src,), {"stride": stride, "padding": padding, "groups": groups, "dilation": dilation},
                w, b)


def _linear(rng, name, src, fin, fout):
    w = (rng.standard_normal((fout, fin)) * (1.0 / np.sqrt(fin))).astype(np.float32)
    return Node(name, "linear", (src,), {}, w, (rng.standard_normal(fout) * 0.1).astype(np.float32))


def digits_net(seed: int = 0) -> Graph:
    """The shape of models.zoo.DigitsCNN (batch norm folded), with random weights."""
    rng = np.random.default_rng(seed)
    nodes = [Node("x", "input", out_shape=(1, 8, 8)),
             _conv(rng, "c1", "x", 1, 16), Node("r1", "relu", ("c1",)),
             _conv(rng, "c2", "r1", 16, 32), Node("r2", "relu", ("c2",)),
             Node("p1", "maxpool2d", ("r2",), {"kernel": 2}),
             _conv(rng, "c3", "p1", 32, 32), Node("r3", "relu", ("c3",)),
             _conv(rng, "c4", "r3", 32, 64), Node("r4", "relu", ("c4",)),
             Node("p2", "maxpool2d", ("r4",), {"kernel": 2}),
             Node("f", "flatten", ("p2",)),
             _linear(rng, "fc", "f", 256, 10)]
    return Graph("digits", nodes, "fc").infer_shapes()


def residual_net(seed: int = 0) -> Graph:
    """Every op and conv variant: strided, dilated, depthwise, 1x1 shortcut, add with and without a
    fused ReLU, a ReLU that is not fused, padded max and average pools, two linear layers."""
    rng = np.random.default_rng(seed)
    nodes = [Node("x", "input", out_shape=(3, 9, 9)),
             _conv(rng, "stem", "x", 3, 8), Node("stem_relu", "relu", ("stem",)),
             _conv(rng, "b1", "stem_relu", 8, 8, stride=2), Node("b1_relu", "relu", ("b1",)),
             _conv(rng, "dw", "b1_relu", 8, 8, groups=8, dilation=2, padding=2, bias=False),
             _conv(rng, "sc", "stem_relu", 8, 8, k=1, stride=2, padding=0),
             Node("add1", "add", ("dw", "sc")), Node("add1_relu", "relu", ("add1",)),
             _conv(rng, "g2", "add1_relu", 8, 12, groups=4),
             Node("add2", "add", ("g2", "g2")),  # no ReLU after: signed
             Node("mp", "maxpool2d", ("add2",), {"kernel": 3, "stride": 2, "padding": 1}),
             Node("free_relu", "relu", ("mp",)),  # follows a pool, so it is not fused
             Node("ap", "avgpool2d", ("free_relu",), {"kernel": 2, "stride": 1, "padding": 1}),
             Node("gap", "avgpool2d", ("ap",), {"kernel": 4}),
             Node("f", "flatten", ("gap",)),
             _linear(rng, "fc1", "f", 12, 16), Node("fc1_relu", "relu", ("fc1",)),
             _linear(rng, "fc2", "fc1_relu", 16, 5)]
    return Graph("residual", nodes, "fc2").infer_shapes()


def random_input(graph: Graph, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(-1, 1, size=(n, *graph.input_shape)).astype(np.float32)


def int_range(bits: int, signed: bool) -> tuple[int, int]:
    """Written out here rather than taken from intmath, so tests do not check intmath against itself."""
    return (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2 ** bits - 1)


def random_requant(rng, channels: int, acc_mag: int, act_bits: int, relu: bool) -> Requant:
    """M, S that map accumulators of about `acc_mag` onto the output range (plus random offsets)."""
    m = rng.integers(0, 2 ** intmath.MULT_BITS, size=channels)
    target = max(1, (acc_mag * 2 ** intmath.MULT_BITS).bit_length() - act_bits)
    s = np.clip(target + rng.integers(-3, 4, size=channels), 1, intmath.MAX_SHIFT)
    lo, hi = int_range(act_bits, not relu)
    return Requant(m.astype(np.int64), s.astype(np.int64), lo, hi)


def int_source(graph_nodes: list[Node], act_bits: int, signed: bool) -> str:
    """Add an input (and, for an unsigned source, a relu) producing A-bit activations; returns its name."""
    graph_nodes.append(Node("x", "input", quant=QuantInfo(act_bits, 1.0, True)))
    if signed:
        return "x"
    graph_nodes.append(Node("xr", "relu", ("x",), quant=QuantInfo(act_bits, 1.0, False)))
    return "xr"


def random_int_activations(rng, shape, act_bits: int, signed: bool, extreme: str | None = None) -> np.ndarray:
    lo, hi = int_range(act_bits, signed)
    if extreme == "low":
        return np.full(shape, lo, dtype=np.int64)
    if extreme == "high":
        return np.full(shape, hi, dtype=np.int64)
    return rng.integers(lo, hi + 1, size=shape, dtype=np.int64)
