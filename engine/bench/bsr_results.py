"""The lab-bsr kernel benchmark (benchmarks/bsr_bench.py) as rows, break-evens and targets.

``bsr_bench.csv`` times dense ``torch.matmul``, torch BSR and the lab's Triton kernel
(lab-bsr) on the same A (n x n, b x b blocks, uniform random block pattern) and B
(n x k), fp16, twice: GPU time from CUDA-graph replays with L2 evicted before every
call (``ms``, ``speedup_vs_dense``) and call by call (``ms_events``,
``speedup_vs_dense_events``). This module reads it for the pages and holds it
against the lab's goals for it (at 64 x 64 blocks: >= 5x dense at 90 % sparsity,
>= 1.6x at 50 %, >= 15x torch BSR at 90 %, break-even sparsity <= 40 %).

    frame = load_bsr_bench(path)
    targets(frame, timing="graph")   # one dict per target: goal, reached, met
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from engine.validate import check_choice

REQUIRED = ("device", "torch", "triton", "date", "method", "block", "sparsity", "ms",
            "speedup_vs_dense", "theory")
NUMERIC = ("block", "sparsity", "ms", "ms_events", "speedup_vs_dense", "speedup_vs_dense_events",
           "theory", "efficiency", "speedup_vs_torch_bsr", "n", "k")
SWEEP_METHODS = ("dense", "torch-bsr", "lab-bsr")
TIMINGS = {"graph": ("ms", "speedup_vs_dense", "GPU time (CUDA-graph replay, L2 evicted)"),
           "events": ("ms_events", "speedup_vs_dense_events", "call by call (launch included)")}
TARGET_BLOCK = 64
TARGET_SPEEDUPS = {0.9: 5.0, 0.5: 1.6}  # sparsity -> lab-bsr over dense, at TARGET_BLOCK


# Measurement rows (engine.bench.script_rows) name what ran "backend" and how "method";
# the older CSVs called what ran "method" and put the GPU's name under "device".
_LEGACY_NAMES = {"torch_version": "torch", "triton_version": "triton", "measured_at": "date"}
_PER_CALL_COLUMNS = {"ms": "ms_events", "ms_q25": "ms_events_q25", "ms_q75": "ms_events_q75",
                     "speedup_vs_dense": "speedup_vs_dense_events"}


def legacy_view(frame: pd.DataFrame) -> pd.DataFrame:
    """A CSV of Measurement rows in the older column names (what ran in "method", the
    GPU's name in "device", torch / triton / date); older CSVs come back unchanged."""
    if "backend" not in frame or "median_s" not in frame:
        return frame
    out = frame.rename(columns=_LEGACY_NAMES)
    out["timing_method"] = out["method"]
    out["method"] = out["backend"]
    if "device_name" in out:
        out["device"] = out["device_name"]
    return out


def _one_row_per_point(frame: pd.DataFrame) -> pd.DataFrame:
    """bsr_bench.py's rows (one per backend and figure) as one row per backend and point:
    the kernel-only figure's columns, and the per-call figure's as ms_events etc."""
    keys = [c for c in ("block", "sparsity", "method", "pattern") if c in frame]
    kernel = frame[frame["figure"] == "kernel-only"]
    call = frame[frame["figure"] == "per call"][keys + list(_PER_CALL_COLUMNS)]
    return kernel.merge(call.rename(columns=_PER_CALL_COLUMNS), on=keys, how="left")


def load_bsr_bench(path: str | Path) -> pd.DataFrame:
    """The benchmark's rows, numbers as numbers; ValueError naming missing columns.
    Reads both the Measurement rows bsr_bench.py writes now and the older CSVs."""
    frame = legacy_view(pd.read_csv(path))
    if "figure" in frame:
        frame = _one_row_per_point(frame)
    missing = [c for c in REQUIRED if c not in frame.columns]
    if missing:
        raise ValueError(f"bsr benchmark CSV {Path(path).name}: expected columns "
                         f"{', '.join(REQUIRED)}, got {', '.join(map(str, frame.columns))} "
                         f"(missing {', '.join(missing)})")
    for col in NUMERIC:
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


def sweep_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """dense / torch-bsr / lab-bsr on uniform random patterns (the side experiments -
    power-law rows, B-gather floors, schedules - left out)."""
    rows = frame[frame["method"].isin(SWEEP_METHODS)]
    if "pattern" in rows:
        rows = rows[rows["pattern"].isna()]
    return rows.sort_values(["block", "sparsity", "method"]).reset_index(drop=True)


def break_even(frame: pd.DataFrame, method: str = "lab-bsr", block: int = TARGET_BLOCK,
               timing: str = "graph") -> float | None:
    """The sparsity where ``method`` first becomes as fast as dense (linear between the
    two measured sparsities around speedup 1); None if it never does; the first
    sparsity if it is already faster there."""
    _ms, col, _label = TIMINGS[check_choice("timing", timing, TIMINGS)]
    rows = sweep_rows(frame)
    rows = rows[(rows["method"] == method) & (rows["block"] == block)].dropna(subset=[col])
    s, v = rows["sparsity"].to_numpy(float), rows[col].to_numpy(float)
    if not len(s):
        return None
    if v[0] >= 1:
        return float(s[0])
    for i in range(1, len(s)):
        if v[i - 1] < 1 <= v[i]:
            return float(s[i - 1] + (1 - v[i - 1]) * (s[i] - s[i - 1]) / (v[i] - v[i - 1]))
    return None


def _at(frame: pd.DataFrame, method: str, sparsity: float, block: int, col: str) -> float:
    rows = sweep_rows(frame)
    hit = rows[(rows["method"] == method) & (rows["block"] == block)
               & np.isclose(rows["sparsity"], sparsity)]
    return float(hit[col].iloc[0]) if len(hit) and pd.notna(hit[col].iloc[0]) else float("nan")


def targets(frame: pd.DataFrame, timing: str = "graph") -> list[dict]:
    """The lab's four goals at 64 x 64 blocks: goal, what this run reached, met."""
    ms, col, label = TIMINGS[check_choice("timing", timing, TIMINGS)]
    b = TARGET_BLOCK
    lab90, torch90 = _at(frame, "lab-bsr", 0.9, b, ms), _at(frame, "torch-bsr", 0.9, b, ms)
    be = break_even(frame, "lab-bsr", b, timing)
    out = [{"target": f"lab-bsr vs dense at {s:.0%} sparsity".replace("%", " %"),
            "goal": f">= {goal:g}x", "goal_value": goal, "reached": _at(frame, "lab-bsr", s, b, col),
            "unit": "x"} for s, goal in TARGET_SPEEDUPS.items()]
    out.append({"target": "lab-bsr vs torch BSR at 90 % sparsity", "goal": ">= 15x",
                "goal_value": 15.0, "reached": torch90 / lab90 if lab90 > 0 else float("nan"),
                "unit": "x"})
    for row in out:
        row["met"] = bool(row["reached"] >= row["goal_value"]) if row["reached"] == row["reached"] else False
    out.append({"target": "break-even sparsity (as fast as dense)", "goal": "<= 40 %",
                "goal_value": 0.40, "reached": be if be is not None else float("nan"),
                "unit": "sparsity", "met": be is not None and be <= 0.40})
    for row in out:
        row["block"] = b
        row["timing"] = label
    return out


PERCALL_CSV = "bsr_percall/bsr_percall.csv"  # under benchmarks/results/ (gpu_bsr_app.py)
KERNEL_ONLY = "cuda-graph replay, L2 evicted before each call"
PER_CALL = "eager per call, back-to-back over 4 rotating input sets"


def percall_table(path: str | Path) -> pd.DataFrame:
    """``benchmarks/gpu_bsr_app.py``'s per-call CSV as one row per (sparsity, k): lab-bsr
    and dense timed kernel-only (CUDA-graph replay) and per call (eager), side by side,
    with each speedup taken within one timing method. Empty when the file is missing;
    ValueError naming what is missing when its columns are not the script's."""
    p = Path(path)
    if not p.exists():
        return pd.DataFrame()
    frame = legacy_view(pd.read_csv(p))
    need = ("device", "date", "k", "sparsity", "method", "timing", "ms")
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ValueError(f"{p.name}: expected columns {', '.join(need)}, got "
                         f"{', '.join(map(str, frame.columns))}")
    us = {(r.sparsity, r.k, r.method, r.timing): float(r.ms) * 1e3 for r in frame.itertuples()}
    rows = []
    for (s, k) in sorted({(r.sparsity, r.k) for r in frame.itertuples()}, key=lambda t: (-t[0], t[1])):
        got = {name: us.get((s, k, method, timing)) for name, method, timing in (
            ("lab_kernel", "lab-bsr", KERNEL_ONLY), ("dense_kernel", "dense", KERNEL_ONLY),
            ("lab_call", "lab-bsr", PER_CALL), ("dense_call", "dense", PER_CALL))}
        if None in got.values():
            continue
        rows.append({
            "sparsity": s, "k": int(k),
            "kernel-only: lab-bsr (us)": got["lab_kernel"],
            "kernel-only: x dense": got["dense_kernel"] / got["lab_kernel"],
            "per call: lab-bsr (us)": got["lab_call"],
            "per call: x dense": got["dense_call"] / got["lab_call"],
            "per call / kernel-only": got["lab_call"] / got["lab_kernel"],
        })
    out = pd.DataFrame(rows)
    if len(out):
        out.attrs["device"] = str(frame["device"].iloc[0])
        out.attrs["date"] = str(frame["date"].iloc[0])
    return out
