"""The datapath's multipliers as ECP5 DSP cells with their own registers (`EngineParams.dsp == "ecp5"`).

Yosys maps `a * b` onto a MULT18X18D without using the cell's registers, so a product between two
register cuts (the MAC array's `operands` and `product`, the requantizer's `inputs` and `product`)
is a fabric flip-flop, a route, the ~4 ns multiply, a route and a fabric flip-flop: the DSP paths
that cap the engine near 110 MHz (docs/implement.md). A `Multiplier` is the cell itself, its input
registers (`REG_INPUTA_CLK`, `REG_INPUTB_CLK`) and output register (`REG_OUTPUT_CLK`) on CLK0 and
always enabled, as a `pipeline.cut` is: `p` is `a * b` `LATENCY` cycles after `a` and `b`, the two
cuts' latency, so the schedule does not change. Each cell registers its own operands, so the
fabric's shared operand registers go away with it.

`amaranth.sim` cannot run an Instance: the generated Verilog is simulated with `MODEL`
(rtl_templates/hwgen_mult18x18d.v, a behavioural model of the subset used here, for Verilator and
Icarus only); Yosys gets the real cell, its ECP5 black box.
"""

from __future__ import annotations

from amaranth.hdl import ClockSignal, Const, Instance, Module, Shape, Signal, Value
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

CELL = "MULT18X18D"
MODEL = "hwgen_mult18x18d.v"  # the cell's simulation model, written into the generated folder
OPERAND_BITS = 18
PRODUCT_BITS = 2 * OPERAND_BITS
LATENCY = 2  # input and output registers


class Multiplier(wiring.Component):
    """`p = a * b`, `LATENCY` cycles after `a` and `b`, in one MULT18X18D; `p` has the shape Amaranth
    gives `a * b`. Each operand is signed or unsigned by its shape (the cell's SIGNEDA / SIGNEDB)."""

    def __init__(self, a_shape, b_shape):
        shapes = {"a": Shape.cast(a_shape), "b": Shape.cast(b_shape)}
        for name, shape in shapes.items():
            if not 1 <= shape.width <= OPERAND_BITS:
                raise ValueError(f"multiplier operand {name} must be 1 to {OPERAND_BITS} bits, got {shape}")
        self.a_shape, self.b_shape = shapes["a"], shapes["b"]
        super().__init__({
            "a": In(self.a_shape),
            "b": In(self.b_shape),
            "p": Out((Signal(self.a_shape) * Signal(self.b_shape)).shape()),
        })

    def elaborate(self, platform):
        m = Module()
        # each operand extended to the cell's 18 bits by its own signedness
        a, b, p = Signal(OPERAND_BITS), Signal(OPERAND_BITS), Signal(PRODUCT_BITS)
        m.d.comb += [a.eq(self.a), b.eq(self.b)]
        ports = {f"i_{port}{i}": bus[i] for port, bus in (("A", a), ("B", b)) for i in range(OPERAND_BITS)}
        ports.update({f"o_P{i}": p[i] for i in range(PRODUCT_BITS)})
        ports.update({f"i_C{i}": Const(0, 1) for i in range(OPERAND_BITS)})  # tied as Yosys's own mapping ties them
        m.submodules.cell = Instance(
            CELL, p_REG_INPUTA_CLK="CLK0", p_REG_INPUTB_CLK="CLK0", p_REG_OUTPUT_CLK="CLK0",
            i_SIGNEDA=Const(self.a_shape.signed, 1), i_SIGNEDB=Const(self.b_shape.signed, 1),
            i_SOURCEA=Const(0, 1), i_SOURCEB=Const(0, 1),
            i_CLK0=ClockSignal(), i_CE0=Const(1, 1), i_RST0=Const(0, 1), **ports)
        # the 36-bit product holds every product of two 18-bit operands; it is signed when an operand is
        m.d.comb += self.p.eq(p.as_signed() if self.a_shape.signed or self.b_shape.signed else p)
        return m


def product(m: Module, a, b, name: str):
    """`a * b` `LATENCY` cycles later, from a `Multiplier` added to `m` as submodule `name`."""
    a, b = Value.cast(a), Value.cast(b)
    m.submodules[name] = mult = Multiplier(a.shape(), b.shape())
    m.d.comb += [mult.a.eq(a), mult.b.eq(b)]
    return mult.p
