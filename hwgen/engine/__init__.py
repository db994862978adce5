"""The engine compiler: a quantized graph in, everything the generated engine runs on out (pure Python).

`build(graph, EngineConfig(...))` plans every conv layer (`plan`), sizes the engine to the
checkpoint (`fit`), folds the layers that leave x lanes idle where that saves cycles
(`schedule.fold_plans`), tiles each layer onto the fixed buffers (`tiling`: row bands and the loop
nest), lays out the DRAM (`memory_map` for the formats, `image` for descriptors and addresses)
and models each layer's DRAM bytes and cycles (`schedule`). Every consumer takes its
`EngineBuild`: `hwgen generate` (Verilog and files), the `engine` analysis preset, the simulation
host, tests and benchmarks; so every knob enters once and every number has one source.
`hwgen.gateware` holds only the Amaranth components, built from `EngineBuild.params`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from ..errors import HwgenError
from .fit import fit_params
from .image import REGION_ALIGN, DramImage, LayerRegions, dram_image, pack_descriptor
from .memory_map import (TABLE_ENTRY_BYTES, activation_bytes, ceil_div, group_steps, groups, id_words, pack_activations,
                         pack_table, pack_weights, row_beats, table_group_beats, unpack_activations,
                         weight_group_beats)
from .params import DEFAULT_PIPELINE, EngineParams, check_lanes
from .plan import (LayerPlan, check_weights_covered, group_channels, pass_cycles, plan_node, rom_tables, tap_order)
from .schedule import LayerSchedule, fold_plans, layer_schedule, network_schedule
from .tiling import Tiling, band_inputs, band_words, layer_tiling, tiled_bytes

__all__ = [
    "EngineConfig", "EngineBuild", "build", "engine_layers", "plan_graph",
    "fit_params", "REGION_ALIGN", "DramImage", "LayerRegions", "dram_image", "pack_descriptor",
    "TABLE_ENTRY_BYTES", "activation_bytes", "ceil_div", "group_steps", "groups", "id_words", "pack_activations",
    "pack_table", "pack_weights", "row_beats", "table_group_beats", "unpack_activations", "weight_group_beats",
    "EngineParams", "check_lanes", "LayerPlan", "check_weights_covered", "group_channels", "pass_cycles",
    "plan_node", "rom_tables", "tap_order", "LayerSchedule", "fold_plans", "layer_schedule", "network_schedule",
    "Tiling", "band_inputs", "band_words", "layer_tiling", "tiled_bytes",
]


@dataclass(frozen=True)
class EngineConfig:
    """The generator's knobs, each entered once."""

    m_lanes: int = 4  # output channels computed in parallel
    x_lanes: int = 4  # output pixels computed in parallel
    bus_bits: int = 64  # DRAM data beat
    glb_kib: int | None = None  # input buffer size; None: the largest input fits whole
    weight_kib: int | None = None  # weight buffer size; None: one lane group of the widest layer
    dense_only: bool = False  # every layer dense: no pattern ROM, no per-lane muxes
    pipeline: int = DEFAULT_PIPELINE  # register cuts per long path of the datapath (EngineParams.pipeline)


def engine_layers(graph) -> list:
    """The conv2d nodes the engine runs (every one of them; linear layers stay on the host)."""
    return [n for n in graph.nodes if n.op == "conv2d"]


def plan_graph(graph, dense_only: bool = False, m_lanes: int = 4) -> list[LayerPlan]:
    """Every conv layer's plan for an engine of `m_lanes` output-channel lanes."""
    check_lanes(m_lanes, 1)
    plans = [plan_node(graph, n, dense_only=dense_only, m_lanes=m_lanes) for n in engine_layers(graph)]
    if not plans:
        raise HwgenError(f"graph '{graph.name}' has no conv2d layer for the engine to run")
    for p in plans:
        check_weights_covered(p)
    return plans


@dataclass
class EngineBuild:
    """One compiled engine: its layers' plans, the parameters, the DRAM image and the schedules."""

    graph: object  # the quantized hwgen.ir.Graph
    config: EngineConfig
    plans: list[LayerPlan]
    params: EngineParams

    @functools.cached_property
    def image(self) -> DramImage:
        """Descriptors, packed weights and tables, activation addresses (packing takes a while: on demand)."""
        return dram_image(self.plans, self.params)

    @functools.cached_property
    def schedules(self) -> list[LayerSchedule]:
        return network_schedule(self.plans, self.params)

    @functools.cached_property
    def tilings(self) -> list[Tiling]:
        return [s.tiling for s in self.schedules]


def build(graph, config: EngineConfig = EngineConfig()) -> EngineBuild:
    """Compile `graph` (a quantized hwgen Graph) for the engine (raises HwgenError naming what cannot run)."""
    check_lanes(config.m_lanes, config.x_lanes)
    plans = plan_graph(graph, dense_only=config.dense_only, m_lanes=config.m_lanes)
    fit = functools.partial(fit_params, m_lanes=config.m_lanes, x_lanes=config.x_lanes, bus_bits=config.bus_bits,
                            glb_kib=config.glb_kib, weight_kib=config.weight_kib,
                            sparse=False if config.dense_only else None, pipeline=config.pipeline)
    params = fit(plans)
    folded = fold_plans(plans, params)  # the layers that fold their spare x lanes: an engine that folds
    if any(p.fold > 1 for p in folded):
        plans, params = folded, fit(folded)
    return EngineBuild(graph, config, plans, params)
