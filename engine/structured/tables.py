"""Tables of /structured-matrices computed from timing-sweep rows: the chapter's
comparison table with measured columns, the lab's goal figures beside the measured
speedups, and speedup by batch."""
from __future__ import annotations

import math
from pathlib import Path
from typing import Sequence

from engine.bench.measurement import noisy_flag
from engine.bench.reference import Reference, compare, short_device

CHAPTER_TABLE = [
    # (row, family key in the sweep or None, storage, multiply cost, hardware efficiency)
    ("Dense", "dense", "n^2", "O(n^2)", "100% (baseline)"),
    ("Random 90% sparse", None, "~0.2 n^2", "O(0.1 n^2) theory", "20-30% of theoretical"),
    ("Random sparse, same params as low-rank", "sparse@lowrank", "-", "-", "-"),
    ("Random sparse, same params as Monarch", "sparse@monarch", "-", "-", "-"),
    ("Block sparse (50%)", None, "0.5 n^2", "O(0.5 n^2)", "70-80% of theoretical"),
    ("2:4 structured", None, "0.5 n^2", "O(0.5 n^2)", "100% (hardware support)"),
    ("Low-rank", "lowrank", "64 n (r=32)", "O(64 n) (r=32)", "100% (dense GEMMs)"),
    ("Butterfly", "butterfly", "O(n log n)", "O(n log n)", "~80% (structured sparse)"),
    ("Monarch", "monarch", "O(n sqrt n)", "O(n sqrt n)", "~90% (block GEMMs)"),
    ("Circulant (FFT)", "circulant", "n", "O(n log n)", "-"),
    ("Toeplitz (FFT)", "toeplitz", "2n - 1", "O(n log n)", "-"),
]

# The configuration the chapter's estimates are written for, per sweep name: a measured row
# of another configuration says so in its label ("Low-rank (measured r=16; chapter r=32)").
CHAPTER_CONFIG = {"lowrank": "r=32"}
NOISY_STATUS = "noisy: not a finding"


def _missing(v) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def speedup_noisy(rows: Sequence[dict], row: dict, against: str = "same dtype") -> bool:
    """Is ``row``'s speedup vs dense noisy? Yes when its own timing is, or the dense timing
    it is divided by (same batch and n; same dtype, or float32 with ``against`` "dense float32")."""
    if noisy_flag(row.get("noisy")):
        return True
    dtype = row.get("dtype") if against == "same dtype" else "float32"
    return any(noisy_flag(r.get("noisy")) for r in rows if r.get("name") == "dense" and r.get("dtype") == dtype
               and r.get("batch") == row.get("batch") and r.get("n") == row.get("n"))


def comparison_table(rows: Sequence[dict], batch: int | None = None, dtype: str | None = None) -> list[dict]:
    """The chapter's comparison table with measured numbers from sweep rows at one
    (batch, dtype) (default: the largest batch; float16 on a GPU, float32 elsewhere).

    A family's label names the configuration measured (Monarch's blocks, low-rank's r:
    "Low-rank (measured r=16; chapter r=32)" when it is not the chapter's). ``measured:
    noisy`` is True when the time or the dense time under its speedup is noisy (``measured:
    time noisy``: the time itself); then the status is NOISY_STATUS, not "ok"."""
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
        if r is not None and r.get("config") and key != "dense":
            chapter = CHAPTER_CONFIG.get(key)
            label = (f"{label} ({r['config']})" if chapter in (None, r["config"])
                     else f"{label} (measured {r['config']}; chapter {chapter})")
        elif key in CHAPTER_CONFIG:
            label = f"{label} ({CHAPTER_CONFIG[key]})"
        row = {"matrix type": label, "chapter: storage": storage, "chapter: multiply cost": cost,
               "chapter: hardware efficiency": eff}
        if key is None:
            row.update({"measured: params": None, "measured: FLOPs": None, "measured: time (ms)": None,
                        "measured: speedup vs dense": None, "measured: FLOP ratio": None,
                        "measured: efficiency": None, "measured: noisy": None,
                        "measured: status": "not measured on this page"})
        elif r is None:
            row.update({"measured: noisy": None, "measured: status": "no row in this sweep"})
        else:
            measured = r["median_s"] is not None
            noisy = measured and speedup_noisy(rows, r)
            status = str(r.get("status") or "ok")
            row.update({"measured: params": r["params"], "measured: FLOPs": r["flops"],
                        "measured: time (ms)": None if r["median_s"] is None else 1e3 * r["median_s"],
                        "measured: speedup vs dense": r["speedup_vs_dense"],
                        "measured: FLOP ratio": r["theoretical_speedup"],
                        "measured: efficiency": r["efficiency"], "measured: noisy": noisy,
                        "measured: time noisy": measured and noisy_flag(r.get("noisy")),
                        "measured: status": NOISY_STATUS if noisy and status == "ok" else status})
        row["at"] = f"n={n_of}, batch={batch}, {dtype}"
        out.append(row)
    return out


# The lab's goal figures for this page: speedups measured on an NVIDIA H200 in
# November 2026 at n = 8192, batch 4096 (fp16 unless said), given to the lab as what a
# like-for-like run here should come close to. They are not the chapter's numbers.
GOAL_DEVICE = "NVIDIA H200"
GOAL_DATE = "2026-11"
GOAL_DIMS = {"n": 8192, "batch": 4096}
GOAL_FIGURES = [
    # (what, sweep name, dtype, compare-to, reference speedup, reference FLOP ratio, goal config)
    ("Low-rank r=32 vs dense", "lowrank", "float16", "same dtype", 15.3, 128.0, "r=32"),
    ("Monarch, 64 blocks (naive) vs dense", "monarch", "float16", "same dtype", 2.7, 32.0, "64 blocks of 128"),
    ("Circulant by FFT vs dense fp32", "circulant", "float32", "dense float32", 28.0, None, None),
    ("Circulant by FFT (fp16) vs dense fp32", "circulant", "float16", "dense float32", None, None, None),
]


def goal_reference(dtype: str) -> Reference:
    """The goal figures of one dtype as a Reference (H200, n = 8192, batch 4096), so that
    engine.bench.reference.compare names what a measured row differs in."""
    return Reference(kind="structured-matrices", path=Path("goal"), name="the lab's goal figures",
                     device_name=GOAL_DEVICE, dims=tuple((k, (v,)) for k, v in GOAL_DIMS.items()),
                     dtypes=(dtype,), methods=(), date=GOAL_DATE, rows=len(GOAL_FIGURES))


def goal_point(rows: Sequence[dict]) -> tuple[int, int]:
    """(n, batch) to set beside the goal figures: 8192 x 4096 when measured, else the
    largest n and its largest batch."""
    if not rows:
        return 8192, 4096
    ns = [int(r["n"]) for r in rows]
    n = 8192 if 8192 in ns else max(ns)
    return n, max(int(r["batch"]) for r in rows if int(r["n"]) == n)


def goal_mismatch(row: dict, dtype: str, config: str | None) -> str:
    """What a measured row differs in from its goal figure, goal first ("" when like for
    like): device, n and batch as engine.bench.reference.compare finds them, and the
    operator's configuration: "device H200 vs CPU; n 8192 vs 1024; batch 4096 vs 256; r=32 vs r=16"."""
    device = str(row.get("device_name") or row.get("device") or "")
    match = compare(goal_reference(dtype), device_name=device,
                    dims={"n": int(row["n"]), "batch": int(row["batch"])}, dtype=dtype)
    parts = []
    for what in match.mismatches:
        if what == "device":
            parts.append(f"device {short_device(GOAL_DEVICE)} vs {short_device(device)}")
        elif what in GOAL_DIMS:
            parts.append(f"{what} {GOAL_DIMS[what]} vs {row[what]}")
        else:
            parts.append(f"{what} {dtype} vs {row.get(what)}")
    if config and row.get("config") != config:
        parts.append(f"{config} vs {row.get('config')}")
    return "; ".join(parts)


def reference_comparison(rows: Sequence[dict], n: int | None = None, batch: int | None = None) -> list[dict]:
    """The lab's goal speedups (H200, GOAL_FIGURES) beside the speedups measured in sweep
    ``rows`` at (n, batch) (default: ``goal_point(rows)``).

    status: "like for like" only when the row matches the goal's device, n, batch, dtype
    and configuration and its speedup is steady; "not comparable: <what differs>" when it
    does not match; NOISY_STATUS when the speedup (its time or dense's) is noisy; else why
    nothing was measured. ``lab noisy`` marks a noisy lab speedup."""
    if n is None or batch is None:
        n, batch = goal_point(rows)
    out = []
    for what, name, dtype, against, ref, ref_flops, config in GOAL_FIGURES:
        r = next((r for r in rows if r.get("name") == name and r.get("dtype") == dtype
                  and int(r.get("n", 0)) == n and int(r.get("batch", 0)) == batch), None)
        lab, noisy = None, None
        status = f"no row at n={n}, batch={batch}, {dtype}"
        if r is not None:
            key = "speedup_vs_dense" if against == "same dtype" else "speedup_vs_dense_fp32"
            lab = None if _missing(r.get(key)) else float(r.get(key))
            if lab is None:
                status = r.get("status") if str(r.get("status") or "ok") != "ok" else "not measured"
            else:
                noisy = speedup_noisy(rows, r, against)
                differs = goal_mismatch(r, dtype, config)
                status = (f"not comparable: {differs}" if differs else NOISY_STATUS if noisy
                          else "like for like")
                if differs and noisy:
                    status += f"; {NOISY_STATUS}"
        out.append({"comparison": what, "dtype": dtype,
                    "goal speedup (H200)": ref, "lab speedup": lab, "lab noisy": noisy, "status": status,
                    "goal FLOP ratio": ref_flops,
                    "lab FLOP ratio": None if r is None else r.get("theoretical_speedup"),
                    "goal config": config, "lab config": None if r is None else r.get("config"),
                    "lab at": None if r is None else f"n={r.get('n')}, batch={r.get('batch')}",
                    "lab device": None if r is None else (r.get("device_name") or r.get("device")),
                    "against": against})
    return out


def numbers_of(rows: Sequence[dict], label: str) -> str:
    """Whose numbers a table of ``rows`` shows: "this session's run (CPU: Intel Xeon, n = 1024)"."""
    if not rows:
        return "no run shown yet"
    devs = sorted({str(r.get("device_name") or r.get("device")) for r in rows})
    ns = sorted({int(r["n"]) for r in rows})
    return f"{label} ({', '.join(devs)}; n = {', '.join(map(str, ns))})"


def speedup_pivot(rows: Sequence[dict], dtype: str, value: str = "speedup_vs_dense") -> list[dict]:
    """One row per operator, one column per batch: ``value`` (speedup vs dense by default)
    of the sweep rows of ``dtype``. An unmeasured cell is None and the row's ``status``
    says why (the first status that is not "ok"). ``batch B noisy`` is True where that
    cell rests on a noisy timing (its own or dense's); a row with any noisy cell has the
    status "noisy at batch ...: rough" instead of "ok"."""
    sel = [r for r in rows if r.get("dtype") == dtype]
    batches = sorted({int(r["batch"]) for r in sel})
    out: dict[str, dict] = {}
    for r in sel:
        key = r["name"]
        row = out.setdefault(key, {"operator": key, "config": r.get("config") or "",
                                   "params": r.get("params"), "status": "ok", "_noisy": []})
        v = r.get(value)
        ok = not _missing(v)
        b = int(r["batch"])
        row[f"batch {b}"] = float(v) if ok else None
        row[f"batch {b} noisy"] = bool(ok and speedup_noisy(rows, r))
        if row[f"batch {b} noisy"]:
            row["_noisy"].append(b)
        if str(r.get("status") or "ok") != "ok" and row["status"] == "ok":
            row["status"] = str(r["status"])
    for row in out.values():
        for b in batches:
            row.setdefault(f"batch {b}", None)
            row.setdefault(f"batch {b} noisy", False)
        noisy = sorted(row.pop("_noisy"))
        if noisy and row["status"] == "ok":
            row["status"] = f"noisy at batch {', '.join(map(str, noisy))}: rough"
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
