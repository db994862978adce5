"""The generated engine's Verilog in cocotb/Verilator against the integer reference.

One build of the shipped digits checkpoint's engine serves every test here (a build is ~15-30 s):
the whole network bit-exact under hostile DRAM timing, predicted vs measured bytes and cycles,
deliberately broken DRAM images (one requant multiplier bit, one weight bit) that must be caught,
and the `hwgen simulate` command line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from hwgen import checkpoint, sim_target, simrunner, simulate
from hwgen.cli import main
from hwgen.errors import HwgenError

CKPT = Path(__file__).resolve().parents[1] / "models" / "digits_ps4p4_w8a8.hwq"
CYCLE_TOLERANCE = 0.05


@pytest.fixture(scope="module")
def digits(tmp_path_factory):
    return sim_target.from_graph(checkpoint.load(CKPT), tmp_path_factory.mktemp("digits-engine"))


def run(target, tmp_path, cache, images=3, **kw):
    inputs, labels = simulate.sample_inputs(target.graph, images, 0)
    return simulate.run_network(target, inputs, labels, workdir=tmp_path / "sim", cache_dir=cache, **kw)


@pytest.mark.parametrize("seed", [0, pytest.param(7, marks=pytest.mark.slow)])
def test_digits_network_is_bit_exact_under_hostile_dram(digits, tmp_path, cache, seed):
    report = run(digits, tmp_path, cache, images=3, seed=seed, timing="hostile")
    assert report.error is None
    for lr in report.layers:
        assert lr.images == 3 and lr.mismatches == 0, f"seed {seed}: {lr.name}: {lr.notes}"
        assert lr.bytes_match, f"seed {seed}: {lr.name}: {lr.tensor_bytes_measured} vs {lr.tensor_bytes_predicted}"
    assert [lr.name for lr in report.layers] == ["conv1", "conv2", "conv3", "conv4"]
    assert report.logits_match and report.logit_mismatches == 0
    assert report.engine_top1 == report.reference_top1
    assert report.passed


def test_predicted_bytes_exact_and_cycles_close_with_ideal_memory(digits, tmp_path, cache):
    report = run(digits, tmp_path, cache, images=1, timing="ideal")
    for lr in report.layers:
        assert lr.tensor_bytes_measured == lr.tensor_bytes_predicted, lr.name
        assert lr.dram_bytes_measured == lr.dram_bytes_predicted, lr.name
        err = abs(lr.cycles - lr.cycles_predicted) / lr.cycles
        assert err <= CYCLE_TOLERANCE, f"{lr.name}: measured {lr.cycles}, predicted {lr.cycles_predicted}"
        assert 0 < lr.utilization <= 1


def test_stalls_cost_cycles_but_not_bytes(digits, tmp_path, cache):
    ideal = run(digits, tmp_path / "i", cache, images=1, timing="ideal")
    hostile = run(digits, tmp_path / "h", cache, images=1, timing="hostile", seed=3)
    for a, b in zip(ideal.layers, hostile.layers):
        assert b.cycles > a.cycles
        assert b.traffic == a.traffic  # bursts and bytes per region do not depend on timing


def broken_copy(target, tmp_path: Path, layer: str, tensor: str, byte_offset: int, bit: int):
    """A copy of the generated folder whose DRAM image has one bit flipped in `layer`'s `tensor`."""
    out = tmp_path / "broken"
    shutil.copytree(target.image_path.parent, out)
    region = next(r for r in target.regions if r["name"] == f"{layer}.{tensor}")
    image = bytearray((out / target.image_path.name).read_bytes())
    image[region["base"] + byte_offset] ^= 1 << bit
    (out / target.image_path.name).write_bytes(bytes(image))
    return sim_target.load_generated(out)


# Bias/requant table entry of channel 0: bias int32 (bytes 0-3), M uint16 (4-5), S (6), pad.
@pytest.mark.parametrize("what, tensor, offset, bit", [
    ("requant multiplier bit 13", "tables", 5, 5),
    ("requant shift bit 0", "tables", 6, 0),
    ("bias bit 20", "tables", 2, 4),
    ("weight sign bit", "weights", 0, 7),
])
def test_a_flipped_bit_in_the_dram_image_is_caught(digits, tmp_path, cache, what, tensor, offset, bit):
    broken = broken_copy(digits, tmp_path, "conv2", tensor, offset, bit)
    report = run(broken, tmp_path, cache, images=3, timing="ideal")
    by_name = {lr.name: lr for lr in report.layers}
    assert by_name["conv1"].mismatches == 0, what
    assert by_name["conv2"].mismatches > 0, f"{what} went unnoticed"
    assert not by_name["conv2"].passed and not report.passed
    assert by_name["conv2"].notes and "expected" in by_name["conv2"].notes[0]


def test_cli_simulate_reports_pass_and_writes_json(digits, tmp_path, cache, capsys, monkeypatch):
    monkeypatch.setenv("HWGEN_SIM_CACHE", str(cache))
    out = tmp_path / "sim.json"
    gen = digits.image_path.parent
    code = main(["simulate", str(gen), "--images", "2", "--seed", "1", "--json", str(out), "--no-progress"])
    text = capsys.readouterr().out
    assert code == 0, text
    for name in ("conv1", "conv2", "conv3", "conv4"):
        assert any(line.startswith(name) and "PASS" in line for line in text.splitlines()), text
    assert "bit-exact" in text
    data = json.loads(out.read_text())
    keys = {"name", "mismatches", "cycles", "utilization", "dram_bytes_measured", "dram_bytes_predicted",
            "cycles_predicted"}
    assert all(keys <= set(layer) for layer in data["layers"])
    assert keys - {"name"} <= set(data["totals"])
    assert data["totals"]["mismatches"] == 0 and data["network"]["logits_match"]
    assert data["totals"]["dram_bytes_measured"] == data["totals"]["dram_bytes_predicted"]


def test_cli_simulate_fails_on_a_broken_image(digits, tmp_path, cache, capsys, monkeypatch):
    monkeypatch.setenv("HWGEN_SIM_CACHE", str(cache))
    broken = broken_copy(digits, tmp_path, "conv3", "tables", 5, 6)
    code = main(["simulate", str(broken.image_path.parent), "--images", "1", "--layers", "conv3", "--no-progress"])
    text = capsys.readouterr().out
    assert code == 1
    assert any(line.startswith("conv3") and "FAIL" in line for line in text.splitlines()), text


@pytest.mark.parametrize("argv, message", [
    (["--images", "0"], "--images must be at least 1"),
    (["--layers", "conv9"], "no engine layer named conv9"),
])
def test_cli_simulate_bad_arguments_are_one_line(digits, capsys, argv, message):
    code = main(["simulate", str(digits.image_path.parent), "--no-progress", *argv])
    err = capsys.readouterr().err
    assert code == 2 and message in err and err.count("\n") == 1


def test_expected_outputs_of_the_wrong_shape_stop_before_the_simulation(digits, tmp_path):
    inputs, labels = simulate.sample_inputs(digits.graph, 2, 0)
    with pytest.raises(HwgenError, match=r"expected outputs: shape \(2, 9\), the network gives \(2, 10\)"):
        simulate.run_network(digits, inputs, labels, workdir=tmp_path / "sim", expected=np.zeros((2, 9)))
    assert not (tmp_path / "sim").exists()


def test_cli_simulate_not_a_generated_folder(tmp_path, capsys):
    code = main(["simulate", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 2 and "manifest" in err and err.count("\n") == 1


def test_missing_checkpoint_is_named(digits, tmp_path):
    out = tmp_path / "gen"
    shutil.copytree(digits.image_path.parent, out)
    (out / sim_target.CHECKPOINT_FILE).unlink()
    with pytest.raises(HwgenError, match="--checkpoint"):
        sim_target.load_generated(out)
    target = sim_target.load_generated(out, checkpoint_path=CKPT)
    assert np.array_equal(target.graph.node("conv2").quant.weight, digits.graph.node("conv2").quant.weight)


def test_demo_runs_end_to_end(tmp_path, cache, monkeypatch, capsys):
    from hwgen import demo

    monkeypatch.setenv("HWGEN_SIM_CACHE", str(cache))  # the digits engine built above is reused
    out = tmp_path / "demo"
    assert demo.main([str(CKPT), "--out", str(out), "--images", "2", "--axi-images", "1"]) == 0
    summary = (out / "summary.md").read_text()
    assert "bit-exact: **yes**" in summary and "**equal**" in summary
    # the AXI top, driven by the generated driver (`hwgen simulate --chain`'s table inside the summary)
    assert "the whole network in hardware from one start per image" in summary and "driver): **PASS**" in summary
    assert "host layers: 0): bit-exact, bytes equal, counters agree on 1 of 1 image(s)" in summary
    assert "accuracy: engine" in summary and "energy per image" in summary
    for name in ("inspect.txt", "analyze.txt", "analyze.json", "analyze.png", "simulate.json", "simulate_ideal.json",
                 "engine/manifest.json", "engine/hwgen_top.v", "engine/model.hwq", "engine-axi/network_image.bin",
                 "simulate_chain.txt", "network_axi.json"):
        assert (out / name).exists(), name
    assert summary in capsys.readouterr().out


@pytest.mark.skipif(not simrunner.available("icarus"), reason="iverilog not installed")
def test_icarus_agrees_with_verilator_on_the_engine(digits, tmp_path, cache):
    ver = run(digits, tmp_path / "v", cache, images=1, seed=5, timing="hostile")
    ica = run(digits, tmp_path / "i", cache, images=1, seed=5, timing="hostile", sim="icarus")
    assert ica.passed and ica.logits_match
    assert [lr.cycles for lr in ica.layers] == [lr.cycles for lr in ver.layers]
    assert [lr.traffic for lr in ica.layers] == [lr.traffic for lr in ver.layers]


@pytest.mark.skipif(not simrunner.available("icarus"), reason="iverilog not installed")
def test_cli_waves_of_one_layer(digits, tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setenv("HWGEN_SIM_CACHE", str(cache))
    fst = tmp_path / "conv1.fst"
    code = main(["simulate", str(digits.image_path.parent), "--images", "1", "--layers", "conv1", "--sim", "icarus",
                 "--waves", str(fst), "--no-progress"])
    assert code == 0, capsys.readouterr().out
    assert fst.stat().st_size > 1000


@pytest.mark.parametrize("damage, message", [
    (lambda m: "{not json", "not a manifest"),
    (lambda m: json.dumps({k: v for k, v in json.loads(m).items() if k != "layers"}), "not a manifest"),
])
def test_damaged_manifest_is_one_line(digits, tmp_path, damage, message):
    out = tmp_path / "gen"
    shutil.copytree(digits.image_path.parent, out)
    (out / "manifest.json").write_text(damage((out / "manifest.json").read_text()))
    with pytest.raises(HwgenError, match=message) as e:
        sim_target.load_generated(out)
    assert "\n" not in str(e.value)
