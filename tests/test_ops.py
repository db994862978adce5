"""The ops model-zoo networks need: clip (ReLU6, hardtanh, Clip), ceil_mode max pooling, mean /
ReduceMean, channel concat, grouped and depthwise convolution, batch norm after no conv, sigmoid and
SiLU. Each through the .pt2, legacy ONNX and dynamo ONNX loaders (same IR, same float outputs as
torch), the integer reference against integer arithmetic done here in torch, checkpoints, inspect,
analyze, and the one-line refusals of quantize (sigmoid, SiLU) and the engine (grouped conv)."""

from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hwgen import checkpoint, quantize, reference
from hwgen.analysis import analyze
from hwgen.cli import main
from hwgen.errors import HwgenError
from hwgen.ingest import load_model
from hwgen.ir import Graph, Node
from ingest_helpers import export, randomize_batchnorm


class AllOps(nn.Module):
    """Every new op once, in the places the zoo networks put them."""

    def __init__(self, act=nn.SiLU):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.relu6 = nn.ReLU6()
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.dw_bn = nn.BatchNorm2d(8)
        self.tanh = nn.Hardtanh(-1.0, 2.0)
        self.pool = nn.MaxPool2d(3, 2, ceil_mode=True)
        self.left = nn.Conv2d(8, 4, 1)
        self.right = nn.Conv2d(8, 6, 3, padding=1, groups=2)
        self.act, self.gate = act(), nn.Sigmoid()
        self.norm = nn.BatchNorm2d(10)  # after a concat: no conv to fold into
        self.fc = nn.Linear(10, 5)

    def forward(self, x):
        x = torch.cat([self.tanh(self.dw_bn(self.dw(self.relu6(self.stem(x)))))], 1)  # DenseNet's cat of one
        x = self.pool(x)
        x = torch.cat([self.act(self.left(x)), self.gate(self.right(x))], 1)
        x = self.norm(x).mean((2, 3))
        return self.fc(x)


EXPECTED_OPS = ["input", "conv2d", "clip", "conv2d", "clip", "maxpool2d", "conv2d", "silu", "conv2d", "sigmoid",
                "concat", "conv2d", "avgpool2d", "flatten", "linear"]
SHAPE = (3, 12, 12)  # the ceil_mode pool has a partial last window: 12 -> 6 rows (floor mode gives 5)


@pytest.fixture(scope="module")
def all_ops(tmp_path_factory):
    torch.manual_seed(0)
    model = randomize_batchnorm(AllOps())
    d = tmp_path_factory.mktemp("ops")
    x = torch.zeros(1, *SHAPE)
    paths = {"pt2": export(model, SHAPE, d / "ops.pt2"), "onnx": d / "ops.onnx", "dynamo": d / "ops-dynamo.onnx"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (x,), str(paths["onnx"]), dynamo=False)
        torch.onnx.export(model, (x,), str(paths["dynamo"]), dynamo=True, verbose=False)
    return model, paths


@pytest.mark.parametrize("kind", ["pt2", "onnx", "dynamo"])
def test_every_loader_gives_the_ops_and_torch_outputs(all_ops, kind):
    model, paths = all_ops
    graph = load_model(paths[kind])
    assert [n.op for n in graph.nodes] == EXPECTED_OPS
    assert graph.nodes[5].out_shape == (8, 6, 6) and graph.nodes[5].attrs["ceil_mode"] is True
    assert [n.attrs["groups"] for n in graph.layers()[:-1]] == [1, 8, 1, 2, 10]
    clips = [(n.attrs["lo"], n.attrs["hi"]) for n in graph.nodes if n.op == "clip"]
    assert clips == [(0.0, 6.0), (-1.0, 2.0)]
    x = torch.randn(4, *SHAPE, generator=torch.Generator().manual_seed(1)) * 3
    with torch.no_grad():
        want = model(x).numpy()
    np.testing.assert_allclose(reference.float_forward(graph, x.numpy()), want, rtol=1e-4, atol=1e-5)


def test_pt2_and_onnx_give_the_same_weights(all_ops):
    _, paths = all_ops
    a, b = load_model(paths["pt2"]), load_model(paths["onnx"])
    for na, nb in zip(a.layers(), b.layers()):
        np.testing.assert_allclose(na.weight, nb.weight, rtol=1e-6, atol=1e-7)
        assert na.attrs == nb.attrs


def test_inspect_and_analyze_accept_every_op(all_ops, tmp_path, capsys):
    _, paths = all_ops
    for path in paths.values():
        assert main(["inspect", str(path), "--json", str(tmp_path / "r.json")]) == 0
        report = json.loads((tmp_path / "r.json").read_text())
        assert [r["op"] for r in report["layers"]] == EXPECTED_OPS
        assert main(["analyze", str(path), "--json", str(tmp_path / "a.json")]) == 0
    capsys.readouterr()


def _relu6_net(bits: int = 8):
    torch.manual_seed(3)
    net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU6(), nn.Conv2d(4, 4, 3, padding=1, groups=4),
                        nn.Hardtanh(-0.5, 0.75), nn.MaxPool2d(2, 2, ceil_mode=True))
    return net.eval()


def _quantized(model, shape, path, bits=8, scale=3.0):
    graph = load_model(export(model, shape, path))
    calib = np.random.default_rng(0).normal(size=(64, *shape)).astype(np.float32) * scale
    return graph, quantize.quantize_graph(graph, calib, bits, bits)


def _requant_torch(acc: torch.Tensor, r) -> torch.Tensor:
    """The contract written again in torch int64, per channel."""
    m = torch.from_numpy(r.multiplier).view(1, -1, *([1] * (acc.dim() - 2)))
    s = torch.from_numpy(r.shift).view(1, -1, *([1] * (acc.dim() - 2)))
    return torch.clamp((acc * m + (1 << (s - 1))) >> s, r.lo, r.hi)


def _conv_int_torch(x: torch.Tensor, node) -> torch.Tensor:
    """An integer convolution from float64 torch (exact for these magnitudes), plus bias."""
    a = node.attrs
    acc = F.conv2d(x.double(), torch.from_numpy(node.quant.weight).double(), None, a["stride"], a["padding"],
                   a["dilation"], a["groups"])
    return acc.round().long() + torch.from_numpy(node.quant.bias).view(1, -1, 1, 1)


@pytest.mark.parametrize("bits", [8, 4])
def test_clip_is_fused_into_the_requant_and_matches_torch_integers(tmp_path, bits):
    _, q = _quantized(_relu6_net(), (2, 7, 7), tmp_path / "m.pt2", bits)
    conv, relu6, dw, tanh, pool = q.nodes[1:]
    qmax = (1 << bits) - 1
    # ReLU6: unsigned; 6 is the calibrated maximum, so it is the top of the range
    assert not conv.quant.signed and (conv.quant.requant.lo, conv.quant.requant.hi) == (0, qmax)
    assert (relu6.quant.requant.lo, relu6.quant.requant.hi) == (0, qmax)
    assert relu6.quant.out_scale == conv.quant.out_scale and math.isclose(conv.quant.out_scale * qmax, 6.0)
    # hardtanh(-0.5, 0.75) on the depthwise conv: signed, bounds rounded at the conv's output scale
    s = dw.quant.out_scale
    assert dw.quant.signed and (dw.quant.requant.lo, dw.quant.requant.hi) == (round(-0.5 / s), round(0.75 / s))
    x = np.random.default_rng(5).normal(size=(8, 2, 7, 7)) * 3
    xq = quantize.quantize_input(q, x)
    got = reference.run_all(q, xq)
    t = _requant_torch(_conv_int_torch(torch.from_numpy(xq), conv), conv.quant.requant)
    assert torch.equal(torch.from_numpy(got[conv.name]), t)
    assert np.array_equal(got[relu6.name], got[conv.name])  # fused: the clip node changes nothing
    t = _requant_torch(_conv_int_torch(t, dw), dw.quant.requant)
    assert torch.equal(torch.from_numpy(got[dw.name]), t)
    t = F.max_pool2d(t.double(), 2, 2, ceil_mode=True).long()
    assert t.shape[2:] == (4, 4) and torch.equal(torch.from_numpy(got[pool.name]), t)
    if bits == 8:  # the dequantized result stays close to the float network's, whose range is 1.25 wide
        want = reference.float_forward(load_model(tmp_path / "m.pt2"), x)
        assert np.abs(got[pool.name] * pool.quant.out_scale - want).max() <= 0.05


def test_unfused_clip_clamps_in_integers():
    g = Graph("g", [Node("input", "input", out_shape=(2, 5, 5)),
                    Node("pool", "maxpool2d", ("input",), dict(kernel=2, stride=2, ceil_mode=True)),
                    Node("clip", "clip", ("pool",), dict(lo=-0.25, hi=0.5))], "clip").infer_shapes()
    calib = np.random.default_rng(1).normal(size=(16, 2, 5, 5)).astype(np.float32)
    q = quantize.quantize_graph(g, calib, 8, 8)
    s = q.input.quant.out_scale
    xq = quantize.quantize_input(q, calib)
    got = reference.run(q, xq)
    pooled = F.max_pool2d(torch.from_numpy(xq).double(), 2, 2, ceil_mode=True).long()
    assert pooled.shape[2:] == (3, 3)
    assert torch.equal(torch.from_numpy(got), torch.clamp(pooled, round(-0.25 / s), round(0.5 / s)))


def test_concat_requantizes_each_input_to_the_output_scale(tmp_path):
    class Cat(nn.Module):
        def __init__(self):
            super().__init__()
            self.a, self.b = nn.Conv2d(2, 3, 3, padding=1), nn.Conv2d(2, 5, 1)

        def forward(self, x):
            return torch.cat([torch.relu(self.a(x)), self.b(x)], 1)

    torch.manual_seed(4)
    model = Cat().eval()
    with torch.no_grad():
        model.b.weight.mul_(10)  # very different input scales
    graph, q = _quantized(model, (2, 6, 6), tmp_path / "cat.pt2")
    cat = q.node(q.output)
    assert cat.op == "concat" and cat.quant.signed
    srcs = [q.node(i).quant for i in cat.inputs]
    assert srcs[0].out_scale != srcs[1].out_scale
    r = cat.quant.requant
    ratios = np.repeat([srcs[0].out_scale / cat.quant.out_scale, srcs[1].out_scale / cat.quant.out_scale], [3, 5])
    assert np.all(np.abs(r.multiplier / 2.0 ** r.shift - ratios) <= ratios * 2.0 ** -14)
    x = np.random.default_rng(2).normal(size=(4, 2, 6, 6)) * 2
    values = reference.run_all(q, quantize.quantize_input(q, x))
    ins = torch.cat([torch.from_numpy(values[i]) for i in cat.inputs], 1)
    assert torch.equal(torch.from_numpy(values[cat.name]), _requant_torch(ins, r))
    want = reference.float_forward(graph, x)
    assert np.abs(values[cat.name] * cat.quant.out_scale - want).max() <= 3 * max(s.out_scale for s in srcs)


def test_quantized_new_ops_survive_a_checkpoint(tmp_path):
    _, q = _quantized(_relu6_net(), (2, 7, 7), tmp_path / "m.pt2")
    path = tmp_path / "m.hwq"
    checkpoint.save(q, path)
    back = checkpoint.load(path)
    assert checkpoint.to_bytes(back) == path.read_bytes()
    xq = quantize.quantize_input(q, np.random.default_rng(0).normal(size=(3, 2, 7, 7)))
    assert np.array_equal(reference.run(back, xq), reference.run(q, xq))
    assert back.nodes[-1].attrs["ceil_mode"] is True and back.node(q.nodes[4].name).attrs == {"lo": -0.5, "hi": 0.75}


def test_open_clip_bounds_survive_a_checkpoint(tmp_path):
    g = Graph("g", [Node("input", "input", out_shape=(4,)), Node("clip", "clip", ("input",), dict(lo=-math.inf, hi=2.5))],
              "clip").infer_shapes()
    checkpoint.save(g, tmp_path / "c.hwq")
    assert checkpoint.load(tmp_path / "c.hwq").node("clip").attrs == {"lo": -math.inf, "hi": 2.5}


def test_sigmoid_and_silu_are_float_only(all_ops, capsys, tmp_path):
    _, paths = all_ops
    graph = load_model(paths["pt2"])
    with pytest.raises(HwgenError, match="node 'act': silu has no integer form"):
        quantize.quantize_graph(graph, np.zeros((1, *SHAPE), np.float32), 8, 8)
    assert main(["quantize", str(paths["pt2"]), "--calib", "digits", "--weight-bits", "8", "--act-bits", "8",
                 "--out", str(tmp_path / "q.hwq")]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err


def test_grouped_convolution_in_analysis(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.Conv2d(16, 32, 3, padding=1, groups=4)).eval()
    graph = load_model(export(model, (16, 14, 14), tmp_path / "g.pt2"))
    result = analyze(graph, glb_kib=4)
    dw, grouped = result.layers
    assert (dw.layer.groups, dw.layer.c, dw.layer.in_channels) == (16, 1, 16)
    assert dw.layer.macs == 16 * 9 * 14 * 14 and grouped.layer.macs == 32 * 4 * 9 * 14 * 14
    # compulsory: every input byte once (16 x 14 x 14 at 8 bits), weights once, outputs once
    assert dw.compulsory_bytes["inputs"] == 16 * 14 * 14 and dw.compulsory_bytes["weights"] == 16 * 9
    assert grouped.compulsory_bytes["outputs"] == 32 * 14 * 14
    for r in (dw, grouped):
        assert r.dram_bytes["total"] >= r.compulsory_bytes["total"]
    # a generous buffer reaches the bound: each group's inputs are read once, not once per output tile
    roomy = analyze(graph, glb_kib=256)
    for r in roomy.layers:
        assert r.dram_bytes["inputs"] == r.compulsory_bytes["inputs"]


def test_engine_refuses_grouped_convolution_in_one_line(tmp_path, capsys):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, groups=4),
                          nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 10)).eval()
    path = export(model, (1, 8, 8), tmp_path / "g.pt2")
    hwq = tmp_path / "g.hwq"
    assert main(["quantize", str(path), "--calib", "digits", "--weight-bits", "8", "--act-bits", "8",
                 "--out", str(hwq)]) == 0
    assert main(["generate", str(hwq), "--out", str(tmp_path / "gen")]) == 2
    assert main(["analyze", str(hwq), "--arch", "engine"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "error" in line]
    assert len(err) == 2 and all("grouped/depthwise convolution (groups=4) is not supported by the engine" in e
                                 for e in err)


def test_average_pooling_with_an_overhanging_ceil_window_is_refused(tmp_path):
    path = export(nn.AvgPool2d(2, 2, ceil_mode=True), (1, 5, 5), tmp_path / "a.pt2")
    with pytest.raises(HwgenError, match="average pooling with ceil_mode whose last window overhangs 5x5"):
        load_model(path)
    same = load_model(export(nn.AvgPool2d(2, 2, ceil_mode=True), (1, 6, 6), tmp_path / "b.pt2"))
    assert same.nodes[-1].out_shape == (1, 3, 3) and "ceil_mode" not in same.nodes[-1].attrs
