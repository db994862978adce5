"""The results table of a sweep: Parquet files in the sweep folder, one row per (point, stage).

While a sweep runs, finished rows are appended as small `parts/part-NNNNNN.parquet` files (so an
interrupted sweep keeps what it finished); at the end they are folded into `results.parquet`,
where each row key appears once (the latest run of it) and rows are sorted by point and stage.
Reading takes `results.parquet` and then the parts in order, later rows replacing earlier ones.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import HwgenError
from .spec import PARAMS, STAGES

RESULTS = "results.parquet"
PARTS = "parts"
# Figures with a column of their own (everything else is in `result`, the command's JSON).
FIGURES = {
    "energy_pj": "float64", "dram_bytes": "int64", "cycles": "int64", "macs": "int64",
    "lower_bound_ratio": "float64", "lut": "int64", "ff": "int64", "dsp": "int64", "bram": "int64",
    "mismatches": "int64", "sim_cycles": "int64", "sim_dram_bytes": "int64", "utilization": "float64",
    "images": "int64",
}
_PARAM_TYPES = {"pow2": "int64", "bus": "int64", "posint": "int64", "posnum": "float64", "bool": "bool",
                "text": "string", "objective": "string"}


def schema():
    import pyarrow as pa

    types = {"string": pa.string(), "int64": pa.int64(), "float64": pa.float64(), "bool": pa.bool_()}
    fields = [("key", "string"), ("point", "string"), ("stage", "string"), ("input", "string"),
              ("input_key", "string"), ("seed", "int64"), ("status", "string"), ("error", "string"),
              ("wall_s", "float64")]
    fields += [(k, _PARAM_TYPES[kind]) for k, (_, kind) in PARAMS.items()]
    fields += list(FIGURES.items()) + [("result", "string")]
    return pa.schema([(name, types[t]) for name, t in fields])


def _table(rows: list[dict]):
    import pyarrow as pa

    s = schema()
    cols = {}
    for f in s:
        vals = [r.get(f.name) for r in rows]
        if pa.types.is_floating(f.type):
            vals = [None if v is None else float(v) for v in vals]
        cols[f.name] = pa.array(vals, type=f.type)
    return pa.table(cols, schema=s)


def _write(table, path: Path) -> None:
    import pyarrow.parquet as pq

    tmp = path.with_suffix(".tmp")
    pq.write_table(table, tmp, compression="zstd")
    tmp.replace(path)  # a reader never sees half a file


def append(out: Path, rows: list[dict]) -> None:
    if not rows:
        return
    parts = Path(out) / PARTS
    parts.mkdir(parents=True, exist_ok=True)
    n = len(list(parts.glob("part-*.parquet")))
    _write(_table(rows), parts / f"part-{n:06d}.parquet")


def _files(out: Path) -> list[Path]:
    out = Path(out)
    files = [out / RESULTS] if (out / RESULTS).exists() else []
    return files + sorted((out / PARTS).glob("part-*.parquet"))


def load(out: Path) -> list[dict]:
    """Every row of the sweep in `out`, the latest run of each key, sorted by point and stage."""
    import pyarrow.parquet as pq

    latest: dict[str, dict] = {}
    for f in _files(out):
        try:
            rows = pq.read_table(f).to_pylist()
        except Exception as e:  # noqa: BLE001 - pyarrow raises several types for a bad file
            raise HwgenError(f"{f}: not a readable sweep results file ({type(e).__name__}: {e})") from None
        for r in rows:
            latest[r["key"]] = r
    order = {s: i for i, s in enumerate(STAGES)}
    return sorted(latest.values(), key=lambda r: (r["input"], r["point"], order.get(r["stage"], 9), r["key"]))


def compact(out: Path) -> int:
    """Fold the parts into results.parquet; returns the number of rows."""
    out = Path(out)
    parts = sorted((out / PARTS).glob("part-*.parquet"))
    if not parts and (out / RESULTS).exists():
        return len(load(out))
    rows = load(out)
    _write(_table(rows), out / RESULTS)
    for p in parts:
        p.unlink()
    if (out / PARTS).is_dir() and not any((out / PARTS).iterdir()):
        (out / PARTS).rmdir()
    return len(rows)
