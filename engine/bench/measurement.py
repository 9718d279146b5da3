"""Measurement: one frozen record of what was timed, how, and the raw times.

In the spirit of ``torch.utils.benchmark``'s Measurement (a TaskSpec plus raw times):

    task = Task(op="spmv", backend="torch-csr", dims={"rows": 512, "cols": 512, "k": 1},
                dtype="float32", pattern="uniform", sparsity=0.9, device="cpu",
                device_name="CPU: ...", versions={"torch_version": "2.5.1"})
    m = measure(lambda: a @ x, task=task, repeats=20)      # engine.bench.timer
    m.median_s, m.iqr_s, m.noisy, m.row()

Every timing row in the lab comes from a Measurement: ``row()`` is the flat dict a
sweep extends with its own derived columns (speedup, GB/s, ...) and that the CSV
schema (engine/bench/schema.py, ``measurement_columns``) is derived from.

"noisy" has ONE definition: IQR / median > NOISE_THRESHOLD (0.1), or fewer than
MIN_RUNS_FOR_SPREAD timed runs (an IQR of one or two runs says nothing). A ratio of two
timings (a speedup, a time over dense) is noisy when either timing is: ``ratio_noisy``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

NOISE_THRESHOLD = 0.1  # IQR / median above this flags a measurement as noisy
NOISY_LABEL = f"noisy (IQR/median > {NOISE_THRESHOLD:g})"
MIN_RUNS_FOR_SPREAD = 3

EAGER = "eager per call"
CUDA_GRAPH = "cuda-graph replay"
WALL_CLOCK = "wall clock"
METHODS = (EAGER, CUDA_GRAPH, WALL_CLOCK)

# Method texts older CSVs carry, read as the method they name.
_OLD_METHODS = {"torch.utils.benchmark": EAGER, "blocked_autorange": EAGER, "engine.bench.timer": EAGER,
                "graph": CUDA_GRAPH, "perf_counter": WALL_CLOCK, "wall": WALL_CLOCK,
                "median of repeats": WALL_CLOCK}


def normalise_method(text) -> str:
    """The timing method a CSV cell names: one of METHODS, or "" when it names none.

    "eager per call (number=8)" -> "eager per call"; the old
    "torch.utils.benchmark.Timer.timeit (number=8)" -> "eager per call".
    """
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return ""
    low = str(text).strip().lower()
    for m in METHODS:
        if low.startswith(m):
            return m
    for key, m in _OLD_METHODS.items():
        if key in low:
            return m
    return ""


def is_noisy(median_s, iqr_s, runs: int | None = None) -> bool:
    """The lab's one noise rule: IQR / median > NOISE_THRESHOLD (or too few runs to tell)."""
    try:
        med, iqr = float(median_s), float(iqr_s)
    except (TypeError, ValueError):
        return False
    if not (math.isfinite(med) and math.isfinite(iqr)) or med <= 0:
        return False
    if runs is not None and runs < MIN_RUNS_FOR_SPREAD:
        return True
    return iqr / med > NOISE_THRESHOLD


def noisy_flag(value) -> bool:
    """A row's ``noisy`` cell as a bool, however it was stored: True, a true number (not
    NaN), or a CSV's text "True" / "true" / "1" / "yes"; None, NaN, False and "False" are not."""
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1", "yes")
    if isinstance(value, (bool, np.bool_, int, float, np.integer, np.floating)):
        return bool(value) and bool(value == value)
    return False


def ratio_noisy(rows, baselines, on) -> list[bool]:
    """Per row of ``rows``: is a ratio built on it noisy? Yes when the row's own timing is,
    or the baseline it is divided by is: a row of ``baselines`` with the same values in the
    ``on`` columns (one name or several). A speedup is only as steady as both its times.

        ratio_noisy(flex_rows, sdpa_rows, on="seq_len")          # -> [False, True, ...]
        ratio_noisy(moe_rows, dense_rows, on=("source", "batch"))

    rows, baselines: dicts (a DataFrame's ``to_dict("records")``), each with a ``noisy`` cell
    (missing: not noisy)."""
    cols = (on,) if isinstance(on, str) else tuple(on)

    def key(row) -> tuple:  # a missing cell (None or NaN) matches a missing cell
        return tuple(None if (v is None or (isinstance(v, float) and v != v)) else v
                     for v in (row.get(c) for c in cols))

    noisy_keys = {key(b) for b in baselines if noisy_flag(b.get("noisy"))}
    return [noisy_flag(r.get("noisy")) or key(r) in noisy_keys for r in rows]


def _pairs(value, what: str) -> tuple[tuple[str, object], ...]:
    if value is None:
        return ()
    items = value.items() if isinstance(value, Mapping) else value
    try:
        out = tuple((str(k), v) for k, v in items)
    except (TypeError, ValueError):
        raise ValueError(f"{what}: expected a mapping of names to values, got {value!r}") from None
    return out


@dataclass(frozen=True)
class Task:
    """What was timed: the operation, its backend, shape as named dims, dtype, structure, device.

    dims: the page's own dimension names, in order (e.g. {"rows": m, "cols": n, "k": k},
    {"seq_len": 4096, "heads": 16}); pass a dict, it is stored as ordered pairs.
    block / sparsity / pattern: None or "" when the operation has none.
    device: "cpu" or "cuda"; device_name: the human name (runtime_device_name);
    versions: library versions as {"torch_version": "2.5.1", ...}.
    """

    op: str
    backend: str = ""
    dims: tuple[tuple[str, int], ...] = ()
    dtype: str = ""
    block: int | None = None
    pattern: str = ""
    sparsity: float | None = None
    device: str = "cpu"
    device_name: str = ""
    versions: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not isinstance(self.op, str) or not self.op:
            raise ValueError(f"op: expected a non-empty name, got {self.op!r}")
        object.__setattr__(self, "dims", _pairs(self.dims, "dims"))
        object.__setattr__(self, "versions", tuple((k, str(v)) for k, v in _pairs(self.versions, "versions")))
        for name, v in self.dims:
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 0:
                raise ValueError(f"dims: expected a non-negative integer for {name}, got {v!r}")
        if self.sparsity is not None:
            s = float(self.sparsity)
            if not (0.0 <= s <= 1.0):
                raise ValueError(f"sparsity: expected a number in [0, 1], got {self.sparsity!r}")

    @property
    def shape(self) -> dict[str, int]:
        return {k: int(v) for k, v in self.dims}

    def describe(self) -> str:
        """"torch-csr spmv rows=512 cols=512 k=1 float32 s=0.9 uniform on CPU: ..."."""
        parts = [p for p in (self.backend, self.op) if p]
        parts += [f"{k}={v}" for k, v in self.dims]
        parts += [p for p in (self.dtype,) if p]
        if self.sparsity is not None:
            parts.append(f"s={self.sparsity:g}")
        if self.pattern:
            parts.append(self.pattern)
        if self.block:
            parts.append(f"block={self.block}")
        return " ".join(parts) + f" on {self.device_name or self.device}"


def format_seconds(s: float) -> str:
    """1.23e-5 -> "12.3 us"."""
    if s is None or not math.isfinite(s):
        return "n/a"
    for unit, scale in (("s", 1.0), ("ms", 1e-3), ("us", 1e-6), ("ns", 1e-9)):
        if abs(s) >= scale:
            return f"{s / scale:.3g} {unit}"
    return f"{s / 1e-9:.3g} ns"


@dataclass(frozen=True)
class Measurement:
    """A Task, how it was timed, and the raw per-call times (seconds, one per timed run).

    method: one of METHODS; repeats: the timed runs asked for (``runs`` is how many were
    taken, after a time budget); warmup: untimed calls first; number_per_run: calls
    averaged inside one timed run. ``settled`` is set by repeat_until_settled: True when
    it stopped because IQR/median fell to the threshold, False when the budget ran out,
    None for a fixed number of repeats.
    """

    task: Task
    times_s: tuple[float, ...]
    method: str = EAGER
    repeats: int = 0
    warmup: int = 0
    number_per_run: int = 1
    settled: bool | None = None
    _stats: tuple[float, float] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"method: expected one of {', '.join(METHODS)}, got {self.method!r}")
        times = tuple(float(t) for t in self.times_s)
        if not times:
            raise ValueError("times_s: expected at least one timed run, got none")
        if not all(math.isfinite(t) and t >= 0 for t in times):
            raise ValueError(f"times_s: expected finite non-negative seconds, got {times[:5]!r}")
        object.__setattr__(self, "times_s", times)
        if not self.repeats:
            object.__setattr__(self, "repeats", len(times))
        arr = np.asarray(times)
        q25, q50, q75 = np.quantile(arr, [0.25, 0.5, 0.75])
        object.__setattr__(self, "_stats", (float(q50), float(q75 - q25)))

    @classmethod
    def from_times(cls, task: Task, times_s, method: str = WALL_CLOCK, **how) -> "Measurement":
        """For code that timed something itself (an epoch, a conversion): wrap its times."""
        return cls(task=task, times_s=tuple(times_s), method=method, **how)

    @property
    def median_s(self) -> float:
        return self._stats[0]

    @property
    def iqr_s(self) -> float:
        return self._stats[1]

    @property
    def runs(self) -> int:
        return len(self.times_s)

    @property
    def relative_iqr(self) -> float:
        return self.iqr_s / self.median_s if self.median_s > 0 else float("nan")

    @property
    def noisy(self) -> bool:
        return is_noisy(self.median_s, self.iqr_s, self.runs)

    def row(self) -> dict:
        """The flat CSV row: what (op, backend, dims, dtype, ...), how, and the statistics."""
        t = self.task
        density = None if t.sparsity is None else 1.0 - float(t.sparsity)
        return {"op": t.op, "backend": t.backend, **t.shape, "dtype": t.dtype, "block": t.block,
                "pattern": t.pattern, "sparsity": t.sparsity, "density": density, "device": t.device,
                "device_name": t.device_name, **dict(t.versions), "method": self.method,
                "repeats": self.repeats, "warmup": self.warmup, "number_per_run": self.number_per_run,
                "runs": self.runs, "median_s": self.median_s, "iqr_s": self.iqr_s, "noisy": self.noisy}

    def __repr__(self) -> str:
        flag = "  NOISY" if self.noisy else ""
        rel = self.relative_iqr
        rel_text = f"{100 * rel:.1f}%" if math.isfinite(rel) else "n/a"
        return (f"Measurement({self.task.describe()}\n"
                f"  median {format_seconds(self.median_s)}, IQR {format_seconds(self.iqr_s)} "
                f"({rel_text} of median){flag}\n"
                f"  {self.runs} runs x {self.number_per_run} calls, {self.warmup} warm-up, {self.method})")
