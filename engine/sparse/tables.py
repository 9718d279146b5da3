"""The tables of /structured-sparsity, computed from result rows (no drawing here).

Every function takes rows (dicts or a DataFrame) and returns a DataFrame whose
columns are what a table shows; components draw them, the CSV downloads carry them.

    frame = timing_frame(rows, reference, cancelled_total=None)   # + "source" per row
    tables = timing_tables(frame)       # .break_even, .rows (median_ms, iqr_ms, ...)
    chapter_beside_ours(accuracy_rows)  # the chapter's ResNet-50 figures, ours beside
"""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from engine.bench.pattern_sweep import break_even_by_block
from engine.bench.reference import Reference, short_device
from engine.sparse.pruning import ACCURACY_MODELS

TIME_TABLE_COLUMNS = ["source", "backend", "block", "sparsity", "rows", "k", "dtype", "status",
                      "median_ms", "iqr_ms", "speedup", "efficiency", "noisy"]
BREAK_EVEN_COLUMNS = ["block", "backend", "break_even", "note", "source"]
ACC_TABLE_COLUMNS = ["model", "pattern", "target_sparsity", "sparsity", "seed", "acc_dense",
                     "acc_pruned", "acc_finetuned", "drop_pts", "device", "seconds"]
BSR_TABLE_COLUMNS = ["block", "sparsity", "method", "k", "ms", "noisy", "speedup_vs_dense",
                     "speedup_vs_torch_bsr", "theory", "efficiency", "timing"]
GOAL_COLUMNS = ["target", "goal", "reached", "met", "block", "timing"]

# The chapter's accuracy table (ResNet-50), shown as the chapter's, never as ours.
CHAPTER_ACCURACY = [
    {"pattern": "unstructured", "sparsity": "90 %", "chapter (ResNet-50)": "1-2 %"},
    {"pattern": "block 16x16", "sparsity": "75 %", "chapter (ResNet-50)": "1-2 %"},
    {"pattern": "block 64x64", "sparsity": "50 %", "chapter (ResNet-50)": "1-2 %"},
    {"pattern": "2:4", "sparsity": "50 %", "chapter (ResNet-50)": "< 1 %"},
]


def _frame(rows) -> pd.DataFrame:
    return rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows or []))


def _pick(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    return frame[[c for c in columns if c in frame]] if len(frame) else pd.DataFrame(columns=columns)


def chapter_beside_ours(rows) -> pd.DataFrame:
    """The chapter's rows with our measured drop (points) per model at the same pattern and
    sparsity: the mean over seeds, "(min to max)" when several; "not run" where this page
    has not measured that combination."""
    frame = _frame(rows)
    out = []
    for row in CHAPTER_ACCURACY:
        line = dict(row)
        target = float(row["sparsity"].rstrip(" %")) / 100
        for model in ACCURACY_MODELS:
            col = f"ours {model.upper()}"
            hit = pd.DataFrame()
            if len(frame) and {"model", "pattern", "target_sparsity"} <= set(frame.columns):
                hit = frame[(frame["model"] == model) & (frame["pattern"] == row["pattern"])
                            & ((frame["target_sparsity"] - target).abs() < 1e-6)]
            line[col] = round(float(hit["drop_pts"].mean()), 2) if len(hit) else "not run"
            if len(hit) > 1:
                line[col] = f"{line[col]:.2f} ({hit['drop_pts'].min():.2f} to {hit['drop_pts'].max():.2f})"
        out.append(line)
    return pd.DataFrame(out)


def accuracy_table(rows) -> pd.DataFrame:
    """The accuracy job's rows as a frame, the columns the page shows (ACC_TABLE_COLUMNS) first."""
    frame = _frame(rows)
    return frame[[c for c in ACC_TABLE_COLUMNS if c in frame] + [c for c in frame if c not in ACC_TABLE_COLUMNS]]


def run_source(rows: pd.DataFrame, cancelled_total: int | None = None) -> str:
    """"this run: H200" or "this run: CPU (cancelled: 32 of 74 rows)"."""
    names = rows["device_name"].dropna() if "device_name" in rows else pd.Series(dtype=object)
    name = short_device(str(names.iloc[0])) if len(names) else "unknown device"
    cut = f" (cancelled: {len(rows)} of {cancelled_total} rows)" if cancelled_total else ""
    return f"this run: {name}{cut}"


def timing_frame(rows, reference: Reference | None = None,
                 cancelled_total: int | None = None) -> pd.DataFrame:
    """Local timing rows (+ the rows of a committed ``reference``) with a "source" column
    naming whose each row is: "this run: CPU (cancelled: 3 of 20 rows)", "reference: H100
    80GB HBM3, 2026-11-22"."""
    local = _frame(rows)
    parts = [local.assign(source=run_source(local, cancelled_total))] if len(local) else []
    if reference is not None:
        parts.append(reference.frame().assign(source=f"reference: {reference.label}"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def in_ms(frame: pd.DataFrame) -> pd.DataFrame:
    """median_s / iqr_s as median_ms / iqr_ms (what the table shows)."""
    out = frame.copy()
    for col in ("median_s", "iqr_s"):
        if col in out:
            out[col.replace("_s", "_ms")] = 1e3 * pd.to_numeric(out.pop(col), errors="coerce")
    return out


@dataclass(frozen=True)
class TimingTables:
    """What the timing tab shows: break-even per (source, block, backend) and every row."""

    break_even: pd.DataFrame
    rows: pd.DataFrame        # TIME_TABLE_COLUMNS shown; the CSV gets every column


def timing_tables(frame: pd.DataFrame) -> TimingTables:
    """Break-even sparsity per source, block and backend, and the rows in ms."""
    if not len(frame):
        return TimingTables(pd.DataFrame(columns=BREAK_EVEN_COLUMNS), pd.DataFrame())
    be = pd.concat([break_even_by_block(g).assign(source=src)
                    for src, g in frame.groupby("source", sort=False)], ignore_index=True)
    return TimingTables(_pick(be, BREAK_EVEN_COLUMNS), in_ms(frame))


def goals_table(goals: list[dict]) -> pd.DataFrame:
    """The lab's goals (engine.bench.bsr_results.targets) with what was reached as text:
    "4.48x", "37.5 %", or "not measured"."""
    frame = pd.DataFrame(goals)
    if not len(frame):
        return pd.DataFrame(columns=GOAL_COLUMNS)
    frame["reached"] = ["not measured" if v != v else f"{v:.1%}".replace("%", " %") if u == "sparsity"
                        else f"{v:.2f}x" for v, u in zip(frame["reached"], frame["unit"])]
    return frame[GOAL_COLUMNS]
