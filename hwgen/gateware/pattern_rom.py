"""Per-lane pattern selection: the lane residues, and the patterns' tap orders (the "ROM").

Lane `m` of lane group `g` on input channel `c` uses pattern `table[(g * m_lanes + m + c) % P]`;
its `t`-th tap step visits the `t`-th tap of that pattern in raster order. Residues are kept per
lane and stepped, never divided, as ROM indices (`table_base + residue`, wrapping at
`table_base + P`, so no adder sits between residue and mux): `group_res` for `(g * m_lanes + m) % P`,
`res` for the current channel's. A lane group's residues are set in one cycle: the layer's first group
(`group_clear`) loads lane `m`'s `m % P`, every later one (`group_step`) adds `m_lanes % P` to each
(a constant per period, wrapping once at most). `select` is a lane's `res` for the step being accumulated
(one cycle after issue). Lanes `m` and `m + lane_period` (the lcm of the checkpoint's periods)
always hold the same residue, so only `select_lanes` residues and muxes are built.

In a residue-grouped layer every lane of a group holds the same residue, so the group steps the
current channel's pattern's own tap count: `last_step`, lane 0's pattern's taps minus one (a
constant per ROM entry, so no subtractor sits in front of the MAC array's issue), at issue time.

The tap orders themselves are constants of the generated engine (`tap_orders`): the MAC array
builds, per pixel lane, one candidate pixel per ROM pattern (`pattern's t-th tap` at step `t`,
shared by all lanes) and each lane picks among them with its ROM index. A lane's mux is then
as wide as the checkpoint's pattern count (4 for PS4_P4), not 9, and the ROM costs no memory.
"""

from __future__ import annotations

from amaranth.hdl import Array, Const, Module, Mux, Signal, unsigned
from amaranth.lib import data, wiring
from amaranth.lib.wiring import In, Out

from ..engine.params import EngineParams
from ..engine.plan import tap_order


def tap_orders(patterns) -> list[list[int]]:
    """Per ROM pattern, its taps in step order."""
    return [tap_order(mask) for mask in patterns]


def select_bits(params: EngineParams) -> int:
    return max(1, (params.rom_entries - 1).bit_length())


class PatternRom(wiring.Component):
    def __init__(self, params: EngineParams):
        self.p = params
        lanes = params.select_lanes
        super().__init__({
            "table_base": In(8),
            "period": In(8),
            # the lanes share one residue (residue-grouped layers): the first group's is 0, later groups step by 1
            "shared": In(1),
            "group_clear": In(1),  # group_res <- m % P (shared: 0)
            "group_step": In(1),  # group_res += m_lanes % P (shared: 1), mod P
            "save": In(1),  # saved <- group_res (the first group of resident lane groups)
            "restore": In(1),  # group_res <- saved (their next row band)
            "load": In(1),  # res <- group_res (start of a lane group)
            "issue": In(1),
            "chan_done": In(1),  # the issued step is a channel's last: res += 1
            "pass_done": In(1),  # the issued step is the pass's last: res <- group_res
            "select": Out(data.ArrayLayout(unsigned(select_bits(params)), lanes)),  # one cycle after issue
            "last_step": Out(4),  # taps of lane 0's pattern for the channel being issued, minus one
            "next_one_step": Out(1),  # lane 0's pattern on the next channel (of this pass or the next) has one tap
            "group_index": Out(select_bits(params)),  # lane 0's ROM index for the group's channel 0
        })

    def elaborate(self, platform):
        m = Module()
        if not self.p.sparse:
            return m  # a dense-only engine: every lane takes tap t

        bits = select_bits(self.p)
        end = Signal(bits + 1)  # one past the layer's last ROM pattern
        m.d.sync += end.eq(self.table_base + self.period)

        def inc(r):
            return Mux(r + 1 == end, self.table_base, r + 1)

        # the first group's lane residues and a group's step, constants per period (up to the ROM's entries)
        periods = range(self.p.rom_entries + 1)
        jump = Signal(bits)
        m.d.comb += jump.eq(Mux(self.shared, 1, Array(Const(self.p.m_lanes % q if q else 0, bits) for q in periods)
                                [self.period]))

        last_steps = Array(Const(bin(mask).count("1") - 1, 4) for mask in self.p.patterns)  # per ROM index
        one_step = Array(Const(bin(mask).count("1") == 1, 1) for mask in self.p.patterns)
        for lane in range(self.p.select_lanes):
            group_res = Signal(bits, name=f"group_res{lane}")
            res = Signal(bits, name=f"res{lane}")
            saved = Signal(bits, name=f"saved{lane}")
            with m.If(self.save):
                m.d.sync += saved.eq(group_res)
            first = Mux(self.shared, 0, Array(Const(lane % q if q else 0, bits) for q in periods)[self.period])
            stepped = group_res + jump
            with m.If(self.group_clear):
                m.d.sync += group_res.eq(self.table_base + first)
            with m.Elif(self.restore):
                m.d.sync += group_res.eq(saved)
            with m.Elif(self.group_step):
                m.d.sync += group_res.eq(Mux(stepped >= end, stepped - self.period, stepped))
            with m.If(self.load | (self.issue & self.pass_done)):
                m.d.sync += res.eq(group_res)
            with m.Elif(self.issue & self.chan_done):
                m.d.sync += res.eq(inc(res))
            m.d.sync += self.select[lane].eq(res)
            if lane == 0 and self.p.patterns:
                m.d.comb += [self.last_step.eq(last_steps[res]), self.group_index.eq(group_res),
                             self.next_one_step.eq(one_step[Mux(self.pass_done, group_res, inc(res))])]
        return m
