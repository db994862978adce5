"""The engine's top level: layer control around the buffers, the MAC array and write-back.

Sequence per layer (started by a one-cycle `start` with `desc_addr`):
  1. read the 64-byte descriptor;
  2. read the whole input tensor into the input buffer (the generator checks it fits);
  3. per lane group of `m_lanes` output channels: read its bias/requant table and its packed
     weights, step the lane residues, then run every pass (output row x lane group of pixels);
     write-back streams finished rows out while the next are computed. Groups are contiguous
     channels, or (`residue_groups`) channels `r + (k0 + m) * P` of one residue class `r` after
     the other: then every lane shares the residue and each channel steps its pattern's taps;
  4. one-cycle `done` after the last write beat is accepted.
So every tensor crosses the DRAM interface exactly once; `schedule.py` counts the same bytes.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from . import descriptor
from .dma import REQUEST, Reader
from .input_buffer import InputBuffer
from .layout import TABLE_ENTRY_BYTES, ceil_div, table_group_beats
from .mac_array import MacArray
from .params import ADDR_BITS, EngineParams
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
        desc_raw = Signal(desc_beats * p.bus_bits)
        d = descriptor.LAYOUT(desc_raw[:descriptor.LAYOUT.size])
        tgb = table_group_beats(p)
        table = Signal(tgb * p.bus_bits)

        # layer constants, computed once after the descriptor arrives
        input_beats = Signal(32)
        row_bytes = Signal(ADDR_BITS)
        plane_bytes = Signal(ADDR_BITS)
        lane_bytes = Signal(ADDR_BITS)  # output address stride between the lanes of a group
        # lane group state
        group = Signal(16)
        lanes_left = Signal(16)
        weight_ptr = Signal(ADDR_BITS)
        table_ptr = Signal(ADDR_BITS)
        out_ptr = Signal(ADDR_BITS)
        # residue groups: the current class, its first output plane, and whether this group starts it
        res_class = Signal(8)
        class_ptr = Signal(ADDR_BITS)
        class_start = Signal()
        got = Signal(32)  # data beats received in the current load
        k = Signal(range(lanes + 1))

        rd_beat = self.rd.valid & self.rd.ready

        # -- datapath wiring ------------------------------------------------------------------------
        m.d.comb += [
            inbuf.fill.payload.eq(self.rd.payload), wbuf.fill.payload.eq(self.rd.payload),
            inbuf.row_beats.eq(d.in_row_beats), inbuf.channels.eq(d.channels), inbuf.height.eq(d.height),
            inbuf.width.eq(d.width), inbuf.out_height.eq(d.out_height), inbuf.x_groups.eq(d.x_groups),
            inbuf.stride2.eq(d.stride2), inbuf.kernel1x1.eq(d.kernel1x1), inbuf.residue_groups.eq(d.residue_groups),
            inbuf.group_index.eq(rom.group_index), inbuf.table_base.eq(d.table_base), inbuf.period.eq(d.period),
        ]
        wiring.connect(m, inbuf.window, mac.window)
        wiring.connect(m, mac.result, wb.result)
        m.d.comb += [
            mac.channels.eq(d.channels), mac.stride2.eq(d.stride2),
            mac.steps.eq(Mux(d.residue_groups, rom.steps, d.taps) if p.sparse else d.taps),
            mac.in_signed.eq(d.in_signed),
            wbuf.addr.eq(mac.weight_addr), mac.weights.eq(wbuf.data),
            mac.dense.eq(d.dense), mac.kernel1x1.eq(d.kernel1x1), mac.library.eq(d.library),
            wbuf.id_words.eq(d.id_words), wbuf.id_addr.eq(mac.id_addr), wbuf.id_en.eq(mac.id_en),
            mac.ids.eq(wbuf.ids),
            rom.table_base.eq(d.table_base), rom.period.eq(d.period), rom.issue.eq(mac.issue),
            rom.chan_done.eq(mac.chan_done), rom.pass_done.eq(mac.pass_done), mac.select.eq(rom.select),
            wb.lo.eq(d.lo), wb.hi.eq(d.hi), wb.out_width.eq(d.out_width), wb.out_height.eq(d.out_height),
            wb.x_groups.eq(d.x_groups), wb.row_beats.eq(d.out_row_beats), wb.row_bytes.eq(row_bytes),
            wb.plane_bytes.eq(lane_bytes), wb.group_addr.eq(out_ptr),
            wb.lanes_valid.eq(Mux(lanes_left < lanes, lanes_left, lanes)),
            wb.wr.ready.eq(self.wr.ready), self.wr.valid.eq(wb.wr.valid), self.wr.payload.eq(wb.wr.payload),
        ]
        for lane in range(lanes):
            entry = table.word_select(lane, TABLE_ENTRY_BYTES * 8)
            m.d.comb += [mac.bias[lane].eq(entry[0:32]), wb.multiplier[lane].eq(entry[32:47]),
                         wb.shift[lane].eq(entry[48:54]), wb.half_even[lane].eq(entry[56])]

        # the request stream belongs to write-back while a lane group runs, else to the reader
        running = Signal()
        with m.If(running):
            m.d.comb += [self.req.valid.eq(wb.req.valid), self.req.payload.eq(wb.req.payload),
                         wb.req.ready.eq(self.req.ready)]
        with m.Else():
            m.d.comb += [self.req.valid.eq(reader.req.valid), self.req.payload.eq(reader.req.payload),
                         reader.req.ready.eq(self.req.ready)]

        def read(addr, beats):
            m.d.comb += [reader.start.eq(1), reader.addr.eq(addr), reader.beats.eq(beats)]
            m.d.sync += got.eq(0)

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
                    input_beats.eq(d.channels * d.height * d.in_row_beats),
                    row_bytes.eq(d.out_row_beats * bb),
                    plane_bytes.eq(d.out_height * d.out_row_beats * bb),
                    lane_bytes.eq(d.out_height * d.out_row_beats * bb * Mux(d.residue_groups, d.period, 1)),
                    group.eq(0), weight_ptr.eq(d.weight_addr),
                    table_ptr.eq(d.table_addr), out_ptr.eq(d.out_addr),
                    res_class.eq(0), class_ptr.eq(d.out_addr), class_start.eq(0),
                    lanes_left.eq(Mux(d.residue_groups, d.class_channels + (d.class_extra != 0), d.out_channels)),
                ]
                m.d.comb += [inbuf.fill_start.eq(1), rom.group_clear.eq(1)]
                m.next = "INPUT_REQ"
            with m.State("INPUT_REQ"):
                m.d.comb += self.busy.eq(1)
                read(d.in_addr, input_beats)
                m.next = "INPUT"
            with m.State("INPUT"):
                m.d.comb += [self.busy.eq(1), self.rd.ready.eq(1), inbuf.fill.valid.eq(self.rd.valid)]
                with m.If(rd_beat):
                    m.d.sync += got.eq(got + 1)
                    with m.If(got == input_beats - 1):
                        m.d.sync += k.eq(0)
                        m.next = "RESIDUES"
            with m.State("RESIDUES"):
                # lane m's group residue must become (group * lanes + m) % P: the first group
                # steps lane m m times (a staircase), later groups step every lane `lanes` times;
                # residue groups share one residue: every lane steps once when a group starts a class
                m.d.comb += self.busy.eq(1)
                sl = p.select_lanes
                stair = Cat(Const(0, 1), *(k < lane for lane in range(1, sl)))
                contiguous = Mux(group == 0, stair, (1 << sl) - 1)
                m.d.comb += rom.group_step.eq(Mux(d.residue_groups, Mux(class_start & (k == 0), (1 << sl) - 1, 0),
                                                  contiguous))
                m.d.sync += k.eq(k + 1)
                with m.If(k == lanes - 1):
                    read(table_ptr, tgb)
                    m.next = "TABLE"
            with m.State("TABLE"):
                m.d.comb += [self.busy.eq(1), self.rd.ready.eq(1), rom.load.eq(1)]
                with m.If(rd_beat):
                    m.d.sync += [got.eq(got + 1), table.eq(Cat(table[p.bus_bits:], self.rd.payload)
                                                           if tgb > 1 else self.rd.payload)]
                    with m.If(got == tgb - 1):
                        m.next = "WEIGHTS_REQ"
            with m.State("WEIGHTS_REQ"):
                m.d.comb += [self.busy.eq(1), wbuf.fill_start.eq(1)]
                read(weight_ptr, d.weight_group_beats)
                m.next = "WEIGHTS"
            with m.State("WEIGHTS"):
                m.d.comb += [self.busy.eq(1), self.rd.ready.eq(1), wbuf.fill.valid.eq(self.rd.valid)]
                with m.If(rd_beat):
                    m.d.sync += got.eq(got + 1)
                    with m.If(got == d.weight_group_beats - 1):
                        m.next = "RUN_START"
            with m.State("RUN_START"):
                m.d.comb += [self.busy.eq(1), inbuf.run.eq(1), wb.run.eq(1)]
                m.d.sync += running.eq(1)
                m.next = "RUN"
            with m.State("RUN"):
                m.d.comb += self.busy.eq(1)
                with m.If(wb.done):
                    m.d.sync += [
                        running.eq(0), group.eq(group + 1), lanes_left.eq(lanes_left - lanes), k.eq(0),
                        weight_ptr.eq(weight_ptr + d.weight_group_beats * bb), table_ptr.eq(table_ptr + tgb * bb),
                        out_ptr.eq(out_ptr + lane_bytes * lanes), class_start.eq(0),
                    ]
                    with m.If(d.residue_groups & (lanes_left <= lanes)):  # the class is done: the next one
                        m.d.sync += [
                            res_class.eq(res_class + 1), class_ptr.eq(class_ptr + plane_bytes),
                            out_ptr.eq(class_ptr + plane_bytes), class_start.eq(1),
                            lanes_left.eq(d.class_channels + (res_class + 1 < d.class_extra)),
                        ]
                    with m.If(group == d.m_groups - 1):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "RESIDUES"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        return m
