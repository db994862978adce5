"""What a simulation of the engine needs to know: the Verilog, the DRAM image and where each layer lives.

An `EngineTarget` is read from a folder `hwgen generate` wrote (`load_generated`: its manifest.json
names the Verilog files, the DRAM image, each layer's addresses and the schedule model's predicted
cycles; the predicted DRAM bytes are the generic analytical model's, from the folder's arch.yaml
and mapping.yaml); `from_graph` runs `hwgen generate` on a quantized graph first (tests and
benchmarks of single layers with chosen engine parameters). The simulated top level is the
generated `hwgen_top` shell around the engine, so the shipped files are what is verified.

DRAM regions are named `<layer>.<tensor>` with the tensor names of the schedule model
(descriptor, weights, tables, inputs, outputs), so measured traffic is compared with the
prediction tensor by tensor.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from . import simrunner
from .engine.params import DEFAULT_PIPELINE
from .errors import HwgenError

DESCRIPTOR_BYTES = 64  # hwgen.engine.descriptor.DESCRIPTOR_BYTES, without importing Amaranth
# The hwgen_top shell's ports (rtl_templates/hwgen_top.v), by the DRAM model's logical names.
TOP_PORTS = {"req_valid": "req_valid", "req_ready": "req_ready", "req_addr": "req_addr", "req_len": "req_len",
             "req_write": "req_write", "rd_valid": "rd_valid", "rd_ready": "rd_ready", "rd_data": "rd_data",
             "wr_valid": "wr_valid", "wr_ready": "wr_ready", "wr_data": "wr_data"}


@dataclass
class EngineLayer:
    name: str
    desc_addr: int
    in_addr: int
    out_addr: int
    bytes_predicted: dict  # tensor -> bytes: the generic analytical model's, from arch.yaml + mapping.yaml
    cycles_predicted: int
    bytes_compulsory: int | None  # the analysis's lower bound (each tensor once in its smallest format)


@dataclass
class EngineTarget:
    graph: object  # hwgen.ir.Graph, quantized
    checkpoint: Path  # the graph as .hwq, for the host program inside the simulator
    params: dict  # the manifest's engine parameters (m_lanes, x_lanes, bus_bits, ...)
    sources: dict[str, str]  # Verilog file name -> text
    toplevel: str
    image_path: Path  # initialized DRAM contents from address 0
    dram_size: int
    regions: list[dict]
    ports: dict  # sim.dram port map of the top level
    layers: list[EngineLayer]
    interface: str = "stream"  # "axi": the AXI top, driven by sim/axi_bench.py through the generated driver
    gen_dir: Path | None = None


FAST_TOP = "hwgen_fastmem"  # the fast mode's top level: the DRAM model as HDL around the shell
FAST_TEMPLATE = "hwgen_fastmem.v"
FAST_DEPTH = 16  # requests the HDL memory holds open per direction (the most max_outstanding can be)
FAST_LAT_THRESHOLDS = 63  # read latencies drawn from spans of up to 64 cycles
FAST_MAIN = "hwgen_fastsim.cpp"  # its main loop: the clock in C++, Python through a pipe (sim/fast_bench.py)
# The C++ optimization of the model's per-cycle code. The wheel's verilated.mk uses -Os; -O2 takes a
# fifth off the CPU time of a ResNet-18 CIFAR image (25.7 s instead of 31.9 s, same build time).
FAST_OPT = "-O2"
# Profile-guided optimization (gcc's, hwgen.simrunner.Training) of a network's fast-mode program at
# FAST_OPT: built instrumented, run on the network's first layers up to this many predicted cycles,
# built again with the profile; only for networks of FAST_PROFILE_MIN_CYCLES an image or more (a
# ResNet-18 CIFAR image is 16 M; one 64->64 layer at 32x32, 1 M, would train on all of itself).
FAST_TRAIN_CYCLES = 1_000_000
FAST_PROFILE_MIN_CYCLES = 4 * FAST_TRAIN_CYCLES
# A randomized campaign builds one engine per case and simulates it for a few 100 k cycles: -O1
# compiles in 60 % of -O2's CPU time and simulates about a fifth slower, a net gain per case.
FAST_OPT_CAMPAIGN = "-O1"


# Verilator options of the fast mode's program. The variables Verilog leaves uninitialized start at 0,
# as they do in every build here (the default `--x-initial unique` draws them from
# +verilator+rand+reset, 0 unless given); stated, the model's constructor stores zeros instead of
# calling the random-reset function per element (36 M instructions per program start on the ResNet-18
# CIFAR engine's memory, callgrind).
FAST_VERILATOR_ARGS = ("--x-initial", "0")


def fast_make_vars(opt: str | None = None) -> tuple[str, ...]:
    """Make variables of the fast mode's C++ build: one translation unit, like every Verilator
    build here (`simrunner.ONE_UNIT`), at `opt` (default FAST_OPT)."""
    return (f"OPT_FAST={opt or FAST_OPT}", simrunner.ONE_UNIT)


def _pow2_bits(n: int, least: int) -> int:
    return max(least, (int(n) - 1).bit_length())


def fast_verilog(sources: dict[str, str], shell: str, bus_bits: int, dram_size: int, n_regions: int) -> tuple[dict[str, str], int]:
    """`sources` plus `hwgen_fastmem.v` around their module `shell` (with `hwgen_top`'s ports), for a
    DRAM of `dram_size` bytes with `n_regions` named regions; and the number of region counters.

    Memory depth and counters are rounded up to powers of two, so networks of similar size on the
    same engine configuration share one build."""
    from . import templates

    if n_regions >= 1 << 16:
        raise HwgenError(f"{n_regions} DRAM regions: the fast mode's region map numbers at most 65,535")
    regions = 1 << _pow2_bits(n_regions + 1, 6)
    text = templates.fill(FAST_TEMPLATE, TOP=FAST_TOP, ENGINE_TOP=shell, BUS_BITS=bus_bits,
                          BEAT_SHIFT=(bus_bits // 8).bit_length() - 1,
                          WORD_BITS=_pow2_bits(dram_size // (bus_bits // 8), 10), REGIONS=regions,
                          DEPTH=FAST_DEPTH, LAT_THRESHOLDS=FAST_LAT_THRESHOLDS)
    return dict(sources, **{FAST_TEMPLATE: text}), regions


def fast_top(engine: "EngineTarget") -> tuple[dict[str, str], int]:
    """The fast mode's Verilog of `engine` (see `fast_verilog`)."""
    if engine.interface != "stream":
        raise HwgenError(f"the fast mode simulates the stream top, not the {engine.interface} one")
    return fast_verilog(engine.sources, engine.toplevel, engine.params["bus_bits"], engine.dram_size,
                        len(engine.regions))


CHECKPOINT_FILE = "model.hwq"  # where `hwgen generate` saves the checkpoint (manifest "checkpoint")


def _regions(layers: list[dict]) -> list[dict]:
    out = []
    for lay in layers:
        for tensor, base, size in (("descriptor", lay["descriptor_addr"], DESCRIPTOR_BYTES),
                                   ("weights", lay["weights"]["addr"], lay["weights"]["bytes"]),
                                   ("tables", lay["table"]["addr"], lay["table"]["bytes"]),
                                   ("inputs", lay["input"]["addr"], lay["input"]["bytes"]),
                                   ("outputs", lay["output"]["addr"], lay["output"]["bytes"])):
            out.append({"name": f"{lay['name']}.{tensor}", "base": int(base), "size": int(size)})
    return out


def from_graph(graph, out_dir: Path, *, m_lanes: int = 4, x_lanes: int = 4, bus_bits: int = 64,
               glb_kib: int | None = None, dense_only: bool = False, interface: str = "stream",
               pipeline: int = DEFAULT_PIPELINE, dsp: str = "fabric") -> EngineTarget:
    """`hwgen generate` for a quantized graph into `out_dir` (which saves the graph there too)."""
    from .generate import generate

    generate(graph, out_dir, m_lanes=m_lanes, x_lanes=x_lanes, bus_bits=bus_bits, glb_kib=glb_kib,
             dense_only=dense_only, interface=interface, pipeline=pipeline, dsp=dsp)
    return load_generated(out_dir)


def _find_checkpoint(gen_dir: Path, manifest: dict, override) -> Path:
    if override is not None:
        return Path(override).resolve()
    named = manifest.get("checkpoint")
    for cand in ([gen_dir / named] if named else []) + [gen_dir / CHECKPOINT_FILE]:
        if cand.exists():
            return cand
    raise HwgenError(f"'{gen_dir}' holds no checkpoint ({CHECKPOINT_FILE}) to compare the engine with; "
                     "pass the quantized checkpoint it was generated from with --checkpoint")


def generic_prediction(graph, arch: Path, mapping: Path) -> dict[str, dict]:
    """Per engine layer, the DRAM bytes per region the generic workload x architecture x mapping model
    predicts from the folder's arch.yaml and mapping.yaml (computed apart from the engine compiler)."""
    from .analysis import analyze
    from .engine.describe import region_bytes

    result = analyze(graph, arch=str(arch), mapping=str(mapping))
    return {r.layer.name: region_bytes(r.dram_bytes) for r in result.layers}


def load_generated(gen_dir, checkpoint_path=None) -> EngineTarget:
    """The target `hwgen generate` wrote to `gen_dir` (its manifest.json names every file)."""
    from . import checkpoint

    gen_dir = Path(gen_dir).resolve()  # the simulator runs in its own folder: every path absolute
    manifest_path = gen_dir / "manifest.json"
    try:
        manifest = json.loads(manifest_path.read_text())
        files, params_j, layers_j = manifest["files"], manifest["params"], manifest["layers"]
        for key in ("arch", "mapping"):
            if not (gen_dir / files[key]).is_file():
                raise FileNotFoundError(2, "missing", files[key])
        top = manifest["modules"]["top"]
        params = {k: int(params_j[k]) for k in ("m_lanes", "x_lanes", "bus_bits", "act_bits")}
        # with the models of the vendor cells the engine instantiates (`hwgen generate --dsp ecp5`)
        sources = {files[k]: (gen_dir / files[k]).read_text() for k in ("sram", "engine", "top", "dsp_model")
                   if k in files}
        layers = [EngineLayer(lay["name"], int(lay["descriptor_addr"]), int(lay["input"]["addr"]),
                              int(lay["output"]["addr"]), {k: int(v) for k, v in lay["schedule"]["bytes"].items()},
                              int(lay["schedule"]["cycles"]),
                              int(lay["compulsory_bytes"]) if "compulsory_bytes" in lay else None) for lay in layers_j]
        regions = _regions(layers_j)
        dram_size = int(manifest["dram"]["size"])
        image_path = gen_dir / files["image"]
        interface = manifest.get("interface", {}).get("kind", "stream")
    except FileNotFoundError as e:
        raise HwgenError(f"'{gen_dir}' is not a complete `hwgen generate` folder: {Path(e.filename).name} is missing") from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise HwgenError(f"'{manifest_path}': not a manifest hwgen simulate can read ({type(e).__name__}: {e})") from None
    ckpt = _find_checkpoint(gen_dir, manifest, checkpoint_path)
    graph = checkpoint.load(ckpt)
    missing = [lay.name for lay in layers if lay.name not in {n.name for n in graph.nodes}]
    if missing:
        raise HwgenError(f"checkpoint '{ckpt}' has no layer {', '.join(missing)} of the generated engine")
    predicted = generic_prediction(graph, gen_dir / files["arch"], gen_dir / files["mapping"])
    for lay in layers:
        lay.bytes_predicted = predicted[lay.name]
    if int(manifest.get("descriptor", {}).get("bytes", DESCRIPTOR_BYTES)) != DESCRIPTOR_BYTES:
        raise HwgenError(f"'{manifest_path}': descriptors of {manifest['descriptor']['bytes']} bytes are not supported")
    bb = params["bus_bits"] // 8
    return EngineTarget(graph, ckpt, params, sources, top, image_path, -(-dram_size // bb) * bb, regions,
                        TOP_PORTS, layers, interface, gen_dir)
