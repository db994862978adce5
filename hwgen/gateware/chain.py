"""Descriptor chains: one start runs `desc_count` descriptors laid back to back from `desc_addr`.

`Chain` sits between the memory port and the units that run descriptors: the conv engine
(`Engine`, or the generated `hwgen_engine` as an instance) and, when given, the network-op unit
(`hwgen.gateware.netops.NetOps`). For each descriptor it
  1. reads the 64 bytes itself and looks at the magic (the same bit offset in both kinds);
  2. a layer descriptor (`descriptor.MAGIC`): starts the engine at that address and answers the
     engine's own descriptor read from the copy it holds (the request is taken, no memory access),
     so a chain moves exactly the bytes of the same layers started one by one; then hands the
     memory port to the engine until its `done`;
     a network-op descriptor (`netop.NETOP_MAGIC`): hands the descriptor's bits and the port to
     the network-op unit until its `done`;
     one whose op the unit was built without (`NetOps.ops`) ends the chain with `bad_op`, anything
     else with `bad_descriptor`;
  3. waits for `mem_idle` (every write response back: AXI does not order a read after a write),
     so the next descriptor reads what this one wrote; then the next descriptor, 64 bytes on.
`done` pulses once, after the last descriptor. `desc_count` 0 runs one descriptor, as 1 does.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..engine import descriptor, netop
from ..engine.memory_map import ceil_div
from ..engine.params import ADDR_BITS
from .dma import REQUEST

COUNT_BITS = 16  # descriptors per chain


class Chain(wiring.Component):
    """`engine` (and `netops`, or None) behind one memory port, walking a descriptor chain."""

    def __init__(self, engine: wiring.Component, bus_bits: int, netops: wiring.Component | None = None):
        self.engine, self.netops, self.bus_bits = engine, netops, bus_bits
        super().__init__({
            "req": Out(stream.Signature(REQUEST)),
            "rd": In(stream.Signature(bus_bits)),
            "wr": Out(stream.Signature(bus_bits)),
            "desc_addr": In(ADDR_BITS),
            "desc_count": In(COUNT_BITS),
            "start": In(1),
            "mem_idle": In(1),
            "busy": Out(1),
            "done": Out(1),
            "bad_descriptor": Out(1),  # with `done`: a descriptor of neither kind ended the chain
            "bad_op": Out(1),  # with `done`: a network op the unit was built without ended the chain
        })

    def elaborate(self, platform):
        m = Module()
        m.submodules.engine = eng = self.engine
        ops = self.netops
        if ops is not None:
            m.submodules.netops = ops
        desc_beats = ceil_div(descriptor.DESCRIPTOR_BYTES, self.bus_bits // 8)
        raw = Signal(desc_beats * self.bus_bits)
        magic = raw[netop.MAGIC_OFFSET:netop.MAGIC_OFFSET + 16]
        addr = Signal(ADDR_BITS)
        left = Signal(COUNT_BITS)
        got = Signal(range(desc_beats + 1))
        replay = Signal(desc_beats * self.bus_bits)
        if ops is not None:
            m.d.comb += ops.descriptor.eq(raw[:netop.LAYOUT.size])

        def port(unit):
            m.d.comb += [
                self.req.valid.eq(unit.req.valid), self.req.payload.eq(unit.req.payload),
                unit.req.ready.eq(self.req.ready),
                unit.rd.valid.eq(self.rd.valid), unit.rd.payload.eq(self.rd.payload), self.rd.ready.eq(unit.rd.ready),
                self.wr.valid.eq(unit.wr.valid), self.wr.payload.eq(unit.wr.payload), unit.wr.ready.eq(self.wr.ready),
            ]

        m.d.comb += eng.desc_addr.eq(addr)
        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += [addr.eq(self.desc_addr), left.eq(self.desc_count)]
                    m.next = "FETCH_REQ"
            with m.State("FETCH_REQ"):
                m.d.comb += [self.busy.eq(1), self.req.valid.eq(1), self.req.payload.addr.eq(addr),
                             self.req.payload.len.eq(desc_beats)]
                m.d.sync += got.eq(0)
                with m.If(self.req.ready):
                    m.next = "FETCH"
            with m.State("FETCH"):
                m.d.comb += [self.busy.eq(1), self.rd.ready.eq(1)]
                with m.If(self.rd.valid):
                    m.d.sync += [got.eq(got + 1),
                                 raw.eq(Cat(raw[self.bus_bits:], self.rd.payload) if desc_beats > 1 else self.rd.payload)]
                    with m.If(got == desc_beats - 1):
                        m.next = "DISPATCH"
            with m.State("DISPATCH"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [got.eq(0), replay.eq(raw)]
                with m.If(magic == descriptor.MAGIC):
                    m.d.comb += eng.start.eq(1)
                    m.next = "REPLAY_REQ"
                if ops is not None:
                    op = raw[netop.LAYOUT["op"].offset:][:netop.LAYOUT["op"].width]
                    with m.Elif((magic == netop.NETOP_MAGIC) & sum(op == netop.OPS[o] for o in ops.ops).bool()):
                        m.d.comb += ops.start.eq(1)
                        m.next = "NETOP"
                with m.Elif(magic == netop.NETOP_MAGIC):  # an op the network-op unit was built without
                    m.d.comb += [self.done.eq(1), self.bad_op.eq(1)]
                    m.next = "IDLE"
                with m.Else():
                    m.d.comb += [self.done.eq(1), self.bad_descriptor.eq(1)]
                    m.next = "IDLE"
            with m.State("REPLAY_REQ"):  # the engine's descriptor read: taken here, not sent to memory
                m.d.comb += [self.busy.eq(1), eng.req.ready.eq(1)]
                with m.If(eng.req.valid):
                    m.next = "REPLAY"
            with m.State("REPLAY"):
                m.d.comb += [self.busy.eq(1), eng.rd.valid.eq(1), eng.rd.payload.eq(replay[:self.bus_bits])]
                with m.If(eng.rd.ready):
                    m.d.sync += [got.eq(got + 1), replay.eq(replay >> self.bus_bits)]
                    with m.If(got == desc_beats - 1):
                        m.next = "CONV"
            with m.State("CONV"):
                m.d.comb += self.busy.eq(1)
                port(eng)
                with m.If(eng.done):
                    m.next = "NEXT"
            if ops is not None:
                with m.State("NETOP"):
                    m.d.comb += self.busy.eq(1)
                    port(ops)
                    with m.If(ops.done):
                        m.next = "NEXT"
            with m.State("NEXT"):
                m.d.comb += self.busy.eq(1)
                with m.If(self.mem_idle):
                    m.d.sync += [addr.eq(addr + descriptor.DESCRIPTOR_BYTES), left.eq(left - 1)]
                    with m.If(left <= 1):
                        m.d.comb += self.done.eq(1)
                        m.next = "IDLE"
                    with m.Else():
                        m.next = "FETCH_REQ"
        return m


class ChainShell(wiring.Component):
    """`Chain` behind the conv engine's own ports (`desc_addr`, `start`, `busy`, `done`, `req`, `rd`,
    `wr`, `mac_active`), walking `count` descriptors per start: a whole network where a single layer's engine
    sits, so the generated `hwgen_top` shell (rtl_templates/hwgen_top.v) wraps it unchanged and the
    fast simulation mode runs a chain (`hwgen.simulate.run_chain(mode="fast")`). On that stream bus
    a write is in memory once its beat is taken, before the unit's `done`, so `mem_idle` is 1."""

    def __init__(self, engine: wiring.Component, bus_bits: int, netops: wiring.Component | None, count: int):
        if not 1 <= count < 1 << COUNT_BITS:
            raise ValueError(f"a chain of {count} descriptors")
        self.engine, self.netops, self.bus_bits, self.count = engine, netops, bus_bits, count
        super().__init__(engine.signature)  # the engine's own ports

    def elaborate(self, platform):
        m = Module()
        m.submodules.chain = chain = Chain(self.engine, self.bus_bits, self.netops)
        wiring.connect(m, chain.req, wiring.flipped(self.req))
        wiring.connect(m, wiring.flipped(self.rd), chain.rd)
        wiring.connect(m, chain.wr, wiring.flipped(self.wr))
        m.d.comb += [chain.desc_addr.eq(self.desc_addr), chain.desc_count.eq(self.count), chain.start.eq(self.start),
                     chain.mem_idle.eq(1), self.busy.eq(chain.busy), self.done.eq(chain.done),
                     self.mac_active.eq(self.engine.mac_active)]
        return m
