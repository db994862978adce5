"""A whole network from one start through the AXI top, against the same network layer by layer.

Generates, with `--interface axi` (4x4 MACs, 64-bit bus), a network whose every node runs in
hardware: the residual case of `hwgen.layercases.residual_graph` (conv 3->8, conv 8->8, add +
ReLU, 2x2 max pool, 2x2 average pool, global average pool, 8x8 input) or, with `--digits`, the
whole shipped digits network (its classifier on the network-op unit too). It runs it in Verilator on one image twice with an
ideal memory (AxiRam without pauses):
  - from one start (`Driver.run` with DESC_COUNT = the chain's length): cycles from the start to
    irq, the counters' bytes, every node's map checked against the reference;
  - layer by layer (`hwgen simulate`'s flow: one start per conv, the host computing the add and
    the pools): the convs' cycles summed.
and prints both, the chain's bytes against the nodes' bytes run one by one (conv schedules +
each network op's descriptor, inputs and output), and the network ops' beats (a cycle each at
least), so the chain's overhead is chain - convs - network-op beats.

    .venv/bin/python benchmarks/network_chain.py [--digits] [--timing ideal|hostile]
    .venv/bin/python benchmarks/network_chain.py --area [--target xilinx|ice40|ecp5]

`--area` instead synthesizes the network-op unit alone with Yosys (the digits engine's
parameters: 64-bit bus, A = 8, its 16-beat FIFO), built with every op and with the digits
network's ops only, and prints their LUT / FF / DSP / BRAM.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from hwgen import checkpoint, engine, reference, simulate
from hwgen.ir import Graph
from hwgen.layercases import random_input, residual_graph
from hwgen.sim_target import from_graph

ROOT = Path(__file__).resolve().parent.parent
CKPT = ROOT / "models" / "digits_ps4p4_w8a8.hwq"


def network(digits: bool) -> Graph:
    return checkpoint.load(CKPT) if digits else residual_graph(1, 3, 8, 8, 8)


def area(target: str) -> None:
    from amaranth.back import verilog

    from hwgen.engine.network import netop_unit
    from hwgen.gateware.netops import NetOps
    from hwgen.gateware.synth import synthesize

    graph = checkpoint.load(CKPT)
    params = engine.build(graph, engine.EngineConfig(m_lanes=4, x_lanes=4, bus_bits=64)).params
    from hwgen.engine.netop import OPS

    unit = netop_unit(graph, params)
    for what, ops in (("every op", tuple(OPS)), ("the digits network's ops", unit.ops)):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "hwgen_netops.v"
            path.write_text(verilog.convert(NetOps(params, unit.chunk, ops), name="hwgen_netops", emit_src=False))
            res = synthesize([path], "hwgen_netops", target)["resources"]
        print(f"network-op unit with {what} ({', '.join(ops)}; 64-bit bus, A = {params.act_bits}, "
              f"{unit.chunk}-beat FIFO), Yosys {target}: " + ", ".join(f"{k} {v:,}" for k, v in res.items()))


def main() -> None:
    from hwgen.gateware.synth import TARGETS

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--digits", action="store_true", help="the whole digits network (classifier included)")
    ap.add_argument("--timing", choices=simulate.TIMINGS, default="ideal")
    ap.add_argument("--area", action="store_true", help="synthesize the network-op unit instead")
    ap.add_argument("--target", choices=tuple(TARGETS), default="xilinx")
    args = ap.parse_args()
    if args.area:
        area(args.target)
        return
    graph = network(args.digits)
    b = engine.build(graph, engine.EngineConfig(m_lanes=4, x_lanes=4, bus_bits=64))
    bb = b.params.beat_bytes
    x = random_input(graph, 1)[None]
    wall, cpu = time.perf_counter(), time.process_time()
    with tempfile.TemporaryDirectory() as tmp:
        target = from_graph(graph, Path(tmp) / "gen", interface="axi")
        net = json.loads((target.gen_dir / "manifest.json").read_text())["network"]
        host = simulate.run_chain(target, x, timing=args.timing, workdir=Path(tmp) / "chain")
        layers = simulate.run_network(target, x, None, timing=args.timing, workdir=Path(tmp) / "layers")
    if host["aborted"] or not layers.passed:
        raise SystemExit(f"a run failed: {host['aborted'] or [(lr.name, lr.error) for lr in layers.layers]}")
    (img,) = host["images"]
    run = img["run"]
    mismatches = sum(v["mismatches"] for v in img["nodes"].values())
    netops = [n for n in net["chain"] if graph.node(n).op != "conv2d"]
    netop_bytes = {n: net["bytes"][n] for n in netops}  # netop.moved_bytes, the compiler's prediction
    one_by_one = sum(sum(s.bytes.values()) for s in b.schedules) + sum(netop_bytes.values())
    logits_equal = np.array_equal(np.asarray(img["output"]), reference.run(graph, x)[0])
    measured = run["counters"]["BYTES_READ"] + run["counters"]["BYTES_WRITTEN"]
    convs = sum(lr.cycles for lr in layers.layers)
    beats = sum(v // bb for v in netop_bytes.values())
    print(f"network: {graph.name}, chain {' -> '.join(net['chain'])} ({net['count']} descriptors), "
          f"timing {args.timing}, 1 image")
    print("| run | starts | host ops | cycles | DRAM bytes | mismatching elements |")
    print("|---|---|---|---|---|---|")
    print(f"| one start (chain) | 1 | 0 | {run['cycles']:,} | {measured:,} (nodes one by one: {one_by_one:,}) "
          f"| {mismatches} |")
    print(f"| layer by layer (convs on the engine) | {len(layers.layers)} | {len(netops)} | {convs:,} (convs only) "
          f"| {sum(lr.dram_bytes_measured for lr in layers.layers):,} (convs only) "
          f"| {sum(lr.mismatches for lr in layers.layers)} |")
    print(f"network ops: {', '.join(netops)}: {beats:,} beats moved (a cycle each at least); "
          f"chain - convs - network-op beats = {run['cycles'] - convs - beats:,} cycles")
    print(f"output equal to the reference: {logits_equal}; bytes equal (= manifest network.bytes_total "
          f"{net['bytes_total']:,}): {measured == one_by_one == net['bytes_total']}; counters' BUSY_CYCLES = bench cycles: "
          f"{run['counters']['BUSY_CYCLES'] == run['cycles']}")
    print(f"wall {time.perf_counter() - wall:.0f} s, this process's CPU {time.process_time() - cpu:.0f} s "
          f"(the simulator's: chain {host['cpu_seconds']:.1f} s)")


if __name__ == "__main__":
    main()
