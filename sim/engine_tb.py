"""The cocotb test that runs a bus master (the generated engine, or the test DMA) against `sim.dram`.

It is driven by a job file (JSON, path in the environment variable `HWGEN_SIM_JOB`) that
`hwgen.simrunner.make_job` builds:

    interface ("stream", the default, or "axi": the AXI top, see sim/axi_bench.py; then `axi_dir`
    names the generated folder whose driver and register map the bench uses),
    memory ("python", the default: sim.dram's agent; "hdl": the fast mode, the memory inside the
    simulator, run by sim/fast_bench.py rather than this test; then fastmem_regions is the region
    counters it was built with),
    bus_bits, dram_size, ports (logical -> HDL port names, see sim.dram.STREAM_PORTS),
    req_layout {addr|len|write: [lsb, width]} (with a req_payload port), timing (sim.dram.BusTiming),
    regions [{name, base, size}], preload [{addr, file}],
    runs [{name, desc_addr, timeout, loads [{addr, file}], dumps [{addr, size, file}]}],
    host "module:function" (optional), results (path of the results JSON)

Without `host`, the runs are replayed in order: load the inputs, pulse start, wait for done,
dump the outputs. With `host`, that async function `host(bench, job) -> dict` is the program
(e.g. a whole network, the host computing between layers) and calls `bench.run(...)` itself
(sim/host.py).

The test itself passes whenever the job could be executed; what the master computed, how long it
took, and any contract violation it made are in the results file, judged by the caller. So a
wrong engine shows up as mismatches, never as a lost run.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import cocotb
from cocotb.clock import Clock
from cocotb.triggers import ClockCycles, FallingEdge
from cocotb.utils import get_sim_steps

from sim.dram import BusTiming, Dram, DramAgent, DramError, Region, ReqLayout
from sim.host import host_program

JOB_ENV = "HWGEN_SIM_JOB"
RESET_CYCLES = 4
CLOCK_NS = 10


def job_dram(job: dict) -> Dram:
    """The job's DRAM: size, bus width, named regions, preloaded files."""
    dram = Dram(int(job["dram_size"]), int(job["bus_bits"]) // 8,
                [Region(r["name"], int(r["base"]), int(r["size"])) for r in job.get("regions", [])])
    for item in job.get("preload", []):
        dram.load(int(item["addr"]), Path(item["file"]).read_bytes())
    return dram


class PythonDram:
    """Host access (uncounted) to a bench's Python `dram`; awaited, as the fast mode's HDL memory needs."""

    async def load(self, addr: int, data: bytes) -> None:
        self.dram.load(addr, data)

    async def dump(self, addr: int, nbytes: int) -> bytes:
        return self.dram.dump(addr, nbytes)


class Bench(PythonDram):
    """What a host program sees: `load` and `dump` of the DRAM (uncounted host access) and `run`
    of the master.

    `sim.axi_bench.AxiBench` is the same for the AXI top, `sim.fast_bench.FastBench` for the
    memory inside the simulator (the fast mode, which runs without cocotb)."""

    def __init__(self, dut, job: dict):
        self.dut = dut
        self.job = job
        self.dram = job_dram(job)
        layout = ReqLayout.from_dict(job["req_layout"]) if job.get("req_layout") else None
        self.agent = DramAgent(dut, self.dram, job["ports"], BusTiming.from_dict(job["timing"]), layout)
        self.records: list[dict] = []

    @property
    def cycle(self) -> int:
        return self.agent.cycle

    def drive_idle(self) -> None:
        self.agent.drive_idle()

    async def start(self) -> None:
        """After reset: serve the master."""
        cocotb.start_soon(self.agent.loop(get_sim_steps(CLOCK_NS, "ns")))

    async def run(self, name: str, desc_addr: int, timeout: int) -> dict:
        record = (await self.agent.run(name, desc_addr, timeout)).as_dict()
        self.records.append(record)
        return record


def make_bench(dut, job: dict):
    if job.get("interface", "stream") == "axi":
        from sim.axi_bench import AxiBench

        return AxiBench(dut, job)
    if job.get("memory") == "hdl":
        raise DramError("the fast mode's design runs under sim/fast_bench.py, not cocotb")
    return Bench(dut, job)


@cocotb.test()
async def run_job(dut):
    job = json.loads(Path(os.environ[JOB_ENV]).read_text())
    results: dict = {"runs": [], "host": None, "error": None}
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        bench = make_bench(dut, job)
        bench.drive_idle()
        dut.rst.value = 1
        Clock(dut.clk, CLOCK_NS, unit="ns").start()
        await ClockCycles(dut.clk, RESET_CYCLES)
        await FallingEdge(dut.clk)
        dut.rst.value = 0
        await bench.start()
        try:
            results["host"] = await host_program(job)(bench, job)
        finally:
            results["runs"] = bench.records
            results["cycles_simulated"] = bench.cycle
    except (DramError, OSError, KeyError, ValueError) as e:
        results["error"] = f"{type(e).__name__}: {e}"
    results["wall_seconds"] = time.perf_counter() - wall
    results["cpu_seconds"] = time.process_time() - cpu  # the simulator's and the host program's
    Path(job["results"]).write_text(json.dumps(results, indent=1, sort_keys=True))
