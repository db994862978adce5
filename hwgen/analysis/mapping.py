"""Mappings: the search over loop orders and buffer tiles, and user-fixed mappings.

The search space of a layer is every loop order of (M, C, P, Q) at the DRAM level times every
tile size that divides its dimension (plus the whole dimension); candidates whose tiles do not
fit the global buffer are dropped, the rest evaluated in closed form, all at once with numpy.
The objective is DRAM bytes or energy; ties go to the other one, then to the first candidate
in a fixed enumeration order, so the result is deterministic. More buffer only adds candidates,
so the searched optimum never gets worse with a bigger buffer.

A fixed mapping is a YAML file:
    default: {order: MCPQ, tiles: {M: 16, C: 64, P: 56, Q: 56}}   # optional
    layers:                                                        # optional, by layer name
      conv2: {order: PQMC, tiles: {M: 64}}
Missing tiles mean the whole dimension; tiles larger than a dimension are clipped to it (but with
residue lanes the M tile counts lane slots, k lane groups x rows, which may exceed M).
An entry may also fix
    bypass: [outputs]        # outputs go straight to DRAM (then C is not tiled)
    lanes: residue           # lane groups of one residue class mod the format's period
    fold: 2                  # the array runs the layer as rows * 2 x cols / 2 (lane groups of 2 * rows channels)
    format: dense            # or {name: periodic, period: 4, table: [..]} / {name: pattern, library: [..]}:
                             # the weights' storage format, with its table or library as kernel
                             # masks (bit i = tap i in raster order)
"""

from __future__ import annotations

import itertools

import numpy as np

from ..errors import HwgenError
from . import specfile
from .arch import Architecture
from .counts import DIMS, LANES, Candidates, Extents, Mapping, evaluate
from .energy import EnergyTable
from . import formats
from .formats import FormatCost
from .workload import Layer

ORDERS = tuple("".join(o) for o in itertools.permutations(DIMS))
OBJECTIVES = ("dram", "energy")


def tile_candidates(n: int) -> np.ndarray:
    return np.array([d for d in range(1, n + 1) if n % d == 0], dtype=np.int64)


def search(layer: Layer, cost: FormatCost, arch: Architecture, table: EnergyTable, objective: str,
           rows: Extents, cols: Extents) -> Mapping:
    """The best mapping of `layer` whose tiles fit the global buffer."""
    if objective not in OBJECTIVES:
        raise HwgenError(f"objective must be one of {', '.join(OBJECTIVES)}, got '{objective}'")
    return search_all(layer, cost, arch, table, rows, cols)[objective]


def search_all(layer: Layer, cost: FormatCost, arch: Architecture, table: EnergyTable, rows: Extents,
               cols: Extents) -> dict[str, Mapping]:
    """The best mapping for each objective, from one evaluation of every candidate."""
    grids = np.meshgrid(*(tile_candidates(n) for n in (layer.m, layer.c, layer.p, layer.q)), indexing="ij")
    m, c, p, q = (g.ravel() for g in grids)
    need = np.broadcast_to(Candidates(layer, cost, arch, table, m, c, p, q, rows, cols).need_bits, m.shape)
    fits = need <= arch.glb_bits  # buffer needs do not depend on the loop order
    if not fits.any():
        raise HwgenError(f"layer '{layer.name}': even the smallest tiles need "
                         f"{int(need.min()) / 8192:.2f} KiB, more than the {arch.glb_kib:g} KiB global buffer")
    m, c, p, q = m[fits], c[fits], p[fits], q[fits]
    best = {}
    candidates = Candidates(layer, cost, arch, table, m, c, p, q, rows, cols)
    for order in ORDERS:
        r = candidates.counts(order)
        for primary, secondary in (("dram", "energy"), ("energy", "dram")):
            keys = np.broadcast_to(r[primary], m.shape), np.broadcast_to(r[secondary], m.shape)
            i = int(np.lexsort((keys[1], keys[0]))[0])
            cand = (keys[0][i], keys[1][i])
            if primary not in best or cand < best[primary][0]:
                best[primary] = (cand, Mapping(order, int(m[i]), int(c[i]), int(p[i]), int(q[i])))
    return {objective: b[1] for objective, b in best.items()}


def check_fits(layer: Layer, cost: FormatCost, arch: Architecture, table: EnergyTable, mapping: Mapping,
               rows: Extents, cols: Extents) -> None:
    need = int(evaluate(layer, cost, arch, table, mapping.order, mapping.m, mapping.c, mapping.p, mapping.q,
                        rows, cols, mapping.lanes, mapping.period, mapping.bypass, mapping.fold)["need_bits"])
    if need > arch.glb_bits:
        raise HwgenError(f"layer '{layer.name}': mapping {mapping.order} {mapping.as_dict()['tiles']} needs "
                         f"{need / 8192:.2f} KiB of buffer, more than the {arch.glb_kib:g} KiB global buffer")


class FixedMappings:
    """User-fixed mappings from a YAML file: a default and per-layer entries."""

    def __init__(self, path: str):
        data, label = specfile.load(path, "mapping")
        top = specfile.Section(data, label)
        self.label = label
        self.default = self._entry(top.section("default", optional=True))
        layers = top.section("layers", optional=True)
        self.layers = {}
        if layers is not None:
            for name in layers.data:
                self.layers[str(name)] = self._entry(layers.section(str(name)))
            layers.done()
        top.done()
        self._unused = set(self.layers)

    def _entry(self, sec: specfile.Section | None):
        if sec is None:
            return None
        order = sec.text("order", "MCPQ")
        if sorted(order) != sorted(DIMS):
            raise HwgenError(f"{self.label}: '{sec.path}.order' must be a permutation of {DIMS}, got '{order}'")
        tiles = sec.section("tiles", optional=True)
        sizes = {}
        if tiles is not None:
            for d in DIMS:
                if d in tiles.data:
                    sizes[d] = tiles.number(d, integer=True)
            tiles.done()
        bypass = sec.get("bypass", [])
        if bypass not in ([], ["outputs"]):
            raise HwgenError(f"{self.label}: '{sec.path}.bypass' may only be [outputs], got {bypass!r}")
        lanes = sec.text("lanes", "contiguous")
        if lanes not in LANES:
            raise HwgenError(f"{self.label}: '{sec.path}.lanes' must be one of {', '.join(LANES)}, got '{lanes}'")
        fmt = self._format(sec)
        if lanes == "residue" and (fmt is None or fmt[0] != "periodic"):
            raise HwgenError(f"{self.label}: '{sec.path}': residue lanes need a periodic format with its period")
        fold = sec.number("fold", 1, integer=True)
        sec.done()
        return order, sizes, tuple(bypass), lanes, fmt, fold

    def _format(self, sec: specfile.Section):
        """(name, period, masks) of the entry's `format`, or None."""
        spec = sec.get("format")
        if spec is None:
            return None
        if isinstance(spec, str):
            if spec not in formats.FORMATS or spec in ("periodic", "pattern"):
                raise HwgenError(f"{self.label}: '{sec.path}.format' must be one of dense, bitmask, csr4, csr8, or "
                                 f"periodic / pattern with their tables, got {spec!r}")
            return spec, 1, None
        f = specfile.Section(spec, self.label, f"{sec.path}.format")
        name = f.text("name")
        if name not in ("periodic", "pattern"):
            raise HwgenError(f"{self.label}: '{f.path}.name' must be periodic or pattern, got '{name}'")
        key = "table" if name == "periodic" else "library"
        masks = f.get(key)
        if (not isinstance(masks, list) or not masks
                or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in masks)):
            raise HwgenError(f"{self.label}: '{f.path}.{key}' must be a list of nonzero kernel masks, got {masks!r}")
        period = f.number("period", integer=True) if name == "periodic" else 1
        if name == "periodic" and len(masks) != period:
            raise HwgenError(f"{self.label}: '{f.path}.table' must hold {period} masks (the period), got {len(masks)}")
        f.done()
        return name, period, tuple(masks)

    def get(self, layer: Layer) -> Mapping | None:
        entry = self.layers.get(layer.name, self.default)
        self._unused.discard(layer.name)
        if entry is None:
            return None
        order, sizes, bypass, lanes, fmt, fold = entry
        dims = {"M": layer.m, "C": layer.c, "P": layer.p, "Q": layer.q}
        t = {d: min(sizes.get(d, n), n) for d, n in dims.items()}
        if lanes == "residue":  # residue classes may leave lanes empty: the tile counts lane slots, unclipped
            t["M"] = sizes.get("M", layer.m)
        if bypass and t["C"] < layer.c:
            raise HwgenError(f"{self.label}: layer '{layer.name}': outputs bypass the buffer, so C cannot be tiled")
        return Mapping(order, t["M"], t["C"], t["P"], t["Q"], lanes, fmt[1] if fmt else 1, bypass, fold)

    def format_cost(self, layer: Layer) -> tuple[str, FormatCost] | None:
        """(name, cost) of the format the entry for `layer` fixes, or None."""
        entry = self.layers.get(layer.name, self.default)
        if entry is None or entry[4] is None:
            return None
        name, period, masks = entry[4]
        mask, bits = layer.mask, layer.weight_bits
        if masks is None:
            return name, formats.storage(mask, bits, "unstructured", None)[name]
        taps = layer.r * layer.s
        if max(masks) >= 1 << taps:
            raise HwgenError(f"{self.label}: layer '{layer.name}': a {name} mask does not fit a "
                             f"{layer.r}x{layer.s} kernel")
        shapes = formats.codes_to_masks(np.asarray(masks, dtype=np.int64), layer.r, layer.s)
        if name == "periodic":
            return name, formats.periodic(mask, bits, period, shapes)
        return name, formats.pattern(mask, bits, shapes)

    def check_all_used(self) -> None:
        if self._unused:
            raise HwgenError(f"{self.label}: no layer named '{sorted(self._unused)[0]}' in the model")
