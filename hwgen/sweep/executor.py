"""Where sweep tasks run: a local process pool, or Ray (this machine's cores, or a cluster).

Both give `submit_all(fn, tasks)`, an iterator over (task, result, error) as tasks finish (error:
the exception of a task that crashed as a whole, e.g. its worker died); the sweep does not care
which one runs it. A task declares its CPU needs (`task.cpus`), which Ray schedules
by. Ray is imported only when asked for; a Ray that cannot start is one HwgenError line.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

from ..errors import HwgenError

EXECUTORS = ("local", "ray")


class LocalExecutor:
    """A pool of worker processes on this machine (`workers`, default: every core)."""

    name = "local"

    def __init__(self, workers: int | None = None):
        self.workers = workers or os.cpu_count() or 1

    def submit_all(self, fn: Callable, tasks: list) -> Iterator:
        from concurrent.futures import ProcessPoolExecutor, as_completed
        from multiprocessing import get_context

        if not tasks:
            return
        # spawn, not fork: the driver may hold threads (tqdm) and imported torch.
        with ProcessPoolExecutor(max_workers=min(self.workers, len(tasks)), mp_context=get_context("spawn")) as pool:
            futures = {pool.submit(fn, t): t for t in tasks}
            for f in as_completed(futures):
                e = f.exception()
                yield futures[f], None if e else f.result(), e

    def close(self) -> None:
        pass


class RayExecutor:
    """Ray tasks: `ray.init()` on this machine's cores (or `workers` of them), or `address` of a cluster."""

    name = "ray"

    def __init__(self, address: str | None = None, workers: int | None = None):
        try:
            import ray
        except ImportError:
            raise HwgenError("the 'ray' package is not installed (pip install -r requirements.txt)") from None
        self.ray = ray
        self.workers = workers or 1  # how finely to batch tasks; Ray itself schedules by CPUs
        kwargs = {"include_dashboard": False, "logging_level": "ERROR", "log_to_driver": False}
        if address:
            _check_reachable(address)
            kwargs["address"] = address
        elif workers:
            kwargs["num_cpus"] = workers
        try:
            self._owned = not ray.is_initialized()
            if self._owned:
                ray.init(**kwargs)
            if not workers:
                self.workers = max(1, int(ray.cluster_resources().get("CPU", 1)))
        except Exception as e:  # noqa: BLE001 - Ray raises many types; the user gets one line
            where = f"the Ray cluster at {address}" if address else "a local Ray instance"
            msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise HwgenError(f"could not start {where}: {msg} (use --executor local)") from None

    def submit_all(self, fn: Callable, tasks: list) -> Iterator:
        remote = {}
        pending = []
        for t in tasks:
            cpus = t.cpus
            if cpus not in remote:
                remote[cpus] = self.ray.remote(num_cpus=cpus, max_retries=0)(fn)
            pending.append(remote[cpus].remote(t))
        by_ref = dict(zip(pending, tasks))
        while pending:
            (ref,), pending = self.ray.wait(pending, num_returns=1)
            try:
                yield by_ref[ref], self.ray.get(ref), None
            except self.ray.exceptions.RayError as e:
                yield by_ref[ref], None, e

    def close(self) -> None:
        if self._owned:
            self.ray.shutdown()


def _check_reachable(address: str) -> None:
    """An unreachable cluster is one line now, not minutes of Ray retrying and logging."""
    import socket

    hostport = address.removeprefix("ray://")
    if hostport == "auto" or ":" not in hostport:
        return
    host, _, port = hostport.rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except (OSError, ValueError) as e:
        raise HwgenError(f"could not reach the Ray cluster at {address}: {getattr(e, 'strerror', None) or e}") from None


def make(name: str, workers: int | None = None, address: str | None = None):
    if name not in EXECUTORS:
        raise HwgenError(f"unknown executor '{name}' (choose from {', '.join(EXECUTORS)})")
    if workers is not None and workers < 1:
        raise HwgenError(f"--workers must be at least 1, got {workers}")
    if address and name != "ray":
        raise HwgenError("--address joins a Ray cluster: use it with --executor ray")
    return RayExecutor(address, workers) if name == "ray" else LocalExecutor(workers)
