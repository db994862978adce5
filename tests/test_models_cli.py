from __future__ import annotations

import json

import numpy as np
import pytest

from hwgen.cli import main


def _train(tmp_path, name, *extra):
    out = tmp_path / name
    code = main(["train", "--method", "periodic", "--scheme", "PS4_P4", "--bits", "8", "--epochs", "2",
                 "--qat-epochs", "1", "--no-progress", "--json", "--out", str(out), *extra])
    assert code == 0
    return out


def test_train_writes_a_deterministic_checkpoint_whose_reference_accuracy_is_reported(tmp_path, capsys):
    from hwgen import checkpoint, reference
    from hwgen.datasets import load_digits_split
    from hwgen.quantize import quantize_input

    a = _train(tmp_path, "a.hwq")
    report = json.loads(capsys.readouterr().out)
    b = _train(tmp_path, "b.hwq")
    assert a.read_bytes() == b.read_bytes()
    assert report["bytes"] == a.stat().st_size < 1_000_000
    assert abs(report["density"] - 4 / 9) < 1e-12
    graph = checkpoint.load(a)
    _, _, x_te, y_te = load_digits_split()
    logits = reference.run(graph, quantize_input(graph, x_te))
    assert report["integer_reference"] == float((logits.argmax(1) == y_te).mean()) == report["qat"]
    # the integer weights keep the periodic masks: kernel (m, c) follows table[(m + c + 1) % 4]
    from models.periodic import layer_mask, parse_scheme

    convs = [n for n in graph.layers() if n.op == "conv2d"]
    table = parse_scheme("PS4_P4").table()
    for node in convs[1:]:
        m, c = node.quant.weight.shape[:2]
        assert not node.quant.weight[layer_mask(table, m, c) == 0].any()
    assert np.count_nonzero(convs[0].quant.weight) > 0.9 * convs[0].quant.weight.size


@pytest.mark.parametrize("argv, message", [
    (["--method", "dense", "--bits", "9", "--out", "x.hwq"], "--bits must be an integer from 2 to 8"),
    (["--method", "dense", "--out", "x.txt"], "--out must name a .hwq"),
    (["--table", "--method", "dense"], "either --table or --method"),
    (["--method", "periodic", "--scheme", "PS4_Q4", "--out", "x.hwq"], "unknown periodic scheme"),
    (["--method", "pattern", "--connectivity", "1.5", "--out", "x.hwq"], "connectivity rate"),
    (["--method", "dense", "--epochs", "-1", "--out", "x.hwq"], "--epochs must be >= 0"),
    (["--method", "dense", "--model", "resnet50", "--out", "x.hwq"], "unknown model 'resnet50'"),
    (["--method", "dense", "--preset", "imagenet", "--out", "x.hwq"], "unknown preset 'imagenet'"),
    (["--method", "dense", "--schedule", "multistep", "--out", "x.hwq"], "--schedule multistep needs --milestones"),
    (["--method", "dense", "--schedule", "multistep", "--milestones", "0.8,0.5", "--out", "x.hwq"],
     "milestones must be increasing fractions"),
    (["--method", "dense", "--stop-after-epochs", "1", "--out", "x.hwq"], "needs --checkpoint-dir"),
    (["--method", "dense", "--model", "vgg16", "--width", "0", "--out", "x.hwq"], "width must be >= 1"),
])
def test_bad_arguments_give_one_line_errors(tmp_path, capsys, argv, message):
    assert main(["train", "--no-progress", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and "\n" not in err


def test_cuda_without_a_gpu_is_one_line(capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert main(["train", "--method", "dense", "--device", "cuda", "--out", "x.hwq"]) == 2
    assert capsys.readouterr().err.strip() == "hwgen train: error: --device cuda: no CUDA device is available"
