"""Read requests: turn "read N beats from address A" into bursts on the engine's request stream.

Data beats come back on the `rd` stream in request order; the block that asked for them counts
them, so the reader only has to issue the requests.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from ..engine.params import ADDR_BITS, LEN_BITS, MAX_BURST

REQUEST = data.StructLayout({"addr": ADDR_BITS, "len": LEN_BITS, "write": 1})
COUNT_BITS = 32


class Reader(wiring.Component):
    """On `start`, requests `beats` beats from `addr` in bursts of at most MAX_BURST."""

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
        # `left != 0` as a register: the engine chooses the request stream's owner from it, and a 32-bit
        # compare in front of that choice was the engine's critical path (docs/implement.md)
        pending = Signal()
        burst = Signal(LEN_BITS)
        m.d.comb += [
            burst.eq(Mux(left < MAX_BURST, left, MAX_BURST)),
            self.req.payload.len.eq(burst),
            self.req.payload.write.eq(0),
            self.req.valid.eq(pending),
            self.busy.eq(pending),
        ]
        with m.If(self.start):
            m.d.sync += [cursor.eq(self.addr), left.eq(self.beats), pending.eq(self.beats != 0)]
        with m.Elif(self.req.valid & self.req.ready):
            # left - burst != 0 exactly when more than one burst was left
            m.d.sync += [cursor.eq(cursor + burst * self.beat_bytes), left.eq(left - burst),
                         pending.eq(left > MAX_BURST)]
        return m
