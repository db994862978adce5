"""The engine's 1R1W buffers, as `lib.memory` (simulation) or as `hwgen_sram_1r1w` instances.

Generated Verilog instantiates `rtl_templates/hwgen_sram_1r1w.v`, whose behavioural model a user can
swap for a foundry or FPGA macro; `amaranth.sim` runs the same component on `lib.memory`, with
identical timing: reads are synchronous, hold while `rd_en` is low, and return old data when the
same address is written in the same cycle.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module, unsigned
from amaranth.lib import memory, wiring
from amaranth.lib.wiring import In, Out

MODULE = "hwgen_sram_1r1w"


def addr_bits(depth: int) -> int:
    return max(1, (depth - 1).bit_length())


class Sram(wiring.Component):
    def __init__(self, width: int, depth: int, granularity: int | None = None, cells: bool = False):
        self.width, self.depth, self.cells = width, depth, cells
        self.granularity = granularity or width
        if width % self.granularity:
            raise ValueError(f"SRAM width {width} is not a multiple of its granularity {self.granularity}")
        super().__init__({
            "rd_en": In(1),
            "rd_addr": In(addr_bits(depth)),
            "rd_data": Out(width),
            "wr_en": In(width // self.granularity),
            "wr_addr": In(addr_bits(depth)),
            "wr_data": In(width),
        })

    def describe(self) -> dict:
        """The instance's parameters, for the manifest."""
        return {"width": self.width, "depth": self.depth, "granularity": self.granularity}

    def elaborate(self, platform):
        m = Module()
        if self.cells:
            m.submodules.cell = Instance(
                MODULE, p_WIDTH=self.width, p_DEPTH=self.depth, p_GRAN=self.granularity,
                p_ABITS=addr_bits(self.depth), i_clk=ClockSignal(), i_rd_en=self.rd_en, i_rd_addr=self.rd_addr,
                o_rd_data=self.rd_data, i_wr_en=self.wr_en, i_wr_addr=self.wr_addr, i_wr_data=self.wr_data)
            return m
        m.submodules.mem = mem = memory.Memory(shape=unsigned(self.width), depth=self.depth, init=[])
        rport = mem.read_port()
        wport = mem.write_port(granularity=self.granularity)
        m.d.comb += [rport.en.eq(self.rd_en), rport.addr.eq(self.rd_addr), self.rd_data.eq(rport.data),
                     wport.en.eq(self.wr_en), wport.addr.eq(self.wr_addr), wport.data.eq(self.wr_data)]
        return m
