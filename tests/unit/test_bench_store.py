"""Benchmark rows in the store: CSV round trip, import validation, lookup, dead jobs, restart."""
from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from engine.bench.schema import OK_REQUIRED, PARADOX_COLUMNS, STATUSES, read_rows_csv
from engine.bench.spec import BenchmarkSpec
from engine.runtime.store import (RunStore, find_stored_row, import_csv, mark_dead_runs, stored_rows_by_key,
                          to_csv_text, validate_import)


def sample_rows(n_sparsities: int = 2) -> list[dict]:
    """Schema-complete rows (dense and CSR) as a sweep would yield them."""
    rows = []
    for i, s in enumerate([0.5, 0.9, 0.99, 0.999][:n_sparsities]):
        for backend, fmt, t in (("torch-dense", "dense", 1e-3), ("torch-csr", "csr", 1e-3 * (1 - s) * 4)):
            spec = BenchmarkSpec.make("spmv", backend, 64, s, repeats=3)
            density = 1 - s
            rows.append({c: None for c in PARADOX_COLUMNS} | spec.as_dict() | {
                "sweep": "paradox", "spec_key": spec.key, "status": "ok", "device_name": "NVIDIA H100 80GB HBM3",
                "torch_version": "2.11.0", "scipy_version": "1.17.1", "method": "timeit", "nnz": density * 4096,
                "density": density, "median_s": t, "iqr_s": t / 20, "runs": 3, "prepare_s": 1e-4,
                "dense_median_s": 1e-3, "speedup": 1e-3 / t, "theoretical": 1 / density,
                "efficiency": 1e-3 / t * density, "gflops": 1.0, "gbs": 2.0, "bytes_moved": 1e4,
                "peak_gbs": 3350.0, "pct_peak_bw": 0.06, "noisy": False, "message": "",
                "measured_at": "2026-11-22 06:00:00"})
    return rows


# (what to break, expected words in the message)
BAD_IMPORTS = [
    ("drop_column", "columns: expected"),
    ("text_in_number", "column median_s: expected numbers"),
    ("nan_in_ok", "expected a number on rows with status ok"),
    ("formula", "spreadsheet formula"),
    ("fraction_in_int", "expected whole numbers"),
    ("empty", "empty file"),
    ("too_big", "file size"),
    ("not_csv", "expected"),
    # issue 22 items 4, 6, 7, 9
    ("inf", "column median_s: expected a finite number"),
    ("minus_inf", "column speedup: expected a finite number"),
    ("overflow", "column gbs: expected a finite number"),
    ("sparsity_7.5", r"column sparsity: expected a finite number in \[0.0, 1.0\], got '7.5'"),
    ("rows_-5", "column rows: expected a finite number >= 0, got '-5'"),
    ("status_pwned", "column status: expected one of ok, unsupported, refused, error, reused, got 'pwned'"),
    ("unknown_column", "columns: expected only columns of this kind of run, got unknown '=cmd|"),
    ("duplicate_column", "columns: expected each column once, got 'op' more than once"),
    ("too_many_columns", "columns: expected at most 200, got 2041"),
]


def _broken(kind: str) -> str | bytes:
    frame = pd.DataFrame(sample_rows())
    if kind == "drop_column":
        frame = frame.drop(columns=["device_name"])
    elif kind == "text_in_number":
        frame["median_s"] = frame["median_s"].astype(object)
        frame.loc[1, "median_s"] = "fast"
    elif kind == "nan_in_ok":
        frame.loc[2, "speedup"] = float("nan")
    elif kind == "formula":
        frame.loc[0, "message"] = '=HYPERLINK("http://x")'
    elif kind == "fraction_in_int":
        frame["rows"] = frame["rows"].astype(float)
        frame.loc[0, "rows"] = 64.5
    elif kind == "inf":
        frame.loc[1, "median_s"] = float("inf")
    elif kind == "minus_inf":
        frame.loc[1, "speedup"] = float("-inf")
    elif kind == "overflow":
        frame["gbs"] = frame["gbs"].astype(object)
        frame.loc[0, "gbs"] = "1e999"
    elif kind == "sparsity_7.5":
        frame.loc[3, "sparsity"] = 7.5
    elif kind == "rows_-5":
        frame.loc[0, "rows"] = -5
    elif kind == "status_pwned":
        frame.loc[2, "status"] = "pwned"
    elif kind == "unknown_column":
        frame["=cmd|' /C calc'!A0"] = 1
    elif kind == "duplicate_column":
        text = frame.to_csv(index=False)
        head, body = text.split("\n", 1)
        return head.replace(",backend,", ",op,", 1) + "\n" + body
    elif kind == "too_many_columns":
        frame = pd.concat([frame, pd.DataFrame({f"x{i}": [1] * len(frame) for i in range(2000)})], axis=1)
    elif kind == "empty":
        return ""
    elif kind == "too_big":
        return b"x" * (6 * 2**20)
    elif kind == "not_csv":
        return b"\xff\xfe\x00garbage\x00"
    return frame.to_csv(index=False)


def test_csv_round_trip_keeps_columns_and_types():
    rows = sample_rows(3)
    text = to_csv_text(rows)
    back = read_rows_csv(text)
    assert list(back.columns) == list(PARADOX_COLUMNS)
    assert back["rows"].dtype.kind == "i" and back["median_s"].dtype.kind == "f"
    assert back["noisy"].tolist() == [False] * 6
    pd.testing.assert_series_equal(back["speedup"], pd.Series([r["speedup"] for r in rows], name="speedup"))
    assert back["spec_key"].tolist() == [r["spec_key"] for r in rows]


def test_import_good_file_stores_a_run(tmp_path):
    store = RunStore(tmp_path)
    run_id = import_csv(store, to_csv_text(sample_rows()), "paradox", PARADOX_COLUMNS, "x.csv", OK_REQUIRED)
    meta = store.meta(run_id)
    assert meta["status"] == "imported" and meta["n_rows"] == 4 and "H100" in meta["device_name"]
    assert store.frame(run_id)["speedup"].iloc[1] == pytest.approx(sample_rows()[1]["speedup"])


@pytest.mark.parametrize("kind,words", BAD_IMPORTS)
def test_import_rejects_bad_files_and_stores_nothing(tmp_path, kind, words):
    store = RunStore(tmp_path)
    with pytest.raises(ValueError, match=words):
        import_csv(store, _broken(kind), "paradox", PARADOX_COLUMNS, "bad.csv", OK_REQUIRED, statuses=STATUSES)
    assert store.list_runs() == []


def test_header_cells_are_neutralised_on_export():
    frame = pd.DataFrame({"=cmd|' /C calc'!A0": [1], "@message": ["x"], "-cmd": [2], "ok": ["=1"]})
    header, row = to_csv_text(frame).splitlines()
    assert header == "'=cmd|' /C calc'!A0,'@message,'-cmd,ok" and row == "1,x,2,'=1"


def test_validation_is_linear_in_the_columns():
    """A file at the column cap (200) validates in about the time of a narrow one, per cell."""
    import time

    def timed(n_cols: int) -> float:
        frame = pd.DataFrame({f"c{i}": [0.5] * 2000 for i in range(n_cols)})
        text = frame.to_csv(index=False)
        cols = {f"c{i}": ("float", False) for i in range(n_cols)}
        started = time.perf_counter()
        validate_import(text, cols)
        return (time.perf_counter() - started) / n_cols

    narrow, wide = timed(20), timed(200)
    assert wide < 3 * narrow + 2e-3  # per-column cost does not grow with the width


def test_validate_import_allows_negative_numbers_and_quoted_export():
    rows = sample_rows()
    rows[0]["message"] = "=quoted on export"
    rows[1]["gflops"] = -1.0
    frame = validate_import(to_csv_text(rows), PARADOX_COLUMNS)
    assert frame["message"].iloc[0] == "=quoted on export" and frame["gflops"].iloc[1] == -1.0


def test_lookup_by_spec_key_offers_stored_row(tmp_path):
    store = RunStore(tmp_path)
    rows = sample_rows()
    run_id = store.create_run("paradox")
    for r in rows:
        store.append(run_id, r)
    found = find_stored_row(store, rows[1]["spec_key"], device_name="NVIDIA H100 80GB HBM3")
    assert found["median_s"] == rows[1]["median_s"] and found["source_run"] == run_id
    assert find_stored_row(store, rows[1]["spec_key"], device_name="CPU: other") is None
    assert set(stored_rows_by_key(store, kind="paradox")) == {r["spec_key"] for r in rows}


def test_dead_job_marked_died_live_one_not(tmp_path):
    store = RunStore(tmp_path)
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    dead = store.create_run("paradox", meta={"pid": proc.pid, "host": "h"})
    store.append(dead, sample_rows()[0])
    alive = store.create_run("paradox", meta={"pid": __import__("os").getpid(), "host": "h"})
    assert mark_dead_runs(store, host="h") == [dead]
    assert store.meta(dead)["status"] == "died" and store.meta(dead)["n_rows"] == 1
    assert store.meta(alive)["status"] == "running"


def test_rows_survive_a_restart_in_another_process(tmp_path):
    code = ("import sys; from engine.runtime.store import RunStore; s = RunStore(sys.argv[1]); "
            "r = s.create_run('paradox'); s.append(r, {'spec_key': 'k', 'median_s': 0.5}); print(r)")
    run_id = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True,
                            text=True, check=True, cwd=".").stdout.strip()
    again = RunStore(tmp_path)
    assert again.rows(run_id) == [{"spec_key": "k", "median_s": 0.5}]
