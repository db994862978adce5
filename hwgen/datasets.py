"""The digits data set of scikit-learn (ships with it, no download), as a fixed train/test split.

`load_digits_split()` is the one split every table, test and checkpoint in hwgen is measured on:
8x8 grey images as float32 `(N, 1, 8, 8)` in [0, 1] (pixel / 16), int64 labels, 80/20 stratified
with a fixed seed, so the numbers in the README can be reproduced on any machine.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

SPLIT_SEED = 0
TEST_FRACTION = 0.2
PIXEL_MAX = 16.0  # load_digits pixels are integers 0..16
INPUT_SHAPE = (1, 8, 8)
NUM_CLASSES = 10


@lru_cache(maxsize=1)
def _split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    x = (digits.images.astype(np.float32) / np.float32(PIXEL_MAX)).reshape(-1, *INPUT_SHAPE)
    y = digits.target.astype(np.int64)
    x_tr, x_te, y_tr, y_te = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y)
    for a in (x_tr, x_te, y_tr, y_te):
        a.setflags(write=False)  # shared by the cache: callers copy before mutating
    return x_tr, y_tr, x_te, y_te


def load_digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test): float32 (N, 1, 8, 8) in [0, 1] and int64 labels."""
    return tuple(a.copy() for a in _split())
