"""Design-space exploration: run a sweep spec (YAML) over engine and analysis parameters, resumably.

`hwgen sweep SPEC.yaml --out DIR` expands the spec into points (each input model x one value of
every parameter in its grid, or a random sample of them), runs each point's stages (analyze
always; generate, with Yosys resources if asked; simulate in cocotb/Verilator if asked) on a
local process pool or on Ray, and writes one row per point and stage to DIR/results.parquet,
keyed by a hash of the point's parameters: rerunning runs only rows that are missing or did not
finish ok. A failing point is recorded with its error and never stops the sweep.
`hwgen sweep DIR --report` prints the table and draws the Pareto fronts as PNG.
See docs/sweep.md for the spec format.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from ..errors import HwgenError


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("target", type=Path, metavar="SPEC.yaml|DIR",
                   help="a sweep spec to run, or (with --report) the folder of a sweep")
    p.add_argument("--out", type=Path, metavar="DIR", help="folder of the sweep's results (created; reruns resume)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="local: a process pool on this machine (default); ray: Ray tasks (ray.init(), or --address)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="parallel workers (default: every core; with --address, the cluster's)")
    p.add_argument("--address", default=None, metavar="ADDR", help="join an existing Ray cluster (ray://host:port or auto)")
    p.add_argument("--report", action="store_true", help="print the results table of DIR and draw its Pareto fronts")
    p.add_argument("--plot", type=Path, default=None, metavar="FILE.png",
                   help="with --report: where the Pareto plot goes (default DIR/pareto.png)")
    p.add_argument("--csv", type=Path, default=None, metavar="FILE", help="with --report: also write the table as CSV")
    p.add_argument("--json", action="store_true", help="print the run's summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from .. import sweep
    from ..sweep import report, spec

    if args.report:
        if args.out is not None:
            raise HwgenError("--report reads the folder given as the argument; drop --out")
        rows = report.load_points(args.target)
        print(report.table(rows))
        plot = args.plot or args.target / "pareto.png"
        drawn = report.write_pareto(rows, plot, title=report.sweep_name(args.target))
        print(f"Pareto fronts ({', '.join(drawn)}) -> {plot}" if drawn else "no figures to draw a Pareto front of")
        if args.csv:
            args.csv.write_text(report.to_csv(rows))
        return 0
    if args.out is None:
        raise HwgenError("--out DIR is required to run a sweep")
    s = spec.load(args.target)
    summary = sweep.run_sweep(s, args.out, executor=args.executor, workers=args.workers, address=args.address,
                              progress=not args.no_progress)
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        print(f"sweep {summary['name']}: {summary['points']} points, {summary['rows']} rows in {args.out}/results.parquet; "
              f"ran {summary['ran']} ({summary['ok']} ok, {summary['mismatch']} mismatch, {summary['error']} error), "
              f"{summary['skipped']} already done; {summary['wall_s']:.1f} s on {summary['executor']}")
    return 0 if summary["mismatch"] == 0 and summary["error"] == 0 else 1
