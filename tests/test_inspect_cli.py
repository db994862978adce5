"""`hwgen inspect`: periodic ResNet-18 / VGG-16, pattern and random pruning, checked against counts
made here from the torch modules; JSON schema and determinism; one-line errors with exit code 2."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from hwgen.cli import main
from ingest_helpers import export, randomize_batchnorm
from models import periodic, zoo
from models.pattern_pruning import candidate_patterns

LAYER_KEYS = ["name", "op", "in_shape", "out_shape", "weight_shape", "macs", "effectual_macs", "params",
              "nonzeros", "sparsity"]


def _torch_counts(model: nn.Module, input_shape) -> dict[str, dict]:
    """Per conv/linear module, from torch alone: output shape, MACs, effectual MACs, params, nonzeros."""
    out, hooks = {}, []

    def hook(mod, inp, o, name):
        w = mod.weight.detach()
        pixels = int(np.prod(o.shape[2:])) if isinstance(mod, nn.Conv2d) else 1
        out[name] = {"out_shape": list(o.shape[1:]), "macs": w.numel() * pixels,
                     "effectual_macs": int(torch.count_nonzero(w)) * pixels, "nonzeros": int(torch.count_nonzero(w))}

    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d | nn.Linear):
            hooks.append(mod.register_forward_hook(lambda m, i, o, name=name: hook(m, i, o, name)))
    with torch.no_grad():
        model.eval()(torch.zeros(1, *input_shape))
    for h in hooks:
        h.remove()
    return out


def _inspect_json(path, tmp_path, *extra) -> dict:
    out = tmp_path / f"{path.stem}.json"
    assert main(["inspect", str(path), "--json", str(out), *extra]) == 0
    return json.loads(out.read_text())


@pytest.fixture(scope="module")
def periodic_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("periodic")
    out = {}
    for name in ("resnet18-cifar", "vgg16-tiny"):
        torch.manual_seed(0)
        model, shape = zoo.build(name)
        randomize_batchnorm(model)
        periodic.apply_periodic(model, "PSD1_P16")
        out[name] = (model, shape, export(model, shape, d / f"{name}-psd1p16.pt2"))
    return out


# name -> (weighted layers, dense MACs, headline MAC reduction of the design brief)
HEADLINES = {"resnet18-cifar": (21, 0.56e9, 5.6), "vgg16-tiny": (15, 1.25e9, 5.8)}


@pytest.mark.parametrize("name", list(HEADLINES))
def test_periodic_model_report(periodic_models, tmp_path, capsys, name):
    model, shape, path = periodic_models[name]
    report = _inspect_json(path, tmp_path)
    assert list(report) == ["layers", "totals"]
    assert all(list(row) == LAYER_KEYS for row in report["layers"])
    weighted = [r for r in report["layers"] if r["weight_shape"] is not None]
    n_layers, dense_macs, reduction = HEADLINES[name]
    assert len(weighted) == n_layers
    assert all(r["op"] in ("conv2d", "linear") for r in weighted)

    want = _torch_counts(model, shape)
    sparse = {n for n, m in model.named_modules() if m in set(periodic.sparse_convs(model))}
    table = periodic.parse_scheme("PSD1_P16").table().tolist()
    assert {r["name"] for r in weighted} == set(want)
    for r in weighted:
        w = want[r["name"]]
        assert r["out_shape"] == w["out_shape"]
        assert (r["macs"], r["effectual_macs"], r["nonzeros"]) == (w["macs"], w["effectual_macs"], w["nonzeros"])
        mod = model.get_submodule(r["name"])
        assert r["weight_shape"] == list(mod.weight.shape)
        assert r["params"] == mod.weight.numel() + mod.weight.shape[0]  # folded batch norm adds a bias
        if r["name"] in sparse:
            assert r["sparsity"] == {"kind": "periodic", "period": 16, "offset": 1, "patterns": table}
        else:
            assert r["sparsity"] == {"kind": "dense", "period": None, "offset": None, "patterns": []}
    for r in report["layers"]:
        if r["weight_shape"] is None:
            assert (r["macs"], r["effectual_macs"], r["params"], r["nonzeros"], r["sparsity"]) == (0, 0, None, None, None)

    t = report["totals"]
    assert t["macs"] == sum(w["macs"] for w in want.values())
    assert t["effectual_macs"] == sum(w["effectual_macs"] for w in want.values())
    assert t["nonzeros"] == sum(w["nonzeros"] for w in want.values())
    assert t["params"] == sum(r["params"] for r in weighted)
    assert abs(t["macs"] / dense_macs - 1) < 0.01
    assert abs(t["macs"] / t["effectual_macs"] / reduction - 1) < 0.02

    # The human table names every layer and ends with the totals.
    assert main(["inspect", str(path)]) == 0
    text = capsys.readouterr().out
    assert all(r["name"] in text for r in report["layers"])
    assert f"{t['effectual_macs']:,}" in text.splitlines()[-2]


def test_json_is_deterministic(periodic_models, tmp_path):
    path = periodic_models["resnet18-cifar"][2]
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    assert main(["inspect", str(path), "--json", str(a)]) == 0
    assert main(["inspect", str(path), "--json", str(b)]) == 0
    assert a.read_bytes() == b.read_bytes()


def test_pattern_and_random_pruning(tmp_path):
    rng = np.random.default_rng(0)
    torch.manual_seed(0)
    model = zoo.DigitsCNN(widths=(16, 32, 32, 64))
    randomize_batchnorm(model)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    shapes = candidate_patterns(4)
    library = shapes[rng.choice(len(shapes), 4, replace=False)]
    pattern_conv, random_conv = convs[2], convs[3]
    m, c = pattern_conv.weight.shape[:2]
    mask = library[rng.integers(0, 4, (m, c))].reshape(m, c, 3, 3)
    mask[rng.random((m, c)) < 0.25] = 0  # connectivity: whole kernels removed
    random_mask = rng.random(tuple(random_conv.weight.shape)) < 0.4
    with torch.no_grad():
        pattern_conv.weight.mul_(torch.from_numpy(mask.astype(np.float32)))
        random_conv.weight.mul_(torch.from_numpy(random_mask.astype(np.float32)))
    path = export(model, (1, 8, 8), tmp_path / "pruned.pt2")
    rows = {r["name"]: r for r in _inspect_json(path, tmp_path)["layers"]}
    pat = rows["features.7"]["sparsity"]
    assert pat["kind"] == "pattern" and pat["period"] is None
    assert sorted(map(str, pat["patterns"])) == sorted(str(p.reshape(3, 3).tolist()) for p in library)
    assert rows["features.7"]["nonzeros"] == int(torch.count_nonzero(pattern_conv.weight))
    assert rows["features.10"]["sparsity"]["kind"] == "unstructured"
    assert rows["features.0"]["sparsity"]["kind"] == "dense"


def test_input_shape_option(tmp_path):
    model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2)).eval()
    path = export(model, (1, 8, 8), tmp_path / "small.pt2")
    report = _inspect_json(path, tmp_path, "--input-shape", "1,16,12")
    assert report["layers"][0]["out_shape"] == [1, 16, 12]
    assert report["layers"][-1]["out_shape"] == [4, 2, 2]
    assert report["totals"]["macs"] == 4 * 9 * 16 * 12


class _Payload:
    def __reduce__(self):
        return (print, ("payload ran",))


@pytest.mark.parametrize("content, args, expect", [
    (b"\x00garbage" * 10, [], "not a model hwgen can read"),
    (pickle.dumps(_Payload()), [], "pickled PyTorch checkpoint"),
    (None, [], "no such file"),
    (b"", ["--input-shape", "3,x,3"], "--input-shape '3,x,3'"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, capsys, content, args, expect):
    path = tmp_path / "model.pt"
    if content is not None:
        path.write_bytes(content)
    assert main(["inspect", str(path), *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "payload ran" not in captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("hwgen inspect: error: ") and expect in lines[0]


def test_command_line_process_exit_code(tmp_path):
    bad = tmp_path / "bad.pt2"
    bad.write_bytes(b"PK\x03\x04 not really a zip")
    proc = subprocess.run([sys.executable, "-m", "hwgen", "inspect", str(bad)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and "not a readable .pt2 archive" in proc.stderr
