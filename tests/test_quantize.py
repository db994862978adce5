"""Post-training quantization: the rules of the contract, scales, errors, and float agreement."""

from __future__ import annotations

import numpy as np
import pytest

import quant_helpers as h
from hwgen import checkpoint, intmath, quantize, reference
from hwgen.errors import HwgenError


@pytest.mark.parametrize("w_bits, a_bits", [(8, 8), (4, 6), (2, 2)])
def test_every_node_follows_the_contract(w_bits, a_bits):
    net = h.residual_net(1)
    calib = h.random_input(net, 32, 0)
    q = quantize.quantize_graph(net, calib, w_bits, a_bits)
    head = q.node("fc2")
    for n in q.nodes:
        qi = n.quant
        assert qi is not None and qi.act_bits == a_bits and qi.out_scale > 0
        if n.op in ("conv2d", "linear"):
            lo, hi = h.int_range(w_bits, True)
            assert qi.weight.dtype == np.int64 and lo <= qi.weight.min() and qi.weight.max() <= hi
            flat = np.abs(n.weight.astype(np.float64)).reshape(len(n.weight), -1).max(1)
            expected = np.full_like(flat, flat.max()) if n is head else flat
            assert np.array_equal(qi.weight_scale, expected / hi)
            assert np.abs(qi.weight).max() == hi  # the largest weight uses the full range
            assert np.abs(qi.bias).max() < 2 ** 31
        if qi.requant is not None:
            r = qi.requant
            assert ((0 <= r.multiplier) & (r.multiplier < 2 ** 15)).all() and ((1 <= r.shift) & (r.shift <= 47)).all()
            assert (r.lo, r.hi) == h.int_range(a_bits, qi.signed)
    assert head.quant.requant is None and head.quant.signed
    assert head.quant.out_scale == q.node("fc1_relu").quant.out_scale * head.quant.weight_scale[0]
    # fused ReLUs make their producer unsigned; others stay signed; a free ReLU clears the sign
    assert not q.node("stem").quant.signed and not q.node("add1").quant.signed and not q.node("fc1").quant.signed
    assert q.node("dw").quant.signed and q.node("sc").quant.signed and q.node("add2").quant.signed
    assert q.node("mp").quant.signed and not q.node("free_relu").quant.signed
    assert q.node("free_relu").quant.out_scale == q.node("mp").quant.out_scale == q.node("add2").quant.out_scale
    assert q.input.quant.signed
    assert net.nodes[1].quant is None  # the float graph is left alone


def test_requant_multipliers_realize_the_scale_ratios():
    net = h.residual_net(2)
    q = quantize.quantize_graph(net, h.random_input(net, 32, 0), 8, 8)
    for n in q.nodes:
        qi = n.quant
        if n.op == "conv2d":
            s_in = q.node(n.inputs[0]).quant.out_scale
            real = s_in * qi.weight_scale / qi.out_scale
            approx = qi.requant.multiplier / 2.0 ** qi.requant.shift
            assert np.all(np.abs(approx - real) <= real * 2.0 ** -15)
        if n.op == "avgpool2d":
            kh, kw = n.attrs["kernel"]
            real = q.node(n.inputs[0]).quant.out_scale / (kh * kw * qi.out_scale)
            assert abs(qi.requant.multiplier[0] / 2.0 ** qi.requant.shift[0] - real) <= real * 2.0 ** -15
        if n.op == "add":
            s = int(qi.requant.shift[0])
            assert (qi.requant.multiplier == 1).all() and (qi.requant.shift == s).all()
            for m, src in zip(qi.input_multipliers, n.inputs):
                real = q.node(src).quant.out_scale / qi.out_scale
                assert 0 <= m < 2 ** 15 and abs(m / 2 ** s - real) <= 2.0 ** -(s + 1)
            assert max(qi.input_multipliers) >= 2 ** 14  # the shift is the largest that fits


def test_calibration_uses_max_abs_and_act_scales_override():
    net = h.digits_net(3)
    calib = h.random_input(net, 20, 5)
    q = quantize.quantize_graph(net, calib, 8, 8)
    vals = reference.float_forward_all(net, calib)
    assert q.input.quant.out_scale == float(np.abs(calib).max()) / 127
    assert q.node("c2").quant.out_scale == float(np.maximum(vals["c2"], 0).max()) / 255
    given = {name: 0.01 * (i + 1) for i, name in enumerate(quantize.scale_nodes(net))}
    assert set(given) == {"x", "c1", "c2", "c3", "c4"}  # fc is the classifier: no output scale
    q2 = quantize.quantize_graph(net, None, 8, 8, act_scales=given)
    assert {n: q2.node(n).quant.out_scale for n in given} == given
    assert q2.node("p1").quant.out_scale == given["c2"]
    partial = quantize.quantize_graph(net, calib, 8, 8, act_scales={"c3": 0.5})
    assert partial.node("c3").quant.out_scale == 0.5 and partial.node("c4").quant.out_scale == q.node("c4").quant.out_scale


@pytest.mark.parametrize("kwargs, message", [
    ({"weight_bits": 9}, "weight bits must be an integer from 2 to 8, got 9"),
    ({"act_bits": 1}, "activation bits must be an integer from 2 to 8, got 1"),
    ({"act_scales": {"r1": 0.1}}, "'r1' is not a node that takes an output scale"),
    ({"act_scales": {"c1": -2.0}}, "activation scale of 'c1' must be a finite positive number"),
    ({"act_scales": {"c1": float("nan")}}, "activation scale of 'c1'"),
    ({"calib_x": None}, "no calibration data and no activation scale for: x, c1"),
    ({"calib_x": np.zeros((4, 8, 8), np.float32)}, r"calibration data: expected a batch of shape \(N, 1, 8, 8\)"),
    ({"calib_x": np.full((2, 1, 8, 8), np.inf, np.float32)}, "NaN or infinite"),
])
def test_bad_parameters_are_refused(kwargs, message):
    net = h.digits_net()
    args = {"calib_x": h.random_input(net, 4, 0), "weight_bits": 8, "act_bits": 8} | kwargs
    with pytest.raises(HwgenError, match=message):
        quantize.quantize_graph(net, **args)


def test_bias_that_does_not_fit_int32_is_refused():
    net = h.digits_net()
    net.node("c3").bias[0] = 1e9
    with pytest.raises(HwgenError, match="node 'c3': bias does not fit int32"):
        quantize.quantize_graph(net, h.random_input(net, 4, 0), 8, 8)


def test_nan_weight_is_refused():
    net = h.digits_net()
    net.node("c1").weight[0, 0, 0, 0] = np.nan
    with pytest.raises(HwgenError, match="node 'c1': weights or bias contain NaN"):
        quantize.quantize_graph(net, h.random_input(net, 4, 0), 8, 8)


def test_pruned_filter_gets_a_usable_scale():
    net = h.digits_net()
    net.node("c2").weight[3] = 0
    q = quantize.quantize_graph(net, h.random_input(net, 8, 0), 8, 8)
    c2 = q.node("c2").quant
    assert (c2.weight[3] == 0).all() and c2.weight_scale[3] == c2.weight_scale.max()


def test_quantize_input_rounds_half_to_even_and_clamps():
    net = h.digits_net()
    q = quantize.quantize_graph(net, None, 8, 4, act_scales={n: 0.5 for n in quantize.scale_nodes(net)})
    x = np.zeros((1, 1, 8, 8), np.float32)
    x[0, 0, 0, :6] = [0.25, 0.75, -0.25, 100.0, -100.0, 1.24]
    assert q.input.quant.out_scale == 0.5
    assert quantize.quantize_input(q, x)[0, 0, 0, :6].tolist() == [0, 2, 0, 7, -8, 2]
    with pytest.raises(HwgenError, match="not quantized"):
        quantize.quantize_input(net, x)


@pytest.mark.parametrize("bits, max_rel_err, min_agree", [((8, 8), 0.02, 0.97), ((6, 6), 0.06, 0.9)])
def test_integer_network_agrees_with_float(bits, max_rel_err, min_agree):
    net = h.residual_net(4)
    q = quantize.quantize_graph(net, h.random_input(net, 256, 0), *bits)
    x = h.random_input(net, 200, 1)
    f = reference.float_forward(net, x)
    logits = quantize.dequantize(q.node(q.output).quant, reference.run(q, quantize.quantize_input(q, x)))
    assert np.abs(logits - f).mean() / np.ptp(f) < max_rel_err
    assert (logits.argmax(1) == f.argmax(1)).mean() >= min_agree


def test_same_inputs_same_checkpoint_bytes():
    net = h.residual_net(6)
    calib = h.random_input(net, 16, 0)
    a = checkpoint.to_bytes(quantize.quantize_graph(net, calib, 5, 6))
    b = checkpoint.to_bytes(quantize.quantize_graph(net, calib.copy(), 5, 6))
    assert a == b


def test_layer_accumulator_bits():
    net = h.digits_net()
    q = quantize.quantize_graph(net, h.random_input(net, 8, 0), 8, 8)
    c2 = q.node("c2")
    taps = int(np.count_nonzero(c2.quant.weight.reshape(32, -1), axis=1).max())
    assert reference.accumulator_bits(q, c2) == intmath.accumulator_bits(8, 8, False, taps, int(np.abs(c2.quant.bias).max()))
    assert reference.accumulator_bits(q, q.node("c1")) == intmath.accumulator_bits(
        8, 8, True, int(np.count_nonzero(q.node("c1").quant.weight.reshape(16, -1), axis=1).max()),
        int(np.abs(q.node("c1").quant.bias).max()))
