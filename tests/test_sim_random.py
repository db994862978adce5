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
from hwgen.engine import plan_node, rom_tables
from hwgen.engine.params import MAX_PERIOD
from hwgen.randomnet import random_chain, random_group
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


@pytest.mark.parametrize("chains", [1, 3])
def test_a_failing_case_keeps_its_seed_files_and_replay_command(tmp_path, chains):
    """A case that cannot run (here: its build cache is not a folder) is a row, not an exception."""
    (tmp_path / "not-a-folder").write_text("")
    (row,) = run_case(Case(str(tmp_path), 5, "hostile", str(tmp_path / "not-a-folder" / "cache"), chains=chains))
    assert row["status"] == "error" and row["seed"] == 5 and row["error"]
    doc = json.loads(row["result"])
    extra = "" if chains == 1 else f" --chains-per-engine {chains}"
    assert doc["replay"] == f"hwgen verify --random 1 --seed 5{extra} --out {tmp_path}"
    assert doc["description"] == (random_chain(5) if chains == 1 else random_group(5, chains)).description
    assert (tmp_path / "cases" / "5" / "gen" / "hwgen_engine.v").exists()


@pytest.mark.parametrize("args, named", [(["--random", "0"], "--random"),
                                         (["--random", "2", "--chains-per-engine", "0"], "--chains-per-engine")])
def test_verify_cli_refuses_an_empty_campaign(tmp_path, capsys, args, named):
    from hwgen.cli import main

    assert main(["verify", *args, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0]


def test_random_groups_share_an_engine_and_draw_their_own_layers():
    """A group is `chains` chains off one input, on one engine whose pattern ROM holds them all."""
    groups = [random_group(s, 8) for s in range(6)]
    for g in groups:
        chains = g.description.split("; ")[1:]
        assert len(chains) == 8 and len(set(c.split(": ", 1)[1] for c in chains)) == 8
        convs = [n for n in g.graph.nodes if n.op == "conv2d"]
        heads = [n for n in convs if n.inputs == ("x",)]
        assert len(heads) == 8 and all(n.name.endswith("_conv1") for n in heads)
        assert {n.quant.weight_bits for n in convs} == {int(g.description[1])}  # one weight width, one engine
        plans = [plan_node(g.graph, n, m_lanes=g.engine["m_lanes"]) for n in convs]
        assert len(rom_tables(plans)[0]) <= MAX_PERIOD * 4
    again = random_group(3, 8)
    assert again.description == groups[3].description and (again.inputs == groups[3].inputs).all()
    text = " ".join(g.description for g in groups)
    for feature in ("1x1", "5x5", "7x7", "/s2", "PS4_P4", "PSD1_P16", "PS3_P3", "dense", "signed-out", "worst-case"):
        assert feature in text, feature


@pytest.mark.slow  # one build and one simulation for four chains
def test_grouped_campaign_in_fast_mode(tmp_path, cache):
    out = tmp_path / "campaign"
    s = run_campaign(1, out, seed=7, chains=4, cache_dir=cache, progress=False, mode="fast", workers=1)
    assert s["failed"] == [], [(r["seed"], r["error"]) for r in s["failed"]]
    assert (s["passed"], s["chains"], s["chains_per_hour"]) == (1, 4, 4 * s["cases_per_hour"])
    (row,) = store.load(out)
    doc = json.loads(row["result"])
    layers = doc["report"]["layers"]
    assert len({lay["name"].split("_")[0] for lay in layers}) == 4
    assert all(lay["passed"] and lay["bytes_match"] and lay["mismatches"] == 0 for lay in layers)


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
