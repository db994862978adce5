"""The AXI adapters in amaranth.sim against pure-Python models (hwgen.gateware.axi, axi_top).

- AxiMaster: random engine requests (lengths up to 600 beats, addresses near 4 KiB boundaries) under
  random ready/valid on every AXI channel; the bursts on AR/AW equal `split_bursts`, none crosses
  4 KiB or exceeds 256 beats, WLAST ends each burst, data round-trips, response errors are flagged.
- AxiLiteSlave: writes with address and data in either order, reads, against a dict.
- AxiTop with the real engine on one small layer: registers, start, irq, counters equal to the
  bytes the memory model moved, the layer's output equal to the integer reference.
"""

from __future__ import annotations

import random
from dataclasses import asdict

import numpy as np
import pytest
from amaranth.sim import Simulator
from gateware_helpers import refused

from hwgen import engine, reference
from hwgen.engine import registers as regs
from hwgen.engine.params import MAX_BURST
from hwgen.errors import HwgenError
from hwgen.gateware.axi import PAGE, AxiLiteSlave, AxiMaster, split_bursts
from hwgen.gateware.axi_top import AxiTop
from hwgen.layercases import conv_graph


def run(dut, bench):
    sim = Simulator(dut)
    sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def test_split_bursts_rule():
    assert split_bursts(0, 256, 8) == [(0, 256)]
    assert split_bursts(0, 600, 8) == [(0, 256), (2048, 256), (4096, 88)]
    assert split_bursts(4096 - 16, 5, 8) == [(4080, 2), (4096, 3)]
    assert split_bursts(0, 100, 64) == [(0, 64), (4096, 36)]
    for addr, beats, bb in ((8, 1000, 8), (4032, 300, 16), (123 * 64, 700, 64)):
        bursts = split_bursts(addr, beats, bb)
        assert sum(n for _, n in bursts) == beats and bursts[0][0] == addr
        for a, n in bursts:
            assert 1 <= n <= MAX_BURST and a // PAGE == (a + n * bb - 1) // PAGE


@pytest.mark.parametrize("bad", [(16, 1), (48, 1), (1024, 1), (64, 0), (64, 17)])
def test_master_refuses_impossible_widths(bad):
    refused(lambda: AxiMaster(*bad), HwgenError, "--bus-bits of 32, 64, 128, 256 or 512|--axi-id-bits must be from 1 to 16")


class AxiMemory:
    """A Python AXI4 slave for one master: random ready/valid per channel, in-order responses,
    bursts recorded; `error_at` answers SLVERR to bursts at those addresses."""

    def __init__(self, dut, bus_bits: int, mem: bytearray, rng: random.Random, p: float, error_at=()):
        self.dut, self.mem, self.rng, self.p = dut, mem, rng, p
        self.bb = bus_bits // 8
        self.ar, self.aw = [], []  # accepted bursts, in order
        self.reads, self.wbursts = [], []  # [addr, beats left, error]
        self.b_due = []
        self.rbeat = None
        self.error_at = set(error_at)

    def chance(self):
        return self.rng.random() >= self.p

    async def cycle(self, ctx):
        d = self.dut
        arready, awready, wready = self.chance(), self.chance(), self.chance()
        ctx.set(d.m_axi_arready, arready)
        ctx.set(d.m_axi_awready, awready)
        ctx.set(d.m_axi_wready, wready)
        if self.rbeat is None and self.reads and self.chance():
            a, left, err = self.reads[0]
            self.rbeat = (int.from_bytes(self.mem[a:a + self.bb], "little"), left == 1, 2 if err else 0)
        ctx.set(d.m_axi_rvalid, self.rbeat is not None)
        if self.rbeat is not None:
            ctx.set(d.m_axi_rdata, self.rbeat[0])
            ctx.set(d.m_axi_rlast, self.rbeat[1])
            ctx.set(d.m_axi_rresp, self.rbeat[2])
        bvalid = bool(self.b_due) and self.chance()
        ctx.set(d.m_axi_bvalid, bvalid)
        ctx.set(d.m_axi_bresp, 2 if bvalid and self.b_due[0] else 0)
        snap = {n: ctx.get(getattr(d, f"m_axi_{n}")) for n in
                ("arvalid", "araddr", "arlen", "arsize", "arburst", "awvalid", "awaddr", "awlen", "awsize",
                 "wvalid", "wdata", "wstrb", "wlast", "rready", "bready")}
        return arready, awready, wready, bvalid, snap

    def commit(self, arready, awready, wready, bvalid, s):
        for ch, ready, queue, log in (("ar", arready, self.reads, self.ar), ("aw", awready, self.wbursts, self.aw)):
            if s[f"{ch}valid"] and ready:
                addr, beats = s[f"{ch}addr"], s[f"{ch}len"] + 1
                assert s[f"{ch}size"] == self.bb.bit_length() - 1
                log.append((addr, beats))
                queue.append([addr, beats, addr in self.error_at])
        if self.rbeat is not None and s["rready"]:
            self.rbeat = None
            head = self.reads[0]
            head[0] += self.bb
            head[1] -= 1
            if not head[1]:
                self.reads.pop(0)
        if s["wvalid"] and wready:
            head = self.wbursts[0]
            assert s["wstrb"] == (1 << self.bb) - 1
            assert s["wlast"] == (head[1] == 1), "WLAST must mark exactly the last beat of a burst"
            self.mem[head[0]:head[0] + self.bb] = s["wdata"].to_bytes(self.bb, "little")
            head[0] += self.bb
            head[1] -= 1
            if not head[1]:
                self.b_due.append(head[2])
                self.wbursts.pop(0)
        if bvalid and s["bready"]:
            self.b_due.pop(0)


@pytest.mark.parametrize("data_bits, p, seed", [(64, 0.0, 1), (64, 0.4, 2), (32, 0.3, 3), (512, 0.3, 4)])
def test_master_bursts_and_data(data_bits, p, seed):
    dut = AxiMaster(data_bits, id_bits=4)
    bb = dut.beat_bytes
    rng = random.Random(seed)
    half = 64 * 1024  # reads below, writes above: AXI does not order a read after a write
    mem = bytearray(rng.randbytes(2 * half))
    expected = bytearray(mem)
    requests = []
    for _ in range(12):
        beats = min(rng.choice([1, 2, 7, 255, 256, 257, 600]), half // bb // 2)
        addr = rng.choice([PAGE - bb, PAGE - 3 * bb, 0, 5 * PAGE + 64]) + rng.randrange(4) * PAGE
        write = rng.random() < 0.5
        requests.append((min(addr, half - beats * bb) // bb * bb + write * half, beats, write))
    axi = AxiMemory(dut, data_bits, mem, rng, p)

    async def bench(ctx):
        pending = list(requests)
        reads, writes = [], []  # engine side: beats expected / to send
        for _ in range(200_000):
            if not pending and not reads and not writes and not axi.b_due and not axi.wbursts and not axi.reads:
                break
            ctx.set(dut.req.valid, bool(pending))
            if pending:
                ctx.set(dut.req.payload, {"addr": pending[0][0], "len": pending[0][1], "write": pending[0][2]})
            ctx.set(dut.rd.ready, rng.random() >= p)
            wbeat = None
            if writes:
                a = writes[0][0]
                wbeat = int.from_bytes(rng.randbytes(bb), "little") if writes[0][2] is None else writes[0][2]
                writes[0][2] = wbeat
                ctx.set(dut.wr.payload, wbeat)
            ctx.set(dut.wr.valid, wbeat is not None)
            axi_in = await axi.cycle(ctx)
            req_fire = bool(pending) and ctx.get(dut.req.ready)
            rd_fire = ctx.get(dut.rd.valid) and ctx.get(dut.rd.ready)
            rd_data = ctx.get(dut.rd.payload)
            wr_fire = wbeat is not None and ctx.get(dut.wr.ready)
            assert not ctx.get(dut.read_error) and not ctx.get(dut.write_error)
            await ctx.tick()
            axi.commit(*axi_in)
            if req_fire:
                addr, beats, write = pending.pop(0)
                (writes if write else reads).append([addr, beats, None])
            if rd_fire:
                a = reads[0][0]
                assert rd_data == int.from_bytes(expected[a:a + bb], "little")
                reads[0][0] += bb
                reads[0][1] -= 1
                if not reads[0][1]:
                    reads.pop(0)
            if wr_fire:
                a = writes[0][0]
                expected[a:a + bb] = wbeat.to_bytes(bb, "little")
                writes[0][0] += bb
                writes[0][1] -= 1
                writes[0][2] = None
                if not writes[0][1]:
                    writes.pop(0)
        else:
            raise AssertionError("the master did not finish")
        assert not ctx.get(dut.writes_pending) and not ctx.get(dut.read_pending)

    run(dut, bench)
    want_r = [b for a, n, w in requests if not w for b in split_bursts(a, n, bb)]
    want_w = [b for a, n, w in requests if w for b in split_bursts(a, n, bb)]
    assert axi.ar == want_r and axi.aw == want_w
    assert mem == expected


def test_master_flags_response_errors():
    dut = AxiMaster(64)
    mem = bytearray(8192)
    axi = AxiMemory(dut, 64, mem, random.Random(0), 0.0, error_at={0, 4096})
    seen = {"read": 0, "write": 0}

    async def bench(ctx):
        todo = [(0, 2, 0), (4096, 1, 1)]
        writes = 0
        for _ in range(100):
            ctx.set(dut.req.valid, bool(todo))
            if todo:
                ctx.set(dut.req.payload, {"addr": todo[0][0], "len": todo[0][1], "write": todo[0][2]})
            ctx.set(dut.rd.ready, 1)
            ctx.set(dut.wr.valid, writes > 0)
            axi_in = await axi.cycle(ctx)
            fire = bool(todo) and ctx.get(dut.req.ready)
            wr_fire = writes > 0 and ctx.get(dut.wr.ready)
            seen["read"] += ctx.get(dut.read_error)
            seen["write"] += ctx.get(dut.write_error)
            await ctx.tick()
            axi.commit(*axi_in)
            if fire:
                writes += todo[0][1] if todo[0][2] else 0
                todo.pop(0)
            writes -= wr_fire

    run(dut, bench)
    assert seen == {"read": 2, "write": 1}  # every SLVERR read beat, the one write response


def test_lite_slave_writes_and_reads():
    dut = AxiLiteSlave(12)
    rng = random.Random(5)
    model: dict[int, int] = {}
    ops = [("w", rng.randrange(0, 64) * 4, rng.getrandbits(32), rng.choice(["aw first", "w first", "both"]))
           for _ in range(40)]
    ops += [("r", a, None, None) for a in range(0, 256, 4)]
    rng.shuffle(ops)
    got = []

    async def bench(ctx):
        regs_hw: dict[int, int] = {}
        for kind, addr, data, order in ops:
            if kind == "w":
                steps = {"aw first": [("aw",), ("w",)], "w first": [("w",), ("aw",)], "both": [("aw", "w")]}[order]
                for step in steps:
                    ctx.set(dut.s_axil_awvalid, "aw" in step)
                    ctx.set(dut.s_axil_awaddr, addr)
                    ctx.set(dut.s_axil_wvalid, "w" in step)
                    ctx.set(dut.s_axil_wdata, data)
                    for _ in range(5):
                        aw_ok = "aw" not in step or ctx.get(dut.s_axil_awready)
                        w_ok = "w" not in step or ctx.get(dut.s_axil_wready)
                        if aw_ok and w_ok:
                            break
                        await ctx.tick()
                    assert aw_ok and w_ok
                    await ctx.tick()
                    ctx.set(dut.s_axil_awvalid, 0)
                    ctx.set(dut.s_axil_wvalid, 0)
                ctx.set(dut.s_axil_bready, 1)
                for _ in range(5):
                    if ctx.get(dut.w_en):
                        regs_hw[ctx.get(dut.w_addr)] = ctx.get(dut.w_data)
                    if ctx.get(dut.s_axil_bvalid):
                        assert ctx.get(dut.s_axil_bresp) == 0
                        await ctx.tick()
                        break
                    await ctx.tick()
                else:
                    raise AssertionError("no write response")
                ctx.set(dut.s_axil_bready, 0)
                model[addr] = data
            else:
                ctx.set(dut.s_axil_arvalid, 1)
                ctx.set(dut.s_axil_araddr, addr)
                assert ctx.get(dut.s_axil_arready) and ctx.get(dut.r_en) and ctx.get(dut.r_addr) == addr
                ctx.set(dut.r_data, regs_hw.get(addr, 0))
                await ctx.tick()
                ctx.set(dut.s_axil_arvalid, 0)
                ctx.set(dut.s_axil_rready, 1)
                assert ctx.get(dut.s_axil_rvalid) and ctx.get(dut.s_axil_rresp) == 0
                got.append((addr, ctx.get(dut.s_axil_rdata), model.get(addr, 0)))
                await ctx.tick()
                ctx.set(dut.s_axil_rready, 0)
                assert not ctx.get(dut.s_axil_rvalid)

    run(dut, bench)
    assert got and all(g == want for _, g, want in got)


@pytest.mark.parametrize("slverr, bad_next", [(False, None), (True, None), (False, "weights"), (False, "netop")])
def test_axi_top_runs_a_layer_with_registers_irq_and_counters(slverr, bad_next):
    """With `slverr` the memory answers the descriptor's read with SLVERR (and the right data): the
    run completes, with ERROR, ERROR_CAUSE.READ_RESP and IRQ_STATUS.ERROR set. With `bad_next`,
    DESC_COUNT is 2 and the next 64 bytes are weights, not a descriptor ("weights"), or the
    descriptor of a network op (ADD) the top's network-op unit was built without ("netop", a unit
    of GAP only): the layer runs, then the chain stops there with ERROR_CAUSE.DESCRIPTOR or
    ERROR_CAUSE.NETOP (one irq, 64 more bytes read)."""
    from hwgen.engine import netop
    from hwgen.gateware.engine import Engine
    from hwgen.gateware.netops import NetOps

    graph = conv_graph(3, 8, 8, 6, 6, scheme="PS4_P4")
    b = engine.build(graph, engine.EngineConfig(m_lanes=4, x_lanes=4, bus_bits=64))
    p = b.params
    lay = b.image.layers[0]
    units = ("gap",) if bad_next == "netop" else ()
    dut = AxiTop(Engine(p), bus_bits=64, id_bits=2, build_id=0x1234ABCD, config=regs.config_values(asdict(p), units),
                 netops=NetOps(p, 16, units) if units else None)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, size=graph.input_shape)
    base = 0x10000
    mem = bytearray(base + b.image.size + 128)
    mem[base:base + len(b.image.data)] = b.image.data
    desc_addr = lay.descriptor
    if bad_next == "netop":  # a chain of the layer and an ADD, after the image
        desc_addr = b.image.size
        mem[base + desc_addr:base + desc_addr + 64] = b.image.data[lay.descriptor:lay.descriptor + 64]
        mem[base + desc_addr + 64:base + desc_addr + 128] = netop.pack(
            op=netop.OP_ADD, a_addr=lay.output, b_addr=lay.output, out_addr=lay.output, in_signed=0, b_signed=0, half_even=0,
            channels=1, height=1, width=1, in_row_beats=1, out_height=1, out_width=1, out_row_beats=1, ma=1, mb=1,
            shift=1, lo=0, hi=255)
    packed = engine.pack_activations(x, p)
    mem[base + lay.input:base + lay.input + len(packed)] = packed
    axi = AxiMemory(dut, 64, mem, random.Random(9), 0.3, error_at={base + lay.descriptor} if slverr else ())
    out = {}

    async def lite(ctx, addr, data=None):
        """One AXI4-Lite access, address and data together; the AXI memory keeps running."""
        if data is not None:
            ctx.set(dut.s_axil_awvalid, 1)
            ctx.set(dut.s_axil_awaddr, addr)
            ctx.set(dut.s_axil_wvalid, 1)
            ctx.set(dut.s_axil_wdata, data)
            ctx.set(dut.s_axil_bready, 1)
        else:
            ctx.set(dut.s_axil_arvalid, 1)
            ctx.set(dut.s_axil_araddr, addr)
            ctx.set(dut.s_axil_rready, 1)
        value = None
        for _ in range(10):
            if data is not None:
                sent = ctx.get(dut.s_axil_awready) and ctx.get(dut.s_axil_wready)
                done = ctx.get(dut.s_axil_bvalid)
            else:
                sent = ctx.get(dut.s_axil_arready)
                done = ctx.get(dut.s_axil_rvalid)
                value = ctx.get(dut.s_axil_rdata)
            await cycle(ctx)
            if sent:  # the address (and data) moved on that edge
                for valid in (dut.s_axil_awvalid, dut.s_axil_wvalid, dut.s_axil_arvalid):
                    ctx.set(valid, 0)
            if done:
                ctx.set(dut.s_axil_bready, 0)
                ctx.set(dut.s_axil_rready, 0)
                return value
        raise AssertionError("AXI4-Lite access did not complete")

    async def cycle(ctx):
        axi_in = await axi.cycle(ctx)
        irq = ctx.get(dut.irq)
        await ctx.tick()
        axi.commit(*axi_in)
        out["cycles"] = out.get("cycles", 0) + 1
        return irq

    async def bench(ctx):
        assert await lite(ctx, regs.offset("BUILD_ID")) == 0x1234ABCD
        assert await lite(ctx, regs.offset("M_LANES")) == 4 and await lite(ctx, regs.offset("BUS_BITS")) == 64
        await lite(ctx, regs.offset("MEM_BASE"), base | 0x123)  # low 12 bits are dropped
        assert await lite(ctx, regs.offset("MEM_BASE")) == base
        assert await lite(ctx, regs.offset("NETOPS")) == (1 << netop.OP_GAP if units else 0)
        await lite(ctx, regs.offset("DESC_ADDR"), desc_addr)
        if bad_next:
            await lite(ctx, regs.offset("DESC_COUNT"), 2)
            assert await lite(ctx, regs.offset("DESC_COUNT")) == 2
        await lite(ctx, regs.offset("IRQ_ENABLE"), 1 << regs.IRQ_DONE)
        await lite(ctx, regs.offset("CONTROL"), 1)
        assert await lite(ctx, regs.offset("STATUS")) & regs.bit("STATUS", "BUSY")
        for _ in range(200_000):
            if await cycle(ctx):
                break
        else:
            raise AssertionError("no irq")
        status = await lite(ctx, regs.offset("STATUS"))
        error = regs.bit("STATUS", "ERROR") if slverr or bad_next else 0
        assert status == regs.bit("STATUS", "DONE") | error, status
        cause = (regs.bit("ERROR_CAUSE", "READ_RESP") if slverr else 0) | \
            (regs.bit("ERROR_CAUSE", "DESCRIPTOR") if bad_next == "weights" else 0) | \
            (regs.bit("ERROR_CAUSE", "NETOP") if bad_next == "netop" else 0)
        assert await lite(ctx, regs.offset("ERROR_CAUSE")) == cause
        irq_error = (1 << regs.IRQ_ERROR) if slverr or bad_next else 0
        assert await lite(ctx, regs.offset("IRQ_STATUS")) == (1 << regs.IRQ_DONE) | irq_error
        out["counters"] = {n: await lite(ctx, regs.offset(n)) for n in regs.COUNTERS}
        await lite(ctx, regs.offset("IRQ_STATUS"), (1 << regs.IRQ_DONE) | irq_error)
        assert await lite(ctx, regs.offset("IRQ_STATUS")) == 0 and not ctx.get(dut.irq)

    run(dut, bench)
    bb = 8
    assert all(a >= base for a, _ in axi.ar + axi.aw)
    c = out["counters"]
    assert c["BYTES_READ"] == sum(n for _, n in axi.ar) * bb
    assert c["BYTES_WRITTEN"] == sum(n for _, n in axi.aw) * bb
    assert c["BYTES_READ"] + c["BYTES_WRITTEN"] == sum(b.schedules[0].bytes.values()) + 64 * bool(bad_next)
    assert 0 < c["STALL_READ"] < c["BUSY_CYCLES"] and 0 < c["STALL_WRITE"] < c["BUSY_CYCLES"]
    # the MAC array's issue cycles: the schedule model's tap steps (plan.group_pass_steps), stalls or not;
    # each issues M x X MAC slots, so they bound the effectual MACs from above
    sched = b.schedules[0]
    assert c["MAC_ACTIVE"] == sched.mac_active and sched.effectual_macs <= c["MAC_ACTIVE"] * p.mac_count
    node = graph.node("conv")
    raw = bytes(mem[base + lay.output:base + lay.output + lay.output_bytes])
    got = engine.unpack_activations(raw, node.out_shape, bool(node.quant.signed), p)
    np.testing.assert_array_equal(got, reference.run(graph, x[None])[0])
