"""Tables of /structured-matrices computed from timing-sweep rows: the chapter's
comparison table with measured columns, the lab's goal figures beside the measured
speedups, and speedup by batch."""
from __future__ import annotations

import math
from typing import Sequence

from engine.bench.measurement import noisy_flag

CHAPTER_TABLE = [
    # (row, family key in the sweep or None, storage, multiply cost, hardware efficiency)
    ("Dense", "dense", "n^2", "O(n^2)", "100% (baseline)"),
    ("Random 90% sparse", None, "~0.2 n^2", "O(0.1 n^2) theory", "20-30% of theoretical"),
    ("Random sparse, same params as low-rank", "sparse@lowrank", "-", "-", "-"),
    ("Random sparse, same params as Monarch", "sparse@monarch", "-", "-", "-"),
    ("Block sparse (50%)", None, "0.5 n^2", "O(0.5 n^2)", "70-80% of theoretical"),
    ("2:4 structured", None, "0.5 n^2", "O(0.5 n^2)", "100% (hardware support)"),
    ("Low-rank (r=32)", "lowrank", "64 n", "O(64 n)", "100% (dense GEMMs)"),
    ("Butterfly", "butterfly", "O(n log n)", "O(n log n)", "~80% (structured sparse)"),
    ("Monarch", "monarch", "O(n sqrt n)", "O(n sqrt n)", "~90% (block GEMMs)"),
    ("Circulant (FFT)", "circulant", "n", "O(n log n)", "-"),
    ("Toeplitz (FFT)", "toeplitz", "2n - 1", "O(n log n)", "-"),
]

def comparison_table(rows: Sequence[dict], batch: int | None = None, dtype: str | None = None) -> list[dict]:
    """The chapter's comparison table with measured numbers from sweep rows at one
    (batch, dtype) (default: the largest batch; float16 on a GPU, float32 elsewhere)."""
    if not rows:
        return []
    dtypes = {r["dtype"] for r in rows}
    on_gpu = any(str(r.get("device", "")).startswith("cuda") for r in rows)
    dtype = dtype or ("float16" if on_gpu and "float16" in dtypes else
                      "float32" if "float32" in dtypes else sorted(dtypes)[0])
    batch = batch or max(r["batch"] for r in rows if r["dtype"] == dtype)
    by_name = {r["name"]: r for r in rows if r["dtype"] == dtype and r["batch"] == batch}
    n_of = by_name["dense"]["n"] if "dense" in by_name else "?"
    out = []
    for label, key, storage, cost, eff in CHAPTER_TABLE:
        r = by_name.get(key) if key else None
        row = {"matrix type": label, "chapter: storage": storage, "chapter: multiply cost": cost,
               "chapter: hardware efficiency": eff}
        if key is None:
            row.update({"measured: params": None, "measured: FLOPs": None, "measured: time (ms)": None,
                        "measured: speedup vs dense": None, "measured: FLOP ratio": None,
                        "measured: efficiency": None, "measured: status": "not measured on this page"})
        elif r is None:
            row.update({"measured: status": "no row in this sweep"})
        else:
            row.update({"measured: params": r["params"], "measured: FLOPs": r["flops"],
                        "measured: time (ms)": None if r["median_s"] is None else 1e3 * r["median_s"],
                        "measured: speedup vs dense": r["speedup_vs_dense"],
                        "measured: FLOP ratio": r["theoretical_speedup"],
                        "measured: efficiency": r["efficiency"], "measured: status": r["status"]})
        row["at"] = f"n={n_of}, batch={batch}, {dtype}"
        out.append(row)
    return out


# The lab's goal figures for this page: speedups measured on an NVIDIA H200 in
# November 2026 at n = 8192, batch 4096 (fp16 unless said), given to the lab as what a
# like-for-like run here should come close to. They are not the chapter's numbers.
GOAL_FIGURES = [
    # (what, sweep name, dtype, compare-to, reference speedup, reference FLOP ratio)
    ("Low-rank r=32 vs dense", "lowrank", "float16", "same dtype", 15.3, 128.0),
    ("Monarch, 64 blocks (naive) vs dense", "monarch", "float16", "same dtype", 2.7, 32.0),
    ("Circulant by FFT vs dense fp32", "circulant", "float32", "dense float32", 28.0, None),
    ("Circulant by FFT (fp16) vs dense fp32", "circulant", "float16", "dense float32", None, None),
]


def goal_point(rows: Sequence[dict]) -> tuple[int, int]:
    """(n, batch) to set beside the goal figures: 8192 x 4096 when measured, else the
    largest n and its largest batch."""
    if not rows:
        return 8192, 4096
    ns = [int(r["n"]) for r in rows]
    n = 8192 if 8192 in ns else max(ns)
    return n, max(int(r["batch"]) for r in rows if int(r["n"]) == n)


def reference_comparison(rows: Sequence[dict], n: int | None = None, batch: int | None = None) -> list[dict]:
    """The lab's goal speedups (H200, GOAL_FIGURES) beside the speedups measured in sweep
    ``rows`` at (n, batch) (default: ``goal_point(rows)``)."""
    if n is None or batch is None:
        n, batch = goal_point(rows)
    out = []
    for what, name, dtype, against, ref, ref_flops in GOAL_FIGURES:
        r = next((r for r in rows if r.get("name") == name and r.get("dtype") == dtype
                  and int(r.get("n", 0)) == n and int(r.get("batch", 0)) == batch), None)
        lab = None
        status = f"no row at n={n}, batch={batch}, {dtype}"
        if r is not None:
            key = "speedup_vs_dense" if against == "same dtype" else "speedup_vs_dense_fp32"
            lab = r.get(key)
            lab = None if lab is None or (isinstance(lab, float) and math.isnan(lab)) else float(lab)
            status = r.get("status", "ok") if lab is not None else (r.get("status") or "not measured")
        out.append({"comparison": what, "dtype": dtype,
                    "goal speedup (H200)": ref, "lab speedup": lab, "status": status,
                    "goal FLOP ratio": ref_flops,
                    "lab FLOP ratio": None if r is None else r.get("theoretical_speedup"),
                    "lab config": None if r is None else r.get("config"),
                    "lab at": None if r is None else f"n={r.get('n')}, batch={r.get('batch')}",
                    "lab device": None if r is None else (r.get("device_name") or r.get("device")),
                    "against": against})
    return out


def speedup_pivot(rows: Sequence[dict], dtype: str, value: str = "speedup_vs_dense") -> list[dict]:
    """One row per operator, one column per batch: ``value`` (speedup vs dense by default)
    of the sweep rows of ``dtype``. An unmeasured cell is None and the row's ``status``
    says why (the first status that is not "ok")."""
    sel = [r for r in rows if r.get("dtype") == dtype]
    batches = sorted({int(r["batch"]) for r in sel})
    out: dict[str, dict] = {}
    for r in sel:
        key = r["name"]
        row = out.setdefault(key, {"operator": key, "config": r.get("config") or "",
                                   "params": r.get("params"), "status": "ok"})
        v = r.get(value)
        ok = v is not None and not (isinstance(v, float) and math.isnan(v))
        row[f"batch {int(r['batch'])}"] = float(v) if ok else None
        if str(r.get("status") or "ok") != "ok" and row["status"] == "ok":
            row["status"] = str(r["status"])
    for row in out.values():
        for b in batches:
            row.setdefault(f"batch {b}", None)
        row["status"] = row.pop("status")  # last column
    return list(out.values())


def timing_notes(rows: Sequence[dict], label: str) -> list[tuple[str, str, list[str]]]:
    """What to say above the timing figure: (text, kind "info" / "warn", items) for the
    run shown (its devices), its noisy rows, and what it could not measure."""
    if not rows:
        return [("No sweep rows yet: run the sweep above, or pick a committed reference.", "info", [])]
    devs = sorted({str(r.get("device_name") or r.get("device")) for r in rows})
    notes = [(f"Showing {label}: {len(rows)} rows on {', '.join(devs)}.", "info", [])]
    noisy = [r for r in rows if noisy_flag(r.get("noisy"))]
    if noisy:
        notes.append((f"{len(noisy)} of {len(rows)} timings are noisy (IQR / median > 0.1; column "
                      "'noisy' in the CSV): read those as rough.", "warn", []))
    bad = sorted({f"{r['label']} ({r['dtype']}): {r['status']}" for r in rows if str(r.get("status", "ok")) != "ok"})
    if bad:
        notes.append(("Not measured here:", "warn", bad))
    return notes
