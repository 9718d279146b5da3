"""Measurement: statistics, the one noise rule, the flat row, validation, repr."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from engine.bench.measurement import (CUDA_GRAPH, EAGER, NOISE_THRESHOLD, NOISY_LABEL, WALL_CLOCK, Measurement,
                                      Task, is_noisy, noisy_flag, normalise_method, ratio_noisy)

TASK = Task(op="spmv", backend="torch-csr", dims={"rows": 512, "cols": 256, "k": 1}, dtype="float32",
            block=16, pattern="uniform", sparsity=0.9, device="cpu", device_name="CPU: test",
            versions={"torch_version": "2.5.1"})


# (noisy cell as stored, read as)
NOISY_CELLS = [(True, True), (False, False), (None, False), ("True", True), ("false", False), ("1", True),
               (1, True), (0, False), (float("nan"), False), (np.bool_(True), True), ("", False)]


@pytest.mark.parametrize("cell, expected", NOISY_CELLS)
def test_a_noisy_cell_reads_the_same_however_it_was_stored(cell, expected):
    assert noisy_flag(cell) is expected


def test_a_ratio_is_noisy_when_its_row_or_its_baseline_is():
    rows = [{"s": 1, "noisy": False}, {"s": 2, "noisy": True}, {"s": 3, "noisy": "False"}, {"s": 4}]
    base = [{"s": 1, "noisy": False}, {"s": 3, "noisy": "True"}, {"s": 4, "noisy": None}]
    assert ratio_noisy(rows, base, on="s") == [False, True, True, False]
    # several key columns: the baseline must match all of them
    two = [{"src": "a", "s": 1, "noisy": False}, {"src": "b", "s": 1, "noisy": False}]
    assert ratio_noisy(two, [{"src": "b", "s": 1, "noisy": True}], on=("src", "s")) == [False, True]
    assert ratio_noisy(rows, [], on="s") == [False, True, False, False]
    # a key column missing in both (NaN as a DataFrame gives it, or None) still matches
    nan_rows = pd.DataFrame([{"k": float("nan"), "s": 1, "noisy": False}]).to_dict("records")
    nan_base = pd.DataFrame([{"k": float("nan"), "s": 1, "noisy": True}]).to_dict("records")
    assert ratio_noisy(nan_rows, nan_base, on=("k", "s")) == [True]
    assert ratio_noisy([{"k": None, "s": 1}], nan_base, on=("k", "s")) == [True]


def test_median_and_iqr_are_those_of_the_raw_times():
    times = (1.0, 2.0, 3.0, 4.0, 100.0)
    m = Measurement(TASK, times)
    assert m.median_s == 3.0
    assert m.iqr_s == pytest.approx(np.quantile(times, 0.75) - np.quantile(times, 0.25)) == 2.0
    assert m.runs == 5 and m.repeats == 5 and m.method == EAGER


def test_noisy_has_one_threshold():
    steady = Measurement(TASK, (1.0, 1.0, 1.0, 1.09, 1.09))
    wide = Measurement(TASK, (1.0, 1.0, 1.5, 1.5, 2.0))
    assert steady.relative_iqr <= NOISE_THRESHOLD and not steady.noisy
    assert wide.relative_iqr > NOISE_THRESHOLD and wide.noisy
    assert Measurement(TASK, (1.0, 1.0)).noisy  # two runs cannot show a spread
    assert is_noisy(1.0, 0.11) and not is_noisy(1.0, 0.09) and not is_noisy(float("nan"), 0.5)
    assert NOISY_LABEL == "noisy (IQR/median > 0.1)"


def test_row_is_flat_and_names_what_and_how():
    m = Measurement(TASK, (1e-5, 2e-5, 3e-5), repeats=20, warmup=3, number_per_run=7)
    row = m.row()
    assert {k: row[k] for k in ("rows", "cols", "k")} == {"rows": 512, "cols": 256, "k": 1}
    assert row["op"] == "spmv" and row["backend"] == "torch-csr" and row["torch_version"] == "2.5.1"
    assert row["density"] == pytest.approx(0.1) and row["block"] == 16
    assert (row["repeats"], row["runs"], row["warmup"], row["number_per_run"]) == (20, 3, 3, 7)
    assert row["median_s"] == 2e-5 and row["method"] == EAGER
    assert all(not isinstance(v, (dict, list, tuple)) for v in row.values())


def test_frozen_and_validated():
    m = Measurement(TASK, (1.0,))
    with pytest.raises(dataclasses.FrozenInstanceError):
        m.method = WALL_CLOCK  # type: ignore[misc]
    with pytest.raises(ValueError, match="method: expected one of"):
        Measurement(TASK, (1.0,), method="stopwatch")
    with pytest.raises(ValueError, match="times_s: expected at least one"):
        Measurement(TASK, ())
    with pytest.raises(ValueError, match="times_s: expected finite"):
        Measurement(TASK, (float("inf"),))
    with pytest.raises(ValueError, match="sparsity: expected a number in \\[0, 1\\]"):
        Task(op="x", sparsity=1.5)
    with pytest.raises(ValueError, match="dims: expected a non-negative integer for n"):
        Task(op="x", dims={"n": 2.5})


def test_repr_is_readable():
    text = repr(Measurement(TASK, (1.2e-5, 1.2e-5, 1.3e-5), number_per_run=50, method=CUDA_GRAPH))
    assert "torch-csr spmv rows=512 cols=256 k=1 float32 s=0.9" in text
    assert "median 12 us" in text and "3 runs x 50 calls" in text and CUDA_GRAPH in text


@pytest.mark.parametrize("text,method", [
    ("torch.utils.benchmark.Timer.timeit (number=8)", EAGER), ("eager per call", EAGER),
    ("cuda-graph replay", CUDA_GRAPH), ("CUDA graph replay x 100", CUDA_GRAPH),
    ("wall clock", WALL_CLOCK), ("", ""), (None, ""), (float("nan"), "")])
def test_old_and_new_method_texts(text, method):
    assert normalise_method(text) == method
