from __future__ import annotations

import numpy as np

from hwgen.datasets import load_digits_split


def test_split_is_fixed_stratified_and_scaled():
    x_tr, y_tr, x_te, y_te = load_digits_split()
    again = load_digits_split()
    for a, b in zip((x_tr, y_tr, x_te, y_te), again):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    assert x_tr.shape == (1437, 1, 8, 8) and x_te.shape == (360, 1, 8, 8)
    assert x_tr.dtype == np.float32 and y_tr.dtype == np.int64
    assert 0.0 <= x_tr.min() and x_tr.max() == 1.0
    # stratified: every class's share of the test split is within one image of its overall share
    counts_te = np.bincount(y_te, minlength=10)
    counts_all = np.bincount(np.concatenate([y_tr, y_te]), minlength=10)
    assert np.all(np.abs(counts_te - counts_all * 0.2) <= 1)


def test_split_arrays_are_private_copies():
    x_tr, *_ = load_digits_split()
    x_tr[:] = -1
    assert load_digits_split()[0].min() >= 0
