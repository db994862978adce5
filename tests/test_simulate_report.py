"""`hwgen simulate`'s verdict: bit-exact outputs are not enough when the DRAM bytes differ.

The report is built from numbers as `run_network` fills them (no simulator needed): a layer whose
outputs match but whose measured bytes differ from the schedule model's fails, and the command
exits 1.
"""

from __future__ import annotations

import pytest

from hwgen import simulate
from hwgen.cli import main


def layer(measured: dict, predicted: dict) -> simulate.LayerResult:
    return simulate.LayerResult("conv1", images=1, mismatches=0, cycles=100, lanes=16, effectual_macs=800,
                                dram_bytes_measured=sum(measured.values()),
                                dram_bytes_predicted=sum(predicted.values()),
                                tensor_bytes_measured=dict(measured), tensor_bytes_predicted=dict(predicted))


def report(lr: simulate.LayerResult) -> simulate.SimReport:
    return simulate.SimReport(sim="verilator", seed=0, timing="ideal", images=1, layers=[lr], logits_match=True,
                              logit_mismatches=0, engine_top1=[3], reference_top1=[3], labels=None,
                              wall_seconds=0.0, cycles_simulated=100)


PRED = {"descriptor": 64, "weights": 576, "inputs": 512, "outputs": 512}


def test_equal_bytes_pass():
    lr = layer(PRED, PRED)
    assert lr.bytes_match and lr.passed and report(lr).passed


@pytest.mark.parametrize("measured", [
    dict(PRED, weights=1152),  # weights read twice: the total differs
    dict(PRED, weights=512, inputs=576),  # same total, moved between tensors
])
def test_bytes_differing_from_the_prediction_fail(measured):
    lr = layer(measured, PRED)
    assert lr.bytes_match is False
    assert not lr.passed
    assert not report(lr).passed
    assert report(lr).to_json()["passed"] is False


def test_cli_exits_1_when_only_bytes_differ(monkeypatch, tmp_path, capsys):
    monkeypatch.setattr(simulate, "simulate", lambda *a, **k: report(layer(dict(PRED, weights=1152), PRED)))
    assert main(["simulate", str(tmp_path), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "DIFFER" in out and "FAIL bytes" in out
