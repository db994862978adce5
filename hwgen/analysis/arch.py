"""Architecture descriptions: DRAM, one global buffer, PE register files and a MAC array.

A description is a preset (hwgen/data/arch/*.yaml) or a user's YAML file of the same shape:

    name: generic
    dram:      {bytes_per_cycle: 16, energy: dram}
    glb:       {kib: 256, width_bits: 64, energy: sram}
    pe:        {rf_bytes: 64, energy: rf}
    mac_array: {rows: 16, cols: 16, energy: mac}
    psum_bits: 32

`energy` values name entries of the energy table in use (hwgen.analysis.energy). The MAC array
computes `rows` output channels x `cols` output pixels at a time, skipping zero weights.

Optional keys describe how a real accelerator moves data (defaults: the idealized model, every
tensor moved as its exact bits, nothing else):
    runs: [conv2d]                # the layer ops it runs (others stay on the host, not counted)
    dram:
      beat_bytes: 8               # every transfer moves whole beats of this many bytes
      layer_bytes: 64             # a per-layer record (descriptor) read once per layer
      transfers: rows             # activations lie in rows padded to beats; a tile reads the
                                  # contiguous rows from its first to its last, of each the whole
                                  # row or, for a column tile, the beats covering its columns
      act_fields: [8]             # an activation of A bits takes the smallest field >= A (bits)
      weight_fields: [4, 8]       # the same for a weight of W bits
    mac_array:
      weights: lane_steps         # weights move in lane groups of `rows` output channels: per
                                  # input channel, one step of `rows` weights per stored value of
                                  # the group's busiest lane (one step count per layer for
                                  # contiguous groups); a group is padded to whole beats and every
                                  # group takes the largest group's size; pattern ids (id_bits per
                                  # lane and input channel, padded to beats) travel before them
      channel_bytes: 8            # per output channel (bias, requantization), loaded with each lane
                                  # group for every output tile
      id_bits: 8

An `engine: {m_lanes, x_lanes, bus_bits}` section describes the engine `hwgen generate` emits
instead of a generic array: its MAC array is m_lanes x x_lanes, its DRAM moves one bus beat per
cycle, its buffers are sized to the checkpoint (or to `glb.kib`), and its counts come from the
engine's own schedule model (hwgen.analysis.engine), so `mac_array` and `dram.bytes_per_cycle`
are not given.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from ..errors import HwgenError
from . import specfile
from .energy import EnergyTable


@dataclass(frozen=True)
class EngineSpec:
    m_lanes: int
    x_lanes: int
    bus_bits: int


@dataclass(frozen=True)
class Architecture:
    name: str
    description: str
    dram_bytes_per_cycle: float
    dram_energy: str
    glb_kib: float
    glb_width_bits: int
    glb_energy: str
    rf_bytes: int
    rf_energy: str
    rows: int
    cols: int
    mac_energy: str
    psum_bits: int
    engine: EngineSpec | None = None  # the generated engine, with its own schedule
    runs: tuple[str, ...] = ("conv2d", "linear")
    beat_bytes: int = 1
    layer_bytes: int = 0
    row_transfers: bool = False
    act_fields: tuple[int, ...] = ()  # empty: exact bits
    weight_fields: tuple[int, ...] = ()
    lane_steps: bool = False
    channel_bytes: int = 0
    id_bits: int = 8

    def act_field(self, bits: int) -> int:
        return _field(self.act_fields, bits)

    def weight_field(self, bits: int) -> int:
        return _field(self.weight_fields, bits)

    @property
    def glb_bits(self) -> int:
        return int(self.glb_kib * 1024 * 8)

    def with_glb_kib(self, kib: float | None) -> "Architecture":
        if kib is None:
            return self
        if isinstance(kib, bool) or not isinstance(kib, (int, float)) or not kib > 0:
            raise HwgenError(f"--glb-kib must be a positive number, got {kib!r}")
        return dataclasses.replace(self, glb_kib=float(kib))

    def check_energy(self, table: EnergyTable) -> None:
        """Every energy name this architecture uses exists in `table` with the right kind."""
        who = f"architecture '{self.name}'"
        for name in (self.dram_energy, self.glb_energy, self.rf_energy):
            table.memory(name, who)
        table.mac(self.mac_energy, who)


def _field(fields: tuple[int, ...], bits: int) -> int:
    """The width a value of `bits` bits takes in DRAM: the smallest field that holds it (exact bits if none)."""
    return next((f for f in fields if f >= bits), bits)


RUNNABLE = ("conv2d", "linear")


def load_arch(spec: str) -> Architecture:
    data, label = specfile.load(spec, "arch")
    top = specfile.Section(data, label)
    eng = top.section("engine", optional=True)
    engine = None
    if eng is not None:
        engine = EngineSpec(eng.number("m_lanes", 4, integer=True), eng.number("x_lanes", 4, integer=True),
                            eng.number("bus_bits", 64, integer=True))
        eng.done()
    dram, glb, pe = top.section("dram"), top.section("glb"), top.section("pe")
    mac = top.section("mac_array", optional=engine is not None)
    if engine is not None:
        if mac is not None or "bytes_per_cycle" in dram.data or "width_bits" in glb.data:
            raise HwgenError(f"{label}: an engine architecture takes its MAC array, DRAM and buffer widths from "
                             "'engine' (leave out mac_array, dram.bytes_per_cycle and glb.width_bits)")
        rows, cols, mac_energy = engine.m_lanes, engine.x_lanes, top.text("mac_energy", "mac")
        bytes_per_cycle, width, kib = engine.bus_bits / 8, engine.bus_bits, glb.get("kib", 0)
        if kib:
            kib = glb.number("kib", integer=True)
    else:
        rows, cols, mac_energy = mac.number("rows", integer=True), mac.number("cols", integer=True), mac.text("energy", "mac")
        bytes_per_cycle, width = dram.number("bytes_per_cycle"), glb.number("width_bits", 64, integer=True)
        kib = glb.number("kib")
    runs = top.get("runs", list(RUNNABLE))
    if not isinstance(runs, list) or not runs or not set(runs) <= set(RUNNABLE):
        raise HwgenError(f"{label}: 'runs' must be a non-empty list of {', '.join(RUNNABLE)}, got {runs!r}")
    transfers = dram.text("transfers", "elements")
    weights_layout = mac.text("weights", "format") if mac is not None else "format"
    for key, v, allowed in (("dram.transfers", transfers, ("elements", "rows")),
                            ("mac_array.weights", weights_layout, ("format", "lane_steps"))):
        if v not in allowed:
            raise HwgenError(f"{label}: '{key}' must be one of {', '.join(allowed)}, got {v!r}")
    layout = dict(
        runs=tuple(r for r in RUNNABLE if r in runs), beat_bytes=dram.number("beat_bytes", 1, integer=True),
        layer_bytes=dram.number("layer_bytes", 0, positive=False, integer=True), row_transfers=transfers == "rows",
        act_fields=dram.integers("act_fields"), weight_fields=dram.integers("weight_fields"),
        lane_steps=weights_layout == "lane_steps",
        channel_bytes=mac.number("channel_bytes", 0, positive=False, integer=True) if mac is not None else 0,
        id_bits=mac.number("id_bits", 8, integer=True) if mac is not None else 8)
    arch = Architecture(
        name=top.text("name"),
        description=top.text("description", "-"),
        dram_bytes_per_cycle=float(bytes_per_cycle),
        dram_energy=dram.text("energy", "dram"),
        glb_kib=float(kib),  # 0 for an engine sized to its checkpoint
        glb_width_bits=int(width),
        glb_energy=glb.text("energy", "sram"),
        rf_bytes=pe.number("rf_bytes", integer=True),
        rf_energy=pe.text("energy", "rf"),
        rows=rows,
        cols=cols,
        mac_energy=mac_energy,
        psum_bits=top.number("psum_bits", 32, integer=True),
        engine=engine,
        **layout,
    )
    for sec in (dram, glb, pe, mac, top):
        if sec is not None:
            sec.done()
    return arch
