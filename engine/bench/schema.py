"""The CSV schema of benchmark rows: column -> type, which are required, and checks.

Rows are flat dicts built from ``Measurement.row()`` (engine/bench/measurement.py) plus
each sweep's own columns; the measured columns are derived from Measurement here, once.
A CSV exported from a run (page, CLI or GPU script) reads back to the same columns and
types (see ``read_rows_csv``); old CSVs (without warmup/number_per_run, with the old
method text) still load.
"""
from __future__ import annotations

import io
import math

import pandas as pd

from engine.bench.measurement import Measurement, Task

# Types of the columns Measurement.row() writes; the dims and versions columns are named
# by each schema (ints and strings). measurement_columns() checks this covers row().
MEASUREMENT_TYPES = {"op": "str", "backend": "str", "dtype": "str", "block": "int", "pattern": "str",
                     "sparsity": "float", "density": "float", "device": "str", "device_name": "str",
                     "method": "str", "repeats": "int", "warmup": "int", "number_per_run": "int",
                     "runs": "int", "median_s": "float", "iqr_s": "float", "noisy": "bool"}


def measurement_columns(dims: tuple[str, ...], versions: tuple[str, ...] = ("torch_version",),
                        required: tuple[str, ...] = ()) -> dict[str, tuple[str, bool]]:
    """The columns of ``Measurement.row()`` for a task with these dims and versions.

    Derived from a Measurement itself (so a field added there shows up here):
    column -> (type, required); ``required`` names the columns every row must fill.
    """
    sample = Measurement(Task(op="x", dims={d: 1 for d in dims}, versions={v: "" for v in versions}),
                         times_s=(1.0,))
    out = {}
    for name in sample.row():
        kind = "int" if name in dims else "str" if name in versions else MEASUREMENT_TYPES.get(name)
        if kind is None:
            raise AssertionError(f"schema: expected a type for Measurement column {name!r}, got none")
        out[name] = (kind, name in required)
    return out


# column: (type, required). type is "str", "int", "float" or "bool".
_PARADOX_MEASURED = measurement_columns(
    ("rows", "cols", "k"), ("torch_version", "scipy_version"),
    required=("op", "backend", "rows", "cols", "k", "sparsity", "pattern", "block", "dtype", "device",
              "repeats", "device_name", "torch_version"))
PARADOX_COLUMNS: dict[str, tuple[str, bool]] = {
    "sweep": ("str", True),
    "spec_key": ("str", True),
    "status": ("str", True),          # ok | unsupported | refused | error | reused
    "format": ("str", True),
    "seed": ("int", False),
    **_PARADOX_MEASURED,              # median_s: required (not NaN) when status == ok
    "nnz": ("float", False),
    "prepare_s": ("float", False),
    "dense_median_s": ("float", False),
    "speedup": ("float", False),
    "theoretical": ("float", False),
    "efficiency": ("float", False),
    "gflops": ("float", False),
    "gbs": ("float", False),
    "bytes_moved": ("float", False),
    "peak_gbs": ("float", False),
    "pct_peak_bw": ("float", False),
    "message": ("str", False),
    "measured_at": ("str", False),
}
# The structured-sparsity sweep (engine/bench/pattern_sweep.py): paradox rows + the part.
STRUCTURED_COLUMNS = {**PARADOX_COLUMNS, "part": ("str", True)}  # "block" or "2:4"
# The user-matrix sweep (engine/bench/matrix_sweep.py, kind "your-matrix").
MATRIX_COLUMNS: dict[str, tuple[str, bool]] = {
    "sweep": ("str", True), "status": ("str", True), "matrix_hash": ("str", True),
    "matrix_name": ("str", False), "candidate": ("str", True), "backend": ("str", True),
    "format": ("str", True), "block": ("int", False), "reordered": ("bool", False),
    "op": ("str", True), "k": ("int", True), "dtype": ("str", True), "device": ("str", True),
    "device_name": ("str", True), "rows": ("int", True), "cols": ("int", True),
    "nnz": ("int", True), "fill_in": ("float", False), "repeats": ("int", False),
    "method": ("str", False), "median_s": ("float", False), "iqr_s": ("float", False),
    "runs": ("int", False), "noisy": ("bool", False), "prepare_s": ("float", False),
    "dense_median_s": ("float", False), "speedup": ("float", False),
    "predicted_s": ("float", False), "bound": ("str", False), "efficiency": ("float", False),
    "bytes_moved": ("float", False), "flops": ("float", False), "gbs": ("float", False),
    "max_rel_err": ("float", False), "calibrated_at": ("str", False),
    "torch_version": ("str", False), "message": ("str", False), "measured_at": ("str", False),
}
STATUSES = ("ok", "unsupported", "refused", "error", "reused")
OK_REQUIRED = ("median_s", "iqr_s", "density", "speedup", "theoretical")

# Every kind of run /runs imports and the CLI writes, listed here (nothing registers at import).
SCHEMAS: dict[str, dict[str, tuple[str, bool]]] = {"paradox": PARADOX_COLUMNS,
                                                   "structured": STRUCTURED_COLUMNS,
                                                   "your-matrix": MATRIX_COLUMNS}


def schema_for(kind: str) -> dict[str, tuple[str, bool]]:
    """The columns of one kind of run; ValueError "kind: expected one of ..." otherwise."""
    if kind not in SCHEMAS:
        raise ValueError(f"kind: expected one of {', '.join(SCHEMAS)}, got {kind!r}")
    return SCHEMAS[kind]


def column_order(columns: dict = PARADOX_COLUMNS) -> list[str]:
    return list(columns)


def coerce_frame(frame: pd.DataFrame, columns: dict = PARADOX_COLUMNS) -> pd.DataFrame:
    """Cast known columns to their schema type (unknown columns kept as they are)."""
    out = frame.copy()
    for name, (kind, _req) in columns.items():
        if name not in out.columns:
            continue
        if kind in ("int", "float"):
            out[name] = pd.to_numeric(out[name], errors="coerce")
            if kind == "int" and out[name].notna().all():
                out[name] = out[name].astype("int64")
        elif kind == "bool":
            out[name] = out[name].map(_as_bool)
        else:
            out[name] = out[name].map(lambda v: "" if v is None or (isinstance(v, float) and math.isnan(v)) else str(v))
    return out


def _as_bool(v):
    if isinstance(v, bool):
        return v
    if isinstance(v, str):
        return v.strip().lower() in ("true", "1", "yes")
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return False
    return bool(v)


_QUOTED = ("'=", "'+", "'-", "'@", "'\t", "'\r")


def read_rows_csv(text: str, columns: dict = PARADOX_COLUMNS) -> pd.DataFrame:
    """A CSV written by ``engine.runtime.store.to_csv_text`` back as a typed frame."""
    frame = pd.read_csv(io.StringIO(text), keep_default_na=True)
    # to_csv_text quotes text that a spreadsheet would run; undo that on the way in.
    for col in frame.columns:
        if frame[col].dtype == object or pd.api.types.is_string_dtype(frame[col]):
            frame[col] = frame[col].map(lambda v: v[1:] if isinstance(v, str) and v[:2] in _QUOTED else v)
    return coerce_frame(frame, columns)
