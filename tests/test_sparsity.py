"""`hwgen.sparsity.detect` on layers whose structure the test builds (and so knows)."""

from __future__ import annotations

import numpy as np
import pytest

from hwgen.errors import HwgenError
from hwgen.ir import Node
from hwgen.sparsity import MAX_PATTERNS, PERIODIC_OFFSET, detect, kernel_masks
from models.pattern_pruning import candidate_patterns
from models.periodic import layer_mask, parse_scheme


def _conv(w, groups=1) -> Node:
    return Node("layer", "conv2d", ("x",), {"groups": groups}, np.asarray(w, dtype=np.float32))


def _weights(rng, m, c, k=3):
    w = rng.standard_normal((m, c, k, k))
    w[w == 0] = 1.0
    return w


def _assert_periodic_rule(info, nz):
    """Every kernel lies inside table[(m + c + offset) % P]; exactly equal when info.exact."""
    m, c, _ = nz.shape
    table = np.asarray(info.patterns, dtype=bool).reshape(info.period, -1)
    residue = (np.arange(m)[:, None] + np.arange(c)[None, :] + info.offset) % info.period
    want = table[residue]
    assert not (nz & ~want).any()
    if info.exact:
        assert (nz == want).all()


def test_dense():
    info = detect(_conv(_weights(np.random.default_rng(0), 8, 4)))
    assert (info.kind, info.period, info.patterns, info.nonzeros) == ("dense", None, [], 8 * 4 * 9)
    assert info.kept_kernels == info.total_kernels == 32 and info.taps_per_kernel == 9


@pytest.mark.parametrize("scheme, period", [("PSD1_P16", 16), ("PSD4_P8", 8), ("PS4_P4", 4), ("PS2_P4", 4),
                                            ("pSC3", 4), ("PS5_P4", 4), ("PSD2_P4", 4)])
@pytest.mark.parametrize("m, c", [(64, 48), (32, 96)])
def test_periodic_schemes_report_their_table(scheme, period, m, c):
    sch = parse_scheme(scheme)
    w = _weights(np.random.default_rng(1), m, c) * layer_mask(sch.table(), m, c)
    info = detect(_conv(w))
    assert info.kind == "periodic" and info.period == period and info.offset == PERIODIC_OFFSET == 1
    assert info.patterns == sch.table().tolist()
    assert info.exact and info.nonzeros == int(np.count_nonzero(w))
    assert info.taps_per_kernel == int(sch.table().reshape(period, -1).sum(1).max())
    _assert_periodic_rule(info, kernel_masks(_conv(w)))


def test_smallest_period_is_reported():
    # PS4_P8 repeats its quadrant masks every 4 residues: the smallest period is 4.
    sch = parse_scheme("PS4_P8")
    w = _weights(np.random.default_rng(2), 32, 32) * layer_mask(sch.table(), 32, 32)
    info = detect(_conv(w))
    assert info.period == 4 and info.patterns == sch.table()[:4].tolist()


def test_any_rotation_is_canonicalised_to_offset_one():
    rng = np.random.default_rng(3)
    table = (rng.random((6, 3, 3)) < 0.5).astype(np.uint8)
    table[:, 1, 1] = 1
    m, c = 24, 30
    residue = (np.arange(m)[:, None] + np.arange(c)[None, :] + 4) % 6  # offset 4 in the layer
    w = _weights(rng, m, c) * table[residue]
    info = detect(_conv(w))
    assert info.kind == "periodic" and info.period == 6 and info.offset == 1
    assert info.patterns == np.roll(table, -3, axis=0).tolist()  # table'[k] = table[k + 3]
    _assert_periodic_rule(info, kernel_masks(_conv(w)))


def test_periodic_tolerates_weights_quantized_to_zero():
    sch = parse_scheme("PSD4_P8")
    rng = np.random.default_rng(4)
    w = _weights(rng, 64, 64) * layer_mask(sch.table(), 64, 64)
    w[rng.random(w.shape) < 0.15] = 0.0  # what low-bit quantization does to small weights
    info = detect(_conv(w))
    assert info.kind == "periodic" and info.period == 8 and not info.exact
    assert info.patterns == sch.table().tolist()
    _assert_periodic_rule(info, kernel_masks(_conv(w)))


def test_periodic_with_few_quantized_zeros_is_not_a_library():
    # A handful of zeros inside the patterns makes the kept masks an exact library of the four
    # quadrants plus a few subsets of them; the period is still the structure.
    sch = parse_scheme("PS4_P4")
    rng = np.random.default_rng(11)
    w = _weights(rng, 64, 64) * layer_mask(sch.table(), 64, 64)
    w[rng.random(w.shape) < 0.004] = 0.0
    info = detect(_conv(w))
    assert info.kind == "periodic" and info.period == 4 and not info.exact
    assert info.patterns == sch.table().tolist()


def test_periodic_depthwise_uses_local_channel_index():
    sch = parse_scheme("PS4_P4")
    w = _weights(np.random.default_rng(5), 32, 1) * layer_mask(sch.table(), 32, 1)
    info = detect(_conv(w, groups=32))
    assert info.kind == "periodic" and info.period == 4 and info.patterns == sch.table().tolist()


def _pattern_layer(rng, m, c, k_lib, removed):
    shapes = candidate_patterns(4)
    library = shapes[rng.choice(len(shapes), k_lib, replace=False)]
    ids = rng.integers(0, k_lib, (m, c))
    mask = library[ids].reshape(m, c, 3, 3).astype(float)
    gone = rng.random((m, c)) < removed
    mask[gone] = 0
    return _weights(rng, m, c) * mask, library, ids, gone


def test_pattern_library_with_connectivity():
    rng = np.random.default_rng(6)
    w, library, ids, gone = _pattern_layer(rng, 64, 64, 6, 0.3)
    info = detect(_conv(w))
    assert info.kind == "pattern" and info.connectivity and info.exact
    assert info.kept_kernels == int((~gone).sum()) < info.total_kernels == 64 * 64
    assert sorted(map(str, info.patterns)) == sorted(str(p.reshape(3, 3).tolist()) for p in library)
    assert info.taps_per_kernel == 4 and info.period is None
    lib = np.asarray(info.patterns, dtype=bool).reshape(len(info.patterns), 9)
    assert (info.pattern_ids[gone] == -1).all()
    np.testing.assert_array_equal(lib[info.pattern_ids[~gone]], kernel_masks(_conv(w))[~gone])


def test_pattern_tolerates_weights_quantized_to_zero():
    rng = np.random.default_rng(7)
    w, library, _, _ = _pattern_layer(rng, 64, 32, 8, 0.2)
    w[rng.random(w.shape) < 0.1] = 0.0
    info = detect(_conv(w))
    assert info.kind == "pattern" and not info.exact and len(info.patterns) == 8
    nz = kernel_masks(_conv(w))
    lib = np.asarray(info.patterns, dtype=bool).reshape(-1, 9)
    kept = info.pattern_ids >= 0
    assert not (nz[kept] & ~lib[info.pattern_ids[kept]]).any()


def test_whole_kernel_removal_is_connectivity():
    rng = np.random.default_rng(8)
    w = _weights(rng, 32, 32) * (rng.random((32, 32, 1, 1)) < 0.6)
    info = detect(_conv(w))
    assert info.kind == "connectivity" and info.patterns == [np.ones((3, 3), int).tolist()]
    assert info.kept_kernels == int(np.count_nonzero(np.abs(w).sum((2, 3))))


@pytest.mark.parametrize("density", [0.1, 0.3, 0.5, 0.7, 0.9])
def test_random_pruning_is_unstructured(density):
    rng = np.random.default_rng(9)
    w = _weights(rng, 64, 64) * (rng.random((64, 64, 3, 3)) < density)
    info = detect(_conv(w))
    assert info.kind == "unstructured" and info.patterns == [] and info.period is None
    assert info.nonzeros == int(np.count_nonzero(w))


def test_too_many_patterns_is_unstructured():
    rng = np.random.default_rng(10)
    shapes = candidate_patterns(4)  # 56 shapes, more than a library holds
    assert len(shapes) > MAX_PATTERNS
    mask = shapes[rng.integers(0, len(shapes), (64, 64))].reshape(64, 64, 3, 3)
    assert detect(_conv(_weights(rng, 64, 64) * mask)).kind == "unstructured"


def test_small_random_layer_is_not_mistaken_for_structure():
    rng = np.random.default_rng(11)
    w = _weights(rng, 16, 1) * (rng.random((16, 1, 3, 3)) < 0.5)
    assert detect(_conv(w)).kind == "unstructured"


def test_pointwise_and_linear_layers():
    rng = np.random.default_rng(12)
    pw = _weights(rng, 32, 16, k=1)
    assert detect(_conv(pw)).kind == "dense"
    pw[rng.random(pw.shape) < 0.4] = 0
    assert detect(_conv(pw)).kind == "unstructured"
    lin = Node("fc", "linear", ("x",), {}, rng.standard_normal((10, 64)).astype(np.float32))
    info = detect(lin)
    assert info.kind == "dense" and info.kernel_shape == (1, 1) and info.total_kernels == 640
    lin.weight[:, ::2] = 0  # a rule in c alone, not in (m + c)
    assert detect(lin).kind == "unstructured"
    checker = (np.arange(10)[:, None] + np.arange(64)[None, :]) % 2 == 0
    lin.weight = np.where(checker, 0, rng.standard_normal((10, 64)) + 5).astype(np.float32)
    info = detect(lin)
    assert info.kind == "periodic" and info.period == 2 and info.patterns == [[[1]], [[0]]]


def test_all_zero_layer():
    info = detect(_conv(np.zeros((4, 3, 3, 3))))
    assert (info.kind, info.kept_kernels, info.nonzeros, info.patterns) == ("connectivity", 0, 0, [])


def test_weightless_node_is_refused():
    with pytest.raises(HwgenError, match="relu"):
        detect(Node("r", "relu", ("x",)))
