"""Data sets that ship with installed packages: the lab's one digits loader.

scikit-learn's handwritten digits (1,797 images of 8x8 pixels, values 0..16, classes
0..9) are used by several pages. Every page reads them here and uses the same split:

* **the split**: stratified by class, 25 % of each class held out for test, chosen by
  ``numpy.random.default_rng(0)`` (``DIGITS_SPLIT_SEED``); 1,347 training images and
  450 test images. A page that trains several seeds varies the model's initial weights
  and batch order, never the split, so results on every page are on the same test set.

    x_train, x_test, y_train, y_test = digits_split()        # (1347, 64) float32 in [0, 1], ...
    images = digits_images()                                  # (1797, 8, 8) float64 in [0, 1]
"""
from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import numpy as np

DIGITS_TEST_FRACTION = 0.25
DIGITS_SPLIT_SEED = 0


@functools.lru_cache(maxsize=1)
def _digits_table() -> tuple[np.ndarray, np.ndarray]:
    spec = importlib.util.find_spec("sklearn")
    if spec is not None and spec.submodule_search_locations:
        path = Path(list(spec.submodule_search_locations)[0]) / "datasets" / "data" / "digits.csv.gz"
        if path.exists():     # importing sklearn.datasets takes seconds on a busy machine
            table = np.loadtxt(path, delimiter=",")
            return table[:, :-1], table[:, -1].astype(np.int64)
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data.astype(np.float64), data.target.astype(np.int64)


def load_digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """x (1797, 64) pixel values 0..16 (float64), y (1797,) classes 0..9 (int64); copies."""
    x, y = _digits_table()
    return x.copy(), y.copy()


def digits_images() -> np.ndarray:
    """All 1797 digits as (1797, 8, 8) images scaled to [0, 1]."""
    x, _y = _digits_table()
    return (x / 16.0).reshape(-1, 8, 8)


def digits_test_mask() -> np.ndarray:
    """(1797,) bool: which images are in the lab's one test set (see the module docstring)."""
    _x, y = _digits_table()
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    test = np.zeros(len(y), dtype=bool)
    for c in range(10):
        idx = rng.permutation(np.flatnonzero(y == c))
        test[idx[:int(round(len(idx) * DIGITS_TEST_FRACTION))]] = True
    return test


def digits_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The lab's one digits split: x_train, x_test (N, 64) float32 in [0, 1], y_train, y_test int64."""
    x, y = _digits_table()
    test = digits_test_mask()
    x = (x / 16.0).astype(np.float32)
    return x[~test], x[test], y[~test], y[test]
