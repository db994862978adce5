"""Requantization of one accumulator: `clamp((acc * M + (1 << (S - 1))) >> S, lo, hi)`.

Rounding uses the identity `(p + 2**(S-1)) >> S == ((p >> (S-1)) + 1) >> 1`, which needs no
variable-width constant; both shifts are arithmetic, as in `hwgen.intmath.requantize`.
With `half_even` set (per output channel, from the requant table), an exact tie (the bit below
the result set, every bit under it clear) keeps the truncated result when that is even: the
`"half_even"` rounding of `hwgen.intmath.requantize`.
"""

from __future__ import annotations

from amaranth.hdl import Const, Module, Mux, signed, unsigned
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
            "half_even": In(1),
            "y": Out(signed(16)),
        })

    def elaborate(self, platform):
        m = Module()
        product = self.acc * self.multiplier
        halved = product >> (self.shift - 1)[:SHIFT_BITS]
        below_half = product & ((Const(1, 1) << (self.shift - 1)[:SHIFT_BITS]) - 1)
        tie_to_even = self.half_even & halved[0] & ~halved[1] & (below_half == 0)
        rounded = Mux(tie_to_even, halved >> 1, (halved + 1) >> 1)
        with m.If(rounded < self.lo):
            m.d.comb += self.y.eq(self.lo)
        with m.Elif(rounded > self.hi):
            m.d.comb += self.y.eq(self.hi)
        with m.Else():
            m.d.comb += self.y.eq(rounded)
        return m
