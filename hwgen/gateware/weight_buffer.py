"""The weight buffer: lane groups' packed weights, read one `m_lanes`-byte word per tap step.

It holds one lane group (streamed weights) or several (resident lane groups, see the engine): a
fill starts at memory word `fill_base` and reads are offset by `read_base` lane words.

DRAM beats and weight words rarely have the same width; the memory word is the wider of the two
(both are powers of two), so filling gathers beats into a word, and reading selects a word out
of a memory word. Weights stay bytes here; each lane keeps the low `weight_bits` bits.

Packed weights (`params.weight_pack` = 8 // W > 1, for W = 2 and 4): a beat carries `weight_pack`
times as many weights, field `i` at bits `i*W ..`; the fill path spreads field `i` to byte `i`
(plain wiring, one beat per cycle), so the memory word holds at least one unpacked beat.

Pattern library layers send `id_words` memory words of kernel ids first; they fill a second
buffer, read once per input channel (`id_addr`, `id_en`), while the weights fill the first.
"""

from __future__ import annotations

from amaranth.hdl import C, Cat, Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from ..engine.params import EngineParams
from .sram import Sram


class WeightBuffer(wiring.Component):
    def __init__(self, params: EngineParams):
        self.p = params
        self.word_bytes, self.depth = params.weight_word_bytes, params.weight_mem_depth
        self.unpacked_bits = params.bus_bits * params.weight_pack  # a fill beat spread to one byte per weight
        self.beats_per_word = params.weight_beats_per_word
        self.lane_words_per_word = self.word_bytes // params.m_lanes
        super().__init__({
            "fill": In(stream.Signature(params.bus_bits)),
            "fill_start": In(1),
            "fill_base": In(range(self.depth)),  # memory word of the group's first weights
            "addr": In(range(params.weight_depth * params.fold)),  # lane word within the group: (c * taps + t) * fold
            "read_base": In(range(params.weight_mem_depth * (params.weight_word_bytes // params.m_lanes))),  # lane
            # word of the group's first weights
            # the lane word at last cycle's addr, and in an engine with a folded layer the next one beside it
            # (a folded step's other `m_lanes` channels; its addr is even, so both are in one memory word)
            "data": Out(params.m_lanes * params.fold * 8),
            "id_words": In(16),  # memory words of kernel ids at the start of the fill
            "id_addr": In(range(params.max_channels)),  # input channel
            "id_en": In(1),
            "ids": Out(params.m_lanes * 8),  # the channel's ROM index per lane, held while id_en is low
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        beat_writes = p.weight_write_bits < self.word_bytes * 8  # each beat written into its part of the word
        m.submodules.mem = mem = Sram(self.word_bytes * 8, self.depth, granularity=p.weight_write_bits if beat_writes
                                      else None, cells=p.sram_cells)

        gathered = Signal(self.word_bytes * 8)
        beat = Signal(range(self.beats_per_word + 1))
        waddr = Signal(range(self.depth + 1))
        w = 8 // p.weight_pack
        unpacked = Cat(*(Cat(self.fill.payload[i * w:(i + 1) * w], C(0, 8 - w))
                         for i in range(self.unpacked_bits // 8))) if p.weight_pack > 1 else self.fill.payload
        # beats arrive low bytes first: shift each new beat in at the top
        shifted = Cat(gathered[self.unpacked_bits:], unpacked) if self.beats_per_word > 1 else unpacked
        ids_left = Signal(16)  # id words still to come in this fill
        to_ids = ids_left != 0
        m.d.comb += [self.fill.ready.eq(1), mem.wr_addr.eq(waddr),
                     mem.wr_data.eq(unpacked.replicate(self.beats_per_word) if beat_writes else shifted)]
        if p.library:
            m.submodules.id_mem = id_mem = Sram(self.word_bytes * 8, p.id_mem_depth, cells=p.sram_cells)
            m.d.comb += [id_mem.wr_addr.eq(waddr), id_mem.wr_data.eq(shifted)]
        with m.If(self.fill_start):
            m.d.sync += [beat.eq(0), waddr.eq(self.fill_base), ids_left.eq(self.id_words)]
        with m.Elif(self.fill.valid):
            m.d.sync += gathered.eq(shifted)
            if beat_writes:
                with m.If(~to_ids):
                    m.d.comb += mem.wr_en.eq(1 << beat)
            with m.If(beat == self.beats_per_word - 1):
                m.d.sync += [beat.eq(0), waddr.eq(waddr + 1)]
                if p.library:
                    with m.If(to_ids):
                        m.d.comb += id_mem.wr_en.eq(1)
                        m.d.sync += ids_left.eq(ids_left - 1)
                        with m.If(ids_left == 1):
                            m.d.sync += waddr.eq(self.fill_base)  # weights start at the base
                if not beat_writes:
                    with m.If(~to_ids):
                        m.d.comb += mem.wr_en.eq(1)
            with m.Else():
                m.d.sync += beat.eq(beat + 1)

        addr = Signal(range(self.depth * self.lane_words_per_word))
        m.d.comb += addr.eq(self.addr + self.read_base)
        m.d.comb += self.data.eq(self._read(m, mem, addr, 1, p.fold))
        if p.library:
            m.d.comb += self.ids.eq(self._read(m, id_mem, self.id_addr, self.id_en))
        return m

    def _read(self, m, mem, addr, en, words=1):
        """`words` lane words from `addr` (lane words per memory word: a sync read, then a select; `addr` a
        multiple of `words` when they are used)."""
        k = self.lane_words_per_word
        shift = k.bit_length() - 1
        m.d.comb += [mem.rd_addr.eq(addr >> shift), mem.rd_en.eq(en)]
        if k == 1:
            return mem.rd_data
        sel = Signal(range(k))
        with m.If(en):
            m.d.sync += sel.eq(addr[:shift])
        lanes = self.p.m_lanes * 8
        if words == 1:
            return mem.rd_data.word_select(sel, lanes)
        return Cat(*(mem.rd_data.word_select(sel | w, lanes) for w in range(words)))
