"""Learned quantization (QONNX, QDQ ONNX) against executors nobody here wrote.

Small Brevitas networks are built, trained for a few steps and exported inside the tests; hwgen's
integer reference must equal qonnx's executor (QONNX) and onnxruntime (QDQ) bit for bit, node by
node, when every scale is a power of two, and stay within 1 LSB per layer with float scales.
"""

from __future__ import annotations

import dataclasses
import io
import random
import zipfile
from fractions import Fraction

import numpy as np
import onnx
import pytest
import torch

from hwgen import checkpoint, intmath, reference
from hwgen.cli import main
from hwgen.datasets import load_digits_split
from hwgen.errors import HwgenError
from hwgen.ingest import load_model
from hwgen.ingest.onnx import _parse
from hwgen.ingest.qonnx import exactness, load_quantized
from hwgen.quantize import dequantize, quantize_graph, quantize_input
from models import brevitas_digits as bd

WIDTHS = (8, 8, 8, 16)
STEPS = 4


def _trained(pow2: bool, seed: int = 0):
    """A small BrevitasDigitsCNN with PS4_P4 masks after a few QAT steps (scales move off their init)."""
    model, masks = bd.build(pow2=pow2, seed=seed, widths=WIDTHS)
    x, y = (torch.from_numpy(a) for a in load_digits_split()[:2])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(STEPS):
        idx = torch.randint(0, len(x), (64,), generator=g)
        loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            for conv, mask in masks.items():
                conv.weight.mul_(mask)
    return model.eval()


@pytest.fixture(scope="module")
def exports(tmp_path_factory):
    d = tmp_path_factory.mktemp("qonnx")
    pow2, floaty = _trained(True), _trained(False, seed=1)
    files = {"pow2.qonnx": bd.export(pow2, d / "pow2_qonnx.onnx"),
             "pow2.qcdq": bd.export(pow2, d / "pow2_qcdq.onnx", "qcdq"),
             "float.qonnx": bd.export(floaty, d / "float_qonnx.onnx"),
             "float.qcdq": bd.export(floaty, d / "float_qcdq.onnx", "qcdq")}
    files["pow2.clean"] = bd.cleanup(files["pow2.qonnx"], d / "pow2_clean.onnx")
    return files


X = load_digits_split()[2][:6]


def _load(path, tensors=None):
    return load_quantized(path, _parse(path), None, tensors)


def _dequantized_logits(g, x):
    return dequantize(g.node(g.output).quant, reference.run(g, quantize_input(g, x))).astype(np.float32)


@pytest.mark.parametrize("kind", ["pow2.qonnx", "pow2.clean"])
def test_qonnx_power_of_two_is_bit_exact_node_by_node(exports, kind):
    tensors = {}
    g = _load(exports[kind], tensors)
    assert exactness(g) == []
    assert [n.quant.weight_bits for n in g.layers()] == [4] * 5
    every = reference.run_all(g, quantize_input(g, X))
    oracle = bd.run_qonnx(exports[kind], X, names=sorted(set(tensors.values())))
    assert len(tensors) >= 6  # the input and every ReLU'd conv output are compared, not only the logits
    for name, tensor in tensors.items():
        ours = dequantize(g.node(name).quant, every[name]).astype(np.float32)
        np.testing.assert_array_equal(ours, oracle[tensor], err_msg=name)
    np.testing.assert_array_equal(_dequantized_logits(g, X), oracle["output"])
    assert _ties(g, X) > 0  # rounding ties occur in this data: hwgen's default half-up would differ


def _ties(g, x, layers=None) -> int:
    """Outputs of the conv layers where rounding half up instead of half to even changes the value."""
    up = g.copy()
    for n in up.layers():
        if n.quant.requant is not None:
            n.quant = dataclasses.replace(n.quant, requant=dataclasses.replace(n.quant.requant, rounding="half_up"))
    a = reference.run_all(g, quantize_input(g, x))
    names = layers or [n.name for n in g.layers() if n.quant.requant is not None]
    # each layer fed the same input, so only its own rounding counts
    return sum(int(np.count_nonzero(reference.run_layer(g, k, a[g.node(k).inputs[0]])
                                    != reference.run_layer(up, k, a[g.node(k).inputs[0]]))) for k in names)


def test_qonnx_cleanup_keeps_the_same_integers(exports):
    a, b = _load(exports["pow2.qonnx"]), _load(exports["pow2.clean"])
    xa, xb = quantize_input(a, X), quantize_input(b, X)
    np.testing.assert_array_equal(reference.run(a, xa), reference.run(b, xb))
    for la, lb in zip(a.layers(), b.layers()):
        np.testing.assert_array_equal(la.quant.weight, lb.quant.weight)


def test_qcdq_power_of_two_equals_onnxruntime(exports):
    g = load_model(exports["pow2.qcdq"])
    assert exactness(g) == []
    assert [n.quant.weight_bits for n in g.layers()] == [4] * 5  # from the Clip's bounds, not the values
    np.testing.assert_array_equal(_dequantized_logits(g, X), bd.run_onnxruntime(exports["pow2.qcdq"], X))
    # the same learned integers as the QONNX export of the same network
    q = _load(exports["pow2.qonnx"])
    for a, b in zip(g.layers(), q.layers()):
        np.testing.assert_array_equal(a.quant.weight, b.quant.weight)
        np.testing.assert_array_equal(a.quant.bias, b.quant.bias)


def test_float_scales_stay_within_one_lsb_per_layer(exports):
    """Fed the model's own input to each layer, hwgen's output integers differ by at most 1."""
    tensors = {}
    g = _load(exports["float.qonnx"], tensors)
    assert exactness(g)  # float scale ratios: hwgen says where it is not exact
    oracle = bd.run_qonnx(exports["float.qonnx"], X, names=sorted(set(tensors.values())))
    diffs = bd.layer_lsb_diffs(g, tensors, oracle)
    assert len(diffs) == 4
    worst = max(diffs.values())
    assert worst <= 1
    logits = _dequantized_logits(g, X)
    theirs = bd.run_qonnx(exports["float.qonnx"], X)["output"]
    assert (logits.argmax(1) == theirs.argmax(1)).mean() >= 5 / 6


def test_float_qcdq_loads_and_agrees_with_onnxruntime(exports):
    g = load_model(exports["float.qcdq"])
    ours, theirs = _dequantized_logits(g, X), bd.run_onnxruntime(exports["float.qcdq"], X)
    assert (ours.argmax(1) == theirs.argmax(1)).mean() >= 5 / 6


def test_checkpoint_keeps_the_learned_quantization(exports, tmp_path):
    g = _load(exports["pow2.qonnx"])
    checkpoint.save(g, tmp_path / "a.hwq")
    back = checkpoint.load(tmp_path / "a.hwq")
    assert [n.quant.requant.rounding for n in back.layers()[:-1]] == ["half_even"] * 4
    np.testing.assert_array_equal(reference.run(back, quantize_input(back, X)), reference.run(g, quantize_input(g, X)))
    checkpoint.save(back, tmp_path / "b.hwq")
    assert (tmp_path / "a.hwq").read_bytes() == (tmp_path / "b.hwq").read_bytes()
    data = checkpoint.to_bytes(g)
    for bad in ('"half_up"', '"banana"'):
        with zipfile.ZipFile(io.BytesIO(data)) as z:
            members = {n: z.read(n) for n in z.namelist()}
        members["graph.json"] = members["graph.json"].replace(b'"half_even"', bad.encode(), 1)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as z:
            for n, blob in members.items():
                z.writestr(n, blob)
        with pytest.raises(HwgenError, match="requant rounding must be one of 'half_even' when given"):
            checkpoint.from_bytes(buf.getvalue())


def test_cli_run_and_quantize_take_the_onnx_model(exports, tmp_path, capsys):
    np.save(tmp_path / "x.npy", X)
    assert main(["run", str(exports["pow2.qonnx"]), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y.npy")]) == 0
    assert main(["quantize", str(exports["pow2.qonnx"]), "--out", str(tmp_path / "m.hwq")]) == 0
    assert "bit-exact with the model's own arithmetic" in capsys.readouterr().out
    assert main(["run", str(tmp_path / "m.hwq"), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "y2.npy")]) == 0
    y = np.load(tmp_path / "y.npy")
    np.testing.assert_array_equal(y, np.load(tmp_path / "y2.npy"))
    g = _load(exports["pow2.qonnx"])
    np.testing.assert_array_equal(y * g.node(g.output).quant.out_scale, bd.run_qonnx(exports["pow2.qonnx"], X)["output"])
    assert main(["quantize", str(exports["pow2.qonnx"]), "--calib", "digits", "--out", str(tmp_path / "n.hwq")]) == 2
    assert "learned quantization" in capsys.readouterr().err


def _edited(src, dst, edit):
    model = onnx.load(str(src))
    edit(model)
    onnx.save(model, str(dst))
    return dst


def _first(model, op, **has):
    return next(n for n in model.graph.node if n.op_type == op and all(getattr(n, k) == v for k, v in has.items()))


def _set_attr(node, name, value):
    for a in node.attribute:
        if a.name == name:
            node.attribute.remove(a)
            break
    node.attribute.append(onnx.helper.make_attribute(name, value))


def _act_quant(model):
    return next(n for n in model.graph.node if n.op_type == "Quant" and "act_quant" in n.name and "/inp/" not in n.name)


def _zero_point(model, value):
    zp = _act_quant(model).input[2]
    init = next(t for t in model.graph.initializer if t.name == zp)
    init.CopyFrom(onnx.numpy_helper.from_array(np.array(value, dtype=np.float32), zp))


def _trunc(model):
    _act_quant(model).op_type = "Trunc"


def _qdq_zero_point(model):
    q = next(n for n in model.graph.node if n.op_type == "QuantizeLinear" and "features.1" in n.name)
    init = next(t for t in model.graph.initializer if t.name == q.input[2])
    init.CopyFrom(onnx.numpy_helper.from_array(np.array(3, dtype=np.uint8), init.name))


BAD = {
    "floor rounding": ("pow2.qonnx", lambda m: _set_attr(_act_quant(m), "rounding_mode", "FLOOR"),
                       "rounding_mode FLOOR on activations is not supported"),
    "unknown rounding": ("pow2.qonnx", lambda m: _set_attr(_act_quant(m), "rounding_mode", "STOCHASTIC"),
                         "rounding_mode 'STOCHASTIC' is not one of"),
    "zero point": ("pow2.qonnx", lambda m: _zero_point(m, 2.0), "non-zero zero points are not supported"),
    "trunc": ("pow2.qonnx", _trunc, "Trunc"),
    "qdq zero point": ("pow2.qcdq", _qdq_zero_point, "non-zero zero points are not supported"),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_quantizers_get_one_line_and_exit_2(exports, tmp_path, capsys, case):
    kind, edit, message = BAD[case]
    path = _edited(exports[kind], tmp_path / "bad.onnx", edit)
    with pytest.raises(HwgenError, match=message):
        load_model(path)
    assert main(["inspect", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message.split(" (")[0] in err


def _exact_half_even(acc: int, m: int, s: int) -> int:
    return round(Fraction(acc * m, 1 << s))  # Python's round() on a Fraction: ties to even


def test_requantize_half_even_is_exact_round_half_to_even():
    rng = random.Random(3)
    cases = [(rng.randrange(-(1 << 30), 1 << 30), rng.randrange(1 << 15), rng.randint(1, 47)) for _ in range(2000)]
    cases += [((2 * rng.randint(-500, 500) + 1) << (s - 1 - k), 1 << k, s)
              for s in range(1, 20) for k in range(min(s, 15)) for _ in range(3)]  # exact ties
    acc, m, s = (np.array(c, dtype=np.int64) for c in zip(*cases))
    got = intmath.requantize(acc, m, s, -(1 << 50), 1 << 50, "half_even")
    assert got.tolist() == [_exact_half_even(*c) for c in cases]
    up = intmath.requantize(acc, m, s, -(1 << 50), 1 << 50)
    assert (got != up).sum() > 50  # the ties are there, and half-up breaks them differently


def test_weight_granularity_tensor_keeps_one_scale():
    graph = load_model(_export_float_twin())
    x = load_digits_split()[0][:64]
    per_tensor = quantize_graph(graph, x, 4, 8, weight_granularity="tensor")
    per_channel = quantize_graph(graph, x, 4, 8)
    assert all(np.unique(n.quant.weight_scale).size == 1 for n in per_tensor.layers())
    assert any(np.unique(n.quant.weight_scale).size > 1 for n in per_channel.layers())
    with pytest.raises(HwgenError, match="weight granularity"):
        quantize_graph(graph, x, 4, 8, weight_granularity="row")


def _export_float_twin():
    import tempfile

    from models.zoo import DigitsCNN, export_pt2

    path = tempfile.mkdtemp() + "/digits.pt2"
    torch.manual_seed(0)
    export_pt2(DigitsCNN(widths=WIDTHS).eval(), (1, 8, 8), path)
    return path


def test_engine_runs_the_learned_network_bit_exact(exports):
    """The engine (amaranth.sim, random stalls) on every conv layer of the power-of-two network,
    whose requantizers break ties to even: equal to the reference, layer by layer."""
    from hwgen import engine
    from hwgen.gateware.engine import Engine
    from hwgen.gateware.sim_memory import run_layer

    g = _load(exports["pow2.qonnx"])
    built = engine.build(g)
    plans, params, img = built.plans, built.params, built.image
    assert all(p.half_even for p in plans)
    values = reference.run_all(g, quantize_input(g, X[:1]))
    image = bytearray(img.size)
    image[:len(img.data)] = img.data
    assert _ties(g, X[:1], [p.name for p in plans[:2]]) > 0  # the engine must break ties to even here
    for plan, reg in list(zip(plans, img.layers))[:2]:  # the first two conv layers: time
        node = g.node(plan.name)
        blob = engine.pack_activations(values[node.inputs[0]][0], params)
        image[reg.input:reg.input + len(blob)] = blob
        run_layer(Engine(params), image, reg.descriptor, stall=0.2, seed=len(plan.name))
        got = engine.unpack_activations(image[reg.output:reg.output + reg.output_bytes], plan.out_shape,
                                        node.quant.signed, params)
        np.testing.assert_array_equal(got, values[plan.name][0], err_msg=plan.name)


class _TruncPoolNet(torch.nn.Module):
    """Brevitas's truncated average pooling (exports as AveragePool -> Trunc) between quantized layers."""

    def __init__(self):
        import brevitas.nn as qnn
        from brevitas import quant

        super().__init__()
        self.inp = qnn.QuantIdentity(act_quant=quant.Int8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.conv = qnn.QuantConv2d(1, 8, 3, padding=1, weight_bit_width=4, weight_quant=quant.Int8WeightPerTensorFixedPoint,
                                    bias=True, bias_quant=quant.Int32Bias, return_quant_tensor=True)
        self.relu = qnn.QuantReLU(bit_width=4, act_quant=quant.Uint8ActPerTensorFixedPoint, return_quant_tensor=True)
        self.pool = qnn.TruncAvgPool2d(2, bit_width=4, return_quant_tensor=True)
        self.fc = qnn.QuantLinear(8 * 4 * 4, 10, weight_bit_width=4, weight_quant=quant.Int8WeightPerTensorFixedPoint,
                                  bias=True, bias_quant=quant.Int32Bias)

    def forward(self, x):
        return self.fc(self.pool(self.relu(self.conv(self.inp(x)))).flatten(1))


def test_trunc_average_pool_is_bit_exact(tmp_path):
    from brevitas.export import export_qonnx

    torch.manual_seed(0)
    net = _TruncPoolNet()
    net.train()
    net(torch.from_numpy(load_digits_split()[0][:64]))  # activation statistics move the scales off their init
    net.eval()
    path = tmp_path / "trunc.onnx"
    export_qonnx(net, torch.zeros(1, 1, 8, 8), str(path), dynamo=False)
    tensors = {}
    g = _load(path, tensors)
    pool = next(n for n in g.nodes if n.op == "avgpool2d")
    assert pool.quant.requant.rounding == "half_even" and pool.name in tensors and exactness(g) == []
    oracle = bd.run_qonnx(path, X, names=[tensors[pool.name]])
    ours = dequantize(pool.quant, reference.run_all(g, quantize_input(g, X))[pool.name]).astype(np.float32)
    np.testing.assert_array_equal(ours, oracle[tensors[pool.name]])
    assert np.count_nonzero(ours) > 0
    np.testing.assert_array_equal(_dequantized_logits(g, X), oracle["output"])


def _bipolar_first_conv(model):
    q = next(n for n in model.graph.node if n.op_type == "Quant" and "weight_quant" in n.name)
    q.op_type = "BipolarQuant"
    del q.input[2:]
    del q.attribute[:]


def test_bipolar_weights_equal_qonnx(exports, tmp_path):
    path = _edited(exports["pow2.qonnx"], tmp_path / "bipolar.onnx", _bipolar_first_conv)
    g = _load(path)
    first = g.layers()[0]
    assert first.quant.weight_bits == 2 and set(np.unique(first.quant.weight)) == {-1, 1}
    np.testing.assert_array_equal(_dequantized_logits(g, X), bd.run_qonnx(path, X)["output"])
