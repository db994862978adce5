"""Mapping search and closed-form counts: compulsory equality, buffer monotonicity, and the
closed form against a brute-force walk of the tile loop nest."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from analysis_helpers import conv_layer
from hwgen.analysis import analyze_layer, load_arch, load_energy
from hwgen.analysis.counts import Extents, Mapping, evaluate
from hwgen.analysis.formats import dense
from hwgen.errors import HwgenError
from models.periodic import layer_mask, parse_scheme

ENERGY = load_energy("horowitz45")
GENERIC = load_arch("generic")


def test_large_buffer_reaches_compulsory_traffic_resnet18_conv2():
    layer = conv_layer("conv2", 64, 64, 56)
    r = analyze_layer(layer, GENERIC.with_glb_kib(512), ENERGY, "dram")
    assert r.dram_bytes == {"weights": 36_864, "metadata": 0, "tables": 0, "descriptor": 0, "inputs": 200_704,
                            "outputs": 200_704, "psums": 0, "total": 438_272}
    assert r.compulsory_bytes == {"weights": 36_864, "inputs": 200_704, "outputs": 200_704, "tables": 0,
                                  "total": 438_272, "inputs_padded": 215_296}
    assert r.lower_bound_ratio == 1.0


def test_small_buffer_costs_more_than_compulsory():
    layer = conv_layer("conv2", 64, 64, 56)
    r = analyze_layer(layer, GENERIC.with_glb_kib(16), ENERGY, "dram")
    assert r.dram_bytes["total"] > r.compulsory_bytes["total"]
    assert r.mapping.m * r.mapping.c * 9 * 8 <= 16 * 8192  # the weight tile fits the buffer


LAYERS = [
    conv_layer("conv2", 64, 64, 56),
    conv_layer("down3x3", 128, 64, 56, stride=2),
    conv_layer("down1x1", 128, 64, 56, k=1, stride=2),
    conv_layer("deep", 512, 512, 7),
    conv_layer("psd", 128, 128, 28, mask=layer_mask(parse_scheme("PSD1_P16").table(), 128, 128), kind="periodic",
               period=16),
]


@pytest.mark.parametrize("layer", LAYERS, ids=lambda l: l.name)
def test_more_buffer_never_increases_searched_dram_traffic(layer):
    totals = []
    for kib in (24, 32, 48, 64, 96, 128, 192, 256, 512, 1024, 4096):
        try:
            totals.append(analyze_layer(layer, GENERIC.with_glb_kib(kib), ENERGY, "dram").dram_bytes["total"])
        except HwgenError:
            assert not totals, "a buffer that fits must keep fitting when it grows"
    assert len(totals) >= 5
    assert all(b <= a for a, b in zip(totals, totals[1:])), totals
    assert totals[-1] < totals[0] or layer.name == "down1x1"


def brute_force(layer, mapping: Mapping, wbits_per_weight: int, psum_bits: int) -> dict:
    """Walk the DRAM-level tile loops in order and fetch a tile whenever it changes."""
    dims = {"M": layer.m, "C": layer.c, "P": layer.p, "Q": layer.q}
    tile = {"M": mapping.m, "C": mapping.c, "P": mapping.p, "Q": mapping.q}
    ranges = {d: [(s, min(s + tile[d], n)) for s in range(0, n, tile[d])] for d, n in dims.items()}
    rel = {"weights": "MC", "inputs": "CPQ", "outputs": "MPQ"}
    resident = {t: None for t in rel}
    bits = {"weights": 0, "inputs": 0, "outputs": 0, "psums": 0}
    visits: dict = {}
    for idx in itertools.product(*(range(len(ranges[d])) for d in mapping.order)):
        at = dict(zip(mapping.order, idx))
        for t, dims_t in rel.items():
            key = tuple(at[d] for d in dims_t)
            if key == resident[t]:
                continue
            resident[t] = key
            (m0, m1), (c0, c1) = ranges["M"][at["M"]], ranges["C"][at["C"]]
            (p0, p1), (q0, q1) = ranges["P"][at["P"]], ranges["Q"][at["Q"]]
            if t == "weights":
                bits[t] += (m1 - m0) * (c1 - c0) * layer.r * layer.s * wbits_per_weight
            elif t == "inputs":
                rows, cols = layer.touched(0, p0, p1).size, layer.touched(1, q0, q1).size
                bits[t] += (c1 - c0) * rows * cols * layer.in_bits
            else:
                visits[key] = visits.get(key, 0) + 1
                n = (m1 - m0) * (p1 - p0) * (q1 - q0)
                # Each visit after the first reads back partial sums and the one before it wrote them.
                bits["psums"] += 2 * psum_bits * n * (visits[key] > 1)
    bits["outputs"] = layer.m * layer.p * layer.q * layer.out_bits
    return {k: v // 8 for k, v in bits.items()}


SMALL = [conv_layer("s1", 6, 5, 7), conv_layer("s2", 6, 5, 9, stride=2), conv_layer("k1", 4, 3, 6, k=1, stride=2)]


@pytest.mark.parametrize("layer", SMALL, ids=lambda l: l.name)
def test_closed_form_matches_brute_force_loop_nest(layer):
    cost = dense(layer.mask, 8)
    rows, cols = Extents(layer, 0), Extents(layer, 1)
    rng = np.random.default_rng(0)
    for order in ("MCPQ", "QPCM", "CMQP", "PMQC", "QCPM", "MPQC"):
        for _ in range(6):
            t = {d: int(rng.integers(1, n + 1)) for d, n in (("M", layer.m), ("C", layer.c), ("P", layer.p), ("Q", layer.q))}
            mp = Mapping(order, t["M"], t["C"], t["P"], t["Q"])
            got = evaluate(layer, cost, GENERIC, ENERGY, order, mp.m, mp.c, mp.p, mp.q, rows, cols)
            want = brute_force(layer, mp, 8, GENERIC.psum_bits)
            assert {k: int(got[k]) for k in want} == want, (order, t)


def test_periodic_layer_moves_nonzeros_and_table_only():
    mask = layer_mask(parse_scheme("PSD1_P16").table(), 64, 64)
    layer = conv_layer("psd", 64, 64, 56, mask=mask, kind="periodic", period=16)
    r = analyze_layer(layer, GENERIC.with_glb_kib(512), ENERGY, "dram")
    assert r.format == "periodic"
    assert r.dram_bytes["weights"] == 6144 and r.dram_bytes["metadata"] == 144 // 8
    assert r.dram_bytes["total"] == r.compulsory_bytes["total"]
    assert r.macs == 6144 * 56 * 56 == layer.effectual_macs


def test_forced_format_and_dense_fallback():
    layer = conv_layer("conv2", 64, 64, 56)
    r = analyze_layer(layer, GENERIC.with_glb_kib(512), ENERGY, "dram", fmt="periodic")
    assert r.format == "dense"  # periodic cannot describe a dense layer
    with pytest.raises(HwgenError, match="unknown weight format"):
        analyze_layer(layer, GENERIC, ENERGY, "dram", fmt="zip")


def test_dense_cycles_follow_the_array_shape():
    layer = conv_layer("conv2", 64, 64, 56)
    r = analyze_layer(layer, GENERIC.with_glb_kib(512), ENERGY, "dram")
    assert r.cycles == (64 // 16) * (64 * 9) * (56 * 56 // 16)


def test_load_imbalance_costs_cycles():
    # Channel 0 keeps all 9 taps, the others 1: a 16-channel group takes as long as its busiest channel.
    mask = np.zeros((16, 4, 3, 3), dtype=bool)
    mask[:, :, 1, 1] = True
    mask[0] = True
    r = analyze_layer(conv_layer("skew", 16, 4, 8, mask=mask, kind="unstructured"), GENERIC, ENERGY, "dram", fmt="csr8")
    assert r.cycles == 4 * 9 * (8 * 8 // 16)


def test_energy_objective_never_costs_more_energy():
    layer = conv_layer("conv2", 64, 64, 56)
    arch = GENERIC.with_glb_kib(32)
    by_dram = analyze_layer(layer, arch, ENERGY, "dram")
    by_energy = analyze_layer(layer, arch, ENERGY, "energy")
    assert by_energy.energy_pj["total"] <= by_dram.energy_pj["total"]
    assert by_dram.dram_bytes["total"] <= by_energy.dram_bytes["total"]


def test_fixed_mapping_that_does_not_fit_is_refused():
    layer = conv_layer("conv2", 64, 64, 56)
    with pytest.raises(HwgenError, match="needs .* KiB of buffer, more than the 16 KiB"):
        analyze_layer(layer, GENERIC.with_glb_kib(16), ENERGY, "dram", mapping=Mapping("MCPQ", 64, 64, 56, 56))
    with pytest.raises(HwgenError, match="even the smallest tiles"):
        analyze_layer(conv_layer("deep", 512, 512, 7), GENERIC.with_glb_kib(0.01), ENERGY, "dram")
