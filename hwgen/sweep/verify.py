"""`hwgen verify --random N`: a randomized verification campaign, run as a sweep.

Case `s` is `hwgen.randomnet.random_chain(s)`: random layer shapes, strides, kernels (3x3, 1x1),
periodic sparsity or dense, bit widths, engine lanes and bus, data; the engine is generated for
it and simulated (cocotb + Verilator, the path `hwgen simulate` takes) with DRAM stalls drawn
from the same seed, and every output element is compared with the integer reference, bit for bit,
as are the DRAM bytes with the schedule model. Rows go to DIR/results.parquet like a sweep's
(stage `verify`), so a rerun runs only the cases not yet passed; a failing case keeps its folder
(DIR/cases/SEED: the Verilog, the DRAM image, the simulation logs) and its replay command.

With `interface` "axi", the engine is generated with the AXI top (`hwgen generate --interface axi`)
and simulated on cocotbext-axi (AxiRam pausing every channel at random, AxiLiteMaster, the
generated driver, the AXI protocol monitor: sim/axi_bench.py) twice on one build: layer by layer
(each layer started on its own, the host feeding it) and the whole chain from one start per image
(`hwgen simulate --chain`: every node's map, BUSY_CYCLES and the byte counters against the bench,
MAC_ACTIVE against the schedule model). A protocol violation or a counter that differs fails it.

With `chains` > 1, case `s` is `hwgen.randomnet.random_group(s, chains)`: that many random chains
on one engine (shared bits, lanes, bus, input shape and stall seed; layers of their own), so one
generated engine, one Verilator build and one simulation verify them all. Builds dominate a
case's time, so this multiplies the chains verified per hour.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from . import executor as executors
from . import execute, store
from .spec import digest
from .stages import error_text, make_row

STAGE = "verify"
MAX_CHAINS = 64  # chains per engine: one simulation runs them all, so a failure replays them all


INTERFACES = ("stream", "axi")


def case_key(seed: int, timing: str, mode: str = "reference", chains: int = 1, interface: str = "stream") -> str:
    key = {"verify": seed, "timing": timing}
    if mode != "reference":  # the reference mode's keys stay those of campaigns before the fast mode
        key["mode"] = mode
    if chains != 1:  # and one-chain cases those of campaigns before engines were shared
        key["chains"] = chains
    if interface != "stream":  # and stream-top cases those of campaigns before the AXI top
        key["interface"] = interface
    return digest(key)


def replay_command(seed: int, out: Path, timing: str, mode: str = "reference", chains: int = 1,
                   interface: str = "stream") -> str:
    extra = ("" if timing == "hostile" else f" --timing {timing}") + ("" if mode == "reference" else f" --mode {mode}")
    extra += "" if chains == 1 else f" --chains-per-engine {chains}"
    extra += "" if interface == "stream" else f" --interface {interface}"
    return f"hwgen verify --random 1 --seed {seed}{extra} --out {out}"


@dataclass
class Case:
    out: str
    seed: int
    timing: str
    cache: str | None  # a shared Verilator build cache; None: the case's own, deleted when it passes
    mode: str = "reference"  # hwgen.simulate's: the cocotb DRAM model, or "fast" (the same as HDL)
    chains: int = 1  # random chains sharing the case's engine, build and simulation (hwgen.randomnet.random_group)
    interface: str = "stream"  # the engine's top: the stream bus, or "axi" (AxiRam, AxiLiteMaster, the driver)
    cpus = 1

    def replay(self) -> str:
        return replay_command(self.seed, Path(self.out), self.timing, self.mode, self.chains, self.interface)

    def base(self, engine: dict | None = None, label: str | None = None) -> dict:
        key = case_key(self.seed, self.timing, self.mode, self.chains, self.interface)
        return {"key": key, "point": key, "stage": STAGE, "input": label or f"chain{self.seed}", "input_key": "",
                "seed": self.seed, **(engine or {})}

    def error_rows(self, error: str) -> list[dict]:
        return [make_row(self.base(), "error", error, 0.0, {}, {"replay": self.replay(), "chains": self.chains})]


def run_case(case: Case) -> list[dict]:
    """Generate, simulate and compare one random chain; one row."""
    from .. import sim_target, simulate
    from ..randomnet import random_chain, random_group

    t0 = time.perf_counter()
    folder = Path(case.out) / "cases" / str(case.seed)
    doc = {"replay": case.replay(), "chains": case.chains}
    figures, base = {}, case.base()
    try:
        chain = random_chain(case.seed) if case.chains == 1 else random_group(case.seed, case.chains)
        base = case.base(chain.engine, chain.graph.name)
        doc["description"] = chain.description
        target = sim_target.from_graph(chain.graph, folder / "gen", interface=case.interface, **chain.engine)
        cache = Path(case.cache) if case.cache else folder / "sim-cache"
        report = simulate.run_network(target, chain.inputs, None, seed=case.seed, timing=case.timing,
                                      workdir=folder / "sim", mode=case.mode, opt=sim_target.FAST_OPT_CAMPAIGN,
                                      cache_dir=cache)
        doc["report"] = report.to_json()
        t = report.totals()
        figures = {"mismatches": t["mismatches"] + report.logit_mismatches, "sim_cycles": t["cycles"],
                   "sim_dram_bytes": t["dram_bytes_measured"], "images": len(chain.inputs)}
        wrong_bytes = [lr.name for lr in report.layers if lr.bytes_match is False]
        problems = []
        if report.error:
            problems.append(report.error)
        problems += [f"{lr.name}: {lr.error}" for lr in report.layers if lr.error]
        problems += [f"{lr.name}: {lr.mismatches} elements differ" for lr in report.layers if lr.mismatches]
        if not report.logits_match:
            problems.append(f"{report.logit_mismatches} output elements differ from the reference")
        problems += [f"{n}: DRAM bytes differ from the schedule model" for n in wrong_bytes]
        if case.interface == "axi":
            problems += _whole_chain(case, chain, folder, cache, doc, figures)
        status, error = ("ok", None) if not problems else ("mismatch", "; ".join(problems))
    except Exception as e:  # noqa: BLE001 - recorded with its seed, never stops the campaign
        status, error = "error", error_text(e)
    if status == "ok":
        shutil.rmtree(folder, ignore_errors=True)  # only failures keep their files (and their build)
    return [make_row(base, status, error, time.perf_counter() - t0, figures, doc)]


def _whole_chain(case: Case, chain, folder: Path, cache: Path, doc: dict, figures: dict) -> list[str]:
    """The AXI case's second run, on the same build: the whole chain from one start per image
    (`simulate.simulate_chain`): every node's map, the output, the bytes against the manifest's
    prediction, BUSY_CYCLES / byte counters / MAC_ACTIVE against the bench; what differs."""
    from .. import simulate

    report = simulate.simulate_chain(folder / "gen", inputs=chain.inputs, seed=case.seed, timing=case.timing,
                                     workdir=folder / "sim-chain", cache_dir=cache)
    doc["chain_report"] = report.to_json()
    figures["sim_cycles"] += sum(img.cycles for img in report.images)
    figures["sim_dram_bytes"] += sum(img.monitor_bytes for img in report.images)
    problems = [f"from one start: {report.aborted}"] if report.aborted else []
    for i, img in enumerate(report.images):
        wrong = [n for n, v in img.node_mismatches.items() if v]
        figures["mismatches"] += sum(img.node_mismatches.values())
        if img.error:
            problems.append(f"from one start, image {i}: {img.error}")
        if wrong or not img.output_equal:
            problems.append(f"from one start, image {i}: {', '.join(wrong) or 'the output'} differ from the reference")
        if img.monitor_bytes != img.bytes_predicted or not img.counters_agree:
            problems.append(f"from one start, image {i}: bytes {img.monitor_bytes} (predicted {img.bytes_predicted}), "
                            f"counters {img.counters}")
    return problems


def run_campaign(cases: int, out, *, seed: int = 0, timing: str = "hostile", executor: str = "local",
                 workers: int | None = None, address: str | None = None, cache_dir=None,
                 progress: bool = True, mode: str = "reference", chains: int = 1, interface: str = "stream") -> dict:
    """Cases seed .. seed + cases - 1 not yet passed in `out`, each `chains` random chains on one
    engine with the `interface` top; returns counts, failures, cases/hour and chains/hour."""
    from ..errors import HwgenError

    if interface not in INTERFACES:
        raise HwgenError(f"unknown interface '{interface}' (choose from {', '.join(INTERFACES)})")
    if interface == "axi" and mode != "reference":
        raise HwgenError("--interface axi runs in the reference mode (cocotbext-axi): the fast mode has no AXI top")
    if cases < 1:
        raise HwgenError(f"--random must be at least 1, got {cases}")
    if not 1 <= chains <= MAX_CHAINS:
        raise HwgenError(f"--chains-per-engine must be from 1 to {MAX_CHAINS}, got {chains}")
    if seed < 0:
        raise HwgenError(f"--seed must be non-negative, got {seed}")
    out = Path(out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    seeds = range(seed, seed + cases)
    done = {r["key"] for r in store.load(out) if r["status"] == "ok"}
    todo = [s for s in seeds if case_key(s, timing, mode, chains, interface) not in done]
    # Every case is a different design: a build (about 150 MB) is worth keeping only for a failure.
    cache = str(cache_dir) if cache_dir else None
    t0 = time.perf_counter()
    ex = executors.make(executor, workers, address)
    try:
        counts = execute(ex, run_case, [Case(str(out), s, timing, cache, mode, chains, interface) for s in todo], out, len(todo),
                         f"verify {len(todo)} cases", progress)
        store.compact(out)
    finally:
        ex.close()
    wall = time.perf_counter() - t0
    keys = {case_key(s, timing, mode, chains, interface) for s in seeds}
    rows = [r for r in store.load(out) if r["key"] in keys]
    failed = [r for r in rows if r["status"] != "ok"]
    return {"cases": cases, "ran": len(todo), "skipped": cases - len(todo), **counts,
            "passed": len(rows) - len(failed), "failed": failed, "wall_s": round(wall, 3),
            "cases_per_hour": round(len(todo) / wall * 3600, 1) if todo and wall > 0 else None,
            "chains": chains,
            "chains_per_hour": round(len(todo) * chains / wall * 3600, 1) if todo and wall > 0 else None,
            "executor": ex.name}
