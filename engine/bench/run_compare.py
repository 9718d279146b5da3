"""What /runs draws when it opens a run and compares it with another (no Dash here).

    x, y = pick_axis(x, numeric_columns(rows), PREFERRED_X), pick_axis(y, ..., PREFERRED_Y, avoid=x)
    slices = choose_slices([rows_a, rows_b], {"op": None, "dtype": None})
    # -> [{"op": "spmv", "dtype": "float16"}, {"op": "spmv", "dtype": "float16"}]
    drawn = [select(rows, s) for rows, s in zip(...)]
    match = compare_runs(meta_a, drawn[0], meta_b, drawn[1])
    match.label      # "H100 80GB HBM3, n = 8192 · CPU, n = 512" (engine.bench.reference.Match)

A run with SpMV and SpMM rows, or float16 and float32 rows, is never drawn as one curve
per backend mixing them: with a filter on "all", one op and one dtype are chosen (one
every run has when there is one, else each run's own) and the page names them. The
comparison names every way the two drawn parts differ (device, shape, dtype, timing
method) through the one comparison of the lab, ``engine.bench.reference.compare``.
"""
from __future__ import annotations

import pandas as pd

from engine.bench.reference import Kind, Match, compare, describe, kind_of, short_device

SLICE_COLUMNS = ("op", "dtype")  # never mixed in one curve
# The y (and x) a run is first drawn with: the first of these its rows have, else its first number.
PREFERRED_Y = ("speedup", "speedup_vs_dense", "matrix_over_native", "ratio_vs_dense_1x", "speedup_vs_torch_bsr",
               "acc_finetuned", "kernel_ms", "time_ms", "ms", "median_s", "epoch_s", "loss")
PREFERRED_X = ("sparsity", "target_sparsity", "density", "batch", "seq_len", "n", "rows", "epoch", "step")
NOT_AXES = frozenset({"seed"})
# The column whose values get a curve each (the first every row of a run fills): backends, patterns, ...
SERIES_COLUMNS = ("backend", "pattern", "family", "impl", "variant", "candidate", "block")
KIND_SERIES = {"lab-bsr": "method"}  # its "method" names the kernel (dense, torch-bsr, lab-bsr)


def series_column(frames: list[pd.DataFrame]) -> str | None:
    """The column that splits the runs' rows into curves (one per backend, pattern, ...)."""
    frames = [f for f in frames if f is not None and len(f)]
    kinds = {k.name for k in map(run_kind, frames) if k is not None}
    if len(kinds) == 1 and kinds.pop() in KIND_SERIES:
        return KIND_SERIES[run_kind(frames[0]).name]
    for col in SERIES_COLUMNS:
        having = [f for f in frames if col in f]
        if having and all(f[col].notna().all() and (f[col].astype(str) != "").all() for f in having):
            return col
    return None


def numeric_columns(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` with at least one number (those a plot can use)."""
    if frame is None or frame.empty:
        return []
    return [str(c) for c in frame.columns if c not in NOT_AXES and not frame[c].map(type).eq(bool).all()
            and pd.to_numeric(frame[c], errors="coerce").notna().any()]


def pick_axis(current: str | None, numeric: list[str], preferred: tuple[str, ...],
              avoid: str | None = None) -> str | None:
    """``current`` when the run has it as a number, else the first of ``preferred`` it has,
    else its first numeric column (not ``avoid``, the other axis); None when it has none."""
    if current in numeric:
        return current
    for name in (*preferred, *numeric):
        if name in numeric and name != avoid:
            return name
    return None


def _most_common(frame: pd.DataFrame, col: str) -> list:
    return list(frame[col].dropna().astype(str).value_counts(sort=True).index) if col in frame else []


def choose_slices(frames: list[pd.DataFrame], chosen: dict) -> list[dict]:
    """One {column: value} per frame: the op and dtype each run is drawn with.

    A value in ``chosen`` (a filter) holds for every run. Otherwise, when the runs have
    more than one value of a column, one is chosen: the most common one every run has,
    else each run's own most common one. A column with one value (or none) is not sliced."""
    out = [{} for _ in frames]
    for col in SLICE_COLUMNS:
        if chosen.get(col):
            for s, f in zip(out, frames):
                if col in f:
                    s[col] = str(chosen[col])
            continue
        values = [_most_common(f, col) for f in frames]
        if len(set().union(*map(set, values))) <= 1:
            continue
        shared = [v for v in values[0] if all(v in vs for vs in values[1:])]
        for s, vs in zip(out, values):
            if vs:
                s[col] = shared[0] if shared else vs[0]
    return out


def select(frame: pd.DataFrame, slice_: dict) -> pd.DataFrame:
    """The rows of ``frame`` of the slice's op and dtype."""
    for col, value in slice_.items():
        if col in frame:
            frame = frame[frame[col].astype(str) == value]
    return frame


def slice_text(slice_: dict) -> str:
    """ "spmv, float16" (the values a slice keeps)."""
    return ", ".join(slice_[c] for c in SLICE_COLUMNS if c in slice_)


def other_values(frames: list[pd.DataFrame], slices: list[dict]) -> dict[str, list[str]]:
    """Per sliced column, the values the runs have that are not drawn (for "also has ...")."""
    out = {}
    for col in SLICE_COLUMNS:
        shown = {s[col] for s in slices if col in s}
        if shown:
            rest = sorted(set().union(*(set(_most_common(f, col)) for f in frames)) - shown)
            if rest:
                out[col] = rest
    return out


def run_kind(frame: pd.DataFrame) -> Kind | None:
    """The kind of run the rows are, as the reference registry knows kinds (None: unknown)."""
    if frame is None or frame.empty:
        return None
    first = {k: ("" if v is None else str(v)) for k, v in frame.iloc[0].to_dict().items()}
    return kind_of([str(c) for c in frame.columns], first)


def compare_runs(meta_a: dict, rows_a: pd.DataFrame, meta_b: dict, rows_b: pd.DataFrame) -> Match | None:
    """How the drawn rows of run b differ from those of run a (device, shape, dtype, method);
    None when the two are not runs of one known kind (nothing to match them on)."""
    kind_a, kind_b = run_kind(rows_a), run_kind(rows_b)
    if kind_a is None or kind_b is None or kind_a.name != kind_b.name:
        return None
    a = describe(kind_a, rows_a, name=str(meta_a.get("run_id", "")), device_name=str(meta_a.get("device_name") or ""))
    b = describe(kind_b, rows_b, name=str(meta_b.get("run_id", "")), device_name=str(meta_b.get("device_name") or ""))
    return compare(a, device_name=b.device_name, dims=dict(b.dims),
                   dtype=b.dtypes[0] if len(b.dtypes) == 1 else None,
                   method=b.methods[0] if len(b.methods) == 1 else None,
                   local_name=short_device(b.device_name))


def why_not_drawn(rows: pd.DataFrame, drawn: pd.DataFrame, slice_: dict, x: str, y: str) -> str:
    """Why a run adds nothing to a plot of ``y`` against ``x`` ("its rows have no sparsity
    column", ...): ``rows`` all its rows, ``drawn`` those of its slice."""
    if rows is None or rows.empty:
        return "it has no rows"
    for col in (x, y):
        if col not in rows:
            return f"its rows have no {col} column"
        if pd.to_numeric(rows[col], errors="coerce").notna().sum() == 0:
            return f"its rows have no numeric {col}"
    if drawn.empty:
        have = "; ".join(f"{c} {', '.join(_most_common(rows, c))}" for c in slice_ if c in rows)
        return f"it has no rows of {slice_text(slice_)} (it has {have})"
    ok = drawn[drawn["status"].astype(str).isin(["ok", "reused"])] if "status" in drawn else drawn
    if ok.empty:
        return "none of its rows of this op and dtype finished ok"
    both = ok[pd.to_numeric(ok[x], errors="coerce").notna() & pd.to_numeric(ok[y], errors="coerce").notna()]
    if both.empty:
        return f"none of its finished rows has both {x} and {y}"
    return f"none of its values of {y} can be drawn on this axis (a log axis draws only values above 0)"
