"""Generate the periodic-sparse convolution engine for a quantized checkpoint, as Verilog.

Writes into --out: hwgen_engine.v (the Amaranth engine), hwgen_top.v (top-level shell with clean
port names), hwgen_sram_1r1w.v (behavioural SRAM to swap for a macro), dram_image.bin
(descriptors, packed weights, bias/requant tables), manifest.json (parameters, derived widths,
address map, per-layer addresses and layouts), hwgen_engine.core (FuseSoC), lint_waivers.vlt
and model.hwq (the checkpoint, so the folder is all `hwgen simulate` needs).
Every conv2d layer runs on the engine; other layers (pooling, add, classifier) stay on the host.
With --synth, Yosys reports LUT/FF/DSP/BRAM counts. With --interface axi the top is an AXI4 master
(m_axi_*) with an AXI4-Lite register file (s_axil_*) and irq, and the register map is written as
registers.json, driver/hwgen_regs.h and driver/hwgen_regs.py; one start runs a chain of DESC_COUNT
descriptors, residual adds, 2x2 / global average pools and the classifier (raw 32-bit logits) run
on a network-op unit in that top, built with only the ops the network has (NETOPS register,
manifest interface.netops), and a network made only of convs, those ops and flattens also gets
network_image.bin, the whole network from one start, no layer on the host (driver/run_layer.py
--network). See docs/engine.md.
"""

from __future__ import annotations

import argparse
import json
import sys

from ..engine.params import DEFAULT_PIPELINE, DSPS, MAX_PIPELINE
from ..errors import HwgenError
from ..gateware.synth import TARGETS as SYNTH_TARGETS


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", help="a quantized checkpoint (.hwq, from hwgen quantize or hwgen train)")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory (created if missing)")
    p.add_argument("--m-lanes", type=int, default=4, metavar="M", help="output channels per cycle (power of 2, default 4)")
    p.add_argument("--x-lanes", type=int, default=4, metavar="X", help="output pixels per cycle (power of 2, default 4)")
    p.add_argument("--bus-bits", type=int, default=64, metavar="B", help="DRAM data beat in bits (8..512, default 64)")
    p.add_argument("--glb-kib", type=int, metavar="N",
                   help="input buffer size in KiB; layers whose input does not fit run in row bands, "
                        "split into column tiles when one output row of full width does not fit (default: just enough for the largest layer input whole)")
    p.add_argument("--weight-kib", type=int, metavar="N",
                   help="weight buffer size in KiB: lane groups whose weights fit stay resident while the row bands "
                        "run, and a layer whose two lane groups fit prefetches the next group's weights while one "
                        "runs (default: one lane group of the widest layer at 9 taps)")
    p.add_argument("--dense-only", action="store_true",
                   help="generate without the pattern ROM: periodic layers run as dense (for area comparisons)")
    p.add_argument("--pipeline", type=int, default=DEFAULT_PIPELINE, metavar="N",
                   help=f"register cuts per long datapath path, 0 to {MAX_PIPELINE}: requantization and MAC array "
                        f"stages, each adding a cycle of latency per lane group run (default {DEFAULT_PIPELINE}; "
                        "0: the single-cycle datapath)")
    p.add_argument("--dsp", choices=DSPS, default="fabric",
                   help="the datapath's multipliers: fabric (a * b between register cuts, which synthesis maps onto DSP "
                        "cells without their registers; default) or ecp5 (MULT18X18D cells whose own input and output "
                        "registers are those cuts; for ECP5 targets, simulated with the model the folder holds)")
    p.add_argument("--synth", nargs="?", const="xilinx", choices=tuple(SYNTH_TARGETS),
                   help="run Yosys synthesis (synth_xilinx by default, synth_ice40 or synth_ecp5) and report resources")
    p.add_argument("--interface", choices=("stream", "axi"), default="stream",
                   help="top-level interface: the engine's own req/rd/wr streams and start/done pins (default), "
                        "or AXI4 master + AXI4-Lite registers + irq, descriptor chains and the network-op unit")
    p.add_argument("--axi-id-bits", type=int, default=4, metavar="N", help="AXI4 ID width with --interface axi (default 4)")
    p.add_argument("--json", action="store_true", help="print the manifest as JSON instead of a summary table")


def run(args) -> int:
    from ..generate import generate
    from ..ingest import load_model

    graph = load_model(args.checkpoint)
    if any(n.quant is None for n in graph.nodes):
        raise HwgenError(f"{args.checkpoint}: the model is not quantized; run `hwgen quantize` first")
    manifest = generate(graph, args.out, m_lanes=args.m_lanes, x_lanes=args.x_lanes, bus_bits=args.bus_bits,
                        glb_kib=args.glb_kib, weight_kib=args.weight_kib, dense_only=args.dense_only,
                        pipeline=args.pipeline, synth=args.synth, dsp=args.dsp,
                        interface=args.interface, axi_id_bits=args.axi_id_bits,
                        progress=lambda line: print(f"hwgen generate: {line}", file=sys.stderr))
    if args.json:
        print(json.dumps(manifest, indent=2))
        return 0
    p = manifest["params"]
    print(f"engine: {p['m_lanes']}x{p['x_lanes']} MACs, {p['bus_bits']}-bit bus, W{p['weight_bits']} A{p['act_bits']}, "
          f"{p['acc_bits']}-bit accumulators, {len(p['patterns'])} ROM patterns -> {args.out}")
    print(f"{'layer':<16}{'kind':<10}{'P':>3}{'taps':>5}{'in':>14}{'out':>14}{'DRAM bytes':>12}{'cycles':>10}{'util':>7}")
    for lay in manifest["layers"]:
        s = lay["schedule"]
        shape = lambda v: "x".join(map(str, v["shape"]))  # noqa: E731
        print(f"{lay['name']:<16}{lay['structure']:<10}{lay['period']:>3}{lay['taps']:>5}{shape(lay['input']):>14}"
              f"{shape(lay['output']):>14}{sum(s['bytes'].values()):>12}{s['cycles']:>10}{s['utilization']:>7.1%}")
    folded = [lay["name"] for lay in manifest["layers"] if lay["fold"] > 1]
    if folded:
        print("folded (spare x lanes on twice the output channels): " + ", ".join(folded))
    if manifest["host_ops"]:
        print("layer by layer, on the host: " + ", ".join(manifest["host_ops"]))
    net = manifest.get("network")
    if net and "error" not in net:
        unit = manifest["interface"]["netops"]
        print(f"the whole network from one start (network_image.bin): {' -> '.join(net['chain'])}; host layers: "
              f"none; network-op unit: {', '.join(unit) or 'none'}; {net['bytes_total']:,} DRAM bytes per image")
    elif net:
        print(f"not from one start: {net['error']}")
    if "synth" in manifest:
        r = manifest["synth"]
        print(f"synthesis ({r['target']}): " + ", ".join(f"{k} {v}" for k, v in r["resources"].items()))
    return 0
