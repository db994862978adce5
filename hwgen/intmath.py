"""The integer arithmetic contract, written once for Python (the RTL implements the same).

- weights: signed W-bit, zero point 0, one scale per output channel;
- activations: A-bit, zero point 0, signed at the network input, unsigned after ReLU;
- bias: int32 in accumulator units;
- accumulator: signed, `accumulator_bits(...)` wide, so no input can overflow it;
- requantization per output channel: `y = clamp((acc * M + (1 << (S - 1))) >> S, lo, hi)`,
  `>>` arithmetic (so it rounds half up), `0 <= M < 2**MULT_BITS`, `1 <= S <= MAX_SHIFT`.

All functions take and return numpy int64 arrays (or Python ints); no float enters the contract.
"""

from __future__ import annotations

import math

import numpy as np

from .errors import HwgenError

MIN_BITS, MAX_BITS = 2, 8
MULT_BITS = 15  # M is an unsigned 15-bit integer: it fits a signed 16-bit DSP operand
MAX_SHIFT = 47  # keeps acc * M + round inside int64 for any 32-bit accumulator
# One output channel's bias and requantization in their smallest form: int32 bias, M, S (<= 47)
REQUANT_ENTRY_BITS = 32 + MULT_BITS + MAX_SHIFT.bit_length()
BIAS_BITS = 32


def check_bits(bits: int, what: str) -> int:
    if not isinstance(bits, (int, np.integer)) or not MIN_BITS <= bits <= MAX_BITS:
        raise HwgenError(f"{what} must be an integer from {MIN_BITS} to {MAX_BITS}, got {bits!r}")
    return int(bits)


def qrange(bits: int, signed: bool) -> tuple[int, int]:
    """The representable range of a `bits`-wide integer."""
    if signed:
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    return 0, (1 << bits) - 1


def quantize_multiplier(real: float) -> tuple[int, int]:
    """The (M, S) with `M / 2**S` closest to `real`, using as many bits of M as fit."""
    if not math.isfinite(real) or real < 0:
        raise HwgenError(f"requantization scale must be finite and non-negative, got {real!r}")
    if real == 0.0:
        return 0, 1
    # Largest S with M = round(real * 2**S) < 2**MULT_BITS.
    shift = MULT_BITS - 1 - math.frexp(real)[1] + 1
    shift = min(shift, MAX_SHIFT)
    if shift < 1:
        raise HwgenError(f"requantization scale {real:g} is too large for a {MULT_BITS}-bit multiplier")
    m = int(round(real * (1 << shift)))
    if m >= 1 << MULT_BITS:  # rounding carried into a new bit
        m = (m + 1) >> 1
        shift -= 1
        if shift < 1:
            raise HwgenError(f"requantization scale {real:g} is too large for a {MULT_BITS}-bit multiplier")
    return m, shift


def requantize(acc, multiplier, shift, lo: int, hi: int) -> np.ndarray:
    """`clamp((acc * M + (1 << (S - 1))) >> S, lo, hi)`, broadcasting M and S over acc."""
    acc = np.asarray(acc, dtype=np.int64)
    m = np.asarray(multiplier, dtype=np.int64)
    s = np.asarray(shift, dtype=np.int64)
    return np.clip((acc * m + (np.int64(1) << (s - 1))) >> s, lo, hi)


def accumulator_bits(weight_bits: int, act_bits: int, act_signed: bool, taps: int, bias_max: int = 0) -> int:
    """Signed accumulator width that holds any sum of `taps` products plus a bias of |bias| <= bias_max."""
    w_mag = 1 << (weight_bits - 1)  # most negative weight has the largest magnitude
    x_mag = (1 << (act_bits - 1)) if act_signed else (1 << act_bits) - 1
    bound = taps * w_mag * x_mag + abs(int(bias_max))
    return bound.bit_length() + 1


def product_bits(acc_bits: int) -> int:
    """Width of `acc * M + round`: the requantizer's internal width."""
    return acc_bits + MULT_BITS + 1
