"""hwgen sweep: spec checks, resumable results, recorded failures, exact analysis rows, the report.

The sweeps here are small (a few points) and run on the local process pool; the one with RTL
stages simulates the shipped digits engine once (its Verilator build is shared with the other
simulation tests through the session cache). The Ray executor runs under `-m slow`.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from hwgen.analysis import analyze, load_arch
from hwgen.checkpoint import load
from hwgen.cli import main
from hwgen.sweep import report, run_sweep, spec, store

ROOT = Path(__file__).resolve().parents[1]
DIGITS = ROOT / "models" / "digits_ps4p4_w8a8.hwq"
EXAMPLES = sorted((ROOT / "examples").glob("sweep_*.yaml"))


def write(path: Path, text: str) -> Path:
    path.write_text(text.replace("DIGITS", str(DIGITS)))
    return path


GENERIC = """
name: generic
inputs:
  - checkpoint: DIGITS
parameters:
  grid:
    arch: generic
    mac_rows: [8, 16]
    dram_bytes_per_cycle: [4, 16]
    glb_kib: 4
"""


@pytest.mark.parametrize("body, key", [
    ("inputs: [{checkpoint: DIGITS}]\nparameters: {grid: {m_lanes: [4]}}\nstagez: {}\n", "stagez"),
    ("inputs: [{checkpoint: DIGITS}]\nparameters: {grid: {mlanes: [4]}}\n", "parameters.grid.mlanes"),
    ("inputs: [{checkpoint: DIGITS}]\nparameters: {grid: {m_lanes: []}}\n", "parameters.grid.m_lanes"),
    ("inputs: [{checkpoint: DIGITS}]\nparameters: {grid: {m_lanes: [3]}}\n", "parameters.grid.m_lanes"),
    ("inputs: [{checkpoint: DIGITS}]\nparameters: {grid: {bus_bits: [1024]}}\n", "parameters.grid.bus_bits"),
    ("inputs: [{checkpoint: DIGITS}]\nparameters: {grid: {mac_rows: [8]}}\n", "parameters.grid.mac_rows"),
    ("inputs: [{zoo: digits-cnn, weight_bits: 1, act_bits: 4}]\n", "inputs[0].weight_bits"),
    ("inputs: [{zoo: nope}]\n", "inputs[0].zoo"),
    ("inputs: [{checkpoint: DIGITS}]\nstages: {simulate: {images: 1}}\n", "stages.simulate"),
    ("inputs: [{checkpoint: DIGITS}]\nstages: {generate: {synth: vivado}}\n", "stages.generate.synth"),
    ("inputs: [{checkpoint: DIGITS}]\nstages: {generate: true, simulate: {mode: quick}}\n", "stages.simulate.mode"),
])
def test_bad_spec_is_one_line_naming_the_key(tmp_path, capsys, body, key):
    path = write(tmp_path / "bad.yaml", body)
    assert main(["sweep", str(path), "--out", str(tmp_path / "out"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"'{key}'" in err, err
    assert not (tmp_path / "out").exists()


def test_grid_expands_with_keys_and_seeds(tmp_path):
    s = spec.load(write(tmp_path / "g.yaml", GENERIC))
    assert len(s.points) == 4
    assert len({p.key for p in s.points}) == 4 and len({p.seed for p in s.points}) == 4
    assert {(p.params["mac_rows"], p.params["dram_bytes_per_cycle"]) for p in s.points} == {(8, 4), (8, 16), (16, 4), (16, 16)}
    again = spec.load(write(tmp_path / "g2.yaml", GENERIC))
    assert [p.key for p in again.points] == [p.key for p in s.points]  # keys are the parameters' hash
    sampled = spec.load(write(tmp_path / "s.yaml", GENERIC + "  sample: 3\n"))
    assert len(sampled.points) == 3 and {p.key for p in sampled.points} < {p.key for p in s.points}


def test_simulate_mode_is_part_of_the_row_key(tmp_path):
    body = "inputs: [{checkpoint: DIGITS}]\nstages: {generate: true, simulate: {images: 1%s}}\n"
    plain, ref, fast = (spec.load(write(tmp_path / f"{i}.yaml", body % extra)).stages
                        for i, extra in enumerate(("", ", mode: reference", ", mode: fast")))
    assert plain == ref and fast.mode == "fast"
    # a reference sweep keeps the keys it had before the mode existed; a fast one runs its own rows
    assert ref.options("simulate") == {"images": 1, "timing": "hostile"}
    assert fast.options("simulate") == {"images": 1, "timing": "hostile", "mode": "fast"}


def test_analysis_sweep_equals_analyze_and_a_rerun_does_no_work(tmp_path):
    out = tmp_path / "out"
    s = spec.load(write(tmp_path / "g.yaml", GENERIC))
    first = run_sweep(s, out, workers=2, progress=False)
    assert (first["ran"], first["ok"], first["error"], first["skipped"]) == (4, 4, 0, 0)
    rows = store.load(out)
    assert len(rows) == 4 and len({r["key"] for r in rows}) == 4
    graph = load(DIGITS)
    generic = load_arch("generic")
    for r in rows:
        # The sweep's memoized analysis (shared searches) gives exactly analyze()'s numbers.
        arch = dataclasses.replace(generic, rows=r["mac_rows"], dram_bytes_per_cycle=r["dram_bytes_per_cycle"])
        direct = analyze(graph, arch=arch, glb_kib=4)
        assert r["energy_pj"] == round(direct.totals["energy_pj"]["total"], 3)
        assert r["dram_bytes"] == direct.totals["dram_bytes"]["total"]
        assert r["cycles"] == direct.totals["cycles"]
        assert r["seed"] == next(p.seed for p in s.points if p.key == r["point"])
        assert json.loads(r["result"])["totals"]["cycles"] == r["cycles"]
    assert len({r["cycles"] for r in rows}) > 1  # the parameters do change the figures

    before = (out / store.RESULTS).read_bytes()
    again = run_sweep(spec.load(tmp_path / "g.yaml"), out, workers=2, progress=False)
    assert (again["ran"], again["skipped"]) == (0, 4)
    assert (out / store.RESULTS).read_bytes() == before

    grown = write(tmp_path / "g.yaml", GENERIC.replace("[8, 16]", "[8, 16, 32]"))
    third = run_sweep(spec.load(grown), out, workers=2, progress=False)
    assert (third["ran"], third["skipped"]) == (2, 4)
    assert pq.read_table(out / store.RESULTS).num_rows == 6


def test_failures_are_recorded_and_rerun_and_rtl_rows_agree(tmp_path, cache):
    text = """
name: rtl
inputs:
  - checkpoint: DIGITS
  - zoo: digits-cnn            # float: the engine needs a quantized model, so this point fails
stages:
  generate: true
  simulate: {images: 1, timing: ideal}
"""
    s = spec.load(write(tmp_path / "rtl.yaml", text))
    out = tmp_path / "out"
    summary = run_sweep(s, out, workers=2, cache_dir=cache, progress=False)
    assert (summary["ran"], summary["ok"], summary["error"], summary["mismatch"]) == (6, 3, 3, 0)
    rows = {(r["input"], r["stage"]): r for r in store.load(out)}
    good = {st: rows[("digits_ps4p4_w8a8.hwq", st)] for st in ("analyze", "generate", "simulate")}
    assert all(r["status"] == "ok" and r["error"] is None for r in good.values())
    assert good["simulate"]["mismatches"] == 0
    # The engine preset's prediction is what the RTL moved, byte for byte.
    assert good["simulate"]["sim_dram_bytes"] == good["analyze"]["dram_bytes"] == good["generate"]["dram_bytes"]
    bad = [r for (inp, _), r in rows.items() if inp.startswith("digits-cnn")]
    assert len(bad) == 3 and all(r["status"] == "error" and r["error"] for r in bad)
    assert any("quantize" in r["error"] for r in bad)

    again = run_sweep(spec.load(tmp_path / "rtl.yaml"), out, workers=2, cache_dir=cache, progress=False)
    assert (again["ran"], again["skipped"], again["error"]) == (3, 3, 3)  # only the failed rows run again


def test_report_table_csv_and_pareto(tmp_path, capsys):
    out = tmp_path / "out"
    run_sweep(spec.load(write(tmp_path / "g.yaml", GENERIC)), out, workers=1, progress=False)
    assert main(["sweep", str(out), "--report", "--csv", str(tmp_path / "t.csv")]) == 0
    text = capsys.readouterr().out
    assert "mac_rows" in text and "dram_bytes_per_cycle" in text and "4 points, 4 fully ok" in text
    png = (out / "pareto.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    assert main(["sweep", str(out), "--report"]) == 0
    assert (out / "pareto.png").read_bytes() == png  # deterministic
    assert len((tmp_path / "t.csv").read_text().splitlines()) == 5
    assert main(["sweep", str(tmp_path / "nothing"), "--report"]) == 2


def test_pareto_front():
    pts = [(1, 5, "a"), (2, 3, "b"), (2, 4, "c"), (3, 3, "d"), (4, 1, "e"), (5, 2, "f")]
    assert [t for _, _, t in report.pareto(pts)] == ["a", "b", "e"]


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_specs_load(path):
    s = spec.load(path)
    assert s.points and "analyze" in s.stages.names()


@pytest.mark.slow
def test_ray_executor_gives_the_local_rows(tmp_path):
    s = spec.load(write(tmp_path / "g.yaml", GENERIC))
    run_sweep(s, tmp_path / "local", workers=2, progress=False)
    summary = run_sweep(s, tmp_path / "ray", executor="ray", workers=2, progress=False)
    assert summary["executor"] == "ray" and summary["ok"] == 4
    strip = lambda rows: [{k: v for k, v in r.items() if k != "wall_s"} for r in rows]  # noqa: E731
    assert strip(store.load(tmp_path / "ray")) == strip(store.load(tmp_path / "local"))


def test_unreachable_ray_cluster_is_one_line(tmp_path, capsys):
    path = write(tmp_path / "g.yaml", GENERIC)
    assert main(["sweep", str(path), "--out", str(tmp_path / "o"), "--executor", "ray", "--address", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "could not reach the Ray cluster at 127.0.0.1:1" in err
    assert main(["sweep", str(path), "--out", str(tmp_path / "o"), "--address", "127.0.0.1:1"]) == 2  # local + address


def test_an_input_that_cannot_be_built_fails_only_its_rows(tmp_path):
    import numpy as np

    np.save(tmp_path / "cal.npy", np.zeros((4, 3, 8, 8), dtype=np.float32))  # the model takes (1, 8, 8)
    zoo = "  - zoo: digits-cnn\n    weight_bits: 8\n    act_bits: 8\n    calibration: cal.npy\n"
    text = GENERIC.replace("parameters:", zoo + "parameters:", 1)
    summary = run_sweep(spec.load(write(tmp_path / "in.yaml", text)), tmp_path / "out", workers=2, progress=False)
    assert (summary["ok"], summary["error"]) == (4, 4)
    errors = [r["error"] for r in store.load(tmp_path / "out") if r["status"] == "error"]
    assert all("cal.npy" in e and "(1, 8, 8)" in e for e in errors), errors[0]
