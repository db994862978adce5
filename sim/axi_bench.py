"""The bench of the AXI engine top: cocotbext-axi's AxiRam and AxiLiteMaster, the generated driver,
and a protocol monitor that counts bytes per DRAM region.

`AxiBench` offers a host program (sim/engine_host.py) what `sim.engine_tb.Bench` offers for the
stream top: `dram` (the memory, host access uncounted) and `run(name, desc_addr, timeout)`. Here
`run` is the Python driver (`hwgen.driver.Driver.run`: DESC_ADDR, start, wait for `irq`, STATUS,
counters) over `CocotbBackend` (AXI4-Lite through AxiLiteMaster, memory through the DRAM model).
AxiRam serves `m_axi_*` from the same bytes as the DRAM model, with seeded random pauses on every
channel (AR, R, AW, W, B) drawn from the job's `BusTiming` by `Pauser`s, only in the cycles a
channel has work.

`AxiMonitor` samples every cycle in which anything is open (between edges, settled; idle cycles
are skipped, see its doc) and checks the master: AR/AW bursts aligned, inside the DRAM, INCR, full-width, at most 256 beats and within one 4 KiB page; a valid AR/AW/W held with
its payload until accepted; WSTRB all ones and WLAST on exactly the last beat of its burst; no W
before its AW; nothing outstanding at `irq`. It counts every beat in the DRAM model's region
counters. A run's record also checks the performance counters: BUSY_CYCLES equals the cycles the
monitor saw from the start write's response to `irq`, BYTES_READ / BYTES_WRITTEN equal the bytes
it counted. Any difference is the run's error.
"""

from __future__ import annotations

import json
import logging
import random
from collections import deque
from pathlib import Path
from typing import Callable

import cocotb
from cocotb.simtime import get_sim_time
from cocotb.triggers import Event, FallingEdge, First, RisingEdge, Timer
from cocotb.utils import get_sim_steps
from cocotbext.axi import AxiBus, AxiLiteBus, AxiLiteMaster, AxiRam
from cocotbext.axi.stream import StreamSink

from hwgen.driver import Backend, Driver
from hwgen.engine import registers as regs
from hwgen.errors import HwgenError
from sim.dram import BusTiming, DramError
from sim.engine_tb import CLOCK_NS, PythonDram, job_dram

PAGE = 4096
MAX_BURST = 256


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
            # a Timer, not ClockCycles: that one resumes Python on every edge of a 16 M-cycle run
            await First(RisingEdge(self.irq), Timer(self.timeout_cycles * CLOCK_NS, "ns"))
        if not self.irq.value:
            raise HwgenError(f"timeout: no irq after {self.timeout_cycles} cycles")
        return True

    async def pause(self):
        await RisingEdge(self.clk)


def binstr_reader(handle) -> Callable[[], str]:
    """The GPI's bit string of `handle` ('0', '1', 'x', 'z' per bit), read without building a cocotb
    LogicArray: the monitor reads a dozen signals a cycle, and `handle.value` costs about 6x as much."""
    return handle._handle.get_signal_val_binstr


def _int(bits: str) -> int | None:
    """A sampled bit string's value, or None if any bit is X or Z."""
    try:
        return int(bits, 2)
    except ValueError:
        return None


class Pauser:
    """Seeded random pauses (probability 1 - p_ready a cycle) of one cocotbext-axi channel of AxiRam,
    drawn only in the cycles the channel has work: the master's valid is high (AR, AW, W sinks) or
    the memory has beats queued (R, B sources).

    cocotbext-axi's own pause generator resumes Python on every clock edge of the run and, by
    toggling `pause`, wakes each sink every cycle too, bus idle or not; a pause decided in a cycle
    nobody uses it changes nothing the master sees. The draws are those of the same seeded
    generator, one per busy cycle, so a run is as reproducible as before."""

    def __init__(self, channel, clk, rng: random.Random, p_ready: float):
        self.channel, self.clk, self.rng, self.p_ready = channel, clk, rng, p_ready

    async def loop(self) -> None:
        ch, rng, p = self.channel, self.rng, self.p_ready
        edge = RisingEdge(self.clk)
        if isinstance(ch, StreamSink):
            valid = binstr_reader(ch.valid)
            rise = RisingEdge(ch.valid)
            while True:
                ch.pause = rng.random() >= p
                await edge
                if valid() != "1":
                    await rise
        else:
            while True:
                ch.pause = rng.random() >= p
                await edge
                if ch.empty():
                    await ch.active_event.wait()


class AxiMonitor:
    """Protocol checks and per-region byte counts on m_axi_* (see the module doc).

    `read` maps each signal's name (`arvalid`, ..., and `s_axil_awvalid`, `irq`, ...) to a function
    that returns its bit string now. `step()` checks the current cycle and says whether the next
    one needs a look: cycles with no channel valid, no payload held, no burst open and no start or
    irq in progress are skipped (`watch`), since they can neither break a rule nor move a byte."""

    CHANNELS = {"ar": ("addr", "len", "size", "burst", "id"), "aw": ("addr", "len", "size", "burst", "id"),
                "w": ("data", "strb", "last")}
    VALIDS = ("arvalid", "awvalid", "wvalid", "rvalid", "bvalid")
    # the AXI-Lite and irq side: the start (a CONTROL write's response) and the end of a run
    CONTROL = ("s_axil_awvalid", "s_axil_awready", "s_axil_awaddr", "s_axil_bvalid", "irq")

    def __init__(self, dram, read: dict[str, Callable[[], str]]):
        self.dram, self.read = dram, read
        self.bb = dram.bus_bytes
        self.cycle = 0
        self.sampled = 0  # cycles looked at (the others were skipped as idle)
        self.violation: str | None = None
        self.reads: deque = deque()  # [addr, beats left]
        self.writes: deque = deque()  # [addr, beats left]: AW seen, W beats to come
        self.responses = 0  # write bursts whose B has not come
        self.held: dict = {}  # channel -> payload seen valid and not accepted
        self.start_armed = False
        self.start_cycle = self.irq_cycle = None
        self._b_prev = self._irq_prev = 0

    @classmethod
    def signals(cls) -> list[str]:
        """The names `read` must have: m_axi_<name> for the AXI master's, the rest as named."""
        return [f"{ch}{f}" for ch, fs in cls.CHANNELS.items() for f in fs + ("ready",)] + \
            list(cls.VALIDS) + ["rready", "rlast", "bready"] + list(cls.CONTROL)

    def _fail(self, message: str) -> None:
        if self.violation is None:
            self.violation = f"cycle {self.cycle}: {message}"

    def _bit(self, name: str) -> int:
        bits = self.read[name]()
        if bits not in ("0", "1"):
            self._fail(f"{name if name in self.CONTROL else 'm_axi_' + name} is X or Z")
        return bits == "1"

    def _value(self, name: str) -> int:
        v = _int(self.read[name]())
        return -1 if v is None else v  # an X payload is only wrong when valid

    async def watch(self, clk, wake: list) -> None:
        """Check every cycle that needs it, to the end of the simulation: sample between edges
        (everything has settled; the next rising edge sees these values), and while nothing is
        going on, sleep until a signal of `wake` (handles: the AR, AW and W valids, the AXI-Lite AW
        valid, irq) rises. R and B beats need no waking: they only come while a burst is open,
        and then every cycle is checked."""
        fall = FallingEdge(clk)
        period = get_sim_steps(CLOCK_NS, "ns")
        self._wake = Event()
        for sig in wake:
            cocotb.start_soon(self._rises(sig))
        while True:
            await fall
            self.cycle = get_sim_time() // period
            try:
                busy = self.step()
            except DramError as e:
                self._fail(str(e))
                busy = True
            if not busy:
                self._wake.clear()
                await self._wake.wait()

    async def _rises(self, sig) -> None:
        # one watcher per signal, resumed only when it rises (a First over all of them would make
        # and cancel a task per signal each time the bus goes quiet)
        rise = RisingEdge(sig)
        while True:
            await rise
            self._wake.set()

    def step(self) -> bool:
        """Check the current cycle; True when the next cycle must be checked too."""
        self.sampled += 1
        busy = self._sample()
        # the start: the write response of a CONTROL write with START (busy rises on that edge)
        aw = self._bit("s_axil_awvalid")
        if aw and self._bit("s_axil_awready"):
            self.start_armed = _int(self.read["s_axil_awaddr"]()) == regs.offset("CONTROL")
        b, irq = self._bit("s_axil_bvalid"), self._bit("irq")
        if b and not self._b_prev and self.start_armed:
            self.start_cycle, self.start_armed = self.cycle, False
        if irq and not self._irq_prev:
            self.irq_cycle = self.cycle
            if self.reads or self.writes or self.responses:
                self._fail(f"irq with {len(self.reads)} read and {len(self.writes)} write bursts and "
                           f"{self.responses} write responses unfinished")
        self._b_prev, self._irq_prev = b, irq
        # b and irq stay watched while high, so their remembered values are never stale
        return bool(busy or self.reads or self.writes or self.responses or aw or b or irq or self.start_armed)

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

    def _sample(self) -> bool:
        """The m_axi side of the current cycle; True if any channel is valid or holds a payload."""
        valid = {name[:-5]: self._bit(name) for name in self.VALIDS}
        busy = any(valid.values())
        for ch, fields in self.CHANNELS.items():
            held = self.held.pop(ch, None)
            if not valid[ch] and held is None:
                continue
            payload = tuple(self._value(f"{ch}{f}") for f in fields)
            if held is not None and (not valid[ch] or payload != held):
                self._fail(f"{ch.upper()} valid dropped or payload changed before it was accepted")
            if not valid[ch]:
                continue
            if not self._bit(f"{ch}ready"):
                self.held[ch] = payload
            elif ch != "w":
                self._burst(ch, *payload[:4])
            else:
                data, strb, last = payload
                if strb != (1 << self.bb) - 1:
                    self._fail(f"WSTRB {strb:#x} on a full beat")
                self._beat(self.writes, True, last, "W")
        if valid["r"] and self._bit("rready"):
            self._beat(self.reads, False, self._value("rlast"), "R")  # RLAST is the memory's side
        if valid["b"] and self._bit("bready"):
            self.responses -= 1
        return busy

    def _burst(self, ch: str, addr: int, length: int, size: int, burst: int) -> None:
        """An accepted AR or AW: checked, counted, queued for its beats."""
        beats = length + 1
        self.dram.check_burst(addr, beats, ch == "aw")  # aligned, in range; counts the burst
        if burst != 1 or 1 << size != self.bb:
            self._fail(f"{ch.upper()} burst type {burst} size {size}: not INCR of full beats")
        if beats > MAX_BURST or addr // PAGE != (addr + beats * self.bb - 1) // PAGE:
            self._fail(f"{ch.upper()} burst of {beats} beats at {addr:#x} crosses a 4 KiB boundary")
        (self.reads if ch == "ar" else self.writes).append([addr, beats])
        self.responses += ch == "aw"


class AxiBench(PythonDram):
    """The AXI top's bench; the same interface to host programs as `sim.engine_tb.Bench`."""

    def __init__(self, dut, job: dict):
        self.dut, self.job = dut, job
        self.dram = job_dram(job)
        timing = BusTiming.from_dict(job["timing"])
        self.ram = AxiRam(AxiBus.from_prefix(dut, "m_axi"), dut.clk, dut.rst, size=self.dram.size, mem=self.dram.mem)
        for side in (self.ram.read_if, self.ram.write_if):
            side.log.setLevel(logging.WARNING)  # a line per burst: ~6 % of a run's CPU; the monitor counts them
        channels = [(self.ram.read_if.ar_channel, timing.req_ready), (self.ram.read_if.r_channel, timing.rd_valid),
                    (self.ram.write_if.aw_channel, timing.req_ready), (self.ram.write_if.w_channel, timing.wr_ready),
                    (self.ram.write_if.b_channel, timing.wr_ready)]
        self._pausers = [Pauser(ch, dut.clk, random.Random(timing.seed * 8 + i), p)
                         for i, (ch, p) in enumerate(channels) if p < 1.0]
        self.lite = AxiLiteMaster(AxiLiteBus.from_prefix(dut, "s_axil"), dut.clk, dut.rst)
        self.backend = CocotbBackend(self.lite, self.dram, dut.irq, dut.clk)
        gen_dir = Path(job["axi_dir"])
        manifest = json.loads((gen_dir / "manifest.json").read_text())
        regmap = json.loads((gen_dir / manifest["files"]["registers"]).read_text())
        self.driver = Driver(manifest, regmap, b"", self.backend)  # the bench preloads the image
        self.monitor = AxiMonitor(self.dram, {name: binstr_reader(getattr(dut, name if name in AxiMonitor.CONTROL
                                                                          else f"m_axi_{name}"))
                                              for name in AxiMonitor.signals()})
        self.records: list[dict] = []
        self._checked = False

    @property
    def cycle(self) -> int:
        return get_sim_time() // get_sim_steps(CLOCK_NS, "ns")

    def drive_idle(self) -> None:
        for name in ("awvalid", "wvalid", "arvalid", "bready", "rready"):
            getattr(self.dut, f"s_axil_{name}").value = 0

    async def start(self) -> None:
        for pauser in self._pausers:
            cocotb.start_soon(pauser.loop())
        d = self.dut
        wake = [d.m_axi_arvalid, d.m_axi_awvalid, d.m_axi_wvalid, d.s_axil_awvalid, d.irq]
        cocotb.start_soon(self.monitor.watch(d.clk, wake))

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
