"""`hwgen quantize` and `hwgen run` end to end, through the CLI entry point."""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import quant_helpers as h
from hwgen import checkpoint, quantize, reference
from hwgen.cli import main


@pytest.fixture()
def float_ckpt(tmp_path):
    net = h.digits_net(7)
    path = tmp_path / "float.hwq"
    checkpoint.save(net, path)
    np.save(tmp_path / "calib.npy", h.random_input(net, 64, 0))
    np.save(tmp_path / "x.npy", h.random_input(net, 9, 1))
    return net, path


def _quantize(tmp_path, model, *extra) -> int:
    return main(["quantize", str(model), "--calib", str(tmp_path / "calib.npy"), "--weight-bits", "6",
                 "--act-bits", "5", "--out", str(tmp_path / "q.hwq"), *extra])


def test_quantize_then_run_equals_the_python_api(float_ckpt, tmp_path, capsys):
    net, path = float_ckpt
    assert _quantize(tmp_path, path, "--json", str(tmp_path / "q.json")) == 0
    out = capsys.readouterr().out
    assert "quantized 5 layers of 'digits' to W6/A5 with 64 calibration images" in out
    assert "logits (int accumulators)" in out and "uint5" in out
    expected_graph = quantize.quantize_graph(net, np.load(tmp_path / "calib.npy"), 6, 5)
    assert (tmp_path / "q.hwq").read_bytes() == checkpoint.to_bytes(expected_graph)
    assert '"acc_bits"' in (tmp_path / "q.json").read_text()

    x = np.load(tmp_path / "x.npy")
    assert main(["run", str(tmp_path / "q.hwq"), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "y")]) == 0
    assert "ran 9 input(s) through 'digits': logits of 'fc' int64 (9, 10)" in capsys.readouterr().out
    x_int = quantize.quantize_input(expected_graph, x)
    assert np.array_equal(np.load(tmp_path / "y"), reference.run(expected_graph, x_int))

    np.save(tmp_path / "xi.npy", x_int.astype(np.int8))  # integers are taken as they are
    assert main(["run", str(tmp_path / "q.hwq"), "--input", str(tmp_path / "xi.npy"), "--out",
                 str(tmp_path / "c3.npy"), "--layer", "c3"]) == 0
    assert np.array_equal(np.load(tmp_path / "c3.npy"), reference.run_all(expected_graph, x_int)["c3"])

    np.save(tmp_path / "one.npy", x[0])  # a single image without a batch axis
    assert main(["run", str(tmp_path / "q.hwq"), "--input", str(tmp_path / "one.npy"), "--out",
                 str(tmp_path / "y1.npy")]) == 0
    assert np.array_equal(np.load(tmp_path / "y1.npy"), reference.run(expected_graph, x_int[:1]))


def test_quantize_a_pt2_with_digits_calibration(tmp_path, capsys):
    torch = pytest.importorskip("torch")
    from models.zoo import DigitsCNN, export_pt2

    torch.manual_seed(0)
    export_pt2(DigitsCNN(), (1, 8, 8), tmp_path / "d.pt2")
    args = ["quantize", str(tmp_path / "d.pt2"), "--calib", "digits", "--calib-count", "100",
            "--weight-bits", "4", "--act-bits", "4", "--out", str(tmp_path / "d.hwq")]
    assert main(args) == 0
    assert "with 100 calibration images" in capsys.readouterr().out
    first = (tmp_path / "d.hwq").read_bytes()
    assert main(args) == 0
    assert (tmp_path / "d.hwq").read_bytes() == first
    g = checkpoint.load(tmp_path / "d.hwq")
    assert all(n.quant is not None for n in g.nodes) and g.node(g.output).quant.requant is None


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "Traceback" not in err
    return err


def test_run_errors_are_one_line(float_ckpt, tmp_path, capsys):
    net, path = float_ckpt
    assert _quantize(tmp_path, path) == 0
    q = str(tmp_path / "q.hwq")
    np.save(tmp_path / "big.npy", np.full((2, 1, 8, 8), 100, np.int16))
    assert main(["run", q, "--input", str(tmp_path / "big.npy"), "--out", str(tmp_path / "o.npy")]) == 2
    assert "outside the signed 5-bit range [-16, 15]" in _error(capsys)
    np.save(tmp_path / "shape.npy", np.zeros((2, 3, 8, 8), np.float32))
    assert main(["run", q, "--input", str(tmp_path / "shape.npy"), "--out", str(tmp_path / "o.npy")]) == 2
    assert "expected shape (N, 1, 8, 8)" in _error(capsys)
    assert main(["run", str(path), "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o.npy")]) == 2
    assert "is a float checkpoint" in _error(capsys)
    assert main(["run", q, "--input", str(tmp_path / "x.npy"), "--out", str(tmp_path / "o.npy"), "--layer", "zz"]) == 2
    assert "no node named 'zz'" in _error(capsys)
    assert main(["run", q, "--input", str(tmp_path / "none.npy"), "--out", str(tmp_path / "o.npy")]) == 2
    assert "no such file" in _error(capsys)
    assert not (tmp_path / "o.npy").exists()


class _Payload:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (open, (self.target, "w"))


def test_pickled_npy_is_refused_without_running_it(float_ckpt, tmp_path, capsys):
    net, path = float_ckpt
    target = tmp_path / "pwned"
    np.save(tmp_path / "calib.npy", np.array([_Payload(str(target))], dtype=object), allow_pickle=True)
    assert _quantize(tmp_path, path) == 2
    assert "not a readable .npy array" in _error(capsys)
    (tmp_path / "calib.npy").write_bytes(pickle.dumps(_Payload(str(target))))
    assert _quantize(tmp_path, path) == 2
    _error(capsys)
    assert not target.exists()


@pytest.mark.parametrize("extra, message", [
    (["--weight-bits", "9"], "weight bits must be an integer from 2 to 8, got 9"),
    (["--act-bits", "1"], "activation bits must be an integer from 2 to 8, got 1"),
    (["--calib-count", "0"], "--calib-count must be at least 1"),
])
def test_quantize_parameter_errors(float_ckpt, tmp_path, capsys, extra, message):
    _, path = float_ckpt
    assert _quantize(tmp_path, path, *extra) == 2
    assert message in _error(capsys)


def test_quantize_digits_calibration_must_fit_the_model(tmp_path, capsys):
    net = h.residual_net()
    checkpoint.save(net, tmp_path / "r.hwq")
    assert main(["quantize", str(tmp_path / "r.hwq"), "--calib", "digits", "--out", str(tmp_path / "o.hwq")]) == 2
    assert "calibration data: expected a batch of shape (N, 3, 9, 9), got (1437, 1, 8, 8)" in _error(capsys)


@pytest.mark.parametrize("command", ["quantize", "run"])
def test_help(command, capsys):
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    assert "Examples:" in capsys.readouterr().out
