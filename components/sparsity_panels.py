"""Notes and table outputs of /structured-sparsity: they say whose each number is.

Plain functions returning Dash components or DataTable props; nothing here computes.
"""
from __future__ import annotations

import pandas as pd
from dash import html

from components.layout import message
from components.tables import shown_columns, table_columns, table_records
from engine.bench.bsr_results import KERNEL_ONLY, PER_CALL, TARGET_BLOCK
from engine.bench.measurement import NOISY_LABEL


def table_output(frame, units: dict | None = None, shown: list[str] | None = None) -> tuple[list, list]:
    """A DataTable's (data, columns): every column in data (the CSV gets them all), the
    ``shown`` ones (default all) as columns, with ``units`` (components.tables.COLUMN_UNITS)
    in their headers."""
    frame = frame if isinstance(frame, pd.DataFrame) else pd.DataFrame(list(frame or []))
    only = shown_columns(frame, shown, limit=None, others=False) if shown and len(frame) else None
    return table_records(frame), table_columns(frame, units, only=only)


def reference_note(ref) -> html.Div | None:
    """Which committed run is drawn beside this one (device, date, rows, file)."""
    if ref is None:
        return None
    return message(f"Reference: {ref.label}, from benchmarks/results/{ref.name} ({ref.rows} rows, "
                   f"timed {', '.join(ref.methods) or 'by an unrecorded method'}; measured by "
                   "benchmarks/gpu_structured_sparsity.py, see docs/structured-sparsity.md).", "info")


def percall_note(side, id: str) -> html.Div:
    """What the per-call / kernel-only table is and whose run it is (side:
    engine.bench.bsr_runs.SideBySide), or why it is empty."""
    if side.problem:
        return message(f"The per-call run could not be read: {side.problem}", "error", id=id)
    frame, ref = side.table, side.reference
    if frame is None or not len(frame):
        return message("No per-call run committed (benchmarks/gpu_bsr_app.py writes one).", id=id)
    noisy = f" The noisy columns mark speedups with a noisy time: {NOISY_LABEL}." if frame.filter(like="noisy").any().any() else ""
    return html.P(f"{frame.attrs['device']}, {frame.attrs['date']}, benchmarks/results/{ref.name} "
                  f"(benchmarks/gpu_bsr_app.py), {side.shape_text}: kernel-only = {KERNEL_ONLY} (no "
                  f"Python launch cost); per call = bsr_matmul called from Python, {PER_CALL}, what a "
                  "caller gets. Each speedup compares with dense torch.matmul timed the same way."
                  + noisy, className="section-note", id=id)


def bsr_notes(run, kernel, goals: pd.DataFrame, evens: dict, label: str) -> html.Div:
    """Which lab-bsr run is shown (device, date, method, file), how it sits beside the
    kernel-only run, and how many of the lab's goals it meets."""
    f = run.frame
    first = f.iloc[0]
    shape = f"A {int(first['n'])} x {int(first['n'])}, B {int(first['n'])} x {int(first['k'])}, {first['dtype']}"
    versions = ", ".join(f"{lib} {first[lib]}" for lib in ("torch", "triton") if str(first[lib]))
    beside = ""
    if kernel is not None and run is not kernel:
        if run.mismatch:
            how = f"; not like for like, this run differs from it in: {run.mismatch}."
        elif run.reference == kernel.reference:
            how = f"; these are the same run's per-call timings of the same matrices ({run.timing_text})."
        else:
            how = (f"; this is another run with the same device, n, k, blocks, dtype and per-call "
                   f"method ({run.timing_text}).")
        beside = f" Kernel-only (the other timing) is {kernel.label}{how}"
    noisy = f" Hollow grey points: {NOISY_LABEL}." if f.loc[f["method"] != "dense", "speedup_noisy"].any() else ""
    measured = goals[goals["met"].notna()]
    met = int((measured["met"] == True).sum())  # noqa: E712 (a column of True / False / None)
    even_text = "; ".join(f"{m} at no measured sparsity" if v is None else
                          f"{m} already at {v:.0%}, the lowest sparsity measured" if lowest else
                          f"{m} from {v:.0%} of the blocks zero" for m, (v, lowest) in evens.items())
    return html.Div([
        message(f"Shown: {label}, run {run.label}" + (f" ({versions})" if versions else "")
                + f"; {shape}; {len(f)} rows of {' / '.join(sorted(set(f['method'])))}.{beside}{noisy}", "info"),
        message(f"{met} of the {len(measured)} goals this run measures met at {TARGET_BLOCK} x {TARGET_BLOCK} "
                f"blocks with this "
                f"timing ({len(goals) - len(measured)} of the lab's {len(goals)} not measured: no such "
                f"row). As fast as dense at {TARGET_BLOCK} x {TARGET_BLOCK}: {even_text}.",
                "ok" if len(measured) and met == len(measured) else "warn"),
    ])
