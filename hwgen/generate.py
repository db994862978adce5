"""`hwgen generate`'s Python API: a quantized graph in, the specialized engine and its files out.

`generate(graph, out_dir, ...)` plans every conv layer for the engine (refusing, by name, layers
it cannot run), sizes the engine to the checkpoint (accumulator width, buffers, pattern ROM),
and writes into `out_dir`:
  - `hwgen_engine.v`  the Amaranth engine as Verilog (module `hwgen_engine`);
  - `hwgen_top.v`     the top-level shell with clean port names (from rtl_templates/);
  - `hwgen_sram_1r1w.v` the behavioural SRAM the engine instantiates (swap it for a macro);
  - `dram_image.bin`  descriptors, packed weights and bias/requant tables, from address 0;
  - `manifest.json`   parameters, derived widths, address map, per-layer addresses and layouts;
  - `hwgen_engine.core` a FuseSoC CAPI2 core of the three Verilog files;
  - `lint_waivers.vlt` Verilator waivers for the generated engine file only;
  - `model.hwq`       the quantized checkpoint itself, so the folder is all `hwgen simulate` needs;
  - `arch.yaml`, `mapping.yaml`  the engine and each layer's loop nest in the generic analytical
                      model's terms (`hwgen analyze model.hwq --arch arch.yaml --mapping mapping.yaml`
                      predicts the DRAM bytes `hwgen simulate` measures);
  resource counts from Yosys go into the manifest with `synth=`.
With `dsp="ecp5"` the multipliers are MULT18X18D instances (`hwgen.gateware.dsp`) and the folder also
holds `hwgen_mult18x18d.v`, the cell's behavioural model for simulators (manifest `files.dsp_model`;
synthesis uses the real cell, so it is not in the FuseSoC core's files).
With `interface="axi"` the top is the AXI engine top instead (`hwgen.gateware.axi_top`, Amaranth:
`m_axi_*`, `s_axil_*`, `irq`), and the register map is written as `registers.json`,
`driver/hwgen_regs.h` and `driver/hwgen_regs.py` (`hwgen.engine.registers`); a graph with residual
adds or pools gets the network-op unit in that top, and when every node runs in hardware,
`network_image.bin`: the whole network as one descriptor chain (`hwgen.engine.network`, manifest
`network`; otherwise `network.error` says which node does not).
Every file is a pure function of the graph and the parameters: same inputs, same bytes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from . import __version__, checkpoint, templates
from .errors import HwgenError
from . import engine
from .engine import EngineBuild, EngineConfig, EngineParams, describe, descriptor, network
from .engine.params import DEFAULT_PIPELINE
from .analysis.engine import engine_compulsory
from .analysis.workload import layer_from_node
from .gateware.sram import MODULE as SRAM_MODULE
from .gateware.dsp import MODEL as DSP_MODEL

ENGINE_MODULE = "hwgen_engine"
TOP_MODULE = "hwgen_top"
FILES = {
    "engine": "hwgen_engine.v",
    "top": "hwgen_top.v",
    "sram": "hwgen_sram_1r1w.v",
    "image": "dram_image.bin",
    "manifest": "manifest.json",
    "core": "hwgen_engine.core",
    "waivers": "lint_waivers.vlt",
    "checkpoint": "model.hwq",
    "arch": "arch.yaml",
    "mapping": "mapping.yaml",
}
AXI_FILES = {
    "registers": "registers.json",
    "c_header": "driver/hwgen_regs.h",
    "py_regs": "driver/hwgen_regs.py",
    "run_layer": "driver/run_layer.py",
}
INTERFACES = ("stream", "axi")
NETWORK_IMAGE = "network_image.bin"


def engine_verilog(params: EngineParams) -> str:
    from amaranth.back import verilog

    from .gateware.engine import Engine

    return verilog.convert(Engine(params), name=ENGINE_MODULE, emit_src=False)


def _core(name: str, sim_models: tuple[str, ...] = ()) -> str:
    """The FuseSoC core; `sim_models`: models of vendor cells the engine instantiates, for the lint
    target (and simulators) only: synthesis gets the real cells."""
    files = "\n".join(f"      - {FILES[k]}" for k in ("sram", "engine", "top"))
    models = "".join(f"      - {f}\n" for f in sim_models)
    return (
        "CAPI=2:\n"
        f"name: hwgen:generated:{name}:{__version__}\n"
        "description: hwgen periodic-sparse convolution engine (generated; see manifest.json)\n"
        "filesets:\n"
        "  rtl:\n"
        "    files:\n"
        f"{files}\n"
        "    file_type: verilogSource\n"
        "  waivers:\n"
        "    files:\n"
        f"      - {FILES['waivers']}\n"
        "    file_type: vlt\n"
        + (f"  sim_models:\n    files:\n{models}    file_type: verilogSource\n" if sim_models else "")
        + "targets:\n"
        "  default:\n"
        "    filesets: [rtl]\n"
        f"    toplevel: {TOP_MODULE}\n"
        "  lint:\n"
        "    default_tool: verilator\n"
        f"    filesets: [rtl, {'sim_models, ' if sim_models else ''}waivers]\n"
        "    tools:\n"
        "      verilator:\n"
        "        mode: lint-only\n"
        "        verilator_options: [-Wall]\n"
        f"    toplevel: {TOP_MODULE}\n"
    )


# Each waiver names the warning and the generated module it applies to, and why it is harmless.
WAIVERS = [
    ("UNUSEDSIGNAL", "Amaranth names every intermediate net; consumers often read a slice of a bus"),
    ("WIDTHEXPAND", "Amaranth's operators extend operands explicitly by its own rules; Yosys's Verilog keeps "
                    "the narrower operand"),
    ("WIDTHTRUNC", "Amaranth's assignments truncate by definition"),
    ("PROCASSINIT", "Amaranth gives every register an initial value and also resets it synchronously"),
    ("CASEINCOMPLETE", "Amaranth's FSMs decode only the states that exist; the state register holds no other"),
    ("DECLFILENAME", "Amaranth writes the engine's submodules into the engine's file"),
]


def _waivers(amaranth_files: list[str]) -> str:
    lines = ["`verilator_config",
             f"// Lint waivers (-Wall) for the files Amaranth emits only ({', '.join(amaranth_files)}).",
             "// The hand-written templates are lint-clean without waivers."]
    for rule, why in WAIVERS:
        lines.append(f"// {rule}: {why}")
        lines += [f'lint_off -rule {rule} -file "*{name}"' for name in amaranth_files]
    return "\n".join(lines) + "\n"


def build_id(engine_text: str, image: bytes) -> int:
    """The BUILD_ID register: the first 32 bits of a hash of the engine's Verilog and DRAM image."""
    import hashlib

    return int.from_bytes(hashlib.sha256(engine_text.encode() + b"\0" + image).digest()[:4], "big")


def axi_top_verilog(params: EngineParams, *, id_bits: int, build: int, config: dict,
                    unit: network.NetopUnit | None = None) -> str:
    """The AXI top around the `hwgen_engine` instance (configuration registers `config`); with
    `unit`, the network-op unit too, built with its ops only."""
    from amaranth.back import verilog

    from .gateware.axi_top import AxiTop, EngineInstance
    from .gateware.netops import NetOps

    netops = None if unit is None else NetOps(params, unit.chunk, unit.ops, unit.logits)
    top = AxiTop(EngineInstance(params, ENGINE_MODULE), bus_bits=params.bus_bits, id_bits=id_bits, build_id=build,
                 config=config, netops=netops)
    return verilog.convert(top, name=TOP_MODULE, emit_src=False)


CHAIN_SHELL_MODULE = "hwgen_chain"  # the fast mode's whole-network top (`chain_shell_sources`)
CHAIN_TOP_MODULE = "hwgen_chain_top"


def chain_shell_sources(params: EngineParams, unit: network.NetopUnit | None, count: int) -> dict[str, str]:
    """Verilog (file name -> text) of a whole network behind the engine's own stream ports, for the
    fast simulation mode: `ChainShell` (the `hwgen_engine` instance and the network-op unit of
    `unit`, `count` descriptors per start) inside the `hwgen_top` shell as CHAIN_TOP_MODULE."""
    from amaranth.back import verilog

    from .gateware.axi_top import EngineInstance
    from .gateware.chain import ChainShell
    from .gateware.netops import NetOps

    netops = None if unit is None else NetOps(params, unit.chunk, unit.ops, unit.logits)
    shell = ChainShell(EngineInstance(params, ENGINE_MODULE), params.bus_bits, netops, count)
    return {f"{CHAIN_SHELL_MODULE}.v": verilog.convert(shell, name=CHAIN_SHELL_MODULE, emit_src=False),
            f"{CHAIN_TOP_MODULE}.v": templates.fill("hwgen_top.v", TOP=CHAIN_TOP_MODULE, ENGINE=CHAIN_SHELL_MODULE,
                                                    BUS_BITS=params.bus_bits)}


def _axi_ports(bus_bits: int, id_bits: int) -> dict:
    from amaranth.hdl import Shape

    from .engine import registers
    from .gateware.axi import axi4_master_members, axil_slave_members

    members = {**axi4_master_members(bus_bits, id_bits), **axil_slave_members(registers.ADDR_BITS)}
    return {"clk": 1, "rst": 1, "irq": 1, **{name: Shape.cast(m.shape).width for name, m in members.items()}}


def _layer_entry(graph, plan: engine.LayerPlan, regs: engine.LayerRegions, table_base: int,
                 params: EngineParams, sched: engine.LayerSchedule) -> dict:
    node = graph.node(plan.name)
    return {
        "name": plan.name,
        "descriptor_addr": regs.descriptor,
        "input": {"addr": regs.input, "bytes": regs.input_bytes, "shape": list(plan.in_shape),
                  "signed": plan.in_signed, "bits": plan.act_bits, "row_beats": engine.row_beats(plan.in_shape[2], params)},
        "output": {"addr": regs.output, "bytes": regs.output_bytes, "shape": list(plan.out_shape),
                   "signed": bool(node.quant.signed), "bits": int(node.quant.act_bits), "lo": plan.lo, "hi": plan.hi,
                   "row_beats": engine.row_beats(plan.out_shape[2], params)},
        "weights": {"addr": regs.weights, "bytes": regs.weight_bytes},
        "table": {"addr": regs.table, "bytes": regs.table_bytes},
        "kernel": plan.kernel,
        "stride": plan.stride,
        "structure": plan.structure,
        "grouping": "residue" if plan.residue_groups else "contiguous",
        "fold": plan.fold,  # 2: the spare x lanes on twice the output channels (docs/engine.md, "Folded layers")
        "period": plan.period,
        "taps": plan.taps,
        "masks": list(plan.masks),
        "table_base": table_base,
        "tiling": {"band_rows": sched.tiling.band_rows, "bands": sched.tiling.bands,
                   "chan_rows": sched.tiling.chan_rows, "rows_per_word": 1 << sched.tiling.slot_shift,
                   "resident_groups": sched.tiling.resident_groups, "prefetch": sched.tiling.prefetch,
                   "double": sched.tiling.double,
                   "band_inputs": [list(r) for r in sched.tiling.band_inputs],
                   "col_beats": sched.tiling.col_beats, "col_tiles": sched.tiling.col_tiles,
                   "col_columns": sched.tiling.col_beats * params.beat_elems or plan.out_shape[2],
                   "col_inputs": [list(c) for c in sched.tiling.col_inputs]},
        "schedule": {"bytes": sched.bytes, "cycles": sched.cycles, "mac_active": sched.mac_active,
                     "utilization": round(sched.utilization, 4)},
        "compulsory_bytes": engine_compulsory(layer_from_node(graph, node))["total"],
    }


def build_manifest(b: EngineBuild, params: EngineParams, srams: dict) -> dict:
    graph, plans, image = b.graph, b.plans, b.image
    engine_names = {p.name for p in plans}
    return {
        "hwgen_version": __version__,
        "graph": graph.name,
        "modules": {"top": TOP_MODULE, "engine": ENGINE_MODULE, "sram": SRAM_MODULE},
        "files": dict(FILES),
        "checkpoint": FILES["checkpoint"],
        "params": {
            "m_lanes": params.m_lanes, "x_lanes": params.x_lanes, "bus_bits": params.bus_bits,
            "weight_bits": params.weight_bits, "act_bits": params.act_bits, "acc_bits": params.acc_bits,
            "max_width": params.max_width, "max_out_width": params.max_out_width,
            "max_channels": params.max_channels, "kernel_max": params.kernel_max,
            "wide_kernel_words": params.wide_kernel_words, "input_words": params.input_words,
            "input_buffer_bytes": params.input_buffer_bytes,
            "patterns": list(params.patterns), "sparse": params.sparse, "library": params.library,
            "lane_period": params.lane_period, "weight_pack": params.weight_pack, "pipeline": params.pipeline,
            "pipeline_latency": params.pipeline_latency, "fold": params.fold, "dsp": params.dsp,
        },
        "widths": params.widths(),
        "srams": srams,
        "ports": {
            "clk": 1, "rst": 1, "desc_addr": 32, "start": 1, "busy": 1, "done": 1,
            "req": {"addr": 32, "len": 16, "write": 1}, "rd": params.bus_bits, "wr": params.bus_bits,
        },
        "descriptor": {
            "bytes": descriptor.DESCRIPTOR_BYTES,
            "fields": [{"name": n, "offset_bits": f.offset, "bits": f.width, "signed": n in descriptor.SIGNED}
                       for n, f in descriptor.LAYOUT],
            "magic": descriptor.MAGIC,
        },
        "dram": {
            "size": image.size,
            "image_bytes": len(image.data),
            "region_align": engine.REGION_ALIGN,
            "little_endian": True,
            "activation_layout": "C,H,W; elements_per_byte fields of field_bits bits per byte, element i of a "
                                 "row at bits (i % elements_per_byte) * field_bits of the row's byte "
                                 "i // elements_per_byte (low A bits of the field, two's complement if signed); "
                                 "each row zero-padded to whole beats",
            "activation_field_bits": params.act_field_bits,
            "activation_elements_per_byte": params.act_pack,
        },
        "layers": [_layer_entry(graph, p, r, base, params, sched)
                   for p, r, base, sched in zip(plans, image.layers, image.table_bases, b.schedules)],
        "host_ops": [n.name for n in graph.nodes[1:] if n.name not in engine_names],
    }


def sram_instances(params: EngineParams) -> dict:
    """WIDTH, DEPTH and GRAN of each hwgen_sram_1r1w instance, for users who swap in macros."""
    word_bytes, depth = params.weight_word_bytes, params.weight_mem_depth
    row_bits = params.row_elems * params.act_bits
    srams = {
        "input_buffer": {"width": row_bits, "depth": params.input_words, "granularity": params.beat_elems * params.act_bits},
        "weight_buffer": {"width": word_bytes * 8, "depth": depth, "granularity": params.weight_write_bits},
        "output_rows": {"width": params.bus_bits, "depth": 2 * params.out_lanes * params.out_row_beats_max,
                        "granularity": params.act_field_bits},
    }
    if params.library:
        srams["kernel_ids"] = {"width": word_bytes * 8, "depth": params.id_mem_depth, "granularity": word_bytes * 8}
    return srams


def generate(graph, out_dir, *, m_lanes: int = 4, x_lanes: int = 4, bus_bits: int = 64, glb_kib: int | None = None,
             weight_kib: int | None = None, dense_only: bool = False, pipeline: int = DEFAULT_PIPELINE,
             synth: str | None = None, interface: str = "stream", axi_id_bits: int = 4, dsp: str = "fabric",
             progress=lambda line: None) -> dict:
    """Write the engine for `graph` (a quantized hwgen Graph) into `out_dir`; returns the manifest.

    `interface`: "stream" (the engine's own req/rd/wr bus, `hwgen_top.v` from the templates) or
    "axi" (AXI4 master + AXI4-Lite registers, `axi_id_bits` wide IDs). `dsp`: `EngineParams.dsp`.
    `progress` is told a line before the long step (the synthesis), once every check has passed.
    """
    from .engine import registers

    if interface not in INTERFACES:
        raise HwgenError(f"unknown interface '{interface}' (choose from {', '.join(INTERFACES)})")
    if interface == "axi":
        registers.check_axi(bus_bits, axi_id_bits)
    b = engine.build(graph, EngineConfig(m_lanes=m_lanes, x_lanes=x_lanes, bus_bits=bus_bits, glb_kib=glb_kib,
                                         weight_kib=weight_kib, dense_only=dense_only, pipeline=pipeline))
    # the Verilog instantiates the SRAM template (and with dsp="ecp5" the DSP cells)
    params = dataclasses.replace(b.params, sram_cells=True, dsp=dsp).validate()
    if dsp == "ecp5" and synth not in (None, "ecp5"):
        raise HwgenError(f"an engine with ECP5 DSP cells (dsp ecp5) synthesizes for ECP5 only, not {synth}")
    image = b.image
    manifest = build_manifest(b, params, sram_instances(params))
    if dsp == "ecp5":
        manifest["files"]["dsp_model"] = DSP_MODEL
    engine_text = engine_verilog(params)
    amaranth_files = [FILES["engine"]]
    texts, blobs = {}, {}  # the interface's files
    if interface == "axi":
        bid = build_id(engine_text, image.data)
        amaranth_files.append(FILES["top"])
        manifest["files"].update(AXI_FILES)
        manifest["interface"] = {"kind": "axi", "id_bits": axi_id_bits, "lite_addr_bits": registers.ADDR_BITS,
                                 "lite_data_bits": registers.DATA_BITS, "build_id": bid}
        manifest["ports"] = _axi_ports(params.bus_bits, axi_id_bits)
        unit = network.netop_unit(graph, params)
        manifest["interface"]["netops_chunk"] = unit.chunk if unit else None
        manifest["interface"]["netops"] = list(unit.ops) if unit else []
        config = registers.config_values(manifest["params"], unit.ops if unit else ())
        texts[FILES["top"]] = axi_top_verilog(params, id_bits=axi_id_bits, build=bid, config=config, unit=unit)
        try:
            net = network.network_image(b, unit)
            blobs[NETWORK_IMAGE] = net.data
            manifest["files"]["network_image"] = NETWORK_IMAGE
            manifest["network"] = network.manifest_entry(net)
        except HwgenError as e:
            manifest["network"] = {"error": str(e)}
        regmap = (bid, config, manifest["layers"])
        net_j = manifest["network"]
        texts[AXI_FILES["registers"]] = json.dumps(registers.as_json(*regmap, net_j), indent=2) + "\n"
        texts[AXI_FILES["c_header"]] = registers.c_header(*regmap, manifest["dram"], net_j)
        texts[AXI_FILES["py_regs"]] = registers.python_module(*regmap, manifest["dram"], net_j)
        texts[AXI_FILES["run_layer"]] = registers.RUN_LAYER_SCRIPT
    else:
        texts[FILES["top"]] = templates.fill("hwgen_top.v", TOP=TOP_MODULE, ENGINE=ENGINE_MODULE, BUS_BITS=params.bus_bits)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
        (out / FILES["engine"]).write_text(engine_text, encoding="utf-8")
        for name, text in texts.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_text(text, encoding="utf-8")
        (out / FILES["sram"]).write_text(templates.text(FILES["sram"]), encoding="utf-8")
        if dsp == "ecp5":
            (out / DSP_MODEL).write_text(templates.text(DSP_MODEL), encoding="utf-8")
        (out / FILES["image"]).write_bytes(image.data)
        for name, blob in blobs.items():
            (out / name).write_bytes(blob)
        (out / FILES["core"]).write_text(_core(graph.name.replace(" ", "_").lower() or "engine",
                                                  (DSP_MODEL,) if dsp == "ecp5" else ()), encoding="utf-8")
        (out / FILES["waivers"]).write_text(_waivers(amaranth_files), encoding="utf-8")
        (out / FILES["checkpoint"]).write_bytes(checkpoint.to_bytes(graph))
        describe.write(b, out / FILES["arch"], out / FILES["mapping"])
        if synth:
            from .gateware.synth import synthesize

            progress(f"synthesizing with Yosys (synth_{synth}), about a minute")

            # The stream top is wiring only; the AXI top adds the adapters and registers, counted with it.
            parts, module = (("sram", "engine", "top"), TOP_MODULE) if interface == "axi" else (("sram", "engine"), ENGINE_MODULE)
            manifest["synth"] = synthesize([out / FILES[k] for k in parts], module, synth)
        (out / FILES["manifest"]).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
    except OSError as e:
        raise HwgenError(f"cannot write to {out}: {e.strerror}") from None
    return manifest
