"""The `engine` architecture: counts of the engine `hwgen generate` emits, from its own schedule.

DRAM bytes and cycles are not modelled here: they are `hwgen.engine.schedule`'s, the model the
RTL simulation is checked against (weights in the engine's packed layout, descriptor and
bias/requant tables, inputs and outputs in whole bus beats). The engine runs a layer in row bands
on its input buffer and streams or keeps lane groups of weights (`hwgen.engine.tiling`); the
mapping reported is M tiles of m_lanes (of 2 * m_lanes, `fold: 2`, for a folded layer), everything
else whole. Its compulsory traffic counts the bias/requant tables too, which the engine moves
through DRAM. Buffer, register-file and MAC energy use the same array model as every architecture,
with the engine's lanes as the MAC array.
"""

from __future__ import annotations

import dataclasses

from ..errors import HwgenError
from ..ir import Graph
from .arch import Architecture
from .counts import Extents, Mapping, compulsory, evaluate
from .energy import EnergyTable
from .formats import smallest
from .workload import layer_from_node


def _build(graph: Graph, arch: Architecture, dense_only: bool = False):
    from .. import engine

    spec = arch.engine
    if arch.glb_kib and arch.glb_kib != int(arch.glb_kib):
        raise HwgenError(f"the engine's buffer size must be a whole number of KiB, got {arch.glb_kib:g}")
    return engine.build(graph, engine.EngineConfig(m_lanes=spec.m_lanes, x_lanes=spec.x_lanes, bus_bits=spec.bus_bits,
                                                   glb_kib=int(arch.glb_kib) or None, dense_only=dense_only))


def engine_buffer_kib(graph: Graph, arch: Architecture) -> float:
    """The input buffer (KiB) of the engine `arch` describes, sized to `graph` when the arch gives none."""
    return _build(graph, arch).params.input_buffer_bytes / 1024


def engine_results(graph: Graph, arch: Architecture, energy: EnergyTable, weight_bits: int, act_bits: int,
                   dense_only: bool = False, progress: bool = False,
                   layers: list | None = None) -> tuple[Architecture, list]:
    """(the architecture with the engine's buffer size, one LayerResult per conv2d layer).

    dense_only: the dense engine `hwgen generate --dense-only` emits (every layer dense).
    layers: the graph's `workload`, if already built.
    """
    from tqdm import tqdm

    from .. import engine
    from . import LayerResult

    spec = arch.engine
    built = _build(graph, arch, dense_only)
    params = built.params
    buffer_kib = params.input_buffer_bytes / 1024
    arch = dataclasses.replace(arch, glb_kib=buffer_kib)
    dram_pj = energy.memory(arch.dram_energy, arch.name).pj_per_bit()
    results = []
    nodes = engine.engine_layers(graph)
    known = {l.name: l for l in layers or ()}
    for node, plan, sched in tqdm(list(zip(nodes, built.plans, built.schedules)),
                                  desc="analyze engine", unit="layer", disable=not progress, leave=False):
        layer = known.get(node.name) or layer_from_node(graph, node, weight_bits, act_bits)
        costs = layer.costs
        fmt = _engine_format(plan.structure, costs)
        # a folded layer's lane groups hold twice the channels (docs/engine.md, "Folded layers")
        mapping = Mapping("MCPQ", min(spec.m_lanes * plan.fold, layer.m), layer.c, layer.p, layer.q, fold=plan.fold)
        rows, cols = Extents(layer, 0), Extents(layer, 1)
        r = evaluate(layer, costs[fmt], arch, energy, mapping.order, mapping.m, mapping.c, mapping.p, mapping.q,
                     rows, cols, fold=mapping.fold)
        b = sched.bytes
        dram = {"weights": b["weights"], "metadata": 0, "tables": b["tables"], "descriptor": b["descriptor"],
                "inputs": b["inputs"], "outputs": b["outputs"], "psums": 0}
        dram["total"] = sum(dram.values())
        glb_bits = 8 * dram["total"] + int(r["array_bits"])
        sram_pj = float(r["e_sram"]) + (glb_bits - int(r["glb_bits"])) * energy.memory(
            arch.glb_energy, arch.name).pj_per_bit(arch.glb_kib)
        e = {"dram": 8 * dram["total"] * dram_pj, "sram": sram_pj, "mac": float(r["e_mac"])}
        e["total"] = e["dram"] + e["sram"] + e["mac"]
        results.append(LayerResult(layer, costs, fmt, mapping, dram,
                                   engine_compulsory(layer), e, int(sched.cycles),
                                   int(r["macs"]), glb_bits, int(r["rf_bits"])))
    return arch, results


def engine_compulsory(layer) -> dict:
    """A conv layer's compulsory DRAM bytes on the engine: each nonzero weight in its smallest format,
    each input and output once, each output channel's bias/requant once (the lower bound the
    engine's measured bytes are reported against)."""
    costs = layer.costs
    return compulsory(layer, costs[smallest(costs)], Extents(layer, 0), Extents(layer, 1), tables=True)


# the storage format each engine layer structure keeps its weights in (pattern ids or residue masks)
_STRUCTURE_FORMATS = {"dense": ("dense",), "periodic": ("periodic", "pattern"), "library": ("pattern",)}


def _engine_format(structure: str, costs: dict) -> str:
    """The analysis format of an engine layer: its structure's own, else the smallest that applies.

    The engine may find a period or library the analysis's detection did not classify (its table
    covers any weights), and then the layer is costed in the smallest format that applies.
    """
    return next((f for f in _STRUCTURE_FORMATS[structure] if costs[f] is not None), None) or smallest(costs)
