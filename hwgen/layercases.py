"""Single-conv cases for the gateware tests and the benchmarks: quantized one-layer graphs (hwgen.ir and
hwgen.intmath), their inputs, the reference outputs and DRAM images."""

from __future__ import annotations

import numpy as np

from hwgen import intmath, reference
from hwgen import engine
from hwgen.ir import Graph, Node, QuantInfo, Requant
from models.periodic import layer_mask, parse_scheme


def conv_graph(seed: int, cin: int, cout: int, h: int, w: int, *, kernel: int = 3, stride: int = 1,
               scheme: str | None = None, in_signed: bool = False, relu: bool = True, weight_bits: int = 8,
               act_bits: int = 8, padding: int | None = None) -> Graph:
    """input -> conv2d (random integer weights, masked by a periodic scheme) with its QuantInfo.

    `padding`: kernel // 2 unless given."""
    rng = np.random.default_rng(seed)
    wlo, whi = intmath.qrange(weight_bits, True)
    wq = rng.integers(wlo, whi + 1, size=(cout, cin, kernel, kernel))
    if scheme is not None:
        wq = wq * layer_mask(parse_scheme(scheme).table(), cout, cin)
    xlo, xhi = intmath.qrange(act_bits, in_signed)
    taps = max(int(np.count_nonzero(wq.reshape(cout, -1), axis=1).max()), 1)
    acc_mag = taps * max(abs(wlo), whi) * max(abs(xlo), xhi) // 4
    bias = rng.integers(-acc_mag // 2, acc_mag // 2 + 1, size=cout)
    mults, shifts = [], []
    for _ in range(cout):
        mm, ss = intmath.quantize_multiplier(float(rng.uniform(0.5, 2.0)) * (1 << act_bits) / (2 * acc_mag))
        mults.append(mm)
        shifts.append(ss)
    lo, hi = intmath.qrange(act_bits, not relu)
    pad = kernel // 2 if padding is None else padding
    x = Node("x", "input", out_shape=(cin, h, w))
    x.quant = QuantInfo(act_bits=act_bits, out_scale=1.0, signed=in_signed)
    conv = Node("conv", "conv2d", ("x",), {"stride": stride, "padding": pad}, wq.astype(np.float32))
    conv.quant = QuantInfo(act_bits=act_bits, out_scale=1.0, signed=not relu, weight_bits=weight_bits,
                           weight=wq.astype(np.int64), weight_scale=np.ones(cout), bias=bias.astype(np.int64),
                           requant=Requant(np.array(mults, dtype=np.int64), np.array(shifts, dtype=np.int64), lo, hi))
    return Graph("one_conv", [x, conv], "conv").infer_shapes()


def pattern_library_graph(seed, cin, cout, h, w, **kwargs):
    """A PCONV-style layer: every kernel keeps one of three 4-tap shapes, chosen at random."""
    graph = conv_graph(seed, cin=cin, cout=cout, h=h, w=w, **kwargs)
    node = graph.node("conv")
    shapes = np.zeros((3, 9), dtype=np.int64)
    for k, taps in enumerate(((0, 1, 3, 4), (4, 5, 7, 8), (1, 4, 6, 7))):
        shapes[k, list(taps)] = 1
    pick = np.random.default_rng(seed).integers(0, 3, size=(cout, cin))
    node.quant.weight = node.quant.weight * shapes[pick].reshape(cout, cin, 3, 3)
    node.quant.weight[0, 0] = 0  # connectivity sparsity: a removed kernel
    node.weight = node.quant.weight.astype(np.float32)
    return graph


def random_input(graph: Graph, seed: int) -> np.ndarray:
    q = graph.input.quant
    lo, hi = intmath.qrange(q.act_bits, q.signed)
    return np.random.default_rng(seed + 1000).integers(lo, hi + 1, size=graph.input_shape)


def expected(graph: Graph, x: np.ndarray) -> np.ndarray:
    """The specification: hwgen.reference on one image."""
    return reference.run_layer(graph, "conv", x[None])[0]


def load_image(plan_image: engine.DramImage, x: np.ndarray, params, layer: int = 0) -> bytearray:
    image = bytearray(plan_image.size)
    image[:len(plan_image.data)] = plan_image.data
    reg = plan_image.layers[layer]
    blob = engine.pack_activations(x, params)
    image[reg.input:reg.input + len(blob)] = blob
    return image


def residual_graph(seed: int, cin: int, ch: int, h: int, w: int, *, act_bits: int = 8,
                   scheme: str | None = "PS4_P4", basic_block: bool = False) -> Graph:
    """input -> c1 -> c2 -> add(c1, c2) + ReLU -> 2x2 max pool -> 2x2 average pool -> global average pool:
    every node the hardware runs from one start (hwgen.engine.network), with random integer parameters.
    `basic_block`: the add as a ResNet basic block's, add(c2, c1): the conv branch c2 signed (no
    ReLU before the add), the identity shortcut c1 unsigned."""
    rng = np.random.default_rng(seed)
    first = conv_graph(seed, cin, ch, h, w, scheme=scheme, act_bits=act_bits)
    second = conv_graph(seed + 1, ch, ch, h, w, scheme=scheme, act_bits=act_bits, relu=not basic_block)
    x, c1 = first.nodes
    c2 = second.node("conv")
    c1.name, c2.name, c2.inputs = "c1", "c2", ("c1",)
    c1.inputs = ("x",)
    lo, hi = intmath.qrange(act_bits, False)
    shift = int(rng.integers(14, 18))
    ma, mb = (int(v) for v in rng.integers(1 << 12, 1 << intmath.MULT_BITS, size=2))
    add = Node("add", "add", ("c2", "c1") if basic_block else ("c1", "c2"))
    add.quant = QuantInfo(act_bits, 1.0, False, requant=Requant(np.ones(ch, np.int64), np.full(ch, shift), lo, hi),
                          input_multipliers=[ma, mb])
    relu = Node("relu", "relu", ("add",))
    relu.quant = QuantInfo(act_bits, 1.0, False)
    mp = Node("mp", "maxpool2d", ("relu",), {"kernel": 2, "stride": 2, "padding": 0})
    mp.quant = QuantInfo(act_bits, 1.0, False)
    nodes = [x, c1, c2, add, relu, mp]
    for name, kernel in (("ap", (2, 2)), ("gap", (h // 4, w // 4))):
        m_, s_ = intmath.quantize_multiplier(float(rng.uniform(0.5, 1.0)) / (kernel[0] * kernel[1]))
        pool = Node(name, "avgpool2d", (nodes[-1].name,), {"kernel": kernel, "stride": kernel, "padding": 0})
        pool.quant = QuantInfo(act_bits, 1.0, False, requant=Requant(np.full(ch, m_), np.full(ch, s_), lo, hi))
        nodes.append(pool)
    return Graph("residual_case", nodes, "gap").infer_shapes()
