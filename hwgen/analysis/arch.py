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
    )
    for sec in (dram, glb, pe, mac, top):
        if sec is not None:
            sec.done()
    return arch
