"""Register cuts: the one way the datapath's long paths get their pipeline stages.

A cut either registers a value (one cycle later, always enabled: the datapath behind a cut never
stalls) or passes it through, so one description of a path serves every pipeline depth
(`EngineParams.pipeline`, `MAC_CUTS`, `REQUANT_CUTS`).
"""

from __future__ import annotations

from amaranth.hdl import Module, Signal, Value


def cut(m: Module, registered: bool, value, name: str):
    """`value` one cycle later when `registered`, else `value` itself.

    Call it outside any `with m.If`: the register loads every cycle, unconditionally.
    """
    if not registered:
        return value
    reg = Signal(Value.cast(value).shape(), name=name)
    m.d.sync += reg.eq(value)
    return reg


def delay(m: Module, value, cycles: int, name: str):
    """`value` `cycles` cycles later (a chain of registers)."""
    for i in range(cycles):
        value = cut(m, True, value, f"{name}_d{i + 1}")
    return value
