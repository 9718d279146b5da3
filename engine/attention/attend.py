"""Attention under a mask, four ways that must agree, and a timing sweep.

Shapes: q, k, v are (batch, heads, seq, head_dim); a dense mask is (seq, seq) bool,
True = kept. Every implementation returns (batch, heads, seq, head_dim).

Backends (``ATTENTION_BACKENDS``):
    reference    softmax(QK^T / sqrt(d) + mask) V written out (float32 or float64)
    sdpa-masked  torch SDPA with the boolean mask (dense compute, the mask is a bias)
    sdpa-causal  torch SDPA with is_causal=True (the flash path); only for the causal mask
    sdpa-dense   torch SDPA with no mask (flash); only for the full mask
    flex         FlexAttention with a BlockMask built from the same predicate

The attention backends live in this small table rather than in engine.sparse.formats'
registry: that registry's contract is ``y = A @ x`` (prepare a matrix, multiply a
vector or matrix), and attention needs Q, K, V and a mask predicate.

Timing keeps three costs apart (summing them misleads FlexAttention users): building
the mask (dense bool or BlockMask), compiling (first call minus a steady call, for
torch.compile'd FlexAttention), and the kernel (median and IQR of steady calls).
"""
from __future__ import annotations

import datetime as _dt
import functools
import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import torch
import torch.nn.functional as F

from engine.attention.masks import (MASK_KINDS, Mask, attention_flops, build_mask, causal, full,
                                    is_causal_mask, materialize, stats_of)
from engine.sparse.formats import DTYPES
from engine.runtime.threads import torch_threads
from engine.validate import check_choice, check_int

from engine.bench.measurement import Task, ratio_noisy
from engine.bench.timer import repeat_until_settled



# -- implementations ---------------------------------------------------------------
def attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                        dense_mask: torch.Tensor) -> torch.Tensor:
    """softmax(q k^T / sqrt(d) + log(mask)) v, computed in float32 (float64 stays).

    A query row with no kept key returns zeros (FlexAttention's convention).
    """
    work = torch.float64 if q.dtype == torch.float64 else torch.float32
    scores = (q.to(work) @ k.to(work).transpose(-2, -1)) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~dense_mask, float("-inf"))
    weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)
    return (weights @ v.to(work)).to(q.dtype)


def attention_weights(q: torch.Tensor, k: torch.Tensor, dense_mask: torch.Tensor) -> torch.Tensor:
    """The attention weights softmax(q k^T / sqrt(d) + mask): (..., Q, KV), rows sum to 1."""
    scores = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(q.shape[-1])
    return torch.softmax(scores.masked_fill(~dense_mask, float("-inf")), dim=-1).nan_to_num(0.0)


def attention_sdpa_masked(q, k, v, dense_mask: torch.Tensor) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, attn_mask=dense_mask)


def attention_sdpa_causal(q, k, v, _mask=None) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v, is_causal=True)


def attention_sdpa_dense(q, k, v, _mask=None) -> torch.Tensor:
    return F.scaled_dot_product_attention(q, k, v)


def _flex_module():
    from torch.nn.attention import flex_attention as fa

    return fa


def make_block_mask(mask: Mask, seq_len: int, device: Any, block: int = 128):
    """FlexAttention's BlockMask of ``mask`` at ``seq_len`` (built from the same predicate)."""
    fa = _flex_module()
    mask = mask.to(device)
    return fa.create_block_mask(mask.mask_mod, None, None, seq_len, seq_len, device=device,
                                BLOCK_SIZE=block)


@functools.lru_cache(maxsize=4)
def compiled_flex(dynamic: bool | None = False):
    """torch.compile(flex_attention, dynamic=...), with dynamo's recompile limit raised:
    masks and shapes are their own compiles, and past the default limit (8) dynamo
    would silently fall back to the unfused eager path that materialises every score.

    dynamic: False (the default here: one kernel per mask and shape, what a script
    that runs one shape gets), None (torch's default: static first, then the sizes
    that changed become symbolic) or True (every size symbolic). Measured on an H200
    (benchmarks/results/attention/flex_gap.csv, sliding window 256, B 4, H 16, d 64,
    bf16): the symbolic-length kernel that None ends up with after a second length
    took 0.62 ms at S = 16384 where the static one took 0.46 ms, and 0.165 ms against
    0.121 ms at S = 4096 once other lengths had been compiled first.
    """
    import torch._dynamo

    cfg = torch._dynamo.config
    for name in ("recompile_limit", "cache_size_limit", "accumulated_recompile_limit",
                 "accumulated_cache_size_limit"):
        try:
            if hasattr(cfg, name):
                setattr(cfg, name, max(int(getattr(cfg, name)), 512))
        except Exception:  # noqa: BLE001 - an alias or a renamed knob in another torch
            pass
    return torch.compile(_flex_module().flex_attention, dynamic=dynamic)


def attention_flex(q, k, v, block_mask, compile: bool = True, dynamic: bool | None = False) -> torch.Tensor:
    """FlexAttention; ``compile=False`` runs torch's unfused eager implementation."""
    if compile:
        return compiled_flex(dynamic)(q, k, v, block_mask=block_mask)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _flex_module().flex_attention(q, k, v, block_mask=block_mask)


def flex_unavailable_reason(device: Any, compile: bool = True, allow_cpu_compile: bool = False) -> str | None:
    """None when FlexAttention can run here as a fused kernel, else "unavailable: ..."."""
    dev = torch.device(device).type
    try:
        _flex_module()
    except Exception as exc:  # noqa: BLE001
        return f"unavailable: torch.nn.attention.flex_attention does not import ({exc})"
    if dev == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "unavailable: expected triton for the compiled FlexAttention kernel, got none"
        return None
    if not compile:
        return None
    if not allow_cpu_compile:
        return ("unavailable: on CPU, FlexAttention without torch.compile is an unfused "
                "reference that materialises every score, and compiling it takes about a "
                "minute per mask and shape here; tick 'compile FlexAttention on CPU' to measure it")
    return None


@dataclass(frozen=True)
class AttentionBackend:
    """One attention implementation.

    prepare(mask, seq_len, device, block) -> the mask object it consumes (timed as
    mask build); run(q, k, v, prepared) -> output; supports(mask_dense) -> None or a
    reason (for backends tied to one mask).
    """

    name: str
    label: str
    prepare: Callable[..., Any]
    run: Callable[..., torch.Tensor]
    supports: Callable[[torch.Tensor], str | None] = lambda dense: None
    compiles: bool = False


def _dense_prepare(mask: Mask, seq_len: int, device: Any, block: int = 128):
    return materialize(mask, seq_len, device=device)


def _needs_causal(dense: torch.Tensor) -> str | None:
    return None if is_causal_mask(dense) else "unsupported: expected the causal mask for is_causal=True"


def _needs_full(dense: torch.Tensor) -> str | None:
    return None if bool(dense.all()) else "unsupported: expected the full mask for unmasked SDPA"


ATTENTION_BACKENDS: dict[str, AttentionBackend] = {b.name: b for b in (
    AttentionBackend("reference", "reference softmax(QK^T/sqrt d + mask) V", _dense_prepare,
                     attention_reference),
    AttentionBackend("sdpa-masked", "SDPA, boolean mask", _dense_prepare, attention_sdpa_masked),
    AttentionBackend("sdpa-causal", "SDPA is_causal (flash)", lambda m, s, d, b=128: None,
                     attention_sdpa_causal, _needs_causal),
    AttentionBackend("sdpa-dense", "SDPA no mask (flash)", lambda m, s, d, b=128: None,
                     attention_sdpa_dense, _needs_full),
    AttentionBackend("flex", "FlexAttention, BlockMask", make_block_mask,
                     lambda q, k, v, bm: attention_flex(q, k, v, bm), compiles=True),
)}


def run_attention(name: str, q, k, v, mask: Mask, block: int = 128, compile: bool = True):
    """Output of backend ``name`` on ``mask`` (for tests and the page; not timed)."""
    check_choice("attention backend", name, ATTENTION_BACKENDS)
    seq_len = q.shape[-2]
    backend = ATTENTION_BACKENDS[name]
    dense = materialize(mask, seq_len, device=q.device)
    reason = backend.supports(dense)
    if reason:
        raise ValueError(f"{name}: {reason}")
    if name == "flex":
        return attention_flex(q, k, v, make_block_mask(mask, seq_len, q.device, block), compile=compile)
    return backend.run(q, k, v, backend.prepare(mask, seq_len, q.device, block))


# -- inputs --------------------------------------------------------------------------
def random_qkv(batch: int, heads: int, seq_len: int, head_dim: int, dtype: str = "float32",
               device: Any = "cpu", seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Standard-normal q, k, v of shape (batch, heads, seq_len, head_dim)."""
    check_choice("dtype", dtype, DTYPES)
    device = torch.device(device)
    gen = torch.Generator(device=device).manual_seed(seed)
    shape = (batch, heads, seq_len, head_dim)
    return tuple(torch.randn(shape, generator=gen, device=device, dtype=torch.float32).to(DTYPES[dtype])
                 for _ in range(3))


def structured_qk(seq_len: int, head_dim: int = 64, seed: int = 0, sink: float = 8.0,
                  locality: float = 8.0, width: float = 0.3,
                  noise: float = 0.3) -> tuple[torch.Tensor, torch.Tensor]:
    """Q, K (seq_len, head_dim) whose dense causal attention has the chapter's pattern:
    each token attends to itself, to the first token, and to its near neighbours.

    Random Fourier features of the position (frequencies ~ N(0, width)) make the
    logit q_i . k_j / sqrt(d) about ``locality`` * exp(-(width (i - j))^2 / 2): a peak at
    j = i decaying over a few tokens. One dimension, large only for key 0 and shared
    by every query, adds a logit of ``sink`` for token 0. Gaussian noise on top.
    With the defaults about a third of the causal weight lands on token 0, a third on
    the token itself, and nearly all the rest within 8 neighbours.
    """
    seq_len = check_int("sequence length", seq_len, lo=2)
    head_dim = check_int("head dim", head_dim, lo=8)
    gen = torch.Generator().manual_seed(seed)
    pos = torch.arange(seq_len, dtype=torch.float32).unsqueeze(1)
    n_freq = (head_dim - 2) // 2
    angles = pos * (torch.randn(n_freq, generator=gen) * width)
    feats = torch.cat([angles.cos(), angles.sin()], dim=1) * math.sqrt(locality * math.sqrt(head_dim) / n_freq)
    q = torch.zeros(seq_len, head_dim)
    k = torch.zeros(seq_len, head_dim)
    q[:, : 2 * n_freq] = feats
    k[:, : 2 * n_freq] = feats
    q[:, -2] = math.sqrt(sink * math.sqrt(head_dim))
    k[0, -2] = math.sqrt(sink * math.sqrt(head_dim))
    q += noise * torch.randn(seq_len, head_dim, generator=gen)
    k += noise * torch.randn(seq_len, head_dim, generator=gen)
    return q, k


def mask_fidelity(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                  dense_masks: dict[str, torch.Tensor], baseline_mask: torch.Tensor) -> dict[str, dict]:
    """How much of ``baseline_mask``'s attention each mask keeps, for q, k, v (S, d).

    Returns name -> {mass_kept, output_rel_error, weights}: mass_kept is the mean over
    queries of the baseline weights that fall on kept keys; output_rel_error is
    ||O_mask - O_baseline|| / ||O_baseline|| (Frobenius); weights (S, S) the masked
    attention weights. The scores q k^T are computed once for all masks.
    """
    scores = (q.float() @ k.float().transpose(-2, -1)) / math.sqrt(q.shape[-1])

    def weights_of(mask: torch.Tensor) -> torch.Tensor:
        return torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1).nan_to_num(0.0)

    w_base = weights_of(baseline_mask)
    o_base = w_base @ v.float()
    out = {}
    for name, mask in dense_masks.items():
        w = weights_of(mask)
        out[name] = {"mass_kept": float((w_base * mask).sum(dim=-1).mean()),
                     "output_rel_error": float((w @ v.float() - o_base).norm() / o_base.norm()),
                     "weights": w}
    return out


# -- timing --------------------------------------------------------------------------
def mask_zoo(seq_len: int, block: int, params: dict) -> tuple[list[dict], dict]:
    """Every zoo mask (masks.MASK_KINDS) on the structured input of ``seq_len`` tokens
    (head dim 64): a row per mask (density, block density, theory vs causal, the share of
    dense causal attention's weight it keeps, the relative error of its output) and
    {"weights": kind -> (S, S) weights, "names": kind -> mask name}."""
    q, k = structured_qk(seq_len, 64, seed=params.get("seed", 0))
    v = torch.randn(seq_len, 64, generator=torch.Generator().manual_seed(1))
    base = materialize(causal(), seq_len)
    dense_of, names = {}, {}
    for kind in MASK_KINDS:
        mask = build_mask(kind, seq_len, params, block)
        dense_of[kind], names[kind] = materialize(mask, seq_len), mask.name
    fid = mask_fidelity(q, k, v, dense_of, base)
    rows = []
    for kind, dense in dense_of.items():
        st = stats_of(dense, block, names[kind])
        rows.append({"mask": names[kind], "density": st.density, "block_density": st.block_density,
                     "theory_vs_causal": st.speedup_vs_causal, "mass_kept": fid[kind]["mass_kept"],
                     "output_rel_error": fid[kind]["output_rel_error"]})
    return rows, {"weights": {kind: f["weights"] for kind, f in fid.items()}, "names": names}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    _sync(device)
    t0 = time.perf_counter()
    out = fn()
    _sync(device)
    return out, time.perf_counter() - t0


TIMER_THREADS = 1  # torch.utils.benchmark.Timer's default num_threads


def timer_threads():
    """Run a whole row at the thread count the benchmark Timer uses.

    The Timer sets torch's num_threads (1 by default) while it times; torch.compile
    guards on that global state, so a FlexAttention compiled outside the Timer at
    another thread count would silently recompile inside the timed runs. Through
    ``engine.runtime.threads.torch_threads``, so threads that change the count at the same
    time still leave the process's own count restored.
    """
    return torch_threads(TIMER_THREADS)


def time_kernel(fn: Callable[[], Any], device: torch.device, repeats: int = 10,
                task: Task | None = None, budget_s: float = 5.0) -> dict:
    """Time steady calls of ``fn`` with the lab's timer and return the row's timing columns.

    Runs are taken until IQR / median settles at or below the lab's noise threshold (at
    least ``repeats`` runs) or ``budget_s`` is spent (engine.bench.timer.repeat_until_settled);
    what stays above it is flagged ``noisy``. Returns ``Measurement.row()`` (op, backend,
    dims, method, runs, median_s, iqr_s, noisy, ...) plus kernel_ms / iqr_ms in ms and
    ``settled``.
    """
    # On a GPU a timed run lasts ~20 ms, so the synchronisation around it adds ~1 %
    # (at the default 2 ms it added 5-8 % to a 0.5 ms kernel: flex_gap.csv).
    target = 0.02 if device.type == "cuda" else 2e-3
    task = task or Task(op="attention", device=device.type)
    m = repeat_until_settled(fn, task=task, budget_s=budget_s, min_runs=max(3, repeats),
                             max_runs=max(3, repeats) * 20, warmup=1, target_run_s=target)
    return {**m.row(), "kernel_ms": m.median_s * 1e3, "iqr_ms": m.iqr_s * 1e3, "settled": m.settled}


# -- the sweep -----------------------------------------------------------------------
SWEEP_IMPLS = ("sdpa-masked", "flex")
BASELINES = (("sdpa-causal", "causal"), ("sdpa-dense", "full"))


@dataclass(frozen=True)
class SweepConfig:
    """Sequence lengths x masks x implementations, on one device.

    masks: zoo kinds (engine.attention.masks.MASK_KINDS) with ``params``; block: BlockMask block
    size (and granularity of random links); flex_compile_on_cpu: measure compiled
    FlexAttention on a CPU (about a minute of compile per mask and shape);
    flex_dynamic: torch.compile's ``dynamic`` for FlexAttention (see compiled_flex);
    flex_fresh_compile: reset dynamo before each FlexAttention row, so every row is
    compiled and called as in a script of its own (one cache entry, nothing left from
    the rows before: no symbolic sizes, no guard checks over earlier entries);
    time_budget_s: rows after this many seconds are reported as skipped;
    settle_budget_s: seconds one row may spend repeating its timed runs until IQR / median
    settles (engine.bench.timer.repeat_until_settled); a row still above then is noisy.
    """

    seq_lens: tuple[int, ...] = (1024, 2048, 4096)
    masks: tuple[str, ...] = ("sliding_window", "longformer", "bigbird")
    params: tuple[tuple[str, int], ...] = (("w", 256), ("g", 16), ("r", 2), ("seed", 0))
    batch: int = 1
    heads: int = 4
    head_dim: int = 64
    dtype: str = "float32"
    block: int = 128
    repeats: int = 10
    flex_compile_on_cpu: bool = False
    flex_dynamic: bool | None = False
    flex_fresh_compile: bool = True
    check: bool = True
    time_budget_s: float | None = None
    settle_budget_s: float = 3.0
    seed: int = 0

    def __post_init__(self):
        if not self.seq_lens:
            raise ValueError("sequence lengths: expected at least one, got none")
        for s in self.seq_lens:
            check_int("sequence length", s, lo=16, hi=65536)
        if not self.masks:
            raise ValueError("masks: expected at least one, got none")
        for m in self.masks:
            build_mask(m, 16)  # validates the kind
        check_choice("dtype", self.dtype, DTYPES)
        check_int("block size", self.block, lo=16, hi=1024)
        check_int("batch", self.batch, lo=1, hi=64)
        check_int("heads", self.heads, lo=1, hi=128)
        check_int("head dim", self.head_dim, lo=16, hi=256)
        check_int("repeats", self.repeats, lo=1, hi=1000)
        if not (isinstance(self.settle_budget_s, (int, float)) and 0 < self.settle_budget_s <= 600):
            raise ValueError(f"settle budget: expected seconds in (0, 600], got {self.settle_budget_s!r}")

    def task(self, impl: str, seq_len: int, mask: str, density: float | None, device: str,
             device_name: str = "") -> Task:
        """What one row times (engine.bench.measurement.Task)."""
        return Task(op="attention", backend=impl, dtype=self.dtype, block=self.block, pattern=mask,
                    sparsity=None if density is None else 1.0 - density, device=device,
                    device_name=device_name, versions=_versions(),
                    dims={"seq_len": seq_len, "batch": self.batch, "heads": self.heads,
                          "head_dim": self.head_dim})

    @property
    def total(self) -> int:
        return len(self.seq_lens) * (len(BASELINES) + len(self.masks) * len(SWEEP_IMPLS))


def sweep_memory_bytes(config: SweepConfig, device_type: str) -> float:
    """Rough peak bytes of the largest row: q, k, v, out and, for masked SDPA, the
    (S, S) bool mask (+ on CPU the (B, H, S, S) float scores of the math path)."""
    s = max(config.seq_lens)
    elem = torch.tensor([], dtype=DTYPES[config.dtype]).element_size()
    qkv = 5 * config.batch * config.heads * s * config.head_dim * elem
    mask = s * s * (1 + elem)
    scores = 3 * config.batch * config.heads * s * s * 4 if device_type == "cpu" else 0
    return qkv + mask + scores


def _versions() -> dict:
    return {"torch_version": torch.__version__}


def attention_sweep(config: SweepConfig, device: Any = "cpu", device_name: str = "") -> Iterator[dict]:
    """Yield one row per (sequence length, mask, implementation).

    Order: first the two baselines (SDPA causal, SDPA without mask) at every length,
    then mask by mask every length with masked SDPA and FlexAttention, so that a run
    cut by ``time_budget_s`` still holds whole curves for the first masks.

    Every row carries the theory (token and block densities, speedups by FLOPs) and,
    when it ran, mask_build_ms, compile_s, kernel_ms (median) and iqr_ms, speedups
    against SDPA causal and SDPA dense measured in the same run, and FlexAttention's
    largest absolute difference from masked SDPA's output (the agreement check).
    """
    device = torch.device(device)
    started = time.perf_counter()
    params = dict(config.params)
    base = {"sweep": "attention", "device": device.type, "device_name": device_name or device.type,
            "dtype": config.dtype, "batch": config.batch, "heads": config.heads,
            "head_dim": config.head_dim, "block": config.block, **_versions()}
    flex_reason = flex_unavailable_reason(device, True, config.flex_compile_on_cpu)
    qkv = {s: random_qkv(config.batch, config.heads, s, config.head_dim, config.dtype, device,
                         config.seed) for s in config.seq_lens}
    timings: dict[int, dict[str, float]] = {s: {} for s in config.seq_lens}

    def over_budget() -> bool:
        return config.time_budget_s is not None and time.perf_counter() - started > config.time_budget_s

    for seq_len in config.seq_lens:
        q, k, v = qkv[seq_len]
        rows = []
        for impl, kind in BASELINES:
            mask = causal() if kind == "causal" else full()
            row = _row(base, seq_len, kind, mask, impl, config, _theory(mask, seq_len, config, device))
            if over_budget():
                rows.append({**row, "status": "skipped: time budget"})
                continue
            fn = ATTENTION_BACKENDS[impl].run
            task = config.task(impl, seq_len, mask.name, row["density"], device.type, base["device_name"])
            row.update(_measure_row(lambda: fn(q, k, v), lambda: None, device, config, task, compiles=False))
            row.pop("_out", None)
            if row["status"] == "ok":
                timings[seq_len][impl] = row["kernel_ms"]
            rows.append(row)
        for row in rows:  # both baselines timed first, so each row has both speedups
            yield _with_speedups(row, timings[seq_len])

    for kind in config.masks:
        for seq_len in config.seq_lens:
            q, k, v = qkv[seq_len]
            mask = build_mask(kind, seq_len, params, config.block, device)
            theory = _theory(mask, seq_len, config, device)
            reference_out = None
            for impl in SWEEP_IMPLS:
                row = _row(base, seq_len, kind, mask, impl, config, theory)
                if over_budget():
                    yield {**row, "status": "skipped: time budget"}
                    continue
                if impl == "flex" and flex_reason:
                    yield {**row, "status": flex_reason}
                    continue
                if impl == "flex":
                    if config.flex_fresh_compile:
                        import torch._dynamo as dynamo

                        dynamo.reset()
                    compiled = compiled_flex(config.flex_dynamic)
                    prepare = lambda m=mask, s=seq_len: make_block_mask(m, s, device, config.block)  # noqa: E731
                    run = lambda bm: compiled(q, k, v, block_mask=bm)  # noqa: E731
                else:
                    prepare = lambda m=mask, s=seq_len: materialize(m, s, device=device)  # noqa: E731
                    run = lambda dm: attention_sdpa_masked(q, k, v, dm)  # noqa: E731
                task = config.task(impl, seq_len, mask.name, theory["density"], device.type,
                                   base["device_name"])
                result = _measure_row(run, prepare, device, config, task, compiles=impl == "flex",
                                      reference=reference_out)
                out = result.pop("_out", None)
                if impl == "sdpa-masked" and out is not None:
                    reference_out = out
                row.update(result)
                yield _with_speedups(row, timings[seq_len])
            del reference_out


def _theory(mask: Mask, seq_len: int, config: SweepConfig, device: torch.device) -> dict:
    """Densities and FLOPs speedups of ``mask`` at ``seq_len`` (counted on ``device``)."""
    dense = materialize(mask, seq_len, device=device)
    st = stats_of(dense, config.block, mask.name)
    del dense
    return {"density": st.density, "block_density": st.block_density,
            "theory_vs_causal": st.speedup_vs_causal, "theory_vs_dense": st.speedup_vs_dense,
            "block_theory_vs_causal": st.block_speedup_vs_causal,
            "block_theory_vs_dense": st.block_speedup_vs_dense,
            "useful_flops": attention_flops(st.nnz, config.head_dim, config.batch, config.heads)}


def _row(base: dict, seq_len: int, kind: str, mask: Mask, impl: str, config: SweepConfig,
         theory: dict) -> dict:
    return {**base, "seq_len": seq_len, "mask_kind": kind, "mask": mask.name, "impl": impl,
            "status": "pending", "message": "", **theory,
            "mask_build_ms": math.nan, "compile_s": math.nan,
            "first_call_ms": math.nan, "kernel_ms": math.nan, "iqr_ms": math.nan, "runs": 0,
            "noisy": False, "settled": False, "method": "", "tflops": math.nan, "speedup_vs_causal": math.nan,
            "speedup_vs_dense": math.nan, "max_abs_diff": math.nan,
            "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}


def _measure_row(run: Callable[[Any], Any] | Callable[[], Any], prepare: Callable[[], Any],
                 device: torch.device, config: SweepConfig, task: Task, compiles: bool,
                 reference: torch.Tensor | None = None) -> dict:
    """Build the mask (timed), first call (timed: includes compile), steady calls."""
    out: dict[str, Any] = {}
    try:
        with timer_threads():
            prepared, build_s = _timed(prepare, device)
            call = (lambda: run(prepared)) if prepared is not None else run
            result, first_s = _timed(call, device)
            timing = time_kernel(call, device, config.repeats, task, config.settle_budget_s)
    except torch.cuda.OutOfMemoryError as exc:
        torch.cuda.empty_cache()
        return {"status": "error: out of memory", "message": str(exc).splitlines()[0][:200]}
    except Exception as exc:  # noqa: BLE001 - one failing row must not end the sweep
        return {"status": f"error: {type(exc).__name__}", "message": str(exc).splitlines()[0][:300]
                if str(exc) else ""}
    out["status"] = "ok"
    out["mask_build_ms"] = build_s * 1e3 if prepared is not None else 0.0
    out["first_call_ms"] = first_s * 1e3
    out["compile_s"] = max(0.0, first_s - timing["kernel_ms"] / 1e3) if compiles else math.nan
    out.update(timing)
    if reference is not None and config.check:
        out["max_abs_diff"] = float((result.float() - reference.float()).abs().max())
    out["_out"] = result
    return out


def _with_speedups(row: dict, timings: dict[str, float]) -> dict:
    row.pop("_out", None)
    t = row.get("kernel_ms")
    if row.get("status") == "ok" and t and t > 0:
        row["tflops"] = row["useful_flops"] / (t / 1e3) / 1e12
        if "sdpa-causal" in timings:
            row["speedup_vs_causal"] = timings["sdpa-causal"] / t
        if "sdpa-dense" in timings:
            row["speedup_vs_dense"] = timings["sdpa-dense"] / t
    return row


def noisy_lengths(rows: list[dict], impl: str = "flex") -> dict[str, list[int]]:
    """Per mask: the sequence lengths whose ``impl`` row, or a baseline row at that length,
    is noisy (``ratio_noisy``: IQR / median over the threshold): no verdict may rest on them."""
    ok = [r for r in rows if r.get("status") == "ok"]
    part = [r for r in ok if r.get("impl") == impl]
    base = [r for r in ok if r.get("impl") in {b for b, _mask in BASELINES}]
    out: dict[str, list[int]] = {}
    for r, noisy in zip(part, ratio_noisy(part, base, on="seq_len")):
        if noisy:
            out.setdefault(r["mask"], []).append(int(r["seq_len"]))
    return {m: sorted(v) for m, v in out.items()}


def crossover(rows: list[dict], impl: str = "flex", baseline: str = "speedup_vs_causal") -> dict:
    """Per mask: the smallest measured sequence length from which ``impl`` stays faster
    than the baseline (speedup > 1 at that length and every longer one), or None.

    Rows that are noisy, or whose baseline at that length is (``noisy_lengths``), are
    left out: a verdict rests only on settled timings."""
    by_mask: dict[str, list[tuple[int, float]]] = {}
    skip = noisy_lengths(rows, impl)
    for r in rows:
        if r.get("impl") == impl and r.get("status") == "ok" and int(r["seq_len"]) not in skip.get(r["mask"], ()):
            val = r.get(baseline)
            if val is not None and not (isinstance(val, float) and math.isnan(val)):
                by_mask.setdefault(r["mask"], []).append((int(r["seq_len"]), float(val)))
    out = {}
    for mask, pts in by_mask.items():
        pts.sort()
        found = None
        for i, (s, _sp) in enumerate(pts):
            if all(sp > 1.0 for _s, sp in pts[i:]):
                found = s
                break
        out[mask] = found
    return out
