"""engine.bench.run_compare: what /runs draws when two runs share a plot."""
import pandas as pd
import pytest

from engine.bench.reference import compare, describe, KINDS, same_device
from engine.bench.run_compare import (choose_slices, compare_runs, numeric_columns, pick_axis, PREFERRED_X,
                                      PREFERRED_Y, select, series_column, why_not_drawn)
from tests.unit.test_bench_store import sample_rows


def paradox_rows(device="NVIDIA H100 80GB HBM3", n=8192, dtypes=("float16", "float32"), ops=("spmv", "spmm"),
                 method="eager per call (number=8)") -> pd.DataFrame:
    """Paradox rows of every (op, dtype); a float32 speedup is 10x the float16 one at the
    same sparsity, so a curve mixing them shows it."""
    rows = []
    for op in ops:
        for dt in dtypes:
            for r in sample_rows(2):
                rows.append(dict(r, op=op, dtype=dt, rows=n, cols=n, k=1 if op == "spmv" else 64,
                                 device_name=device, method=method,
                                 speedup=r["speedup"] * (10 if dt == "float32" else 1)))
    return pd.DataFrame(rows)


def test_slices_pick_one_op_and_a_dtype_both_runs_have():
    h100, cpu = paradox_rows(), paradox_rows("CPU: Xeon", 512, dtypes=("float16",))
    slices = choose_slices([h100, cpu], {"op": None, "dtype": None})
    assert slices[0] == slices[1] and slices[0]["dtype"] == "float16" and slices[0]["op"] in ("spmv", "spmm")
    for frame, s in zip((h100, cpu), slices):
        part = select(frame, s)
        assert len(part) and set(part["op"]) == {s["op"]} and set(part["dtype"]) == {"float16"}
    # a filter holds for both; no dtype in common: each run keeps its own
    assert choose_slices([h100, cpu], {"op": "spmm", "dtype": "float32"})[1] == {"op": "spmm", "dtype": "float32"}
    own = choose_slices([paradox_rows(dtypes=("float32",)), cpu], {})
    assert [s["dtype"] for s in own] == ["float32", "float16"]
    # one value everywhere: nothing to choose
    assert choose_slices([paradox_rows(dtypes=("float32",), ops=("spmv",))], {}) == [{}]


def test_compare_runs_names_every_mismatch_and_a_like_for_like_pair():
    h100, cpu = paradox_rows(), paradox_rows("CPU: Xeon", 512, dtypes=("float16",))
    s = choose_slices([h100, cpu], {})
    match = compare_runs({"run_id": "ref", "device_name": "NVIDIA H100 80GB HBM3"}, select(h100, s[0]),
                         {"run_id": "cpu", "device_name": "CPU: Xeon"}, select(cpu, s[1]))
    assert set(match.mismatches) == {"device", "rows", "cols"}  # cols is n too: named once
    assert match.label == "H100 80GB HBM3, n = 8192 · CPU, n = 512"
    other = compare_runs({"run_id": "a"}, select(h100, {"op": "spmv", "dtype": "float32"}),
                         {"run_id": "b"}, select(cpu, {"op": "spmv", "dtype": "float16"}))
    assert "dtype" in other.mismatches and "float32" in other.label and "float16" in other.label
    slow = paradox_rows(method="cuda-graph replay")
    timed = compare_runs({"run_id": "a"}, h100, {"run_id": "b"}, slow)
    assert timed.mismatches == ("method",) and "cuda-graph replay" in timed.label
    same = compare_runs({"run_id": "a"}, select(h100, s[0]), {"run_id": "b"}, select(paradox_rows(), s[0]))
    assert same.same and "same device, shape, dtype and method" in same.label
    # runs of different kinds are not matched at all
    assert compare_runs({"run_id": "a"}, h100, {"run_id": "b"}, pd.DataFrame({"sweep": ["your-matrix"]})) is None


def test_two_cpu_models_are_two_devices():
    assert not same_device("CPU: AMD EPYC", "CPU: Intel Xeon") and same_device("NVIDIA H200", "H200")
    ref = describe(KINDS["paradox"], paradox_rows("CPU: AMD EPYC", 512))
    match = compare(ref, device_name="CPU: Intel Xeon", dims={"rows": [512]})
    assert match.mismatches == ("device",) and match.label == "CPU: AMD EPYC · this CPU: Intel Xeon"


def test_axes_come_from_the_runs_numeric_columns():
    acc = pd.DataFrame({"model": ["mlp"] * 2, "pattern": ["dense", "2:4"], "sparsity": [0.0, 0.5],
                        "acc_finetuned": [0.96, 0.95], "seed": [0, 0]})
    numeric = numeric_columns(acc)
    assert numeric == ["sparsity", "acc_finetuned"]  # text and the seed are not axes
    assert pick_axis("speedup", numeric, PREFERRED_Y, avoid="sparsity") == "acc_finetuned"
    assert pick_axis("sparsity", numeric, PREFERRED_X) == "sparsity"
    assert pick_axis(None, [], PREFERRED_Y) is None
    assert series_column([acc]) == "pattern" and series_column([paradox_rows()]) == "backend"


@pytest.mark.parametrize("rows,drawn_rows,words", [
    (pd.DataFrame({"op": ["spmv"], "speedup": [1.0]}), None, "its rows have no sparsity column"),
    (pd.DataFrame({"sparsity": [0.5], "speedup": ["x"]}), None, "its rows have no numeric speedup"),
    (pd.DataFrame({"sparsity": [0.5], "speedup": [1.0], "dtype": ["float32"]}), "empty",
     "it has no rows of float16 (it has dtype float32)"),
])
def test_why_a_run_adds_nothing(rows, drawn_rows, words):
    drawn = rows.iloc[:0] if drawn_rows == "empty" else rows
    assert why_not_drawn(rows, drawn, {"dtype": "float16"}, "sparsity", "speedup") == words
