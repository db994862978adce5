"""Requantization of one accumulator: `clamp((acc * M + (1 << (S - 1))) >> S, lo, hi)`.

Rounding uses the identity `(p + 2**(S-1)) >> S == ((p >> (S-1)) + 1) >> 1`, which needs no
variable-width constant; both shifts are arithmetic, as in `hwgen.intmath.requantize`.
"""

from __future__ import annotations

from amaranth.hdl import Module, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import intmath

SHIFT_BITS = 6  # holds S up to MAX_SHIFT = 47


class Requant(wiring.Component):
    """Combinational: `y` follows `acc`, `multiplier`, `shift`, `lo`, `hi` in the same cycle."""

    def __init__(self, acc_bits: int):
        self.acc_bits = acc_bits
        super().__init__({
            "acc": In(signed(acc_bits)),
            "multiplier": In(unsigned(intmath.MULT_BITS)),
            "shift": In(unsigned(SHIFT_BITS)),
            "lo": In(signed(16)),
            "hi": In(signed(16)),
            "y": Out(signed(16)),
        })

    def elaborate(self, platform):
        m = Module()
        product = self.acc * self.multiplier
        halved = product >> (self.shift - 1)[:SHIFT_BITS]
        rounded = (halved + 1) >> 1
        with m.If(rounded < self.lo):
            m.d.comb += self.y.eq(self.lo)
        with m.Elif(rounded > self.hi):
            m.d.comb += self.y.eq(self.hi)
        with m.Else():
            m.d.comb += self.y.eq(rounded)
        return m
