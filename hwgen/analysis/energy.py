"""Energy tables: picojoules per bit moved at each memory level, and per multiply-accumulate.

A table is a preset (hwgen/data/energy/*.yaml, each citing its source) or a user's YAML file of
the same shape. `base: NAME` inherits another table's entries and overrides some. Entry kinds:
  {pj_per_bit: X}                        a memory whose access energy does not depend on its size;
  {pj_per_bit_by_kib: [[KiB, X], ...]}   an SRAM whose energy grows with capacity: interpolated
                                         linearly in log(capacity) between the points, clamped
                                         at the ends;
  {mult_8bit_pj: X, add_pj: Y}           a MAC: a W x A multiply scales as W*A/64 of the 8x8 one
                                         (array multiplier area), plus one accumulator add.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ..errors import HwgenError
from . import specfile


@dataclass(frozen=True)
class Memory:
    points: tuple[tuple[float, float], ...]  # (KiB, pJ/bit), KiB ascending; one point = flat

    def pj_per_bit(self, kib: float | None = None) -> float:
        if len(self.points) == 1 or kib is None:
            return self.points[0][1]
        pts = self.points
        if kib <= pts[0][0]:
            return pts[0][1]
        for (k0, e0), (k1, e1) in zip(pts, pts[1:]):
            if kib <= k1:
                t = (math.log(kib) - math.log(k0)) / (math.log(k1) - math.log(k0))
                return e0 + t * (e1 - e0)
        return pts[-1][1]


@dataclass(frozen=True)
class Mac:
    mult_8bit_pj: float
    add_pj: float

    def pj(self, weight_bits: int, act_bits: int) -> float:
        return self.mult_8bit_pj * weight_bits * act_bits / 64 + self.add_pj


@dataclass(frozen=True)
class EnergyTable:
    name: str
    source: str
    entries: dict  # name -> Memory | Mac

    def memory(self, name: str, who: str) -> Memory:
        e = self.entries.get(name)
        if not isinstance(e, Memory):
            raise HwgenError(f"{who}: energy '{name}' is not a memory entry of energy table '{self.name}' "
                             f"(it has: {', '.join(sorted(k for k, v in self.entries.items() if isinstance(v, Memory)))})")
        return e

    def mac(self, name: str, who: str) -> Mac:
        e = self.entries.get(name)
        if not isinstance(e, Mac):
            raise HwgenError(f"{who}: energy '{name}' is not a MAC entry of energy table '{self.name}'")
        return e


def _entry(sec: specfile.Section):
    keys = set(sec.data)
    if keys <= {"pj_per_bit"} and keys:
        e = Memory(((1.0, float(sec.number("pj_per_bit"))),))
    elif keys == {"pj_per_bit_by_kib"}:
        pts = sec.get("pj_per_bit_by_kib")
        bad = not isinstance(pts, list) or not pts or any(
            not isinstance(p, list) or len(p) != 2 or any(isinstance(x, bool) or not isinstance(x, (int, float)) or x <= 0 for x in p)
            for p in pts)
        if bad or sorted(p[0] for p in pts) != [p[0] for p in pts] or len({p[0] for p in pts}) != len(pts):
            raise HwgenError(f"{sec.label}: '{sec.path}.pj_per_bit_by_kib' must be a list of [KiB, pJ/bit] pairs, KiB ascending")
        e = Memory(tuple((float(k), float(v)) for k, v in pts))
    elif "mult_8bit_pj" in keys or "add_pj" in keys:
        e = Mac(float(sec.number("mult_8bit_pj")), float(sec.number("add_pj", positive=False)))
    else:
        raise HwgenError(f"{sec.label}: entry '{sec.path}' needs pj_per_bit, pj_per_bit_by_kib, or mult_8bit_pj and add_pj")
    sec.done()
    return e


def load_energy(spec: str, _seen: tuple[str, ...] = ()) -> EnergyTable:
    """The energy table `spec`: a preset name or a YAML file."""
    data, label = specfile.load(spec, "energy")
    top = specfile.Section(data, label)
    name = top.text("name", label)
    source = top.text("source")
    base = top.get("base")
    entries: dict = {}
    if base is not None:
        if not isinstance(base, str) or base in _seen + (spec,):
            raise HwgenError(f"{label}: 'base' must name another energy table, without cycles, got {base!r}")
        entries.update(load_energy(base, _seen + (spec,)).entries)
    ent = top.section("entries", optional=base is not None)
    if ent is not None:
        for key in ent.data:
            entries[str(key)] = _entry(ent.section(str(key)))
        ent.done()
    top.done()
    return EnergyTable(name, source, entries)
