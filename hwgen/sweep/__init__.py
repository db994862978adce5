"""`hwgen sweep`: design-space exploration over engines and analysis parameters, resumable.

    from hwgen.sweep import spec, run_sweep
    summary = run_sweep(spec.load("examples/sweep_digits.yaml"), "out", executor="local")

A spec (hwgen.sweep.spec) expands into points (an input model x one value of every parameter);
each point runs the stages asked for (analyze always; generate, with Yosys if asked; simulate).
Rows, one per point and stage, go to `OUT/results.parquet` (hwgen.sweep.store) keyed by a hash of
the point's parameters and the stage's options: a rerun runs only the rows that are missing or
did not finish `ok`. Tasks run on a local process pool or on Ray (hwgen.sweep.executor).
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import numpy as np

from ..errors import HwgenError
from . import executor as executors
from . import store
from .spec import Input, Spec
from .stages import Task, run_task

FLUSH_ROWS = 256  # rows buffered before they are written as a part file
FLUSH_SECONDS = 5.0
STATE = "sweep.json"


def _calibration(inp: Input, shape, seed: int) -> np.ndarray:
    from .. import datasets

    if inp.calibration == "synthetic":
        return np.random.default_rng(seed).uniform(0, 1, size=(inp.calibration_images, *shape)).astype(np.float32)
    if inp.calibration == "digits":
        if tuple(shape) != datasets.INPUT_SHAPE:
            raise HwgenError(f"input '{inp.label}': digits calibration needs a {datasets.INPUT_SHAPE} input, "
                             f"the model takes {tuple(shape)}")
        return datasets.load_digits_split()[0][:inp.calibration_images]
    x = np.load(inp.calibration, allow_pickle=False)
    if x.ndim != 1 + len(shape) or tuple(x.shape[1:]) != tuple(shape):
        raise HwgenError(f"{inp.calibration}: calibration data of shape {x.shape}, the model takes (N, {shape})")
    return x[:inp.calibration_images].astype(np.float32)


def prepare_input(inp: Input, input_key: str, seed: int, out: Path) -> Path:
    """The model file tasks load: the checkpoint itself, or the zoo model built once into OUT/inputs/."""
    if inp.checkpoint:
        return Path(inp.checkpoint)
    folder = out / "inputs"
    folder.mkdir(parents=True, exist_ok=True)
    pt2 = folder / f"{input_key}.pt2"
    hwq = folder / f"{input_key}.hwq"
    final = hwq if inp.weight_bits else pt2
    if final.exists():
        return final
    import torch

    from models.periodic import apply_periodic
    from models.zoo import build, export_pt2

    from .. import checkpoint
    from ..ingest import load_model
    from ..quantize import quantize_graph

    torch.manual_seed(seed)
    model, shape = build(inp.zoo)
    if inp.scheme:
        apply_periodic(model, inp.scheme)
    export_pt2(model, shape, pt2)
    if inp.weight_bits:
        graph = quantize_graph(load_model(pt2), _calibration(inp, shape, seed), inp.weight_bits, inp.act_bits)
        checkpoint.save(graph, hwq)
    return final


def _chunk(n_points: int, workers: int) -> int:
    # Analysis points take milliseconds: batch them so task overhead stays small, yet keep every
    # worker busy to the end.
    return max(1, min(64, math.ceil(n_points / (4 * workers))))


def plan(spec: Spec, out: Path, workers: int, cache: str) -> tuple[list[Task], int, int]:
    """(tasks for the rows not yet `ok`, rows to run, rows already done)."""
    done = {r["key"] for r in store.load(out) if r["status"] == "ok"}
    stages = spec.stages.names()
    by_input: dict[str, list] = {}
    keys: dict[tuple[str, str], str] = {}
    todo_rows = skipped = 0
    for p in spec.points:
        todo = []
        for s in stages:
            k = spec.row_key(p, s)
            keys[(p.key, s)] = k
            if k in done:
                skipped += 1
            else:
                todo.append(s)
        if todo:
            by_input.setdefault(p.input_key, []).append((p, todo))
            todo_rows += len(todo)
    from .stages import error_text

    paths, failed = {}, {}
    for p in spec.points:
        if p.input_key in by_input and p.input_key not in paths:
            try:
                paths[p.input_key] = str(prepare_input(p.input, p.input_key, spec.seed, out))
            except Exception as e:  # noqa: BLE001 - a model that cannot be built fails its rows only
                paths[p.input_key] = ""
                failed[p.input_key] = error_text(e)
    tasks = []
    for input_key, items in by_input.items():
        # The analysis of every point runs in batches, apart from its RTL stages, so its rows are
        # saved within seconds even when generate and simulate take minutes.
        light = [(p, ["analyze"]) for p, todo in items if "analyze" in todo]
        heavy = [[(p, [s for s in todo if s != "analyze"])] for p, todo in items if todo != ["analyze"]]
        size = _chunk(len(light), workers)
        groups = [light[i:i + size] for i in range(0, len(light), size)] + heavy
        for g in groups:
            tasks.append(Task(str(out), paths[input_key], spec.stages, g,
                              {(p.key, s): keys[(p.key, s)] for p, todo in g for s in todo}, cache,
                              failed.get(input_key)))
    return tasks, todo_rows, skipped


def execute(ex, fn, tasks: list, out: Path, total: int, desc: str, progress: bool) -> dict:
    """Run `tasks` on executor `ex`, writing their rows to `out` as they come; counts by status."""
    from tqdm import tqdm

    from .stages import error_text

    counts = {"ok": 0, "mismatch": 0, "error": 0}
    buffer, last = [], time.monotonic()
    with tqdm(total=total, desc=desc, unit="step", disable=not progress or not total) as bar:
        for task, rows, error in ex.submit_all(fn, tasks):
            if error is not None:
                rows = task.error_rows(f"task crashed: {error_text(error)}")
            for r in rows:
                counts[r["status"]] = counts.get(r["status"], 0) + 1
            buffer += rows
            bar.update(len(rows))
            if len(buffer) >= FLUSH_ROWS or time.monotonic() - last > FLUSH_SECONDS:
                store.append(out, buffer)
                buffer, last = [], time.monotonic()
    store.append(out, buffer)
    return counts


def run_sweep(spec: Spec, out, *, executor: str = "local", workers: int | None = None, address: str | None = None,
              cache_dir=None, progress: bool = True) -> dict:
    """Run the rows of `spec` not yet done in `out`; returns a summary (counts by status, times).

    `cache_dir`: where Verilator builds are kept (default OUT/sim-cache), one per engine
    configuration, shared by every simulation of it (on a cluster: put it on a shared filesystem).
    """
    out = Path(out).resolve()  # workers may run elsewhere (Ray)
    out.mkdir(parents=True, exist_ok=True)
    (out / STATE).write_text(json.dumps({"name": spec.name, "spec": spec.path, "points": len(spec.points),
                                         "stages": spec.stages.names(), "grid": spec.grid}, indent=1) + "\n")
    t0 = time.perf_counter()
    ex = executors.make(executor, workers, address)
    try:
        cache = str(Path(cache_dir).resolve() if cache_dir else (out / "sim-cache").resolve())
        tasks, todo_rows, skipped = plan(spec, out, workers or ex.workers, cache)
        counts = execute(ex, run_task, tasks, out, todo_rows, f"sweep {spec.name}", progress)
        total = store.compact(out)
    finally:
        ex.close()
    return {"name": spec.name, "points": len(spec.points), "rows": total, "ran": todo_rows, "skipped": skipped,
            **counts, "executor": ex.name, "wall_s": round(time.perf_counter() - t0, 3)}


__all__ = ["run_sweep", "plan", "prepare_input", "execute"]
