"""lab-bsr's tuner and GPU timer: ``graph_time`` (CUDA-graph replay with L2
evicted before each call, no Python launch cost) and ``tune`` (time every candidate
configuration on these inputs, remember the fastest per shape key).
"""
from __future__ import annotations

import math

import torch

from engine.sparse.kernels.bsr_configs import Config, candidate_configs, config_ok
from engine.sparse.kernels.bsr_launch import launch
from engine.sparse.kernels.bsr_matrix import BsrMatrix
from engine.sparse.kernels.bsr_cache import KERNEL_CACHE, TUNE_LOG  # noqa: F401 (TUNE_LOG public)


def _tune_key(a: BsrMatrix, b: torch.Tensor) -> tuple:
    per_row = a.nnz_blocks / max(a.block_rows, 1)
    bucket = int(round(2 * math.log2(per_row))) if per_row >= 1 else -1  # half octaves
    return (a.block, int(b.shape[1]), str(a.dtype), bucket, a.block_rows >= 64)


FLUSHES = ("write", "read", "none")


def graph_time(fn, n_inner: int = 8, reps: int = 7, flush_mb: int = 256,
               flush: str = "write") -> tuple[float, float, float]:
    """GPU time of ``fn()`` in ms as (median, q25, q75) of ``graph_samples``."""
    q = torch.tensor(graph_samples(fn, n_inner, reps, flush_mb, flush), dtype=torch.float64).quantile(
        torch.tensor([0.5, 0.25, 0.75], dtype=torch.float64))
    return float(q[0]), float(q[1]), float(q[2])


def graph_samples(fn, n_inner: int = 8, reps: int = 7, flush_mb: int = 256,
                  flush: str = "write") -> list[float]:
    """GPU time of ``fn()`` in ms, one sample per rep, free of Python launch cost:
    two CUDA graphs are captured, G1 = n_inner x (evict L2, fn) and G0 = the same
    without fn; each rep replays both (CUDA events) and the sample is
    (t(G1) - t(G0)) / n_inner. CUDA only; fn must be capturable.

    flush: how L2 is evicted before each call. "write" (what every benchmark here
    uses, like triton's do_bench) overwrites a ``flush_mb`` buffer, leaving L2 full of
    its dirty lines; "read" reads the buffer instead (clean lines); "none" does not
    evict, so fn finds its own data of the previous call in L2 (warm)."""
    if flush not in FLUSHES:
        raise ValueError(f"flush: expected one of {FLUSHES}, got {flush!r}")
    buf = torch.zeros(flush_mb * 2**20 // 4, dtype=torch.int32, device="cuda")

    def evict() -> None:
        if flush == "write":
            buf.zero_()
        elif flush == "read":
            buf.amax()  # reads every line; its one-number result is dropped
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up (compile, allocate) outside the capture
        fn()
        fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    g1, g0 = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
    with torch.cuda.graph(g1):
        for _ in range(n_inner):
            evict()
            fn()
    with torch.cuda.graph(g0):
        for _ in range(n_inner):
            evict()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    g1.replay()
    g0.replay()
    samples = []
    for _ in range(reps):
        pair = []
        for g in (g1, g0):
            start.record()
            g.replay()
            end.record()
            end.synchronize()
            pair.append(start.elapsed_time(end))
        samples.append((pair[0] - pair[1]) / n_inner)
    del g1, g0, buf
    return samples


TUNE_OP = "lab-bsr tune candidate"
TUNE_REPS = 5


def graph_measurement(task, samples_ms: list[float], n_inner: int = 1, warmup: int = 1):
    """``graph_samples`` (ms) as an engine.bench Measurement (CUDA-graph replay).

    A sample is the difference of two replays, so a call shorter than their spread can
    come out below zero; such a sample counts as 0 s (the median, which ranks candidates,
    is unchanged unless most samples are below zero)."""
    from engine.bench.measurement import CUDA_GRAPH, Measurement

    return Measurement.from_times(task, [max(t, 0.0) / 1e3 for t in samples_ms], method=CUDA_GRAPH,
                                  repeats=len(samples_ms), warmup=warmup, number_per_run=n_inner)


def candidate_measurement(a: BsrMatrix, b: torch.Tensor, samples_ms: list[float]):
    """One tuner candidate's CUDA-graph samples (ms) as a Measurement of its task."""
    from engine.bench.measurement import Task

    task = Task(op=TUNE_OP, backend="lab-bsr", dims={"m": int(a.shape[0]), "n": int(a.shape[1]),
                                                     "k": int(b.shape[1])},
                dtype=str(b.dtype).replace("torch.", ""), block=int(a.block), device=b.device.type,
                device_name=torch.cuda.get_device_name(b.device) if b.is_cuda else "cpu")
    return graph_measurement(task, samples_ms, n_inner=4)


def tune(a: BsrMatrix, b: torch.Tensor, configs: list[Config] | None = None,
         split_len: int | None = None) -> Config:
    """Time every candidate on these inputs (``graph_samples``: GPU time with L2 evicted
    before each call, no Python launch cost) and remember the fastest median for this
    shape's key (``KERNEL_CACHE``, read back by ``tuned_config``).

    Each candidate goes into ``TUNE_LOG`` as its shape key, its configuration and a
    Measurement's row (``candidate_measurement``; median_s, iqr_s, noisy, the raw runs'
    method). A candidate that fails to compile or run is logged with its error and skipped.
    """
    key = _tune_key(a, b)
    out = torch.empty(a.shape[0], b.shape[1], dtype=b.dtype, device=b.device)
    best, best_s = None, float("inf")
    for cfg in configs or candidate_configs(a.block, int(b.shape[1])):
        if not config_ok(a, b, cfg):
            continue
        entry = {"key": str(key), **cfg.as_dict()}
        try:
            samples = graph_samples(lambda: launch(a, b, out, cfg, split_len), n_inner=4, reps=TUNE_REPS)
            m = candidate_measurement(a, b, samples)
        except Exception as exc:  # a config the compiler or the chip refuses
            TUNE_LOG.append({**entry, "op": TUNE_OP, "median_s": float("nan"),
                             "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
            continue
        TUNE_LOG.append({**entry, **m.row(), "error": ""})
        if m.median_s < best_s:
            best, best_s = cfg, m.median_s
    if best is None:
        raise RuntimeError(f"lab-bsr: no configuration ran for key {key}")
    KERNEL_CACHE.put(("tuned", key), best)
    return best


def tuned_config(a: BsrMatrix, b: torch.Tensor) -> Config | None:
    """The configuration ``tune`` chose for the key of these inputs, or None."""
    return KERNEL_CACHE.get(("tuned", _tune_key(a, b)))
