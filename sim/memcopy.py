"""A small DMA copy engine with the engine's top-level memory contract, to prove the testbench.

It is the simplest bus master that exercises everything the DRAM model does: a descriptor read,
read bursts, write bursts, `start`/`busy`/`done`. The tests build it with the same runner as the
generated engine, so the DRAM model, the stall logic, the byte counts and the Verilator build are
validated on a real design before (and independently of) the convolution engine.

Descriptor (little-endian 32-bit words at `desc_addr`): `src`, `dst`, `beats`. The copy moves
`beats` bus beats from `src` to `dst` in bursts of at most `max_burst` beats, each burst read
fully before it is written.
"""

from __future__ import annotations

from amaranth import Array, Module, Signal
from amaranth.back import verilog
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

ADDR_BITS = 32
LEN_BITS = 16
DESC_WORDS = 3


def req_layout() -> data.StructLayout:
    return data.StructLayout({"addr": ADDR_BITS, "len": LEN_BITS, "write": 1})


def req_layout_bits() -> dict:
    """The request fields as `[lsb, width]` for `sim.dram.ReqLayout`."""
    return {"addr": [0, ADDR_BITS], "len": [ADDR_BITS, LEN_BITS], "write": [ADDR_BITS + LEN_BITS, 1]}


class MemCopy(wiring.Component):
    def __init__(self, bus_bits: int = 64, max_burst: int = 4, unstable_wr: bool = False):
        if bus_bits % 32 or bus_bits < 32:
            raise ValueError(f"bus width {bus_bits} must be a multiple of 32 bits")
        self.bus_bits = bus_bits
        self.max_burst = max_burst
        self.unstable_wr = unstable_wr  # a deliberate stream-rule violation, for the testbench's checks
        self.desc_beats = -(-DESC_WORDS * 32 // bus_bits)
        super().__init__({
            "desc_addr": In(ADDR_BITS),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "mac_active": Out(1),  # the engine's port, for the hwgen_top shell; 0: no MAC array here
            "req": Out(stream.Signature(req_layout())),
            "rd": In(stream.Signature(bus_bits)),
            "wr": Out(stream.Signature(bus_bits)),
        })

    def elaborate(self, platform):
        m = Module()
        bus_bytes = self.bus_bits // 8
        desc = Signal(self.desc_beats * self.bus_bits)
        src, dst, left = Signal(ADDR_BITS), Signal(ADDR_BITS), Signal(ADDR_BITS)
        chunk = Signal(LEN_BITS)
        count = Signal(LEN_BITS)
        buf = Array(Signal(self.bus_bits, name=f"buf{i}") for i in range(self.max_burst))

        if self.unstable_wr:
            # Breaks the stream rule: the offered beat changes every cycle until it is accepted.
            ticks = Signal(self.bus_bits)
            m.d.sync += ticks.eq(ticks + 1)
            m.d.comb += self.wr.payload.eq(buf[count] ^ ticks)
        else:
            m.d.comb += self.wr.payload.eq(buf[count])
        with m.FSM() as fsm:
            with m.State("IDLE"):
                with m.If(self.start):
                    m.d.sync += src.eq(self.desc_addr)  # src holds the descriptor address until parsed
                    m.next = "DESC_REQ"
            with m.State("DESC_REQ"):
                m.d.comb += [self.req.valid.eq(1), self.req.payload.addr.eq(src),
                             self.req.payload.len.eq(self.desc_beats), self.req.payload.write.eq(0)]
                with m.If(self.req.ready):
                    m.d.sync += count.eq(0)
                    m.next = "DESC_RD"
            with m.State("DESC_RD"):
                m.d.comb += self.rd.ready.eq(1)
                with m.If(self.rd.valid):
                    # Beats arrive lowest address first: shift them in from the top.
                    m.d.sync += [desc.eq((desc >> self.bus_bits) | (self.rd.payload << (len(desc) - self.bus_bits))),
                                 count.eq(count + 1)]
                    with m.If(count == self.desc_beats - 1):
                        m.next = "PARSE"
            with m.State("PARSE"):
                m.d.sync += [src.eq(desc[0:32]), dst.eq(desc[32:64]), left.eq(desc[64:96])]
                with m.If(desc[64:96] == 0):
                    m.next = "DONE"
                with m.Else():
                    m.next = "RD_REQ"
            with m.State("RD_REQ"):
                with m.If(left >= self.max_burst):
                    m.d.sync += chunk.eq(self.max_burst)
                with m.Else():
                    m.d.sync += chunk.eq(left)
                m.d.sync += count.eq(0)
                m.next = "RD_REQ_SEND"
            with m.State("RD_REQ_SEND"):
                m.d.comb += [self.req.valid.eq(1), self.req.payload.addr.eq(src),
                             self.req.payload.len.eq(chunk), self.req.payload.write.eq(0)]
                with m.If(self.req.ready):
                    m.next = "RD_DATA"
            with m.State("RD_DATA"):
                m.d.comb += self.rd.ready.eq(1)
                with m.If(self.rd.valid):
                    m.d.sync += [buf[count].eq(self.rd.payload), count.eq(count + 1)]
                    with m.If(count == chunk - 1):
                        m.next = "WR_REQ"
            with m.State("WR_REQ"):
                m.d.comb += [self.req.valid.eq(1), self.req.payload.addr.eq(dst),
                             self.req.payload.len.eq(chunk), self.req.payload.write.eq(1)]
                with m.If(self.req.ready):
                    m.d.sync += count.eq(0)
                    m.next = "WR_DATA"
            with m.State("WR_DATA"):
                m.d.comb += self.wr.valid.eq(1)
                with m.If(self.wr.ready):
                    m.d.sync += count.eq(count + 1)
                    with m.If(count == chunk - 1):
                        m.d.sync += [src.eq(src + chunk * bus_bytes), dst.eq(dst + chunk * bus_bytes),
                                     left.eq(left - chunk)]
                        with m.If(left == chunk):
                            m.next = "DONE"
                        with m.Else():
                            m.next = "RD_REQ"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        m.d.comb += self.busy.eq(~fsm.ongoing("IDLE"))
        return m


def memcopy_verilog(bus_bits: int = 64, max_burst: int = 4, unstable_wr: bool = False) -> str:
    top = MemCopy(bus_bits, max_burst, unstable_wr)
    return verilog.convert(top, name="memcopy", emit_src=False)
