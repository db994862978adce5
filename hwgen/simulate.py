"""Verify a generated engine: run its Verilog in cocotb on real inputs, compare with the reference.

`simulate(gen_dir, ...)` takes the folder `hwgen generate` wrote (engine Verilog, DRAM image,
descriptors, manifest, checkpoint), builds the Verilog with Verilator (or Icarus), and runs the
network image by image inside the simulator (sim/engine_host.py): the engine computes every layer
it was generated for, the host computes the rest in the integer reference, and the memory is the
hostile DRAM model of sim/dram.py. It returns a `SimReport`:
- per engine layer: elements that differ from the reference's output for the same input (over
  all images), cycles, MAC utilization (effectual MACs / (lanes x cycles)), DRAM bytes measured
  by the DRAM model and predicted by the engine's schedule model, cycles predicted;
- the network: logits equal to the reference's (element by element), and top-1 agreement.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import simrunner
from .errors import HwgenError

HOST_PROGRAM = "sim.engine_host:network_host"
CHAIN_HOST_PROGRAM = "sim.engine_host:chain_host"
TIMEOUT_FACTOR = 20  # a layer may take this many times its predicted cycles before it is a hang
TIMEOUT_MIN = 100_000
TIMINGS = ("hostile", "ideal")
MODES = ("reference", "fast")  # the DRAM model in cocotb, or as HDL inside the simulator


@dataclass
class LayerResult:
    name: str
    images: int = 0
    mismatches: int = 0
    notes: list[str] = field(default_factory=list)
    cycles: int = 0  # the first image's run (every image's is in cycles_all)
    cycles_all: list[int] = field(default_factory=list)
    utilization: float = 0.0
    effectual_macs: int = 0
    lanes: int = 0
    dram_bytes_measured: int = 0  # per image, every region
    dram_bytes_predicted: int | None = None
    dram_bytes_compulsory: int | None = None  # the lower bound: each tensor once in its smallest format
    cycles_predicted: int | None = None
    tensor_bytes_measured: dict = field(default_factory=dict)  # tensor -> bytes in this layer's own regions
    tensor_bytes_predicted: dict = field(default_factory=dict)
    traffic: dict = field(default_factory=dict)  # per region (bytes and bursts), per image
    counters: dict = field(default_factory=dict)  # AXI top: its performance counters (first image)
    error: str | None = None

    @property
    def passed(self) -> bool:
        """Bit-exact on every image, and (where predicted) the DRAM bytes the schedule model promised."""
        return self.error is None and self.mismatches == 0 and self.images > 0 and self.bytes_match is not False

    @property
    def bytes_match(self) -> bool | None:
        """Measured equals predicted tensor by tensor, and nothing outside the layer's regions moved."""
        if self.dram_bytes_predicted is None or not self.images:
            return None
        return (self.dram_bytes_measured == self.dram_bytes_predicted
                and self.tensor_bytes_measured == self.tensor_bytes_predicted)


@dataclass
class SimReport:
    sim: str
    seed: int
    timing: str
    images: int
    layers: list[LayerResult]
    logits_match: bool
    logit_mismatches: int
    engine_top1: list[int]
    reference_top1: list[int]
    labels: list[int] | None
    wall_seconds: float
    cycles_simulated: int
    error: str | None = None
    expect_mismatches: int | None = None  # with expected outputs (--expect): engine outputs that differ from them
    mode: str = "reference"  # the DRAM model in cocotb, or "fast": the same model as HDL in the simulator
    sim_cpu_seconds: float = 0.0  # CPU time of the simulator process (model + host program)

    @property
    def passed(self) -> bool:
        return (self.error is None and self.logits_match and not self.expect_mismatches
                and all(lr.passed for lr in self.layers))

    def accuracy(self, top1: list[int]) -> float | None:
        if not self.labels:
            return None
        return float(np.mean(np.asarray(top1) == np.asarray(self.labels)))

    def totals(self) -> dict:
        ls = self.layers
        pred_bytes = [lr.dram_bytes_predicted for lr in ls]
        bound = [lr.dram_bytes_compulsory for lr in ls]
        pred_cycles = [lr.cycles_predicted for lr in ls]
        cycles = sum(lr.cycles for lr in ls)
        macs = sum(lr.effectual_macs for lr in ls)
        lanes = ls[0].lanes if ls else 0
        return {
            "mismatches": sum(lr.mismatches for lr in ls),
            "cycles": cycles,
            "utilization": macs / (lanes * cycles) if lanes and cycles else 0.0,
            "dram_bytes_measured": sum(lr.dram_bytes_measured for lr in ls),
            "dram_bytes_predicted": None if None in pred_bytes else sum(pred_bytes),
            "dram_bytes_compulsory": None if None in bound else sum(bound),
            "cycles_predicted": None if None in pred_cycles else sum(pred_cycles),
        }

    def to_json(self) -> dict:
        layers = [{"name": lr.name, "mismatches": lr.mismatches, "cycles": lr.cycles,
                   "utilization": lr.utilization, "dram_bytes_measured": lr.dram_bytes_measured,
                   "dram_bytes_predicted": lr.dram_bytes_predicted, "dram_bytes_compulsory": lr.dram_bytes_compulsory,
                   "cycles_predicted": lr.cycles_predicted,
                   "passed": lr.passed, "images": lr.images, "cycles_per_image": lr.cycles_all,
                   "effectual_macs": lr.effectual_macs,
                   "bytes_match": lr.bytes_match, "tensor_bytes_measured": lr.tensor_bytes_measured,
                   "tensor_bytes_predicted": lr.tensor_bytes_predicted,
                   "traffic": lr.traffic, "counters": lr.counters, "notes": lr.notes, "error": lr.error}
                  for lr in self.layers]
        return {
            "sim": self.sim, "mode": self.mode, "seed": self.seed, "timing": self.timing, "images": self.images,
            "passed": self.passed, "error": self.error,
            "layers": layers, "totals": self.totals(),
            "network": {"logits_match": self.logits_match, "logit_mismatches": self.logit_mismatches,
                        "expect_mismatches": self.expect_mismatches,
                        "engine_top1": self.engine_top1, "reference_top1": self.reference_top1,
                        "labels": self.labels, "engine_accuracy": self.accuracy(self.engine_top1),
                        "reference_accuracy": self.accuracy(self.reference_top1)},
            "cycles_simulated": self.cycles_simulated, "sim_cpu_seconds": self.sim_cpu_seconds,
        }


def _own_tensor_bytes(layer: str, traffic: dict) -> dict:
    """Bytes per tensor in the layer's own regions (`<layer>.<tensor>`), from the DRAM model's counts."""
    out = {}
    for region, t in traffic.items():
        owner, _, tensor = region.rpartition(".")
        if owner == layer:
            out[tensor] = out.get(tensor, 0) + t["read_bytes"] + t["write_bytes"]
    return out


def sample_inputs(graph, images: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """Integer inputs: the first test digits when the network takes digits, else seeded random."""
    from . import datasets
    from .quantize import quantize_input

    if images < 1:
        raise HwgenError(f"--images must be at least 1, got {images}")
    if tuple(graph.input_shape) == datasets.INPUT_SHAPE:
        _, _, x_test, y_test = datasets.load_digits_split()
        if images > len(x_test):
            raise HwgenError(f"--images {images}: the digits test set has {len(x_test)} images")
        return quantize_input(graph, x_test[:images]), y_test[:images]
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, size=(images, *graph.input_shape)).astype(np.float32)
    return quantize_input(graph, x), None


class _Progress:
    """Follows the host program's progress file from a thread and moves a tqdm bar."""

    def __init__(self, path: Path, total: int, enabled: bool):
        self.path, self.total, self.enabled = path, total, enabled
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._follow, daemon=True)

    def __enter__(self):
        self.path.write_text("")
        if self.enabled:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self.enabled:
            self._thread.join()

    def _follow(self):
        from tqdm import tqdm

        with tqdm(total=self.total, desc="simulating", unit="layer") as bar:
            seen = 0
            while True:
                stopping = self._stop.wait(0.2)
                n = self.path.read_text().count("\n")
                bar.update(n - seen)
                seen = n
                if stopping:
                    return


def build(engine, mode: str = "reference", *, sim: str = "verilator", waves: str | None = None,
          cache_dir: Path | None = None, opt: str | None = None,
          profile: bool | None = None) -> tuple[simrunner.Build, dict]:
    """The compiled simulation model of `engine` in `mode` (cached per Verilog), and the fields the
    job needs for it. `opt`: the fast mode's C++ optimization (default `sim_target.FAST_OPT`).
    `profile`: optimize the fast mode's program with a profile of its own run (`fast_training`); by
    default when it is built at `FAST_OPT` without waves for a network of at least
    `FAST_PROFILE_MIN_CYCLES` predicted cycles an image: the training is then a small part of one
    image, and the second compile pays off over the images that follow."""
    from .sim_target import FAST_OPT, FAST_PROFILE_MIN_CYCLES, fast_make_vars, fast_top

    if mode == "reference":
        return simrunner.build(engine.sources, engine.toplevel, sim=sim, waves=waves, cache_dir=cache_dir), {}
    if sim != "verilator":
        raise HwgenError(f"the fast mode runs on Verilator, not {sim}")
    sources, regions = fast_top(engine)
    if profile is None:
        profile = (waves is None and simrunner.effective_opt(fast_make_vars(opt)) == FAST_OPT
                   and sum(lay.cycles_predicted for lay in engine.layers) >= FAST_PROFILE_MIN_CYCLES)
    train = fast_training(engine, regions) if profile else None
    return build_fast(sources, waves=waves, cache_dir=cache_dir, opt=opt, train=train), fast_job(regions)


def build_fast(sources: dict[str, str], *, waves: str | None = None, cache_dir: Path | None = None,
               opt: str | None = None, train: simrunner.Training | None = None) -> simrunner.Build:
    """Compile the fast mode's Verilog (`hwgen.sim_target.fast_verilog`) with Verilator, into a
    program with its own main loop (sim/fast_bench.py runs it); `train`: profile-guided."""
    from . import templates
    from .sim_target import FAST_MAIN, FAST_TOP, FAST_VERILATOR_ARGS, fast_make_vars

    return simrunner.build_program(sources, FAST_TOP, templates.text(FAST_MAIN), waves=waves, cache_dir=cache_dir,
                                   args=FAST_VERILATOR_ARGS, make_vars=fast_make_vars(opt), train=train)


def fast_training(engine, regions: int) -> simrunner.Training:
    """The profile-training workload of `engine`'s fast-mode program: its first layers, in order, until
    `sim_target.FAST_TRAIN_CYCLES` predicted cycles, on the DRAM image as generated (the inputs are
    what `hwgen generate` left there: the Verilated model's branches follow the engine's control,
    hardly its data), under the hostile DRAM of seed 0. Deterministic, so the profile is."""
    import hashlib
    import tempfile

    from sim.dram import BusTiming

    from .sim_target import FAST_TRAIN_CYCLES

    runs, cycles = [], 0
    for lay in engine.layers:
        if cycles >= FAST_TRAIN_CYCLES:
            break
        runs.append({"name": lay.name, "desc_addr": lay.desc_addr,
                     "timeout": max(TIMEOUT_MIN, TIMEOUT_FACTOR * lay.cycles_predicted)})
        cycles += lay.cycles_predicted
    job = simrunner.make_job(bus_bits=engine.params["bus_bits"], dram_size=engine.dram_size, ports=engine.ports,
                             timing=BusTiming.profile("hostile", 0).as_dict(), regions=engine.regions,
                             preload=[{"addr": 0, "file": str(engine.image_path)}], runs=runs, **fast_job(regions))
    image = hashlib.sha256(Path(engine.image_path).read_bytes()).hexdigest()
    key = json.dumps(dict(job, preload=image), sort_keys=True)  # the image by content, not by path

    def run(b: simrunner.Build) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            results = simrunner.run_job(b, job, Path(tmp))
        if results["error"]:
            raise HwgenError(f"the fast mode's profile-training run failed: {results['error']}")

    return simrunner.Training(key, run)


def fast_job(regions: int) -> dict:
    """The job fields of a fast-mode run (sim/engine_tb.py) on a build with `regions` region counters."""
    return {"memory": "hdl", "fastmem_regions": regions}


def check_expected_shape(graph, images: int, expected) -> None:
    """The user's expected outputs must have the network's output shape for `images` images: checked
    before a simulation, not after it."""
    want = (images, *graph.node(graph.output).out_shape)
    if expected is not None and np.asarray(expected).shape != want:
        raise HwgenError(f"expected outputs: shape {np.asarray(expected).shape}, the network gives {want}")


def run_network(engine, inputs: np.ndarray, labels, *, sim: str = "verilator", seed: int = 0,
                timing: str = "hostile", layers: list[str] | None = None, waves: Path | None = None,
                workdir: Path, cache_dir: Path | None = None, progress: bool = False,
                expected: np.ndarray | None = None, mode: str = "reference", opt: str | None = None,
                profile: bool | None = None) -> SimReport:
    """Simulate `engine` (a `hwgen.sim_target.EngineTarget`) on `inputs`; compare with the reference
    (and with `expected`, the user's integer outputs, when given).

    `mode` "reference" serves the engine from the cocotb DRAM model (sim/dram.py); "fast" from the
    same model as HDL inside the simulator (sim/fast_bench.py): same outputs, bytes and cycles; `opt`
    its C++ optimization (see `build`)."""
    from sim.dram import BusTiming

    from . import reference
    from .ir import effectual_macs

    if timing not in TIMINGS:
        raise HwgenError(f"unknown bus timing '{timing}' (choose from {', '.join(TIMINGS)})")
    if mode not in MODES:
        raise HwgenError(f"unknown simulation mode '{mode}' (choose from {', '.join(MODES)})")
    graph = engine.graph
    check_expected_shape(graph, len(inputs), expected)
    names = [lay.name for lay in engine.layers]
    if layers:
        unknown = [n for n in layers if n not in names]
        if unknown:
            raise HwgenError(f"no engine layer named {', '.join(unknown)} (engine layers: {', '.join(names)})")
        names = [n for n in names if n in layers]
    chosen = [lay for lay in engine.layers if lay.name in names]
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    inputs_path = workdir / "inputs.npy"
    np.save(inputs_path, np.asarray(inputs, dtype=np.int64), allow_pickle=False)
    predicted_cycles = max([lay.cycles_predicted or 0 for lay in chosen] + [0])
    net = {"checkpoint": str(engine.checkpoint), "inputs": str(inputs_path), "bus_bits": engine.params['bus_bits'],
           "act_bits": engine.params['act_bits'],
           "timeout": max(TIMEOUT_MIN, TIMEOUT_FACTOR * predicted_cycles), "progress": str(workdir / "progress.txt"),
           "layers": {lay.name: {"desc_addr": lay.desc_addr, "in_addr": lay.in_addr, "out_addr": lay.out_addr}
                      for lay in chosen}}
    job = simrunner.make_job(bus_bits=engine.params['bus_bits'], dram_size=engine.dram_size, ports=engine.ports,
                             timing=BusTiming.profile(timing, seed).as_dict(),
                             regions=engine.regions, preload=[{"addr": 0, "file": str(engine.image_path)}],
                             host=HOST_PROGRAM, network=net, interface=engine.interface,
                             axi_dir=str(engine.gen_dir) if engine.interface == "axi" else None)
    wall = time.perf_counter()
    # the whole network's reference, for the logits, computed while the simulator runs (its numpy
    # kernels release the GIL): after the last layer it would add its time to the wall time
    with ThreadPoolExecutor(1) as pool:
        pending_logits = pool.submit(reference.run, graph, inputs)
        if progress:
            print(f"compiling the engine ({mode} mode) with {sim} (kept in a cache: only the first run of a design "
                  f"waits)", file=sys.stderr, flush=True)
        b, mode_fields = build(engine, mode, sim=sim, waves=simrunner.waves_format(waves) if waves else None,
                               cache_dir=cache_dir, opt=opt, profile=profile)
        job.update(mode_fields)
        with _Progress(workdir / "progress.txt", len(chosen) * len(inputs), progress):
            results = simrunner.run_job(b, job, workdir, waves_file=waves)
        ref_logits = pending_logits.result()
    wall = time.perf_counter() - wall

    host = results["host"]
    lanes = engine.params['m_lanes'] * engine.params['x_lanes']
    by_name = {}
    for lay in chosen:
        node = graph.node(lay.name)
        by_name[lay.name] = LayerResult(lay.name, lanes=lanes, effectual_macs=effectual_macs(graph, node),
                                        dram_bytes_predicted=sum(lay.bytes_predicted.values()),
                                        dram_bytes_compulsory=lay.bytes_compulsory,
                                        tensor_bytes_predicted=dict(lay.bytes_predicted),
                                        cycles_predicted=lay.cycles_predicted)
    for img in host["images"]:
        for name, run in img["layers"].items():
            lr = by_name[name]
            if run["error"]:
                lr.error = run["error"]
                continue
            lr.images += 1
            lr.mismatches += run["mismatches"]
            if run["notes"] and not lr.notes:
                lr.notes = [f"image {lr.images - 1}: {n}" for n in run["notes"]]
            lr.cycles_all.append(run["cycles"])
            if lr.images == 1:
                lr.cycles = run["cycles"]
                lr.traffic = run["traffic"]
                lr.counters = run.get("counters", {})
                lr.dram_bytes_measured = sum(t["read_bytes"] + t["write_bytes"] for t in run["traffic"].values())
                lr.tensor_bytes_measured = _own_tensor_bytes(name, run["traffic"])
    for lr in by_name.values():
        lr.utilization = lr.effectual_macs / (lanes * lr.cycles) if lr.cycles else 0.0

    done = [img for img in host["images"] if img["logits"] is not None]
    eng_logits = np.asarray([img["logits"] for img in done], dtype=np.int64).reshape(len(done), *ref_logits.shape[1:])
    logit_mismatches = int(np.count_nonzero(eng_logits != ref_logits[:len(done)])) + \
        int(np.prod(ref_logits.shape[1:])) * (len(inputs) - len(done))
    expect_mismatches = None
    if expected is not None:
        expected = np.asarray(expected)
        expect_mismatches = int(np.count_nonzero(eng_logits != expected[:len(done)])) + \
            int(np.prod(ref_logits.shape[1:])) * (len(inputs) - len(done))
    flat = lambda a: a.reshape(len(a), -1)  # noqa: E731
    return SimReport(sim=sim, seed=seed, timing=timing, images=len(inputs), layers=list(by_name.values()),
                     logits_match=logit_mismatches == 0, logit_mismatches=logit_mismatches,
                     engine_top1=[int(v) for v in flat(eng_logits).argmax(1)] if len(done) else [],
                     reference_top1=[int(v) for v in flat(ref_logits).argmax(1)],
                     labels=None if labels is None else [int(v) for v in labels],
                     wall_seconds=wall, cycles_simulated=int(results.get("cycles_simulated", 0)),
                     error=host.get("aborted"), expect_mismatches=expect_mismatches, mode=mode,
                     sim_cpu_seconds=float(results.get("cpu_seconds", 0.0)))


def simulate(gen_dir, *, images: int = 4, layers: list[str] | None = None, seed: int = 0, sim: str = "verilator",
             timing: str = "hostile", waves: Path | None = None, checkpoint: Path | None = None,
             workdir: Path | None = None, cache_dir: Path | None = None, progress: bool = False,
             inputs: np.ndarray | None = None, expected: np.ndarray | None = None,
             mode: str = "reference") -> SimReport:
    """Verify the engine `hwgen generate` wrote to `gen_dir` on `images` inputs (see module doc).

    `checkpoint` is the quantized graph the engine was generated from, if the folder lacks one.
    `inputs` (the user's images, float or integer, see `hwgen.quantize.integer_inputs`) replace the
    sampled ones; `expected` are integer outputs the engine's must also equal.
    """
    from .quantize import integer_inputs
    from .sim_target import load_generated

    engine = load_generated(gen_dir, checkpoint)
    if inputs is None:
        x, labels = sample_inputs(engine.graph, images, seed)
    else:
        x, labels = integer_inputs(engine.graph, inputs, "--input"), None
    return run_network(engine, x, labels, sim=sim, seed=seed, timing=timing, layers=layers, waves=waves,
                       workdir=workdir or Path(gen_dir) / "sim", cache_dir=cache_dir, progress=progress,
                       expected=expected, mode=mode)


def write_json(report: SimReport | ChainReport, path: Path) -> None:
    Path(path).write_text(json.dumps(report.to_json(), indent=1, sort_keys=True) + "\n")




def chain_regions(net: dict) -> list[dict]:
    """The DRAM regions of a network image (manifest `network`): the chain's descriptors, the weights
    and tables, and each tensor (a fused ReLU shares its producer's region, counted once)."""
    from .engine.descriptor import DESCRIPTOR_BYTES

    chain_bytes = int(net["count"]) * DESCRIPTOR_BYTES
    out = [{"name": "chain.descriptors", "base": 0, "size": chain_bytes}]
    if int(net["image_bytes"]) > chain_bytes:
        out.append({"name": "chain.weights_tables", "base": chain_bytes, "size": int(net["image_bytes"]) - chain_bytes})
    seen = set()
    for name, t in net["tensors"].items():
        if int(t["addr"]) not in seen:
            seen.add(int(t["addr"]))
            out.append({"name": f"{name}.map", "base": int(t["addr"]), "size": int(t["bytes"])})
    return out


@dataclass
class ChainImage:
    """One image run from one start: the bench's count, the AXI-Lite counters and the checks."""
    cycles: int
    counters: dict | None  # the AXI top's performance counters, read over AXI-Lite (None: the fast mode has none)
    monitor_bytes: int  # bytes the memory model saw (the AXI protocol monitor's in the reference mode), every region
    bytes_predicted: int  # the manifest's, from the schedules and the network ops (one fact, one place)
    mac_active_predicted: int  # cycles the MAC array issues a step: the schedules' `mac_active`, summed
    node_mismatches: dict  # node -> elements of its output map that differ from the reference's
    output_equal: bool  # the network's output (the logits) equal to the reference's
    expect_equal: bool | None = None  # with --expect: equal to the user's outputs
    error: str | None = None  # protocol violation, counter/bench difference, hang, driver error

    @property
    def counter_bytes(self) -> int | None:
        if self.counters is None:
            return None
        return int(self.counters.get("BYTES_READ", 0)) + int(self.counters.get("BYTES_WRITTEN", 0))

    @property
    def counters_agree(self) -> bool:
        """BUSY_CYCLES = the bench's count, counter bytes = monitor bytes, MAC_ACTIVE = the model's."""
        c = self.counters
        return c is None or (c.get("BUSY_CYCLES") == self.cycles and self.counter_bytes == self.monitor_bytes
                             and c.get("MAC_ACTIVE") == self.mac_active_predicted)

    @property
    def passed(self) -> bool:
        return (self.error is None and self.output_equal and self.expect_equal is not False
                and not any(self.node_mismatches.values()) and self.counters_agree
                and self.monitor_bytes == self.bytes_predicted)


@dataclass
class ChainReport:
    """The whole network from one start per image (`hwgen simulate --chain`)."""
    sim: str
    seed: int
    timing: str
    mode: str  # "reference": the AXI top on cocotbext-axi; "fast": the chain behind the stream bus, HDL memory
    requested: int  # images asked for; fewer in `images` when a run aborted
    chain: list[str]  # the nodes the descriptors run, in order
    host_layers: list[str]
    images: list[ChainImage]
    engine_top1: list[int]
    reference_top1: list[int]
    labels: list[int] | None
    wall_seconds: float
    cpu_seconds: float
    aborted: str | None = None

    @property
    def passed(self) -> bool:
        return self.aborted is None and len(self.images) == self.requested and all(i.passed for i in self.images)

    def to_json(self) -> dict:
        return {"sim": self.sim, "mode": self.mode, "seed": self.seed, "timing": self.timing, "passed": self.passed,
                "aborted": self.aborted, "chain": self.chain, "host_layers": self.host_layers,
                "images": [dict(vars(i), counter_bytes=i.counter_bytes, counters_agree=i.counters_agree, passed=i.passed)
                           for i in self.images],
                "engine_top1": self.engine_top1, "reference_top1": self.reference_top1, "labels": self.labels,
                "wall_seconds": self.wall_seconds, "sim_cpu_seconds": self.cpu_seconds}


def simulate_chain(gen_dir, *, images: int = 4, seed: int = 0, sim: str = "verilator", timing: str = "hostile",
                   checkpoint: Path | None = None, workdir: Path | None = None, cache_dir: Path | None = None,
                   inputs: np.ndarray | None = None, expected: np.ndarray | None = None,
                   mode: str = "reference") -> ChainReport:
    """Run the network `hwgen generate --interface axi` wrote to `gen_dir` from one start per image
    (`run_chain`) and check each image: every node's map and the logits against the reference (and
    `expected`), the bytes moved against the manifest's prediction, and in the reference mode the
    AXI-Lite counters: BUSY_CYCLES against the bench's count, bytes against the monitor's, MAC_ACTIVE
    against the schedule model's."""
    from . import reference
    from .quantize import integer_inputs
    from .sim_target import load_generated

    target = load_generated(gen_dir, checkpoint)
    if inputs is None:
        x, labels = sample_inputs(target.graph, images, seed)
    else:
        x, labels = integer_inputs(target.graph, inputs, "--input"), None
    check_expected_shape(target.graph, len(x), expected)
    wall = time.perf_counter()
    # the logits' reference computed while the simulator runs, as in run_network
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(reference.run, target.graph, x)
        host = run_chain(target, x, sim=sim, seed=seed, timing=timing, workdir=workdir or Path(gen_dir) / "sim-chain",
                         cache_dir=cache_dir, mode=mode)
        want = pending.result()
    wall = time.perf_counter() - wall
    net = json.loads((target.gen_dir / "manifest.json").read_text())["network"]
    done = []
    for i, img in enumerate(host["images"]):
        run, out = img["run"], img["output"]
        got = None if out is None else np.asarray(out, dtype=np.int64).reshape(want.shape[1:])
        done.append(ChainImage(
            cycles=int(run["cycles"]), counters=dict(run["counters"]) if mode == "reference" else None,
            monitor_bytes=sum(r["read_bytes"] + r["write_bytes"] for r in run["traffic"].values()),
            bytes_predicted=int(net["bytes_total"]), mac_active_predicted=int(net["mac_active"]),
            node_mismatches={n: int(v["mismatches"]) for n, v in img["nodes"].items()},
            output_equal=got is not None and np.array_equal(got, want[i]),
            expect_equal=None if expected is None or got is None else bool(np.array_equal(got, expected[i])),
            error=run["error"]))
    flat = lambda a: np.asarray(a).reshape(len(a), -1)  # noqa: E731
    outputs = [img["output"] for img in host["images"] if img["output"] is not None]
    return ChainReport(sim=sim, seed=seed, timing=timing, mode=mode, requested=len(x), chain=list(net["chain"]),
                       host_layers=list(net["host_layers"]), images=done,
                       engine_top1=[int(v) for v in flat(outputs).argmax(1)] if outputs else [],
                       reference_top1=[int(v) for v in flat(want).argmax(1)],
                       labels=None if labels is None else [int(v) for v in labels],
                       wall_seconds=wall, cpu_seconds=float(host["cpu_seconds"]), aborted=host["aborted"])


def run_chain(engine, inputs: np.ndarray, *, sim: str = "verilator", seed: int = 0, timing: str = "hostile",
              workdir: Path, cache_dir: Path | None = None, timeout: int | None = None, mode: str = "reference") -> dict:
    """The whole network from one start per image on an `--interface axi` engine whose folder holds
    a network image (manifest `network`): the host program `sim.engine_host.chain_host`'s results
    (per image: the run's cycles, counters, traffic per region and error; per node, mismatches
    against the reference; the output map), the simulator's CPU seconds and the cycles it simulated.

    `mode` "reference": the AXI top, its registers through the generated driver, cocotbext-axi's
    AxiRam (sim/axi_bench.py); "fast": the same engine and network-op unit walking the same chain
    behind the stream bus (`generate.chain_shell_sources`) inside the HDL DRAM model
    (sim/fast_bench.py), the driver moving memory only: the AXI adapters, registers and counters
    are not in it (a run has no `counters`)."""
    from sim.dram import BusTiming

    if engine.interface != "axi":
        raise HwgenError("a whole network from one start needs an engine generated with --interface axi")
    if timing not in TIMINGS:
        raise HwgenError(f"unknown bus timing '{timing}' (choose from {', '.join(TIMINGS)})")
    if mode not in MODES:
        raise HwgenError(f"unknown simulation mode '{mode}' (choose from {', '.join(MODES)})")
    manifest = json.loads((engine.gen_dir / "manifest.json").read_text())
    net = manifest.get("network") or {"error": "no network image"}
    if "error" in net:
        raise HwgenError(f"this engine cannot run the whole network from one start: {net['error']}")
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    inputs_path = workdir / "inputs.npy"
    np.save(inputs_path, np.asarray(inputs, dtype=np.int64), allow_pickle=False)
    if timeout is None:  # a hang, not a slow run: the convs' predicted cycles and a cycle per op beat, with margin
        bus_bytes = engine.params["bus_bits"] // 8
        predicted = sum(lay.cycles_predicted or 0 for lay in engine.layers) + int(net["bytes_total"]) // bus_bytes
        timeout = max(TIMEOUT_MIN, TIMEOUT_FACTOR * predicted)
    chain = dict(net, checkpoint=str(engine.checkpoint), inputs=str(inputs_path), timeout=timeout,
                 bus_bits=engine.params["bus_bits"], act_bits=engine.params["act_bits"])
    bb = engine.params["bus_bits"] // 8
    dram_size, regions = -(-int(net["size"]) // bb) * bb, chain_regions(net)
    job = simrunner.make_job(bus_bits=engine.params["bus_bits"], dram_size=dram_size,
                             ports=engine.ports, timing=BusTiming.profile(timing, seed).as_dict(),
                             regions=regions,
                             preload=[{"addr": 0, "file": str(engine.gen_dir / manifest["files"]["network_image"])}],
                             host=CHAIN_HOST_PROGRAM, chain=chain, interface="axi", axi_dir=str(engine.gen_dir))
    if mode == "fast":
        if sim != "verilator":
            raise HwgenError(f"the fast mode runs on Verilator, not {sim}")
        b, fields = _fast_chain_build(engine, manifest, dram_size, len(regions), cache_dir)
        job.update(fields, chain_count=int(net["count"]))
    else:
        b, _ = build(engine, "reference", sim=sim, cache_dir=cache_dir)
    results = simrunner.run_job(b, job, workdir)
    return dict(results["host"] or {"images": [], "aborted": results.get("error")},
                cpu_seconds=float(results.get("cpu_seconds", 0.0)), cycles_simulated=int(results.get("cycles_simulated", 0)))


def _fast_chain_build(engine, manifest: dict, dram_size: int, n_regions: int, cache_dir) -> tuple[simrunner.Build, dict]:
    """The fast mode's program of the folder's whole network (its engine Verilog, a `ChainShell` of
    the manifest's chain length and network-op unit) and the job fields it needs."""
    from .engine import EngineParams, network
    from .generate import CHAIN_TOP_MODULE, chain_shell_sources
    from .sim_target import fast_verilog

    p = manifest["params"]
    layout = EngineParams(bus_bits=int(p["bus_bits"]), act_bits=int(p["act_bits"]))  # what NetOps and the ports read
    unit = network.netop_unit(engine.graph, layout)
    got = (list(unit.ops) if unit else [], unit.chunk if unit else None)
    want = (manifest["interface"]["netops"], manifest["interface"]["netops_chunk"])
    if got != want:
        raise HwgenError(f"the folder's network-op unit ({want}) is not its checkpoint's ({got})")
    files = manifest["files"]
    sources = {name: text for name, text in engine.sources.items() if name != files["top"]}
    sources.update(chain_shell_sources(layout, unit, int(manifest["network"]["count"])))
    sources, regions = fast_verilog(sources, CHAIN_TOP_MODULE, layout.bus_bits, dram_size, n_regions)
    return build_fast(sources, cache_dir=cache_dir), fast_job(regions)
