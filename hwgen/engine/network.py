"""The DRAM image of a whole network run from one start: one descriptor chain (`hwgen.gateware.chain`).

`netop_unit(graph, params)` decides, once, what the network-op unit is built with: the ops the graph
uses and its FIFO's beats (`NetopUnit`, or None when the graph has no network op); the gateware,
the NETOPS configuration register, the manifest and the driver all take it from there.
`network_image(build, unit)` lays out, from address 0:
  - the chain: one 64-byte descriptor per node in graph order, a layer descriptor for each conv
    (`image.pack_descriptor`) and a network-op descriptor for each add, 2x2 pool or global
    average pool (`netop.pack_netop`);
  - the convs' packed weights and tables (`image.weights_and_tables`, as the per-layer image);
  - one activation region per tensor: the graph's input, then every node's output, each node
    reading its inputs from the regions of the nodes that produced them, so the network's
    intermediate maps never leave DRAM and no host moves them.
A ReLU whose input is already unsigned (fused into its producer's requantization) is the same
tensor: no descriptor, no region. Any other node (concat, a hidden linear layer, ...) is
refused in one line: the hardware cannot run it, and a chain has no host step in between. A
flatten of a map is that map (the classifier's LINEAR reads it in its DRAM layout, with its weight
blocks after the convs' weights); the classifier writes raw logits, one beat each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import HwgenError
from . import netop
from .descriptor import DESCRIPTOR_BYTES
from .image import _align, pack_descriptor, weights_and_tables
from .memory_map import activation_bytes, unpack_activations
from .plan import rom_tables

NETOP_NODES = ("add", "maxpool2d", "avgpool2d", "linear")


@dataclass
class Tensor:
    addr: int
    bytes: int
    shape: tuple
    signed: bool
    logits: bool = False  # raw logits, one beat each (netop.unpack_logits), not an activation map


@dataclass
class NetworkImage:
    data: bytes  # descriptors, weights and tables (activation regions follow, zero)
    size: int  # every region included
    chain: list[str]  # the nodes, in descriptor order: descriptor i at i * 64
    input: str  # the graph's input and output tensors
    output: str
    tensors: dict[str, Tensor]  # graph input and every node's output (a fused ReLU names its producer's)
    moved: dict[str, int]  # DRAM bytes each chain node moves (descriptor included): the prediction
    mac_active: int = 0  # cycles the MAC array issues a step over the chain (the convs' schedules)

    @property
    def count(self) -> int:
        return len(self.chain)


def _map_shape(shape) -> tuple:
    return tuple(shape) if len(shape) == 3 else (shape[0], 1, 1)


@dataclass(frozen=True)
class NetopUnit:
    """The network-op unit a build carries: `ops` (names of `netop.OPS`, in op-code order), the only
    ops its gateware has (the NETOPS register: `netop.ops_mask`), and `chunk`, its FIFO's beats."""
    ops: tuple[str, ...]
    chunk: int
    logits: int = 0  # LINEAR: the most outputs of a linear layer (its accumulators)


def netop_unit(graph, params, least: int = 16) -> NetopUnit | None:
    """The unit for `graph`: the ops its nodes use (a node the unit cannot run adds none; the network
    image names it), a FIFO of `least` beats or the widest pooled input row, accumulators for the
    widest linear layer's logits; None without ops."""
    used = set()
    for node in graph.nodes:
        if node.op in NETOP_NODES:
            try:
                used.add(netop.plan_netop(graph, node.name)["op"])
            except HwgenError:
                continue
    if not used:
        return None
    rows = [params.row_beats(graph.node(n.inputs[0]).out_shape[2]) for n in graph.nodes
            if n.op in ("maxpool2d", "avgpool2d")]
    logits = max([n.out_shape[0] for n in graph.nodes if n.op == "linear"] + [0]) if netop.OP_LINEAR in used else 0
    return NetopUnit(tuple(netop.OP_NAMES[c] for c in sorted(used)), max([least] + rows), logits)


def network_image(build, unit: NetopUnit | None) -> NetworkImage:
    """The chain image of `build` (an EngineBuild) for its network-op unit `unit` (None: no unit)."""
    graph, params = build.graph, build.params
    plans = {p.name: p for p in build.plans}
    alias, chain = {}, []
    for node in graph.nodes[1:]:
        src = alias.get(node.inputs[0], node.inputs[0]) if node.inputs else None
        if node.op == "relu" and not graph.node(src).quant.signed:
            alias[node.name] = src
        elif node.op == "flatten" and len(graph.node(src).out_shape) == 3:
            alias[node.name] = src  # the linear layer reads the map in its layout (netop.linear_block)
        elif node.op == "conv2d" or node.op in NETOP_NODES:
            chain.append(node)
        else:
            raise HwgenError(f"node '{node.name}' ({node.op}) does not run in hardware: a network run from one "
                             f"start takes conv2d, add, 2x2 pools, global average pooling, flatten and the "
                             f"classifier only")
    ordered = [plans[n.name] for n in chain if n.op == "conv2d"]
    blobs, static, cursor = weights_and_tables(ordered, params, _align(len(chain) * DESCRIPTOR_BYTES))
    weights = {}
    for node in chain:
        if node.op == "linear" and unit is not None and "linear" in unit.ops:
            block = netop.linear_block(graph, node.name, params)
            weights[node.name] = cursor
            blobs[cursor] = block
            cursor = _align(cursor + len(block))
    static_end = cursor
    tensors = {}
    for node in [graph.input] + chain:
        if node.op == "linear":
            size = netop.logits_bytes(node.out_shape[0], params)
            tensors[node.name] = Tensor(cursor, size, tuple(node.out_shape), True, logits=True)
        else:
            shape = _map_shape(node.out_shape)
            size = activation_bytes(shape, params)
            tensors[node.name] = Tensor(cursor, size, shape, bool(node.quant.signed))
        cursor = _align(cursor + size)
    for name, src in alias.items():
        tensors[name] = tensors[src]
    if cursor >= 1 << 32:
        raise HwgenError(f"the network's DRAM image needs {cursor} bytes, more than the 32-bit address space")
    _, bases = rom_tables(ordered)
    convs = {plan.name: (w, t, base) for (plan, w, _, t, _), base in zip(static, bases)}
    schedules = {plan.name: sched for plan, sched in zip(build.plans, build.schedules)}
    moved = {}
    for i, node in enumerate(chain):
        ins = [tensors[alias.get(p, p)].addr for p in node.inputs]
        out = tensors[node.name].addr
        if node.op == "conv2d":
            w, t, base = convs[node.name]
            blob = pack_descriptor(plans[node.name], params, in_addr=ins[0], out_addr=out, weight_addr=w,
                                   table_addr=t, table_base=base)
            moved[node.name] = sum(schedules[node.name].bytes.values())
        else:
            second = weights.get(node.name, ins[1] if len(ins) > 1 else 0)
            fields = netop.netop_fields(graph, node.name, params, a_addr=ins[0], b_addr=second, out_addr=out,
                                        chunk=unit.chunk if unit else 0, ops=unit.ops if unit else ())
            blob = netop.pack(**fields)
            moved[node.name] = netop.moved_bytes(fields, params)
        blobs[i * DESCRIPTOR_BYTES] = blob
    data = bytearray(static_end)
    for addr, blob in blobs.items():
        data[addr:addr + len(blob)] = blob
    return NetworkImage(bytes(data), cursor, [n.name for n in chain], graph.input.name, graph.output, tensors, moved,
                        sum(schedules[n.name].mac_active for n in chain if n.op == "conv2d"))


def unpack_tensor(entry: dict, raw: bytes, params) -> np.ndarray:
    """A tensor of the manifest's `network.tensors` (`entry`) from its `entry["bytes"]` DRAM bytes:
    an activation map, or the classifier's logits (int64)."""
    if entry.get("logits"):
        return netop.unpack_logits(raw, entry["shape"][0], params)
    return unpack_activations(raw, tuple(entry["shape"]), bool(entry["signed"]), params)


def manifest_entry(net: NetworkImage) -> dict:
    """The manifest's `network`: the chain's descriptors and every tensor's region."""
    return {"desc_addr": 0, "count": net.count, "chain": list(net.chain), "input": net.input, "output": net.output,
            "size": net.size,
            "image_bytes": len(net.data),
            "tensors": {name: {"addr": t.addr, "bytes": t.bytes, "shape": list(t.shape), "signed": t.signed,
                               "logits": t.logits} for name, t in net.tensors.items()},
            "bytes": dict(net.moved), "bytes_total": sum(net.moved.values()), "mac_active": net.mac_active,
            "host_layers": []}
