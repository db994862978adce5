"""The integer reference against an independent integer implementation written with torch.

The torch side computes convolutions and pools with torch.nn.functional in float64 on
integer-valued tensors (exact: every |value| stays below 2^53, asserted) and requantizes with
torch int64 floor division, independently of hwgen.intmath. Comparisons are exact.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import quant_helpers as h
from hwgen import intmath, quantize, reference
from hwgen.errors import HwgenError
from hwgen.ir import Graph, Node, QuantInfo, Requant

EXACT = 2 ** 53


# -- the independent implementation ---------------------------------------------------------------


def _exact_long(t: torch.Tensor) -> torch.Tensor:
    assert t.abs().max().item() < EXACT, "float64 would round: the torch side is not exact here"
    return t.round().long()


def t_requant(acc: torch.Tensor, m, s, lo: int, hi: int) -> torch.Tensor:
    shape = (-1,) + (1,) * (acc.dim() - 2)
    m = torch.as_tensor(np.asarray(m)).long().reshape(shape)
    s = torch.as_tensor(np.asarray(s)).long().reshape(shape)
    rounded = torch.div(acc * m + torch.pow(2, s - 1), torch.pow(2, s), rounding_mode="floor")
    return rounded.clamp(lo, hi)


def t_node(node: Node, ins: list[torch.Tensor]) -> torch.Tensor:
    q = node.quant
    x = ins[0]
    a = node.attrs
    if node.op == "input":
        return x
    if node.op == "relu":
        return x.clamp(min=0)
    if node.op == "flatten":
        return x.flatten(1)
    if node.op == "maxpool2d":
        return _exact_long(F.max_pool2d(x.double(), a["kernel"], a["stride"], a["padding"]))
    if node.op == "avgpool2d":
        acc = _exact_long(F.avg_pool2d(x.double(), a["kernel"], a["stride"], a["padding"],
                                       count_include_pad=True, divisor_override=1))
        return t_requant(acc, q.requant.multiplier, q.requant.shift, q.requant.lo, q.requant.hi)
    if node.op == "add":
        ma, mb = q.input_multipliers
        return t_requant(ins[0] * ma + ins[1] * mb, q.requant.multiplier, q.requant.shift, q.requant.lo, q.requant.hi)
    w = torch.from_numpy(q.weight).double()
    b = torch.from_numpy(q.bias).double()
    if node.op == "conv2d":
        acc = _exact_long(F.conv2d(x.double(), w, b, a["stride"], a["padding"], a["dilation"], a["groups"]))
    else:
        acc = _exact_long(F.linear(x.double(), w, b))
    if q.requant is None:
        return acc
    return t_requant(acc, q.requant.multiplier, q.requant.shift, q.requant.lo, q.requant.hi)


def t_run_all(graph: Graph, x_int: np.ndarray) -> dict[str, np.ndarray]:
    vals = {}
    for node in graph.nodes:
        ins = [torch.from_numpy(np.asarray(x_int, dtype=np.int64))] if node.op == "input" else \
            [vals[i] for i in node.inputs]
        vals[node.name] = t_node(node, ins)
    return {k: v.numpy() for k, v in vals.items()}


# -- random single layers with random integer parameters ------------------------------------------


def _conv_case(seed: int, extreme: str | None = None):
    rng = np.random.default_rng(seed)
    w_bits, a_bits = int(rng.integers(2, 9)), int(rng.integers(2, 9))
    in_signed, relu = bool(rng.integers(2)), bool(rng.integers(2))
    k = int(rng.choice([1, 3]))
    stride = int(rng.choice([1, 2]))
    groups = int(rng.choice([1, 2, 4]))
    cin = groups * int(rng.integers(1, 4))
    depthwise = rng.integers(3) == 0
    cout = cin if depthwise else groups * int(rng.integers(1, 4))
    groups = cin if depthwise else groups
    padding = int(rng.integers(0, k // 2 + 2))
    dilation = int(rng.choice([1, 2])) if k == 3 else 1
    hw = int(rng.integers(5, 10))
    nodes: list[Node] = []
    src = h.int_source(nodes, a_bits, in_signed)
    lo_w, hi_w = h.int_range(w_bits, True)
    shape = (cout, cin // groups, k, k)
    if extreme:
        w = np.full(shape, lo_w, dtype=np.int64)  # the largest magnitude, every tap
    else:
        w = rng.integers(lo_w, hi_w + 1, size=shape) * (rng.random(shape) < 0.7)
    bias = rng.integers(-2 ** 31, 2 ** 31, size=cout) if rng.integers(4) == 0 else rng.integers(-500, 500, size=cout)
    acc_mag = int(np.abs(w).reshape(cout, -1).sum(1).max()) * 2 ** a_bits + int(np.abs(bias).max())
    requant = h.random_requant(rng, cout, acc_mag, a_bits, relu)
    quant = QuantInfo(a_bits, 1.0, not relu, w_bits, w.astype(np.int64), np.ones(cout), bias.astype(np.int64), requant)
    nodes.append(Node("conv", "conv2d", (src,), {"stride": stride, "padding": padding, "dilation": dilation,
                                                 "groups": groups}, w.astype(np.float32), None, quant=quant))
    g = Graph("conv_case", nodes, "conv").infer_shapes((cin, hw, hw + 1))
    x = h.random_int_activations(rng, (3, cin, hw, hw + 1), a_bits, in_signed, extreme)
    return g, x


@pytest.mark.parametrize("seed", range(120))
def test_conv_layer_equals_torch(seed):
    g, x = _conv_case(seed)
    ours = reference.run_layer(g, "conv", x)
    theirs = t_node(g.node("conv"), [torch.from_numpy(x)]).numpy()
    assert ours.dtype == np.int64
    assert np.array_equal(ours, theirs)


@pytest.mark.parametrize("seed", range(24))
@pytest.mark.parametrize("extreme", ["low", "high"])
def test_conv_worst_case_operands_equal_torch(seed, extreme):
    g, x = _conv_case(1000 + seed, extreme)
    assert np.array_equal(reference.run_layer(g, "conv", x), t_node(g.node("conv"), [torch.from_numpy(x)]).numpy())


@pytest.mark.parametrize("seed", range(40))
def test_linear_layer_equals_torch(seed):
    rng = np.random.default_rng(seed)
    w_bits, a_bits = int(rng.integers(2, 9)), int(rng.integers(2, 9))
    in_signed, relu, head = bool(rng.integers(2)), bool(rng.integers(2)), bool(rng.integers(2))
    fin, fout = int(rng.integers(1, 300)), int(rng.integers(1, 20))
    lo_w, hi_w = h.int_range(w_bits, True)
    w = rng.integers(lo_w, hi_w + 1, size=(fout, fin))
    bias = rng.integers(-2 ** 31, 2 ** 31, size=fout)
    requant = None if head else h.random_requant(rng, fout, fin * 2 ** (w_bits + a_bits), a_bits, relu)
    nodes: list[Node] = []
    src = h.int_source(nodes, a_bits, in_signed)
    quant = QuantInfo(a_bits, 1.0, head or not relu, w_bits, w, np.ones(fout), bias, requant)
    nodes.append(Node("fc", "linear", (src,), {}, w.astype(np.float32), None, quant=quant))
    g = Graph("linear_case", nodes, "fc").infer_shapes((fin,))
    x = h.random_int_activations(rng, (5, fin), a_bits, in_signed)
    assert np.array_equal(reference.run_layer(g, "fc", x), t_node(g.node("fc"), [torch.from_numpy(x)]).numpy())


@pytest.mark.parametrize("seed", range(40))
def test_pools_and_add_equal_torch(seed):
    rng = np.random.default_rng(seed)
    a_bits = int(rng.integers(2, 9))
    signed = bool(rng.integers(2))
    k = int(rng.integers(1, 4))
    stride = int(rng.integers(1, 3))
    padding = int(rng.integers(0, k // 2 + 1))
    c, hw = int(rng.integers(1, 6)), int(rng.integers(k, 9))
    nodes: list[Node] = []
    src = h.int_source(nodes, a_bits, signed)
    x = h.random_int_activations(rng, (4, c, hw, hw), a_bits, signed)
    y = h.random_int_activations(rng, (4, c, hw, hw), a_bits, signed)
    pool_attrs = {"kernel": k, "stride": stride, "padding": padding}
    avg_rq = h.random_requant(rng, 1, k * k * 2 ** a_bits, a_bits, not signed)
    avg_rq = Requant(np.repeat(avg_rq.multiplier, c), np.repeat(avg_rq.shift, c), avg_rq.lo, avg_rq.hi)
    ma, mb = (int(v) for v in rng.integers(0, 2 ** intmath.MULT_BITS, size=2))
    add_relu = bool(rng.integers(2))
    add_rq = h.random_requant(rng, 1, 2 ** (a_bits + intmath.MULT_BITS), a_bits, add_relu)
    add_rq = Requant(np.ones(c, np.int64), np.repeat(add_rq.shift, c), add_rq.lo, add_rq.hi)
    nodes += [Node("mp", "maxpool2d", (src,), dict(pool_attrs), quant=QuantInfo(a_bits, 1.0, signed)),
              Node("ap", "avgpool2d", (src,), dict(pool_attrs), quant=QuantInfo(a_bits, 1.0, signed, requant=avg_rq)),
              Node("add", "add", (src, src), quant=QuantInfo(a_bits, 1.0, not add_relu, requant=add_rq,
                                                              input_multipliers=[ma, mb]))]
    g = Graph("pool_case", nodes, "add").infer_shapes((c, hw, hw))
    for name, ins in (("mp", [x]), ("ap", [x]), ("add", [x, y])):
        ours = reference.run_layer(g, name, ins if name == "add" else ins[0])
        theirs = t_node(g.node(name), [torch.from_numpy(a) for a in ins]).numpy()
        assert np.array_equal(ours, theirs), name


# -- whole quantized networks -------------------------------------------------------------------


@pytest.mark.parametrize("bits", [(8, 8), (6, 5), (4, 4), (2, 3), (3, 2)])
@pytest.mark.parametrize("build", [h.digits_net, h.residual_net])
def test_network_every_node_equals_torch(build, bits):
    net = build(seed=bits[0] * 10 + bits[1])
    q = quantize.quantize_graph(net, h.random_input(net, 32, 1), *bits)
    x = quantize.quantize_input(q, h.random_input(net, 16, 2))
    ours, theirs = reference.run_all(q, x), t_run_all(q, x)
    assert ours.keys() == theirs.keys()
    for name in ours:
        assert np.array_equal(ours[name], theirs[name]), name
    assert np.array_equal(reference.run(q, x), theirs[q.output])


def test_digits_test_split_runs_fast_enough_in_one_batch():
    """360 images through a DigitsCNN-shaped network: measured by benchmarks, here only completed."""
    from hwgen.datasets import load_digits_split

    net = h.digits_net()
    x_tr, _, x_te, _ = load_digits_split()
    q = quantize.quantize_graph(net, x_tr[:128], 8, 8)
    out = reference.run(q, quantize.quantize_input(q, x_te))
    assert out.shape == (len(x_te), 10) and out.dtype == np.int64


# -- the reference's own checks -------------------------------------------------------------------


def test_input_outside_its_range_is_refused():
    net = h.digits_net()
    q = quantize.quantize_graph(net, h.random_input(net, 8, 1), 8, 4)
    with pytest.raises(HwgenError, match=r"outside the signed 4-bit range \[-8, 7\]"):
        reference.run(q, np.full((1, 1, 8, 8), 8))
    with pytest.raises(HwgenError, match="expected integers"):
        reference.run(q, np.zeros((1, 1, 8, 8), np.float32))
    with pytest.raises(HwgenError, match=r"expected shape \(N, 1, 8, 8\)"):
        reference.run(q, np.zeros((1, 8, 8), np.int64))
    with pytest.raises(HwgenError, match="not quantized"):
        reference.run(net, np.zeros((1, 1, 8, 8), np.int64))
    with pytest.raises(HwgenError, match="unsigned 4-bit range"):
        reference.run_layer(q, "c2", np.full((1, 16, 8, 8), -1))
    with pytest.raises(HwgenError, match="takes 2 input"):
        residual = quantize.quantize_graph(h.residual_net(), h.random_input(h.residual_net(), 4, 0), 8, 8)
        reference.run_layer(residual, "add1", [np.zeros((1, 8, 5, 5), np.int64)])


def test_accumulator_overflow_is_caught_as_a_bug():
    g, x = _conv_case(7)
    node = g.node("conv")
    node.quant.weight = node.quant.weight * 0 + 2 ** 20  # out of the W-bit range: not a valid checkpoint
    with pytest.raises(AssertionError, match="accumulator exceeds"):
        reference.run_layer(g, "conv", np.full_like(x, h.int_range(node.quant.act_bits, True)[1]))


def test_float_forward_matches_torch():
    net = h.residual_net(3)
    x = h.random_input(net, 6, 4)
    vals = reference.float_forward_all(net, x)
    t = torch.from_numpy(x)
    tv = {"x": t}
    for node in net.nodes[1:]:
        a = node.attrs
        i = [tv[n] for n in node.inputs]
        w = None if node.weight is None else torch.from_numpy(node.weight)
        b = None if node.bias is None else torch.from_numpy(node.bias)
        tv[node.name] = {
            "conv2d": lambda: F.conv2d(i[0], w, b, a.get("stride"), a.get("padding"), a.get("dilation"), a.get("groups")),
            "linear": lambda: F.linear(i[0], w, b),
            "relu": lambda: F.relu(i[0]),
            "maxpool2d": lambda: F.max_pool2d(i[0], a.get("kernel"), a.get("stride"), a.get("padding")),
            "avgpool2d": lambda: F.avg_pool2d(i[0], a.get("kernel"), a.get("stride"), a.get("padding")),
            "add": lambda: i[0] + i[1],
            "flatten": lambda: i[0].flatten(1),
        }[node.op]()
        np.testing.assert_allclose(vals[node.name], tv[node.name].numpy(), rtol=1e-5, atol=1e-5, err_msg=node.name)


# -- the integer contract (hwgen.intmath) ---------------------------------------------------------


def test_quantize_multiplier_relative_error_and_ranges():
    rng = np.random.default_rng(0)
    for real in np.exp2(rng.uniform(-32, 13.9, size=2000)):
        m, s = intmath.quantize_multiplier(float(real))
        assert 2 ** (intmath.MULT_BITS - 1) <= m < 2 ** intmath.MULT_BITS  # every bit of M is used
        assert 1 <= s <= intmath.MAX_SHIFT
        assert abs(m / 2 ** s - real) / real <= 2.0 ** -intmath.MULT_BITS


def test_quantize_multiplier_edges():
    m, s = intmath.quantize_multiplier(1e-20)  # below what M / 2^47 resolves: shift saturates
    assert s == intmath.MAX_SHIFT and m == 0
    m, s = intmath.quantize_multiplier(2.0 ** -40)
    assert s == intmath.MAX_SHIFT and m == 2 ** 7
    m, s = intmath.quantize_multiplier(1 - 2.0 ** -17)  # rounds up into a new bit of M
    assert m < 2 ** intmath.MULT_BITS and m / 2 ** s == 1.0
    assert intmath.quantize_multiplier(0.0) == (0, 1)
    for bad in (2.0 ** 14, float("nan"), float("inf"), -0.5):
        with pytest.raises(HwgenError):
            intmath.quantize_multiplier(bad)


@pytest.mark.parametrize("signed", [True, False])
def test_accumulator_bits_is_the_tightest_safe_width(signed):
    for w_bits in range(2, 9):
        for a_bits in range(2, 9):
            for taps in (1, 2, 3, 9, 27, 576, 4608):
                bias_max = 12345 if taps % 2 else 0
                bits = intmath.accumulator_bits(w_bits, a_bits, signed, taps, bias_max)
                w_min = -(2 ** (w_bits - 1))
                x_ext = [-(2 ** (a_bits - 1)), 2 ** (a_bits - 1) - 1] if signed else [0, 2 ** a_bits - 1]
                worst = max(abs(taps * w_min * x) for x in x_ext) + bias_max
                assert worst <= 2 ** (bits - 1) - 1  # the worst case fits the signed width
                assert worst > 2 ** (bits - 2) - 1  # and the width is not one bit more than needed
                one_more = (taps + 1) * abs(w_min) * max(abs(x) for x in x_ext) + bias_max
                assert one_more > 2 ** (bits - 2) - 1  # one more tap overflows the width minus one


def test_reference_accumulator_bits_covers_the_worst_case_input():
    """Through the reference: every weight -2^(W-1), every input at the extreme, fills the width."""
    for seed in range(20):
        g, x = _conv_case(2000 + seed, "low")
        node = g.node("conv")
        acc = reference._conv(x, node.quant.weight, node.attrs) + node.quant.bias.reshape(-1, 1, 1)
        bits = reference.accumulator_bits(g, node)
        assert -(2 ** (bits - 1)) <= acc.min() and acc.max() < 2 ** (bits - 1)
