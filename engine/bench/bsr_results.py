"""The lab-bsr kernel benchmark (benchmarks/bsr_bench.py) as rows, break-evens and targets.

``bsr_bench.csv`` times dense ``torch.matmul``, torch BSR and the lab's Triton kernel
(lab-bsr) on the same A (n x n, b x b blocks, uniform random block pattern) and B
(n x k), fp16, twice: GPU time from CUDA-graph replays with L2 evicted before every
call (``ms``, ``speedup_vs_dense``) and call by call (``ms_events``,
``speedup_vs_dense_events``). This module reads it for the pages and holds it
against the lab's goals for it (``goals_text()``: at TARGET_BLOCK x TARGET_BLOCK blocks,
TARGET_SPEEDUPS over dense, TORCH_BSR_GOAL over torch BSR at TORCH_BSR_SPARSITY, break-even sparsity
<= BREAK_EVEN_GOAL). ``noisy_flags`` gives each row's noisy flag by the lab's one rule
(engine.bench.measurement.is_noisy), from the quartiles when a CSV has no flag.

    frame = load_bsr_bench(path)
    targets(frame, timing="graph")   # one dict per target: goal, reached, met
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from engine.bench.measurement import is_noisy, noisy_flag
from engine.bench.script_rows import EVENTS_TIMING, GRAPH_TIMING, ROTATING_TIMING
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
TORCH_BSR_GOAL = 15.0   # lab-bsr over torch BSR at TORCH_BSR_SPARSITY, at TARGET_BLOCK
TORCH_BSR_SPARSITY = 0.9
BREAK_EVEN_GOAL = 0.40  # as fast as dense from this sparsity on, at TARGET_BLOCK


def goals_text() -> str:
    """The lab's goals in words, from the constants above: "at least 50 % of the ideal
    1/density at 90 % sparsity (5x of 10x), ..."."""
    parts = [f"{goal * (1 - s):.0%} of the ideal 1/density at {s:.0%} ({goal:g}x of {1 / (1 - s):g}x)"
             for s, goal in TARGET_SPEEDUPS.items()]
    return (f"at {TARGET_BLOCK} x {TARGET_BLOCK} blocks, at least " + ", ".join(parts)
            + f", {TORCH_BSR_GOAL:g}x stock torch BSR at {TORCH_BSR_SPARSITY:.0%}, and as fast as dense from "
              f"{BREAK_EVEN_GOAL:.0%} zeros").replace("%", " %")


def noisy_flags(frame: pd.DataFrame, ms: str = "ms", q25: str = "ms_q25", q75: str = "ms_q75",
                flag: str = "noisy") -> pd.Series:
    """Each row's noisy flag: the CSV's ``flag`` where it has one (a Measurement's), else
    the lab's one rule (is_noisy: IQR/median > NOISE_THRESHOLD) on its quartiles; False
    where neither is there."""
    def col(name) -> pd.Series:
        return pd.to_numeric(frame[name], errors="coerce") if name in frame else pd.Series(np.nan, frame.index)

    cells = frame[flag] if flag in frame else pd.Series(None, frame.index, dtype=object)
    iqr = col(q75) - col(q25)
    return pd.Series([is_noisy(m, i) if c is None or (isinstance(c, float) and c != c) else noisy_flag(c)
                      for c, m, i in zip(cells, col(ms), iqr)], index=frame.index, dtype=bool)


# Measurement rows (engine.bench.script_rows) name what ran "backend" and how "method";
# the older CSVs called what ran "method" and put the GPU's name under "device".
_LEGACY_NAMES = {"torch_version": "torch", "triton_version": "triton", "measured_at": "date"}
_PER_CALL_COLUMNS = {"ms": "ms_events", "ms_q25": "ms_events_q25", "ms_q75": "ms_events_q75",
                     "speedup_vs_dense": "speedup_vs_dense_events", "noisy": "noisy_events",
                     "timing": "timing_events"}


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
    call = frame[frame["figure"] == "per call"][keys + [c for c in _PER_CALL_COLUMNS if c in frame]]
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
    lab90, torch90 = (_at(frame, m, TORCH_BSR_SPARSITY, b, ms) for m in ("lab-bsr", "torch-bsr"))
    be = break_even(frame, "lab-bsr", b, timing)
    out = [{"target": f"lab-bsr vs dense at {s:.0%} sparsity".replace("%", " %"),
            "goal": f">= {goal:g}x", "goal_value": goal, "reached": _at(frame, "lab-bsr", s, b, col),
            "unit": "x"} for s, goal in TARGET_SPEEDUPS.items()]
    out.append({"target": f"lab-bsr vs torch BSR at {TORCH_BSR_SPARSITY:.0%} sparsity".replace("%", " %"),
                "goal": f">= {TORCH_BSR_GOAL:g}x",
                "goal_value": TORCH_BSR_GOAL, "reached": torch90 / lab90 if lab90 > 0 else float("nan"),
                "unit": "x"})
    for row in out:
        row["met"] = bool(row["reached"] >= row["goal_value"]) if row["reached"] == row["reached"] else False
    out.append({"target": "break-even sparsity (as fast as dense)",
                "goal": f"<= {BREAK_EVEN_GOAL:.0%}".replace("%", " %"), "goal_value": BREAK_EVEN_GOAL,
                "reached": be if be is not None else float("nan"),
                "unit": "sparsity", "met": be is not None and be <= BREAK_EVEN_GOAL})
    for row in out:
        row["block"] = b
        row["timing"] = label
    return out


# benchmarks/gpu_bsr_app.py's two timings (engine.bench.script_rows holds the texts)
KERNEL_ONLY = GRAPH_TIMING
PER_CALL = ROTATING_TIMING
# The committed bsr_bench.csv of before the per-call figure's own timing column: its
# ms_events were timed as EVENTS_TIMING says (triton do_bench, see docs/bsr_kernel.md).
OLD_EVENTS_TIMING = EVENTS_TIMING
PERCALL_KEY = ("n", "block", "dtype", "sparsity", "k")
_PERCALL_CELLS = (("lab_kernel", "lab-bsr", KERNEL_ONLY), ("dense_kernel", "dense", KERNEL_ONLY),
                  ("lab_call", "lab-bsr", PER_CALL), ("dense_call", "dense", PER_CALL))


def percall_table(path: str | Path) -> pd.DataFrame:
    """``benchmarks/gpu_bsr_app.py``'s per-call CSV as one row per (n, block, dtype,
    sparsity, k): lab-bsr and dense timed kernel-only (CUDA-graph replay) and per call
    (eager), side by side, with each speedup taken within one timing method and noisy
    when either of its two times is (``noisy_flags``). ``attrs``: device, date, and the
    n / block / dtype values of its rows. Empty when the file is missing; ValueError
    naming what is missing when its columns are not the script's."""
    p = Path(path)
    if not p.exists():
        return pd.DataFrame()
    frame = legacy_view(pd.read_csv(p))
    need = ("device", "date", "n", "k", "block", "dtype", "sparsity", "method", "timing", "ms")
    missing = [c for c in need if c not in frame.columns]
    if missing:
        raise ValueError(f"{p.name}: expected columns {', '.join(need)}, got "
                         f"{', '.join(map(str, frame.columns))}")
    frame = frame.assign(noisy=noisy_flags(frame), ms=pd.to_numeric(frame["ms"], errors="coerce"))
    cells = {(*(getattr(r, c) for c in PERCALL_KEY), r.method, r.timing): (float(r.ms) * 1e3, bool(r.noisy))
             for r in frame.itertuples()}
    points = sorted({tuple(getattr(r, c) for c in PERCALL_KEY) for r in frame.itertuples()},
                    key=lambda t: (t[0], t[1], str(t[2]), -t[3], t[4]))
    rows = []
    for point in points:
        got = {name: cells.get((*point, method, timing)) for name, method, timing in _PERCALL_CELLS}
        if None in got.values():
            continue
        (lk, nk), (dk, ndk), (lc, nc), (dc, ndc) = (got[n] for n, _m, _t in _PERCALL_CELLS)
        rows.append({**dict(zip(PERCALL_KEY, point)),
                     "kernel-only: lab-bsr (us)": lk, "kernel-only: x dense": dk / lk,
                     "kernel-only: noisy": nk or ndk,
                     "per call: lab-bsr (us)": lc, "per call: x dense": dc / lc,
                     "per call: noisy": nc or ndc,
                     "per call / kernel-only": lc / lk})
    out = pd.DataFrame(rows)
    if len(out):
        out["k"] = out["k"].astype(int)
        out.attrs.update(device=str(frame["device"].iloc[0]), date=str(frame["date"].iloc[0]),
                         **{c: sorted(set(out[c])) for c in ("n", "block", "dtype")})
    return out
