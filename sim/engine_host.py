"""The host program that runs a whole quantized network through the simulated engine.

It executes inside the simulator process (the job names it as `host`, see sim/engine_tb.py). For
each input image it walks the graph in order: every layer the engine runs is packed into DRAM,
started, waited for, and read back; every other node (pooling, flatten, add, the classifier) runs
on the host in the integer reference. The engine's output, not the reference's, feeds the next
node, so the final logits are the network as the hardware computes it. Each engine output is also
compared element by element with the reference's output of that layer for the same input.

Job fields under `network`: checkpoint (.hwq), inputs (.npy, int64 (N, *input_shape)),
bus_bits, act_bits (the engine's: it sets the activations' DRAM packing), timeout (cycles per layer), progress (a file that gets one line per finished layer run),
layers {name: {desc_addr, in_addr, out_addr}}.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hwgen import checkpoint, reference
from hwgen.engine import EngineParams, activation_bytes, pack_activations, unpack_activations

MAX_REPORTED = 5  # mismatching elements listed per layer run


def compare(expected: np.ndarray, got: np.ndarray) -> tuple[int, list[str]]:
    """(number of differing elements, the first few as 'index: got g, expected e')."""
    if expected.shape != got.shape:
        return int(expected.size), [f"shape {got.shape}, expected {expected.shape}"]
    diff = np.argwhere(expected != got)
    notes = [f"{tuple(int(i) for i in idx)}: got {int(got[tuple(idx)])}, expected {int(expected[tuple(idx)])}"
             for idx in diff[:MAX_REPORTED]]
    return int(len(diff)), notes


async def network_host(bench, job: dict) -> dict:
    net = job["network"]
    graph = checkpoint.load(net["checkpoint"])
    inputs = np.load(net["inputs"], allow_pickle=False)
    # the layout functions read the beat size and the activation width (fields per byte) only
    layout = EngineParams(bus_bits=int(net["bus_bits"]), act_bits=int(net["act_bits"]))
    engine_layers = net["layers"]
    progress = Path(net["progress"]) if net.get("progress") else None
    images = []
    for i, x in enumerate(inputs):
        values = {graph.input.name: x[None]}
        runs = {}
        for node in graph.nodes[1:]:
            ins = [values[p] for p in node.inputs]
            arg = ins if node.op == "add" else ins[0]
            if node.name not in engine_layers:
                values[node.name] = reference.run_layer(graph, node.name, arg)
                continue
            lay = engine_layers[node.name]
            await bench.load(int(lay["in_addr"]), pack_activations(ins[0][0], layout))
            # the fast bench's simulator runs the layer while the reference computes it here
            pending = bench.run(f"{node.name}#{i}", int(lay["desc_addr"]), int(net["timeout"]))
            expected = reference.run_layer(graph, node.name, arg)
            record = await pending
            if record["error"]:
                runs[node.name] = dict(record, mismatches=None, notes=[])
                images.append({"layers": runs, "logits": None})
                return {"images": images, "aborted": f"{node.name} on image {i}: {record['error']}"}
            shape = node.out_shape
            raw = await bench.dump(int(lay["out_addr"]), activation_bytes(shape, layout))
            got = unpack_activations(raw, shape, bool(node.quant.signed), layout)[None]
            mismatches, notes = compare(expected, got)
            runs[node.name] = dict(record, mismatches=mismatches, notes=notes)
            values[node.name] = got
            if progress is not None:
                with progress.open("a") as f:
                    f.write(f"{node.name} {i}\n")
        images.append({"layers": runs, "logits": values[graph.output][0].tolist()})
    return {"images": images, "aborted": None}


class BenchMemory:
    """The driver's backend over a bench's memory only (`hwgen.driver.Backend`'s read_mem/write_mem)."""

    def __init__(self, bench):
        self.bench = bench

    async def read_mem(self, addr: int, nbytes: int) -> bytes:
        return await self.bench.dump(addr, nbytes)

    async def write_mem(self, addr: int, data: bytes) -> None:
        await self.bench.load(addr, data)


def memory_driver(bench, job: dict):
    import json

    from hwgen.driver import Driver

    manifest = json.loads((Path(job["axi_dir"]) / "manifest.json").read_text())
    return Driver(manifest, {}, b"", BenchMemory(bench))


async def chain_host(bench, job: dict) -> dict:
    """The whole network from one start per image (the AXI top's descriptor chain, hwgen.engine.network).

    Job fields under `chain`: checkpoint, inputs, bus_bits, act_bits, timeout, and the manifest's
    `network` (desc_addr, count, chain, input, output, tensors). The DRAM holds the network image;
    per image the generated driver (`hwgen.driver.Driver`: `write_input`, `run`, `read_tensor`)
    writes the input map, makes one start, and reads back every node's output (the classifier's
    logits included), each compared with the reference's. No host computation between nodes."""
    net = job["chain"]
    graph = checkpoint.load(net["checkpoint"])
    inputs = np.load(net["inputs"], allow_pickle=False)
    # the generated driver writes the input and reads every tensor back (the fast mode's bench has no
    # registers: the driver over its memory only)
    driver = getattr(bench, "driver", None) or memory_driver(bench, job)

    images = []
    for i, x in enumerate(inputs):
        await driver.write_input(x)
        record = await bench.run(f"chain#{i}", int(net["desc_addr"]), int(net["timeout"]), count=int(net["count"]))
        if record["error"]:
            images.append({"run": record, "nodes": {}, "output": None})
            return {"images": images, "aborted": f"image {i}: {record['error']}"}
        want = reference.run_all(graph, x[None])
        nodes = {}
        for name in net["chain"]:
            got = await driver.read_tensor(name)
            mismatches, notes = compare(want[name][0].reshape(got.shape), got)
            nodes[name] = {"mismatches": mismatches, "notes": notes}
        images.append({"run": record, "nodes": nodes, "output": (await driver.read_tensor(net["output"])).tolist()})
    return {"images": images, "aborted": None}
