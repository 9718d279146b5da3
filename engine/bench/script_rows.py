"""Rows of the headless GPU scripts (``benchmarks/*.py``): every timing a ``Measurement``.

    run = ScriptRun.here("bsr_bench", versions={"triton_version": triton.__version__})
    task = run.task("spmm", "lab-bsr", dims={"n": n, "k": k}, dtype="float16", block=64,
                    sparsity=0.9)
    m = run.graph(fn, task)                 # CUDA-graph replay, L2 evicted before each call
    m = run.events(fn, task)                # eager per call: CUDA events (triton do_bench)
    m = run.rotating([f0, f1, f2, f3], task)  # eager per call over rotating input sets
    m = run.host(fn, task)                  # host clock over calls queued without waiting
    rows.append(run.row(m, timing=GRAPH_TIMING, config="pers n256 ...", status="ok"))
    write_rows(out / "bsr_bench.csv", rows)

``run.row`` is ``Measurement.row()`` (the app's columns: op, backend, dims, dtype, block,
sparsity, device, device_name, versions, method, repeats, runs, median_s, iqr_s, noisy)
plus the script's name and date and the columns every earlier CSV of these scripts had
(``ms``, ``ms_q25``, ``ms_q75``, ``timing``), so the readers of committed runs
(``engine.bench.bsr_results``, the reference registry) read old and new files alike.
``SCRIPT_COLUMNS`` (engine/bench/schema.py, kind "gpu-script") is their schema.

Without CUDA (``run.cuda`` False: the CPU smoke runs and tests) every timer calls ``fn``
``SMOKE_CALLS`` times on the wall clock and says so (method "wall clock"; two runs are
flagged noisy by the lab's one rule): the rows are built by the same code, never faked.
"""
from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np

from engine.bench.measurement import CUDA_GRAPH, EAGER, WALL_CLOCK, Measurement, Task

GRAPH_TIMING = "cuda-graph replay, L2 evicted before each call"
EVENTS_TIMING = "eager per call, CUDA events (triton do_bench, L2 flushed)"
ROTATING_TIMING = "eager per call, back-to-back over 4 rotating input sets"
HOST_TIMING = "host clock over calls queued without waiting"
SMOKE_TIMING = "wall clock, CPU smoke run (not a GPU figure)"
SMOKE_CALLS = 2


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


@dataclass(frozen=True)
class ScriptRun:
    """One run of one script on one device: what every row of it shares."""

    script: str
    device: str  # "cuda" or "cpu"
    device_name: str
    versions: tuple[tuple[str, str], ...] = ()
    measured_at: str = field(default_factory=_now)

    @classmethod
    def here(cls, script: str, versions: dict | None = None, cuda: bool | None = None) -> "ScriptRun":
        """This host: CUDA when available (or as ``cuda`` says), its device name, torch's
        version and ``versions`` (e.g. {"triton_version": ...})."""
        import torch

        from engine.runtime.device import runtime_device_name

        use = torch.cuda.is_available() if cuda is None else bool(cuda)
        name = torch.cuda.get_device_name(0) if use else runtime_device_name(torch.device("cpu"))
        return cls(script, "cuda" if use else "cpu", name,
                   (("torch_version", torch.__version__), *sorted((versions or {}).items())))

    @property
    def cuda(self) -> bool:
        return self.device == "cuda"

    def task(self, op: str, backend: str, dims: dict, dtype: str = "", block: int | None = None,
             sparsity: float | None = None, pattern: str = "") -> Task:
        return Task(op=op, backend=backend, dims=dims, dtype=dtype, block=block, pattern=pattern,
                    sparsity=sparsity, device=self.device, device_name=self.device_name,
                    versions=self.versions)

    # -- timers: each returns a Measurement of seconds per call
    def _smoke(self, fn: Callable[[], object], task: Task) -> Measurement:
        times = []
        for _ in range(SMOKE_CALLS):
            t0 = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t0)
        return Measurement.from_times(task, times, method=WALL_CLOCK, warmup=0)

    def graph(self, fn: Callable[[], object], task: Task, n_inner: int = 8, reps: int = 9,
              flush: str = "write") -> Measurement:
        """GPU time per call from CUDA-graph replays, L2 evicted before each call
        (``engine.sparse.kernels.bsr_tune.graph_samples``); fn must be capturable."""
        if not self.cuda:
            return self._smoke(fn, task)
        from engine.sparse.kernels.bsr_tune import graph_measurement, graph_samples

        return graph_measurement(task, graph_samples(fn, n_inner=n_inner, reps=reps, flush=flush),
                                 n_inner=n_inner, warmup=2)

    def events(self, fn: Callable[[], object], task: Task, rep_ms: float = 100.0,
               warmup_ms: float = 25.0) -> Measurement:
        """Per call with CUDA events around each call, L2 flushed before it (triton's
        ``do_bench``, every sample kept)."""
        if not self.cuda:
            return self._smoke(fn, task)
        from triton.testing import do_bench

        ms = do_bench(fn, warmup=warmup_ms, rep=rep_ms, return_mode="all")
        return Measurement.from_times(task, [t * 1e-3 for t in ms], method=EAGER, warmup=1)

    def rotating(self, fns: Sequence[Callable[[], object]], task: Task, calls: int = 100,
                 reps: int = 5) -> Measurement:
        """Per call of ``calls`` back-to-back eager calls cycling over ``fns`` (one per input
        set, so no cache holds the last call's data), CUDA events around each run."""
        if not self.cuda:
            return self._smoke(lambda: [f() for f in fns], task)
        import torch

        for f in fns:
            f()
        torch.cuda.synchronize()
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        samples = []
        for _ in range(reps):
            start.record()
            for i in range(calls):
                fns[i % len(fns)]()
            end.record()
            end.synchronize()
            samples.append(start.elapsed_time(end) / calls * 1e-3)
        return Measurement.from_times(task, samples, method=EAGER, repeats=reps,
                                      warmup=len(fns), number_per_run=calls)

    def host(self, fn: Callable[[], object], task: Task, calls: int = 2000, reps: int = 5) -> Measurement:
        """Host time per call while calls are queued without waiting for the GPU."""
        if not self.cuda:
            return self._smoke(fn, task)
        import torch

        fn()
        torch.cuda.synchronize()
        samples = []
        for _ in range(reps):
            t0 = time.perf_counter()
            for _ in range(calls):
                fn()
            samples.append((time.perf_counter() - t0) / calls)
            torch.cuda.synchronize()
        return Measurement.from_times(task, samples, method=WALL_CLOCK, repeats=reps, warmup=1,
                                      number_per_run=calls)

    # -- rows
    def row(self, m: Measurement, timing: str = "", **extra) -> dict:
        """``m.row()`` + the script, its date, the legacy ms columns and ``extra``."""
        q25, q75 = np.quantile(np.asarray(m.times_s), [0.25, 0.75])
        timing = timing if self.cuda or not timing else SMOKE_TIMING
        return {**m.row(), "script": self.script, "measured_at": self.measured_at,
                "timing": timing or m.method, "ms": m.median_s * 1e3, "ms_q25": float(q25) * 1e3,
                "ms_q75": float(q75) * 1e3, **extra}

    def failed_row(self, task: Task, status: str, timing: str = "", **extra) -> dict:
        """A row for a point that could not be timed: the task's columns, no numbers."""
        t = task
        return {"op": t.op, "backend": t.backend, **t.shape, "dtype": t.dtype, "block": t.block,
                "pattern": t.pattern, "sparsity": t.sparsity, "device": t.device,
                "device_name": t.device_name, **dict(t.versions), "script": self.script,
                "measured_at": self.measured_at, "timing": timing, "ms": float("nan"),
                "median_s": float("nan"), "status": status, **extra}


def write_rows(path: str | Path, rows: Iterable[dict], columns: dict | None = None) -> None:
    """Rows to CSV, columns in first-seen order (the app's CSV writer,
    ``engine.runtime.store.to_csv_text``); nothing written for no rows. ``columns``: a
    schema (``SCRIPT_COLUMNS`` for timing rows) every column must be in, so what a script
    writes is what /runs imports."""
    from engine.runtime.store import to_csv_text

    rows = list(rows)
    if not rows:
        return
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    unknown = [k for k in keys if columns is not None and k not in columns]
    if unknown:
        raise ValueError(f"columns: expected those of the schema (engine/bench/schema.py), got "
                         f"{', '.join(unknown)} besides")
    Path(path).write_text(to_csv_text([{k: r.get(k) for k in keys} for r in rows]), newline="")

