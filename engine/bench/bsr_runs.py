"""Which committed lab-bsr run /structured-sparsity shows, per timing method.

lab-bsr (the lab's Triton block-sparse kernel) against dense and torch BSR is timed
two ways, and the committed runs under benchmarks/results/ hold either or both:

* kernel-only ("cuda-graph replay"): the GPU's time, no Python launch cost;
* per call ("eager per call"): what a Python caller gets, launch and host work included.

Three kinds of committed CSV carry lab-bsr rows (engine.bench.reference.KINDS):
"lab-bsr" (benchmarks/bsr_bench.py: ``ms`` kernel-only, ``ms_events`` call by call),
"lab-bsr-percall" (benchmarks/gpu_bsr_app.py: ``timing`` names each row's method) and
"structured" (this page's own timing sweep, rows from Measurement: ``method``).
``runs(method)`` reads every one into one shape (one row per method x block x sparsity
x k, speedups within the same run and method) and ``kernel_only_run`` / ``per_call_run``
pick what the page draws, by the runs' own dates (never file times):

* kernel-only: the newest run that covers the lab's goals (lab-bsr, torch BSR and dense
  at 64 x 64 blocks over at least 3 sparsities);
* per call: the run most like the kernel-only one: its own per-call timings when it has
  them (same matrices, same run), else the run with the fewest differences in device,
  n, k, blocks, dtype and per-call timing method (the ``timing_text`` of its rows),
  newest first; ``mismatch`` names every difference, for the legend and the note.

``side_by_side()`` is the one way both pages read the newest run that times lab-bsr both
ways (gpu_bsr_app.py's per-call CSV, through the reference registry): its table, or why
there is none / why it could not be read.

    kernel = kernel_only_run()
    call = per_call_run(like=kernel)
    call.label   # "H200, 2026-11-30 11:02, eager per call (bsr_bench.csv)"
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from engine.bench.bsr_results import (OLD_EVENTS_TIMING, TARGET_BLOCK, break_even, legacy_view,
                                      load_bsr_bench, noisy_flags, percall_table, targets)
from engine.bench.measurement import CUDA_GRAPH, EAGER, normalise_method, ratio_noisy
from engine.bench.reference import Reference, folder_signature, references, results_dir, short_device
from engine.validate import check_choice

TIMING_METHODS = {"graph": CUDA_GRAPH, "events": EAGER}  # bsr_results.TIMINGS keys -> method
KINDS = ("lab-bsr", "lab-bsr-percall", "structured")
_DTYPES = {"fp16": "float16", "half": "float16", "bf16": "bfloat16", "fp32": "float32"}
_BACKENDS = {"torch-dense": "dense", "dense": "dense", "torch-bsr": "torch-bsr", "lab-bsr": "lab-bsr"}
COLUMNS = ["device", "date", "torch", "triton", "n", "k", "dtype", "block", "sparsity", "density",
           "method", "ms", "noisy", "timing", "timing_text"]
MIN_SWEEP_SPARSITIES = 3


def _lab_bsr_kind(ref: Reference, method: str) -> pd.DataFrame:
    f = load_bsr_bench(ref.path)
    col = "ms" if method == CUDA_GRAPH else "ms_events"
    if col not in f:
        return pd.DataFrame(columns=COLUMNS)
    if "pattern" in f:
        f = f[f["pattern"].isna()]
    if method == CUDA_GRAPH:
        return f.assign(noisy=noisy_flags(f), timing_text=f["timing"])
    text = f["timing_events"] if "timing_events" in f else OLD_EVENTS_TIMING
    return f.assign(ms=f[col], timing_text=text,
                    noisy=noisy_flags(f, "ms_events", "ms_events_q25", "ms_events_q75", "noisy_events"))


def _percall_kind(ref: Reference, method: str) -> pd.DataFrame:
    f = legacy_view(pd.read_csv(ref.path))  # Measurement rows: what ran is "backend"
    f = f[f["timing"].map(normalise_method) == method]
    return f.assign(noisy=noisy_flags(f), timing_text=f["timing"])


def _structured_kind(ref: Reference, method: str) -> pd.DataFrame:
    f = ref.frame()
    f = f[(f["part"] == "block") & f["status"].isin(("ok", "reused"))
          & (f["method"].map(normalise_method) == method)]
    return f.assign(device=f["device_name"], date=ref.date, n=f["rows"], method=f["backend"],
                    torch=f.get("torch_version", ""), triton="",
                    timing_text=f["method"].astype(str).str.replace(r"\s*\(number=\d+\)", "", regex=True),
                    ms=1e3 * pd.to_numeric(f["median_s"], errors="coerce"))


_READERS = {"lab-bsr": _lab_bsr_kind, "lab-bsr-percall": _percall_kind, "structured": _structured_kind}


def run_frame(ref: Reference, method: str) -> pd.DataFrame:
    """One committed run's rows timed by ``method``, as dense / torch-bsr / lab-bsr rows with
    speedup_vs_dense, speedup_vs_torch_bsr (both within this run and method), noisy (the
    row's time) and speedup_noisy (its time or dense's: measurement.ratio_noisy), theory
    (1/density) and efficiency; the columns engine.bench.bsr_results reads (its
    "events" columns hold the same numbers, so its helpers read either method)."""
    f = _READERS[ref.kind](ref, method).copy()
    f = f[f["method"].isin(_BACKENDS)] if len(f) else f
    if not len(f):
        return pd.DataFrame(columns=COLUMNS)
    f["method"] = f["method"].map(_BACKENDS)
    f["dtype"] = f["dtype"].map(lambda d: _DTYPES.get(str(d), str(d)))
    f["device"] = f["device"].fillna(ref.device_name) if "device" in f else ref.device_name
    f["date"] = ref.date
    for col in ("torch", "triton"):
        f[col] = f[col].fillna("").astype(str) if col in f else ""
    if "density" not in f:
        f["density"] = 1 - f["sparsity"]
    for col in ("n", "k", "block", "sparsity", "density", "ms"):
        f[col] = pd.to_numeric(f[col], errors="coerce")
    f = f.dropna(subset=["ms"])
    f = f.assign(timing=method, noisy=noisy_flags(f) if "noisy" in f else False)[COLUMNS]
    keys = ["n", "k", "block", "sparsity"]
    for name, other in (("speedup_vs_dense", "dense"), ("speedup_vs_torch_bsr", "torch-bsr")):
        base = f[f["method"] == other].groupby(keys)["ms"].median().rename("_base")
        f = f.join(base, on=keys)
        f[name] = f.pop("_base") / f["ms"]
    f["speedup_vs_torch_bsr"] = f["speedup_vs_torch_bsr"].where(f["method"] == "lab-bsr")
    f["speedup_noisy"] = ratio_noisy(f.to_dict("records"), f[f["method"] == "dense"].to_dict("records"), keys)
    f["theory"] = 1.0 / f["density"]
    f["efficiency"] = f["speedup_vs_dense"] / f["theory"]
    f["ms_events"], f["speedup_vs_dense_events"] = f["ms"], f["speedup_vs_dense"]
    return f.sort_values(["block", "sparsity", "k", "method"]).reset_index(drop=True)


@dataclass(frozen=True)
class LabBsrRun:
    """One committed run as the page draws it: whose it is, how it was timed, its rows."""

    reference: Reference
    method: str                     # CUDA_GRAPH or EAGER
    frame: pd.DataFrame             # run_frame(reference, method), at one shape when picked
    mismatch: str = ""              # "blocks 64 (kernel-only: 16, 32, 64)" when unlike the run beside it

    @property
    def device(self) -> str:
        return short_device(self.reference.device_name)

    @property
    def label(self) -> str:
        """"H200, 2026-12-02 01:43, eager per call (bsr_percall/bsr_percall.csv)"."""
        return f"{self.device}, {self.reference.date or 'undated'}, {self.method} ({self.reference.name})"

    @property
    def shape(self) -> dict:
        """{"n": 8192, "k": 512, "dtype": "float16"}: the first of each in the rows."""
        f = self.frame
        return {c: (f[c].iloc[0].item() if hasattr(f[c].iloc[0], "item") else f[c].iloc[0])
                for c in ("n", "k", "dtype")} if len(f) else {}

    @property
    def blocks(self) -> list[int]:
        return sorted(int(b) for b in set(self.frame["block"].dropna()))

    @property
    def timing_text(self) -> str:
        """How its rows were timed, in the CSV's own words ("eager per call, CUDA events ...")."""
        return "; ".join(sorted({str(t) for t in self.frame["timing_text"].dropna()}))


def _covers(f: pd.DataFrame, methods: tuple[str, ...], sparsities: int) -> bool:
    at = f[f["block"] == TARGET_BLOCK]
    return all(at.loc[at["method"] == m, "sparsity"].nunique() >= sparsities for m in methods)


def runs(method: str, root: Path | None = None) -> list[LabBsrRun]:
    """Every committed run with lab-bsr and dense rows at 64 x 64 blocks timed by
    ``method``, newest first (by the run's own date). Read once per state of the results
    folder (its CSVs' paths, sizes and change times): the frames are shared, never changed."""
    check_choice("method", method, (CUDA_GRAPH, EAGER))
    base = Path(root) if root is not None else results_dir()
    return list(_runs(method, str(base), folder_signature(base)))


@lru_cache(maxsize=8)
def _runs(method: str, root: str, _sig: tuple) -> tuple[LabBsrRun, ...]:
    out = []
    for ref in sorted((r for kind in KINDS for r in references(kind, Path(root))),
                      key=lambda r: (r.date, r.name), reverse=True):
        try:
            frame = run_frame(ref, method)
        except (ValueError, KeyError, OSError):
            continue   # a file of the kind without the columns this needs: not a candidate
        if _covers(frame, ("lab-bsr", "dense"), 1):
            out.append(LabBsrRun(ref, method, frame))
    return tuple(out)


def unreadable_runs(root: Path | None = None) -> list[str]:
    """Committed runs of the lab-bsr kinds this module cannot read: "name: why" each."""
    out = []
    for ref in (r for kind in KINDS for r in references(kind, root)):
        try:
            run_frame(ref, CUDA_GRAPH)
        except (ValueError, KeyError, OSError) as exc:
            out.append(f"{ref.name}: {exc}")
    return out


def kernel_only_run(root: Path | None = None) -> LabBsrRun | None:
    """The newest kernel-only run covering the lab's goals (lab-bsr, torch BSR and dense at
    64 x 64 blocks, >= 3 sparsities each); None when there is none."""
    for run in runs(CUDA_GRAPH, root):
        if _covers(run.frame, ("lab-bsr", "torch-bsr", "dense"), MIN_SWEEP_SPARSITIES):
            return run
    return None


def _vals(values) -> str:
    return ", ".join(str(v) for v in sorted(set(values))[:4])


def _mismatches(run: LabBsrRun, like: LabBsrRun | None, timing: str = "") -> list[str]:
    """How ``run`` differs from ``like``: device, n, k, dtype, blocks, and (``timing``: the
    per-call timing text of like's own run, when it has one) the per-call timing method."""
    if like is None or not len(like.frame):
        return []
    want, f = like.shape, run.frame
    miss = [] if run.device == like.device else [f"device {run.device} (kernel-only: {like.device})"]
    for col in ("n", "k", "dtype"):
        if want.get(col) not in set(f[col]):
            miss.append(f"{col} = {_vals(f[col])} (kernel-only: {want.get(col)})"
                        .replace("dtype = ", ""))
    if not set(like.blocks) <= set(run.blocks):
        miss.append(f"blocks {_vals(run.blocks)} (kernel-only: {_vals(like.blocks)})")
    if timing and run.timing_text != timing:
        miss.append(f"timed {run.timing_text} (the kernel-only run's own per-call rows: {timing})")
    return miss


def per_call_run(like: LabBsrRun | None = None, root: Path | None = None) -> LabBsrRun | None:
    """The per-call run to set beside ``like`` (the kernel-only run): like's own per-call
    rows when its run has them, else the fewest differences in device, n, k, dtype, blocks
    and per-call timing method, then newest. Its rows are cut to like's n, k and dtype
    where it has them; ``mismatch`` names what still differs."""
    calls = runs(EAGER, root)
    own = next((r for r in calls if like is not None and r.reference == like.reference), None)
    timing = own.timing_text if own is not None else ""
    ranked = sorted(((len(m), run is not own, i, run, m) for i, run in enumerate(calls)
                     for m in [_mismatches(run, like, timing)]), key=lambda t: t[:3])
    if not ranked:
        return None
    *_order, run, miss = ranked[0]
    f = run.frame
    for col, value in (like.shape.items() if like is not None else ()):
        if value in set(f[col]):
            f = f[f[col] == value]
    return LabBsrRun(run.reference, run.method, f.reset_index(drop=True), "; ".join(miss))


def _lowest(run: LabBsrRun, method: str) -> float:
    f = run.frame
    return float(f.loc[(f["method"] == method) & (f["block"] == TARGET_BLOCK), "sparsity"].min())


def break_evens(run: LabBsrRun, timing: str) -> dict[str, tuple[float | None, bool]]:
    """lab-bsr's and torch BSR's break-even sparsity at 64 x 64 blocks in ``run`` (None: never
    as fast as dense in the sparsities measured), and whether it is only the lowest sparsity
    measured (already faster there: the true break-even is at most that); ``timing`` a
    bsr_results.TIMINGS key."""
    out = {}
    for m in ("lab-bsr", "torch-bsr"):
        if (run.frame["method"] == m).any():
            be = break_even(run.frame, m, TARGET_BLOCK, timing)
            out[m] = (be, be is not None and np.isclose(be, _lowest(run, m)))
    return out


def goals(run: LabBsrRun, timing: str) -> list[dict]:
    """The lab's goals (bsr_results.targets) in ``run``; a goal this run cannot measure (no
    such row, or a break-even that is only the lowest sparsity measured, above the goal)
    is "not measured": reached NaN and met None, never a miss or a hit."""
    out = targets(run.frame, timing)
    be, lowest = break_evens(run, timing).get("lab-bsr", (None, False))
    for row in out:
        if row["unit"] == "sparsity" and lowest and be > row["goal_value"]:
            row["reached"] = float("nan")
        if row["reached"] != row["reached"]:
            row["met"] = None
    return out


def latest_side_by_side(root: Path | None = None) -> Reference | None:
    """The newest committed run that times lab-bsr both ways in one run (gpu_bsr_app.py's
    per-call CSV), for the per-call / kernel-only table; None when there is none."""
    for ref in references("lab-bsr-percall", root):
        if {CUDA_GRAPH, EAGER} <= set(ref.methods):
            return ref
    return None


@dataclass(frozen=True)
class SideBySide:
    """The per-call / kernel-only table of one committed run (bsr_results.percall_table),
    whose run it is, and why it is empty ("" when it is not, or when none is committed)."""

    reference: Reference | None
    table: pd.DataFrame
    problem: str = ""

    @property
    def shape_text(self) -> str:
        """"64 x 64 blocks, n = 8192, float16" from the table's own rows ("" when empty)."""
        a = self.table.attrs if len(self.table) else {}
        if not a:
            return ""
        blocks = ", ".join(f"{b} x {b}" for b in a["block"])
        return f"{blocks} blocks, n = {_vals(a['n'])}, {_vals(a['dtype'])}"


def side_by_side(root: Path | None = None) -> SideBySide:
    """The newest side-by-side run's table; a file that cannot be read gives an empty
    table and its reason ("bsr_percall/bsr_percall.csv: expected columns ..."), never an
    exception."""
    ref = latest_side_by_side(root)
    if ref is None:
        return SideBySide(None, pd.DataFrame())
    try:
        table = percall_table(ref.path)
    except (ValueError, KeyError, OSError) as exc:
        return SideBySide(ref, pd.DataFrame(), f"{ref.name}: {exc}")
    return SideBySide(ref, table, "" if len(table) else
                      f"{ref.name}: no (sparsity, k) with lab-bsr and dense timed both ways")
