"""The AXI engine top (`hwgen generate --interface axi`): the engine behind an AXI4 master and an
AXI4-Lite register file, with an interrupt.

`AxiTop(engine, ...)` wraps any component with the engine's ports (`Engine`, or `EngineInstance`,
the generated `hwgen_engine` module as a Verilog instance) without touching its inside:
- `AxiMaster` carries its memory traffic (`m_axi_*`);
- `AxiLiteSlave` serves the registers of `hwgen.engine.registers` (`s_axil_*`): a start runs
  DESC_COUNT descriptors from DESC_ADDR through `Chain` (hwgen.gateware.chain: layers on the
  engine, network ops on `netops` when given); STATUS, ERROR_CAUSE, IRQ_ENABLE/IRQ_STATUS and `irq`, BUILD_ID, the
  configuration, and the performance counters.
A run ends (BUSY low, DONE and IRQ_STATUS.DONE set) when the chain has signalled done and every
write response has come back, so the results are in memory when the host sees DONE.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Instance, Module, ResetSignal, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import Out

from ..engine import registers as regs
from .axi import COUNT_BITS, AxiLiteSlave, AxiMaster, axi4_master_members, axil_slave_members
from .chain import COUNT_BITS as DESC_COUNT_BITS, Chain


def engine_signature(params):
    from .engine import Engine

    engine = Engine(params)
    engine._MustUse__silence = True  # built for its signature only: not a forgotten submodule
    return engine.signature


class EngineInstance(wiring.Component):
    """The generated `hwgen_engine` Verilog module, instantiated by name with the engine's ports."""

    def __init__(self, params, module: str):
        self.module = module
        super().__init__(engine_signature(params))

    def elaborate(self, platform):
        m = Module()
        ports = {"i_clk": ClockSignal(), "i_rst": ResetSignal()}
        for path, member, value in self.signature.flatten(self):
            name = "__".join(str(p) for p in path)
            ports[("o_" if member.flow == Out else "i_") + name] = Value.cast(value)
        m.submodules.engine = Instance(self.module, **ports)
        return m


class AxiTop(wiring.Component):
    """`engine` behind `m_axi_*` / `s_axil_*` / `irq`; `config` holds the configuration registers'
    values (`registers.config_values`), `build_id` the BUILD_ID register; `netops` the network-op
    unit (`NetOps`) or None."""

    def __init__(self, engine: wiring.Component, *, bus_bits: int, id_bits: int, build_id: int, config: dict,
                 netops: wiring.Component | None = None):
        self.engine, self.netops, self.bus_bits, self.id_bits = engine, netops, bus_bits, id_bits
        self.build_id, self.config = build_id, dict(config)
        super().__init__({**axi4_master_members(bus_bits, id_bits), **axil_slave_members(regs.ADDR_BITS),
                          "irq": Out(1)})

    def _pass_through(self, m, sub, members):
        for name, member in members.items():
            outer, inner = getattr(self, name), getattr(sub, name)
            m.d.comb += (outer.eq(inner) if member.flow == Out else inner.eq(outer))

    def elaborate(self, platform):
        m = Module()
        m.submodules.chain = eng = Chain(self.engine, self.bus_bits, self.netops)
        m.submodules.master = axi = AxiMaster(self.bus_bits, self.id_bits)
        m.submodules.lite = lite = AxiLiteSlave(regs.ADDR_BITS)
        self._pass_through(m, axi, axi4_master_members(self.bus_bits, self.id_bits))
        self._pass_through(m, lite, axil_slave_members(regs.ADDR_BITS))
        wiring.connect(m, eng.req, axi.req)
        wiring.connect(m, axi.rd, eng.rd)
        wiring.connect(m, eng.wr, axi.wr)

        busy, done, error = Signal(), Signal(), Signal()
        cause = Signal(len(regs.BY_NAME["ERROR_CAUSE"].fields))
        engine_done = Signal()  # the engine finished; write responses may still be outstanding
        desc_addr, mem_base = Signal(32), Signal(32)
        desc_count = Signal(DESC_COUNT_BITS)
        irq_enable, irq_status = Signal(2), Signal(2)
        counters = {name: Signal(COUNT_BITS, name=name.lower()) for name in regs.COUNTERS}

        def writes(name):
            return lite.w_en & (lite.w_addr == regs.offset(name))

        start = writes("CONTROL") & lite.w_data[0] & ~busy
        finish = busy & (eng.done | engine_done) & ~axi.writes_pending & ~start
        bb = self.bus_bits // 8
        m.d.comb += [
            eng.start.eq(start), eng.desc_addr.eq(desc_addr), eng.desc_count.eq(desc_count),
            eng.mem_idle.eq(~axi.writes_pending), axi.base.eq(mem_base),
            self.irq.eq((irq_status & irq_enable) != 0),
        ]
        with m.If(writes("DESC_ADDR")):
            m.d.sync += desc_addr.eq(lite.w_data)
        with m.If(writes("DESC_COUNT")):
            m.d.sync += desc_count.eq(lite.w_data)
        with m.If(writes("MEM_BASE")):
            m.d.sync += mem_base.eq(lite.w_data & ~(regs.MEM_BASE_ALIGN - 1))
        with m.If(writes("IRQ_ENABLE")):
            m.d.sync += irq_enable.eq(lite.w_data)

        new_cause = Signal(len(cause))
        m.d.comb += [new_cause[regs.ERROR_READ].eq(axi.read_error), new_cause[regs.ERROR_WRITE].eq(axi.write_error),
                     new_cause[regs.ERROR_DESCRIPTOR].eq(eng.bad_descriptor), new_cause[regs.ERROR_NETOP].eq(eng.bad_op)]
        raised = Signal(2)  # IRQ_STATUS bits set this cycle
        m.d.comb += [raised[regs.IRQ_DONE].eq(finish), raised[regs.IRQ_ERROR].eq(new_cause != 0)]
        cleared = Signal(2)
        with m.If(writes("IRQ_STATUS")):
            m.d.comb += cleared.eq(lite.w_data)
        m.d.sync += irq_status.eq((irq_status & ~cleared) | raised)

        with m.If(start):
            m.d.sync += [busy.eq(1), done.eq(0), error.eq(0), cause.eq(0), engine_done.eq(0)]
            m.d.sync += [c.eq(0) for c in counters.values()]
        with m.Else():
            with m.If(new_cause != 0):
                m.d.sync += [error.eq(1), cause.eq(cause | new_cause)]
            with m.If(finish):
                m.d.sync += [busy.eq(0), done.eq(1), engine_done.eq(0)]
            with m.Elif(eng.done):
                m.d.sync += engine_done.eq(1)
            with m.If(busy):
                stall_write = ((eng.wr.valid & ~eng.wr.ready) | (axi.m_axi_awvalid & ~axi.m_axi_awready)
                               | engine_done)
                m.d.sync += [
                    counters["BUSY_CYCLES"].eq(counters["BUSY_CYCLES"] + 1),
                    counters["BYTES_READ"].eq(counters["BYTES_READ"] + (axi.m_axi_rvalid & axi.m_axi_rready) * bb),
                    counters["BYTES_WRITTEN"].eq(counters["BYTES_WRITTEN"]
                                                 + (axi.m_axi_wvalid & axi.m_axi_wready) * bb),
                    counters["STALL_READ"].eq(counters["STALL_READ"] + (axi.read_pending & ~axi.m_axi_rvalid)),
                    counters["STALL_WRITE"].eq(counters["STALL_WRITE"] + stall_write),
                    counters["MAC_ACTIVE"].eq(counters["MAC_ACTIVE"] + self.engine.mac_active),
                ]

        status = Signal(regs.DATA_BITS)
        for field, value in (("BUSY", busy), ("DONE", done), ("ERROR", error)):
            m.d.comb += status[regs.BY_NAME["STATUS"].fields[field][0]].eq(value)
        values = {
            "STATUS": status, "ERROR_CAUSE": cause, "DESC_ADDR": desc_addr, "DESC_COUNT": desc_count,
            "MEM_BASE": mem_base, "IRQ_ENABLE": irq_enable, "IRQ_STATUS": irq_status, "BUILD_ID": self.build_id,
            **self.config, **counters,
        }
        with m.Switch(lite.r_addr):
            for name, value in values.items():
                with m.Case(regs.offset(name)):
                    m.d.comb += lite.r_data.eq(value)
        return m
