"""The fast simulation mode (the DRAM model as HDL inside Verilator) against the reference mode.

The two modes model one memory: the same stall draws for the same seed, the same latencies, the
same counters per region. So on the same engine and inputs they must agree on every output
element, every layer's cycles (ideal and hostile timing alike) and the DRAM traffic per region,
bursts included. The sample: the shipped digits network and two random chains (random shapes,
kernels, sparsity, bits, lanes and bus widths of 32 to 128 bits, see hwgen.randomnet).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from hwgen import checkpoint, sim_target, simrunner, simulate
from hwgen.cli import main
from hwgen.randomnet import random_chain
from sim.dram import chance, draw, latency_of, latency_thresholds, ready_threshold

CKPT = Path(__file__).resolve().parents[1] / "models" / "digits_ps4p4_w8a8.hwq"
RANDOM_SEEDS = [11, 12]


def _case(name, tmp_path):
    if name == "digits":
        target = sim_target.from_graph(checkpoint.load(CKPT), tmp_path / "gen")
        inputs, labels = simulate.sample_inputs(target.graph, 2, 0)
        return target, inputs, labels
    chain = random_chain(name)
    return sim_target.from_graph(chain.graph, tmp_path / "gen", **chain.engine), chain.inputs, None


# make test keeps the digits network (each case builds two engines and runs both modes twice); the
# random chains run in make soak, beside its fast-mode campaign
@pytest.mark.parametrize("case", ["digits", *(pytest.param(s, marks=pytest.mark.slow) for s in RANDOM_SEEDS)])
def test_fast_mode_equals_reference_mode(case, tmp_path, cache):
    target, inputs, labels = _case(case, tmp_path)
    for timing, seed in (("ideal", 0), ("hostile", 5)):
        reports = {mode: simulate.run_network(target, inputs, labels, seed=seed, timing=timing, mode=mode,
                                              workdir=tmp_path / f"{mode}-{timing}", cache_dir=cache)
                   for mode in simulate.MODES}
        ref, fast = reports["reference"], reports["fast"]
        where = f"case {case}, {timing} DRAM"
        assert ref.passed and fast.passed, (where, ref.error, fast.error)
        assert fast.mode == "fast" and ref.mode == "reference"
        for a, b in zip(ref.layers, fast.layers, strict=True):
            assert (b.images, b.mismatches) == (len(inputs), 0), (where, b.name, b.notes)
            assert a.cycles_all == b.cycles_all, (where, b.name)
            assert a.traffic == b.traffic, (where, b.name)
        assert fast.engine_top1 == ref.engine_top1 == ref.reference_top1, where
    # the program is one C++ translation unit: no precompiled headers (hwgen.sim_target.fast_make_vars)
    obj = simulate.build(target, "fast", cache_dir=cache)[0].exe.parent
    assert (obj / "Vtop__ALL.o").exists() and not list(obj.glob("*.gch"))


def test_opt_env_overrides_only_the_optimization(monkeypatch):
    from hwgen.simrunner import OPT_FAST_ENV, _opt_from_env, effective_opt

    asked = sim_target.fast_make_vars(sim_target.FAST_OPT_CAMPAIGN)
    assert asked == ("OPT_FAST=-O1", "VM_PARALLEL_BUILDS=0")
    monkeypatch.setenv(OPT_FAST_ENV, "-O0")
    assert _opt_from_env(asked) == ("OPT_FAST=-O0", "VM_PARALLEL_BUILDS=0")
    assert effective_opt(sim_target.fast_make_vars()) == "-O0"  # so no profile-guided build (simulate.build)
    monkeypatch.delenv(OPT_FAST_ENV)
    assert _opt_from_env(asked) == asked
    assert effective_opt(asked) == "-O1" and effective_opt(sim_target.fast_make_vars()) == sim_target.FAST_OPT


def test_profile_guided_program_equals_the_unprofiled_one(tmp_path, cache):
    """The fast mode's program built with gcc's profile of its own training run (the suite's -O0
    keeps the build cheap: this checks the two-pass build and its results, not its speed)."""
    target = sim_target.from_graph(checkpoint.load(CKPT), tmp_path / "gen")
    inputs, labels = simulate.sample_inputs(target.graph, 1, 0)
    reports = {profile: simulate.run_network(target, inputs, labels, seed=5, timing="hostile", mode="fast",
                                             profile=profile, workdir=tmp_path / str(profile), cache_dir=cache)
               for profile in (False, True)}
    plain, profiled = reports[False], reports[True]
    assert plain.passed and profiled.passed, (plain.error, profiled.error)
    for a, b in zip(plain.layers, profiled.layers, strict=True):
        assert (a.cycles_all, a.traffic) == (b.cycles_all, b.traffic), b.name
    b, _ = simulate.build(target, "fast", cache_dir=cache, profile=True)
    # a build of its own (the training is part of its cache key), compiled again from the counts the
    # training run of all four digits layers (under FAST_TRAIN_CYCLES) left
    assert b.build_dir != simulate.build(target, "fast", cache_dir=cache, profile=False)[0].build_dir
    assert sorted(p.name for p in b.exe.parent.glob("*.gcda")) == ["Vtop__ALL.gcda", "hwgen_fastsim.gcda"]
    assert "-fprofile-use" in (b.build_dir / "build.log").read_text()


def test_cli_fast_mode_writes_its_json(tmp_path, cache, monkeypatch, capsys):
    monkeypatch.setenv("HWGEN_SIM_CACHE", str(cache))
    gen = tmp_path / "gen"
    sim_target.from_graph(checkpoint.load(CKPT), gen)
    assert main(["simulate", str(gen), "--mode", "fast", "--images", "1", "--timing", "ideal",
                 "--json", str(tmp_path / "r.json"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "fast mode" in out and "PASS" in out
    doc = json.loads((tmp_path / "r.json").read_text())
    assert doc["mode"] == "fast" and doc["passed"] and [lay["bytes_match"] for lay in doc["layers"]] == [True] * 4


@pytest.mark.slow  # a traced build of its own
def test_fast_mode_writes_waves(tmp_path, cache):
    """A traced program: the same results, and a VCD whose last time is the cycles run. (Its writer
    once warned on stdout about the backdoor's evaluations, which the pipe took for answers.)"""
    target = sim_target.from_graph(checkpoint.load(CKPT), tmp_path / "gen")
    inputs, labels = simulate.sample_inputs(target.graph, 1, 0)
    waves = tmp_path / "fast.vcd"
    report = simulate.run_network(target, inputs, labels, layers=["conv1"], timing="ideal", mode="fast",
                                  waves=waves, workdir=tmp_path / "sim", cache_dir=cache)
    assert report.passed, report.error
    text = waves.read_text()
    assert " clk " in text and " ctl_strobe " in text
    last = max(int(line[1:]) for line in text.splitlines() if line.startswith("#"))
    assert last >= 10 * report.layers[0].cycles  # 10 time units per cycle


def test_cli_fast_mode_refuses_icarus_in_one_line(tmp_path, capsys):
    gen = tmp_path / "gen"
    sim_target.from_graph(checkpoint.load(CKPT), gen)
    assert main(["simulate", str(gen), "--mode", "fast", "--sim", "icarus", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "fast mode runs on Verilator" in err[0]


def test_integer_thresholds_decide_as_the_float_draws_do():
    """The HDL memory compares 64-bit draws with integers; at and around every threshold the
    decision must be the Python agent's float comparison, rounding included."""
    rng = random.Random(3)
    for p in (0.0, 0.6, 0.7, 1.0, rng.random()):
        t = ready_threshold(p)
        for x in (t - 2, t - 1, t, t + 1, rng.getrandbits(64)):
            if 0 <= x < 1 << 64:
                assert (x < t) == (x / 2.0 ** 64 < p), (p, x)
    for latency in ((1, 1), (1, 24), (3, 9)):
        ts = latency_thresholds(latency)
        assert len(ts) == latency[1] - latency[0]
        for x in [v for t in ts for v in (t - 1, t)] + [rng.getrandbits(64) for _ in range(50)]:
            assert latency[0] + sum(x >= t for t in ts) == latency_of(x / 2.0 ** 64, latency), (latency, x)
    assert chance(5, 1, 9) == draw(5, 1, 9) / 2.0 ** 64


def test_program_loads_and_dumps_the_memory_in_place(tmp_path, cache):
    """The program copies loads into the model's memory and dumps out of it between clock edges
    (hwgen_fastsim.cpp): bytes at unaligned addresses come back as loaded, the bytes around them as
    the image had them; a file of the wrong size or words outside the memory are one error line."""
    import subprocess

    from sim.dram import BusTiming, DramError
    from sim.fast_bench import LOAD_FILE, FastBench

    target = sim_target.from_graph(checkpoint.load(CKPT), tmp_path / "gen")
    b, fields = simulate.build(target, "fast", cache_dir=cache)
    job = simrunner.make_job(bus_bits=target.params["bus_bits"], dram_size=target.dram_size, ports=target.ports,
                             timing=BusTiming.profile("ideal", 0).as_dict(), regions=target.regions,
                             preload=[{"addr": 0, "file": str(target.image_path)}], **fields)
    image = target.image_path.read_bytes()
    data = bytes(random.Random(1).getrandbits(8) for _ in range(203))
    with subprocess.Popen([str(b.exe)], cwd=tmp_path, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) as proc:
        bench = FastBench(proc, job, tmp_path)
        bench.start()
        assert bench._dump(0, len(image)) == image
        bench._load(13, data)
        assert bench._dump(0, 300) == image[:13] + data + image[13 + len(data):300]
        bb = target.params["bus_bits"] // 8
        (tmp_path / LOAD_FILE).write_bytes(bytes(2 * bb - 1))
        with pytest.raises(DramError, match=f"read {2 * bb - 1} bytes, {2 * bb} expected"):
            bench._ask("load 0 1")
        with pytest.raises(DramError, match="outside the memory"):
            bench._ask(f"dump 0 {1 << 40}")
        assert bench._dump(2 * bb, 100) == data[2 * bb - 13:][:100]  # the program still answers
        proc.stdin.close()
        assert proc.wait() == 0


@pytest.mark.slow  # a minute of builds and runs; make soak's 2,000-case fast campaign covers the path too
def test_random_campaign_in_fast_mode(tmp_path, cache):
    """`hwgen verify --random --mode fast` on the random chains above (their fast builds are cached)."""
    from hwgen.sweep import store
    from hwgen.sweep.verify import case_key, replay_command, run_campaign

    out = tmp_path / "campaign"
    s = run_campaign(len(RANDOM_SEEDS), out, seed=RANDOM_SEEDS[0], workers=2, cache_dir=cache, progress=False,
                     mode="fast")
    assert s["failed"] == [] and (s["passed"], s["ran"]) == (len(RANDOM_SEEDS), len(RANDOM_SEEDS))
    rows = store.load(out)
    assert all(r["mismatches"] == 0 and r["sim_cycles"] > 0 for r in rows)
    assert case_key(11, "hostile", "fast") != case_key(11, "hostile")  # a reference campaign still runs
    assert replay_command(5, Path("d"), "hostile", "fast") == "hwgen verify --random 1 --seed 5 --mode fast --out d"
