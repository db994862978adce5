"""AXI4 master and AXI4-Lite slave adapters around the engine's private bus (docs/engine.md, "AXI").

- `AxiMaster` turns the engine's `req`/`rd`/`wr` streams into AXI4 bursts on `m_axi_*`: INCR
  bursts of at most 256 beats that never cross a 4 KiB boundary (`split_bursts` is the rule, in
  Python, for the tests), full-width beats with WSTRB all ones, one ID (0), reads returned in
  order. It counts the read beats the engine waits for and the write responses outstanding, and
  flags any RRESP / BRESP other than OKAY.
- `AxiLiteSlave` serves `s_axil_*` as a simple register port: one write (`w_en`, `w_addr`,
  `w_data`) and one read (`r_en`, `r_addr`, `r_data` answered in the same cycle) at a time.

Port names follow the usual AXI convention (`m_axi_arvalid`, ...), so VIPs bind by prefix.
"""

from __future__ import annotations

from amaranth.hdl import Module, Mux, Signal
from amaranth.lib import fifo, stream, wiring
from amaranth.lib.wiring import In, Out

from ..engine.params import ADDR_BITS, LEN_BITS, MAX_BURST
from ..engine.registers import MEM_BASE_ALIGN, check_axi
from .dma import REQUEST

PAGE = 4096  # AXI4: a burst must not cross a 4 KiB boundary
BURST_INCR = 0b01
RESP_OKAY = 0b00
W_QUEUE = 4  # write bursts whose address was sent and whose data beats are still to come
COUNT_BITS = 32


def split_bursts(addr: int, beats: int, beat_bytes: int) -> list[tuple[int, int]]:
    """The AXI bursts `(addr, beats)` of one request: at most MAX_BURST beats, none crossing 4 KiB."""
    out = []
    while beats:
        n = min(beats, MAX_BURST, (PAGE - addr % PAGE) // beat_bytes)
        out.append((addr, n))
        addr, beats = addr + n * beat_bytes, beats - n
    return out


def axi4_master_members(data_bits: int, id_bits: int, prefix: str = "m_axi") -> dict:
    """The AXI4 master's ports (AR, R, AW, W, B), as seen from the master."""
    ch = {
        "aw": {"id": Out(id_bits), "addr": Out(ADDR_BITS), "len": Out(8), "size": Out(3), "burst": Out(2),
               "lock": Out(1), "cache": Out(4), "prot": Out(3), "valid": Out(1), "ready": In(1)},
        "w": {"data": Out(data_bits), "strb": Out(data_bits // 8), "last": Out(1), "valid": Out(1), "ready": In(1)},
        "b": {"id": In(id_bits), "resp": In(2), "valid": In(1), "ready": Out(1)},
        "ar": {"id": Out(id_bits), "addr": Out(ADDR_BITS), "len": Out(8), "size": Out(3), "burst": Out(2),
               "lock": Out(1), "cache": Out(4), "prot": Out(3), "valid": Out(1), "ready": In(1)},
        "r": {"id": In(id_bits), "data": In(data_bits), "resp": In(2), "last": In(1), "valid": In(1), "ready": Out(1)},
    }
    return {f"{prefix}_{c}{name}": member for c, sigs in ch.items() for name, member in sigs.items()}


def axil_slave_members(addr_bits: int, data_bits: int = 32, prefix: str = "s_axil") -> dict:
    """The AXI4-Lite slave's ports, as seen from the slave."""
    ch = {
        "aw": {"addr": In(addr_bits), "prot": In(3), "valid": In(1), "ready": Out(1)},
        "w": {"data": In(data_bits), "strb": In(data_bits // 8), "valid": In(1), "ready": Out(1)},
        "b": {"resp": Out(2), "valid": Out(1), "ready": In(1)},
        "ar": {"addr": In(addr_bits), "prot": In(3), "valid": In(1), "ready": Out(1)},
        "r": {"data": Out(data_bits), "resp": Out(2), "valid": Out(1), "ready": In(1)},
    }
    return {f"{prefix}_{c}{name}": member for c, sigs in ch.items() for name, member in sigs.items()}


class AxiMaster(wiring.Component):
    """The engine's request/read/write streams as an AXI4 master (see the module doc).

    Status out: `read_pending` (beats the engine requested and has not received), `writes_pending`
    (write bursts whose response has not come back), `read_error` / `write_error` (one-cycle pulses
    on a response other than OKAY). `base` (4 KiB aligned) is added to every address.
    """

    def __init__(self, data_bits: int, id_bits: int = 1):
        check_axi(data_bits, id_bits)
        self.data_bits, self.id_bits = data_bits, id_bits
        self.beat_bytes = data_bits // 8
        super().__init__({
            "req": In(stream.Signature(REQUEST)),
            "rd": Out(stream.Signature(data_bits)),
            "wr": In(stream.Signature(data_bits)),
            "base": In(ADDR_BITS),
            "read_pending": Out(1),
            "writes_pending": Out(1),
            "read_error": Out(1),
            "write_error": Out(1),
            **axi4_master_members(data_bits, id_bits),
        })

    def elaborate(self, platform):
        m = Module()
        shift = self.beat_bytes.bit_length() - 1
        m.submodules.wq = wq = fifo.SyncFIFO(width=8, depth=W_QUEUE)

        # -- request splitter: one engine request at a time, one AXI burst per handshake ------------
        addr = Signal(ADDR_BITS)
        left = Signal(LEN_BITS)
        write = Signal()
        to_page = Signal(range(PAGE // self.beat_bytes + 1))
        capped = Signal(range(MAX_BURST + 1))
        burst = Signal(range(MAX_BURST + 1))
        m.d.comb += [
            to_page.eq((PAGE - addr[:12]) >> shift),
            capped.eq(Mux(left < MAX_BURST, left, MAX_BURST)),
            burst.eq(Mux(to_page < capped, to_page, capped)),
        ]
        base = self.base & ~(MEM_BASE_ALIGN - 1)
        for ch, is_write in (("ar", False), ("aw", True)):
            port = lambda name: getattr(self, f"m_axi_{ch}{name}")  # noqa: E731
            m.d.comb += [
                port("addr").eq(addr + base), port("len").eq(burst - 1), port("size").eq(shift),
                port("burst").eq(BURST_INCR), port("cache").eq(0b0011), port("id").eq(0),
            ]
        m.d.comb += [
            self.m_axi_arvalid.eq((left != 0) & ~write),
            self.m_axi_awvalid.eq((left != 0) & write & wq.w_rdy),
            wq.w_data.eq(burst - 1),
            wq.w_en.eq(self.m_axi_awvalid & self.m_axi_awready),
        ]
        fire = (self.m_axi_arvalid & self.m_axi_arready) | (self.m_axi_awvalid & self.m_axi_awready)
        m.d.comb += self.req.ready.eq((left == 0) | (fire & (left == burst)))
        with m.If(fire):
            m.d.sync += [addr.eq(addr + (burst << shift)), left.eq(left - burst)]
        with m.If(self.req.valid & self.req.ready):
            m.d.sync += [addr.eq(self.req.payload.addr), left.eq(self.req.payload.len),
                         write.eq(self.req.payload.write)]

        # -- write data: the engine's beats, WLAST at the end of each burst the address channel sent
        w_count = Signal(8)
        m.d.comb += [
            self.m_axi_wdata.eq(self.wr.payload),
            self.m_axi_wstrb.eq((1 << self.beat_bytes) - 1),
            self.m_axi_wvalid.eq(self.wr.valid & wq.r_rdy),
            self.m_axi_wlast.eq(w_count == wq.r_data),
            self.wr.ready.eq(self.m_axi_wready & wq.r_rdy),
        ]
        with m.If(self.m_axi_wvalid & self.m_axi_wready):
            m.d.sync += w_count.eq(Mux(self.m_axi_wlast, 0, w_count + 1))
            m.d.comb += wq.r_en.eq(self.m_axi_wlast)

        # -- read data, in order (one ID) -------------------------------------------------------------
        r_fire = self.m_axi_rvalid & self.m_axi_rready
        m.d.comb += [
            self.rd.valid.eq(self.m_axi_rvalid),
            self.rd.payload.eq(self.m_axi_rdata),
            self.m_axi_rready.eq(self.rd.ready),
            self.read_error.eq(r_fire & (self.m_axi_rresp != RESP_OKAY)),
            self.m_axi_bready.eq(1),
            self.write_error.eq(self.m_axi_bvalid & (self.m_axi_bresp != RESP_OKAY)),
        ]

        # -- what is outstanding: read beats the engine waits for, write responses ---------------------
        reads = Signal(COUNT_BITS)
        responses = Signal(COUNT_BITS)
        new_reads = Mux(self.req.valid & self.req.ready & ~self.req.payload.write, self.req.payload.len, 0)
        m.d.sync += [
            reads.eq(reads + new_reads - r_fire),
            responses.eq(responses + (self.m_axi_awvalid & self.m_axi_awready) - (self.m_axi_bvalid & self.m_axi_bready)),
        ]
        m.d.comb += [self.read_pending.eq(reads != 0), self.writes_pending.eq(responses != 0)]
        return m


class AxiLiteSlave(wiring.Component):
    """AXI4-Lite slave: each write (address and data, in either order) becomes one `w_en` cycle,
    answered OKAY; each read one `r_en` cycle whose `r_data` is returned. WSTRB is ignored: the
    registers are written whole."""

    def __init__(self, addr_bits: int, data_bits: int = 32):
        if data_bits not in (32, 64) or not 2 <= addr_bits <= 32:
            raise ValueError(f"AXI4-Lite needs 32 or 64 data bits and 2..32 address bits, got {data_bits}, {addr_bits}")
        self.addr_bits, self.data_bits = addr_bits, data_bits
        super().__init__({
            "w_en": Out(1), "w_addr": Out(addr_bits), "w_data": Out(data_bits),
            "r_en": Out(1), "r_addr": Out(addr_bits), "r_data": In(data_bits),
            **axil_slave_members(addr_bits, data_bits),
        })

    def elaborate(self, platform):
        m = Module()
        aw_full, w_full = Signal(), Signal()
        m.d.comb += [
            self.s_axil_awready.eq(~aw_full),
            self.s_axil_wready.eq(~w_full),
            self.s_axil_bresp.eq(RESP_OKAY),
            self.s_axil_rresp.eq(RESP_OKAY),
            self.s_axil_arready.eq(~self.s_axil_rvalid),
            self.r_addr.eq(self.s_axil_araddr),
            self.r_en.eq(self.s_axil_arvalid & self.s_axil_arready),
            self.w_en.eq(aw_full & w_full & ~self.s_axil_bvalid),
        ]
        with m.If(self.s_axil_awvalid & self.s_axil_awready):
            m.d.sync += [aw_full.eq(1), self.w_addr.eq(self.s_axil_awaddr)]
        with m.If(self.s_axil_wvalid & self.s_axil_wready):
            m.d.sync += [w_full.eq(1), self.w_data.eq(self.s_axil_wdata)]
        with m.If(self.w_en):
            m.d.sync += [aw_full.eq(0), w_full.eq(0), self.s_axil_bvalid.eq(1)]
        with m.Elif(self.s_axil_bvalid & self.s_axil_bready):
            m.d.sync += self.s_axil_bvalid.eq(0)
        with m.If(self.r_en):
            m.d.sync += [self.s_axil_rvalid.eq(1), self.s_axil_rdata.eq(self.r_data)]
        with m.Elif(self.s_axil_rvalid & self.s_axil_rready):
            m.d.sync += self.s_axil_rvalid.eq(0)
        return m
