"""The CSV schema of benchmark rows: column -> type, which are required, and checks.

Rows are flat dicts; a CSV exported from a run (page, CLI or GPU script) reads back
to the same columns and types (see ``read_rows_csv``).
"""
from __future__ import annotations

import io
import math

import pandas as pd

# column: (type, required). type is "str", "int", "float" or "bool".
PARADOX_COLUMNS: dict[str, tuple[str, bool]] = {
    "sweep": ("str", True),
    "spec_key": ("str", True),
    "status": ("str", True),          # ok | unsupported | refused | error
    "op": ("str", True),
    "format": ("str", True),
    "backend": ("str", True),
    "rows": ("int", True),
    "cols": ("int", True),
    "k": ("int", True),
    "sparsity": ("float", True),
    "pattern": ("str", True),
    "block": ("int", True),
    "dtype": ("str", True),
    "device": ("str", True),
    "repeats": ("int", True),
    "seed": ("int", False),
    "device_name": ("str", True),
    "torch_version": ("str", True),
    "scipy_version": ("str", False),
    "method": ("str", False),
    "nnz": ("float", False),
    "density": ("float", False),
    "median_s": ("float", False),     # required (not NaN) when status == ok
    "iqr_s": ("float", False),
    "runs": ("int", False),
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
    "noisy": ("bool", False),
    "message": ("str", False),
    "measured_at": ("str", False),
}
STATUSES = ("ok", "unsupported", "refused", "error", "reused")
OK_REQUIRED = ("median_s", "iqr_s", "density", "speedup", "theoretical")
SCHEMAS: dict[str, dict[str, tuple[str, bool]]] = {"paradox": PARADOX_COLUMNS}


def register_schema(kind: str, columns: dict[str, tuple[str, bool]]) -> None:
    """Let another sweep's CSV be imported into /runs (columns as in PARADOX_COLUMNS)."""
    SCHEMAS[kind] = dict(columns)


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


def read_rows_csv(text: str, columns: dict = PARADOX_COLUMNS) -> pd.DataFrame:
    """A CSV written by ``engine.runtime.store.to_csv_text`` back as a typed frame."""
    frame = pd.read_csv(io.StringIO(text), keep_default_na=True)
    # to_csv_text quotes text that a spreadsheet would run; undo that on the way in.
    for col in frame.columns:
        if frame[col].dtype == object:
            frame[col] = frame[col].map(lambda v: v[1:] if isinstance(v, str) and v[:2] in ("'=", "'+", "'-", "'@") else v)
    return coerce_frame(frame, columns)
