"""`hwgen sweep DIR --report`: the results as one row per point, a table, CSV and Pareto fronts (PNG).

A point's row joins its stages: the analysis' energy, DRAM bytes and cycles per image, Yosys'
LUT/FF/DSP/BRAM from generate, and the simulation's measured cycles and mismatches. A Pareto
front keeps the points no other point beats on both axes (both minimized).
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from ..errors import HwgenError
from . import store
from .spec import PARAMS, STAGES

# (x, y, title): both minimized. Energy and cycles are per image (batch 1).
FRONTS = (
    ("lut", "energy_pj", "energy/image vs LUTs"),
    ("dsp", "cycles", "cycles/image vs DSPs"),
    ("cycles", "energy_pj", "energy/image vs cycles/image"),
)
LABELS = {"lut": "LUTs (Yosys)", "dsp": "DSP blocks (Yosys)", "cycles": "cycles per image (model)",
          "energy_pj": "energy per image (uJ)"}
STAGE_FIGURES = {
    "analyze": ("energy_pj", "dram_bytes", "cycles", "lower_bound_ratio"),
    "generate": ("lut", "ff", "dsp", "bram"),
    "simulate": ("sim_cycles", "sim_dram_bytes", "mismatches", "utilization"),
}


def sweep_name(out: Path) -> str:
    try:
        return json.loads((Path(out) / "sweep.json").read_text())["name"]
    except (OSError, ValueError, KeyError):
        return Path(out).name


def load_points(out: Path) -> list[dict]:
    """One dict per point: input, parameters, each stage's status and figures, errors."""
    out = Path(out)
    if not (out / store.RESULTS).exists() and not (out / store.PARTS).is_dir():
        raise HwgenError(f"'{out}' holds no sweep results ({store.RESULTS}); run `hwgen sweep SPEC --out {out}` first")
    points: dict[str, dict] = {}
    for r in store.load(out):
        p = points.setdefault(r["point"], {"point": r["point"], "input": r["input"], "seed": r["seed"],
                                           "params": {k: r[k] for k in PARAMS}, "status": {}, "errors": {}})
        p["status"][r["stage"]] = r["status"]
        if r["error"]:
            p["errors"][r["stage"]] = r["error"]
        for k in STAGE_FIGURES.get(r["stage"], ()):
            if r.get(k) is not None:
                p[k] = r[k]
    return sorted(points.values(), key=lambda p: (p["input"], *(_sort_key(p["params"][k]) for k in PARAMS)))


def _sort_key(v) -> tuple:
    return (0, v, "") if isinstance(v, (int, float)) else (1, 0, str(v))


def varying(points: list[dict]) -> list[str]:
    """The parameters that take more than one value across the points (the others say nothing)."""
    return [k for k in PARAMS if len({repr(p["params"][k]) for p in points}) > 1]


def _fmt(v, kind: str = "") -> str:
    if v is None:
        return "-"
    if kind == "uj":
        return f"{v / 1e6:.3f}"
    if isinstance(v, float):
        return f"{v:.3f}"
    if isinstance(v, bool):
        return "yes" if v else "no"
    return f"{v:,}" if isinstance(v, int) else str(v)


def _columns(points: list[dict]) -> list[tuple[str, str, str]]:
    cols = [("energy_pj", "energy uJ", "uj"), ("dram_bytes", "DRAM B", ""), ("cycles", "cycles", ""),
            ("lower_bound_ratio", "x bound", ""), ("lut", "LUT", ""), ("ff", "FF", ""), ("dsp", "DSP", ""),
            ("bram", "BRAM", ""), ("sim_cycles", "sim cycles", ""), ("mismatches", "mismatches", "")]
    return [c for c in cols if any(p.get(c[0]) is not None for p in points)]


def table(points: list[dict]) -> str:
    if not points:
        return "no points"
    params = varying(points)
    cols = _columns(points)
    header = ["input", *params, *(c[1] for c in cols), "status"]
    rows = []
    for p in points:
        bad = {s: st for s, st in p["status"].items() if st != "ok"}
        status = "ok" if not bad else ", ".join(f"{s} {st}" for s, st in bad.items())
        rows.append([p["input"], *(_fmt(p["params"][k]) for k in params), *(_fmt(p.get(c[0]), c[2]) for c in cols),
                     status])
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    n_bad = sum(1 for p in points if any(st != "ok" for st in p["status"].values()))
    lines.append(f"{len(points)} points, {len(points) - n_bad} fully ok, {n_bad} with a failed stage")
    order = {s: i for i, s in enumerate(STAGES)}
    for p in points:
        for stage, err in sorted(p["errors"].items(), key=lambda kv: order.get(kv[0], 9)):
            lines.append(f"  {p['point']} {stage} (seed {p['seed']}): {err}")
    return "\n".join(lines)


def to_csv(points: list[dict]) -> str:
    buf = io.StringIO()
    fig_keys = [k for ks in STAGE_FIGURES.values() for k in ks]
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["point", "input", "seed", *PARAMS, *fig_keys, *(f"{s}_status" for s in STAGES), "errors"])
    for p in points:
        w.writerow([p["point"], p["input"], p["seed"], *(p["params"][k] for k in PARAMS),
                    *(p.get(k) for k in fig_keys), *(p["status"].get(s, "") for s in STAGES),
                    " | ".join(f"{s}: {e}" for s, e in p["errors"].items())])
    return buf.getvalue()


def pareto(items: list[tuple[float, float, object]]) -> list[tuple[float, float, object]]:
    """The points no other point is at least as good as on both axes and better on one (minimized)."""
    front, best_y = [], None
    for x, y, tag in sorted(items, key=lambda t: (t[0], t[1])):
        if best_y is None or y < best_y:
            front.append((x, y, tag))
            best_y = y
    return front


def write_pareto(points: list[dict], path: Path, title: str = "") -> list[str]:
    """PNG with one panel per front that has data; returns the fronts drawn. Deterministic bytes."""
    panels = [(x, y, t) for x, y, t in FRONTS
              if any(p.get(x) is not None and p.get(y) is not None for p in points)]
    if not panels:
        return []
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    params = varying(points)
    inputs = sorted({p["input"] for p in points})
    colors = plt.get_cmap("tab10").colors
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.4), constrained_layout=True, squeeze=False)
    for ax, (xk, yk, ptitle) in zip(axes[0], panels):
        for i, inp in enumerate(inputs):
            mine = [p for p in points if p["input"] == inp and p.get(xk) is not None and p.get(yk) is not None]
            scale = (lambda v: v / 1e6) if yk == "energy_pj" else (lambda v: v)
            xs = [p[xk] for p in mine]
            ys = [scale(p[yk]) for p in mine]
            ax.scatter(xs, ys, s=12, color=colors[i % 10], alpha=0.35, linewidths=0)
            front = pareto([(x, y, p) for x, y, p in zip(xs, ys, mine)])
            ax.step([f[0] for f in front], [f[1] for f in front], where="post", color=colors[i % 10], linewidth=1.2,
                    marker="o", markersize=4, label=f"{inp}: front of {len(front)}")
            for x, y, p in front[:12]:
                ax.annotate(" ".join(f"{p['params'][k]}" for k in params), (x, y), fontsize=6,
                            xytext=(3, 3), textcoords="offset points")
        xs_all = [p[xk] for p in points if p.get(xk)]
        if xs_all and max(xs_all) > 20 * min(xs_all):
            ax.set_xscale("log")
        ax.set_xlabel(LABELS[xk])
        ax.set_ylabel(LABELS[yk])
        ax.set_title(ptitle, fontsize=9)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    if title:
        fig.suptitle(f"{title}: {len(points)} points\nfront labels: {' '.join(params) or '-'}", fontsize=8)
    fig.savefig(path, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return [t for _, _, t in panels]
