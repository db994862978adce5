"""Every weight format's exact bit count against cases computed by hand (docs/analysis.md)."""

from __future__ import annotations

import numpy as np
import pytest

from hwgen.analysis import formats
from models.periodic import layer_mask, parse_scheme


def row_mask(width: int, nonzero_cols: list[int]) -> np.ndarray:
    """One output channel whose (C, 1, 1) columns are zero except `nonzero_cols`."""
    m = np.zeros((1, width, 1, 1), dtype=bool)
    m[0, nonzero_cols] = True
    return m


def test_dense_and_bitmask():
    m = row_mask(36, [0, 17, 35])
    assert formats.dense(m, 8).bits == 36 * 8
    c = formats.bitmask(m, 8)
    assert (c.data_bits, c.meta_bits) == (3 * 8, 36)


def test_csr_fillers_and_row_pointers():
    # Nonzeros at columns 0, 17, 35: zero runs of 0, 16 and 17 before them.
    m = row_mask(36, [0, 17, 35])
    c4 = formats.csr(m, 8, 4)
    # 4-bit gaps hold up to 15 zeros: runs of 16 and 17 each insert one filler -> 5 entries;
    # 2 row pointers of bit_length(5) = 3 bits.
    assert (c4.values, c4.data_bits, c4.meta_bits) == (5, 5 * 8, 5 * 4 + 2 * 3)
    c8 = formats.csr(m, 8, 8)
    assert (c8.values, c8.data_bits, c8.meta_bits) == (3, 3 * 8, 3 * 8 + 2 * 2)


def test_csr_filler_boundaries():
    # Zero runs of exactly 15, 31 and 32 before the nonzeros: 0, 1 and 2 fillers with 4-bit gaps.
    m = row_mask(100, [15, 47, 80])
    assert formats.csr(m, 4, 4).values == 3 + 0 + 1 + 2
    # Trailing zeros after the last nonzero cost nothing; an empty row costs only its pointer.
    two_rows = np.zeros((2, 100, 1, 1), dtype=bool)
    two_rows[0, 3] = True
    c = formats.csr(two_rows, 4, 8)
    assert list(c.row_values) == [1, 0]
    assert c.meta_bits == 1 * 8 + 3 * 1


def pattern_layer() -> np.ndarray:
    """2x2 kernels: {centre, top}, {centre}, {centre, right}, and one removed kernel."""
    m = np.zeros((2, 2, 3, 3), dtype=bool)
    m[0, 0, 1, 1] = m[0, 0, 0, 1] = True
    m[0, 1, 1, 1] = True
    m[1, 0, 1, 1] = m[1, 0, 1, 2] = True
    return m


def test_pattern_with_detected_library():
    library = np.zeros((2, 3, 3), dtype=bool)
    library[0, 1, 1] = library[0, 0, 1] = True  # centre + top
    library[1, 1, 1] = library[1, 1, 2] = True  # centre + right
    c = formats.pattern(pattern_layer(), 8, library)
    # 3 kept kernels of 2 taps (the centre-only kernel is stored in a 2-tap shape, one stored zero);
    # ids: 3 x ceil(log2 2) = 3; kept list: bitmap of 4 bits beats an index list (3 x 1 + 3 x 2 = 9);
    # library: 2 x 9.
    assert (c.data_bits, c.meta_bits) == (6 * 8, 3 + 4 + 18)
    assert list(c.row_values) == [4, 2]


def test_pattern_without_library_uses_distinct_masks():
    c = formats.pattern(pattern_layer(), 8)
    # Library = 3 distinct masks: ids 3 x 2 bits, kept list 4 bits, library 27 bits.
    assert (c.data_bits, c.meta_bits) == (5 * 8, 6 + 4 + 27)


def test_pattern_index_list_when_cheaper_than_bitmap():
    # 1 of 64 kernels kept: index list = 1 x ceil(log2 64) + 2 pointers x bit_length(1) = 8 bits < 64.
    m = np.zeros((1, 64, 3, 3), dtype=bool)
    m[0, 5, 1, 1] = True
    c = formats.pattern(m, 8)
    assert c.meta_bits == 0 + 8 + 9


def test_periodic_psd1_p16_hand_count():
    mask = layer_mask(parse_scheme("PSD1_P16").table(), 64, 64).astype(bool)
    c = formats.periodic(mask, 8, 16)
    # 4096 kernels, 256 per residue: one dense residue (9 taps) and 15 centre-only residues.
    assert c.values == 256 * 9 + 15 * 256 == np.count_nonzero(mask)
    assert c.meta_bits == 16 * 9
    # The bound: periodic costs at most 1% more than nonzeros x W.
    assert c.bits <= 1.01 * np.count_nonzero(mask) * 8


def test_periodic_keeps_structural_zeros():
    mask = layer_mask(parse_scheme("PS4_P4").table(), 8, 8).astype(bool)
    thinned = mask.copy()
    thinned[0, 0, 1, 1] = False  # a weight quantized to zero: its tap is still stored
    assert formats.periodic(thinned, 8, 4).values == formats.periodic(mask, 8, 4).values == 8 * 8 * 4


def test_storage_applicability_and_smallest():
    mask = layer_mask(parse_scheme("PSD1_P16").table(), 64, 64).astype(bool)
    costs = formats.storage(mask, 8, "periodic", 16)
    assert set(costs) == set(formats.FORMATS)
    # A periodic layer is a pattern layer whose library is its table: {dense, centre} -> 1-bit ids.
    assert costs["pattern"].meta_bits == 4096 * 1 + 2 * 9
    assert formats.smallest(costs) == "periodic"
    dense_costs = formats.storage(np.ones((4, 4, 3, 3), dtype=bool), 8, "dense", None)
    assert dense_costs["pattern"] is None and dense_costs["periodic"] is None
    assert formats.smallest(dense_costs) == "dense"
    unstructured = formats.storage(pattern_layer(), 8, "unstructured", None)
    assert unstructured["pattern"] is None and unstructured["periodic"] is None


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_bits_scale_with_weight_width(bits):
    m = row_mask(36, [0, 17, 35])
    assert formats.csr(m, bits, 4).data_bits == 5 * bits
    assert formats.bitmask(m, bits).data_bits == 3 * bits


def test_csr_matches_a_row_walk_on_random_masks():
    rng = np.random.default_rng(1)
    for _ in range(100):
        mask = rng.random((int(rng.integers(1, 6)), int(rng.integers(1, 60)), 1, 1)) < rng.random()
        for bits in (2, 4, 8):
            entries = 0
            for row in mask.reshape(mask.shape[0], -1):
                gap = 0
                for v in row:
                    if v:
                        entries, gap = entries + 1 + (gap >> bits), 0
                    else:
                        gap += 1
            assert formats.csr(mask, 8, bits).values == entries
