"""`hwgen.ingest`: .pt2 programs -> IR (op mapping, batch-norm folding, names, shapes) and hostile files."""

from __future__ import annotations

import io
import json
import pickle
import zipfile

import numpy as np
import pytest
import torch
from torch import nn

from hwgen.errors import HwgenError
from hwgen.ingest import load_model
from ingest_helpers import assert_same_output, export, member, randomize_batchnorm, rewrite_zip
from models import zoo

# model name -> weighted layers (conv2d + linear) of models.zoo's definitions
ZOO_LAYERS = {"resnet18-cifar": 21, "resnet18-tiny": 21, "vgg16-tiny": 15, "digits-cnn": 5}


@pytest.fixture(scope="module")
def zoo_exports(tmp_path_factory):
    out = {}
    d = tmp_path_factory.mktemp("zoo")
    for i, name in enumerate(ZOO_LAYERS):
        torch.manual_seed(i)
        model, shape = zoo.build(name)
        randomize_batchnorm(model, seed=i)
        out[name] = (model, export(model, shape, d / f"{name}.pt2"))
    return out


def _module_output_shapes(model: nn.Module, input_shape) -> dict[str, tuple[int, ...]]:
    """Output shape (without batch) of every conv/linear module, by module path, from torch itself."""
    shapes, hooks = {}, []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d | nn.Linear):
            hooks.append(mod.register_forward_hook(
                lambda m, i, o, name=name: shapes.__setitem__(name, tuple(o.shape[1:]))))
    with torch.no_grad():
        model(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    return shapes


@pytest.mark.parametrize("name", list(ZOO_LAYERS))
def test_zoo_model_loads_with_layers_shapes_and_output(zoo_exports, name):
    model, path = zoo_exports[name]
    graph = load_model(path)
    assert graph.input_shape == zoo.MODELS[name][1]
    layers = graph.layers()
    assert len(layers) == ZOO_LAYERS[name]
    assert not any(n.op == "batchnorm" for n in graph)
    # Layers are named after their modules and have torch's output shapes.
    want = _module_output_shapes(model, graph.input_shape)
    assert {n.name: n.out_shape for n in layers} == want
    for n in layers:
        mod = model.get_submodule(n.name)
        assert n.weight.shape == tuple(mod.weight.shape)
        assert n.weight.dtype == np.float32 and n.bias is not None and n.bias.dtype == np.float32
    assert_same_output(model, graph)


def test_resnet_names_follow_modules(zoo_exports):
    graph = load_model(zoo_exports["resnet18-cifar"][1])
    names = [n.name for n in graph]
    assert names[:3] == ["input", "features.0", "features.2"]
    assert "features.5.shortcut.0" in names and "features.5.body.3" in names
    add = graph.node("features.5")
    assert add.op == "add" and add.inputs == ("features.5.body.3", "features.5.shortcut.0")
    assert graph.node("pool").op == "avgpool2d" and graph.node("pool").attrs["kernel"] == (4, 4)


def test_batchnorm_is_folded_into_weights_and_bias(zoo_exports):
    model, path = zoo_exports["digits-cnn"]
    graph = load_model(path)
    conv, bn = model.features[0], model.features[1]
    scale = (bn.weight / torch.sqrt(bn.running_var + bn.eps)).detach().double().numpy()
    want_w = conv.weight.detach().double().numpy() * scale[:, None, None, None]
    want_b = bn.bias.detach().double().numpy() - bn.running_mean.double().numpy() * scale
    node = graph.node("features.0")
    np.testing.assert_allclose(node.weight, want_w, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(node.bias, want_b, rtol=1e-6, atol=1e-7)


class _Varied(nn.Module):
    """Convolutions in general, and the other ops exports produce."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 5, stride=2, padding=(2, 1), bias=True)
        self.bn = nn.BatchNorm2d(8, affine=False)
        self.dw = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=8, bias=False)
        self.grouped = nn.Conv2d(8, 12, 3, padding="same", groups=4)
        self.drop = nn.Dropout(0.5)
        self.pool = nn.AvgPool2d(3, stride=2, padding=1)
        self.mp = nn.MaxPool2d(2, stride=1, padding=1)
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(12, 7)
        self.bn1d = nn.BatchNorm1d(7)

    def forward(self, x):
        x = torch.relu(self.bn(self.stem(x)))
        y = torch.relu_(self.dw(x))
        x = self.grouped(self.drop(x + y))
        x = self.mp(self.pool(nn.functional.hardtanh(x, 0.0, float("inf"))))
        return self.bn1d(self.fc(self.gap(x).reshape(x.shape[0], -1)))


@pytest.mark.parametrize("decompose", [False, True], ids=["export", "decomposed"])
def test_general_convolutions_and_ops(tmp_path, decompose):
    torch.manual_seed(3)
    model = randomize_batchnorm(_Varied())
    graph = load_model(export(model, (3, 19, 17), tmp_path / "v.pt2", decompose=decompose))
    assert [n.op for n in graph.layers()] == ["conv2d", "conv2d", "conv2d", "linear"]
    dw, grouped = graph.node("dw"), graph.node("grouped")
    assert dw.attrs["groups"] == 8 and dw.attrs["dilation"] == (2, 2) and dw.attrs["padding"] == (2, 2)
    assert grouped.attrs["groups"] == 4 and grouped.attrs["padding"] == (1, 1)
    assert graph.node("stem").attrs["stride"] == (2, 2) and graph.node("stem").attrs["padding"] == (2, 1)
    assert graph.node("pool").attrs == {"kernel": (3, 3), "stride": (2, 2), "padding": (1, 1)}
    assert_same_output(model, graph)


class _TorchvisionBlock(nn.Module):
    """torchvision's BasicBlock idiom: one in-place ReLU module used twice, `out += identity`."""

    def __init__(self, cin, cout, stride):
        super().__init__()
        self.conv1, self.bn1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2, self.bn2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout)
        self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)) \
            if stride != 1 or cin != cout else None

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu(self.bn1(self.conv1(x)))))
        out += identity
        return self.relu(out)


@pytest.mark.parametrize("decompose", [False, True], ids=["export", "decomposed"])
def test_torchvision_style_resnet(tmp_path, decompose):
    torch.manual_seed(4)
    model = randomize_batchnorm(nn.Sequential(
        nn.Conv2d(3, 16, 7, 2, 3, bias=False), nn.BatchNorm2d(16), nn.ReLU(inplace=True), nn.MaxPool2d(3, 2, 1),
        _TorchvisionBlock(16, 16, 1), _TorchvisionBlock(16, 32, 2),
        nn.AdaptiveAvgPool2d((1, 1)), nn.Flatten(), nn.Linear(32, 5)))
    graph = load_model(export(model, (3, 64, 64), tmp_path / "tv.pt2", decompose=decompose))
    names = [n.name for n in graph]
    assert names[:9] == ["input", "0", "2", "3", "4.conv1", "4.relu", "4.conv2", "4", "4.relu_1"]
    assert graph.node("4").inputs == ("4.conv2", "3") and graph.node("5").inputs == ("5.conv2", "5.downsample.0")
    assert graph.node("6").attrs["kernel"] == (8, 8)
    assert_same_output(model, graph)


def test_input_shape_override_and_symbolic_input(tmp_path):
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                          nn.Linear(4, 3)).eval()
    h = torch.export.Dim("h", min=4, max=64)
    program = torch.export.export(model, (torch.zeros(1, 2, 8, 8),), dynamic_shapes=({2: h, 3: h},))
    path = tmp_path / "dyn.pt2"
    torch.export.save(program, str(path))
    with pytest.raises(HwgenError, match="--input-shape"):
        load_model(path)
    graph = load_model(path, (2, 12, 12))
    assert graph.node("2").attrs["kernel"] == (12, 12) and graph.node("4").out_shape == (3,)
    assert_same_output(model, graph)


# -- refusals ---------------------------------------------------------------------------------------
def _one_line(exc: pytest.ExceptionInfo) -> str:
    msg = str(exc.value)
    assert "\n" not in msg and msg
    return msg


@pytest.mark.parametrize("module, op", [
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.Tanh()), "tanh"),
    (nn.Sequential(nn.Conv2d(1, 2, 3), nn.GELU()), "gelu"),
    (nn.Sequential(nn.ConvTranspose2d(1, 2, 3)), "conv_transpose2d"),
])
def test_unknown_op_is_refused_naming_node(tmp_path, module, op):
    path = export(module, (1, 6, 6), tmp_path / "m.pt2")
    with pytest.raises(HwgenError) as e:
        load_model(path)
    msg = _one_line(e)
    assert "node '1'" in msg or "node '0'" in msg
    assert op in msg


def test_training_mode_export_is_refused(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)).train()
    program = torch.export.export(model, (torch.zeros(2, 1, 6, 6),))
    torch.export.save(program, str(tmp_path / "train.pt2"))
    with pytest.raises(HwgenError, match=r"export the model in eval mode: model.eval\(\)"):
        load_model(tmp_path / "train.pt2")


def test_batchnorm_without_conv_is_a_per_channel_affine(tmp_path):
    model = randomize_batchnorm(nn.Sequential(nn.BatchNorm2d(2), nn.Conv2d(2, 3, 3)))
    graph = load_model(export(model, (2, 6, 6), tmp_path / "m.pt2"))
    affine = graph.node("0")
    assert (affine.op, affine.attrs["groups"], affine.weight.shape) == ("conv2d", 2, (2, 1, 1, 1))
    assert_same_output(model, graph)


def test_batchnorm_on_shared_conv_output_is_its_own_affine(tmp_path):
    class Shared(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.bn = nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)

        def forward(self, x):
            y = self.conv(x)
            return self.bn(y) + y

    model = randomize_batchnorm(Shared())
    graph = load_model(export(model, (1, 6, 6), tmp_path / "m.pt2"))
    assert [n.op for n in graph.nodes] == ["input", "conv2d", "conv2d", "add"]
    assert graph.node("bn").attrs["groups"] == 2
    assert_same_output(model, graph)


class _Payload:
    """Unpickling this creates a file: the proof that a loader ran code from the file."""

    def __init__(self, target):
        self.target = str(target)

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pickle_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    legacy = tmp_path / "model.pth"
    legacy.write_bytes(pickle.dumps({"state_dict": _Payload(marker)}))
    zipped = tmp_path / "model.pt"
    torch.save({"w": torch.zeros(2), "x": _Payload(marker)}, zipped)
    for path in (legacy, zipped):
        with pytest.raises(HwgenError) as e:
            load_model(path)
        assert "torch.export" in _one_line(e) and "pickle" in str(e.value)
    assert not marker.exists()


def test_pt2_sample_inputs_payload_is_not_run(tmp_path, zoo_exports):
    marker = tmp_path / "pwned"
    src = zoo_exports["digits-cnn"][1]
    payload = pickle.dumps(_Payload(marker))
    path = rewrite_zip(src, tmp_path / "evil.pt2",
                       lambda n, d: payload if "/sample_inputs/" in n else d)
    assert any("/sample_inputs/" in n for n in zipfile.ZipFile(path).namelist())
    graph = load_model(path)
    assert len(graph.layers()) == 5
    assert not marker.exists()


def _edit_json(src, dst, suffix, change):
    def edit(name, data):
        if not name.endswith(suffix):
            return data
        doc = json.loads(data)
        change(doc)
        return json.dumps(doc).encode()
    return rewrite_zip(src, dst, edit)


def test_malformed_archives_get_one_clear_line(tmp_path, zoo_exports):
    src = zoo_exports["digits-cnn"][1]
    raw = src.read_bytes()
    cases = {}
    (tmp_path / "truncated.pt2").write_bytes(raw[: len(raw) // 2])
    cases["truncated.pt2"] = "not a readable"
    (tmp_path / "garbage.pt2").write_bytes(bytes(range(256)) * 4)
    cases["garbage.pt2"] = "not a model hwgen can read"
    (tmp_path / "empty.pt2").write_bytes(b"")
    cases["empty.pt2"] = "not a model hwgen can read"

    def unknown_op(doc):
        doc["graph_module"]["graph"]["nodes"][2]["target"] = "torch.ops.aten.frobnicate.default"
    _edit_json(src, tmp_path / "op.pt2", "models/model.json", unknown_op)
    cases["op.pt2"] = "node 'features.2' (frobnicate): op aten.frobnicate.default is not supported"

    rewrite_zip(src, tmp_path / "json.pt2", lambda n, d: b"{not json" if n.endswith("models/model.json") else d)
    cases["json.pt2"] = "not valid JSON"

    def drop_nodes(doc):
        del doc["graph_module"]["graph"]["nodes"]
    _edit_json(src, tmp_path / "keys.pt2", "models/model.json", drop_nodes)
    cases["keys.pt2"] = "malformed program JSON"

    weight0 = member(src, "weights/weight_0")
    rewrite_zip(src, tmp_path / "short.pt2", lambda n, d: d[:-4] if n == weight0 else d)
    cases["short.pt2"] = "needs more than"
    rewrite_zip(src, tmp_path / "missing.pt2", lambda n, d: None if n == weight0 else d)
    cases["missing.pt2"] = "member 'data/weights/weight_0' is missing"
    nan = np.full(len(raw), np.nan, dtype=np.float32).tobytes()
    rewrite_zip(src, tmp_path / "nan.pt2", lambda n, d: nan[: len(d)] if n == weight0 else d)
    cases["nan.pt2"] = "NaN or infinite"

    def bad_shape(doc):
        doc["config"]["features.0.weight"]["tensor_meta"]["sizes"][0] = {"as_int": 10 ** 6}
    _edit_json(src, tmp_path / "shape.pt2", "model_weights_config.json", bad_shape)
    cases["shape.pt2"] = "needs more than"

    def broadcast(doc):
        meta = doc["config"]["features.0.weight"]["tensor_meta"]
        meta["sizes"] = [{"as_int": 10 ** 6}] * 4
        meta["strides"] = [{"as_int": 0}] * 4
    _edit_json(src, tmp_path / "broadcast.pt2", "model_weights_config.json", broadcast)
    cases["broadcast.pt2"] = "needs more than"

    def pickled(doc):
        doc["config"]["features.0.weight"]["use_pickle"] = True
    _edit_json(src, tmp_path / "pickled.pt2", "model_weights_config.json", pickled)
    cases["pickled.pt2"] = "stored as a pickle"

    def traversal(doc):
        doc["config"]["features.0.weight"]["path_name"] = "../../models/model.json"
    _edit_json(src, tmp_path / "traversal.pt2", "model_weights_config.json", traversal)
    cases["traversal.pt2"] = "bad path_name"

    for name, expect in cases.items():
        with pytest.raises(HwgenError) as e:
            load_model(tmp_path / name)
        assert expect in _one_line(e), (name, str(e.value))
    with pytest.raises(HwgenError, match="no such file"):
        load_model(tmp_path / "absent.pt2")


def test_crc_corruption_is_reported(tmp_path, zoo_exports):
    src = zoo_exports["digits-cnn"][1]
    raw = bytearray(src.read_bytes())
    # Flip a byte inside the (stored, uncompressed) model.json payload: the CRC check must catch it.
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as z:
        info = z.getinfo(member(src, "models/model.json"))
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 100
    raw[start] ^= 0xFF
    (tmp_path / "crc.pt2").write_bytes(bytes(raw))
    with pytest.raises(HwgenError) as e:
        load_model(tmp_path / "crc.pt2")
    assert "corrupt" in _one_line(e)


def test_hwq_checkpoint_goes_to_the_checkpoint_loader(tmp_path, zoo_exports):
    checkpoint = pytest.importorskip("hwgen.checkpoint")
    graph = load_model(zoo_exports["digits-cnn"][1])
    checkpoint.save(graph, tmp_path / "d.hwq")
    again = load_model(tmp_path / "d.hwq")
    assert [(n.name, n.op, n.out_shape) for n in again] == [(n.name, n.op, n.out_shape) for n in graph]
    for a, b in zip(again.layers(), graph.layers()):
        np.testing.assert_array_equal(a.weight, b.weight)
    renamed = tmp_path / "d.bin"
    renamed.write_bytes((tmp_path / "d.hwq").read_bytes())
    assert [n.name for n in load_model(renamed)] == [n.name for n in graph]
