"""A cycle-level DRAM model for `amaranth.sim`: serves the engine's request/read/write streams.

Used by the gateware tests and the utilization benchmark. It accepts requests in order, answers
reads beat by beat and stores write beats, stalling every stream at random (seeded) so the
engine is checked under back-pressure; `stall=0` gives the engine's unstalled cycle count.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from ..errors import HwgenError


@dataclass
class Traffic:
    """What one run moved: cycles from start to done, bytes read and written, requests."""

    cycles: int = 0
    read_bytes: int = 0
    write_bytes: int = 0
    requests: list = field(default_factory=list)


def run_layer(engine, image: bytearray, desc_addr: int | None, *, stall: float | dict = 0.0, seed: int = 0, inputs=(),
              max_cycles: int = 2_000_000) -> Traffic:
    """Run one layer of `engine` (an `Engine`) on `image` (modified in place); returns its Traffic.

    Any component with the engine's memory streams, `start` and `done` runs too: `inputs` are
    (signal, value) pairs set with `start` (a `NetOps` descriptor, a `Chain`'s count), and
    `desc_addr` None leaves that port out. `stall`: the chance a stream stalls in a cycle, one for all, or
    per stream as {"req": .., "rd": .., "wr": ..} (e.g. reads slow while writes flow)."""
    from amaranth.sim import Simulator

    bb = len(engine.rd.payload) // 8
    rng = random.Random(seed)
    traffic = Traffic()

    stalls = stall if isinstance(stall, dict) else dict.fromkeys(("req", "rd", "wr"), stall)

    def chance(stream):
        return rng.random() >= stalls[stream]

    async def bench(ctx):
        if desc_addr is not None:
            ctx.set(engine.desc_addr, desc_addr)
        for signal, value in inputs:
            ctx.set(signal, value)
        ctx.set(engine.start, 1)
        await ctx.tick()
        ctx.set(engine.start, 0)
        reads, writes = [], []  # pending requests: [addr, beats left]
        for cycle in range(max_cycles):
            req_ready, wr_ready = chance("req"), chance("wr")
            rd_valid = bool(reads) and chance("rd")
            ctx.set(engine.req.ready, req_ready)
            ctx.set(engine.wr.ready, wr_ready)
            ctx.set(engine.rd.valid, rd_valid)
            if rd_valid:
                addr = reads[0][0]
                ctx.set(engine.rd.payload, int.from_bytes(image[addr:addr + bb], "little"))
            req = ctx.get(engine.req.valid) and req_ready
            if req:
                r = (ctx.get(engine.req.payload.addr), ctx.get(engine.req.payload.len),
                     ctx.get(engine.req.payload.write))
            rd = rd_valid and ctx.get(engine.rd.ready)
            wr = ctx.get(engine.wr.valid) and wr_ready
            if wr:
                if not writes:
                    raise HwgenError("engine sent a write beat without a write request")
                data = ctx.get(engine.wr.payload)
            done = ctx.get(engine.done)
            await ctx.tick()
            if done:
                traffic.cycles = cycle + 1
                return
            if req:
                addr, beats, write = r
                if addr % bb or addr + beats * bb > len(image) or beats == 0:
                    raise HwgenError(f"engine requested {beats} beats at {addr:#x}, outside the image or unaligned")
                traffic.requests.append(r)
                (writes if write else reads).append([addr, beats])
            if rd:
                traffic.read_bytes += bb
                reads[0][0] += bb
                reads[0][1] -= 1
                if not reads[0][1]:
                    reads.pop(0)
            if wr:
                addr = writes[0][0]
                image[addr:addr + bb] = data.to_bytes(bb, "little")
                traffic.write_bytes += bb
                writes[0][0] += bb
                writes[0][1] -= 1
                if not writes[0][1]:
                    writes.pop(0)
        raise HwgenError(f"engine did not finish within {max_cycles} cycles")

    sim = Simulator(engine)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()
    return traffic
