"""The network-op unit: residual add, 2x2 max / average pooling, global average pooling and the
classifier, in DRAM.

`NetOps` runs one network-op descriptor (`hwgen.engine.netop`, selected by its `op` field) given
on `descriptor` when `start` pulses, through the engine's memory port (`req`, `rd`, `wr`, the
conv engine's streams) and the engine's DRAM activation layout (`memory_map`: A-bit fields,
`beat_elems` per beat, rows padded to whole beats). `done` pulses after its last write beat.
Its integer contracts are `hwgen.reference`'s (docs/quantization.md, "Network ops in hardware");
the requantizer is the conv engine's (`Requant`, no cuts). Output fields past a row's last
column are written 0.

- ADD: the tensors are `C*H*row_beats` beats each, in the same layout (each operand's fields signed
  or not on its own: `in_signed`, `b_signed`); per chunk of at most
  `chunk` beats: read a's beats into the FIFO, read b's beats (each combined with the FIFO's
  head: `requant(a*Ma + b*Mb)` per field, pushed back), write the chunk.
- MAXPOOL2 / AVGPOOL2: per output row, one read of the two input rows (they are consecutive in
  DRAM): the first row into the FIFO, the second combined with it (max, or sum, per field), then
  each output beat from two of those beats (pairs of fields: max, or `requant(sum of 4)`).
  Rows must fit the FIFO: `in_row_beats <= chunk` (the compiler checks).
- GAP: per channel, one read of its plane, every field summed, `requant(sum)` in field 0 of the
  channel's one output beat.
- LINEAR (the classifier, one byte per field): per chunk of at most `chunk` input beats, read into
  the FIFO once; then for each output its weight beats over that chunk (its bias beat first, on
  the first chunk), each multiplied field by field with the FIFO's head, which goes back in
  behind the tail; the partial logit waits in a memory of `logits` words until the next chunk,
  and after the last one is written as one beat (`netop.LOGIT_BITS` low bits).
Only the ops in `ops` are built: the others' datapaths and states are left out.
Reads and writes never overlap: a chunk or row is read whole before it is written, so the
FIFO is the only storage (`chunk + 1` beats of `beat_elems * (field + 2)` bits with pools, else
of one bus beat), besides LINEAR's partial logits.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Module, Mux, Signal, signed
from amaranth.lib import memory, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.wiring import In, Out

from ..engine import netop
from ..engine.params import ADDR_BITS, MAX_BURST, EngineParams
from ..errors import HwgenError
from .dma import REQUEST, Reader
from .requant import Requant

GAP_ACC_BITS = 47  # a plane of up to 2^32 fields, summed (acc * M then fits the requantizer's 63 bits)


class NetOps(wiring.Component):
    """One network op per start. `chunk`: the FIFO's beats (an ADD chunk, the widest pooled row);
    `ops`: the ops (names of `netop.OPS`) it is built with, the others' datapaths are left out (a
    descriptor of another op must not start it: `Chain` refuses it, `hwgen.engine.network` too);
    `logits`: with LINEAR, the most logits a descriptor may ask for (its partial-sum memory)."""

    def __init__(self, params: EngineParams, chunk: int = 16, ops=tuple(netop.OPS), logits: int = 16):
        self.p = params
        self._MustUse__silence = True  # a refused unit is no forgotten submodule
        if params.beat_elems < 2:
            raise HwgenError(f"the network-op unit needs at least 2 activations per bus beat, "
                             f"got {params.beat_elems} ({params.bus_bits}-bit bus, A = {params.act_bits})")
        if not isinstance(chunk, int) or not 1 <= chunk < MAX_BURST:
            raise HwgenError(f"network-op chunk must be from 1 to {MAX_BURST - 1} beats, got {chunk!r}")
        if not ops or any(op not in netop.OPS for op in ops):
            raise HwgenError(f"network-op unit ops must be some of {', '.join(netop.OPS)}, got {ops!r}")
        if "linear" in ops and (params.act_field_bits != 8 or not isinstance(logits, int) or not 1 <= logits < 1 << 16):
            raise HwgenError(f"the network-op unit's linear layer needs one byte per activation and 1 to 65,535 "
                             f"logits, got A = {params.act_bits}, {logits!r} logits")
        self.chunk = chunk
        self.ops = tuple(op for op in netop.OPS if op in ops)  # only these are built
        self.logits = logits  # LINEAR: accumulators of the partial logits between input chunks
        self._MustUse__silence = False
        super().__init__({
            "req": Out(stream.Signature(REQUEST)),
            "rd": In(stream.Signature(params.bus_bits)),
            "wr": Out(stream.Signature(params.bus_bits)),
            "start": In(1),
            "descriptor": In(netop.LAYOUT),
            "done": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        p, d = self.p, self.descriptor
        fb, n_el, bb = p.act_field_bits, p.beat_elems, p.beat_bytes
        bb_log, el_log = bb.bit_length() - 1, n_el.bit_length() - 1
        vw = fb + 2  # a vertical max or sum of two fields
        half = n_el // 2
        add, mx, avg, gap, lin = (name in self.ops for name in ("add", "maxpool2", "avgpool2", "gap", "linear"))
        pool = mx or avg
        m.submodules.reader = reader = Reader(bb)
        m.submodules.fifo = fifo = SyncFIFO(width=n_el * (vw if pool else fb), depth=self.chunk + 1)
        rq = []
        for i in range(n_el if add else half if avg else 0):
            m.submodules[f"requant{i}"] = r = Requant(fb + 19)  # (fb+3)-bit operands times 15-bit Ma, Mb, summed
            m.d.comb += [r.shift.eq(d.shift), r.lo.eq(d.lo), r.hi.eq(d.hi), r.half_even.eq(d.half_even)]
            rq.append(r)
        if gap:
            m.submodules.requant_gap = rq_gap = Requant(GAP_ACC_BITS)
            m.d.comb += [rq_gap.multiplier.eq(d.ma), rq_gap.shift.eq(d.shift), rq_gap.lo.eq(d.lo),
                         rq_gap.hi.eq(d.hi), rq_gap.half_even.eq(d.half_even)]

        def fields(value, width, is_signed=d.in_signed):
            """The `n_el` fields of `width` bits of `value`, signed or not as `is_signed` (the input) says."""
            out = []
            for i in range(n_el):
                f = value[i * width:(i + 1) * width]
                out.append(Mux(is_signed, f.as_signed(), f.as_unsigned()) if width == fb else f.as_signed())
            return out

        def either(cond, when_true, present_true, when_false, present_false):
            """`Mux(cond, when_true, when_false)` when both ops are built, else the one that is."""
            if present_true and present_false:
                return Mux(cond, when_true, when_false)
            return when_true if present_true else when_false

        op = d.op
        is_max, is_add = op == netop.OP_MAXPOOL2, op == netop.OP_ADD
        # layer constants (SETUP)
        in_row_bytes, out_row_bytes = Signal(ADDR_BITS), Signal(ADDR_BITS)
        plane_beats, plane_bytes = Signal(32), Signal(ADDR_BITS)
        # walk state
        off = Signal(ADDR_BITS)  # ADD: byte offset of the chunk
        left = Signal(32)  # ADD: beats left
        n = Signal(range(self.chunk + 1))  # ADD: beats in this chunk
        got = Signal(32)
        col_beat = Signal(16)  # the beat's index within its row (column masking)
        c, oy = Signal(16), Signal(16)
        in_ptr, chan_ptr, out_ptr = Signal(ADDR_BITS), Signal(ADDR_BITS), Signal(ADDR_BITS)
        j, vb = Signal(16), Signal(16)  # pools: output beat of the row, vertical beats consumed
        lower, upper = Signal(half * fb), Signal(half * fb)
        acc = Signal(signed(GAP_ACC_BITS if gap else 1))

        rd_beat = self.rd.valid & self.rd.ready
        writing = Signal()  # the request stream carries a write request, else the reader's
        w_addr, w_len = Signal(ADDR_BITS), Signal(16)
        with m.If(writing):
            m.d.comb += [self.req.valid.eq(1), self.req.payload.addr.eq(w_addr), self.req.payload.len.eq(w_len),
                         self.req.payload.write.eq(1)]
        with m.Else():
            m.d.comb += [self.req.valid.eq(reader.req.valid), self.req.payload.eq(reader.req.payload),
                         reader.req.ready.eq(self.req.ready)]

        def widen(value, width):
            s = Signal(signed(width))
            m.d.comb += s.eq(value)
            return s

        def read(addr, beats):
            m.d.comb += [reader.start.eq(1), reader.addr.eq(addr), reader.beats.eq(beats)]
            m.d.sync += got.eq(0)

        def masked(values, first_col, width_limit):
            """Fields packed `fb` bits each, 0 where the column (first_col + i) is not below width_limit."""
            return Cat(*(Mux(first_col + i < width_limit, v[:fb], 0) for i, v in enumerate(values)))

        def combine(result):
            """Each read beat replaces the FIFO's head with `result` (of the beat and the head)."""
            m.d.comb += [self.rd.ready.eq(1), fifo.r_en.eq(self.rd.valid), fifo.w_en.eq(self.rd.valid),
                         fifo.w_data.eq(result)]

        def read_chunk(read_state, fill_state, then, when_filled=()):
            """States reading the input's next chunk (at most `chunk` beats from `off`) into the FIFO."""
            with m.State(read_state):
                now = Mux(left < self.chunk, left, self.chunk)
                m.d.sync += n.eq(now)
                read(d.a_addr + off, now)
                m.next = fill_state
            with m.State(fill_state):
                m.d.comb += [self.rd.ready.eq(1), fifo.w_en.eq(self.rd.valid), fifo.w_data.eq(self.rd.payload)]
                with m.If(rd_beat):
                    m.d.sync += got.eq(got + 1)
                    with m.If(got == n - 1):
                        m.d.sync += list(when_filled)
                        m.next = then

        def write_beat(req_state, beat_state, value, then):
            """States writing one beat of `value` at `out_ptr`; `then()` in the cycle it is taken."""
            with m.State(req_state):
                m.d.comb += [writing.eq(1), w_addr.eq(out_ptr), w_len.eq(1)]
                with m.If(self.req.ready):
                    m.next = beat_state
            with m.State(beat_state):
                m.d.comb += [self.wr.valid.eq(1), self.wr.payload.eq(value)]
                with m.If(self.wr.ready):
                    then()

        def next_col():
            m.d.sync += col_beat.eq(Mux(col_beat == d.in_row_beats - 1, 0, col_beat + 1))

        # ADD: a (the FIFO head, as read) and b (the read beat, of its own signedness), field by field;
        # pools: the FIFO holds vertical values of `vw` bits
        b_f = fields(self.rd.payload, fb, either(is_add, d.b_signed, add, d.in_signed, True))
        # one pair of multipliers per field: ADD `a*Ma + b*Mb`; AVGPOOL2, on the first half of the fields,
        # `(sum of a window's 4) * M + 0`; the requantizers then only round, shift and clamp (M = 1)
        a_f = fields(fifo.r_data, fb) if add else None
        head_f = fields(fifo.r_data, vw) if pool else None
        for i, r in enumerate(rq):
            x = Signal(signed(fb + 3), name=f"operand{i}")
            window = head_f[2 * i] + head_f[2 * i + 1] if avg and i < half else 0
            m.d.comb += [x.eq(either(is_add, a_f[i] if add else 0, add, window, avg)),
                         r.acc.eq(x * d.ma + (either(is_add, b_f[i], add, 0, avg) * d.mb if add else 0)),
                         r.multiplier.eq(1)]
        if add:
            add_beat = masked([r.y for r in rq], col_beat << el_log, d.width)
        if pool:
            pairs = Cat(*(either(is_max, Mux(head_f[2 * k] > head_f[2 * k + 1], head_f[2 * k], head_f[2 * k + 1]),
                                 mx, rq[k].y if avg else 0, avg)[:fb] for k in range(half)))
            vertical = Cat(*(either(is_max, Mux(head_f[i] > b_f[i], head_f[i], b_f[i]), mx, head_f[i] + b_f[i],
                                    avg)[:vw] for i in range(n_el)))
            first_row = Cat(*(widen(f, vw) for f in b_f))
            out_fields = [lower.word_select(k, fb) for k in range(half)] + [upper.word_select(k, fb) for k in range(half)]
            pool_beat = masked([f.as_signed() for f in out_fields], j << el_log, d.out_width)
        if lin:
            # LINEAR: the FIFO's head (an input beat, kept: it goes back in behind the tail) times the
            # read weight beat, field by field; partial logits wait in `partial` between input chunks
            x_f, w_f = fields(fifo.r_data, fb), [self.rd.payload[i * 8:(i + 1) * 8].as_signed() for i in range(n_el)]
            logit = Signal(signed(netop.LOGIT_BITS))
            dot = Signal(signed(fb + 10 + el_log))
            m.d.comb += dot.eq(sum(x * w for x, w in zip(x_f, w_f)))
            m.submodules.partial = partial = memory.Memory(shape=signed(netop.LOGIT_BITS), depth=self.logits, init=[])
            p_rd, p_wr = partial.read_port(domain="comb"), partial.write_port()
            o = Signal(16)
            block, w_ptr = Signal(ADDR_BITS), Signal(ADDR_BITS)  # a weight block's bytes; this output's block
            first = Signal()  # the first input chunk: each block's read starts at its bias beat
            m.d.comb += [p_rd.addr.eq(o), p_wr.addr.eq(o), p_wr.data.eq(logit)]
        if gap:
            sums = Signal(signed(32))
            beat_sum = Signal(signed(fb + 1 + el_log + 1))
            m.d.comb += beat_sum.eq(sum(Mux((col_beat << el_log) + i < d.width, f, 0) for i, f in enumerate(b_f)))
            m.d.comb += [rq_gap.acc.eq(acc), sums.eq(beat_sum)]

        with m.FSM():
            with m.State("IDLE"):
                with m.If(self.start):
                    m.next = "SETUP"
            with m.State("SETUP"):
                m.d.sync += [in_row_bytes.eq(d.in_row_beats << bb_log), out_row_bytes.eq(d.out_row_beats << bb_log),
                             plane_beats.eq(d.height * d.in_row_beats), off.eq(0), col_beat.eq(0),
                             c.eq(0), oy.eq(0), in_ptr.eq(d.a_addr), chan_ptr.eq(d.a_addr), out_ptr.eq(d.out_addr),
                             acc.eq(0)]
                m.next = "SETUP2"
            with m.State("SETUP2"):
                m.d.sync += [plane_bytes.eq(plane_beats << bb_log),
                             left.eq(plane_beats * d.channels)]
                with m.Switch(op):
                    if add:
                        with m.Case(netop.OP_ADD):
                            m.next = "A_READ"
                    if pool:
                        with m.Case(*(netop.OPS[o] for o in ("maxpool2", "avgpool2") if o in self.ops)):
                            m.next = "POOL_READ"
                    if gap:
                        with m.Case(netop.OP_GAP):
                            m.next = "GAP_READ"
                    if lin:
                        with m.Case(netop.OP_LINEAR):
                            m.next = "L_SETUP"
                    with m.Default():  # an op this unit was built without (the chain never starts one)
                        m.next = "DONE"
            if add:
                # -- ADD ------------------------------------------------------------------------------
                read_chunk("A_READ", "A_FILL", "B_READ")
                with m.State("B_READ"):
                    read(d.b_addr + off, n)
                    m.next = "B_FILL"
                with m.State("B_FILL"):
                    combine(add_beat)
                    with m.If(rd_beat):
                        m.d.sync += got.eq(got + 1)
                        next_col()
                        with m.If(got == n - 1):
                            m.next = "A_WREQ"
                with m.State("A_WREQ"):
                    m.d.comb += [writing.eq(1), w_addr.eq(d.out_addr + off), w_len.eq(n)]
                    m.d.sync += got.eq(0)
                    with m.If(self.req.ready):
                        m.next = "A_WRITE"
                with m.State("A_WRITE"):
                    m.d.comb += [self.wr.valid.eq(1), self.wr.payload.eq(fifo.r_data[:p.bus_bits]),
                                 fifo.r_en.eq(self.wr.ready)]
                    with m.If(self.wr.ready):
                        m.d.sync += got.eq(got + 1)
                        with m.If(got == n - 1):
                            m.d.sync += [off.eq(off + (n << bb_log)), left.eq(left - n)]
                            with m.If(left == n):
                                m.next = "DONE"
                            with m.Else():
                                m.next = "A_READ"
            if pool:
                # -- MAXPOOL2 / AVGPOOL2: one output row per pass ------------------------------------
                with m.State("POOL_READ"):
                    read(in_ptr, d.in_row_beats << 1)
                    m.d.sync += col_beat.eq(0)
                    m.next = "POOL_ROW0"
                with m.State("POOL_ROW0"):
                    m.d.comb += [self.rd.ready.eq(1), fifo.w_en.eq(self.rd.valid), fifo.w_data.eq(first_row)]
                    with m.If(rd_beat):
                        m.d.sync += got.eq(got + 1)
                        with m.If(got == d.in_row_beats - 1):
                            m.d.sync += got.eq(0)
                            m.next = "POOL_ROW1"
                with m.State("POOL_ROW1"):
                    combine(vertical)
                    with m.If(rd_beat):
                        m.d.sync += got.eq(got + 1)
                        with m.If(got == d.in_row_beats - 1):
                            m.d.sync += [j.eq(0), vb.eq(0)]
                            m.next = "POOL_WREQ"
                with m.State("POOL_WREQ"):
                    m.d.comb += [writing.eq(1), w_addr.eq(out_ptr), w_len.eq(d.out_row_beats)]
                    with m.If(self.req.ready):
                        m.next = "POOL_LOW"
                for state, dest, nxt in (("POOL_LOW", lower, "POOL_HIGH"), ("POOL_HIGH", upper, "POOL_OUT")):
                    with m.State(state):
                        with m.If(vb < d.in_row_beats):
                            m.d.comb += fifo.r_en.eq(1)
                            m.d.sync += [dest.eq(pairs), vb.eq(vb + 1)]
                        with m.Else():
                            m.d.sync += dest.eq(0)
                        m.next = nxt
                with m.State("POOL_OUT"):
                    m.d.comb += [self.wr.valid.eq(1), self.wr.payload.eq(pool_beat)]
                    with m.If(self.wr.ready):
                        m.d.sync += j.eq(j + 1)
                        with m.If(j == d.out_row_beats - 1):
                            m.next = "POOL_DRAIN"
                        with m.Else():
                            m.next = "POOL_LOW"
                with m.State("POOL_DRAIN"):  # vertical beats no output column uses (odd widths)
                    with m.If(vb < d.in_row_beats):
                        m.d.comb += fifo.r_en.eq(1)
                        m.d.sync += vb.eq(vb + 1)
                    with m.Else():
                        m.d.sync += [oy.eq(oy + 1), in_ptr.eq(in_ptr + (in_row_bytes << 1)),
                                     out_ptr.eq(out_ptr + out_row_bytes)]
                        m.next = "POOL_READ"
                        with m.If(oy == d.out_height - 1):
                            m.d.sync += [oy.eq(0), c.eq(c + 1), chan_ptr.eq(chan_ptr + plane_bytes),
                                         in_ptr.eq(chan_ptr + plane_bytes)]
                            with m.If(c == d.channels - 1):
                                m.next = "DONE"
            if gap:
                # -- GAP: one channel per pass ----------------------------------------------------------
                with m.State("GAP_READ"):
                    read(chan_ptr, plane_beats)
                    m.d.sync += [acc.eq(0), col_beat.eq(0)]
                    m.next = "GAP_SUM"
                with m.State("GAP_SUM"):
                    m.d.comb += self.rd.ready.eq(1)
                    with m.If(rd_beat):
                        m.d.sync += [got.eq(got + 1), acc.eq(acc + sums)]
                        next_col()
                        with m.If(got == plane_beats - 1):
                            m.next = "GAP_WREQ"

                def next_channel():
                    m.d.sync += [c.eq(c + 1), out_ptr.eq(out_ptr + bb), chan_ptr.eq(chan_ptr + plane_bytes)]
                    with m.If(c == d.channels - 1):
                        m.next = "DONE"
                    with m.Else():
                        m.next = "GAP_READ"

                write_beat("GAP_WREQ", "GAP_OUT", rq_gap.y[:fb], next_channel)
            if lin:  # -- LINEAR: per input chunk, every output's weights over it ---------------------
                with m.State("L_SETUP"):
                    m.d.sync += [block.eq((left + 1) << bb_log), first.eq(1)]
                    m.next = "L_READ"
                read_chunk("L_READ", "L_FILL", "L_WREAD", [o.eq(0), w_ptr.eq(d.b_addr), out_ptr.eq(d.out_addr)])
                with m.State("L_WREAD"):
                    read(Mux(first, w_ptr, w_ptr + bb + off), n + first)
                    m.d.sync += logit.eq(p_rd.data)
                    m.next = "L_SUM"
                with m.State("L_SUM"):
                    bias_beat = first & (got == 0)
                    m.d.comb += self.rd.ready.eq(1)
                    with m.If(rd_beat):
                        m.d.sync += got.eq(got + 1)
                        with m.If(bias_beat):
                            m.d.sync += logit.eq(self.rd.payload[:netop.LOGIT_BITS].as_signed())
                        with m.Else():
                            m.d.comb += [fifo.r_en.eq(1), fifo.w_en.eq(1), fifo.w_data.eq(fifo.r_data)]
                            m.d.sync += logit.eq(logit + dot)
                        with m.If(got == n + first - 1):
                            m.next = "L_NEXT"
                with m.State("L_NEXT"):
                    with m.If(left == n):  # the last chunk: the logit is whole
                        m.next = "L_WREQ"
                    with m.Else():
                        m.d.comb += p_wr.en.eq(1)
                        m.next = "L_OUTPUT"

                def to_output():
                    m.next = "L_OUTPUT"

                write_beat("L_WREQ", "L_WRITE", logit.as_unsigned(), to_output)
                with m.State("L_OUTPUT"):
                    m.d.sync += [o.eq(o + 1), w_ptr.eq(w_ptr + block), out_ptr.eq(out_ptr + bb), got.eq(0)]
                    with m.If(o == d.out_width - 1):
                        m.next = "L_DRAIN"
                    with m.Else():
                        m.next = "L_WREAD"
                with m.State("L_DRAIN"):  # the chunk leaves the FIFO
                    m.d.comb += fifo.r_en.eq(1)
                    m.d.sync += got.eq(got + 1)
                    with m.If(got == n - 1):
                        m.d.sync += [off.eq(off + (n << bb_log)), left.eq(left - n), first.eq(0)]
                        with m.If(left == n):
                            m.next = "DONE"
                        with m.Else():
                            m.next = "L_READ"
            with m.State("DONE"):
                m.d.comb += self.done.eq(1)
                m.next = "IDLE"
        return m
