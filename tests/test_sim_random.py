"""Randomized engines and layers (hwgen.randomnet) in cocotb/Verilator against the reference.

Every seed draws bit widths, lanes, bus width, channel counts, sizes, strides, kernels, periodic
schemes (PS, PSD) or dense, signed or ReLU outputs and worst-case operands, generates the engine,
and runs the chain under hostile DRAM timing. A failure message starts with the seed and the
drawn configuration: `random_chain(seed)` rebuilds it exactly. A few seeds run in `make test`,
many more in `make soak`.
"""

from __future__ import annotations

import json

import pytest

from hwgen import sim_target, simulate
from hwgen.randomnet import random_chain
from hwgen.sweep import store
from hwgen.sweep.verify import Case, run_campaign, run_case

DEFAULT_SEEDS = [11, 12]
SOAK_SEEDS = list(range(100, 124))


def check_chain(seed: int, tmp_path, cache, timing: str = "hostile"):
    chain = random_chain(seed)
    where = f"seed {seed} ({chain.description})"
    target = sim_target.from_graph(chain.graph, tmp_path / "gen", **chain.engine)
    report = simulate.run_network(target, chain.inputs, None, seed=seed, timing=timing, workdir=tmp_path / "sim",
                                  cache_dir=cache)
    assert report.error is None, f"{where}: {report.error}"
    for lr in report.layers:
        assert lr.error is None, f"{where}: {lr.name}: {lr.error}"
        assert lr.mismatches == 0, f"{where}: {lr.name}: {lr.mismatches} mismatches: {lr.notes}"
        assert lr.images == len(chain.inputs), where
        assert lr.bytes_match, f"{where}: {lr.name}: {lr.tensor_bytes_measured} vs {lr.tensor_bytes_predicted}"
    assert report.logits_match, f"{where}: {report.logit_mismatches} logits differ"
    return report


def test_random_campaign_is_bit_exact_and_resumes(tmp_path, cache):
    """`hwgen verify --random` on the default seeds: every case bit-exact; a rerun runs nothing."""
    out = tmp_path / "campaign"
    s = run_campaign(len(DEFAULT_SEEDS), out, seed=DEFAULT_SEEDS[0], workers=2, cache_dir=cache, progress=False)
    assert s["failed"] == [], [(r["seed"], r["error"]) for r in s["failed"]]
    assert (s["passed"], s["ran"], s["cases_per_hour"] > 0) == (len(DEFAULT_SEEDS), len(DEFAULT_SEEDS), True)
    rows = store.load(out)
    assert sorted(r["seed"] for r in rows) == DEFAULT_SEEDS
    assert all(r["mismatches"] == 0 and r["sim_cycles"] > 0 for r in rows)
    assert not (out / "cases").exists() or not any((out / "cases").iterdir())  # passing cases leave nothing
    again = run_campaign(len(DEFAULT_SEEDS), out, seed=DEFAULT_SEEDS[0], workers=2, cache_dir=cache, progress=False)
    assert (again["ran"], again["skipped"], again["passed"]) == (0, len(DEFAULT_SEEDS), len(DEFAULT_SEEDS))


def test_a_failing_case_keeps_its_seed_files_and_replay_command(tmp_path):
    """A case that cannot run (here: its build cache is not a folder) is a row, not an exception."""
    (tmp_path / "not-a-folder").write_text("")
    (row,) = run_case(Case(str(tmp_path), 5, "hostile", str(tmp_path / "not-a-folder" / "cache")))
    assert row["status"] == "error" and row["seed"] == 5 and row["error"]
    doc = json.loads(row["result"])
    assert doc["replay"] == f"hwgen verify --random 1 --seed 5 --out {tmp_path}"
    assert doc["description"] == random_chain(5).description
    assert (tmp_path / "cases" / "5" / "gen" / "hwgen_engine.v").exists()


def test_verify_cli_refuses_an_empty_campaign(tmp_path, capsys):
    from hwgen.cli import main

    assert main(["verify", "--random", "0", "--out", str(tmp_path)]) == 2
    assert "--random" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.parametrize("seed", SOAK_SEEDS)
def test_random_chain_soak(seed, tmp_path, cache):
    check_chain(seed, tmp_path, cache)


def test_random_chains_cover_the_knobs():
    """The generator of configurations does draw what this suite claims to cover."""
    chains = [random_chain(s) for s in DEFAULT_SEEDS + SOAK_SEEDS]
    text = " ".join(c.description for c in chains)
    for feature in ("1x1", "3x3", "5x5", "7x7", "/s2", "PS4_P4", "PSD", "dense", "signed-out", "relu", "worst-case",
                    "input 1x", "input 3x"):
        assert feature in text, feature
    assert {c.engine["bus_bits"] for c in chains} == {32, 64, 128}
    assert {c.engine["m_lanes"] for c in chains} == {1, 2, 4, 8}
    assert len({c.graph.input.quant.act_bits for c in chains}) >= 4
