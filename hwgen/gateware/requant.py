"""Requantization of one accumulator: `clamp((acc * M + (1 << (S - 1))) >> S, lo, hi)`.

Rounding uses the identity `(p + 2**(S-1)) >> S == ((p >> (S-1)) + 1) >> 1`, which needs no
variable-width constant; both shifts are arithmetic, as in `hwgen.intmath.requantize`.
With `half_even` set (per output channel, from the requant table), an exact tie (the bit below
the result set, every bit under it clear) keeps the truncated result when that is even: the
`"half_even"` rounding of `hwgen.intmath.requantize`.

The path is multiply, variable shift, round and clamp. The multiply is written as partial
products of `PART_BITS`-bit slices of the accumulator (each one 18x18 DSP multiply) added
afterwards, so a cut can sit between the DSPs and their sum. `cuts` (a subset of
`params.REQUANT_CUTS`) registers the path before the multiply (`inputs`), after the partial
products (`product`: the DSP output registers), after their sum (`sum`), after the shift
(`rounding`) and after the clamp (`output`). `y` follows the inputs `len(cuts)` cycles later
(`latency`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import intmath
from ..engine.params import REQUANT_CUTS
from .pipeline import cut

SHIFT_BITS = 6  # holds S up to MAX_SHIFT = 47
PART_BITS = 17  # an unsigned 17-bit accumulator slice times the 15-bit M is one 18x18 signed multiply


class Requant(wiring.Component):
    """`y` follows `acc`, `multiplier`, `shift`, `half_even`, `lo`, `hi` `latency` cycles later."""

    def __init__(self, acc_bits: int, cuts: tuple[str, ...] = ()):
        unknown = set(cuts) - set(REQUANT_CUTS)
        if unknown:
            raise ValueError(f"unknown requantization cuts {sorted(unknown)}")
        self.acc_bits, self.cuts = acc_bits, tuple(cuts)
        self.latency = len(self.cuts)
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

        def stage(name, **values):  # the values past cut `name`
            return {k: cut(m, name in self.cuts, v, f"{name}_{k}") for k, v in values.items()}

        v = stage("inputs", acc=self.acc, multiplier=self.multiplier, shift=self.shift, lo=self.lo, hi=self.hi,
                  half_even=self.half_even)
        starts = range(0, self.acc_bits, PART_BITS)
        slices = [v["acc"][lo:lo + PART_BITS] for lo in starts]
        slices[-1] = slices[-1].as_signed()  # the top slice carries the sign
        v = stage("product", **{f"part{i}": piece * v["multiplier"] for i, piece in enumerate(slices)},
                  s1=(v["shift"] - 1)[:SHIFT_BITS], lo=v["lo"], hi=v["hi"], half_even=v["half_even"])
        total = Signal(signed(self.acc_bits + intmath.MULT_BITS + 1))  # the width of acc * M (M unsigned)
        m.d.comb += total.eq(sum(v[f"part{i}"] << lo for i, lo in enumerate(starts)))
        v = stage("sum", product=total, s1=v["s1"], lo=v["lo"], hi=v["hi"], half_even=v["half_even"])
        product, s1 = v["product"], v["s1"]
        halved = product >> s1
        # the bits under the rounding position, masked by comparisons with S - 1 (no subtractor)
        below_half = product.as_unsigned() & Cat(*(s1 > i for i in range(len(product))))
        tie_to_even = v["half_even"] & halved[0] & ~halved[1] & (below_half == 0)
        v = stage("rounding", halved=halved, tie_to_even=tie_to_even, lo=v["lo"], hi=v["hi"])
        rounded = Mux(v["tie_to_even"], v["halved"] >> 1, (v["halved"] + 1) >> 1)
        y = Signal(signed(16))
        with m.If(rounded < v["lo"]):
            m.d.comb += y.eq(v["lo"])
        with m.Elif(rounded > v["hi"]):
            m.d.comb += y.eq(v["hi"])
        with m.Else():
            m.d.comb += y.eq(rounded)
        m.d.comb += self.y.eq(stage("output", y=y)["y"])
        return m
