"""The simulated DRAM: a byte-addressed memory that serves a bus master with hostile timing.

Two parts:
- `Dram`: the memory itself and its traffic counters (bytes and bursts per named region, read and
  write). Plain Python, usable without a simulator.
- `DramAgent`: the cocotb driver that attaches a `Dram` to the engine's top-level streams
  (`req`, `rd`, `wr`, see docs/ARCHITECTURE.md) and its control (`desc_addr`, `start`, `done`).
  Every cycle it decides, from its seed and the cycle number, whether it accepts a request, offers
  a read beat and accepts a write beat; read data comes back in request order after a random
  latency.
  It also checks the master's side of the stream rules (a valid payload may not change or drop
  before it is accepted) and the address contract (aligned, in range, non-empty bursts).

The counted traffic is what the engine moves; host loads and dumps (`Dram.load`, `Dram.dump`)
are not counted.
"""

from __future__ import annotations

import bisect
from collections import deque
from dataclasses import dataclass, field

OTHER = "other"  # bytes outside every named region
_M64 = (1 << 64) - 1


# The agent's draw streams: request ready, read beat valid, write ready (by cycle), latency (by request).
STREAM_REQ, STREAM_RD, STREAM_WR, STREAM_LATENCY = 0, 1, 2, 3


def stream_base(seed: int, stream: int) -> int:
    return (seed * 0x9E3779B97F4A7C15 + stream * 0xD1B54A32D192ED03) & _M64


def draw(seed: int, stream: int, n: int) -> int:
    """A 64-bit draw that depends only on (seed, stream, n): splitmix64 of the three.

    Stall decisions are a pure function of the cycle number (and latencies of the request
    number), not of how many draws came before, so skipping idle cycles (`DramAgent.loop`) changes
    nothing, and two simulators (or the HDL memory of `hwgen_fastmem.v`) see the same stalls
    whenever the master behaves the same.
    """
    x = (stream_base(seed, stream) + n) & _M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _M64
    return x ^ (x >> 31)


def _to_unit(x: int) -> float:
    return x / 2.0 ** 64


def chance(seed: int, stream: int, n: int) -> float:
    """The draw as a uniform float in [0, 1]."""
    return _to_unit(draw(seed, stream, n))


def latency_of(draw_unit: float, latency: tuple[int, int]) -> int:
    lo, hi = latency
    return lo + int(draw_unit * (hi - lo + 1))


def _first(pred) -> int:
    """The least 64-bit x for which the monotone `pred(x)` holds (2**64 if none)."""
    lo, hi = 0, 1 << 64
    while lo < hi:
        mid = (lo + hi) // 2
        if pred(mid):
            hi = mid
        else:
            lo = mid + 1
    return lo


def ready_threshold(p: float) -> int:
    """The integer T with `chance(...) < p` exactly when the draw is below T (float rounding included):
    what the HDL memory compares its draw with."""
    return _first(lambda x: not _to_unit(x) < p)


def latency_thresholds(latency: tuple[int, int]) -> list[int]:
    """T_k, k = 1 .. hi - lo: the latency of a request is lo + how many T_k its draw reaches."""
    lo, hi = latency
    return [_first(lambda x, k=k: latency_of(_to_unit(x), latency) >= lo + k) for k in range(1, hi - lo + 1)]


class DramError(Exception):
    """The bus master broke the memory contract (address, alignment, length, stream rules)."""


# What a broken contract is called (the HDL memory's error codes are reported with the same words).
REQ_DROPPED = "req valid dropped before the request was accepted"
WR_CHANGED = "wr payload changed before it was accepted"
WR_DROPPED = "wr valid dropped before the beat was accepted"


def request_changed(held: tuple, request: tuple) -> str:
    return f"request changed from {held} to {request} before it was accepted"


def unfinished(reads: int, writes: int) -> str:
    return f"done raised with {reads} read and {writes} write requests unfinished"


def timed_out(timeout: int) -> str:
    return f"timeout: no done after {timeout} cycles"


def burst_error(addr: int, beats: int, write: bool, size: int, bus_bytes: int) -> str | None:
    """What is wrong with a request of `beats` beats at `addr` to a DRAM of `size` bytes, or None."""
    kind = "write" if write else "read"
    if beats <= 0:
        return f"{kind} request at {addr:#x} with length {beats} beats"
    if addr % bus_bytes:
        return f"{kind} request address {addr:#x} is not aligned to {bus_bytes} B"
    if addr + beats * bus_bytes > size:
        return f"{kind} request [{addr:#x}, +{beats} beats) lies outside the DRAM of {size} B"
    return None


@dataclass(frozen=True)
class Region:
    name: str
    base: int
    size: int


@dataclass
class Traffic:
    read_bytes: int = 0
    write_bytes: int = 0
    read_bursts: int = 0
    write_bursts: int = 0

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Dram:
    """Byte-addressed memory of `size` bytes with a `bus_bytes`-wide port and named regions."""

    def __init__(self, size: int, bus_bytes: int, regions: list[Region] = ()):
        if size <= 0 or size % bus_bytes:
            raise DramError(f"DRAM size {size} must be a positive multiple of the bus width {bus_bytes}")
        self.size = size
        self.bus_bytes = bus_bytes
        self.mem = bytearray(size)
        self._bases: list[int] = []
        self._regions: list[Region] = []
        for r in regions:
            self.add_region(r)
        self.traffic: dict[str, Traffic] = {}

    # -- layout -------------------------------------------------------------------------------------
    def add_region(self, region: Region) -> None:
        if region.base < 0 or region.size < 0 or region.base + region.size > self.size:
            raise DramError(f"region '{region.name}' [{region.base}, +{region.size}) lies outside the DRAM of {self.size} B")
        i = bisect.bisect_right(self._bases, region.base)
        prev_end = self._regions[i - 1].base + self._regions[i - 1].size if i else 0
        next_base = self._bases[i] if i < len(self._bases) else self.size
        if region.base < prev_end or region.base + region.size > next_base:
            raise DramError(f"region '{region.name}' overlaps another region")
        self._bases.insert(i, region.base)
        self._regions.insert(i, region)

    def region_of(self, addr: int) -> str:
        i = bisect.bisect_right(self._bases, addr) - 1
        if i >= 0:
            r = self._regions[i]
            if addr < r.base + r.size:
                return r.name
        return OTHER

    # -- host access (not counted) --------------------------------------------------------------------
    def load(self, addr: int, data: bytes) -> None:
        if addr < 0 or addr + len(data) > self.size:
            raise DramError(f"host load of {len(data)} B at {addr:#x} lies outside the DRAM of {self.size} B")
        self.mem[addr:addr + len(data)] = data

    def dump(self, addr: int, nbytes: int) -> bytes:
        if addr < 0 or addr + nbytes > self.size:
            raise DramError(f"host dump of {nbytes} B at {addr:#x} lies outside the DRAM of {self.size} B")
        return bytes(self.mem[addr:addr + nbytes])

    # -- bus access (counted) -------------------------------------------------------------------------
    def reset_traffic(self) -> None:
        self.traffic = {}

    def _count(self, addr: int) -> Traffic:
        name = self.region_of(addr)
        t = self.traffic.get(name)
        if t is None:
            t = self.traffic[name] = Traffic()
        return t

    def check_burst(self, addr: int, beats: int, write: bool) -> None:
        error = burst_error(addr, beats, write, self.size, self.bus_bytes)
        if error:
            raise DramError(error)
        t = self._count(addr)
        if write:
            t.write_bursts += 1
        else:
            t.read_bursts += 1

    def count_beat(self, addr: int, write: bool) -> None:
        """Count one beat at `addr` (a bus model that moves the data itself, e.g. an AXI VIP, calls this)."""
        t = self._count(addr)
        if write:
            t.write_bytes += self.bus_bytes
        else:
            t.read_bytes += self.bus_bytes

    def read_beat(self, addr: int) -> int:
        self.count_beat(addr, False)
        return int.from_bytes(self.mem[addr:addr + self.bus_bytes], "little")

    def write_beat(self, addr: int, value: int) -> None:
        self.count_beat(addr, True)
        self.mem[addr:addr + self.bus_bytes] = value.to_bytes(self.bus_bytes, "little")

    def traffic_dict(self) -> dict[str, dict]:
        return {name: t.as_dict() for name, t in sorted(self.traffic.items())}


@dataclass(frozen=True)
class BusTiming:
    """How hostile the memory is: per-cycle probabilities of being ready, and read latency.

    `seed` makes a run reproducible; the same seed gives the same stalls for the same master.
    """

    seed: int = 0
    req_ready: float = 1.0  # P(memory accepts a request this cycle)
    rd_valid: float = 1.0  # P(memory offers the next read beat this cycle, once it is due)
    wr_ready: float = 1.0  # P(memory accepts a write beat this cycle)
    latency: tuple[int, int] = (1, 1)  # cycles from request accepted to first beat due, uniform
    max_outstanding: int = 8  # requests accepted but not finished

    @classmethod
    def profile(cls, name: str, seed: int) -> "BusTiming":
        if name == "ideal":
            return cls(seed=seed)
        if name == "hostile":
            return cls(seed=seed, req_ready=0.6, rd_valid=0.7, wr_ready=0.6, latency=(1, 24), max_outstanding=4)
        raise DramError(f"unknown bus timing profile '{name}' (ideal or hostile)")

    def as_dict(self) -> dict:
        return {"seed": self.seed, "req_ready": self.req_ready, "rd_valid": self.rd_valid,
                "wr_ready": self.wr_ready, "latency": list(self.latency), "max_outstanding": self.max_outstanding}

    @classmethod
    def from_dict(cls, d: dict) -> "BusTiming":
        return cls(seed=int(d["seed"]), req_ready=float(d["req_ready"]), rd_valid=float(d["rd_valid"]),
                   wr_ready=float(d["wr_ready"]), latency=tuple(int(v) for v in d["latency"]),
                   max_outstanding=int(d["max_outstanding"]))


@dataclass(frozen=True)
class ReqLayout:
    """Bit positions `(lsb, width)` of the request payload's fields in the flat `req__payload` port."""

    addr: tuple[int, int]
    len: tuple[int, int]
    write: tuple[int, int]

    @classmethod
    def from_dict(cls, d: dict) -> "ReqLayout":
        return cls(**{k: (int(d[k][0]), int(d[k][1])) for k in ("addr", "len", "write")})

    def decode(self, payload: int) -> tuple[int, int, bool]:
        def field_(f):
            return (payload >> f[0]) & ((1 << f[1]) - 1)
        return field_(self.addr), field_(self.len), bool(field_(self.write))


@dataclass
class RunRecord:
    """What one `start` .. `done` of the master cost."""

    name: str
    cycles: int = 0
    error: str | None = None
    traffic: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"name": self.name, "cycles": self.cycles, "error": self.error, "traffic": self.traffic}


# Port names of an Amaranth component's flattened streams (`req__payload` holds the request
# fields, decoded by a ReqLayout). A shell with one port per request field maps req_addr,
# req_len and req_write instead of req_payload.
STREAM_PORTS = {"req_valid": "req__valid", "req_ready": "req__ready", "req_payload": "req__payload",
                "rd_valid": "rd__valid", "rd_ready": "rd__ready", "rd_data": "rd__payload",
                "wr_valid": "wr__valid", "wr_ready": "wr__ready", "wr_data": "wr__payload"}


class DramAgent:
    """Drives the memory side of the streams and the control inputs, one clock cycle at a time.

    Each cycle: on the falling edge it drives its outputs (stall decisions drawn from the seed and
    the cycle number), then in the read-only phase it samples both sides, which are exactly the
    values the next rising edge sees, and commits the handshakes. Sampling settled values avoids
    depending on the simulator's ordering of callbacks around the clock edge. While the master
    computes with nothing in flight, the agent sleeps until it requests or raises done.

    `ports` maps the logical names of STREAM_PORTS to the design's port names; with a
    `req_payload` port, `req_layout` locates the request fields in it.
    """

    def __init__(self, dut, dram: Dram, ports: dict, timing: BusTiming, req_layout: ReqLayout | None = None):
        g = lambda logical: getattr(dut, ports[logical])  # noqa: E731
        self.clk = dut.clk
        self.req_valid, self.req_ready = g("req_valid"), g("req_ready")
        if "req_payload" in ports:
            if req_layout is None:
                raise DramError("a req_payload port needs a request layout")
            payload, layout = g("req_payload"), req_layout
            self._read_req = lambda: layout.decode(payload.value.to_unsigned())
        else:
            addr, length, write = g("req_addr"), g("req_len"), g("req_write")
            self._read_req = lambda: (addr.value.to_unsigned(), length.value.to_unsigned(), bool(write.value))
        self.rd_valid, self.rd_ready, self.rd_payload = g("rd_valid"), g("rd_ready"), g("rd_data")
        self.wr_valid, self.wr_ready, self.wr_payload = g("wr_valid"), g("wr_ready"), g("wr_data")
        self.start, self.done, self.desc_addr = dut.start, dut.done, dut.desc_addr
        self.dram = dram
        self.timing = timing
        self.cycle = 0
        self._requests = 0  # requests accepted so far: indexes the latency draws
        self._reads: deque = deque()  # [due_cycle, addr, beats_left]
        self._writes: deque = deque()  # [addr, beats_left]
        self._last_due = 0
        self._rd_beat: int | None = None  # the beat on offer, held until accepted
        self._held_req: tuple | None = None  # master's unaccepted valid payloads (stream rule check)
        self._held_wr: int | None = None
        self._driven: dict = {}
        self._run: RunRecord | None = None
        self._run_start = 0
        self._run_timeout = 0
        self._start_pending: int | None = None
        self._finished = None  # cocotb Event of the current run
        self.fatal: str | None = None  # a contract violation seen between runs; the loop has stopped

    def _drive(self, handle, value: int) -> None:
        # Writing only on change saves most simulator calls: ready/valid rarely toggle every cycle.
        if self._driven.get(handle) != value:
            handle.value = value
            self._driven[handle] = value

    def drive_idle(self) -> None:
        """Every input of the master to 0: nothing undriven (X) reaches it, even during reset."""
        for h in (self.req_ready, self.rd_valid, self.rd_payload, self.wr_ready, self.start, self.desc_addr):
            self._drive(h, 0)

    def _chance(self, stream: int, n: int) -> float:
        return chance(self.timing.seed, stream, n)

    def _idle(self) -> bool:
        """During a run, nothing in flight, and the master neither requesting nor done right now.

        Called at a falling edge: the master's outputs have settled since the rising edge, so
        reading them here (not the values sampled before that edge) sees what the next edge sees.
        """
        return (self._run is not None and self._start_pending is None and not self._reads and not self._writes
                and self._rd_beat is None and self._held_req is None and self._held_wr is None
                and not self.req_valid.value and not self.done.value)

    async def loop(self, period_steps: int) -> None:
        """Serve the master forever; `period_steps` is the clock period in simulator steps."""
        from cocotb.triggers import FallingEdge, First, ReadOnly, RisingEdge, Timer
        from cocotb.utils import get_sim_time

        t = self.timing
        self.drive_idle()
        await FallingEdge(self.clk)
        t0 = get_sim_time("step")
        while True:
            if self._idle():
                # The master computes without touching the bus: sleep until it requests or finishes
                # (or the run times out) instead of stepping each cycle in Python. Nothing can be
                # accepted meanwhile: req_ready is low, and no read or write is open.
                self._drive(self.req_ready, 0)
                self._drive(self.start, 0)
                left = self._run_start + self._run_timeout - self.cycle
                await First(RisingEdge(self.req_valid), RisingEdge(self.done), Timer(left * period_steps, "step"))
                await FallingEdge(self.clk)
            self.cycle = (get_sim_time("step") - t0) // period_steps
            # -- drive ----------------------------------------------------------------------------
            starting = self._start_pending is not None
            if starting:
                self._drive(self.desc_addr, self._start_pending)
                self._start_pending = None
                self._run_start = self.cycle
            self._drive(self.start, 1 if starting else 0)
            outstanding = len(self._reads) + len(self._writes)
            req_ready = 1 if outstanding < t.max_outstanding and self._chance(STREAM_REQ, self.cycle) < t.req_ready else 0
            self._drive(self.req_ready, req_ready)
            if (self._rd_beat is None and self._reads and self._reads[0][0] <= self.cycle
                    and self._chance(STREAM_RD, self.cycle) < t.rd_valid):
                self._rd_beat = self.dram.read_beat(self._reads[0][1])
                self._drive(self.rd_payload, self._rd_beat)
            self._drive(self.rd_valid, 0 if self._rd_beat is None else 1)
            wr_ready = 1 if self._writes and self._chance(STREAM_WR, self.cycle) < t.wr_ready else 0
            self._drive(self.wr_ready, wr_ready)
            await ReadOnly()
            # -- sample and commit ----------------------------------------------------------------
            try:
                self._commit(req_ready, wr_ready)
            except DramError as e:
                if self._run is None:  # outside a run nobody waits: remember it for the next run
                    self.fatal = str(e)
                    return
                self._finish(str(e))
            await FallingEdge(self.clk)

    def _commit(self, req_ready: int, wr_ready: int) -> None:
        if self.req_valid.value:
            request = self._read_req()
            if self._held_req is not None and request != self._held_req:
                raise DramError(request_changed(self._held_req, request))
            if req_ready:
                self._held_req = None
                addr, beats, write = request
                self.dram.check_burst(addr, beats, write)
                if write:
                    self._writes.append([addr, beats])
                else:
                    latency = latency_of(self._chance(STREAM_LATENCY, self._requests), self.timing.latency)
                    self._last_due = max(self._last_due, self.cycle + 1 + latency)
                    self._reads.append([self._last_due, addr, beats])
                self._requests += 1
            else:
                self._held_req = request
        elif self._held_req is not None:
            raise DramError(REQ_DROPPED)

        if self._rd_beat is not None and self.rd_ready.value:
            self._rd_beat = None
            head = self._reads[0]
            head[1] += self.dram.bus_bytes
            head[2] -= 1
            if head[2] == 0:
                self._reads.popleft()

        if self.wr_valid.value:
            data = self.wr_payload.value.to_unsigned()
            if self._held_wr is not None and data != self._held_wr:
                raise DramError(WR_CHANGED)
            if wr_ready:
                self._held_wr = None
                head = self._writes[0]
                self.dram.write_beat(head[0], data)
                head[0] += self.dram.bus_bytes
                head[1] -= 1
                if head[1] == 0:
                    self._writes.popleft()
            else:
                self._held_wr = data
        elif self._held_wr is not None:
            raise DramError(WR_DROPPED)

        if self._run is not None and self.cycle > self._run_start:
            if self.done.value:
                if self._reads or self._writes:
                    raise DramError(unfinished(len(self._reads), len(self._writes)))
                self._finish(None)
            elif self.cycle - self._run_start >= self._run_timeout:
                self._finish(timed_out(self._run_timeout))

    def _finish(self, error: str | None) -> None:
        run = self._run
        run.cycles = self.cycle - self._run_start
        run.error = error
        run.traffic = self.dram.traffic_dict()
        self._run = None
        self._finished.set()

    async def run(self, name: str, desc_addr: int, timeout: int) -> RunRecord:
        """Pulse `start` with `desc_addr` and wait for `done`; returns the cycles and traffic counted."""
        from cocotb.triggers import Event

        if self.fatal:
            raise DramError(f"between runs: {self.fatal}")
        if self._reads or self._writes or self._rd_beat is not None:
            raise DramError("start of a run while requests of the previous run are unfinished")
        self.dram.reset_traffic()
        self._run = RunRecord(name)
        self._run_timeout = timeout
        self._start_pending = desc_addr
        self._finished = Event()
        record = self._run
        await self._finished.wait()
        return record
