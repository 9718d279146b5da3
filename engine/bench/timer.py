"""The lab's timer: warm-up, CUDA synchronisation, torch.utils.benchmark; returns a Measurement.

    task = Task(op="spmv", backend="torch-csr", dims={"rows": 512, "cols": 512, "k": 1}, device="cpu")
    m = measure(lambda: a @ x, task=task, repeats=20)
    m.median_s, m.iqr_s, m.noisy, m.runs, m.number_per_run, m.method   # "eager per call"
    m = repeat_until_settled(lambda: a @ x, task=task, budget_s=5.0)   # until IQR/median <= 0.1

Both time ``fn()`` eagerly: each timed run calls it ``number`` times back to back
(chosen from the warm-up so a run lasts about ``target_run_s``) and records the
per-call mean of that run. CUDA graphs (lab-bsr) and wall-clock loops build their
Measurement with ``Measurement.from_times`` and their own method name.
"""
from __future__ import annotations

import time
from typing import Callable

from engine.bench.measurement import EAGER, NOISE_THRESHOLD, Measurement, Task
from engine.validate import check_int

__all__ = ["NOISE_THRESHOLD", "Measurement", "Task", "measure", "measure_once", "repeat_until_settled"]


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        import torch

        torch.cuda.synchronize()


def _task(task: Task | None, device: str | None) -> Task:
    if task is None:
        return Task(op="unnamed", device=device or "cpu")
    if not isinstance(task, Task):
        raise ValueError(f"task: expected an engine.bench.measurement.Task, got {type(task).__name__}")
    if device is not None and device.split(":")[0] != task.device.split(":")[0]:
        raise ValueError(f"device: expected the task's device {task.device}, got {device}")
    return task


def _prepare(fn: Callable[[], object], device: str, warmup: int, target_run_s: float) -> tuple[float, int]:
    """Warm up, then estimate one call's cost; returns (seconds per call, calls per run)."""
    for _ in range(max(1, warmup)):  # first calls pay for handles, caches, autotuning
        fn()
    _sync(device)
    started = time.perf_counter()
    for _ in range(3):
        fn()
    _sync(device)
    one = max((time.perf_counter() - started) / 3, 1e-9)
    return one, int(max(1, min(1000, target_run_s // one)))


def _run(timer, number: int) -> list[float]:
    return list(timer.timeit(number).times)


def measure(fn: Callable[[], object], repeats: int = 20, device: str | None = None, warmup: int = 3,
            target_run_s: float = 2e-3, max_total_s: float = 10.0, *, task: Task | None = None) -> Measurement:
    """Time ``fn()`` ``repeats`` times (fewer if the whole would pass ``max_total_s``).

    task: what is timed (engine.bench.measurement.Task); its device is synchronised.
    ``device`` is only for callers without a task (it must match the task's if both).
    """
    import torch.utils.benchmark as benchmark

    repeats = check_int("repeats", repeats, lo=1)
    task = _task(task, device)
    one, number = _prepare(fn, task.device, warmup, target_run_s)
    repeats_run = int(max(1, min(repeats, max_total_s // (one * number) or 1)))
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
    times: list[float] = []
    for _ in range(repeats_run):
        times.extend(_run(timer, number))
    return Measurement(task=task, times_s=tuple(times), method=EAGER, repeats=repeats,
                       warmup=max(1, warmup), number_per_run=number)


def repeat_until_settled(fn: Callable[[], object], task: Task | None = None, budget_s: float = 5.0,
                         threshold: float = NOISE_THRESHOLD, min_runs: int = 5, max_runs: int = 1000,
                         warmup: int = 3, target_run_s: float = 2e-3, device: str | None = None) -> Measurement:
    """Take at least ``min_runs`` timed runs, then more until IQR/median <= ``threshold`` or
    ``budget_s`` (counted from the warm-up on) is spent.

    The result's ``settled`` says which: True (settled), False (budget or max_runs reached,
    the spread is still above the threshold; ``noisy`` then says so too).
    """
    import torch.utils.benchmark as benchmark
    import numpy as np

    if not (isinstance(min_runs, int) and 3 <= min_runs <= max_runs):
        raise ValueError(f"min_runs: expected an integer in [3, max_runs={max_runs}], got {min_runs!r}")
    if not (budget_s > 0):
        raise ValueError(f"budget_s: expected seconds > 0, got {budget_s!r}")
    task = _task(task, device)
    started = time.perf_counter()
    _one, number = _prepare(fn, task.device, warmup, target_run_s)
    timer = benchmark.Timer(stmt="fn()", globals={"fn": fn})
    times: list[float] = []
    settled = False
    while len(times) < max_runs:
        times.extend(_run(timer, number))
        if len(times) >= min_runs:
            q25, q50, q75 = np.quantile(times, [0.25, 0.5, 0.75])
            if q50 > 0 and (q75 - q25) / q50 <= threshold:
                settled = True
                break
        if len(times) >= min_runs and time.perf_counter() - started > budget_s:
            break  # (at least min_runs, even when the warm-up alone spent the budget)
    return Measurement(task=task, times_s=tuple(times), method=EAGER, repeats=len(times),
                       warmup=max(1, warmup), number_per_run=number, settled=settled)


def measure_once(fn: Callable[[], object], device: str = "cpu", repeats: int = 3) -> float:
    """Median wall time of ``fn()`` over a few calls, synchronised (for conversions)."""
    import numpy as np

    out = []
    for _ in range(max(1, repeats)):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        out.append(time.perf_counter() - t0)
    return float(np.median(out))
