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
(`latency`). With `dsp="ecp5"` the partial products are DSP cells whose own registers are the
`inputs` and `product` cuts of the multiply's operands and products (`gateware.dsp`).
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from .. import intmath
from ..engine.params import DSPS, REQUANT_CUTS
from . import dsp
from .pipeline import cut

SHIFT_BITS = 6  # holds S up to MAX_SHIFT = 47
PART_BITS = 17  # an unsigned 17-bit accumulator slice times the 15-bit M is one 18x18 signed multiply


class Requant(wiring.Component):
    """`y` follows `acc`, `multiplier`, `shift`, `half_even`, `lo`, `hi` `latency` cycles later."""

    def __init__(self, acc_bits: int, cuts: tuple[str, ...] = (), dsp: str = "fabric"):
        unknown = set(cuts) - set(REQUANT_CUTS)
        if unknown:
            raise ValueError(f"unknown requantization cuts {sorted(unknown)}")
        if dsp not in DSPS:
            raise ValueError(f"dsp must be one of {DSPS}, got {dsp!r}")
        if dsp != "fabric" and not {"inputs", "product"} <= set(cuts):
            raise ValueError(f"dsp {dsp}: the DSP cells' registers are the `inputs` and `product` cuts, got {cuts}")
        self.acc_bits, self.cuts, self.dsp = acc_bits, tuple(cuts), dsp
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

        ecp5 = self.dsp == "ecp5"  # the DSP cells register the multiply's operands and products themselves
        operands = {} if ecp5 else {"acc": self.acc, "multiplier": self.multiplier}
        v = stage("inputs", **operands, shift=self.shift, lo=self.lo, hi=self.hi, half_even=self.half_even)
        acc, multiplier = (self.acc, self.multiplier) if ecp5 else (v["acc"], v["multiplier"])
        starts = range(0, self.acc_bits, PART_BITS)
        slices = [acc[lo:lo + PART_BITS] for lo in starts]
        slices[-1] = slices[-1].as_signed()  # the top slice carries the sign
        if ecp5:  # each cell's input registers are the `inputs` cut, its output register the `product` cut
            parts = {f"part{i}": dsp.product(m, piece, multiplier, f"part{i}") for i, piece in enumerate(slices)}
            products = {}
        else:
            products = {f"part{i}": piece * multiplier for i, piece in enumerate(slices)}
        shift = v["shift"]
        width = self.acc_bits + intmath.MULT_BITS + 1  # the width of acc * M (M unsigned)
        # A tie is `product >> s1` (s1 = S - 1) odd with its bit 1 clear and every bit under s1 clear:
        # the low S + 1 bits of the product equal 1 << s1. Its mask and pattern depend on S alone, so
        # they are ready a stage before the product, each bit a compare of S with a constant (no
        # subtractor), and the tie flag is one compare without the variable shift. At s1 >= width - 1
        # (S = 0 wraps s1 to 63) the arithmetic shift leaves two copies of the sign bit, never a tie.
        # (Mask bit 0, S >= 0, is a constant: Verilator's lint flags the compare.)
        v = stage("product", **products,
                  s1=(shift - 1)[:SHIFT_BITS], tie_mask=Cat(Const(1, 1), *(shift >= i for i in range(1, width))),
                  tie_bits=Cat(*(shift == i + 1 for i in range(width))),
                  half_even=v["half_even"] & (shift != 0) & (shift < width), lo=v["lo"], hi=v["hi"])
        if not ecp5:
            parts = v
        total = Signal(signed(width))
        m.d.comb += total.eq(sum(parts[f"part{i}"] << lo for i, lo in enumerate(starts)))
        v = stage("sum", product=total, s1=v["s1"], tie_mask=v["tie_mask"], tie_bits=v["tie_bits"],
                  lo=v["lo"], hi=v["hi"], half_even=v["half_even"])
        product = v["product"]
        tie_to_even = v["half_even"] & ((product.as_unsigned() & v["tie_mask"]) == v["tie_bits"])
        v = stage("rounding", halved=product >> v["s1"], tie_to_even=tie_to_even, lo=v["lo"], lo_m1=v["lo"] - 1,
                  hi=v["hi"])
        # rounded = (halved + 1 - tie) >> 1. Its low 16 bits, all y needs when it is in range, come from a
        # 17-bit add; the clamp compares halved itself with the bounds doubled (`rounded < lo` is
        # `halved + 1 - tie < 2 lo`, `rounded > hi` is `halved + 1 - tie >= 2 hi + 2`), one compare per
        # value of the tie flag, so no compare waits for the add.
        halved, tie = v["halved"], v["tie_to_even"]
        rounded = (halved[:17] + ~tie)[1:17].as_signed()
        below = Mux(tie, halved < Cat(Const(0, 1), v["lo"]).as_signed(),
                    halved < Cat(Const(1, 1), v["lo_m1"]).as_signed())
        above = Mux(tie, halved > Cat(Const(1, 1), v["hi"]).as_signed(), halved > Cat(Const(0, 1), v["hi"]).as_signed())
        y = Signal(signed(16))
        with m.If(below):
            m.d.comb += y.eq(v["lo"])
        with m.Elif(above):
            m.d.comb += y.eq(v["hi"])
        with m.Else():
            m.d.comb += y.eq(rounded)
        m.d.comb += self.y.eq(stage("output", y=y)["y"])
        return m
