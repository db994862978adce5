"""The input buffer: one row band (or column tile of one) of the input tensor on chip, rows packed into words, and the window fetch.

Storage: a word holds `2**slot_shift` rows of the layer, or of the column tile being run (each in
a power-of-two slot of beats; one row per word for the widest layer). A column tile's rows hold
its columns only (the fill shifts each row by `col_shift` elements, see `col_shift`): element 0
of a slot is input column `col_origin`. Row
`(c, y)` of a band sits in slot `c * chan_rows + (y - row_origin)`, `row_origin` being the band's
first loaded row: every input channel gets
`chan_rows` slots, and the engine fills them channel by channel (`fill_start` with the channel's
first slot, then the beats of its rows, one SRAM write per beat). A beat carries
`params.beat_elems` activations (several per byte at A <= 4, `memory_map`); the fill keeps the low
A bits of each field, so the buffer holds A bits per element whatever the DRAM packing. Rows above
or below the tensor are never loaded: the fetch reads some other slot for them and zeroes the row
as padding.

Fetching: for every pass (output row `oy` of the band, lane group of `x_lanes` outputs, input
channel `c`; the pixel groups of a column tile start at its output column `x_start / stride`) the
fetch reads the input rows of the window, one per cycle, cuts out the `win_cols`
columns the lane group needs, zeroes what lies in the padding, and offers the window on a stream.
A window is `kernel_max` rows around the output row (`kernel_max // 2` above); a layer of a smaller
k x k kernel reads only the k rows in its middle (the centre row for 1x1 kernels), the others keep
stale data no tap selects. The compute consumes one window per input channel while the next is
being fetched, so a window costs k cycles against `taps` (k * k dense) cycles of compute.
A residue-grouped layer's lanes share one pattern per channel, so the fetch reads only the rows
that pattern touches (its ROM index walks the channels like the lanes' residues; rows outside
the span hold stale data no tap selects): a PSD layer's 1-tap kernels cost 1 read, not 3.
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..engine.params import EngineParams
from ..engine.plan import row_span
from .pattern_rom import select_bits
from .sram import Sram


class InputBuffer(wiring.Component):
    def __init__(self, params: EngineParams):
        self.p = params
        a = params.act_bits
        super().__init__({
            "fill": In(stream.Signature(params.bus_bits)),
            "fill_start": In(1),  # restart filling at slot `fill_slot`
            "fill_slot": In(32),
            "row_beats": In(16),
            "slot_shift": In(4),  # log2 rows per word
            "chan_rows": In(16),  # slots per input channel
            "y_start": In(signed(18)),  # first output row of the band * stride - kernel_max // 2 (window's top row)
            # the slot of channel 0's row y_start: y_start - the input row in each channel's first slot (the
            # band's first loaded row)
            "first_slot": In(signed(18)),
            "channels": In(16),
            "height": In(16),
            "width": In(16),
            "out_height": In(16),  # output rows of the band
            "x_groups": In(16),  # lane groups of output pixels of the tile
            "x_start": In(16),  # the tile's first output column * stride (0 unless column tiles)
            "col_origin": In(16),  # the input column in each slot's first element (the tile's first)
            # column tiles: the first column's place in its beat (the fill shifts the row by it), and
            # whether a row's last beat leaves a slot beat to write after it (one read per row: the
            # cycle after a row's last beat carries no fill beat)
            "col_shift": In(range(params.beat_elems)),
            "col_flush": In(1),
            "stride2": In(1),
            "kernel1x1": In(1),
            "residue_groups": In(1),  # read only the rows of each channel's pattern (see the module doc)
            "group_index": In(select_bits(params)),  # ROM index of the group's pattern on channel 0
            "table_base": In(8),
            "period": In(8),
            "run": In(1),  # fetch every window of one lane group's passes
            "fetching": Out(1),  # the walk of a run's windows has row reads left to issue
            "window": Out(stream.Signature(params.kernel_max * params.win_cols * a)),
            # k // 2 of the layer's k x k kernel (engines for 3x3 at most tell 1x1 by kernel1x1 alone)
            **({"kernel_half": In(2)} if params.kernel_max > 3 else {}),
            # a folded layer's passes are x_lanes / 2 pixels apart (engines with a folded layer, `plan.can_fold`)
            **({"fold": In(1)} if params.fold > 1 else {}),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        a, be, cols, kmax = p.act_bits, p.beat_elems, p.win_cols, p.kernel_max
        half_max = kmax // 2
        wbl = p.word_beats.bit_length() - 1
        m.submodules.mem = mem = Sram(p.row_elems * a, p.input_words, granularity=be * a, cells=p.sram_cells)

        # -- fill: each beat is one write into its row's slot ------------------------------------------
        beat_in_row = Signal(16)
        slot = Signal(32)
        slot_beat = Signal(wbl + 1)  # the row's first beat within its word
        slot_mask = Signal(16)
        slot_log2 = Signal(4)  # log2 of a slot's beats
        # layer constants in registers (slot_shift is a descriptor field, loaded cycles before a fill or run):
        # the read's slot offset into b_offset then starts at flip-flops, not at the descriptor's `- 1` carry
        # chain (main's 79.95 MHz critical path, seed 1)
        m.d.sync += [slot_mask.eq((1 << self.slot_shift) - 1), slot_log2.eq(wbl - self.slot_shift)]
        m.d.comb += slot_beat.eq((slot & slot_mask) << slot_log2)
        # the row's last beat, a cycle behind `row_beats` (set at least three cycles before a fill's first beat): the
        # row end that resets `flush` meets an equality of registers, not the `- 1` carry chain (main's 91.73 MHz
        # path, seed 1)
        row_last = Signal.like(self.row_beats)
        m.d.sync += row_last.eq(self.row_beats - 1)
        beat_elems = Cat(self.fill.payload.word_select(i, p.act_field_bits)[:a] for i in range(be))
        # a column tile's row starts `col_shift` elements into its first beat: slot beat j is elements
        # col_shift .. of read beats j and j + 1, written when beat j + 1 (or, flushing, nothing) arrives
        prev = Signal(be * a)
        shifted = Signal(be * a)
        flush = Signal()
        flush_addr = Signal.like(mem.wr_addr)
        flush_beat = Signal(wbl + 1)
        shifting = self.col_shift != 0
        m.d.comb += [self.fill.ready.eq(1),
                     shifted.eq(Cat(prev, Mux(flush, 0, beat_elems)).bit_select(self.col_shift * a, be * a)),
                     mem.wr_addr.eq(Mux(flush, flush_addr, slot >> self.slot_shift)),
                     mem.wr_data.eq(Mux(shifting, shifted, beat_elems).replicate(p.word_beats))]
        m.d.sync += flush.eq(0)
        with m.If(flush):
            m.d.comb += mem.wr_en.eq(1 << flush_beat)
        with m.If(self.fill_start):
            m.d.sync += [beat_in_row.eq(0), slot.eq(self.fill_slot)]
        with m.Elif(self.fill.valid):
            m.d.sync += prev.eq(beat_elems)
            with m.If(~shifting):
                m.d.comb += mem.wr_en.eq(1 << (slot_beat + beat_in_row)[:wbl + 1])
            with m.Elif(beat_in_row != 0):
                m.d.comb += mem.wr_en.eq(1 << (slot_beat + beat_in_row - 1)[:wbl + 1])
            with m.If(beat_in_row == row_last):
                m.d.sync += [beat_in_row.eq(0), slot.eq(slot + 1),
                             flush.eq(shifting & self.col_flush), flush_addr.eq(slot >> self.slot_shift),
                             flush_beat.eq((slot_beat + beat_in_row)[:wbl + 1])]
            with m.Else():
                m.d.sync += beat_in_row.eq(beat_in_row + 1)

        # -- fetch, stage A: walk (oy, x group, c, ky) and issue row reads -----------------------------
        active = Signal()
        m.d.comb += self.fetching.eq(active)
        oy = Signal(16)
        xg = Signal(16)
        c = Signal(16)
        ky = Signal(range(kmax))
        y_base = Signal(signed(18))  # oy * stride - kernel_max // 2
        # the read address's slot, c * chan_rows + y_base - row_origin, and its c = 0 value, kept in
        # registers so that a row read adds only ky (no adder chain in front of the buffer's address)
        slot_base = Signal(32)
        row_base = Signal(32)
        x_base = Signal(16)  # first window column + kernel_max // 2 (columns left of 0 are padding)
        x_start = Signal(16)
        # the ROM index of the channel being fetched, walked like the lanes' residues
        f_index = Signal.like(self.group_index)
        f_end = Signal(len(self.group_index) + 1)
        m.d.sync += f_end.eq(self.table_base + self.period)
        f_next = Mux(f_index + 1 == f_end, self.table_base, f_index + 1)
        # a 3x3 pattern's rows sit (kernel_max - 3) // 2 rows into the window
        off3 = (kmax - 3) // 2
        spans = [row_span(mask) for mask in p.patterns] if p.sparse and p.patterns else [(0, 2)]
        firsts = Array(Const(f + off3, len(ky)) for f, _ in spans)
        lasts = Array(Const(la + off3, len(ky)) for _, la in spans)
        if kmax > 3:
            dense_first, dense_last = half_max - self.kernel_half, half_max + self.kernel_half
        else:
            dense_first, dense_last = 0, 2

        singles = Array(Const(f == la) for f, la in spans)
        dense_single = (self.kernel_half == 0) if kmax > 3 else Const(0)

        def ky_first(index):
            return Mux(self.kernel1x1, half_max, Mux(self.residue_groups, firsts[index], dense_first))

        def ky_single(index):
            """The channel's pattern reads one row: its first ky is its last."""
            return self.kernel1x1 | Mux(self.residue_groups, singles[index], dense_single)

        ky_last = Mux(self.kernel1x1, half_max, Mux(self.residue_groups, lasts[f_index], dense_last))
        # each loop counter's "at its last value" as a flag beside it, loaded with the counter from the
        # limit - 2 (or limit == 1 when it wraps), so that the walk's next state meets flags, not
        # compares chained through the loop nest; the limits, one cycle behind their ports, are set
        # long before a run
        ky_at_last, c_at_last, xg_at_last, oy_at_last = Signal(), Signal(), Signal(), Signal()
        c_penult, xg_penult, oy_penult = Signal(16), Signal(16), Signal(16)
        one_c, one_xg, one_oy = Signal(), Signal(), Signal()
        m.d.sync += [c_penult.eq(self.channels - 2), one_c.eq(self.channels == 1),
                     xg_penult.eq(self.x_groups - 2), one_xg.eq(self.x_groups == 1),
                     oy_penult.eq(self.out_height - 2), one_oy.eq(self.out_height == 1)]
        # the channel after the one being fetched: the next in the pass, or the next pass's first
        next_index = Mux(c_at_last, self.group_index, f_next)
        y = Signal(signed(18))
        m.d.comb += y.eq(y_base + ky)

        # stage B: the row read issued last cycle is on mem.rd_data
        b_valid = Signal()
        b_ky = Signal.like(ky)
        b_last = Signal()
        stall = Signal()
        advance = ~stall
        rd_slot = Signal(32)
        m.d.comb += [rd_slot.eq(slot_base + ky),
                     mem.rd_en.eq(advance), mem.rd_addr.eq(rd_slot >> self.slot_shift)]
        with m.If(advance):
            m.d.sync += [b_valid.eq(active), b_ky.eq(ky), b_last.eq(ky_at_last)]

        # where the window lies in the read word: its first column's offset, and which of its columns are
        # inside the row (column x + j - kernel_max // 2; outside 0 .. width-1 it is padding or a
        # neighbouring slot), registered beside the read data so that they meet only a shifter and an AND
        right = self.width if half_max == 1 else self.width + (half_max - 1)
        c_offset = Signal(range(p.row_elems + (1 << 16)))
        c_keep = Signal(cols)

        def place(slot, row, x):
            """The window's (offset, keep) for a read of `slot`, input row `row`, first column `x`."""
            slot_elems = ((slot & slot_mask) << slot_log2) * be  # the row's first element within the word
            return ((slot_elems + x - self.col_origin)[:len(c_offset)],
                    Cat((row >= 0) & (row < self.height) & (x + j >= half_max) & (x + j <= right) for j in range(cols)))

        if "read" in p.mac_cuts:
            # the `read` cut (`params.mac_cuts`): stage C, the read data registered once more, so the buffer's
            # output meets a register, not the shifter; it advances with stage B. The window's place is
            # computed from B's copy of the read's slot, row and first column, so the read's carry chains
            # (`slot_base + ky`, `y_base + ky`) and the place's (shift, adds, compares) are in two cycles
            b_slot, b_row, b_x = Signal(16), Signal.like(y), Signal.like(x_base)
            c_valid, c_ky, c_last = Signal(), Signal.like(ky), Signal()
            c_data = Signal.like(mem.rd_data)
            c_place = place(b_slot, b_row, b_x)
            with m.If(advance):
                m.d.sync += [b_slot.eq(rd_slot), b_row.eq(y), b_x.eq(x_base),
                             c_valid.eq(b_valid), c_ky.eq(b_ky), c_last.eq(b_last), c_data.eq(mem.rd_data)]
        else:
            c_valid, c_ky, c_last, c_data = b_valid, b_ky, b_last, mem.rd_data
            c_place = place(rd_slot, y, x_base)
        with m.If(advance):
            m.d.sync += [c_offset.eq(c_place[0]), c_keep.eq(c_place[1])]
        m.d.comb += stall.eq(c_valid & c_last & self.window.valid & ~self.window.ready)

        x_step = Mux(self.stride2, 2 * p.x_lanes, p.x_lanes)
        if p.fold > 1:
            x_step = Mux(self.fold, Mux(self.stride2, p.x_lanes, p.x_lanes // 2), x_step)
        # a run comes while the fetch is idle (its previous run's windows have all been issued), so the walk's
        # registers load their start values in every idle cycle, the run's included, and `run` only sets `active`:
        # the ~200 loads are enabled by a flip-flop, not by the engine's run condition (the worst paths of main's
        # seeds 2 and 3 and of the cuts before this one: the engine's state and flags -> `run` -> the resets of
        # `oy` and `c`, the enable of `row_base`)
        with m.If(~active):
            m.d.sync += [oy.eq(0), xg.eq(0), c.eq(0), y_base.eq(self.y_start),
                         x_base.eq(self.x_start), x_start.eq(self.x_start),
                         row_base.eq(self.first_slot), slot_base.eq(self.first_slot),
                         f_index.eq(self.group_index), ky.eq(ky_first(self.group_index)),
                         ky_at_last.eq(ky_single(self.group_index)), c_at_last.eq(one_c), xg_at_last.eq(one_xg),
                         oy_at_last.eq(one_oy)]
            with m.If(self.run):
                m.d.sync += active.eq(1)
        with m.Elif(advance):
            with m.If(~ky_at_last):
                m.d.sync += [ky.eq(ky + 1), ky_at_last.eq(ky + 1 == ky_last)]
            with m.Else():
                m.d.sync += [ky.eq(ky_first(next_index)), ky_at_last.eq(ky_single(next_index)), c.eq(c + 1),
                             c_at_last.eq(c == c_penult), slot_base.eq(slot_base + self.chan_rows),
                             f_index.eq(next_index)]
                with m.If(c_at_last):
                    m.d.sync += [c.eq(0), c_at_last.eq(one_c), slot_base.eq(row_base), xg.eq(xg + 1),
                                 xg_at_last.eq(xg == xg_penult),
                                 x_base.eq(x_base + x_step)]
                    with m.If(xg_at_last):
                        row_step = Mux(self.stride2, 2, 1)
                        m.d.sync += [xg.eq(0), xg_at_last.eq(one_xg), x_base.eq(x_start), oy.eq(oy + 1),
                                     oy_at_last.eq(oy == oy_penult), y_base.eq(y_base + row_step),
                                     row_base.eq(row_base + row_step), slot_base.eq(row_base + row_step)]
                        with m.If(oy_at_last):
                            m.d.sync += active.eq(0)

        # stage B (C with the `read` cut): cut the window's columns out of the row, zero the padding
        padded = Cat(Const(0, half_max * a), c_data, Const(0, cols * a))
        segment = padded.bit_select(c_offset * a, cols * a)
        cut = Signal(cols * a)
        m.d.comb += cut.eq(Cat(Mux(c_keep[j], segment.word_select(j, a), 0) for j in range(cols)))
        rows = [Signal(cols * a, name=f"row{i}") for i in range(kmax - 1)]
        with m.If(self.window.valid & self.window.ready):
            m.d.sync += self.window.valid.eq(0)
        with m.If(advance & c_valid):
            with m.If(c_last):
                m.d.sync += [
                    self.window.valid.eq(1),
                    self.window.payload.eq(Mux(self.kernel1x1,
                                               Cat(Const(0, half_max * cols * a), cut, Const(0, half_max * cols * a)),
                                               Cat(*(Mux(c_ky == i, cut, rows[i]) for i in range(kmax - 1)),
                                                   Mux(c_ky == kmax - 1, cut, 0)))),
                ]
            for i in range(kmax - 2):
                with m.Elif(c_ky == i):
                    m.d.sync += rows[i].eq(cut)
            with m.Else():
                m.d.sync += rows[kmax - 2].eq(cut)
        return m
