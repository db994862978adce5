"""Reports of an analysis: terminal tables, JSON, CSV and a PNG figure. All deterministic.

Floats are rounded to fixed decimals before they are written, and the PNG carries no software
version or date, so the same inputs give byte-identical files.
"""

from __future__ import annotations

import csv
import io
import json

from . import COMPULSORY_KEYS, DRAM_KEYS, ENERGY_KEYS, Analysis, LayerResult
from .formats import FORMATS

TENSORS = DRAM_KEYS[:-1]


def _pj(x: float) -> float:
    return round(float(x), 3)


def layer_dict(r: LayerResult, base: dict | None = None) -> dict:
    """The per-layer JSON fields of the analysis, added to `base` (inspect's dict for the layer)."""
    lay = r.layer
    d = dict(base) if base else {"name": lay.name, "op": lay.op, "macs": lay.macs, "effectual_macs": lay.effectual_macs,
                                 "sparsity": {"kind": lay.kind, "period": lay.period}}
    d.update({
        "weight_bits": lay.weight_bits,
        "act_bits": {"in": lay.in_bits, "out": lay.out_bits},
        "format": r.format,
        "storage_bits": {f: (c.bits if c is not None else None) for f, c in r.storage.items()},
        "dram_bytes": dict(r.dram_bytes),
        "compulsory_bytes": dict(r.compulsory_bytes),
        "lower_bound_ratio": round(r.lower_bound_ratio, 6),
        "energy_pj": {k: _pj(v) for k, v in r.energy_pj.items()},
        "cycles": r.cycles,
        "executed_macs": r.macs,
        "buffer_bits": {"glb": r.glb_bits, "rf": r.rf_bits},
        "mapping": r.mapping.as_dict(),
    })
    return d


def totals_dict(a: Analysis) -> dict:
    t = dict(a.totals)
    t["energy_pj"] = {k: _pj(v) for k, v in t["energy_pj"].items()}
    t["lower_bound_ratio"] = round(t["lower_bound_ratio"], 6)
    return t


def to_dict(a: Analysis, inspect_layers: dict[str, dict] | None = None,
            compare: dict[str, Analysis] | None = None) -> dict:
    """The JSON document. `inspect_layers` maps layer names to inspect's per-layer dicts."""
    inspect_layers = inspect_layers or {}
    out = {
        "model": a.graph_name,
        "arch": a.arch.name,
        "glb_kib": a.arch.glb_kib,
        "energy_table": a.energy.name,
        "objective": a.objective,
        "format": a.format or "smallest",
        "layers": [layer_dict(r, inspect_layers.get(r.layer.name)) for r in a.layers],
        "totals": totals_dict(a),
    }
    if compare:
        out["compare"] = {f: totals_dict(c) for f, c in compare.items()}
    return json.loads(json.dumps(out))  # plain types only (no numpy scalars)


def dumps_json(doc: dict) -> str:
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def to_csv(a: Analysis) -> str:
    header = (["layer", "op", "sparsity", "format"] + [f"storage_bits_{f}" for f in FORMATS]
              + [f"dram_{k}" for k in DRAM_KEYS] + [f"compulsory_{k}" for k in COMPULSORY_KEYS]
              + ["lower_bound_ratio"] + [f"energy_pj_{k}" for k in ENERGY_KEYS]
              + ["cycles", "macs_executed", "macs_effectual", "order", "tile_M", "tile_C", "tile_P", "tile_Q"])
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in a.layers:
        m = r.mapping
        w.writerow([r.layer.name, r.layer.op, r.layer.kind, r.format]
                   + [("" if r.storage[f] is None else r.storage[f].bits) for f in FORMATS]
                   + [r.dram_bytes[k] for k in DRAM_KEYS] + [r.compulsory_bytes[k] for k in COMPULSORY_KEYS]
                   + [f"{r.lower_bound_ratio:.6f}"] + [f"{r.energy_pj[k]:.3f}" for k in ENERGY_KEYS]
                   + [r.cycles, r.macs, r.layer.effectual_macs, m.order, m.m, m.c, m.p, m.q])
    return buf.getvalue()


def _saving(before: float, after: float) -> str:
    return f"{100 * (1 - after / before):5.1f}%" if before else "    -"


def _render(header: list[str], rows: list[list[str]], footer: list[list[str]]) -> str:
    cols = list(zip(*([header] + rows + footer)))
    width = [max(len(x) for x in c) for c in cols]

    def line(cells):
        return "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, width))).rstrip()

    rule = "-" * len(line(header))
    return "\n".join([line(header), rule] + [line(r) for r in rows] + [rule] + [line(r) for r in footer]) + "\n"


def _setting(a: Analysis) -> str:
    if a.arch.engine is not None:
        return (f"{a.graph_name} on {a.arch.name} ({a.arch.rows}x{a.arch.cols} lanes, input buffer "
                f"{a.arch.glb_kib:g} KiB, energy {a.energy.name}, the engine's own schedule)")
    return (f"{a.graph_name} on {a.arch.name} (global buffer {a.arch.glb_kib:g} KiB, energy {a.energy.name}, "
            f"mapping searched for {a.objective})")


def table(dense: Analysis, native: Analysis) -> str:
    """Per layer: dense vs this checkpoint's formats; DRAM traffic, energy, savings, bound ratio."""
    header = ["layer", "sparsity", "format", "weights KiB", "DRAM KiB dense", "DRAM KiB", "saved",
              "x bound", "energy uJ dense", "energy uJ", "saved", "Mcycles"]
    rows = []
    for d, n in zip(dense.layers, native.layers):
        rows.append([n.layer.name, n.layer.kind, n.format,
                     f"{d.storage['dense'].bits / 8192:.1f}->{n.storage[n.format].bits / 8192:.1f}",
                     f"{d.dram_bytes['total'] / 1024:.1f}", f"{n.dram_bytes['total'] / 1024:.1f}",
                     _saving(d.dram_bytes["total"], n.dram_bytes["total"]), f"{n.lower_bound_ratio:.2f}",
                     f"{d.energy_pj['total'] / 1e6:.2f}", f"{n.energy_pj['total'] / 1e6:.2f}",
                     _saving(d.energy_pj["total"], n.energy_pj["total"]), f"{n.cycles / 1e6:.3f}"])
    td, tn = dense.totals, native.totals
    wd = sum(r.storage["dense"].bits for r in native.layers)
    wn = sum(r.storage[r.format].bits for r in native.layers)
    footer = [["total", "", "", f"{wd / 8192:.1f}->{wn / 8192:.1f}",
               f"{td['dram_bytes']['total'] / 1024:.1f}", f"{tn['dram_bytes']['total'] / 1024:.1f}",
               _saving(td["dram_bytes"]["total"], tn["dram_bytes"]["total"]), f"{tn['lower_bound_ratio']:.2f}",
               f"{td['energy_pj']['total'] / 1e6:.2f}", f"{tn['energy_pj']['total'] / 1e6:.2f}",
               _saving(td["energy_pj"]["total"], tn["energy_pj"]["total"]), f"{tn['cycles'] / 1e6:.3f}"]]
    return _setting(native) + "\n" + _render(header, rows, footer)


def compare_table(analyses: dict[str, Analysis]) -> str:
    """Totals of the same network and architecture with each weight format, side by side."""
    header = ["format", "weights KiB", "metadata KiB", "DRAM KiB", "x bound", "DRAM uJ", "SRAM uJ",
              "MAC uJ", "energy uJ", "Mcycles", "dense layers"]
    rows = []
    for fmt, a in analyses.items():
        t = a.totals
        fallback = sum(1 for r in a.layers if r.format == "dense" != fmt)
        rows.append([fmt, f"{t['dram_bytes']['weights'] / 1024:.1f}", f"{t['dram_bytes']['metadata'] / 1024:.1f}",
                     f"{t['dram_bytes']['total'] / 1024:.1f}", f"{t['lower_bound_ratio']:.2f}",
                     f"{t['energy_pj']['dram'] / 1e6:.2f}", f"{t['energy_pj']['sram'] / 1e6:.2f}",
                     f"{t['energy_pj']['mac'] / 1e6:.2f}", f"{t['energy_pj']['total'] / 1e6:.2f}",
                     f"{t['cycles'] / 1e6:.3f}", f"{fallback}/{len(a.layers)}"])
    note = "'dense layers': layers the format cannot describe, kept dense"
    return f"{_setting(next(iter(analyses.values())))}\n{note}\n" + _render(header, rows, [])


def write_plot(dense: Analysis, native: Analysis, path: str) -> None:
    """PNG: per-layer DRAM bytes by tensor and energy by level, dense bar beside sparse bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    names = [r.layer.name for r in native.layers]
    x = np.arange(len(names))
    fig, axes = plt.subplots(2, 1, figsize=(max(8.0, 0.45 * len(names) + 3), 8), constrained_layout=True)
    colors = plt.get_cmap("tab10").colors
    for ax, keys, get, unit, title in (
        (axes[0], TENSORS, lambda r, k: r.dram_bytes[k] / 1024, "KiB", "DRAM traffic by tensor"),
        (axes[1], ENERGY_KEYS[:-1], lambda r, k: r.energy_pj[k] / 1e6, "uJ", "energy by level"),
    ):
        for offset, a, hatch in ((-0.2, dense, "//"), (0.2, native, "")):
            bottom = np.zeros(len(names))
            for i, k in enumerate(keys):
                v = np.array([get(r, k) for r in a.layers])
                ax.bar(x + offset, v, 0.38, bottom=bottom, color=colors[i], hatch=hatch, edgecolor="black",
                       linewidth=0.3, label=k if a is native else None)
                bottom += v
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=7)
        ax.set_ylabel(unit)
        ax.set_title(f"{native.graph_name}: {title} (left, hatched: dense; right: checkpoint's formats)", fontsize=9)
        ax.legend(fontsize=7, ncols=len(keys))
    fig.savefig(path, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
