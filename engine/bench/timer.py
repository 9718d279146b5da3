"""Timing with torch.utils.benchmark: warm-up, CUDA synchronisation, median and IQR.

    t = measure(lambda: a @ x, repeats=20)
    t.median_s, t.iqr_s, t.runs, t.method
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

NOISE_THRESHOLD = 0.1  # IQR / median above this flags a row as noisy
METHOD = "torch.utils.benchmark.Timer.timeit"


@dataclass(frozen=True)
class Timing:
    """Per-call times in seconds: median, IQR (p75 - p25), how many timed runs."""

    median_s: float
    iqr_s: float
    runs: int
    number_per_run: int
    method: str
    times: tuple[float, ...] = field(default=(), repr=False)

    @property
    def noisy(self) -> bool:
        return self.median_s > 0 and self.iqr_s / self.median_s > NOISE_THRESHOLD


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def measure(fn: Callable[[], object], repeats: int = 20, device: str = "cpu", warmup: int = 3,
            target_run_s: float = 2e-3, max_total_s: float = 10.0) -> Timing:
    """Time ``fn()``; each of ``repeats`` runs calls it ``number`` times.

    ``number`` is chosen from the warm-up so a run lasts about ``target_run_s``
    (short ops are repeated so timer resolution does not dominate); ``repeats`` is
    cut if the whole measurement would pass ``max_total_s``. torch's Timer
    synchronises CUDA around each run.
    """
    import torch.utils.benchmark as benchmark

    if repeats < 1:
        raise ValueError(f"repeats: expected an integer >= 1, got {repeats!r}")
    for _ in range(max(1, warmup)):  # first calls pay for handles, caches, autotuning
        fn()
    _sync(device)
    started = time.perf_counter()  # then estimate one call's cost from warm calls
    for _ in range(3):
        fn()
    _sync(device)
    one = max((time.perf_counter() - started) / 3, 1e-9)
    number = int(max(1, min(1000, target_run_s // one)))
    repeats = int(max(1, min(repeats, max_total_s // (one * number) or 1)))
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
    times = []
    for _ in range(repeats):
        m = timer.timeit(number)
        times.extend(m.times)
    arr = np.asarray(times, dtype=float)
    q25, q50, q75 = np.quantile(arr, [0.25, 0.5, 0.75]) if len(arr) > 1 else (arr[0],) * 3
    return Timing(float(q50), float(q75 - q25), len(arr), number, METHOD, tuple(arr.tolist()))


def measure_once(fn: Callable[[], object], device: str = "cpu", repeats: int = 3) -> float:
    """Median wall time of ``fn()`` over a few calls, synchronised (for conversions)."""
    out = []
    for _ in range(max(1, repeats)):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return float(np.median(out))
