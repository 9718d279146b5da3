"""The CSV schema: derived from Measurement, listed explicitly, round trip, old CSVs load."""
from __future__ import annotations

from pathlib import Path

import pytest

from engine.bench.measurement import Measurement, Task, normalise_method
from engine.bench.schema import (PARADOX_COLUMNS, SCHEMAS, STRUCTURED_COLUMNS, measurement_columns, read_rows_csv,
                                 schema_for)
from engine.runtime.store import to_csv_text

ROOT = Path(__file__).resolve().parents[2]


def test_measured_columns_are_those_of_a_measurement_row():
    row = Measurement(Task(op="x", dims={"rows": 1, "cols": 1, "k": 1},
                           versions={"torch_version": "1", "scipy_version": "1"}), (1.0,)).row()
    assert set(row) <= set(PARADOX_COLUMNS)
    cols = measurement_columns(("seq_len",), ("torch_version",), required=("op",))
    assert cols["seq_len"] == ("int", False) and cols["op"] == ("str", True)
    assert cols["noisy"] == ("bool", False) and cols["number_per_run"] == ("int", False)


def test_schemas_are_listed_not_registered_at_import():
    assert set(SCHEMAS) >= {"paradox", "structured"}
    assert STRUCTURED_COLUMNS["part"] == ("str", True) and schema_for("structured") is STRUCTURED_COLUMNS
    with pytest.raises(ValueError, match="kind: expected one of paradox"):
        schema_for("nope")


def test_round_trip_of_a_measurement_row():
    m = Measurement(Task(op="spmm", backend="torch-csr", dims={"rows": 64, "cols": 32, "k": 8}, dtype="float32",
                         block=16, pattern="uniform", sparsity=0.9, device="cpu", device_name="CPU: x",
                         versions={"torch_version": "2.5", "scipy_version": "1.1"}),
                    (1e-5, 2e-5, 9e-5), repeats=20, warmup=3, number_per_run=4)
    row = {c: None for c in PARADOX_COLUMNS} | m.row() | {"sweep": "paradox", "spec_key": "k1", "status": "ok",
                                                          "format": "csr", "seed": 0, "message": "=1+1"}
    back = read_rows_csv(to_csv_text([row]), PARADOX_COLUMNS)
    got = back.iloc[0].to_dict()
    assert list(back.columns) == list(PARADOX_COLUMNS)
    for name in ("rows", "cols", "k", "repeats", "warmup", "number_per_run", "runs", "block"):
        assert got[name] == row[name], name
    assert got["median_s"] == pytest.approx(2e-5) and bool(got["noisy"]) is m.noisy is True
    assert got["method"] == "eager per call" and got["message"] == "=1+1"


def test_the_committed_paradox_csv_still_loads():
    path = ROOT / "benchmarks/results/paradox/paradox_h100_80gb_hbm3.csv"
    frame = read_rows_csv(path.read_text(encoding="utf-8"), PARADOX_COLUMNS)
    ok = frame[frame["status"] == "ok"]
    assert len(ok) > 10 and ok["median_s"].notna().all() and (ok["rows"] == 8192).any()
    assert {normalise_method(t) for t in ok["method"]} == {"eager per call"}
