"""Which host program runs a job (sim/engine_tb.py's field `host`), and the default one: replay.

Shared by the cocotb test (sim/engine_tb.py) and the fast mode's driver (sim/fast_bench.py), so it
imports neither. A host program is `async def program(bench, job) -> dict` over a bench's `load`,
`dump` and `run`.
"""

from __future__ import annotations

import importlib
from pathlib import Path


async def replay(bench, job: dict) -> dict:
    """The default host program: the job's runs in order; stops at the first failed run."""
    for run in job["runs"]:
        for item in run.get("loads", []):
            await bench.load(int(item["addr"]), Path(item["file"]).read_bytes())
        record = await bench.run(run["name"], int(run["desc_addr"]), int(run["timeout"]))
        if record["error"]:
            break
        for item in run.get("dumps", []):
            Path(item["file"]).write_bytes(await bench.dump(int(item["addr"]), int(item["size"])))
    return {}


def host_program(job: dict):
    spec = job.get("host")
    if not spec:
        return replay
    module, _, func = spec.partition(":")
    return getattr(importlib.import_module(module), func)
