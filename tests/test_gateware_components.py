"""Each engine block in amaranth.sim against a pure-Python model of the same block."""

from __future__ import annotations

import random

import numpy as np
import pytest
from amaranth.sim import Simulator
from gateware_helpers import refused

from hwgen import intmath
from hwgen import engine
from hwgen.gateware.dma import Reader
from hwgen.gateware.input_buffer import InputBuffer
from hwgen.engine.params import MAX_BURST, MAX_PIPELINE, REQUANT_CUTS, EngineParams
from hwgen.gateware.pattern_rom import PatternRom
from hwgen.gateware.requant import Requant
from hwgen.gateware.weight_buffer import WeightBuffer
from hwgen.gateware.writeback import Writeback


def simulate(dut, bench, clocked: bool = True):
    sim = Simulator(dut)
    if clocked:
        sim.add_clock(1e-8)
    sim.add_testbench(bench)
    sim.run()


def check_requant(dut: Requant, vectors: list[tuple]):
    """Drive one (acc, M, S, lo, hi, half_even) vector per cycle; each answer `latency` cycles later
    must be `intmath.requantize`'s (a pipeline that never stalls)."""
    want = [int(intmath.requantize(*v[:5], intmath.ROUNDINGS[v[5]])) for v in vectors]

    async def bench(ctx):
        for i in range(len(vectors) + dut.latency):
            for sig, v in zip((dut.acc, dut.multiplier, dut.shift, dut.lo, dut.hi, dut.half_even),
                              vectors[min(i, len(vectors) - 1)]):
                ctx.set(sig, v)
            if i >= dut.latency:
                assert ctx.get(dut.y) == want[i - dut.latency], vectors[i - dut.latency]
            if dut.latency:
                await ctx.tick()

    simulate(dut, bench, clocked=dut.latency > 0)


@pytest.mark.parametrize("cuts", [REQUANT_CUTS[:n] for n in range(len(REQUANT_CUTS) + 1)] + [("rounding",)])
@pytest.mark.parametrize("rounding", intmath.ROUNDINGS)
@pytest.mark.parametrize("acc_bits", [12, 30, 48])  # one, two and three partial products
def test_requant_matches_intmath(rounding, cuts, acc_bits):
    dut = Requant(acc_bits, cuts)
    assert dut.latency == len(cuts)
    rng = random.Random(1)
    lim = 1 << (acc_bits - 1)
    vectors = [(-lim, (1 << 15) - 1, 1, -128, 127), (lim - 1, (1 << 15) - 1, 47, 0, 255), (-1, 1, 1, -128, 127),
               (12345, 0, 5, -3, 3), (-(1 << 20), 16384, 12, -32768, 32767)]
    for _ in range(300):
        lo = rng.randint(-200, 50)
        vectors.append((rng.randrange(-lim, lim), rng.randrange(1 << 15), rng.randint(1, intmath.MAX_SHIFT), lo,
                        lo + rng.randint(0, 300)))
    # exact ties, where the two roundings differ: M a power of two, acc an odd multiple of 2^(S-1)/M
    for _ in range(200):
        shift = rng.randint(1, min(20, acc_bits - 2))
        k = rng.randint(0, min(shift - 1, 14))
        acc = (2 * rng.randint(-1000, 1000) + 1) << (shift - 1 - k)
        vectors.append((acc, 1 << k, shift, -32768, 32767))
    half_even = intmath.ROUNDINGS.index(rounding)
    check_requant(dut, [(*v, half_even) for v in vectors if -lim <= v[0] < lim])  # what the accumulator holds


@pytest.mark.parametrize("cuts", [(), REQUANT_CUTS])
def test_requant_clamp_edges(cuts):
    """Rounded results at, one inside and one outside each bound, exact ties among them: the clamp
    compares the unrounded value with the doubled bounds, so each bound is tried both ways."""
    vectors = []
    for shift in (1, 2, 3):
        for acc in range(-24, 24):
            for half_even in (0, 1):
                r = int(intmath.requantize(acc, 1, shift, -32768, 32767, intmath.ROUNDINGS[half_even]))
                for lo, hi in ((r, r + 3), (r + 1, r + 3), (r - 3, r), (r - 3, r - 1)):
                    vectors.append((acc, 1, shift, lo, hi, half_even))
    check_requant(Requant(12, cuts), vectors)


def test_requant_refuses_unknown_cut():
    refused(lambda: Requant(24, ("middle",)), ValueError, "unknown requantization cuts")


@pytest.mark.parametrize("beats", [1, MAX_BURST - 1, MAX_BURST, MAX_BURST + 1, 2 * MAX_BURST, 2 * MAX_BURST + 77])
def test_reader_splits_into_bursts(beats):
    dut = Reader(beat_bytes=8)
    rng = random.Random(beats)
    want = []
    addr, left = 0x1000, beats
    while left:
        n = min(left, MAX_BURST)
        want.append((addr, n, 0))
        addr, left = addr + 8 * n, left - n

    async def bench(ctx):
        ctx.set(dut.addr, 0x1000)
        ctx.set(dut.beats, beats)
        ctx.set(dut.start, 1)
        await ctx.tick()
        ctx.set(dut.start, 0)
        got = []
        for _ in range(10 * len(want) + 10):
            ready = rng.random() < 0.5
            ctx.set(dut.req.ready, ready)
            if ready and ctx.get(dut.req.valid):
                got.append((ctx.get(dut.req.payload.addr), ctx.get(dut.req.payload.len), ctx.get(dut.req.payload.write)))
            await ctx.tick()
        assert got == want
        assert not ctx.get(dut.busy)

    simulate(dut, bench)


@pytest.mark.parametrize("period, shared", [(4, False), (3, False), (3, True)])
def test_pattern_rom_lane_residues(period, shared):
    """Two tables in the ROM: the layer uses the second (base 3, one pattern of one tap); 8 lanes share `period`
    selections. A group's residues are set in one cycle: lane m's m % P at the first, + 8 % P (P = 3: a
    wrapping step) at every later one; `shared` (residue groups), every lane at 0, then + 1."""
    params = EngineParams(m_lanes=8, patterns=(0b111, 0b1, 0b10, 0b11, 0b100, 0b101, 0b1001),
                          lane_period=period).validate()
    dut = PatternRom(params)
    base, channels, groups = 3, 5, 4
    lanes = params.select_lanes

    def residue(g, m):  # the group's residue of lane m, before the channel's
        return g if shared else g * params.m_lanes + m

    async def bench(ctx):
        ctx.set(dut.table_base, base)
        ctx.set(dut.period, period)
        ctx.set(dut.shared, shared)
        ctx.set(dut.group_clear, 1)
        await ctx.tick()
        ctx.set(dut.group_clear, 0)
        for g in range(groups):
            if g:  # the engine's RESIDUES state: one step of m_lanes % P
                ctx.set(dut.group_step, 1)
                await ctx.tick()
                ctx.set(dut.group_step, 0)
            ctx.set(dut.load, 1)
            await ctx.tick()
            ctx.set(dut.load, 0)
            for _ in range(2):  # two passes
                for c in range(channels):
                    ctx.set(dut.issue, 1)
                    ctx.set(dut.chan_done, 1)
                    ctx.set(dut.pass_done, c == channels - 1)
                    # the MAC array's lookahead: lane 0's pattern on the next channel (the next pass's first)
                    following = base + (residue(g, 0) + (c + 1) % channels) % period
                    assert ctx.get(dut.next_one_step) == (bin(params.patterns[following]).count("1") == 1), (g, c)
                    await ctx.tick()
                    ctx.set(dut.issue, 0)
                    got = [ctx.get(dut.select[m]) for m in range(lanes)]
                    assert got == [base + (residue(g, m) + c) % period for m in range(lanes)], (g, c)

    simulate(dut, bench)


def window_model(x, oy, xg, c, stride, x_lanes, kernel_max=3):
    """kernel_max rows x win_cols pixels around output row oy, pixel group xg, zero outside the input."""
    _, h, w = x.shape
    half = kernel_max // 2
    cols = 2 * (x_lanes - 1) + kernel_max
    win = np.zeros((kernel_max, cols), dtype=np.int64)
    for ky in range(kernel_max):
        y = oy * stride - half + ky
        for j in range(cols):
            col = xg * x_lanes * stride - half + j
            if 0 <= y < h and 0 <= col < w:
                win[ky, j] = x[c, y, col]
    return win


WINDOW_CASES = [
    (1, 3, 64, 16, None, 3, 6), (2, 3, 32, 16, None, 3, 6), (2, 1, 64, 16, None, 3, 6),
    (1, 3, 64, 32, (2, 5), 3, 6),  # two rows per word, a middle band (halo above and below)
    (2, 3, 32, 64, (0, 2), 3, 6),  # four rows per word, the top band (no row above the tensor)
    (1, 1, 64, 32, (4, 7), 3, 6),  # the bottom band of a 1x1 layer
    (2, 7, 64, 16, None, 7, 6),  # a stem: 7 rows per window, 3 of padding
    (1, 5, 32, 32, (1, 4), 7, 6),  # a 5x5 kernel in the middle of a 7-row window, a middle band
    (1, 3, 64, 16, (3, 7), 5, 6),  # 3x3 in a 5-row window, the bottom band
    (2, 1, 64, 16, None, 7, 6),
    # packed beats (several activations per byte): A = 3 and 4 two per byte, A = 2 four
    (1, 3, 64, 32, (2, 5), 3, 4),  # 16 per beat: a row in one beat, two rows per word
    (2, 3, 32, 16, None, 3, 4),  # 8 per beat: a row over two beats
    (1, 1, 32, 64, (4, 7), 3, 3),  # 8 per beat, four rows per word
    (2, 3, 32, 64, (0, 2), 3, 2),  # 16 per beat, four rows per word
    (1, 5, 64, 32, (1, 4), 5, 4),  # a 5x5 kernel on packed rows
]


# every case with the `read` cut (stage C computes the window's place from stage B's read), some without it
@pytest.mark.parametrize("stride, k, bus_bits, max_width, band, kernel_max, act_bits, pipeline",
                         [(*case, MAX_PIPELINE) for case in WINDOW_CASES] + [(*case, 0) for case in WINDOW_CASES[3:6]])
def test_input_buffer_windows(stride, k, bus_bits, max_width, band, kernel_max, act_bits, pipeline):
    """Rows of one band loaded into their slots, channel by channel; every window of the band (the rows of
    the layer's kernel: a smaller kernel's window leaves the rows outside it stale)."""
    rng = np.random.default_rng(stride + 2 * k + max_width + act_bits)
    c, h, w = 3, 7, 11
    params = EngineParams(x_lanes=4, bus_bits=bus_bits, act_bits=act_bits, max_width=max_width,
                          input_words=c * (h + 1), kernel_max=kernel_max, pipeline=pipeline).validate()
    x = rng.integers(0, 1 << act_bits, size=(c, h, w))
    rb = engine.row_beats(w, params)
    bb = params.beat_bytes
    oh, ow = (h + 2 * (k // 2) - k) // stride + 1, (w + 2 * (k // 2) - k) // stride + 1
    oy0, oy1 = band or (0, oh)
    y0 = oy0 * stride - k // 2
    lo, hi = max(y0, 0), min(y0 + (oy1 - oy0 - 1) * stride + k, h)
    chan_rows = hi - lo + 1  # a spare slot per channel: the fetch must not rely on a tight stride
    xg = -(-ow // params.x_lanes)
    kernel_rows = slice(kernel_max // 2 - k // 2, kernel_max // 2 + k // 2 + 1)
    want = [window_model(x, oy, g, ci, stride, params.x_lanes, kernel_max)[kernel_rows]
            for oy in range(oy0, oy1) for g in range(xg) for ci in range(c)]
    dut = InputBuffer(params)
    a, cols = params.act_bits, params.win_cols
    pick = random.Random(3)

    async def bench(ctx):
        for sig, v in ((dut.row_beats, rb), (dut.channels, c), (dut.height, h), (dut.width, w),
                       (dut.out_height, oy1 - oy0), (dut.x_groups, xg), (dut.stride2, stride == 2),
                       (dut.kernel1x1, k == 1), (dut.slot_shift, params.slot_shift(w)),
                       (dut.chan_rows, chan_rows), (dut.y_start, oy0 * stride - kernel_max // 2),
                       (dut.first_slot, oy0 * stride - kernel_max // 2 - lo)):
            ctx.set(sig, v)
        if kernel_max > 3:
            ctx.set(dut.kernel_half, k // 2)
        for ci in range(c):
            ctx.set(dut.fill_slot, ci * chan_rows)
            ctx.set(dut.fill_start, 1)
            await ctx.tick()
            ctx.set(dut.fill_start, 0)
            raw = engine.pack_activations(x[ci:ci + 1, lo:hi], params)
            for i in range(0, len(raw), bb):
                ctx.set(dut.fill.valid, 1)
                ctx.set(dut.fill.payload, int.from_bytes(raw[i:i + bb], "little"))
                await ctx.tick()
                ctx.set(dut.fill.valid, 0)
                if pick.random() < 0.3:
                    await ctx.tick()
        ctx.set(dut.run, 1)
        await ctx.tick()
        ctx.set(dut.run, 0)
        got = []
        for _ in range(20 * len(want)):
            ready = pick.random() < 0.4
            ctx.set(dut.window.ready, ready)
            if ready and ctx.get(dut.window.valid):
                v = ctx.get(dut.window.payload)
                got.append(np.array([[(v >> ((ky * cols + j) * a)) & ((1 << a) - 1) for j in range(cols)]
                                     for ky in range(kernel_max)])[kernel_rows])
            await ctx.tick()
            if len(got) == len(want):
                break
        assert len(got) == len(want)
        for i, (g, e) in enumerate(zip(got, want)):
            np.testing.assert_array_equal(g, e, err_msg=f"window {i}")

    simulate(dut, bench)


@pytest.mark.parametrize("m_lanes, bus_bits", [(4, 64), (16, 32), (8, 64)])
def test_weight_buffer_words(m_lanes, bus_bits):
    params = EngineParams(m_lanes=m_lanes, bus_bits=bus_bits, max_channels=4).validate()
    rng = random.Random(m_lanes)
    words = [rng.getrandbits(8 * m_lanes) for _ in range(params.weight_depth)]
    blob = b"".join(w.to_bytes(m_lanes, "little") for w in words)
    bb = params.beat_bytes
    blob += bytes(-len(blob) % bb)
    dut = WeightBuffer(params)

    async def bench(ctx):
        ctx.set(dut.fill_start, 1)
        await ctx.tick()
        ctx.set(dut.fill_start, 0)
        for i in range(0, len(blob), bb):
            ctx.set(dut.fill.valid, 1)
            ctx.set(dut.fill.payload, int.from_bytes(blob[i:i + bb], "little"))
            await ctx.tick()
        ctx.set(dut.fill.valid, 0)
        order = list(range(len(words)))
        rng.shuffle(order)
        for addr in order:
            ctx.set(dut.addr, addr)
            await ctx.tick()
            assert ctx.get(dut.data) == words[addr], addr

    simulate(dut, bench)


def packed_row(values, act_bits: int, beat_bytes: int) -> bytes:
    """The DRAM bytes of one activation row, bit by bit: fields of 8, 4 or 2 bits, element i at bits
    (i % per_byte) * field of byte i // per_byte, zero-padded to whole beats."""
    field = 8 if act_bits > 4 else 4 if act_bits > 2 else 2
    per_byte = 8 // field
    out = bytearray(-(-len(values) // (per_byte * beat_bytes)) * beat_bytes)
    for i, v in enumerate(values):
        out[i // per_byte] |= (int(v) & ((1 << field) - 1)) << (i % per_byte * field)
    return bytes(out)


@pytest.mark.parametrize("act_bits, signed", [(8, False), (5, True), (4, False), (3, True), (2, False), (2, True)])
@pytest.mark.parametrize("bus_bits", [16, 64])
def test_activation_layout_round_trip(act_bits, signed, bus_bits):
    """pack_activations writes the documented fields; unpack_activations gives the tensor back."""
    params = EngineParams(x_lanes=1, bus_bits=bus_bits, act_bits=act_bits).validate()
    lo, hi = intmath.qrange(act_bits, signed)
    x = np.random.default_rng(act_bits + bus_bits).integers(lo, hi + 1, size=(3, 4, 21))
    raw = engine.pack_activations(x, params)
    want = b"".join(packed_row(row, act_bits, params.beat_bytes) for plane in x for row in plane)
    assert raw == want and len(raw) == engine.activation_bytes(x.shape, params)
    assert params.act_pack == 8 // (8 if act_bits > 4 else 4 if act_bits > 2 else 2)
    np.testing.assert_array_equal(engine.unpack_activations(raw, x.shape, signed, params), x)


@pytest.mark.parametrize("m_lanes, x_lanes, bus_bits, act_bits, out_width", [
    (2, 2, 16, 8, 5),  # bytes
    (4, 2, 32, 4, 13),  # two per byte, the last group short of lanes
    (2, 4, 32, 3, 9),  # A = 3 in 4-bit fields, signed outputs
    (2, 2, 32, 2, 19),  # four per byte, a row over two beats
])
@pytest.mark.parametrize("pipeline", [0, MAX_PIPELINE])
@pytest.mark.parametrize("gap", ["before_drained", "at_drained", "after_residues"])
def test_writeback_packs_output_rows(m_lanes, x_lanes, bus_bits, act_bits, out_width, pipeline, gap):
    """Accumulators in, the bias added, requantized rows out in the DRAM activation layout, under random
    back-pressure, with the requantization in one cycle or in every register stage; two lane groups' runs
    overlap as the engine runs them: the second starts (its table switched just before) while the first's
    last pass is not taken yet (a run that ended at its last issue: write-back finishes that pass with the
    first's entries and biases), in the cycle the first is `drained`, the drain still holding the first's
    last pass (its `m_lanes` cycles), or `m_lanes` cycles later, while the writer may still send the first's
    rows (the run then `pending`), and an odd number of rows puts the first's last row and the second's first
    in one row buffer."""
    params = EngineParams(m_lanes=m_lanes, x_lanes=x_lanes, bus_bits=bus_bits, act_bits=act_bits, acc_bits=20,
                          max_out_width=out_width, pipeline=pipeline).validate()
    rng = random.Random(act_bits * 100 + out_width)
    signed = act_bits == 3
    lo, hi = intmath.qrange(act_bits, signed)
    rows = 3
    xg = -(-out_width // x_lanes)
    row_beats = engine.row_beats(out_width, params)
    bb = params.beat_bytes
    row_bytes = row_beats * bb
    plane_bytes = rows * row_bytes
    groups = []  # (lanes, first output address, multipliers, shifts, accumulators, biases)
    for lanes_valid, addr in ((m_lanes - (m_lanes > 2), 0), (m_lanes, m_lanes * plane_bytes)):
        groups.append((lanes_valid, addr, [rng.randrange(1 << 14, 1 << 15) for _ in range(m_lanes)],
                       [rng.randint(12, 16) for _ in range(m_lanes)],
                       [[[rng.randrange(-(1 << 18), 1 << 18) for _ in range(m_lanes * x_lanes)] for _ in range(xg)]
                        for _ in range(rows)], [rng.randrange(-(1 << 18), 1 << 18) for _ in range(m_lanes)]))
    want = {}
    for lanes_valid, addr, mults, shifts, accs, biases in groups:
        for oy in range(rows):
            for lane in range(lanes_valid):
                ys = [int(intmath.requantize(accs[oy][g][lane * x_lanes + j] + biases[lane], mults[lane], shifts[lane],
                                             lo, hi))
                      for g in range(xg) for j in range(x_lanes)][:out_width]
                want[addr + lane * plane_bytes + oy * row_bytes] = packed_row(ys, act_bits, bb)
    dut = Writeback(params)
    acc_mask = (1 << params.acc_bits) - 1

    async def bench(ctx):
        for sig, v in ((dut.lo, lo), (dut.hi, hi), (dut.out_width, out_width), (dut.out_height, rows),
                       (dut.x_groups, xg), (dut.row_beats, row_beats), (dut.row_bytes, row_bytes),
                       (dut.plane_bytes, plane_bytes)):
            ctx.set(sig, v)

        def start_group(g):  # the run's group
            ctx.set(dut.lanes_valid, groups[g][0])
            ctx.set(dut.group_addr, groups[g][1])
            ctx.set(dut.run, 1)

        def table(g):
            for lane in range(m_lanes):
                ctx.set(dut.multiplier[lane], groups[g][2][lane])
                ctx.set(dut.shift[lane], groups[g][3][lane])
                ctx.set(dut.bias[lane], groups[g][5][lane])

        table(0)
        start_group(0)
        await ctx.tick()
        ctx.set(dut.run, 0)
        queues = [[sum((a & acc_mask) << (i * params.acc_bits) for i, a in enumerate(p)) for row in g[4] for p in row]
                  for g in groups]
        group, next_run, pended = 0, None, False
        got, requests = {}, []
        for _ in range(8000):
            results = queues[0] or queues[group]  # the run's results come from the cycle after it starts
            if group == 0 and next_run is None and gap == "before_drained" and len(queues[0]) == 1:
                next_run = 0
            if group == 0 and next_run is None and ctx.get(dut.drained):
                assert not queues[0]
                next_run = 0 if gap == "at_drained" else m_lanes
            ctx.set(dut.run, next_run == 0)
            if next_run == 0:
                table(1)
                start_group(1)
                group, next_run = 1, None
            elif next_run is not None:
                next_run -= 1
            ctx.set(dut.result.valid, bool(results) and rng.random() < 0.7)
            if results:
                ctx.set(dut.result.payload.as_value(), results[0])
            req_ready, wr_ready = rng.random() < 0.6, rng.random() < 0.6
            ctx.set(dut.req.ready, req_ready)
            ctx.set(dut.wr.ready, wr_ready)
            if results and ctx.get(dut.result.valid) and ctx.get(dut.result.ready):
                results.pop(0)
            if req_ready and ctx.get(dut.req.valid):
                assert ctx.get(dut.req.payload.write) and ctx.get(dut.req.payload.len) == row_beats
                requests.append([ctx.get(dut.req.payload.addr), b""])
            if wr_ready and ctx.get(dut.wr.valid):
                requests[-1][1] += ctx.get(dut.wr.payload).to_bytes(bb, "little")
            pended |= bool(ctx.get(dut.pending))
            if ctx.get(dut.done) and group == 1 and not ctx.get(dut.run):
                break
            assert not ctx.get(dut.done) or group == 0 and next_run is not None
            await ctx.tick()
        assert ctx.get(dut.done) and not any(queues), [len(q) for q in queues]
        got = {addr: blob for addr, blob in requests}
        assert got == want
        assert pended  # the second run came while the writer still sent the first's rows

    simulate(dut, bench)
