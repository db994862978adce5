"""What one sweep task does, in whatever process the executor gives it: a point's stages, as rows.

A task is a few points of one input, each with the stages it still lacks. Every stage is caught:
a failure becomes a row with status `error` and its one-line message, never an exception that
stops the sweep. The figures each command prints in JSON go into the row's `result`, and the ones
the report plots into columns of their own (see hwgen.sweep.store).
"""

from __future__ import annotations

import json
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

from ..errors import HwgenError
from ..simrunner import locked
from .spec import GENERIC_ONLY, Point, Stages, digest

# Per worker process: a graph is loaded and an architecture written once, then reused by every
# point of the same input the worker runs.
_GRAPHS: dict = {}
_ARCHS: dict = {}
_LAYERS: dict = {}  # (layer signature, arch, energy, objective, format) -> LayerResult; ("storage", signature) -> costs
_MAPPINGS: dict = {}  # the same, DRAM bandwidth left out -> the searched Mapping


@dataclass
class Task:
    out: str  # the sweep folder
    input_path: str  # the prepared model (.hwq, .pt2, .onnx)
    stages: Stages
    points: list[tuple[Point, list[str]]]  # each point with the stages to run, in order
    row_keys: dict[tuple[str, str], str]  # (point key, stage) -> row key
    cache: str  # the Verilator build cache the simulations share (keyed by the Verilog's hash)
    input_error: str | None = None  # the input model could not be built: every row fails with this

    cpus = 1  # every stage is single-threaded: Python, Yosys, one Verilator simulation

    def error_rows(self, error: str) -> list[dict]:
        """The rows of a task that crashed as a whole (its worker died)."""
        return [make_row(point_row(self.row_keys[(p.key, s)], p, s), "error", error, 0.0, {}, None)
                for p, todo in self.points for s in todo]


def _graph(path: str):
    if path not in _GRAPHS:
        from ..ingest import load_model

        _GRAPHS[path] = load_model(path)
    return _GRAPHS[path]


def _arch(params: dict, out: Path):
    """The point's architecture: a preset (or file) with the point's overrides, through load_arch."""
    from ..analysis import load_arch
    from ..analysis.specfile import load as load_spec

    name = params["arch"]
    engine = {k: params[k] for k in ("m_lanes", "x_lanes", "bus_bits")}
    overrides = {k: params[k] for k in GENERIC_ONLY if params[k] is not None}
    key = digest({"arch": name, "engine": engine, "overrides": overrides})
    if key not in _ARCHS:
        data, _ = load_spec(name, "arch")
        if "engine" in data:
            data["engine"] = engine
        else:
            for k, v in overrides.items():
                section, field = {"mac_rows": ("mac_array", "rows"), "mac_cols": ("mac_array", "cols"),
                                  "dram_bytes_per_cycle": ("dram", "bytes_per_cycle")}[k]
                data[section][field] = v
        path = out / "archs" / f"{key}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        import os

        import yaml

        tmp = path.with_suffix(f".{os.getpid()}.tmp")  # workers may write the same file at once
        tmp.write_text(yaml.safe_dump(data, sort_keys=True))
        tmp.replace(path)
        _ARCHS[key] = load_arch(str(path))
    return _ARCHS[key]


def _layer_signature(layer) -> str:
    """Everything a layer's analysis depends on but its name: equal layers share one result."""
    import dataclasses
    import hashlib

    import numpy as np

    d = {f.name: getattr(layer, f.name) for f in dataclasses.fields(layer) if f.name not in ("name", "mask", "patterns")}
    for k in ("mask", "patterns"):
        a = getattr(layer, k)
        d[k] = None if a is None else [list(a.shape), hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()]
    return digest(d)


def _workload(path: str, graph) -> list:
    if ("workload", path) not in _GRAPHS:
        from ..analysis import workload

        _GRAPHS[("workload", path)] = [(lay, _layer_signature(lay)) for lay in workload(graph)]
    return _GRAPHS[("workload", path)]


def _searched(path: str, graph, arch, energy_name: str, objective: str, fmt: str | None):
    """`hwgen.analysis.analyze` on a generic architecture, memoized per worker, with equal results.

    A layer equal to one analyzed before on the same architecture reuses its result; the mapping
    search, the expensive part, is shared by architectures that differ only in DRAM bandwidth,
    which changes cycles but neither DRAM bytes nor energy, the search's keys.
    """
    import dataclasses

    from ..analysis import Analysis, analyze_layer, chosen_format, load_energy, totals
    from ..analysis.counts import Extents
    from ..analysis.formats import storage
    from ..analysis.mapping import search_all

    if ("energy", energy_name) not in _ARCHS:
        _ARCHS[("energy", energy_name)] = load_energy(energy_name)
    energy = _ARCHS[("energy", energy_name)]
    arch.check_energy(energy)
    search_arch = dataclasses.replace(arch, dram_bytes_per_cycle=1.0)
    results = []
    for layer, sig in _workload(path, graph):
        key = (sig, arch, energy_name, objective, fmt)
        r = _LAYERS.get(key)
        if r is None:
            if ("storage", sig) not in _LAYERS:
                _LAYERS[("storage", sig)] = storage(layer.mask, layer.weight_bits, layer.kind, layer.period,
                                                    layer.patterns)
            costs = _LAYERS[("storage", sig)]
            skey = (sig, search_arch, energy_name, fmt)
            if skey not in _MAPPINGS:  # one evaluation of the candidates serves both objectives
                _MAPPINGS[skey] = search_all(layer, costs[chosen_format(costs, fmt)], search_arch, energy,
                                             Extents(layer, 0), Extents(layer, 1))
            r = _LAYERS[key] = analyze_layer(layer, arch, energy, objective, fmt, _MAPPINGS[skey][objective],
                                             costs=costs)
        results.append(dataclasses.replace(r, layer=layer))
    return Analysis(graph.name, arch, energy, objective, fmt, results, totals(results))


def analyze_point(point: Point, graph, path: str, out: Path) -> tuple[dict, dict]:
    from ..analysis import analyze, report

    p = point.params
    arch = _arch(p, out)
    fmt = "dense" if p["dense_only"] else None
    if arch.engine is not None:  # the engine's own schedule model: no search to share
        a = analyze(graph, arch=arch, energy=p["energy"], objective=p["objective"], glb_kib=p["glb_kib"], fmt=fmt)
    else:
        a = _searched(path, graph, arch.with_glb_kib(p["glb_kib"]), p["energy"], p["objective"], fmt)
    doc = report.to_dict(a)
    t = doc["totals"]
    figures = {"energy_pj": t["energy_pj"]["total"], "dram_bytes": t["dram_bytes"]["total"], "cycles": t["cycles"],
               "macs": t["executed_macs"], "lower_bound_ratio": t["lower_bound_ratio"]}
    return figures, doc


def engine_dir(out: Path, point: Point) -> Path:
    """One folder per engine configuration, shared by every point (and stage) that needs it."""
    return out / "engines" / point.engine_key


def generate_point(point: Point, graph, out: Path, synth: str | None) -> tuple[dict, dict]:
    from ..generate import generate

    gen = engine_dir(out, point)
    manifest_path = gen / "manifest.json"
    with locked(gen.with_suffix(".lock")):  # points of one engine wait for the first to write it
        manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else None
        if manifest is None or (synth and manifest.get("synth", {}).get("target") != synth):
            manifest = generate(graph, gen, synth=synth, **point.engine)
    figures = {"cycles": sum(lay["schedule"]["cycles"] for lay in manifest["layers"]),
               "dram_bytes": sum(sum(lay["schedule"]["bytes"].values()) for lay in manifest["layers"])}
    if "synth" in manifest:
        r = manifest["synth"]["resources"]
        figures.update(lut=r["LUT"], ff=r["FF"], dsp=r["DSP"], bram=r["BRAM"])
    return figures, manifest


def simulate_point(point: Point, out: Path, stages: Stages, row_key: str, cache: str) -> tuple[dict, dict, str]:
    from ..simulate import simulate

    gen = engine_dir(out, point)
    if not (gen / "manifest.json").exists():
        raise HwgenError("no generated engine to simulate (the generate stage failed)")
    report = simulate(gen, images=stages.images, seed=point.seed, timing=stages.timing, mode=stages.mode,
                      workdir=out / "sims" / row_key, cache_dir=Path(cache))
    doc = report.to_json()
    t = doc["totals"]
    figures = {"mismatches": t["mismatches"] + report.logit_mismatches, "sim_cycles": t["cycles"],
               "sim_dram_bytes": t["dram_bytes_measured"], "utilization": round(t["utilization"], 6),
               "images": stages.images, "cycles": t["cycles"], "dram_bytes": t["dram_bytes_measured"]}
    status = "ok" if report.passed else "mismatch"
    return figures, doc, status


def error_text(e: BaseException) -> str:
    if isinstance(e, HwgenError):
        return str(e)
    frame = traceback.extract_tb(e.__traceback__)[-1] if e.__traceback__ else None
    where = f" ({Path(frame.filename).name}:{frame.lineno})" if frame else ""
    return f"{type(e).__name__}: {e}{where}"


def run_task(task: Task) -> list[dict]:
    """Run every (point, stage) of `task`; one row each, failures included."""
    out = Path(task.out)
    rows = []
    graph, graph_error = None, task.input_error
    if graph_error is None:
        try:
            graph = _graph(task.input_path)
        except Exception as e:  # noqa: BLE001 - recorded in every row of the task
            graph_error = error_text(e)
    for point, todo in task.points:
        for stage in todo:
            t0 = time.perf_counter()
            figures, doc, status, error = {}, None, "ok", None
            try:
                if graph_error:
                    raise HwgenError(graph_error)
                if stage == "analyze":
                    figures, doc = analyze_point(point, graph, task.input_path, out)
                elif stage == "generate":
                    figures, doc = generate_point(point, graph, out, task.stages.synth)
                else:
                    figures, doc, status = simulate_point(point, out, task.stages, task.row_keys[(point.key, stage)],
                                                            task.cache)
            except Exception as e:  # noqa: BLE001 - a failure is recorded, never stops the sweep
                status, error = "error", error_text(e)
            rows.append(make_row(point_row(task.row_keys[(point.key, stage)], point, stage), status, error,
                                 time.perf_counter() - t0, figures, doc))
    return rows


def make_row(base: dict, status: str, error: str | None, wall_s: float, figures: dict, doc) -> dict:
    """A results row (hwgen.sweep.store's columns): `base` names the row (key, point, stage, input,
    input_key, seed and the parameters), the rest is what the stage gave."""
    row = dict(base, status=status, error=error, wall_s=round(wall_s, 4),
               result=None if doc is None else json.dumps(doc, sort_keys=True, separators=(",", ":")))
    row.update(figures)
    return row


def point_row(key: str, point: Point, stage: str) -> dict:
    return {"key": key, "point": point.key, "stage": stage, "input": point.input.label,
            "input_key": point.input_key, "seed": point.seed, **point.params}
