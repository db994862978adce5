"""`hwgen analyze`: weight storage formats, DRAM traffic, energy and cycles on a memory hierarchy.

Timeloop's separation: workload (hwgen.analysis.workload) x architecture (arch) x mapping
(mapping, searched or fixed) -> access counts per tensor and level (counts) -> energy (energy).
`analyze` is the Python API under the command line:

    from hwgen.analysis import analyze
    result = analyze(graph, arch="generic", energy="horowitz45", objective="dram")
    result.totals["dram_bytes"]["total"], result.layers[0].format
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ..errors import HwgenError
from ..ir import Graph
from .arch import Architecture, load_arch
from .counts import Extents, Mapping, compulsory, evaluate
from .energy import EnergyTable, load_energy
from .formats import FORMATS, FormatCost, smallest
from .mapping import OBJECTIVES, FixedMappings, check_fits, search
from .workload import Layer, workload

DRAM_KEYS = ("weights", "metadata", "tables", "descriptor", "inputs", "outputs", "psums", "total")
COMPULSORY_KEYS = ("weights", "inputs", "outputs", "tables", "total", "inputs_padded")
ENERGY_KEYS = ("dram", "sram", "mac", "total")


@dataclass
class LayerResult:
    layer: Layer
    storage: dict[str, FormatCost | None]
    format: str  # the format its weights move in
    mapping: Mapping
    dram_bytes: dict[str, int]
    compulsory_bytes: dict[str, int]
    energy_pj: dict[str, float]
    cycles: int
    macs: int  # executed: every stored value, structural and filler zeros included
    glb_bits: int
    rf_bits: int

    @property
    def lower_bound_ratio(self) -> float:
        return self.dram_bytes["total"] / self.compulsory_bytes["total"]


@dataclass
class Analysis:
    graph_name: str
    arch: Architecture
    energy: EnergyTable
    objective: str
    format: str | None  # None: each layer in its smallest applicable format
    layers: list[LayerResult]
    totals: dict = field(default_factory=dict)


def _resolve(arch, energy) -> tuple[Architecture, EnergyTable]:
    arch = load_arch(arch) if isinstance(arch, str) else arch
    energy = load_energy(energy) if isinstance(energy, str) else energy
    arch.check_energy(energy)
    return arch, energy


def chosen_format(costs: dict[str, FormatCost | None], fmt: str | None) -> str:
    """The format a layer's weights move in: `fmt` where it describes the layer (else dense), or the smallest."""
    if fmt is None:
        return smallest(costs)
    if fmt not in FORMATS:
        raise HwgenError(f"unknown weight format '{fmt}' (formats: {', '.join(FORMATS)})")
    return fmt if costs[fmt] is not None else "dense"


def analyze_layer(layer: Layer, arch: Architecture, energy: EnergyTable, objective: str = "dram",
                  fmt: str | None = None, mapping: Mapping | None = None,
                  fixed_format: tuple[str, FormatCost] | None = None, costs: dict | None = None) -> LayerResult:
    """One layer: its formats, the searched (or given) mapping, counts and energy.

    `fixed_format`: (name, cost) of the format a fixed mapping stores the layer's weights in.
    `costs`: the storage of a layer with the same mask and structure, if known (else `layer.costs`).
    """
    costs = costs or layer.costs
    if fixed_format is not None:
        used, cost = fixed_format
    else:
        used = chosen_format(costs, fmt)
        cost = costs[used]
    rows, cols = Extents(layer, 0, span=arch.row_transfers), Extents(layer, 1, span=arch.row_transfers)
    if mapping is None:
        mapping = search(layer, cost, arch, energy, objective, rows, cols)
    else:
        check_fits(layer, cost, arch, energy, mapping, rows, cols)
    r = evaluate(layer, cost, arch, energy, mapping.order, mapping.m, mapping.c, mapping.p, mapping.q, rows, cols,
                 mapping.lanes, mapping.period, mapping.bypass, mapping.fold)
    dram = {k: int(r[k]) for k in DRAM_KEYS[:-1]}
    dram["total"] = sum(dram.values())
    e = {"dram": float(r["e_dram"]), "sram": float(r["e_sram"]), "mac": float(r["e_mac"])}
    e["total"] = e["dram"] + e["sram"] + e["mac"]
    bound = compulsory(layer, costs[smallest(costs)], rows, cols, tables=arch.channel_bytes > 0)
    return LayerResult(layer, costs, used, mapping, dram, bound, e,
                       int(r["cycles"]), int(r["macs"]), int(r["glb_bits"]), int(r["rf_bits"]))


def totals(layers: list[LayerResult]) -> dict:
    """The network's sums of its layers' results (Analysis.totals)."""
    out = {
        "dram_bytes": {k: sum(l.dram_bytes[k] for l in layers) for k in DRAM_KEYS},
        "compulsory_bytes": {k: sum(l.compulsory_bytes[k] for l in layers) for k in COMPULSORY_KEYS},
        "energy_pj": {k: sum(l.energy_pj[k] for l in layers) for k in ENERGY_KEYS},
        "cycles": sum(l.cycles for l in layers),
        "macs": sum(l.layer.macs for l in layers),
        "executed_macs": sum(l.macs for l in layers),
        "effectual_macs": sum(l.layer.effectual_macs for l in layers),
        "storage_bits": {f: sum(l.storage[f].bits if l.storage[f] is not None else l.storage["dense"].bits
                                for l in layers) for f in FORMATS},
    }
    out["lower_bound_ratio"] = out["dram_bytes"]["total"] / out["compulsory_bytes"]["total"]
    return out


ENGINE_FORMATS = ("dense", "periodic", "pattern")  # the engine's own: dense-only, or periodic tables / pattern ids


def analyze(graph: Graph, arch: str | Architecture = "generic", energy: str | EnergyTable = "horowitz45",
            objective: str = "dram", weight_bits: int = 8, act_bits: int = 8, glb_kib: float | None = None,
            mapping: str | FixedMappings | None = None, fmt: str | None = None, progress: bool = False,
            layers: list[Layer] | None = None) -> Analysis:
    """Analyze every conv2d / linear layer of `graph` on `arch`.

    Bit widths come from the graph's QuantInfo where it has one, else from weight_bits/act_bits.
    `fmt` forces one weight format on every layer it can describe (others stay dense); None picks
    each layer's smallest. `mapping` is a FixedMappings (or its YAML path); layers it does not
    name are searched. `layers`: `workload(graph, weight_bits, act_bits)` if already built, so
    analyses of several formats detect structure and cost formats once.
    """
    from tqdm import tqdm

    if objective not in OBJECTIVES:
        raise HwgenError(f"objective must be one of {', '.join(OBJECTIVES)}, got '{objective}'")
    arch, energy = _resolve(arch, energy)
    arch = arch.with_glb_kib(glb_kib)
    if arch.engine is not None and mapping is not None:
        raise HwgenError(f"architecture '{arch.name}' is the generated engine: it runs its own tiling, so it takes "
                         "no mapping")
    if arch.engine is not None and fmt not in (None, *ENGINE_FORMATS):
        # a format the engine has no datapath for: the generic model on the engine's memory hierarchy,
        # with the input buffer the engine would have
        from .engine import engine_buffer_kib

        kib = arch.glb_kib or engine_buffer_kib(graph, arch)
        arch = dataclasses.replace(arch, engine=None, glb_kib=kib, name=f"{arch.name} ({fmt}, generic model)")
    if arch.engine is not None:
        from .engine import engine_results

        arch, results = engine_results(graph, arch, energy, weight_bits, act_bits, dense_only=fmt == "dense",
                                       progress=progress, layers=layers)
        return Analysis(graph.name, arch, energy, objective, fmt, results, totals(results))
    fixed = FixedMappings(mapping) if isinstance(mapping, str) else mapping
    results = []
    layers = [l for l in layers or workload(graph, weight_bits, act_bits) if l.op in arch.runs]
    for layer in tqdm(layers, desc=f"analyze {fmt or 'smallest'}", unit="layer", disable=not progress, leave=False):
        results.append(analyze_layer(layer, arch, energy, objective, fmt, fixed.get(layer) if fixed else None,
                                     fixed.format_cost(layer) if fixed and fmt is None else None))
    if fixed is not None:
        fixed.check_all_used()
    return Analysis(graph.name, arch, energy, objective, fmt, results, totals(results))


__all__ = ["analyze", "analyze_layer", "totals", "Analysis", "LayerResult", "load_arch", "load_energy", "workload", "FORMATS"]
