"""The bench of the AXI engine top: cocotbext-axi's AxiRam and AxiLiteMaster, the generated driver,
and a protocol monitor that counts bytes per DRAM region.

`AxiBench` offers a host program (sim/engine_host.py) what `sim.engine_tb.Bench` offers for the
stream top: `dram` (the memory, host access uncounted) and `run(name, desc_addr, timeout)`. Here
`run` is the Python driver (`hwgen.driver.Driver.run`: DESC_ADDR, start, wait for `irq`, STATUS,
counters) over `CocotbBackend` (AXI4-Lite through AxiLiteMaster, memory through the DRAM model).
AxiRam serves `m_axi_*` from the same bytes as the DRAM model, with seeded random pauses on every
channel (AR, R, AW, W, B) drawn from the job's `BusTiming`.

`AxiMonitor` samples every cycle (between edges, settled) and checks the master: AR/AW bursts aligned, inside the
DRAM, INCR, full-width, at most 256 beats and within one 4 KiB page; a valid AR/AW/W held with
its payload until accepted; WSTRB all ones and WLAST on exactly the last beat of its burst; no W
before its AW; nothing outstanding at `irq`. It counts every beat in the DRAM model's region
counters. A run's record also checks the performance counters: BUSY_CYCLES equals the cycles the
monitor saw from the start write's response to `irq`, BYTES_READ / BYTES_WRITTEN equal the bytes
it counted. Any difference is the run's error.
"""

from __future__ import annotations

import json
import random
from collections import deque
from pathlib import Path

import cocotb
from cocotb.triggers import ClockCycles, FallingEdge, First, ReadOnly, RisingEdge
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam

from hwgen.driver import Backend, Driver
from hwgen.engine import registers as regs
from hwgen.errors import HwgenError
from sim.dram import BusTiming, DramError
from sim.engine_tb import PythonDram, job_dram

PAGE = 4096
MAX_BURST = 256


def _int(value) -> int | None:
    """A sampled signal's value, or None if any bit is X or Z."""
    try:
        return int(value)
    except ValueError:
        return None


class CocotbBackend(Backend):
    """The driver's registers through AxiLiteMaster, memory through the DRAM model, `irq` by pin."""

    def __init__(self, lite: AxiLiteMaster, dram, irq, clk):
        self.lite, self.dram, self.irq, self.clk = lite, dram, irq, clk
        self.timeout_cycles = 100_000

    async def read_reg(self, offset):
        return await self.lite.read_dword(offset)

    async def write_reg(self, offset, value):
        await self.lite.write_dword(offset, value)

    async def read_mem(self, addr, nbytes):
        return self.dram.dump(addr, nbytes)

    async def write_mem(self, addr, data):
        self.dram.load(addr, data)

    async def wait_irq(self, timeout):
        if not self.irq.value:
            await First(RisingEdge(self.irq), ClockCycles(self.clk, self.timeout_cycles))
        if not self.irq.value:
            raise HwgenError(f"timeout: no irq after {self.timeout_cycles} cycles")
        return True

    async def pause(self):
        await RisingEdge(self.clk)


def pauses(rng: random.Random, p_ready: float):
    """A cocotbext-axi pause generator: pause a cycle with probability 1 - p_ready."""
    while True:
        yield rng.random() >= p_ready


class AxiMonitor:
    """Protocol checks and per-region byte counts on m_axi_* (see the module doc)."""

    CHANNELS = {"ar": ("addr", "len", "size", "burst", "id"), "aw": ("addr", "len", "size", "burst", "id"),
                "w": ("data", "strb", "last")}

    def __init__(self, dut, dram):
        self.dut, self.dram = dut, dram
        self.bb = dram.bus_bytes
        self.sig = {f"{ch}{f}": getattr(dut, f"m_axi_{ch}{f}") for ch, fs in self.CHANNELS.items()
                    for f in fs + ("valid", "ready")}
        for name in ("rvalid", "rready", "rlast", "bvalid", "bready"):
            self.sig[name] = getattr(dut, f"m_axi_{name}")
        self.cycle = 0
        self.violation: str | None = None
        self.reads: deque = deque()  # [addr, beats left]
        self.writes: deque = deque()  # [addr, beats left]: AW seen, W beats to come
        self.responses = 0  # write bursts whose B has not come
        self.held: dict = {}  # channel -> payload seen valid and not accepted
        self.start_armed = False
        self.start_cycle = self.irq_cycle = None
        self._b_prev = self._irq_prev = 0

    def _fail(self, message: str) -> None:
        if self.violation is None:
            self.violation = f"cycle {self.cycle}: {message}"

    async def loop(self) -> None:
        d = self.dut
        while True:
            # Between edges everything has settled: these are the values the next rising edge sees.
            await FallingEdge(d.clk)
            await ReadOnly()
            self.cycle += 1
            try:
                self._sample()
            except DramError as e:
                self._fail(str(e))
            # the start: the write response of a CONTROL write with START (busy rises on that edge)
            if _int(d.s_axil_awvalid.value) and _int(d.s_axil_awready.value):
                self.start_armed = _int(d.s_axil_awaddr.value) == regs.offset("CONTROL")
            b, irq = _int(d.s_axil_bvalid.value), _int(d.irq.value)
            if b and not self._b_prev and self.start_armed:
                self.start_cycle, self.start_armed = self.cycle, False
            if irq and not self._irq_prev:
                self.irq_cycle = self.cycle
                if self.reads or self.writes or self.responses:
                    self._fail(f"irq with {len(self.reads)} read and {len(self.writes)} write bursts and "
                               f"{self.responses} write responses unfinished")
            self._b_prev, self._irq_prev = b, irq

    def _beat(self, queue: deque, write: bool, last: int, what: str) -> None:
        """One R or W beat of the head burst of `queue`: counted at its address, LAST on its last beat."""
        if not queue:
            self._fail(f"{what} beat before its {'AW' if write else 'AR'}")
            return
        head = queue[0]
        self.dram.count_beat(head[0], write)
        head[0] += self.bb
        head[1] -= 1
        if bool(last) != (head[1] == 0):
            self._fail(f"{what}LAST does not mark exactly the last beat of the burst")
        if not head[1]:
            queue.popleft()

    def _sample(self) -> None:
        s = {k: _int(v.value) for k, v in self.sig.items()}
        for k, v in s.items():
            if v is None and k.endswith(("valid", "ready")):
                self._fail(f"m_axi_{k} is X or Z")
        s = {k: -1 if v is None else v for k, v in s.items()}  # an X payload is only wrong when valid
        for ch, fields in self.CHANNELS.items():
            payload = tuple(s[f"{ch}{f}"] for f in fields)
            if ch in self.held and (not s[f"{ch}valid"] or payload != self.held[ch]):
                self._fail(f"{ch.upper()} valid dropped or payload changed before it was accepted")
            self.held.pop(ch, None)
            if s[f"{ch}valid"] and not s[f"{ch}ready"]:
                self.held[ch] = payload
        for ch, queue in (("ar", self.reads), ("aw", self.writes)):
            if s[f"{ch}valid"] and s[f"{ch}ready"]:
                addr, beats = s[f"{ch}addr"], s[f"{ch}len"] + 1
                self.dram.check_burst(addr, beats, ch == "aw")  # aligned, in range; counts the burst
                if s[f"{ch}burst"] != 1 or 1 << s[f"{ch}size"] != self.bb:
                    self._fail(f"{ch.upper()} burst type {s[f'{ch}burst']} size {s[f'{ch}size']}: not INCR of full beats")
                if beats > MAX_BURST or addr // PAGE != (addr + beats * self.bb - 1) // PAGE:
                    self._fail(f"{ch.upper()} burst of {beats} beats at {addr:#x} crosses a 4 KiB boundary")
                queue.append([addr, beats])
                self.responses += ch == "aw"
        if s["rvalid"] and s["rready"]:
            self._beat(self.reads, False, s["rlast"], "R")  # RLAST is the memory's side
        if s["wvalid"] and s["wready"]:
            if s["wstrb"] != (1 << self.bb) - 1:
                self._fail(f"WSTRB {s['wstrb']:#x} on a full beat")
            self._beat(self.writes, True, s["wlast"], "W")
        if s["bvalid"] and s["bready"]:
            self.responses -= 1


class AxiBench(PythonDram):
    """The AXI top's bench; the same interface to host programs as `sim.engine_tb.Bench`."""

    def __init__(self, dut, job: dict):
        self.dut, self.job = dut, job
        self.dram = job_dram(job)
        timing = BusTiming.from_dict(job["timing"])
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=self.dram.size, mem=self.dram.mem)
        self._pauses = [(self.ram.read_if.ar_channel, timing.req_ready), (self.ram.read_if.r_channel, timing.rd_valid),
                        (self.ram.write_if.aw_channel, timing.req_ready), (self.ram.write_if.w_channel, timing.wr_ready),
                        (self.ram.write_if.b_channel, timing.wr_ready)]
        self._seed = timing.seed
        self.lite = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.backend = CocotbBackend(self.lite, self.dram, dut.irq, dut.clk)
        gen_dir = Path(job["axi_dir"])
        manifest = json.loads((gen_dir / "manifest.json").read_text())
        regmap = json.loads((gen_dir / manifest["files"]["registers"]).read_text())
        self.driver = Driver(manifest, regmap, b"", self.backend)  # the bench preloads the image
        self.monitor = AxiMonitor(dut, self.dram)
        self.records: list[dict] = []
        self._checked = False

    @property
    def cycle(self) -> int:
        return self.monitor.cycle

    def drive_idle(self) -> None:
        for name in ("awvalid", "wvalid", "arvalid", "bready", "rready"):
            getattr(self.dut, f"s_axil_{name}").value = 0

    async def start(self) -> None:
        for i, (channel, p_ready) in enumerate(self._pauses):
            if p_ready < 1.0:
                channel.set_pause_generator(pauses(random.Random(self._seed * 8 + i), p_ready))
        cocotb.start_soon(self.monitor.loop())

    async def run(self, name: str, desc_addr: int, timeout: int, count: int = 1) -> dict:
        """One start of `count` descriptors from `desc_addr` (a chain when count > 1)."""
        mon = self.monitor
        if not self._checked:
            await self.driver.check()
            self._checked = True
        self.dram.reset_traffic()
        mon.start_cycle = mon.irq_cycle = None
        self.backend.timeout_cycles = timeout
        record = {"name": name, "cycles": 0, "error": None, "traffic": {}, "counters": {}}
        try:
            counters = await self.driver.run(desc_addr, count=count)
            record["counters"] = counters
            record["cycles"] = mon.irq_cycle - mon.start_cycle
        except HwgenError as e:
            record["error"] = str(e)
        record["traffic"] = self.dram.traffic_dict()
        if record["error"] is None:
            record["error"] = mon.violation or self._counter_error(record)
        self.records.append(record)
        return record

    @staticmethod
    def _counter_error(record: dict) -> str | None:
        c, t = record["counters"], record["traffic"].values()
        seen = {"BUSY_CYCLES": record["cycles"], "BYTES_READ": sum(v["read_bytes"] for v in t),
                "BYTES_WRITTEN": sum(v["write_bytes"] for v in t)}
        wrong = [f"{k} {c[k]} (bench: {v})" for k, v in seen.items() if c[k] != v]
        return f"performance counters differ from the bench's count: {', '.join(wrong)}" if wrong else None
