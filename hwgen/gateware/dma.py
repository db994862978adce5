"""Read requests: turn "read N beats from address A" into bursts on the engine's request stream.

Data beats come back on the `rd` stream in request order; the block that asked for them counts
them, so the reader only has to issue the requests.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal, signed
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..engine.params import ADDR_BITS, LEN_BITS, MAX_BURST

REQUEST = data.StructLayout({"addr": ADDR_BITS, "len": LEN_BITS, "write": 1})
COUNT_BITS = 32


class Reader(wiring.Component):
    """On `start`, requests `beats` beats from `addr` in bursts of at most MAX_BURST; `start` only while not `busy`."""

    def __init__(self, beat_bytes: int):
        self.beat_bytes = beat_bytes
        super().__init__({
            "start": In(1),
            "addr": In(ADDR_BITS),
            "beats": In(COUNT_BITS),
            "busy": Out(1),
            "req": Out(stream.Signature(REQUEST)),
        })

    def elaborate(self, platform):
        m = Module()
        cursor = self.req.payload.addr  # registered: the next burst's address
        left = Signal(COUNT_BITS)
        # what is left after a full burst, and whether that is more than another: registers loaded beside
        # `left`, so an accepted burst's updates start at flip-flops (`left` and the burst's length were a
        # compare and a subtraction in one cycle, 127 endpoints failing at 150 MHz, docs/implement.md)
        over = Signal(signed(COUNT_BITS + 1))  # left - MAX_BURST
        many = Signal()  # left > MAX_BURST
        # `left != 0` as a register: the engine chooses the request stream's owner from it, and a 32-bit
        # compare in front of that choice was the engine's critical path (docs/implement.md)
        pending = Signal()
        burst = Signal(LEN_BITS)
        m.d.comb += [
            burst.eq(Mux(over < 0, left, MAX_BURST)),
            self.req.payload.len.eq(burst),
            self.req.payload.write.eq(0),
            self.req.valid.eq(pending),
            self.busy.eq(pending),
        ]
        # idle, the registers follow `addr` and `beats` whether or not `start` is up (a start comes only while
        # idle: every user starts a load after the previous one's data, so after its last request): `start`
        # then reaches `pending` alone, not the clock enables of the 100 flip-flops below
        with m.If(~pending):
            m.d.sync += [cursor.eq(self.addr), left.eq(self.beats), over.eq(self.beats - MAX_BURST),
                         many.eq(self.beats > MAX_BURST), pending.eq(self.start & (self.beats != 0))]
        with m.Elif(self.req.ready):
            # a burst of less than all that is left leaves `over`; after the last, `left` is not read again
            m.d.sync += [cursor.eq(cursor + burst * self.beat_bytes), left.eq(over), over.eq(over - MAX_BURST),
                         many.eq(over > MAX_BURST), pending.eq(many)]
        return m
