"""The engine's top level: layer control around the buffers, the MAC array and write-back.

Sequence per layer (started by a one-cycle `start` with `desc_addr`):
  1. read the 64-byte descriptor;
  2. walk the layer's row bands (`bands` bands of `band_rows` output rows) and lane groups (of
     `m_lanes` output channels) in one of two loop nests the compiler chose:
     - streamed weights (`resident_groups` = 0): for every band, read its input rows, then for
       every lane group read its bias/requant table and weights and run the band; with `prefetch`
       a run reads the next group's table (into `table_next`) and weights (into the weight
       buffer's other half) while it computes, so the next group starts on its residue step;
     - resident lane groups (`resident_groups` = k): for every k lane groups, read their weights
       into the weight buffer side by side, then for every band read its input rows and run each
       of the k groups (reading its table) on it; k = all groups reads weights and input once. With
       `prefetch` only the set's first group's weights are read before its first band: each run of
       that band (tile) reads the next group's weights into its slot behind it, and every run the next
       group's table (into `table_next`), so the set's groups start on their residue steps;
  3. a band's input is read channel by channel: the rows its windows need (halo included, rows
     outside the tensor skipped) go into the input buffer; when the compiler split bands into
     column tiles (`col_beats`), each tile of a band (left to right) is read and run in turn,
     one read per row of the whole beats covering its columns (TILE_COLS, TILE_BEATS), and its
     output rows are written from its first output beat; when two bands fit the input buffer the
     compiler may double-buffer them (`second_word`): after the layer's first band, each band's input is
     read into the other half while the band before runs (INPUT_WAIT reads what is left); a run is every pass of the band
     (output row x lane group of pixels) while write-back streams finished rows out. When another
     group of the band (tile, resident set) follows, it starts once the run's last pass is drained
     (`wb.drained`): the write-back sends the run's last rows while the next group starts. With its
     table and weights prefetched, the run ends at its last issue instead (the table switches there:
     write-back copied the run's entries and biases when it started it): the next group's residue step
     and RUN_START overlap the last pass's way to the drain, and (residue groups aside) the input buffer
     fetched the next group's first windows as soon as it had fetched this run's last. Groups are
     contiguous channels, or (`residue_groups`) channels `r + (k0 + m) * P` of one residue class
     `r` after the other: then every lane shares the residue and each channel steps its pattern's taps;
  4. one-cycle `done` after the last write beat is accepted.
`hwgen.engine.tiling.layer_tiling` chooses bands and nest, and counts the same bytes. A folded layer
(`fold`, engines built with one) has lane groups of `2 * m_lanes` channels and their tables; the MAC
array, input buffer and write-back run its passes of `x_lanes / 2` pixels.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..engine import descriptor
from ..engine.memory_map import TABLE_ENTRY_BYTES, ceil_div, table_group_beats
from ..engine.params import ADDR_BITS, EngineParams
from .dma import REQUEST, Reader
from .input_buffer import InputBuffer
from .mac_array import MacArray
from .pattern_rom import PatternRom
from .weight_buffer import WeightBuffer
from .writeback import Writeback


class Engine(wiring.Component):
    """The generated accelerator. Ports as in docs/ARCHITECTURE.md ("The engine's memory interface")."""

    def __init__(self, params: EngineParams):
        self.p = params.validate()
        super().__init__({
            "req": Out(stream.Signature(REQUEST)),
            "rd": In(stream.Signature(params.bus_bits)),
            "wr": Out(stream.Signature(params.bus_bits)),
            "desc_addr": In(ADDR_BITS),
            "start": In(1),
            "busy": Out(1),
            "done": Out(1),
            "mac_active": Out(1),  # the MAC array issues a step this cycle (the MAC_ACTIVE counter)
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        lanes, bb = p.m_lanes, p.beat_bytes
        m.submodules.reader = reader = Reader(bb)
        m.submodules.inbuf = inbuf = InputBuffer(p)
        m.submodules.wbuf = wbuf = WeightBuffer(p)
        m.submodules.patterns = rom = PatternRom(p)
        m.submodules.mac = mac = MacArray(p)
        m.submodules.wb = wb = Writeback(p)

        desc_beats = ceil_div(descriptor.DESCRIPTOR_BYTES, bb)
        be_log = p.beat_elems.bit_length() - 1  # activations per beat: a power of two
        desc_raw = Signal(desc_beats * p.bus_bits)
        d = descriptor.LAYOUT(desc_raw[:descriptor.LAYOUT.size])
        tgb = table_group_beats(p)
        tgb_wide = table_group_beats(p, p.fold)  # a folded group's table: twice the entries
        table = Signal(tgb_wide * p.bus_bits)
        table_next = Signal(tgb_wide * p.bus_bits)  # the next group's table, read during a run (prefetch)
        # a folded layer's lane groups hold twice the channels, and their tables twice the entries (mux of
        # constants on a descriptor bit)
        if p.fold > 1:
            group_lanes, group_tgb = Mux(d.fold, 2 * lanes, lanes), Mux(d.fold, tgb_wide, tgb)
            group_table_bytes = Mux(d.fold, tgb_wide * bb, tgb * bb)
        else:
            group_lanes, group_tgb, group_table_bytes = lanes, tgb, tgb * bb

        def table_beat(reg):
            """`reg` (a table register) after a table beat arrives: beats shift in at the top of the group's
            table, an unfolded group's in the low `tgb` beats."""
            wide = Cat(reg[p.bus_bits:], self.rd.payload) if tgb_wide > 1 else self.rd.payload
            if tgb_wide == tgb:
                return wide
            narrow = Cat(reg[p.bus_bits:tgb * p.bus_bits], self.rd.payload, reg[tgb * p.bus_bits:])
            return Mux(d.fold, wide, narrow)

        # layer constants, computed once after the descriptor arrives
        row_bytes = Signal(ADDR_BITS)
        plane_bytes = Signal(ADDR_BITS)
        lane_bytes = Signal(ADDR_BITS)  # output address stride between the lanes of a group
        in_plane_bytes = Signal(ADDR_BITS)  # input address stride between channels
        input_beats = Signal(32)  # the whole input tensor's beats
        band_out_step = Signal(ADDR_BITS)  # output address advance per band
        # their factors, one multiply per cycle (SETUP, then SETUP_BYTES): no multiplier chain in one cycle
        out_plane_beats = Signal(32)
        in_plane_beats = Signal(32)
        band_out_beats = Signal(32)
        # the lanes' planes apart: the period in a residue-grouped layer, else 1; a register, so that the
        # descriptor's fields and this mux are not in front of lane_bytes' multiplier
        lane_planes = Signal(8)
        last_tap = Signal(8)  # the layer's taps - 1: the MAC array's last step per channel
        last_channel = Signal(16)  # channels - 1
        last_m_group = Signal(16)  # m_groups - 1
        penult_m_group = Signal(16)  # m_groups - 2
        last_band = Signal(16)  # bands - 1
        band_last_row = Signal(16)  # column tiles: the band's input rows - 1 (one read per row)
        # lane group state
        group = Signal(16)
        lanes_left = Signal(16)
        weight_ptr = Signal(ADDR_BITS)
        table_ptr = Signal(ADDR_BITS)
        out_ptr = Signal(ADDR_BITS)
        # the writer's group: its first row (a column tile's from its first output beat) and output channels
        # (the last group's may be fewer), a cycle behind the registers they are computed from (below)
        group_addr = Signal(ADDR_BITS)
        lanes_valid = Signal.like(wb.lanes_valid)
        # residue groups: the current class, its first output plane, and whether this group starts it
        res_class = Signal(8)
        class_ptr = Signal(ADDR_BITS)
        class_start = Signal()
        # row band state: first output row, its first window's top input row, output rows, the input
        # rows [lo, hi) it loads (row lo in each channel's first buffer slot), the channel being loaded
        band = Signal(16)
        band_oy0 = Signal(16)
        band_y0 = Signal(signed(18))
        band_rows_now = Signal(16)
        band_lo = Signal(signed(18))
        band_hi = Signal(signed(18))
        band_out_off = Signal(ADDR_BITS)
        # the band's first window's top row + kernel rows - stride (BAND), then + its output rows * stride:
        # one past the last input row its windows read (BAND_ROWS), one add per cycle
        band_top = Signal(signed(18))
        band_end = Signal(signed(18))
        # the input buffer's fetch origin, set per band (BAND, BAND_BEATS) so that a run's start meets
        # registers: the band's first window row (first output row * stride - kernel_max // 2) and its slot
        win_top = Signal(signed(18))
        win_slot = Signal(signed(18))
        # beats before row hi and before row lo in a channel (BAND_BEATS: each a multiply of a register, no
        # subtraction in front of the multiplier), and the band's input rows hi - lo
        hi_beats = Signal(32)
        lo_beats = Signal(32)
        band_in_rows = Signal(16)
        chan_beats = Signal(32)
        in_c = Signal(16)
        in_ptr = Signal(ADDR_BITS)
        chan_ptr = Signal(ADDR_BITS)  # the channel's first row to load
        in_row = Signal(16)  # column tiles: the row being loaded (one read per row), from the band's first
        slot_ptr = Signal(32)
        in_row_bytes = Signal(ADDR_BITS)
        # the layer's nest, from descriptor fields, as registers (SETUP): their 8-bit ORs are not in front of RUN's
        # exit and the input buffer's `run` (main's 88.61 / 91.68 MHz paths, seeds 2 and 3: `resident_groups` ->
        # `overlap` -> the resets of the fetch's and the issue count's registers)
        col_tiled = Signal()
        resident = Signal()
        # column tile state: its first output column, output columns, lane groups of pixels and output
        # beats, and the input beats [tile_lo, tile_lo + tile_beats) of each row it reads (full rows:
        # set once in SETUP)
        tile_ox0 = Signal(16)
        tile_cols = Signal(16)
        tile_xg = Signal(16)
        tile_out_beats = Signal(16)
        tile_lo = Signal(16)
        tile_beats = Signal(16)
        tile_x_lo = Signal(16)  # the first input column the tile's windows touch
        tile_x_hi = Signal(signed(18))  # one past the last
        tile_flush = Signal()  # a row's columns end in its last beat's second half: the fill writes once more
        # their terms, one carry chain per cycle (TILE_COLS .. TILE_ROW_BEATS): output columns left from
        # the tile's first, its first window's left column, that + kernel - stride, the right end clipped
        # to the width, its lo and first column less beat_elems - 1 (beats round up), the row's kept beats
        tile_left = Signal(16)
        tile_x0 = Signal(signed(18))
        tile_x_end = Signal(signed(18))
        tile_hi = Signal(16)
        tile_lo_up = Signal(signed(18))
        tile_x_lo_up = Signal(signed(18))
        tile_kept = Signal(16)
        tile_last = Signal()  # the band's last column tile
        # resident lane groups: the group within the resident set, its weight-buffer offsets, and
        # the lane group state at the set's first group (restored for every band)
        j = Signal(8)
        set_size = Signal(8)
        set_last = Signal(8)  # set_size - 1, a cycle after SET_START: `j` meets an equality, not a carry chain
        m.d.sync += set_last.eq(set_size - 1)
        group_words = Signal(16)  # weight-buffer memory words per group
        fill_base = Signal(range(wbuf.depth))
        lane_base = Signal.like(wbuf.read_base)
        saved = [Signal.like(v, name=f"saved_{v.name}")
                 for v in (group, lanes_left, table_ptr, out_ptr, res_class, class_ptr, class_start)]
        # prefetch: while a group runs, the next group's table, then its weights into the weight buffer's
        # other half, share the memory port with write-back
        pf_table = Signal()
        pf_weights = Signal()
        prefetched = Signal()  # the current run's RUN_START started a prefetch (the next group's loads)
        # a resident set's first tile: its runs' prefetch also reads the next group's weights, into that group's slot
        set_fill = Signal()
        # double-buffered row bands (`second_word`): the runs read their band from copies of the band registers
        # (`band_ready`), while these set up the next band and read it into the input buffer's other half, one
        # channel at a time whenever the read port is free (`load_port`)
        if p.double_bands:
            run_rows, run_top, run_slot = Signal(16), Signal(signed(18)), Signal(signed(18))
            double = Signal()  # the layer double-buffers its bands
            second_slot = Signal(16)  # the second band's first slot
            band_base = Signal(16)  # the first slot of the half the band registers' band goes to
            ahead = Signal()  # the band registers are a band ahead of the runs: its input is read behind them
            band_pending = Signal()  # that band has channels left to read
            pf_input = Signal()  # one of them is being read
            load_last = Signal()  # the band registers' band is the layer's (a resident set's) last
            last_set = Signal()  # the resident set is the layer's last
            more = Signal()  # another band follows the one read behind the runs
            load_port = Signal()  # the engine's state lets such a read start
        else:
            run_rows, run_top, run_slot = band_rows_now, win_top, win_slot
        got = Signal(32)  # data beats received in the current load
        got_last = Signal()  # the next beat is the load's last (loads of a descriptor-dependent length)

        rd_beat = self.rd.valid & self.rd.ready

        # -- datapath wiring ------------------------------------------------------------------------
        m.d.comb += [
            inbuf.fill.payload.eq(self.rd.payload), wbuf.fill.payload.eq(self.rd.payload),
            inbuf.row_beats.eq(tile_beats), inbuf.channels.eq(d.channels), inbuf.height.eq(d.height),
            inbuf.width.eq(d.width), inbuf.out_height.eq(run_rows), inbuf.x_groups.eq(tile_xg),
            inbuf.x_start.eq(Mux(d.stride2, tile_ox0 << 1, tile_ox0)), inbuf.col_origin.eq(tile_x_lo),
            inbuf.col_shift.eq(tile_x_lo[:be_log]), inbuf.col_flush.eq(tile_flush),
            inbuf.slot_shift.eq(d.slot_shift), inbuf.chan_rows.eq(d.chan_rows), inbuf.fill_slot.eq(slot_ptr + in_row),
            inbuf.y_start.eq(run_top), inbuf.first_slot.eq(run_slot),
            inbuf.stride2.eq(d.stride2), inbuf.kernel1x1.eq(d.kernel1x1), inbuf.residue_groups.eq(d.residue_groups),
            inbuf.group_index.eq(rom.group_index), inbuf.table_base.eq(d.table_base), inbuf.period.eq(d.period),
        ]
        if p.kernel_max > 3:
            m.d.comb += [inbuf.kernel_half.eq(d.kernel >> 1), mac.kernel_half.eq(d.kernel >> 1)]
            # the input rows a window of the layer's kernel reads, and the first one's offset from oy * stride
            kernel_rows, kernel_top = d.kernel, -(d.kernel >> 1)
        else:  # the layer is 1x1 or 3x3
            kernel_rows, kernel_top = Mux(d.kernel1x1, 1, 3), Mux(d.kernel1x1, 0, -1)
        wiring.connect(m, inbuf.window, mac.window)
        wiring.connect(m, mac.result, wb.result)
        m.d.comb += self.mac_active.eq(mac.issue)
        m.d.comb += [
            mac.last_channel.eq(last_channel), mac.stride2.eq(d.stride2),
            mac.last_step.eq(Mux(d.residue_groups, rom.last_step, last_tap) if p.sparse else last_tap),
            mac.next_one_step.eq(Mux(d.residue_groups, rom.next_one_step, last_tap == 0) if p.sparse
                                 else last_tap == 0),
            mac.in_signed.eq(d.in_signed),
            wbuf.addr.eq(mac.weight_addr), wbuf.read_base.eq(lane_base), wbuf.fill_base.eq(fill_base),
            mac.weights.eq(wbuf.data),
            mac.dense.eq(d.dense), mac.kernel1x1.eq(d.kernel1x1), mac.library.eq(d.library),
            wbuf.id_words.eq(d.id_words), wbuf.id_addr.eq(mac.id_addr), wbuf.id_en.eq(mac.id_en),
            mac.ids.eq(wbuf.ids),
            rom.table_base.eq(d.table_base), rom.period.eq(d.period), rom.shared.eq(d.residue_groups),
            rom.issue.eq(mac.issue),
            rom.chan_done.eq(mac.chan_done), rom.pass_done.eq(mac.pass_done), mac.select.eq(rom.select),
            wb.lo.eq(d.lo), wb.hi.eq(d.hi), wb.out_width.eq(tile_cols), wb.out_height.eq(run_rows),
            wb.x_groups.eq(tile_xg), wb.row_beats.eq(tile_out_beats), wb.row_bytes.eq(row_bytes),
            wb.plane_bytes.eq(lane_bytes),
            wb.group_addr.eq(group_addr), wb.lanes_valid.eq(lanes_valid),
            wb.wr.ready.eq(self.wr.ready), self.wr.valid.eq(wb.wr.valid), self.wr.payload.eq(wb.wr.payload),
        ]
        if p.fold > 1:
            m.d.comb += [mac.fold.eq(d.fold), inbuf.fold.eq(d.fold), wb.fold.eq(d.fold)]
        for lane in range(p.out_lanes):
            entry = table.word_select(lane, TABLE_ENTRY_BYTES * 8)
            m.d.comb += [wb.bias[lane].eq(entry[0:32]), wb.multiplier[lane].eq(entry[32:47]),
                         wb.shift[lane].eq(entry[48:54]), wb.half_even[lane].eq(entry[56])]

        # the request stream belongs to the reader, and from a run's start until its band's rows are written to
        # write-back too (the reader then prefetches, or reads the next group's table and weights while the
        # writer sends the last rows of the group before): a request not yet accepted keeps the stream until it is
        running = Signal()
        held = Signal()
        held_wb = Signal()
        to_wb = Signal()
        m.d.comb += to_wb.eq(running & Mux(held, held_wb, ~reader.req.valid))
        m.d.sync += [held.eq(self.req.valid & ~self.req.ready), held_wb.eq(to_wb)]
        with m.If(to_wb):
            m.d.comb += [self.req.valid.eq(wb.req.valid), self.req.payload.eq(wb.req.payload),
                         wb.req.ready.eq(self.req.ready)]
        with m.Else():
            m.d.comb += [self.req.valid.eq(reader.req.valid), self.req.payload.eq(reader.req.payload),
                         reader.req.ready.eq(self.req.ready)]

        def read(addr, beats):
            m.d.comb += [reader.start.eq(1), reader.addr.eq(addr), reader.beats.eq(beats)]
            m.d.sync += [got.eq(0), got_last.eq(beats == 1)]

        def count_beat(beats):
            """A data beat of a load of `beats`: `got_last` follows it one beat ahead, so the load's end
            is a register, not a compare, in front of the state transition."""
            m.d.sync += [got.eq(got + 1), got_last.eq(got + 2 == beats)]

        # the next residue class's lanes, computed a cycle behind `res_class` (which changes at least two cycles
        # before a run's end reads this: RUN_START and RUN lie between), so that the class counter's add and
        # compare are not chained into `lanes_left`'s
        next_class_lanes = Signal.like(lanes_left)
        m.d.sync += next_class_lanes.eq(d.class_channels + (res_class + 1 < d.class_extra))
        # what a group's end (RUN's exit), its loads and its writer read of the group pointers, a cycle behind
        # them: the pointers change at a run's exit, a load's last beat or a band's setup, at least two cycles before
        # the next RUN_START, exit or load reads these (but an early exit's RUN_START, the next cycle: `next_group`
        # loads what it reads along with the pointers), so the exit's enables, the reader's address and the
        # writer's row address meet flip-flops, not adds and compares (the out_ptr / class_ptr / lane_addr / reader
        # address endpoints of main's runs)
        tile_out_off = Signal(ADDR_BITS)  # the band's and column tile's first output beat in a plane

        def lanes_of(left):
            return Mux(left < group_lanes, left, group_lanes)

        table_ptr_next = Signal.like(table_ptr)
        weight_ptr_next = Signal.like(weight_ptr)
        out_ptr_next = Signal.like(out_ptr)
        class_ptr_next = Signal.like(class_ptr)
        class_done = Signal()  # the group is its residue class's last: the next one starts the next class
        weight_step = d.weight_group_beats * bb
        m.d.sync += [
            table_ptr_next.eq(table_ptr + group_table_bytes),
            weight_ptr_next.eq(weight_ptr + weight_step),
            out_ptr_next.eq(out_ptr + (Mux(d.fold, lane_bytes * (2 * lanes), lane_bytes * lanes) if p.fold > 1
                                       else lane_bytes * lanes)),
            class_ptr_next.eq(class_ptr + plane_bytes),
            class_done.eq(d.residue_groups & (lanes_left <= lanes)),
            tile_out_off.eq(band_out_off + (tile_ox0 >> be_log) * bb),
            group_addr.eq(out_ptr + tile_out_off), lanes_valid.eq(lanes_of(lanes_left)),
        ]

        def reset_groups():
            m.d.sync += [group.eq(0), weight_ptr.eq(d.weight_addr), table_ptr.eq(d.table_addr),
                         out_ptr.eq(d.out_addr), res_class.eq(0), class_ptr.eq(d.out_addr), class_start.eq(0),
                         lanes_left.eq(Mux(d.residue_groups, d.class_channels + (d.class_extra != 0), d.out_channels))]
            m.d.comb += rom.group_clear.eq(1)

        def next_group():
            m.d.sync += [
                group.eq(group + 1), last_group.eq(next_last_group), lanes_left.eq(lanes_left - group_lanes),
                table_ptr.eq(table_ptr_next), out_ptr.eq(out_ptr_next), class_start.eq(0),
                # an early exit goes to RUN_START directly, which reads these a cycle later: they are loaded
                # with the pointers they follow, not a cycle behind them
                table_ptr_next.eq(table_ptr_next + group_table_bytes),
                group_addr.eq(out_ptr_next + tile_out_off), lanes_valid.eq(lanes_of(lanes_left - group_lanes)),
            ]
            with m.If(~resident):  # resident groups' weights were read when their set started
                m.d.sync += [weight_ptr.eq(weight_ptr_next),
                             weight_ptr_next.eq(weight_ptr_next + weight_step)]
            with m.If(class_done):
                m.d.sync += [
                    res_class.eq(res_class + 1), class_ptr.eq(class_ptr_next), out_ptr.eq(class_ptr_next),
                    class_start.eq(1),
                    lanes_left.eq(next_class_lanes),
                    group_addr.eq(class_ptr_next + tile_out_off), lanes_valid.eq(lanes_of(next_class_lanes)),
                ]

        def next_channel():
            """A channel of the band's input has arrived: the next channel's first row."""
            m.d.sync += [in_c.eq(in_c + 1), in_row.eq(0), chan_ptr.eq(chan_ptr + in_plane_bytes),
                         in_ptr.eq(chan_ptr + in_plane_bytes), slot_ptr.eq(slot_ptr + d.chan_rows)]

        def reset_bands(loads=True):
            """The first band and tile: of the runs, and unless `loads` is false, of the band registers."""
            m.d.sync += band.eq(0)
            if loads:
                m.d.sync += [band_oy0.eq(0), band_y0.eq(kernel_top)]
            m.d.sync += [band_out_off.eq(0), tile_ox0.eq(0)]

        def next_load_band():
            m.d.sync += [band_oy0.eq(band_oy0 + d.band_rows),
                         band_y0.eq(band_y0 + Mux(d.stride2, d.band_rows << 1, d.band_rows))]

        def next_tile():
            """The band's next column tile, or the next band's first (double-buffering engines advance the band
            registers when a band's input has arrived: `band_loaded`)."""
            with m.If(last_col):
                m.d.sync += band.eq(band + 1)
                if not p.double_bands:
                    next_load_band()
                m.d.sync += [band_out_off.eq(band_out_off + band_out_step), tile_ox0.eq(0)]
            with m.Else():
                m.d.sync += tile_ox0.eq(tile_ox0 + (d.col_beats << be_log))

        def next_band_state():
            """The next band: its setup and read, or, read behind the runs, the wait for its last read."""
            m.next = "BAND"
            if p.double_bands:
                with m.If(ahead):
                    band_ready()
                    m.next = "INPUT_WAIT"

        group_state = [group, lanes_left, table_ptr, out_ptr, res_class, class_ptr, class_start]
        # where the group, column tile, band and resident set loops end, as flip-flops beside their counters: a
        # counter changes at least a cycle before the RUN_START or RUN that reads its flag (RESIDUES, or a band's
        # setup, lies between; `last_group` and `set_end` are loaded with their counters from a lookahead, as an
        # early exit goes to RUN_START directly), so the compares are made ahead and a run's exit (the next state,
        # the enables of the group and band registers) starts at registers (the 85.54 MHz path: `band == last_band`
        # there)
        last_group = Signal()
        next_last_group = Signal()  # the group after this one is the last
        last_col = Signal()
        last_tile = Signal()
        set_end = Signal()  # the resident set's last group (RUN; WEIGHTS compares `j` itself, a beat after SET_START)
        next_set_end = Signal()  # the group after this one is the set's last (loaded into `set_end` with `j`)
        col_end = ~col_tiled | tile_last

        def band_ready():
            """The band registers' band is the runs' next: copied once its setup is done and the runs before have
            ended, at least two cycles before GROUPS (the input buffer and write-back register limits from them a
            cycle behind)."""
            m.d.sync += [run_rows.eq(band_rows_now), run_top.eq(win_top), run_slot.eq(win_slot)]

        def band_loaded():
            """A band's (column tile's) input has arrived: the band registers go on to the next band (the next
            set's first after the last), into the other half. Returns whether another band follows."""
            with m.If(col_end):
                with m.If(load_last):
                    m.d.sync += [band_oy0.eq(0), band_y0.eq(kernel_top)]
                with m.Else():
                    next_load_band()
            m.d.sync += band_base.eq(second_slot - band_base)
            return double & (~load_last | (resident & ~last_set))
        m.d.sync += [last_group.eq(group == last_m_group), next_last_group.eq(group == penult_m_group),
                     last_col.eq(col_end),
                     last_tile.eq((band == last_band) & col_end), set_end.eq(j == set_last),
                     next_set_end.eq(j + 1 == set_last)]
        # another group of the same band (tile, resident set) follows: RUN's exit goes to it (`overlap`)
        follows = Mux(resident, ~set_end, ~last_group)
        # a prefetched run of a band whose next group follows ends when its last pass is issued (`early`): the
        # next group's residue step and RUN_START overlap the last pass's way through the MAC array's cuts and
        # the drain. The passes issued are counted like the drain counts them, each loop's last as a flag beside
        # its counter; from the last issue until the next RUN_START the MAC array holds (the windows waiting are
        # the next group's, whose residues and weights are not switched yet). `overlap` and `early` are
        # registers set at RUN_START (the flags above are the run's by then), so RUN's exit and the fetch's
        # `run` start at flip-flops
        overlap = Signal()
        early = Signal()
        # the run's last pass has issued its last step (or no run has started yet)
        last_issued = Signal(init=1)
        m.d.comb += mac.hold.eq(last_issued)
        # the band's windows do not change between its groups: the input buffer fetches a band's first windows as
        # soon as its input is loaded (GROUPS), and when another group of the band follows the run, the next
        # run's windows as soon as it has fetched this run's last (`refetch`, set at RUN_START), behind them in the
        # window FIFO (residue groups aside: their fetch needs the group's residue, set in RESIDUES)
        refetch = Signal()
        fetched = Signal()  # the next run's windows are being fetched: its RUN_START does not start the fetch
        with m.If(refetch & ~inbuf.fetching):
            m.d.comb += inbuf.run.eq(1)
            m.d.sync += [refetch.eq(0), fetched.eq(1)]
        start_run = Signal()  # RUN_START: the MAC array's run starts (its passes issued from the next cycle)
        i_xg, i_oy = Signal(16), Signal(16)
        i_xg_last, i_oy_last = Signal(), Signal()
        with m.If(start_run):
            m.d.sync += [i_xg.eq(0), i_oy.eq(0), i_xg_last.eq(tile_xg == 1), i_oy_last.eq(run_rows == 1),
                         last_issued.eq(0)]
        with m.Elif(mac.issue & mac.pass_done):
            m.d.sync += [i_xg.eq(i_xg + 1), i_xg_last.eq(i_xg + 2 == tile_xg)]
            with m.If(i_xg_last):
                m.d.sync += [i_xg.eq(0), i_xg_last.eq(tile_xg == 1), i_oy.eq(i_oy + 1),
                             i_oy_last.eq(i_oy + 2 == run_rows)]
                with m.If(i_oy_last):
                    m.d.sync += last_issued.eq(1)
        bpw_log = wbuf.beats_per_word.bit_length() - 1
        lw_log = wbuf.lane_words_per_word.bit_length() - 1

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    read(self.desc_addr, desc_beats)
                    m.next = "DESCRIPTOR"
            with m.State("DESCRIPTOR"):
                m.d.comb += [self.busy.eq(1), self.rd.ready.eq(1)]
                with m.If(rd_beat):
                    m.d.sync += [got.eq(got + 1), desc_raw.eq(Cat(desc_raw[p.bus_bits:], self.rd.payload)
                                                              if desc_beats > 1 else self.rd.payload)]
                    with m.If(got == desc_beats - 1):
                        m.next = "SETUP"
            with m.State("SETUP"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [
                    row_bytes.eq(d.out_row_beats * bb), last_tap.eq(d.taps - 1), last_channel.eq(d.channels - 1),
                    last_m_group.eq(d.m_groups - 1), penult_m_group.eq(d.m_groups - 2), last_band.eq(d.bands - 1),
                    out_plane_beats.eq(d.out_height * d.out_row_beats),
                    in_plane_beats.eq(d.height * d.in_row_beats),
                    band_out_beats.eq(d.band_rows * d.out_row_beats),
                    lane_planes.eq(Mux(d.residue_groups, d.period, 1)),
                    in_row_bytes.eq(d.in_row_beats * bb),
                    # full rows; column tiles set these per tile (TILE_COLS, TILE_BEATS)
                    tile_cols.eq(d.out_width), tile_xg.eq(d.x_groups), tile_out_beats.eq(d.out_row_beats),
                    tile_lo.eq(0), tile_beats.eq(d.in_row_beats), tile_x_lo.eq(0), tile_flush.eq(0),
                    col_tiled.eq(d.col_beats != 0), resident.eq(d.resident_groups != 0),
                    group_words.eq((d.weight_group_beats + (1 << bpw_log) - 1) >> bpw_log),
                    fill_base.eq(0), lane_base.eq(0), prefetched.eq(0),
                ]
                reset_groups()
                reset_bands()
                if p.double_bands:
                    m.d.sync += [double.eq(d.second_word != 0), second_slot.eq(d.second_word << d.slot_shift),
                                 band_base.eq(0), ahead.eq(0), band_pending.eq(0)]
                m.next = "SETUP_BYTES"
            with m.State("SETUP_BYTES"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [
                    plane_bytes.eq(out_plane_beats * bb),
                    lane_bytes.eq(out_plane_beats * bb * lane_planes),
                    in_plane_bytes.eq(in_plane_beats * bb),
                    input_beats.eq(d.channels * in_plane_beats),
                    band_out_step.eq(band_out_beats * bb),
                ]
                with m.If(resident):
                    m.next = "SET_START"
                with m.Else():
                    m.next = "BAND"
            # -- resident lane groups: their weights side by side in the weight buffer -------------------
            with m.State("SET_START"):
                m.d.comb += [self.busy.eq(1), rom.save.eq(1)]
                m.d.sync += [sv.eq(v) for sv, v in zip(saved, group_state)]
                if p.double_bands:
                    m.d.sync += last_set.eq(d.m_groups - group <= d.resident_groups)
                m.d.sync += [j.eq(0), fill_base.eq(0), set_fill.eq(1),
                             set_size.eq(Mux(d.m_groups - group < d.resident_groups, d.m_groups - group,
                                             d.resident_groups))]
                m.next = "WEIGHTS_REQ"
            # -- a row band's input: the rows [lo, hi) of every channel its windows read ----------------
            with m.State("BAND"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [band_rows_now.eq(Mux(d.out_height - band_oy0 < d.band_rows, d.out_height - band_oy0,
                                                  d.band_rows)),
                             band_top.eq(band_y0 + (kernel_rows - Mux(d.stride2, 2, 1))),
                             win_top.eq(Mux(d.stride2, band_oy0 << 1, band_oy0) - p.kernel_max // 2)]
                if p.double_bands:
                    m.d.sync += load_last.eq(d.out_height - band_oy0 <= d.band_rows)
                m.next = "BAND_ROWS"
            with m.State("BAND_ROWS"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += band_end.eq(band_top + Mux(d.stride2, band_rows_now << 1, band_rows_now))
                m.next = "BAND_LIMITS"
            with m.State("BAND_LIMITS"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [band_lo.eq(Mux(band_y0 < 0, 0, band_y0)),
                             band_hi.eq(Mux(band_end > d.height, d.height, band_end))]
                with m.If(col_tiled):
                    m.next = "TILE_COLS"
                with m.Else():
                    m.next = "BAND_BEATS"
            # -- a column tile: its output columns and the whole input beats of a row its windows touch ----
            with m.State("TILE_COLS"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [tile_left.eq(d.out_width - tile_ox0),
                             tile_x0.eq(Mux(d.stride2, tile_ox0 << 1, tile_ox0) - (d.kernel >> 1))]
                m.next = "TILE_SPAN"
            with m.State("TILE_SPAN"):
                m.d.comb += self.busy.eq(1)
                tile_width = d.col_beats << be_log
                x_lo = Mux(tile_x0 < 0, 0, tile_x0).as_unsigned()[:16]
                m.d.sync += [
                    tile_cols.eq(Mux(tile_left < tile_width, tile_left, tile_width)),
                    tile_last.eq(tile_left <= tile_width),
                    tile_x_lo.eq(x_lo), tile_lo.eq(x_lo >> be_log),
                    tile_x_end.eq(tile_x0 + (d.kernel - Mux(d.stride2, 2, 1))),
                ]
                m.next = "TILE_HI"
            with m.State("TILE_HI"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [
                    tile_xg.eq((tile_cols + p.x_lanes - 1) >> (p.x_lanes.bit_length() - 1)),
                    tile_out_beats.eq((tile_cols + p.beat_elems - 1) >> be_log),
                    tile_x_hi.eq(tile_x_end + Mux(d.stride2, tile_cols << 1, tile_cols)),
                    tile_lo_up.eq((tile_lo << be_log) - (p.beat_elems - 1)),
                    tile_x_lo_up.eq(tile_x_lo - (p.beat_elems - 1)),
                ]
                m.next = "TILE_BEATS"
            with m.State("TILE_BEATS"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += tile_hi.eq(Mux(tile_x_hi > d.width, d.width, tile_x_hi).as_unsigned()[:16])
                m.next = "TILE_ROW_BEATS"
            with m.State("TILE_ROW_BEATS"):
                m.d.comb += self.busy.eq(1)
                m.d.sync += [tile_beats.eq((tile_hi - tile_lo_up) >> be_log),  # beats the row's read covers
                             tile_kept.eq((tile_hi - tile_x_lo_up) >> be_log)]  # beats of its columns in the buffer
                m.next = "BAND_BEATS"
            with m.State("BAND_BEATS"):
                m.d.comb += self.busy.eq(1)
                with m.If(col_tiled):
                    m.d.sync += tile_flush.eq((tile_x_lo[:be_log] != 0) & (tile_kept == tile_beats))
                m.d.sync += [hi_beats.eq(band_hi.as_unsigned()[:16] * d.in_row_beats),
                             band_in_rows.eq((band_hi - band_lo).as_unsigned()[:16]),
                             win_slot.eq(win_top + band_base - band_lo if p.double_bands else win_top - band_lo),
                             lo_beats.eq(band_lo.as_unsigned()[:16] * d.in_row_beats)]
                m.next = "BAND_ADDR"
            with m.State("BAND_ADDR"):
                # a band of every row of the tensor is one read: its channels lie back to back in
                # DRAM and in the buffer
                m.d.comb += self.busy.eq(1)
                # (a column tile reads its beats of each row: one read per row)
                whole = (band_lo == 0) & (band_hi == d.height) & (d.chan_rows == d.height) & ~col_tiled
                first = d.in_addr + (lo_beats + tile_lo) * bb
                span_beats = hi_beats - lo_beats  # the band's rows [lo, hi) of one channel
                m.d.sync += [chan_beats.eq(Mux(whole, input_beats, Mux(col_tiled, tile_beats, span_beats))),
                             band_last_row.eq(band_in_rows - 1),
                             in_ptr.eq(first), chan_ptr.eq(first), in_row.eq(0),
                             slot_ptr.eq(band_base if p.double_bands else 0), in_c.eq(Mux(whole, d.channels - 1, 0))]
                m.next = "INPUT_REQ"
                if p.double_bands:  # the next band, read behind the runs of the band set up before it
                    with m.If(ahead):
                        m.d.sync += band_pending.eq(1)
                        m.next = "GROUPS"
                    with m.Else():
                        band_ready()
            with m.State("INPUT_REQ"):
                m.d.comb += [self.busy.eq(1), inbuf.fill_start.eq(1)]
                read(in_ptr, chan_beats)
                m.next = "INPUT"
            with m.State("INPUT"):
                m.d.comb += [self.busy.eq(1), self.rd.ready.eq(1), inbuf.fill.valid.eq(self.rd.valid)]
                with m.If(rd_beat):
                    count_beat(chan_beats)
                    with m.If(got_last):
                        with m.If(col_tiled & (in_row != band_last_row)):
                            m.d.sync += [in_row.eq(in_row + 1), in_ptr.eq(in_ptr + in_row_bytes)]
                            m.next = "INPUT_REQ"
                        with m.Else():
                            next_channel()
                            with m.If(in_c != last_channel):
                                m.next = "INPUT_REQ"
                            with m.Else():
                                m.next = "GROUPS"
                                if p.double_bands:  # the next band's setup, then its read behind the runs
                                    with m.If(band_loaded()):
                                        m.d.sync += ahead.eq(1)
                                        m.next = "BAND"
            if p.double_bands:
                with m.State("INPUT_WAIT"):
                    # the band read behind the last runs: its last reads, then the next band's setup
                    m.d.comb += [self.busy.eq(1), load_port.eq(1)]
                    with m.If(~band_pending):
                        m.next = "BAND"
                        with m.If(~more):
                            m.d.sync += ahead.eq(0)
                            m.next = "GROUPS"
            with m.State("GROUPS"):
                # the band's first lane group: the layer's first (streamed) or the resident set's first
                m.d.comb += self.busy.eq(1)
                with m.If(resident):
                    m.d.sync += [v.eq(sv) for v, sv in zip(group_state, saved)]
                    m.d.sync += [j.eq(0), lane_base.eq(0)]
                    m.d.comb += rom.restore.eq(1)
                with m.Else():
                    reset_groups()
                with m.If(~d.residue_groups):
                    m.d.comb += inbuf.run.eq(1)
                    m.d.sync += fetched.eq(1)
                m.next = "RESIDUES"
            # -- a lane group: its residues, bias/requant table (and streamed weights) -------------------
            with m.State("RESIDUES"):
                # lane m's group residue must become (group * lanes + m) % P: the first group's were set with
                # `group_clear`, a later group's step by lanes % P at once; residue groups share one residue,
                # stepped when a group starts a class
                m.d.comb += [self.busy.eq(1), rom.group_step.eq(Mux(d.residue_groups, class_start, group != 0))]
                with m.If(prefetched):  # table and weights arrived during the previous run
                    m.next = "RUN_START"
                with m.Else():
                    read(table_ptr, group_tgb)
                    m.next = "TABLE"
            with m.State("TABLE"):
                m.d.comb += [self.busy.eq(1), self.rd.ready.eq(1), rom.load.eq(1)]
                with m.If(rd_beat):
                    m.d.sync += [got.eq(got + 1), table.eq(table_beat(table))]
                    with m.If(got == group_tgb - 1):
                        with m.If(resident):
                            m.next = "RUN_START"
                        with m.Else():
                            m.next = "WEIGHTS_REQ"
            with m.State("WEIGHTS_REQ"):
                m.d.comb += [self.busy.eq(1), wbuf.fill_start.eq(1)]
                read(weight_ptr, d.weight_group_beats)
                m.next = "WEIGHTS"
            with m.State("WEIGHTS"):
                # streamed: the group's weights, then its run; resident: the set's groups side by side
                m.d.comb += [self.busy.eq(1), self.rd.ready.eq(1), wbuf.fill.valid.eq(self.rd.valid)]
                with m.If(rd_beat):
                    count_beat(d.weight_group_beats)
                    with m.If(got_last):
                        with m.If(~resident):
                            m.next = "RUN_START"
                        with m.Else():
                            m.d.sync += [j.eq(j + 1), fill_base.eq(fill_base + group_words),
                                         weight_ptr.eq(weight_ptr_next)]
                            # prefetched: the first group's, the set's first tile reads the others' behind its runs
                            with m.If((j == set_last) | d.prefetch):
                                # (double-buffering engines' band registers went back to the first band when the
                                # last band was read, and may have read it behind the last set's runs: `ahead`)
                                reset_bands(loads=not p.double_bands)
                                next_band_state()
                            with m.Else():
                                m.next = "WEIGHTS_REQ"
            # -- the passes of one band and one lane group ------------------------------------------------
            with m.State("RUN_START"):
                m.d.comb += [self.busy.eq(1), start_run.eq(1), wb.run.eq(1), rom.load.eq(1)]
                # (after an early exit the previous run's last pass may not be drained yet: write-back finishes it
                # with the entries it copied, and copies this run's once it has)
                with m.If(~fetched):
                    m.d.comb += inbuf.run.eq(1)
                m.d.sync += [running.eq(1), prefetched.eq(0), fetched.eq(0),
                             refetch.eq(follows & ~d.residue_groups), overlap.eq(follows), early.eq(0)]
                with m.If(~resident):  # streamed: the group's weights are where the last fill put them
                    m.d.sync += lane_base.eq(fill_base << lw_log)
                # the next group's table, then (streamed, or a resident set's first tile) its weights: streamed
                # into the other half, resident into its slot
                with m.If(d.prefetch & follows):
                    read(table_ptr_next, group_tgb)
                    m.d.sync += [pf_table.eq(1), prefetched.eq(1), early.eq(1)]
                    with m.If(~resident):
                        m.d.sync += fill_base.eq(group_words - fill_base)
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                # the band's (tile's, resident set's) next group starts once this one's last pass is drained
                # (the writer sends its last rows meanwhile, and the request stream stays shared), or, its
                # loads prefetched (`early`), once that pass has issued; the band's last group waits until its
                # rows are written (the next band changes the writer's row shape). The exit waits for the
                # writer to have taken this group (`~pending`): next_group changes its address and lanes
                # a band read behind the runs starts before the last issue (no run exits before it), and the exit
                # waits for the read in flight
                exits = (Mux(early, last_issued & ~wb.pending, Mux(overlap, wb.drained & ~wb.pending, wb.done))
                         & ~pf_table & ~pf_weights)
                if p.double_bands:
                    m.d.comb += load_port.eq(~last_issued)
                    exits &= ~pf_input
                with m.If(exits):
                    with m.If(~overlap):
                        m.d.sync += running.eq(0)
                    with m.If(prefetched):  # the table read during the run (write-back copied this run's)
                        m.d.sync += table.eq(table_next)
                    next_group()
                    m.next = "RESIDUES"
                    with m.If(early & ~d.residue_groups):  # the next group's residue step now, and its RUN_START
                        m.d.comb += rom.group_step.eq(1)
                        m.next = "RUN_START"
                    with m.If(resident):
                        m.d.sync += [j.eq(j + 1), set_end.eq(next_set_end),
                                     lane_base.eq(lane_base + (group_words << lw_log))]
                        with m.If(set_end):
                            m.d.sync += set_fill.eq(0)
                            with m.If(~last_tile):
                                next_tile()
                                next_band_state()
                            with m.Elif(last_group):
                                m.next = "DONE"
                            with m.Else():
                                m.next = "SET_START"
                    with m.Elif(last_group):
                        next_tile()
                        next_band_state()
                        with m.If(last_tile):
                            m.next = "DONE"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"

        # -- prefetch, while a run computes: the next group's table, then its weights ------------------------
        with m.If(pf_table):
            m.d.comb += self.rd.ready.eq(1)
            with m.If(rd_beat):
                m.d.sync += table_next.eq(table_beat(table_next))
                count_beat(group_tgb)
                with m.If(got_last):
                    m.d.sync += pf_table.eq(0)
                    with m.If(~resident | set_fill):
                        # a resident set's `weight_ptr` and `fill_base` are the next group's (its loads advance them)
                        m.d.sync += pf_weights.eq(1)
                        m.d.comb += wbuf.fill_start.eq(1)
                        read(Mux(resident, weight_ptr, weight_ptr_next), d.weight_group_beats)
                        with m.If(resident):
                            m.d.sync += [fill_base.eq(fill_base + group_words), weight_ptr.eq(weight_ptr_next)]
        with m.If(pf_weights):
            m.d.comb += [self.rd.ready.eq(1), wbuf.fill.valid.eq(self.rd.valid)]
            with m.If(rd_beat):
                count_beat(d.weight_group_beats)
                with m.If(got_last):
                    m.d.sync += pf_weights.eq(0)
        if p.double_bands:
            # -- the next band's input, behind the runs: a channel at a time while the port is free ------------
            with m.If(load_port & band_pending & ~pf_input & ~pf_table & ~pf_weights):
                m.d.comb += inbuf.fill_start.eq(1)
                m.d.sync += pf_input.eq(1)
                read(in_ptr, chan_beats)
            with m.If(pf_input):
                m.d.comb += [self.rd.ready.eq(1), inbuf.fill.valid.eq(self.rd.valid)]
                with m.If(rd_beat):
                    count_beat(chan_beats)
                    with m.If(got_last):
                        m.d.sync += pf_input.eq(0)
                        next_channel()
                        with m.If(in_c == last_channel):
                            m.d.sync += [band_pending.eq(0), more.eq(band_loaded())]
        return m
