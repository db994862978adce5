"""Sizing the engine: the smallest engine of given lanes and bus that runs every planned layer."""

from __future__ import annotations

import dataclasses
import math

import numpy as np

from .. import intmath
from ..errors import HwgenError
from .params import DEFAULT_PIPELINE, EngineParams
from .plan import LayerPlan, rom_tables
from .tiling import band_words, layer_tiling


def _range_bits(lo: int, hi: int) -> int:
    """The fewest bits whose range (two's complement when lo < 0) holds every value of [lo, hi]."""
    return next(b for b in range(1, 64) if intmath.qrange(b, lo < 0)[0] <= lo and hi <= intmath.qrange(b, lo < 0)[1])


def fit_params(plans: list[LayerPlan], *, m_lanes: int = 4, x_lanes: int = 4, bus_bits: int = 64,
               glb_kib: int | None = None, weight_kib: int | None = None, sparse: bool | None = None,
               pipeline: int = DEFAULT_PIPELINE) -> EngineParams:
    """The smallest engine of the given lanes and bus that runs every layer of `plans`.

    `glb_kib`: the input buffer's size; layers whose input does not fit run in row bands
    (`layer_tiling`). Without it the buffer holds the largest input whole. `weight_kib`: the
    weight buffer's size (more lane groups stay resident); without it, one lane group of the
    widest layer. `pipeline`: register cuts per long path (`EngineParams.pipeline`).
    """
    if not plans:
        raise HwgenError("no conv layers to generate an engine for")
    weight_bits = {p.weight_bits for p in plans}
    # outputs travel in the engine's activation fields too (packed at A <= 4): A holds every clamp range
    act_bits = max(max(p.act_bits, _range_bits(p.lo, p.hi)) for p in plans)
    if len(weight_bits) != 1:
        raise HwgenError(f"layers mix weight widths {sorted(weight_bits)}; the engine has one weight width")
    acc = max(intmath.accumulator_bits(p.weight_bits, p.act_bits, p.in_signed, p.max_taps_per_output(),
                                       int(np.abs(p.bias).max(initial=0))) for p in plans)
    rom, _ = rom_tables(plans)
    wide = [p for p in plans if p.kernel > 3]
    params = EngineParams(
        m_lanes=m_lanes, x_lanes=x_lanes, bus_bits=bus_bits, weight_bits=weight_bits.pop(), act_bits=act_bits,
        acc_bits=max(acc, 8), max_width=max(p.in_shape[2] for p in plans),
        max_out_width=max(p.out_shape[2] for p in plans), max_channels=max(p.in_shape[0] for p in plans),
        kernel_max=max(3, *(p.kernel for p in plans)),
        wide_kernel_words=max((p.in_shape[0] * p.taps for p in wide), default=0),
        patterns=tuple(rom), sparse=any(not p.dense for p in plans) if sparse is None else sparse,
        lane_period=0 if any(p.ids is not None for p in plans) else math.lcm(*(p.period for p in plans)),
        library=any(p.ids is not None for p in plans), pipeline=pipeline,
        residue_groups=any(p.residue_groups for p in plans), fold=max(p.fold for p in plans),
    ).validate()
    if glb_kib is None:
        words = max(band_words(p, params, p.out_shape[1]) for p in plans)
    else:
        if not isinstance(glb_kib, int) or glb_kib < 1:
            raise HwgenError(f"glb-kib must be a positive integer, got {glb_kib!r}")
        words = glb_kib * 1024 * 8 // (params.row_elems * params.act_bits)
    params = dataclasses.replace(params, input_words=max(words, 1))
    if weight_kib is not None:
        if not isinstance(weight_kib, int) or weight_kib < 1:
            raise HwgenError(f"weight-kib must be a positive integer, got {weight_kib!r}")
        least = params.weight_buffer_bytes
        params = dataclasses.replace(params, weight_words=weight_kib * 1024 * 8 // (params.weight_word_bytes
                                                                                     * params.weight_bits))
        if params.weight_buffer_bytes > weight_kib * 1024:  # it holds less than one lane group of the widest layer
            raise HwgenError(f"--weight-kib {weight_kib} holds less than one lane group of the widest layer "
                             f"({params.max_channels} input channels): it needs {-(-least // 1024)} or more")
    for p in plans:
        layer_tiling(p, params, glb_kib)  # refuses a layer whose smallest band does not fit
    doubled = dataclasses.replace(params, double_bands=True)
    if any(layer_tiling(p, doubled).double for p in plans):  # build the second band's path where a layer takes it
        params = doubled
    if not params.sparse and any(not p.dense for p in plans):
        raise HwgenError("a dense-only engine cannot run periodic layers; plan them with dense_only=True")
    return params
