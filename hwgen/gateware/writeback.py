"""Write-back: requantize each pass's accumulators into an output row buffer, write rows to DRAM.

The drain takes one pass's `m_lanes x x_lanes` accumulators from the MAC array and, one lane per
cycle, adds the lane's bias, requantizes its `x_lanes` values and writes them, in the DRAM
activation layout (`params.act_field_bits`-bit fields, several per byte at A <= 4), into the
output row buffer, which holds two output rows of the lane group (double-buffered by row parity,
so the MAC array keeps computing row `oy + 1` while row `oy` goes out). The writer sends each
finished row to DRAM: per output channel of the group, one write request of `out_row_beats`
beats at `out_addr + ((m0 + m) * OH + oy) * row_bytes`. Padding fields past the row's width are
written as zeros.

The requantization is pipelined (`params.requant_cuts`): a lane's values reach the row buffer
`latency` cycles after the drain takes them, with their address and byte enables delayed alike.
A row buffer is `full` (the drain may not refill it) from its row's last drain cycle, and
`landed` (the writer may send it) once that row's last values are in the buffer; the writer's
send clears both.

Runs overlap: `drained` rises the cycle after the drain takes a run's last pass, and the engine
may then start the next lane group's run (`run`) while the writer still sends this one's last
rows; a run whose next group's loads were prefetched ends at its last issue, and the next `run`
may come before the drain has taken that pass. So the drain copies its run's requant entries and
biases (`bias`, `multiplier`, `shift`, `half_even`) when it starts the run's row count (the bias
travels with the pass: the MAC array accumulates the products alone, and the engine switches its
table once the run has started), and the writer keeps its own copy of the group's output
address and lane count: a `run` that finds the writer busy is `pending`, and the writer takes the
new group's address and lanes (unchanged until the engine's next run) when it finishes the old
group's last row. A run restarts the drain's row count, and when the drain has not yet taken the
previous run's last pass (`owing`) or still holds it, the restart waits for the hold's end, no pass
of the new run taken before it (`restart`). The row buffers' parity is the row's, so when a
run has an odd number of rows, its last row and the next run's first share a buffer and the drain
waits until the writer has sent it. `done`: every row of every run so far is written.

A folded layer's group (`fold`) has `2 * m_lanes` channels of `x_lanes / 2` pixels per pass: the drain
takes lane `m`'s lower pixel lanes (channel `m`), then its upper ones (channel `m + m_lanes`), each
through the first `x_lanes / 2` requantizers, and the row buffer holds rows of `2 * m_lanes` channels.
Its runs overlap as the others do: the next run's `run` may come while the drain still holds the last
pass (twice as long), and its restart waits for that hold as above.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.wiring import In, Out

from .. import intmath
from ..engine.params import ADDR_BITS, EngineParams
from .dma import REQUEST
from .pipeline import delay
from .requant import SHIFT_BITS, Requant
from .sram import Sram


class Writeback(wiring.Component):
    def __init__(self, params: EngineParams):
        self.p = params
        lanes, xl = params.m_lanes, params.x_lanes
        super().__init__({
            "result": In(stream.Signature(data.ArrayLayout(signed(params.acc_bits), lanes * xl))),
            "bias": In(data.ArrayLayout(signed(32), params.out_lanes)),
            "multiplier": In(data.ArrayLayout(unsigned(intmath.MULT_BITS), params.out_lanes)),
            "shift": In(data.ArrayLayout(unsigned(SHIFT_BITS), params.out_lanes)),
            "half_even": In(data.ArrayLayout(unsigned(1), params.out_lanes)),
            "lo": In(signed(16)),
            "hi": In(signed(16)),
            "out_width": In(16),
            "out_height": In(16),
            "x_groups": In(16),
            "row_beats": In(16),
            "row_bytes": In(ADDR_BITS),
            "plane_bytes": In(ADDR_BITS),
            "lanes_valid": In(range(params.out_lanes + 1)),  # output channels of this group (the last may be short)
            "group_addr": In(ADDR_BITS),  # address of row 0 of the group's first output channel
            "run": In(1),
            "done": Out(1),  # every row of every run has been written
            "drained": Out(1),  # the drain has taken the run's last pass
            "pending": Out(1),  # a run waits for the writer to finish the previous group's rows
            "req": Out(stream.Signature(REQUEST)),
            "wr": Out(stream.Signature(params.bus_bits)),
            # a folded layer (engines with one): lane m's pixel lanes x_lanes / 2 .. hold channel m + m_lanes
            **({"fold": In(1)} if params.fold > 1 else {}),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        lanes, xl, be, f = p.m_lanes, p.x_lanes, p.beat_elems, p.act_field_bits
        out_lanes = p.out_lanes  # row buffer lanes: output channels of a (folded) lane group
        rb_max = p.out_row_beats_max
        groups_per_beat = be // xl
        gshift = groups_per_beat.bit_length() - 1
        m.submodules.mem = mem = Sram(p.bus_bits, 2 * out_lanes * rb_max, granularity=f, cells=p.sram_cells)
        full = Signal(2)  # row buffer i holds a drained row not yet written

        # -- drain ----------------------------------------------------------------------------------
        holding = Signal()
        work = Signal(lanes * xl * p.acc_bits)
        # the run's lanes' bias and requant entries (multiplier, shift, half-even flag), copied when its row count
        # starts and rotated a lane per drain cycle beside `work`: the first is the lane being requantized, and
        # a pass's drain brings them back in place
        entry_bits = 32 + intmath.MULT_BITS + SHIFT_BITS + 1
        # (a folded run's in drain order: channel m, then m + m_lanes, for each lane m)
        entries = Signal(out_lanes * entry_bits)
        lane = Signal(range(lanes))
        xg = Signal(16)
        oy = Signal(16)
        # the pass's and the row's last as flags beside their counters (loaded from `limit - 2` compares, or
        # `limit == 1` when they wrap), so the take's `drained` and the row's end start at registers
        xg_last, oy_last = Signal(), Signal()
        buf = oy[0]
        row_free = (xg != 0) | ~full.bit_select(buf, 1)
        restart = Signal()  # a run came before the drain had taken (or while it held) the previous run's last pass
        owing = Signal()  # the run's last pass is not taken yet
        # until the restart, the passes taken are the previous run's
        m.d.comb += self.result.ready.eq(~holding & ~(restart & ~owing) & row_free)
        entry_of = [Cat(self.bias[i], self.multiplier[i], self.shift[i], self.half_even[i]) for i in range(out_lanes)]
        run_entries = Cat(entry_of[:lanes])
        if p.fold > 1:
            run_entries = Mux(self.fold, Cat(Cat(entry_of[i], entry_of[lanes + i]) for i in range(lanes)),
                              run_entries)
        with m.If(self.result.valid & self.result.ready):
            m.d.sync += [holding.eq(1), lane.eq(0), work.eq(self.result.payload.as_value()),
                         self.drained.eq(xg_last & oy_last & ~restart)]
            with m.If(xg_last & oy_last):
                m.d.sync += owing.eq(0)

        entry = entries[:entry_bits]
        bias = entry[:32].as_signed()
        requant_entry = entry[32:]
        # a folded pass drains lane m's two halves in turn: channel m (pixel lanes 0 ..), then channel m + m_lanes
        # (pixel lanes x_lanes / 2 ..) through the first x_lanes / 2 requantizers
        half = xl // 2
        upper = Signal() if p.fold > 1 else None  # draining the upper half of a folded lane
        out_lane = lane if p.fold == 1 else Cat(lane, upper)  # the output channel within the group
        ys = []
        for j in range(xl):
            rq = Requant(p.acc_bits, p.requant_cuts, p.dsp)
            m.submodules[f"requant{j}"] = rq
            acc = work.word_select(j, p.acc_bits).as_signed()
            if p.fold > 1 and j < half:
                acc = Mux(upper, work.word_select(half + j, p.acc_bits).as_signed(), acc)
            m.d.comb += [rq.acc.eq(acc + bias), rq.multiplier.eq(requant_entry[:intmath.MULT_BITS]),
                         rq.shift.eq(requant_entry[intmath.MULT_BITS:intmath.MULT_BITS + SHIFT_BITS]),
                         rq.half_even.eq(requant_entry[-1]), rq.lo.eq(self.lo), rq.hi.eq(self.hi)]
            ys.append(rq.y[:f])
        latency = rq.latency
        slot = xg[:gshift] if gshift else 0
        wr_addr = Signal.like(mem.wr_addr)
        wr_en = Signal.like(mem.wr_en)
        row_end = Signal()  # the drain takes a row's last values
        en = ((1 << xl) - 1) << (slot * xl)
        row_data = Cat(ys * groups_per_beat)
        if p.fold > 1:  # a folded pass's x_lanes / 2 values, twice as many pixel groups per beat
            en = Mux(self.fold, ((1 << half) - 1) << (xg[:gshift + 1] * half), en)
            row_data = Mux(self.fold, Cat(ys[:half] * (2 * groups_per_beat)), row_data)
            beat_of_xg = Mux(self.fold, xg >> (gshift + 1), xg >> gshift)
        else:
            beat_of_xg = xg >> gshift
        m.d.comb += [
            wr_addr.eq((buf * out_lanes + out_lane) * rb_max + beat_of_xg),
            mem.wr_addr.eq(delay(m, wr_addr, latency, "wr_addr")),
            mem.wr_en.eq(delay(m, wr_en, latency, "wr_en")),
            mem.wr_data.eq(row_data),
        ]
        with m.If(holding):
            m.d.comb += wr_en.eq(en)
            rotated = entries.rotate_right(entry_bits)
            if p.fold > 1:  # an unfolded run's entries are the low m_lanes
                low = lanes * entry_bits
                rotated = Mux(self.fold, rotated, Cat(entries[:low].rotate_right(entry_bits), entries[low:]))
            m.d.sync += entries.eq(rotated)
            last_lane = lane == lanes - 1
            if p.fold == 1:
                m.d.sync += [lane.eq(lane + 1), work.eq(work >> (xl * p.acc_bits))]
            else:
                lane_done = ~self.fold | upper
                m.d.sync += upper.eq(~lane_done)
                with m.If(lane_done):
                    m.d.sync += [lane.eq(lane + 1), work.eq(work >> (xl * p.acc_bits))]
                last_lane &= lane_done
            with m.If(last_lane):
                m.d.sync += [holding.eq(0), xg.eq(xg + 1), xg_last.eq(xg + 2 == self.x_groups)]
                with m.If(xg_last):
                    m.d.comb += row_end.eq(1)
                    m.d.sync += [xg.eq(0), xg_last.eq(self.x_groups == 1), oy.eq(oy + 1),
                                 oy_last.eq(oy + 2 == self.out_height), full.bit_select(buf, 1).eq(1)]
        if latency:
            landed = Signal(2)
            landed_row, landed_buf = delay(m, row_end, latency, "row_end"), delay(m, buf, latency, "row_end_buf")
            with m.If(landed_row):
                m.d.sync += landed.bit_select(landed_buf, 1).eq(1)
        else:
            landed = full

        # -- writer ---------------------------------------------------------------------------------
        wy = Signal(16)
        wlane = Signal(range(out_lanes + 1))
        row_addr = Signal(ADDR_BITS)  # row wy of the group's first channel
        lane_addr = Signal(ADDR_BITS)
        beat = Signal(16)  # next beat to read
        out_beat = Signal(16)  # beat on the wr stream
        # out_beat, wlane and wy at their last values, as registers loaded beside them (no compare
        # between the bus's ready and the row-end updates)
        out_last, wlane_last, wy_last = Signal(), Signal(), Signal()
        wbuf = wy[0]
        sending = Signal()
        active = Signal()  # the writer has a group whose rows are not all sent
        group_lanes = Signal.like(self.lanes_valid)  # the writer's group's output channels, and whether it is one
        one_lane = Signal()
        advance = ~self.wr.valid | self.wr.ready
        m.d.comb += [mem.rd_en.eq(advance), mem.rd_addr.eq((wbuf * out_lanes + wlane) * rb_max + beat)]
        cols = Cat((out_beat * be + e < self.out_width).replicate(f) for e in range(be))
        m.d.comb += self.wr.payload.eq(mem.rd_data & cols)

        # a run restarts the drain's row count and copies its entries. The engine may start a run before the drain
        # has taken the previous run's last pass (`owing`) or while it holds it: then the restart waits until that
        # pass is taken and its hold ends (`restart`; the hold's last lane still counts its row and marks its
        # buffer full), and no pass of the new run is taken until it is done
        with m.If(self.run):
            m.d.sync += [self.drained.eq(0), self.done.eq(0)]
        with m.If((self.run | restart) & ~holding & ~owing):
            m.d.sync += [oy.eq(0), xg.eq(0), xg_last.eq(self.x_groups == 1), oy_last.eq(self.out_height == 1),
                         restart.eq(0), owing.eq(1), entries.eq(run_entries)]
        with m.Elif(self.run):
            m.d.sync += restart.eq(1)
        # the writer: a group's rows, in the drain's order; it takes a run's group when it has none or has just
        # sent its group's last beat, else the run waits as `pending`
        finish = Signal()  # the group's last beat is taken
        with m.If(~sending):
            m.d.comb += [self.req.valid.eq(landed.bit_select(wbuf, 1) & active),
                         self.req.payload.addr.eq(lane_addr), self.req.payload.len.eq(self.row_beats),
                         self.req.payload.write.eq(1)]
            with m.If(self.req.valid & self.req.ready):
                m.d.sync += [sending.eq(1), beat.eq(0)]
        with m.Else():
            with m.If(advance):
                m.d.sync += self.wr.valid.eq(0)
                with m.If(beat != self.row_beats):
                    m.d.sync += [self.wr.valid.eq(1), out_beat.eq(beat), beat.eq(beat + 1),
                                 out_last.eq(beat == self.row_beats - 1)]
            with m.If(self.wr.valid & self.wr.ready & out_last):
                m.d.sync += [sending.eq(0), wlane.eq(wlane + 1), lane_addr.eq(lane_addr + self.plane_bytes),
                             wlane_last.eq(wlane + 2 == group_lanes)]
                with m.If(wlane_last):
                    m.d.sync += [wlane.eq(0), wy.eq(wy + 1), wlane_last.eq(one_lane),
                                 wy_last.eq(wy + 2 == self.out_height),
                                 full.bit_select(wbuf, 1).eq(0), landed.bit_select(wbuf, 1).eq(0),
                                 row_addr.eq(row_addr + self.row_bytes), lane_addr.eq(row_addr + self.row_bytes)]
                    m.d.comb += finish.eq(wy_last)
        with m.If((self.run | self.pending) & (~active | finish)):
            m.d.sync += [active.eq(1), self.pending.eq(0), wy.eq(0), wlane.eq(0), row_addr.eq(self.group_addr),
                         lane_addr.eq(self.group_addr), group_lanes.eq(self.lanes_valid),
                         one_lane.eq(self.lanes_valid == 1), wlane_last.eq(self.lanes_valid == 1),
                         wy_last.eq(self.out_height == 1)]
        with m.Elif(self.run):
            m.d.sync += self.pending.eq(1)
        with m.Elif(finish):
            m.d.sync += [active.eq(0), self.done.eq(1)]
        return m
