"""The bench of the fast simulation mode: the DRAM model runs inside the simulator as HDL.

The design is `hwgen_fastmem` (hwgen/rtl_templates/hwgen_fastmem.v) around the generated
`hwgen_top`: it serves the engine's req/rd/wr streams cycle for cycle as `sim.dram.DramAgent` does
(same stall draws for the same seed, same latencies, same contract checks, traffic counted per
named region in hardware counters). It is compiled with its own C++ main loop
(hwgen/rtl_templates/hwgen_fastsim.cpp) into a program that this module drives through a pipe:
no cocotb, no VPI and no Python between a layer's start and its finish. Memory contents and the
region map cross as binary files in the program's working folder, which the program copies into
or out of the model's arrays between clock edges; the counters come back on a line of the pipe; the
configuration is a $readmemh file the design loads at a strobe, without a clock edge.

`FastBench` offers a host program (sim/engine_host.py) what `sim.engine_tb.Bench` offers:
`load`, `dump`, `run(name, desc_addr, timeout)`, `records`, `cycle`; `run_job` runs a job
(sim/engine_tb.py's fields) as the cocotb test does and returns the same results.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from pathlib import Path

import numpy as np

from hwgen.sim_target import FAST_DEPTH, FAST_LAT_THRESHOLDS
from sim.dram import (OTHER, REQ_DROPPED, WR_CHANGED, WR_DROPPED, BusTiming, Dram, DramError, Region, burst_error,
                      latency_thresholds, ready_threshold, request_changed, stream_base, timed_out, unfinished)

RESET_CYCLES = 4  # sim.engine_tb's: the same cycle numbers, so the same stall draws

# the files of the program's commands (hwgen_fastsim.cpp), in its working folder
LOAD_FILE, DUMP_FILE, REGIONS_FILE, CONFIG_FILE = ("fastmem_load.bin", "fastmem_dump.bin", "fastmem_regions.bin",
                                                   "fastmem_config.hex")
COUNTERS = ("read_bytes", "write_bytes", "read_bursts", "write_bursts")  # the `counters` answer's order
E_CHANGED, E_DROPPED, E_BURST, E_WR_CHANGED, E_WR_DROPPED, E_UNFINISHED, E_TIMEOUT = range(1, 8)
REQ_FIELDS = ((0, 32), (32, 16), (48, 1))  # {write, len, addr} as the HDL memory latches a request


def _request(value: int) -> tuple[int, int, bool]:
    addr, length, write = ((value >> lsb) & ((1 << width) - 1) for lsb, width in REQ_FIELDS)
    return addr, length, bool(write)


def config_words(timing: BusTiming, dram_size: int) -> list[int]:
    """The memory's configuration (layout: the C_* words of hwgen_fastmem.v)."""
    if not 0 < timing.max_outstanding <= FAST_DEPTH:
        raise DramError(f"max_outstanding {timing.max_outstanding}: the HDL memory holds 1 to {FAST_DEPTH} requests")
    lat = latency_thresholds(timing.latency)
    if timing.latency[0] < 0 or len(lat) > FAST_LAT_THRESHOLDS:
        raise DramError(f"latency {timing.latency}: the HDL memory draws spans of 1 to {FAST_LAT_THRESHOLDS + 1} cycles")
    thresholds = [ready_threshold(p) for p in (timing.req_ready, timing.rd_valid, timing.wr_ready)]
    if max(thresholds) >= 1 << 64:
        raise DramError("a ready probability above 1")
    return ([dram_size, timing.max_outstanding, timing.latency[0], len(lat)]
            + [stream_base(timing.seed, s) for s in range(4)] + thresholds + lat)


class FastBench:
    """The engine inside the HDL memory, in the program `proc` (hwgen_fastsim.cpp); see the module doc."""

    def __init__(self, proc: subprocess.Popen, job: dict, folder: Path):
        self.proc = proc
        self.job = job
        self.bb = int(job["bus_bits"]) // 8
        self.size = int(job["dram_size"])
        regions = [Region(r["name"], int(r["base"]), int(r["size"])) for r in job.get("regions", [])]
        self.layout = Dram(self.size, self.bb, regions)  # checks the regions; its bytes stay unused
        self.regions = sorted(regions, key=lambda r: r.base)
        self.timing = BusTiming.from_dict(job["timing"])
        self.folder = folder  # the program's working folder, where its files go
        self.records: list[dict] = []
        self.cycle = 0

    def _ask(self, line: str) -> str:
        self._send(line)
        return self._answer(line)

    def _send(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def _answer(self, line: str) -> str:
        answer = self.proc.stdout.readline()
        if not answer:
            raise DramError(f"the fast simulator stopped (exit {self.proc.wait()}) at '{line}'")
        if answer.startswith(("error", "%")):  # "%Error: ...", "%Warning: ...": Verilator's own messages
            raise DramError(f"the fast simulator: {answer.strip()}")
        return answer.strip()

    def _state(self) -> tuple[int, int]:
        error, cycle = (int(v, 16) for v in self._ask("state").split())
        self.cycle = cycle
        return error, cycle

    def start(self) -> None:
        """Reset, configure the memory, name its regions, preload the job's files."""
        self._ask(f"reset {RESET_CYCLES}")
        (self.folder / CONFIG_FILE).write_text("".join(f"{w:016x}\n" for w in config_words(self.timing, self.size)))
        self._ask("config")
        words = self.size // self.bb
        ids = np.zeros(words, np.uint16)
        for i, r in enumerate(self.regions, start=1):
            ids[-(-r.base // self.bb):-(-(r.base + r.size) // self.bb)] = i
        if len(self.regions) + 1 > int(self.job["fastmem_regions"]):
            raise DramError(f"{len(self.regions)} regions: the HDL memory was built for {self.job['fastmem_regions'] - 1}")
        (self.folder / REGIONS_FILE).write_bytes(ids.astype("<u2").tobytes())
        self._ask(f"regions 0 {words - 1}")
        for item in self.job.get("preload", []):
            self._load(int(item["addr"]), Path(item["file"]).read_bytes())

    def _dump(self, addr: int, nbytes: int) -> bytes:
        if addr < 0 or addr + nbytes > self.size:
            raise DramError(f"host dump of {nbytes} B at {addr:#x} lies outside the DRAM of {self.size} B")
        if nbytes == 0:
            return b""
        lo, hi = addr // self.bb, (addr + nbytes - 1) // self.bb
        self._ask(f"dump {lo} {hi}")
        raw = (self.folder / DUMP_FILE).read_bytes()
        start = addr - lo * self.bb
        return raw[start:start + nbytes]

    def _load(self, addr: int, data: bytes) -> None:
        if addr < 0 or addr + len(data) > self.size:
            raise DramError(f"host load of {len(data)} B at {addr:#x} lies outside the DRAM of {self.size} B")
        if not data:
            return
        lo, hi = addr // self.bb, (addr + len(data) - 1) // self.bb
        head, tail = addr - lo * self.bb, (hi + 1) * self.bb - addr - len(data)
        if head or tail:  # partial words at the ends keep their other bytes
            edges = self._dump(lo * self.bb, (hi + 1 - lo) * self.bb)
            data = edges[:head] + bytes(data) + edges[len(edges) - tail:]
        (self.folder / LOAD_FILE).write_bytes(data)
        self._ask(f"load {lo} {hi}")

    # the host program's interface: awaited, as the cocotb benches' are
    async def dump(self, addr: int, nbytes: int) -> bytes:
        return self._dump(addr, nbytes)

    async def load(self, addr: int, data: bytes) -> None:
        self._load(addr, data)

    def _traffic(self) -> dict:
        names = [OTHER] + [r.name for r in self.regions]
        values = [int(v, 16) for v in self._ask(f"counters {len(names)}").split()]
        counts = {k: values[i * len(names):(i + 1) * len(names)] for i, k in enumerate(COUNTERS)}
        out = {}
        for i, name in enumerate(names):
            t = {k: counts[k][i] for k in COUNTERS}
            if any(t.values()):
                out[name] = t
        return dict(sorted(out.items()))

    def _error(self, code: int, timeout: int, held: int = 0, req: int = 0, reads: int = 0, writes: int = 0) -> str | None:
        if code == 0:
            return None
        if code == E_CHANGED:
            return request_changed(_request(held), _request(req))
        if code == E_BURST:
            return burst_error(*_request(req), self.size, self.bb)
        if code == E_UNFINISHED:
            return unfinished(reads, writes)
        if code == E_TIMEOUT:
            return timed_out(timeout)
        return {E_DROPPED: REQ_DROPPED, E_WR_CHANGED: WR_CHANGED, E_WR_DROPPED: WR_DROPPED}[code]

    def run(self, name: str, desc_addr: int, timeout: int, count: int = 1):
        """Start a run with `desc_addr` at once; the program clocks the design until the memory reports
        it finished. Awaiting the result waits for that: a host program that computes between
        `bench.run(...)` and its `await` (the reference's output of the layer) does it while the
        program simulates, on another core. (The cocotb benches start a run when it is awaited.)
        `count`: the descriptors a start walks, fixed in the design (the job's `chain_count`, 1 but
        for a chain shell, hwgen.gateware.chain.ChainShell)."""
        if count != int(self.job.get("chain_count", 1)):
            raise DramError(f"this design walks {self.job.get('chain_count', 1)} descriptors per start, not {count}")
        pending, _ = self._state()
        if pending and not (self.records and self.records[-1]["error"]):
            raise DramError(f"between runs: {self._error(pending, timeout)}")
        command = f"run {desc_addr} {timeout}"  # the program zeroes the counters first
        self._send(command)
        return self._finish(name, command, timeout)

    async def _finish(self, name: str, command: str, timeout: int) -> dict:
        cycles, error, held, req, reads, writes = (int(v, 16) for v in self._answer(command).split())
        record = {"name": name, "cycles": cycles, "error": self._error(error, timeout, held, req, reads, writes),
                  "traffic": self._traffic()}
        self.records.append(record)
        return record


def run_job(build, job: dict, workdir: Path, waves_file: Path | None = None) -> dict:
    """Run `job` (sim/engine_tb.py's fields) on the program `build.exe`; the cocotb test's results."""
    from hwgen.errors import HwgenError
    from sim.host import host_program

    workdir.mkdir(parents=True, exist_ok=True)
    results: dict = {"runs": [], "host": None, "error": None}
    wall, cpu = time.perf_counter(), time.process_time()
    args = [str(build.exe)]
    if waves_file is not None:
        if build.waves != "vcd" or Path(waves_file).suffix.lower() != ".vcd":
            raise HwgenError(f"waves file '{waves_file}': the fast mode writes .vcd waves from a traced build")
        args += ["--trace-file", str(Path(waves_file).resolve())]
    with open(workdir / "sim.log", "w") as log:
        try:
            proc = subprocess.Popen(args, cwd=workdir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                                    text=True)
        except OSError as e:
            raise HwgenError(f"could not start the fast simulator {build.exe}: {e}") from None
        bench = None
        try:
            bench = FastBench(proc, job, workdir)
            bench.start()
            results["host"] = asyncio.run(host_program(job)(bench, job))
        except (DramError, OSError, KeyError, ValueError) as e:
            results["error"] = f"{type(e).__name__}: {e}"
        finally:
            if bench is not None:
                results["runs"] = bench.records
                try:
                    bench._state()
                except (DramError, OSError, ValueError):
                    pass
            try:
                proc.stdin.close()  # the program ends at the end of its input
            except OSError:
                pass
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
    results["cycles_simulated"] = bench.cycle if bench is not None else 0
    results["wall_seconds"] = time.perf_counter() - wall
    # the simulator's CPU and the host program's (which runs here), as the cocotb test counts both
    results["cpu_seconds"] = usage.ru_utime + usage.ru_stime + time.process_time() - cpu
    (workdir / "results.json").write_text(json.dumps(results, indent=1, sort_keys=True))
    return results
