"""The MAC array: `m_lanes` output channels x `x_lanes` output pixels, one tap step per cycle.

A pass computes the `m_lanes x x_lanes` outputs of one lane group at one output row: for each
input channel (one window from the input buffer) it runs `taps` steps; at each step every lane
reads its packed weight from the weight-buffer word, its tap from the pattern ROM, and selects
that tap's input pixel out of the window for each of its `x_lanes` pixels. All lanes of a
periodic layer have the same number of taps, so no lane idles. The first step of a pass starts the
accumulators from its products (write-back adds the bias); the last hands the accumulators to
write-back on the `result` stream.

Stages: issue (window taken, weight and ROM addresses); one cycle later, when the weight word
and taps are out of their memories, each pixel lane's candidate pixels (one per ROM pattern);
then each lane's choice among them, the multiply and the accumulate. `params.mac_cuts` puts a
FIFO (`params.window_depth` windows) between the input buffer and the issue (`window`: the buffer's fetch sees a
registered ready), and registers the path after the candidates (`candidates`), before the
multiply (`operands`: the DSP input registers) and after it (`product`: the DSP output
register; with `params.dsp == "ecp5"` both are the DSP cells' own registers, `gateware.dsp`); the
step's flags (first, last) travel with it, so each cut delays a run by one cycle and costs no
throughput.

The window is `kernel_max` rows of `win_cols` pixels; a k x k kernel sits in its middle
(`EngineParams.window_tap`), and a dense layer's step `t` is its raster tap `t`.

A folded layer (`fold`, `plan.can_fold`) runs passes of `x_lanes / 2` pixels: lane `m`'s upper
pixel lanes take the lower ones' pixels and the step's second lane word (channel `m + m_lanes`).
"""

from __future__ import annotations

from amaranth.hdl import Array, Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..engine.params import EngineParams
from . import dsp
from .pattern_rom import select_bits, tap_orders
from .pipeline import cut


class MacArray(wiring.Component):
    def __init__(self, params: EngineParams):
        self.p = params
        lanes, xl, a = params.m_lanes, params.x_lanes, params.act_bits
        super().__init__({
            "window": In(stream.Signature(params.kernel_max * params.win_cols * a)),
            "last_channel": In(16),  # input channels - 1
            "last_step": In(8),  # tap steps per channel - 1
            "next_one_step": In(1),  # the channel after the one being issued has a single step
            "stride2": In(1),
            "in_signed": In(1),
            # no step issues: the windows waiting are the next lane group's, whose residues, weights and table
            # are not switched yet (a register of the engine's)
            "hold": In(1),
            # weight buffer and pattern ROM, read in the issue stage
            "weight_addr": Out(range(params.weight_depth * params.fold)),
            "weights": In(params.out_lanes * 8),
            "dense": In(1),  # taps in raster order (dense k x k) ...
            "kernel1x1": In(1),  # ... or the centre only (1x1), for every lane
            "issue": Out(1),
            "chan_done": Out(1),
            "pass_done": Out(1),
            "select": In(data.ArrayLayout(unsigned(select_bits(params)), params.select_lanes)),  # ROM pattern
            "library": In(1),  # lanes take their ROM pattern from the kernel ids instead
            "id_addr": Out(range(params.max_channels)),
            "id_en": Out(1),
            "ids": In(lanes * 8),  # from the weight buffer, one cycle after id_en
            "result": Out(stream.Signature(data.ArrayLayout(signed(params.acc_bits), lanes * xl))),
            # k // 2 of the layer's k x k kernel (engines for 3x3 at most tell 1x1 by kernel1x1 alone)
            **({"kernel_half": In(2)} if params.kernel_max > 3 else {}),
            # a folded layer (engines with one): lane m computes channel m + m_lanes on pixel lanes x_lanes / 2 ..,
            # at the pixels of lanes 0 .., with the step's second lane word of weights (see `plan.can_fold`)
            **({"fold": In(1)} if params.fold > 1 else {}),
        })

    def elaborate(self, platform):
        m = Module()
        p = self.p
        lanes, xl, a, cols, kmax = p.m_lanes, p.x_lanes, p.act_bits, p.win_cols, p.kernel_max

        # -- issue --------------------------------------------------------------------------------
        t = Signal(8)
        c = Signal(16)
        waddr = Signal.like(self.weight_addr)
        # t == 0, t == last_step and c == last_channel as registers, so the issue decision (which
        # enables the window register, the counters and the ROM) starts at flip-flops, not at compares:
        # each flag loads its next value at an issue, else re-reads its compare (a new layer or lane
        # group changes last_step / last_channel many cycles before the first window can arrive)
        first_t, last_t, last_c = Signal(init=1), Signal(), Signal()
        last_step = last_t & last_c
        s2_valid, s2_first, s2_last = Signal(), Signal(), Signal()
        # a pass's last step needs the result register free, counting last steps still in flight
        # in any stage (one-step passes: a 1x1 layer with one input channel)
        in_flight = [s2_last]
        last_in_flight = Signal()
        # the `window` cut: a FIFO between the input buffer and the issue, so the buffer's fetch sees a
        # registered ready (its level), not the issue logic; a window per cycle still passes. Its depth
        # (`params.window_depth`: 2, or 4 with residue-grouped layers) is how far the fetch runs ahead
        if p.window_depth:
            m.submodules.window_fifo = fifo = SyncFIFO(width=len(self.window.payload), depth=p.window_depth)
            m.d.comb += [fifo.w_data.eq(self.window.payload), fifo.w_en.eq(self.window.valid),
                         self.window.ready.eq(fifo.w_rdy)]
            next_valid, next_window, take = fifo.r_rdy, fifo.r_data, fifo.r_en
        else:
            next_valid, next_window, take = self.window.valid, self.window.payload, self.window.ready
        can_issue = ~self.hold & (~first_t | next_valid) & (~last_step | ~(self.result.valid | last_in_flight))
        window = Signal(kmax * cols * a)

        m.d.comb += [
            take.eq(can_issue & first_t),
            self.weight_addr.eq(waddr),
            self.issue.eq(can_issue),
            self.chan_done.eq(last_t),
            self.pass_done.eq(last_step),
            self.id_addr.eq(c),
            self.id_en.eq(can_issue & first_t),
        ]
        s2_step = Signal(range(p.window_taps + 1))
        m.d.sync += [s2_valid.eq(can_issue), s2_first.eq(can_issue & first_t & (c == 0)),
                     s2_last.eq(can_issue & last_step), s2_step.eq(t)]
        with m.If(can_issue):
            m.d.sync += [first_t.eq(last_t), last_t.eq(Mux(last_t, self.next_one_step, t + 1 == self.last_step))]
            with m.If(last_t):
                m.d.sync += last_c.eq(Mux(last_c, self.last_channel == 0, c + 1 == self.last_channel))
        with m.Else():
            m.d.sync += [last_t.eq(t == self.last_step), last_c.eq(c == self.last_channel)]
        with m.If(can_issue):
            with m.If(first_t):
                m.d.sync += window.eq(next_window)
            # a folded step reads two lane words
            m.d.sync += [t.eq(t + 1), waddr.eq(waddr + (Mux(self.fold, 2, 1) if p.fold > 1 else 1))]
            with m.If(last_t):
                m.d.sync += [t.eq(0), c.eq(c + 1)]
            with m.If(last_step):
                m.d.sync += [c.eq(0), waddr.eq(0)]

        # -- accumulate ----------------------------------------------------------------------------
        def pixel(ky, col):
            return window.word_select(ky * cols + col, a)

        # Per pixel lane j, shared by all lanes: the pixel at each window position, the dense/1x1
        # tap, and for every ROM pattern the pixel at its step-th tap (dense layers override them all).
        if kmax > 3:  # step t of a dense k x k kernel: its raster tap t, centred in the window
            fixed_tap = Array(Array(Const(p.window_tap(2 * h + 1, t), range(p.window_taps))
                                    for t in range((2 * h + 1) ** 2))
                              for h in range(kmax // 2 + 1))[self.kernel_half][s2_step]
        else:
            fixed_tap = Mux(self.kernel1x1, p.window_tap(1, 0), s2_step)
        orders = tap_orders(p.patterns) if p.sparse else []
        candidates = []
        half = xl // 2  # pixel lanes of a folded pass
        for j in range(xl):
            at_tap = []
            for pos in range(p.window_taps):
                ky, kx = divmod(pos, kmax)
                px = Mux(self.stride2, pixel(ky, 2 * j + kx), pixel(ky, j + kx))
                if p.fold > 1 and j >= half:  # folded: the pixel of lane j - x_lanes / 2
                    px = Mux(self.fold, Mux(self.stride2, pixel(ky, 2 * (j - half) + kx), pixel(ky, j - half + kx)), px)
                at_tap.append(Mux(self.in_signed, px.as_signed(), px))
            fixed = Signal(signed(a + 1), name=f"fixed_px{j}")
            m.d.comb += fixed.eq(Array(at_tap)[fixed_tap])
            per_pattern = []
            for r, order in enumerate(orders):
                px = Signal(signed(a + 1), name=f"pattern{r}_px{j}")
                taps = [at_tap[p.window_tap(3, tap)] for tap in order]
                steps = Array(taps) if len(order) > 1 else None
                m.d.comb += px.eq(Mux(self.dense | self.kernel1x1, fixed, steps[s2_step] if steps else taps[0]))
                per_pattern.append(px)
            candidates.append((fixed, per_pattern))

        # -- select, multiply, accumulate, with `p.mac_cuts` registered along the way ----------------
        flags = {"valid": s2_valid, "first": s2_first, "last": s2_last}

        def stage(name, **values):  # the values past cut `name`; the step's flags move with them
            registered = name in p.mac_cuts
            for k, v in flags.items():
                flags[k] = cut(m, registered, v, f"{name}_{k}")
            if registered:
                in_flight.append(flags["last"])
            return {k: cut(m, registered, v, f"{name}_{k}") for k, v in values.items()}

        sl = p.select_lanes
        v = stage("candidates", weights=self.weights, ids=self.ids, **{f"select{s}": self.select[s] for s in range(sl)},
                  **{f"px{j}_{r}": px for j, (fixed, per_pattern) in enumerate(candidates)
                     for r, px in enumerate(per_pattern or [fixed])})
        operands = {}
        for lane in range(lanes):
            operands[f"w{lane}"] = v["weights"].word_select(lane, 8)[:p.weight_bits].as_signed()
            if p.fold > 1:  # the weight of pixel lanes x_lanes / 2 ..: channel m + m_lanes's when folded
                upper = v["weights"].word_select(lanes + lane, 8)[:p.weight_bits].as_signed()
                operands[f"wf{lane}"] = Mux(self.fold, upper, operands[f"w{lane}"])
            sel = lane % sl
            for j in range(xl):
                per_pattern = [v[f"px{j}_{r}"] for r in range(len(candidates[j][1]) or 1)]
                if f"x{sel}_{j}" in operands:
                    continue
                if len(per_pattern) > 1:  # the lane's ROM pattern picks its pixel
                    index = v[f"select{sel}"]
                    if p.library:  # select_lanes == lanes: every lane has its own kernel id
                        index = Mux(self.library, v["ids"].word_select(lane, 8), index)
                    chosen = Signal(signed(a + 1), name=f"px_{sel}_{j}")
                    m.d.comb += chosen.eq(Array(per_pattern)[index])
                    operands[f"x{sel}_{j}"] = chosen
                else:  # one pattern (or a dense-only engine): nothing to choose per lane
                    operands[f"x{sel}_{j}"] = per_pattern[0]
        def weight(v, lane, j):
            return v[f"wf{lane}" if p.fold > 1 and j >= half else f"w{lane}"]

        if p.dsp == "fabric":
            v = stage("operands", **operands)
            v = stage("product", **{f"p{lane}_{j}": weight(v, lane, j) * v[f"x{lane % sl}_{j}"]
                                    for lane in range(lanes) for j in range(xl)})
        else:  # each product's DSP cell registers its own operands (the `operands` cut) and the product (`product`)
            stage("operands")
            stage("product")
            v = {f"p{lane}_{j}": dsp.product(m, weight(operands, lane, j), operands[f"x{lane % sl}_{j}"],
                                             f"mult_{lane}_{j}")
                 for lane in range(lanes) for j in range(xl)}

        with m.If(self.result.valid & self.result.ready):
            m.d.sync += self.result.valid.eq(0)
        for lane in range(lanes):
            for j in range(xl):
                acc = Signal(signed(p.acc_bits), name=f"acc_{lane}_{j}")
                total = Signal(signed(p.acc_bits), name=f"sum_{lane}_{j}")
                m.d.comb += total.eq(Mux(flags["first"], 0, acc) + v[f"p{lane}_{j}"])
                with m.If(flags["valid"]):
                    m.d.sync += acc.eq(total)
                    with m.If(flags["last"]):
                        m.d.sync += self.result.payload[lane * xl + j].eq(total)
        with m.If(flags["valid"] & flags["last"]):
            m.d.sync += self.result.valid.eq(1)
        m.d.comb += last_in_flight.eq(Cat(*in_flight).any())
        return m
