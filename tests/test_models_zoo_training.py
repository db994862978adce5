"""Training any zoo model on users' data: residual QAT end to end, resuming, data errors, `hwgen eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hwgen.cli import main

CLASSES = 4


def synthetic(n: int = 300, side: int = 32, channels: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Separable classes: class c brightens quadrant c of a noisy grey image."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % CLASSES
    x = rng.normal(0.5, 0.15, (n, channels, side, side)).astype(np.float32)
    h = side // 2
    for c in range(CLASSES):
        r, q = divmod(c, 2)
        x[y == c, :, r * h:(r + 1) * h, q * h:(q + 1) * h] += 0.4
    return np.clip(x, 0, 1), y.astype(np.int64)


def test_resnet18_ps4p4_qat_exports_what_it_computes_and_learns(tmp_path):
    """ResNet-18-CIFAR (width 4) PS4_P4, 2 epochs + 2 QAT epochs on the CPU: the checkpoint's integer
    logits equal the QAT forward bit for bit, and it is at least 35 points above chance (25 %)."""
    from hwgen import checkpoint
    from models import experiments as ex
    from models.qat import export
    from models.train import Data, FitOptions, evaluate

    x, y = synthetic()
    data = Data.from_numpy(x[:240], y[:240], x[240:], y[240:])
    budget = ex.Budget(epochs=2, qat_epochs=2, lr=0.01, qat_lr=1e-3, fit=FitOptions(batch_size=16, device="cpu"))
    trained = ex.train_float("periodic", data, arch=ex.Arch("resnet18-cifar", 4), budget=budget, progress=False)
    net = ex.quantization_aware(trained, 8, data, budget=budget, progress=False)
    qg = export(net, tmp_path / "r.hwq")
    loaded = checkpoint.load(tmp_path / "r.hwq")
    logits = ex.reference_logits(loaded, data.x_test.numpy())
    assert np.array_equal(logits, net.integer_logits(data.x_test))
    assert sum(n.op == "add" for n in loaded.nodes) == 8 and qg.output == loaded.output
    accuracy = float((logits.argmax(1) == data.y_test.numpy()).mean())
    assert accuracy == evaluate(net, data.x_test, data.y_test) >= 1 / CLASSES + 0.35


def _train(tmp_path, out, ckpt, *extra):
    return main(["train", "--method", "periodic", "--data", str(tmp_path / "d.npz"), "--epochs", "2",
                 "--qat-epochs", "2", "--batch-size", "16", "--no-progress", "--json", "--out", str(tmp_path / out),
                 "--checkpoint-dir", str(tmp_path / ckpt), *extra])


def test_a_resumed_run_ends_exactly_as_an_uninterrupted_one(tmp_path, capsys):
    x, y = synthetic(200, side=8, channels=1)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    assert _train(tmp_path, "a.hwq", "a") == 0
    # stopped in the float phase, then in the QAT phase, then finished: three processes' worth of state
    assert _train(tmp_path, "b.hwq", "b", "--stop-after-epochs", "1") == 75
    assert not (tmp_path / "b.hwq").exists()
    assert _train(tmp_path, "b.hwq", "b", "--stop-after-epochs", "2") == 75
    capsys.readouterr()
    # where the checkpoint goes is not part of the run: the resume may write elsewhere
    assert _train(tmp_path, "c.hwq", "b") == 0
    report = json.loads(capsys.readouterr().out)
    assert (tmp_path / "a.hwq").read_bytes() == (tmp_path / "c.hwq").read_bytes()
    assert report["integer_reference"] == report["qat"]
    # a checkpoint directory remembers its run: other arguments are refused
    assert _train(tmp_path, "b.hwq", "b", "--seed", "1") == 2
    assert "holds the checkpoints of a run with other arguments" in capsys.readouterr().err


def _png(path, value: int = 128, size: int = 8):
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)


def _folder(root, classes=("cat", "dog"), per_class: int = 3):
    for part in ("train", "test"):
        for k, c in enumerate(classes):
            for i in range(per_class):
                _png(root / part / c / f"{i}.png", 40 + 100 * k + i)
    return root


def test_image_folder_and_npz_load(tmp_path):
    from hwgen.datasets import load_dataset

    ds = load_dataset(_folder(tmp_path / "f"), channels=3, side=16)
    assert ds.classes == ("cat", "dog") and ds.x_train.shape == (6, 3, 16, 16) and ds.x_test.shape == (6, 3, 16, 16)
    assert ds.y_train.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.x_train[3, 0, 0, 0] == np.float32(140 / 255)
    x, y = synthetic(40, side=8)
    np.savez(tmp_path / "d.npz", x=(x * 255).astype(np.uint8), y=y)
    ds = load_dataset(tmp_path / "d.npz")
    assert len(ds.y_train) == 32 and len(ds.y_test) == 8 and ds.x_train.dtype == np.float32
    assert sorted(np.bincount(ds.y_test)) == [2, 2, 2, 2]  # stratified


def _bad_data(tmp_path, kind):
    root = tmp_path / kind
    if kind == "flat":
        _png(root / "a.png")
        (root / "cats").mkdir()
        return root
    if kind == "empty-class":
        _png(root / "cat" / "0.png")
        _png(root / "cat" / "1.png")
        (root / "dog").mkdir()
        return root
    if kind == "mismatched-classes":
        _folder(root)
        _png(root / "test" / "bird" / "0.png")
        return root
    if kind == "corrupt-image":
        _folder(root)
        (root / "train" / "cat" / "0.png").write_bytes(b"not a png")
        return root
    x, y = synthetic(12, side=8, channels=1)
    path = tmp_path / f"{kind}.npz"
    arrays = {"no-y": dict(x=x), "label-count": dict(x=x, y=y[:-1]), "class-gap": dict(x=x, y=y * 2),
              "float-labels": dict(x=x, y=y.astype(np.float32))}[kind]
    np.savez(path, **arrays)
    return path


@pytest.mark.parametrize("kind, message", [
    ("flat", "found images outside class folders"),
    ("empty-class", "class 'dog' has no images"),
    ("mismatched-classes", "do not match the training classes"),
    ("corrupt-image", "not a readable image"),
    ("no-y", "expected arrays 'x' and 'y'"),
    ("label-count", "has 11 labels for 12 images"),
    ("class-gap", "class 1 has no training images"),
    ("float-labels", "integer class labels"),
    ("missing", "no such data set"),
])
def test_bad_data_gives_one_line_and_exit_2(tmp_path, capsys, kind, message):
    data = tmp_path / "nothing" if kind == "missing" else _bad_data(tmp_path, kind)
    code = main(["train", "--method", "dense", "--data", str(data), "--no-progress", "--out", str(tmp_path / "m.hwq")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and "\n" not in err
    assert not (tmp_path / "m.hwq").exists()


def test_eval_reports_the_reference_accuracy_and_refuses_foreign_labels(tmp_path, capsys):
    from models.experiments import SHIPPED

    assert main(["eval", str(SHIPPED), "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["images"] == 360 and abs(report["top1_reference"] - 357 / 360) < 1e-12  # the README's 99.17 %
    x, _ = synthetic(22, side=8, channels=1)
    y = np.arange(22) % 11  # one class more than the checkpoint has
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x, y_test=y)
    assert main(["eval", str(SHIPPED), "--data", str(tmp_path / "d.npz"), "--no-progress"]) == 2
    assert "labels go up to 10 but" in capsys.readouterr().err


@pytest.mark.slow
def test_eval_rtl_agrees_with_the_reference(capsys):
    """The engine's Verilog (Verilator) on 2 digits: logits equal, so the same top-1 (about 1 CPU-minute)."""
    from models.experiments import SHIPPED

    assert main(["eval", str(SHIPPED), "--rtl", "2", "--json", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["rtl_logits_equal_reference"] and report["top1_rtl"] == report["top1_reference_same_images"]
