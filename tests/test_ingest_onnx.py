"""`hwgen.ingest.onnx`: ONNX models -> the same IR as .pt2, every op against onnx's reference, hostile files."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from hwgen.cli import main as cli_main
from hwgen.cli.inspect import summarize, to_json
from hwgen.errors import HwgenError
from hwgen.ingest import load_model
from hwgen.sparsity import detect
from ingest_helpers import assert_same_output, export, randomize_batchnorm, torch_forward
from models import periodic, zoo
from test_ingest import _TorchvisionBlock, _Varied

# zoo model -> periodic scheme applied before export
ZOO = {"digits-cnn": "PS4_P4", "resnet18-cifar": "PSD1_P16", "vgg16-tiny": "PSD4_P8"}


def export_onnx(model, input_shape, path, fold_batchnorm: bool = False):
    """torch's TorchScript ONNX exporter (no extra packages); batch norm kept unless `fold_batchnorm`."""
    mode = torch.onnx.TrainingMode.EVAL if fold_batchnorm else torch.onnx.TrainingMode.PRESERVE
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model.eval(), (torch.zeros(1, *input_shape),), str(path), dynamo=False,
                          training=mode, do_constant_folding=fold_batchnorm)
    return path


@pytest.fixture(scope="module")
def zoo_pairs(tmp_path_factory):
    """{name: (model, .pt2 path, .onnx path)} for periodic-masked zoo models with random batch norms."""
    d = tmp_path_factory.mktemp("onnx-zoo")
    out = {}
    for i, (name, scheme) in enumerate(ZOO.items()):
        torch.manual_seed(i)
        model, shape = zoo.build(name)
        periodic.apply_periodic(model, scheme)
        randomize_batchnorm(model, seed=i)
        out[name] = (model, export(model, shape, d / f"{name}.pt2"), export_onnx(model, shape, d / f"{name}.onnx"))
    return out


def assert_same_ir(a, b, rtol=1e-6):
    assert [(n.name, n.op, n.inputs, n.out_shape) for n in a] == [(n.name, n.op, n.inputs, n.out_shape) for n in b]
    assert a.output == b.output and a.input_shape == b.input_shape
    for x, y in zip(a, b):
        assert x.attrs == y.attrs, x.name
        if x.weight is not None:
            assert y.weight.dtype == np.float32 and y.weight.shape == x.weight.shape
            np.testing.assert_allclose(y.weight, x.weight, rtol=rtol, atol=1e-7)
            np.testing.assert_allclose(y.bias, x.bias, rtol=rtol, atol=1e-6)
            assert detect(y).to_json() == detect(x).to_json(), x.name


@pytest.mark.parametrize("name", list(ZOO))
def test_onnx_gives_the_pt2_ir(zoo_pairs, name):
    model, pt2, onnx_path = zoo_pairs[name]
    a, b = load_model(pt2), load_model(onnx_path)
    assert_same_ir(a, b)
    assert to_json(summarize(a)) == to_json(summarize(b))  # `hwgen inspect --json`: the same bytes
    table = periodic.parse_scheme(ZOO[name]).table()
    sparse = [detect(n) for n in b.layers() if n.weight.shape[2:] == (3, 3) and n is not b.layers()[0]]
    assert sparse and all(s.kind == "periodic" for s in sparse)
    # PS4_P4 / PSD1_P16 / PSD4_P8 have no shorter period, so each layer reports the scheme's table.
    assert all(s.period == table.shape[0] and np.array_equal(np.array(s.patterns), table) for s in sparse)
    assert_same_output(model, b)


def test_batchnorm_folded_by_torch_matches_hwgen_folding(zoo_pairs, tmp_path):
    model, pt2, _ = zoo_pairs["digits-cnn"]
    folded = export_onnx(model, zoo.MODELS["digits-cnn"][1], tmp_path / "folded.onnx", fold_batchnorm=True)
    assert "BatchNormalization" not in {n.op_type for n in onnx.load(str(folded)).graph.node}
    assert_same_ir(load_model(pt2), load_model(folded), rtol=1e-5)


def test_onnx_is_recognised_by_content_and_through_the_cli(zoo_pairs, tmp_path, capsys):
    src = zoo_pairs["digits-cnn"][2]
    renamed = tmp_path / "digits.model"
    renamed.write_bytes(src.read_bytes())
    assert [n.name for n in load_model(renamed)] == [n.name for n in load_model(src)]
    assert cli_main(["inspect", str(renamed), "--json", str(tmp_path / "r.json")]) == 0
    assert "5 weighted layers" in capsys.readouterr().out


@pytest.mark.parametrize("fold", [False, True], ids=["batchnorm", "folded-by-torch"])
def test_general_convolutions_clip_and_shape_arithmetic(tmp_path, fold):
    """Grouped/dilated/'same' convs, Clip(0, inf), BatchNorm after Gemm, reshape(x.shape[0], -1)."""
    torch.manual_seed(3)
    model = randomize_batchnorm(_Varied())
    path = export_onnx(model, (3, 19, 17), tmp_path / "v.onnx", fold_batchnorm=fold)
    ops = [n.op_type for n in onnx.load(str(path)).graph.node]
    assert {"Clip", "Reshape", "Gemm"} <= set(ops)
    assert ops.count("BatchNormalization") == (1 if fold else 2)  # torch folds the conv's, not the Gemm's
    assert fold or {"Unsqueeze", "Concat"} <= set(ops)
    graph = load_model(path)
    assert [n.op for n in graph.layers()] == ["conv2d", "conv2d", "conv2d", "linear"]
    assert graph.node("dw").attrs["dilation"] == (2, 2) and graph.node("grouped").attrs["groups"] == 4
    assert_same_output(model, graph)


def test_torchvision_style_names_equal_the_pt2_names(tmp_path):
    torch.manual_seed(4)
    model = randomize_batchnorm(torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 7, 2, 3, bias=False), torch.nn.BatchNorm2d(16), torch.nn.ReLU(inplace=True),
        torch.nn.MaxPool2d(3, 2, 1), _TorchvisionBlock(16, 16, 1), _TorchvisionBlock(16, 32, 2),
        torch.nn.AdaptiveAvgPool2d((1, 1)), torch.nn.Flatten(), torch.nn.Linear(32, 5)))
    assert_same_ir(load_model(export(model, (3, 32, 32), tmp_path / "tv.pt2")),
                   load_model(export_onnx(model, (3, 32, 32), tmp_path / "tv.onnx")))


# -- hand-built graphs: every op, checked against onnx's own reference evaluator ----------------------
def _init(name, a):
    return numpy_helper.from_array(np.asarray(a), name)


def _model(nodes, inits, in_shape=(1, 3, 9, 9), inputs=None, outputs=None, opset=17):
    graph = helper.make_graph(
        nodes, "g", inputs or [helper.make_tensor_value_info("x", TensorProto.FLOAT, in_shape)],
        outputs or [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], initializer=inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _save(model, path):
    path.write_bytes(model.SerializeToString())
    return path


def _every_op_model():
    r = np.random.default_rng(0)

    def w(*shape):
        return r.standard_normal(shape).astype(np.float32)

    def pos(n):
        return (r.random(n) + 0.5).astype(np.float32)

    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], "/stem/Conv", kernel_shape=[3, 5], strides=[2, 1],
                         pads=[1, 2, 1, 2]),
        helper.make_node("BatchNormalization", ["c1", "g1", "be1", "m1", "v1"], ["n1"], "/bn/BatchNormalization",
                         epsilon=1e-3),
        helper.make_node("Relu", ["n1"], ["r1"], "/act/Relu"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], "/blk/blk.0/Conv", group=8, dilations=[2, 2], pads=[2, 2, 2, 2]),
        helper.make_node("Add", ["c2", "r1"], ["a1"], "/blk/Add"),
        helper.make_node("MaxPool", ["a1"], ["p1", "idx"], "/mp/MaxPool", kernel_shape=[3, 3], strides=[2, 2],
                         pads=[1, 1, 1, 1]),
        helper.make_node("AveragePool", ["p1"], ["p2"], "/ap/AveragePool", kernel_shape=[2, 2], pads=[1, 1, 1, 1],
                         count_include_pad=1),
        helper.make_node("Conv", ["p2", "w3", "b3"], ["c3"], "same_conv", auto_pad="SAME_UPPER", group=2),
        helper.make_node("Dropout", ["c3"], ["d1"], "drop"),
        helper.make_node("Identity", ["d1"], ["i1"], "ident"),
        helper.make_node("GlobalAveragePool", ["i1"], ["gap"], "/gap/GlobalAveragePool"),
        helper.make_node("Flatten", ["gap"], ["f1"], "/Flatten"),
        helper.make_node("Gemm", ["f1", "w4", "b4"], ["g1o"], "/fc/Gemm", alpha=0.5, beta=2.0),
        helper.make_node("Relu", ["g1o"], ["r2"], "/fc_act/Relu"),
        helper.make_node("Constant", [], ["shape"], "shape_const", value=_init("s", np.array([1, -1], np.int64))),
        helper.make_node("Reshape", ["r2", "shape"], ["f2"], "/Reshape"),
        helper.make_node("MatMul", ["f2", "w5"], ["mm"], "/head/MatMul"),
        helper.make_node("Add", ["mm", "b5"], ["y"], "/head/Add"),
    ]
    inits = [_init("w1", w(8, 3, 3, 5)), _init("b1", w(8)), _init("g1", pos(8)), _init("be1", w(8)),
             _init("m1", w(8)), _init("v1", pos(8)), _init("w2", w(8, 1, 3, 3)), _init("w3", w(6, 4, 3, 3)),
             _init("b3", w(6)), _init("w4", w(6, 5)), _init("b4", w(5)), _init("w5", w(5, 4)), _init("b5", w(4))]
    return _model(nodes, inits)


def test_every_op_matches_the_onnx_reference(tmp_path):
    model = _every_op_model()
    graph = load_model(_save(model, tmp_path / "ops.onnx"))
    assert [(n.name, n.op) for n in graph] == [
        ("input", "input"), ("stem", "conv2d"), ("act", "relu"), ("blk.0", "conv2d"), ("blk", "add"),
        ("mp", "maxpool2d"), ("ap", "avgpool2d"), ("same_conv", "conv2d"), ("gap", "avgpool2d"),
        ("flatten", "flatten"), ("fc", "linear"), ("fc_act", "relu"), ("head", "linear")]
    assert graph.node("stem").attrs == dict(kernel=(3, 5), stride=(2, 1), padding=(1, 2), dilation=(1, 1), groups=1)
    assert graph.node("blk.0").attrs["groups"] == 8 and graph.node("blk.0").attrs["dilation"] == (2, 2)
    assert graph.node("same_conv").attrs["padding"] == (1, 1)
    assert graph.node("gap").attrs["kernel"] == graph.in_shape(graph.node("gap"))[1:]
    assert graph.node("head").bias is not None and graph.output == "head"
    x = np.random.default_rng(1).standard_normal((1, 3, 9, 9)).astype(np.float32)
    want = ReferenceEvaluator(model).run(None, {"x": x})[0][0]
    np.testing.assert_allclose(torch_forward(graph, x[0]), want, rtol=1e-4, atol=1e-4)


def test_tensor_encodings_decode_to_the_same_weights(tmp_path):
    w = (np.arange(18, dtype=np.float32).reshape(2, 1, 3, 3) - 9) / 4  # exact in every float type
    fp16 = helper.make_tensor("w", TensorProto.FLOAT16, w.shape, w.ravel().tolist())  # bits in int32_data
    bf16 = helper.make_tensor("w", TensorProto.BFLOAT16, w.shape, (w.view(np.uint32) >> 16).astype("<u2").tobytes(), raw=True)
    encodings = {
        "raw_f32": _init("w", w),
        "typed_f32": helper.make_tensor("w", TensorProto.FLOAT, w.shape, w.ravel().tolist()),
        "raw_f64": _init("w", w.astype(np.float64)),
        "typed_f64": helper.make_tensor("w", TensorProto.DOUBLE, w.shape, w.astype(np.float64).ravel().tolist()),
        "typed_f16": fp16, "raw_f16": _init("w", w.astype(np.float16)), "raw_bf16": bf16,
    }
    for name, t in encodings.items():
        got = load_model(_save(_conv_model(t), tmp_path / f"{name}.onnx")).node("conv").weight
        assert got.dtype == np.float32 and np.array_equal(got, w), name


def test_external_data_inside_the_folder_loads(tmp_path):
    model = _every_op_model()
    onnx.save(model, str(tmp_path / "ext.onnx"), save_as_external_data=True, all_tensors_to_one_file=True,
              location="ext.bin", size_threshold=0)
    assert (tmp_path / "ext.bin").stat().st_size > 0
    a, b = load_model(tmp_path / "ext.onnx"), load_model(_save(model, tmp_path / "inline.onnx"))
    for x, y in zip(a.layers(), b.layers()):
        np.testing.assert_array_equal(x.weight, y.weight)


@pytest.mark.parametrize("training", [False, True])
def test_dropout_training_mode_flag(tmp_path, training):
    model = _model([helper.make_node("Dropout", ["x", "ratio", "mode"], ["y", "mask"], "drop")],
                   [_init("ratio", np.float32(0.5)), helper.make_tensor("mode", TensorProto.BOOL, [], [training])])
    path = _save(model, tmp_path / "drop.onnx")
    if training:
        with pytest.raises(HwgenError, match="node 'drop' \\(Dropout\\): dropout in training mode"):
            load_model(path)
    else:
        assert [n.op for n in load_model(path)] == ["input"]


def test_symbolic_input_needs_input_shape(tmp_path):
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], "conv", pads=[1, 1, 1, 1]),
             helper.make_node("GlobalAveragePool", ["c"], ["y"], "gap")]
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 2, "h", "w"])
    path = _save(_model(nodes, [_init("w", np.ones((4, 2, 3, 3), np.float32))], inputs=[inp]), tmp_path / "d.onnx")
    with pytest.raises(HwgenError, match="--input-shape"):
        load_model(path)
    graph = load_model(path, (2, 12, 10))
    assert graph.node("gap").attrs["kernel"] == (12, 10) and graph.node("gap").out_shape == (4, 1, 1)


# -- refusals: one clear line each, exit 2 from `hwgen inspect` --------------------------------------
def _conv_model(weight=None, **conv_attrs):
    w = _init("w", np.ones((2, 1, 3, 3), np.float32)) if weight is None else weight
    return _model([helper.make_node("Conv", ["x", "w"], ["y"], "/conv/Conv", **conv_attrs)], [w], in_shape=(1, 1, 6, 6))


def _raw_size_mismatch():
    t = _init("w", np.ones((2, 1, 3, 3), np.float32))
    t.raw_data = t.raw_data[:-4]
    return _conv_model(t)


def _typed_count_mismatch():
    t = helper.make_tensor("w", TensorProto.FLOAT, [2, 1, 3, 3], [1.0] * 18)
    del t.float_data[-1]
    return _conv_model(t)


def _external(location):
    t = _init("w", np.ones((2, 1, 3, 3), np.float32))
    t.ClearField("raw_data")
    t.data_location = TensorProto.EXTERNAL
    for k, v in (("location", location), ("offset", "0"), ("length", "72")):
        e = t.external_data.add()
        e.key, e.value = k, v
    return _conv_model(t)


def _cycle():
    nodes = [helper.make_node("Relu", ["x", "b"], ["a"], "first"), helper.make_node("Relu", ["a"], ["b"], "second"),
             helper.make_node("Relu", ["b"], ["y"], "third")]
    return _model(nodes, [])


def _two(kind):
    vi = [helper.make_tensor_value_info(n, TensorProto.FLOAT, (1, 1, 6, 6)) for n in ("x", "x2")]
    if kind == "inputs":
        return _model([helper.make_node("Add", ["x", "x2"], ["y"], "add")], [], inputs=vi)
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "z")]
    return _model([helper.make_node("Relu", ["x"], ["y"], "r1"), helper.make_node("Relu", ["x"], ["z"], "r2")], [],
                  outputs=outs)


HOSTILE = {
    "unknown_op": (lambda: _model([helper.make_node("Tanh", ["x"], ["y"], "/act/Tanh")], []),
                   "node '/act/Tanh' (Tanh): op Tanh is not supported"),
    "custom_domain": (lambda: _model([helper.make_node("Relu", ["x"], ["y"], "r", domain="com.evil")], []),
                      "op com.evil.Relu is not supported"),
    "raw_size": (_raw_size_mismatch, "initializer 'w' has 68 bytes of raw_data, but dims [2, 1, 3, 3] need 72"),
    "typed_count": (_typed_count_mismatch, "initializer 'w' holds 17 values, but its dims [2, 1, 3, 3] need 18"),
    "etc_passwd": (lambda: _external("/etc/passwd"), "external data '/etc/passwd' outside the model's folder"),
    "dotdot": (lambda: _external("../../etc/passwd"), "outside the model's folder"),
    "ext_missing": (lambda: _external("absent.bin"), "external data file 'absent.bin' does not exist"),
    "cycle": (_cycle, "the graph has a cycle (through node 'first' (Relu))"),
    "missing_init": (lambda: _model([helper.make_node("Conv", ["x", "w"], ["y"], "conv")], []),
                     "node 'conv' (Conv): input 'w' is not defined"),
    "nan": (lambda: _conv_model(_init("w", np.full((2, 1, 3, 3), np.nan, np.float32))), "contains NaN values"),
    "int8_weight": (lambda: _conv_model(_init("w", np.ones((2, 1, 3, 3), np.int8))), "element type INT8"),
    "asymmetric": (lambda: _conv_model(pads=[0, 0, 1, 1]), "asymmetric pads [0, 0, 1, 1] are not representable"),
    "two_inputs": (lambda: _two("inputs"), "the graph takes 2 inputs; hwgen needs exactly one"),
    "two_outputs": (lambda: _two("outputs"), "the graph has 2 outputs; hwgen needs exactly one"),
    "bn_training": (lambda: _model([helper.make_node("Conv", ["x", "w"], ["c"], "conv"),
                                    helper.make_node("BatchNormalization", ["c", "s", "s", "s", "s"], ["y"], "bn",
                                                     training_mode=1)],
                                   [_init("w", np.ones((2, 1, 3, 3), np.float32)), _init("s", np.ones(2, np.float32))],
                                   in_shape=(1, 1, 6, 6)),
                    "batch norm in training mode"),
    "clip_empty": (lambda: _model([helper.make_node("Clip", ["x", "lo", "hi"], ["y"], "/act/Clip")],
                                  [_init("lo", np.float32(6)), _init("hi", np.float32(0))]),
                   "node '/act/Clip' (Clip): clamp bounds (6, 0) are not an interval"),
    "mul": (lambda: _model([helper.make_node("Mul", ["x", "x"], ["y"], "mul")], []),
            "Mul is supported only as x * Sigmoid(x)"),
    "reduce_mean_channels": (lambda: _model([helper.make_node("ReduceMean", ["x"], ["y"], "rm", axes=[1])], []),
                             "ReduceMean over axes [1] is not a global average pooling"),
    "inf_weight": (lambda: _conv_model(_init("w", np.full((2, 1, 3, 3), np.inf, np.float32))),
                   "the weight contains infinite values"),
    "concat_spatial": (lambda: _model([helper.make_node("Concat", ["x", "x"], ["y"], "cat", axis=2)], []),
                       "concatenation along axis 2 is not supported"),
    "shape_op_on_activation": (lambda: _model([helper.make_node("Unsqueeze", ["x", "ax"], ["y"], "u")],
                                              [_init("ax", np.array([0], np.int64))]),
                               "Unsqueeze of activations is not supported"),
    "attr_type": (lambda: _conv_model(strides=[1.5, 1.5]), "attribute 'strides' has type FLOATS, expected INTS"),
    "avgpool_pad": (lambda: _model([helper.make_node("AveragePool", ["x"], ["y"], "ap", kernel_shape=[3, 3],
                                                     pads=[1, 1, 1, 1])], []),
                    "must count the padding"),
    "twice_defined": (lambda: _model([helper.make_node("Relu", ["x"], ["y"], "a"), helper.make_node("Relu", ["x"], ["y"], "b")], []),
                      "tensor 'y' is defined more than once"),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_malformed_graphs_get_one_clear_line(tmp_path, case):
    build, expect = HOSTILE[case]
    path = _save(build(), tmp_path / f"{case}.onnx")
    with pytest.raises(HwgenError) as e:
        load_model(path)
    msg = str(e.value)
    assert "\n" not in msg and expect in msg, msg


def test_external_data_through_a_symlink_out_of_the_folder_is_refused(tmp_path):
    (tmp_path / "w.bin").symlink_to("/etc/passwd")
    with pytest.raises(HwgenError, match="external data 'w.bin' outside the model's folder"):
        load_model(_save(_external("w.bin"), tmp_path / "sym.onnx"))


def test_broken_files_exit_2_from_inspect(tmp_path, capsys):
    good = _save(_every_op_model(), tmp_path / "good.onnx").read_bytes()
    files = {
        "truncated.onnx": (good[: len(good) // 2], "not a readable ONNX model"),
        "garbage.onnx": (bytes(range(256)) * 4, "not a readable ONNX model"),
        "empty.onnx": (b"", "not an ONNX model"),
        "passwd.onnx": (_external("/etc/passwd").SerializeToString(), "outside the model's folder"),
        "cycle.onnx": (_cycle().SerializeToString(), "has a cycle"),
        "raw.onnx": (_raw_size_mismatch().SerializeToString(), "bytes of raw_data"),
    }
    for name, (data, expect) in files.items():
        (tmp_path / name).write_bytes(data)
        assert cli_main(["inspect", str(tmp_path / name)]) == 2, name
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("hwgen inspect: error: ") and expect in err, (name, err)
    # The real console entry point, once: exit status 2 and one line, no traceback.
    proc = subprocess.run([sys.executable, "-m", "hwgen", "inspect", str(tmp_path / "passwd.onnx")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
