"""The bench of the fast simulation mode: the DRAM model runs inside the simulator as HDL.

The top level is `hwgen_fastmem` (hwgen/rtl_templates/hwgen_fastmem.v) around the generated
`hwgen_top`: it serves the engine's req/rd/wr streams cycle for cycle as `sim.dram.DramAgent` does
(same stall draws for the same seed, same latencies, same contract checks, traffic counted per
named region in hardware counters). Python is not called while a layer runs: `FastBench.run`
pulses start and sleeps until the memory raises `finished`. Memory contents, the region map, the
configuration and the counters cross through the memory's backdoor: $readmemh / $writememh of
files in the simulator's working folder, triggered by `bd_strobe` without a clock edge.

`FastBench` offers a host program (sim/engine_host.py) what `sim.engine_tb.Bench` offers:
`load`, `dump`, `run(name, desc_addr, timeout)`, `records`, `cycle`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cocotb.triggers import FallingEdge, RisingEdge, Timer

from hwgen.sim_target import FAST_DEPTH, FAST_LAT_THRESHOLDS
from sim.dram import (OTHER, REQ_DROPPED, WR_CHANGED, WR_DROPPED, BusTiming, Dram, DramError, Region, burst_error,
                      latency_thresholds, ready_threshold, request_changed, stream_base, timed_out, unfinished)

# the backdoor operations (bd_op) and their files, in the simulator's working folder
OP_LOAD, OP_DUMP, OP_LOAD_REGIONS, OP_LOAD_CONFIG, OP_DUMP_COUNTERS, OP_CLEAR_COUNTERS = 1, 2, 3, 4, 5, 6
MEM_FILE, REGIONS_FILE, CONFIG_FILE = "fastmem_mem.hex", "fastmem_regions.hex", "fastmem_config.hex"
COUNTER_FILES = {"read_bytes": "fastmem_rb.hex", "write_bytes": "fastmem_wb.hex",
                 "read_bursts": "fastmem_rn.hex", "write_bursts": "fastmem_wn.hex"}
E_CHANGED, E_DROPPED, E_BURST, E_WR_CHANGED, E_WR_DROPPED, E_UNFINISHED, E_TIMEOUT = range(1, 8)
REQ_FIELDS = ((0, 32), (32, 16), (48, 1))  # {write, len, addr} as the HDL memory latches a request


def to_hex(words: np.ndarray, bus_bytes: int) -> bytes:
    """Bytes (a multiple of the word) as $readmemh text: one word per line, most significant byte first."""
    swapped = np.ascontiguousarray(np.frombuffer(words, np.uint8).reshape(-1, bus_bytes)[:, ::-1])
    text = swapped.tobytes().hex().encode()
    lines = np.frombuffer(text, dtype=f"S{2 * bus_bytes}")
    return b"\n".join(lines.tolist()) + b"\n"


def from_hex(text: str, bus_bytes: int) -> bytes:
    """$writememh text back to bytes (little-endian words)."""
    digits = "".join(ln.strip().rjust(2 * bus_bytes, "0") for ln in text.splitlines()
                     if ln.strip() and not ln.startswith(("//", "@")))
    return np.ascontiguousarray(np.frombuffer(bytes.fromhex(digits), np.uint8).reshape(-1, bus_bytes)[:, ::-1]).tobytes()


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
    """The engine inside the HDL memory; see the module doc."""

    CLOCK_IMPL = "hdl"  # the design clocks itself: no Python, no VPI between a run's start and finish

    def __init__(self, dut, job: dict):
        self.dut = dut
        self.job = job
        self.bb = int(job["bus_bits"]) // 8
        self.size = int(job["dram_size"])
        regions = [Region(r["name"], int(r["base"]), int(r["size"])) for r in job.get("regions", [])]
        self.layout = Dram(self.size, self.bb, regions)  # checks the regions; its bytes stay unused
        self.regions = sorted(regions, key=lambda r: r.base)
        self.timing = BusTiming.from_dict(job["timing"])
        self.folder = Path.cwd()  # the simulator's working folder, where $readmemh looks
        self.records: list[dict] = []

    @property
    def cycle(self) -> int:
        return int(self.dut.cycle.value)

    def drive_idle(self) -> None:
        for name in ("start", "desc_addr", "timeout", "bd_op", "bd_lo", "bd_hi", "bd_strobe"):
            getattr(self.dut, name).value = 0

    async def _op(self, op: int, lo: int = 0, hi: int = 0) -> None:
        d = self.dut
        d.bd_op.value, d.bd_lo.value, d.bd_hi.value, d.bd_strobe.value = op, lo, hi, 1
        await Timer(1, "step")
        d.bd_strobe.value = 0
        await Timer(1, "step")

    async def start(self) -> None:
        """After reset: configure the memory, name its regions, preload the job's files."""
        (self.folder / CONFIG_FILE).write_text("".join(f"{w:016x}\n" for w in config_words(self.timing, self.size)))
        await self._op(OP_LOAD_CONFIG)
        words = self.size // self.bb
        ids = np.zeros(words, np.uint16)
        for i, r in enumerate(self.regions, start=1):
            ids[-(-r.base // self.bb):-(-(r.base + r.size) // self.bb)] = i
        if len(self.regions) + 1 > int(self.job["fastmem_regions"]):
            raise DramError(f"{len(self.regions)} regions: the HDL memory was built for {self.job['fastmem_regions'] - 1}")
        (self.folder / REGIONS_FILE).write_text("".join(f"{v:04x}\n" for v in ids.tolist()))
        await self._op(OP_LOAD_REGIONS, 0, words - 1)
        for item in self.job.get("preload", []):
            await self.load(int(item["addr"]), Path(item["file"]).read_bytes())

    async def dump(self, addr: int, nbytes: int) -> bytes:
        if addr < 0 or addr + nbytes > self.size:
            raise DramError(f"host dump of {nbytes} B at {addr:#x} lies outside the DRAM of {self.size} B")
        if nbytes == 0:
            return b""
        lo, hi = addr // self.bb, (addr + nbytes - 1) // self.bb
        await self._op(OP_DUMP, lo, hi)
        raw = from_hex((self.folder / MEM_FILE).read_text(), self.bb)
        start = addr - lo * self.bb
        return raw[start:start + nbytes]

    async def load(self, addr: int, data: bytes) -> None:
        if addr < 0 or addr + len(data) > self.size:
            raise DramError(f"host load of {len(data)} B at {addr:#x} lies outside the DRAM of {self.size} B")
        if not data:
            return
        lo, hi = addr // self.bb, (addr + len(data) - 1) // self.bb
        head, tail = addr - lo * self.bb, (hi + 1) * self.bb - addr - len(data)
        if head or tail:  # partial words at the ends keep their other bytes
            edges = await self.dump(lo * self.bb, (hi + 1 - lo) * self.bb)
            data = edges[:head] + bytes(data) + edges[len(edges) - tail:]
        (self.folder / MEM_FILE).write_bytes(to_hex(bytes(data), self.bb))
        await self._op(OP_LOAD, lo, hi)

    async def _traffic(self) -> dict:
        n = len(self.regions) + 1
        await self._op(OP_DUMP_COUNTERS, 0, n - 1)
        counts = {k: [int(v, 16) for v in (self.folder / f).read_text().split() if not v.startswith(("//", "@"))]
                  for k, f in COUNTER_FILES.items()}
        names = [OTHER] + [r.name for r in self.regions]
        out = {}
        for i, name in enumerate(names):
            t = {k: counts[k][i] for k in COUNTER_FILES}
            if any(t.values()):
                out[name] = t
        return dict(sorted(out.items()))

    def _error(self, code: int, timeout: int) -> str | None:
        d = self.dut
        if code == 0:
            return None
        if code == E_CHANGED:
            return request_changed(_request(int(d.err_held.value)), _request(int(d.err_req.value)))
        if code == E_BURST:
            return burst_error(*_request(int(d.err_req.value)), self.size, self.bb)
        if code == E_UNFINISHED:
            return unfinished(int(d.err_reads.value), int(d.err_writes.value))
        if code == E_TIMEOUT:
            return timed_out(timeout)
        return {E_DROPPED: REQ_DROPPED, E_WR_CHANGED: WR_CHANGED, E_WR_DROPPED: WR_DROPPED}[code]

    async def run(self, name: str, desc_addr: int, timeout: int) -> dict:
        """Pulse start with `desc_addr`, sleep until the memory reports the run finished."""
        d = self.dut
        pending = int(d.error.value)
        if pending and not (self.records and self.records[-1]["error"]):
            raise DramError(f"between runs: {self._error(pending, timeout)}")
        await self._op(OP_CLEAR_COUNTERS, 0, len(self.regions))
        d.desc_addr.value, d.timeout.value, d.start.value = desc_addr, timeout, 1
        await FallingEdge(d.clk)  # the memory took start: the engine sees it at the next rising edge
        d.start.value = 0
        await RisingEdge(d.finished)
        record = {"name": name, "cycles": int(d.run_cycles.value), "error": self._error(int(d.error.value), timeout),
                  "traffic": await self._traffic()}
        self.records.append(record)
        return record
