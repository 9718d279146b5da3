"""Committed reference runs (benchmarks/results/**.csv) and small input parsers for pages."""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from engine.bench.schema import PARADOX_COLUMNS, read_rows_csv
from engine.validate import check_float

ROOT = Path(__file__).resolve().parents[2]
RESULTS = ROOT / "benchmarks" / "results"
MAX_REFERENCE_BYTES = 20 * 2**20


def reference_files(root: Path = RESULTS, sweep: str = "paradox") -> list[Path]:
    """CSV files under ``root`` whose header has the sweep's key columns: files named for
    the sweep first (other sweeps' CSVs with the same columns after them), newest name first."""
    if not root.exists():
        return []
    out = []
    for path in sorted(root.rglob("*.csv"), reverse=True):
        try:
            if path.stat().st_size > MAX_REFERENCE_BYTES:
                continue
            with path.open(encoding="utf-8") as fh:
                header = fh.readline()
        except OSError:
            continue
        if all(c in header for c in ("spec_key", "speedup", "sparsity", "backend")) and (
                sweep in path.name or "sweep" in header):
            out.append(path)
    return sorted(out, key=lambda p: sweep not in p.name)  # stable: keeps newest-first order


def load_reference(path: str | Path, root: Path = RESULTS) -> pd.DataFrame:
    """The rows of a committed reference CSV (only files under ``root`` are read)."""
    p = Path(path).resolve()
    if root.resolve() not in p.parents:
        raise ValueError(f"reference: expected a file under {root}, got {path}")
    return read_rows_csv(p.read_text(encoding="utf-8"), PARADOX_COLUMNS)


def reference_label(frame: pd.DataFrame, path: str | Path) -> str:
    """A short label: the device name(s) in the file, else its name."""
    if frame is not None and "device_name" in frame and frame["device_name"].notna().any():
        names = sorted(set(frame["device_name"].dropna().astype(str)))
        return ", ".join(n.replace("NVIDIA ", "") for n in names)[:60]
    return Path(path).stem


def parse_float_list(what: str, text: str, lo: float, hi: float, max_items: int = 30) -> tuple[float, ...]:
    """"0.5, 0.9 0.99" -> (0.5, 0.9, 0.99); ValueError "what: expected ... got ..." otherwise."""
    if text is None or not str(text).strip():
        raise ValueError(f"{what}: expected a list of numbers in [{lo}, {hi}], got nothing")
    parts = [p for p in str(text).replace(",", " ").replace(";", " ").split() if p]
    if len(parts) > max_items:
        raise ValueError(f"{what}: expected at most {max_items} values, got {len(parts)}")
    values = []
    for p in parts:
        try:
            v = float(p.rstrip("%")) / (100.0 if p.endswith("%") else 1.0)
        except ValueError:
            raise ValueError(f"{what}: expected numbers in [{lo}, {hi}], got {p!r}") from None
        values.append(check_float(what, v, lo=lo, hi=hi))
    return tuple(sorted(set(values)))
