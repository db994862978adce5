"""Engine parameters: the generator's knobs, validated, with every width derived from them.

`EngineParams` is what `hwgen generate` specializes the engine with. Widths that follow from the
knobs (accumulator, buffer address widths, beats per row) are properties, so the gateware, the
DRAM layout and the schedule model all read them from one place.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .. import intmath
from ..errors import HwgenError

MAX_PERIOD = 16  # longest pattern period the pattern ROM is built for
MAX_BURST = 256  # beats per DRAM request (the AXI4 limit): the reader splits longer transfers
LEN_BITS = 16  # width of the request's len field
ADDR_BITS = 32
TAPS = 9  # a 3x3 pattern (periodic and pattern-library layers, the pattern ROM's masks)
KERNEL_MAX = 7  # the largest kernel an engine can be built for
# Register cuts of the two long paths, in the order `pipeline` depth adds them (docs/engine.md,
# "Pipeline"): each cut is one register stage, so one cycle of latency, on its path.
# InputBuffer -> MacArray: a window FIFO before the issue, DSP inputs, DSP output, per-pattern pixels,
# the input buffer's read data before the window shifter
MAC_CUTS = ("window", "operands", "product", "candidates", "read")
# Requant: after the partial products, the shift, their sum, the clamp; before the multiply
REQUANT_CUTS = ("product", "rounding", "sum", "output", "inputs")
MAX_PIPELINE = max(len(MAC_CUTS), len(REQUANT_CUTS))
# Output channels a MAC lane holds in a folded layer (`plan.can_fold`): x lanes / FOLD pixels per pass
FOLD = 2
DEFAULT_PIPELINE = MAX_PIPELINE  # what `hwgen generate` builds unless told otherwise
# The datapath's multipliers: "fabric", `a * b` between the cuts (Yosys maps each onto a DSP cell without
# its registers), or "ecp5", MULT18X18D cells whose own registers are the cuts around the multiply
# (`gateware.dsp`: the MAC array's `operands` and `product`, the requantizer's `inputs` and `product`)
DSPS = ("fabric", "ecp5")


# Windows the `window` cut's FIFO holds. After a residue group's dense channel (9 steps) the
# channels of one step each need a window per cycle; the fetch reads ahead only while the FIFO
# takes windows, and with 2 a PSD1_P16 pass lost 2 cycles per dense channel (104 cycles for 96
# steps at 64 channels): 4 hides them. Engines without residue-grouped layers keep 2 (area).
WINDOW_DEPTH, RESIDUE_WINDOW_DEPTH = 2, 4


def window_depth(pipeline: int, residue_groups: bool) -> int:
    """Windows the MAC array's `window` FIFO holds at this depth, 0 without the cut (the schedule's
    fetch model depends on it); `residue_groups`: some layer of the engine has residue-grouped lanes."""
    if "window" not in MAC_CUTS[:pipeline]:
        return 0
    return RESIDUE_WINDOW_DEPTH if residue_groups else WINDOW_DEPTH


def _pow2(v: int) -> bool:
    return v >= 1 and v & (v - 1) == 0


def _log2(v: int) -> int:
    return v.bit_length() - 1


def check_lanes(m_lanes, x_lanes) -> None:
    """Lane counts are checked before anything is planned for them (planning divides by them)."""
    for name, v in (("m-lanes", m_lanes), ("x-lanes", x_lanes)):
        if not isinstance(v, int) or not _pow2(v) or v > 64:
            raise HwgenError(f"{name} must be a power of two from 1 to 64, got {v!r}")


@dataclass(frozen=True)
class EngineParams:
    """The generator's parameters. Construct, then `validate()` (the generator does both)."""

    m_lanes: int = 4  # output channels computed in parallel
    x_lanes: int = 4  # output pixels (along a row) computed in parallel
    bus_bits: int = 64  # DRAM data beat
    weight_bits: int = 8
    act_bits: int = 8
    acc_bits: int = 24  # signed accumulator; the generator derives it from the checkpoint
    max_width: int = 32  # widest input row (pixels) of any layer
    max_out_width: int = 32  # widest output row of any layer
    max_channels: int = 64  # most input channels of any layer
    kernel_max: int = 3  # the largest k x k kernel of any layer (odd, at least 3): the window's rows and border
    wide_kernel_words: int = 0  # weight words (C * k * k) of the largest layer with a kernel over 3x3 (0: none)
    input_words: int = 2048  # input buffer depth in words (each word holds one or more rows, see row_slots)
    weight_words: int = 0  # weight buffer depth in memory words; 0: one lane group of the widest layer
    patterns: tuple[int, ...] = field(default=())  # pattern ROM: 9-bit raster masks (bit 4 = centre)
    sparse: bool = True  # False: a dense-only engine, without the pattern ROM and per-lane muxes
    library: bool = False  # some layer is a pattern library: build the kernel-id buffer
    lane_period: int = 0  # lcm of the periodic layers' P: lanes m and m + lane_period share a tap mux (0: none)
    sram_cells: bool = False  # buffers as hwgen_sram_1r1w instances (generated Verilog) or lib.memory (sim)
    pipeline: int = DEFAULT_PIPELINE  # register cuts per long path (MAC_CUTS, REQUANT_CUTS); 0: single-cycle
    residue_groups: bool = False  # some layer has residue-grouped lanes: a deeper window FIFO (`window_depth`)
    fold: int = 1  # FOLD: some layer folds its spare x lanes onto more output channels (`plan.can_fold`)
    double_bands: bool = False  # some layer's row bands load behind the runs, in two input buffer halves (Tiling.double)
    dsp: str = "fabric"  # DSPS: how the datapath's multipliers are built

    # -- validation ------------------------------------------------------------------------------
    def validate(self) -> "EngineParams":
        check_lanes(self.m_lanes, self.x_lanes)
        if not isinstance(self.bus_bits, int) or not _pow2(self.bus_bits) or not 8 <= self.bus_bits <= 512:
            raise HwgenError(f"bus-bits must be a power of two from 8 to 512 (whole bytes), got {self.bus_bits!r}")
        if self.x_lanes > self.beat_bytes:
            raise HwgenError(f"x-lanes ({self.x_lanes}) must not exceed the bytes per bus beat ({self.beat_bytes}): "
                             "a lane group's outputs must fall within one beat")
        intmath.check_bits(self.weight_bits, "weight bits")
        intmath.check_bits(self.act_bits, "activation bits")
        if not isinstance(self.acc_bits, int) or not 8 <= self.acc_bits <= 48:
            raise HwgenError(f"accumulator width must be from 8 to 48 bits, got {self.acc_bits!r}")
        if self.kernel_max not in range(3, KERNEL_MAX + 1, 2):
            raise HwgenError(f"the engine's largest kernel must be odd from 3 to {KERNEL_MAX}, got {self.kernel_max!r}")
        if not isinstance(self.wide_kernel_words, int) or self.wide_kernel_words < 0:
            raise HwgenError(f"wide kernel words must be a non-negative integer, got {self.wide_kernel_words!r}")
        if not isinstance(self.weight_words, int) or self.weight_words < 0:
            raise HwgenError(f"weight words must be a non-negative integer, got {self.weight_words!r}")
        for name in ("max_width", "max_out_width", "max_channels", "input_words"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise HwgenError(f"{name.replace('_', ' ')} must be a positive integer, got {v!r}")
        if self.max_width > 4096:
            raise HwgenError(f"rows wider than 4096 pixels are not supported (got {self.max_width})")
        if not isinstance(self.lane_period, int) or self.lane_period < 0:
            raise HwgenError(f"lane period must be a non-negative integer, got {self.lane_period!r}")
        if not isinstance(self.pipeline, int) or isinstance(self.pipeline, bool) \
                or not 0 <= self.pipeline <= MAX_PIPELINE:
            raise HwgenError(f"pipeline must be an integer from 0 to {MAX_PIPELINE}, got {self.pipeline!r}")
        if self.dsp not in DSPS:
            raise HwgenError(f"dsp must be one of {', '.join(DSPS)}, got {self.dsp!r}")
        if self.dsp != "fabric" and self.pipeline != MAX_PIPELINE:
            raise HwgenError(f"dsp {self.dsp} registers the multipliers' operands and products in the DSP cells: "
                             f"it needs pipeline {MAX_PIPELINE} (every cut), got {self.pipeline}")
        if self.fold not in (1, FOLD) or self.fold > self.x_lanes:
            raise HwgenError(f"fold must be 1 or {FOLD} (at most x-lanes), got {self.fold!r}")
        if len(self.patterns) > MAX_PERIOD * 4:
            raise HwgenError(f"the pattern ROM holds at most {MAX_PERIOD * 4} masks, got {len(self.patterns)}")
        for p in self.patterns:
            if not isinstance(p, int) or not 0 < p < 1 << TAPS:
                raise HwgenError(f"pattern masks must be nonzero 9-bit integers, got {p!r}")
        return self

    # -- derived ----------------------------------------------------------------------------------
    @property
    def beat_bytes(self) -> int:
        return self.bus_bits // 8

    @property
    def act_pack(self) -> int:
        """Activations per DRAM byte: 4 at A = 2, 2 at A = 3..4 (a 4-bit field), else 1 (one byte each).

        Fields of 2, 4 or 8 bits never straddle a byte or a beat, so the input buffer's fill and
        the write-back's row buffer unpack and pack them with fixed wiring.
        """
        return 4 if self.act_bits <= 2 else 2 if self.act_bits <= 4 else 1

    @property
    def act_field_bits(self) -> int:
        """Bits of one activation's field in DRAM (the low A bits hold its value)."""
        return 8 // self.act_pack

    @property
    def beat_elems(self) -> int:
        """Activations one DRAM beat carries."""
        return self.beat_bytes * self.act_pack

    def row_beats(self, width: int) -> int:
        """Beats of one activation row of `width` elements in DRAM (rows start on a beat)."""
        return -(-width // self.beat_elems)

    @property
    def win_cols(self) -> int:
        """Input columns a window spans: x_lanes outputs at stride up to 2, plus the largest kernel's border."""
        return 2 * (self.x_lanes - 1) + self.kernel_max

    @property
    def window_taps(self) -> int:
        """Pixels of a kernel_max x kernel_max window: the positions a tap step can select."""
        return self.kernel_max * self.kernel_max

    def window_tap(self, kernel: int, tap: int) -> int:
        """Raster position in the kernel_max x kernel_max window of raster tap `tap` of a centred k x k kernel.

        A window's top-left pixel is input (oy * stride - kernel_max // 2, x * stride - kernel_max // 2), so
        a smaller kernel (padding k // 2) sits in the middle, `(kernel_max - k) // 2` rows and columns in.
        """
        off = (self.kernel_max - kernel) // 2
        dy, dx = divmod(tap, kernel)
        return (dy + off) * self.kernel_max + dx + off

    @property
    def row_beats_max(self) -> int:
        return self.row_beats(self.max_width)

    @property
    def out_row_beats_max(self) -> int:
        return self.row_beats(self.max_out_width)

    @property
    def word_beats(self) -> int:
        """Beats of one input buffer word: the widest row's, rounded up to a power of two, so narrower
        rows pack into power-of-two slots and a slot's position is a shift of the row index."""
        return 1 << (self.row_beats_max - 1).bit_length()

    @property
    def row_elems(self) -> int:
        """Elements of one input buffer word."""
        return self.word_beats * self.beat_elems

    def slot_shift(self, width: int) -> int:
        """log2 of the rows of `width` pixels one input buffer word holds (each in a power-of-two slot)."""
        slot_beats = 1 << (self.row_beats(width) - 1).bit_length()
        return (self.word_beats // slot_beats).bit_length() - 1

    @property
    def input_buffer_bytes(self) -> int:
        """The input buffer's capacity in bytes of SRAM (A bits per element)."""
        return self.input_words * self.row_elems * self.act_bits // 8

    @property
    def weight_depth(self) -> int:
        """Weight buffer words: one per (input channel, tap step) of a lane group: the most channels at 3x3,
        or the largest layer of a wider kernel (a 7x7 stem has few channels: not max_channels * 49)."""
        return max(self.max_channels * TAPS, self.wide_kernel_words)

    @property
    def weight_pack(self) -> int:
        """Weights per DRAM byte: 8 // W for W = 2 and 4, else 1 (one byte per weight).

        Only W dividing 8 packs, so a beat unpacks into whole bytes with fixed wiring; kernel ids
        travel in the same stream as bytes, so engines with a pattern-library layer keep bytes.
        """
        return 8 // self.weight_bits if self.weight_bits in (2, 4) and not self.library else 1

    @property
    def weight_word_bytes(self) -> int:
        """Weight buffer memory word: the wider of an unpacked beat and a tap step's weights (`fold` lane
        words in an engine with a folded layer; powers of two)."""
        return max(self.weight_pack * self.beat_bytes, self.m_lanes * self.fold)

    @property
    def out_lanes(self) -> int:
        """Output channels of a lane group at most: `m_lanes`, twice that with a folded layer."""
        return self.m_lanes * self.fold

    @property
    def weight_beats_per_word(self) -> int:
        """Fill beats (each spread to one byte per weight) one weight buffer memory word gathers."""
        return self.weight_word_bytes // (self.weight_pack * self.beat_bytes)

    @property
    def weight_write_bits(self) -> int:
        """Bits one weight buffer write covers: a memory word, or in an engine with a folded layer whose words
        gather several beats one unpacked beat (an unfolded layer's group, of `m_lanes`-byte steps, may end
        in the middle of a word)."""
        word_bits = self.weight_word_bytes * 8
        return self.weight_pack * self.bus_bits if self.fold > 1 and self.weight_beats_per_word > 1 else word_bits

    @property
    def weight_mem_depth(self) -> int:
        """Weight buffer memory words: `weight_words`, and at least one lane group of the widest layer."""
        return max(-(-self.weight_depth // (self.weight_word_bytes // self.m_lanes)), self.weight_words)

    @property
    def weight_buffer_bytes(self) -> int:
        """The weight buffer's capacity in bytes of SRAM (W bits per weight)."""
        return self.weight_mem_depth * self.weight_word_bytes * self.weight_bits // 8

    @property
    def id_mem_depth(self) -> int:
        """Kernel-id buffer words (pattern library layers): one lane word per input channel."""
        return -(-self.max_channels // (self.weight_word_bytes // self.m_lanes))

    @property
    def rom_entries(self) -> int:
        return max(1, len(self.patterns))

    @property
    def select_lanes(self) -> int:
        """Distinct tap selections across the lanes: lanes congruent modulo lane_period share one."""
        return self.m_lanes if self.lane_period == 0 else min(self.m_lanes, self.lane_period)

    @property
    def mac_cuts(self) -> tuple[str, ...]:
        """The MAC array's register cuts at this pipeline depth."""
        return MAC_CUTS[:self.pipeline]

    @property
    def step_cuts(self) -> tuple[str, ...]:
        """The MAC array's cuts between a tap step's issue and its accumulate (the others, the window FIFO and
        the input buffer's read, lie before the issue)."""
        return tuple(c for c in self.mac_cuts if c not in ("window", "read"))

    @property
    def requant_cuts(self) -> tuple[str, ...]:
        """The write-back requantization's register cuts at this pipeline depth."""
        return REQUANT_CUTS[:self.pipeline]

    @property
    def window_depth(self) -> int:
        return window_depth(self.pipeline, self.residue_groups)

    @property
    def pipeline_latency(self) -> int:
        """Cycles the cuts add between a pass's last tap step and its outputs in the row buffer."""
        return len(self.mac_cuts) + len(self.requant_cuts)

    @property
    def mac_count(self) -> int:
        return self.m_lanes * self.x_lanes

    def widths(self) -> dict:
        """The derived widths, for the manifest."""
        return {
            "accumulator": self.acc_bits,
            "product": self.weight_bits + self.act_bits + 1,
            "requant_product": intmath.product_bits(self.acc_bits),
            "beat_bytes": self.beat_bytes,
            "window_rows": self.kernel_max,
            "window_columns": self.win_cols,
            "input_buffer_words": self.input_words,
            "input_buffer_word_bits": self.row_elems * self.act_bits,
            "weight_buffer_words": self.weight_depth,
            "weight_buffer_word_bits": self.m_lanes * self.weight_bits,
            "weight_dram_bits": 8 // self.weight_pack,
            "activation_dram_bits": self.act_field_bits,
            "output_row_buffer_words": 2 * self.out_lanes * self.out_row_beats_max,
            "pattern_rom_entries": len(self.patterns),
            "mac_register_cuts": list(self.mac_cuts),
            "window_fifo_depth": self.window_depth,
            "requant_register_cuts": list(self.requant_cuts),
        }
