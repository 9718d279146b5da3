"""Dense FFN vs the MoE layer over batch size: ``SweepSpec``, ``timing_sweep_rows``
(one Measurement row per batch and variant), ``sweep_summary`` and the committed
reference run."""
from __future__ import annotations

import math
import platform
import time
from dataclasses import asdict, dataclass
from typing import Iterator

import torch

from engine.bench.measurement import Task, noisy_flag
from engine.moe.layer import METHODS, Experts, ffn, grouped_mm_available, moe_forward
from engine.moe.router import route
from engine.sparse.formats import DTYPE_BYTES
from engine.validate import check_choice, check_float, check_int


# The sweep's widgets, from here: model width (lo, hi, step), the largest batch (lo, hi),
# the experts / top-k pairs, dtypes and devices. SweepSpec refuses anything else.
SWEEP_LIMITS = {"d_model": (8, 8192, 8), "max_batch": (1, 16384)}
EXPERT_CHOICES = ("8/1", "8/2", "16/2", "64/8")
DTYPES = ("float32", "bfloat16", "float16")
DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class SweepSpec:
    """Dense FFN vs MoE timing. h = ffn_mult * d per expert; batches are token counts."""

    d_model: int = 256
    ffn_mult: int = 4
    experts: int = 8
    k: int = 2
    batches: tuple = (1, 4, 16, 64, 256, 1024)
    dtype: str = "float32"
    device: str = "auto"
    min_run_time: float = 0.05
    methods: tuple = ("grouped", "loop")

    def __post_init__(self):
        check_int("model width", self.d_model, *SWEEP_LIMITS["d_model"][:2])
        check_int("FFN multiple", self.ffn_mult, 1, 16)
        check_int("experts", self.experts, 1, 256)
        check_int("top-k", self.k, 1, self.experts)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("device", self.device, DEVICES)
        check_float("min run time", self.min_run_time, 0.0, 10.0)
        if not self.batches:
            raise ValueError("batches: expected at least one batch size, got none")
        for b in self.batches:
            check_int("batch", b, 1, SWEEP_LIMITS["max_batch"][1])
        for m in self.methods:
            check_choice("method", m, METHODS)

    @classmethod
    def from_widgets(cls, d_model, max_batch, experts_k, dtype, device,
                     min_run_time: float = 0.05) -> "SweepSpec":
        """The page's widgets -> a spec: batches are the powers of two up to ``max_batch``;
        ``experts_k`` is one of EXPERT_CHOICES ("8/2": 8 experts, top-2)."""
        check_choice("experts/top-k", experts_k, EXPERT_CHOICES)
        experts, k = (int(v) for v in experts_k.split("/"))
        max_batch = check_int("largest batch", max_batch, *SWEEP_LIMITS["max_batch"])
        return cls(d_model=d_model, experts=experts, k=k, dtype=dtype, device=device,
                   batches=powers_of_two(1, max_batch), min_run_time=min_run_time)

    def memory_bytes(self, device_type: str = "cpu") -> int:
        """Estimated peak bytes of host memory, calibrated on CPU runs of whole sweeps
        (d = 256, batch 1024: 314 MB; d = 64, batch 4096: 228 MB; d = 512, batch 16:
        200 MB): the E experts and the three dense layers (1, k and E FFNs wide) with the
        float32 copy each weight is drawn in, and on the CPU, at the largest batch, eight
        float32 (batch, E h) activations (the equal-total dense layer's hidden state, its
        GELU and the timer's repeated calls); on a GPU the activations are the GPU's."""
        d, h, e, k, b = self.d_model, self.ffn_mult * self.d_model, self.experts, self.k, max(self.batches)
        weights = DTYPE_BYTES[self.dtype] * 2 * h * d * (e + 1 + k + e) + 4 * 2 * h * d * e
        return weights + (4 * 8 * b * (e * h + d) if device_type == "cpu" else 0)

    def variants(self) -> list[str]:
        return ["dense_1x", "dense_active", "dense_total"] + [f"moe_{m}" for m in self.methods]

    @property
    def total(self) -> int:
        return len(self.batches) * len(self.variants())


def powers_of_two(lo: int, hi: int) -> tuple:
    out, b = [], max(lo, 1)
    while b <= hi:
        out.append(b)
        b *= 2
    return tuple(out)


WARMUP_S = 0.25  # seconds of back-to-back calls before a row is timed (clocks, caches)
REPEATS = 50  # timed runs per row (median and IQR over these)
TARGET_RUN_S = 0.01  # each timed run repeats the call to last about this long


def _warm(fn, device: str, seconds: float) -> None:
    """Call ``fn`` back to back for about ``seconds`` (at least 3 calls), then sync."""
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    started = time.perf_counter()
    calls = 0
    while calls < 3 or time.perf_counter() - started < seconds:
        fn()
        calls += 1
        if calls % 8 == 0:
            sync()
    sync()


def time_call(fn, min_run_time: float, task):
    """A Measurement (engine.bench.measurement) of ``fn``: warm-up, CUDA sync, median and IQR.

    Each row first runs ``fn`` back to back for ``min(WARMUP_S, 2 * min_run_time)``
    seconds (GPU clocks settle, caches and kernel choices fill), then the lab's timer
    (engine.bench.timer.measure) takes up to ``REPEATS`` runs, each repeating the call for
    about ``min(TARGET_RUN_S, min_run_time / 20)`` (min_run_time 0.2, the GPU script's:
    10 ms, so a 2 ms GEMM is averaged over 5 calls per run; the page's 0.05: 2.5 ms),
    within ``max(20 * min_run_time, 0.5)`` s per row. ``task``: what is timed
    (engine.bench.measurement.Task, whose device is synchronised).
    """
    from engine.bench.timer import measure

    _warm(fn, task.device, min(WARMUP_S, 2 * min_run_time))
    return measure(fn, repeats=REPEATS, target_run_s=min(TARGET_RUN_S, min_run_time / 20),
                   max_total_s=max(20 * min_run_time, 0.5), task=task)


def timing_sweep_rows(spec: SweepSpec) -> Iterator[dict]:
    """Yield one timing row per (batch, variant).

    Variants: ``dense_1x`` one FFN of width h (the cost of one expert);
    ``dense_active`` width k*h (equal active parameters); ``dense_total`` width E*h
    (equal total parameters); ``moe_<method>`` the routed layer (gate, top-k, sort,
    experts, scatter). ``ratio_vs_dense_1x`` = t / t(dense_1x) at the same batch
    (ideal for the MoE: k). Rows the device cannot run say ``unavailable: reason``.
    """
    from engine.runtime.device import job_device, runtime_device_name

    dev = job_device(spec.device)
    dtype = getattr(torch, spec.dtype)
    d, h, E, k = spec.d_model, spec.ffn_mult * spec.d_model, spec.experts, spec.k
    g = torch.Generator().manual_seed(0)
    exp = Experts.random(E, d, h, dtype=dtype, device=dev)
    gate = (torch.randn(d, E, generator=g) / math.sqrt(d)).to(dev, dtype)
    dense = {"dense_1x": 1, "dense_active": k, "dense_total": E}
    weights = {}
    for name, mult in dense.items():
        weights[name] = ((torch.randn(mult * h, d, generator=g) / math.sqrt(d)).to(dev, dtype),
                         (torch.randn(d, mult * h, generator=g) / math.sqrt(mult * h)).to(dev, dtype))
    unavailable = {}
    if "grouped" in spec.methods:
        reason = grouped_mm_available(dev, dtype)
        if reason:
            unavailable["moe_grouped"] = reason
    base = {"device": runtime_device_name(dev), "dtype": spec.dtype, "d_model": d, "d_ff": h,
            "experts": E, "k": k, "torch": torch.__version__, "host": platform.node()}
    for batch in spec.batches:
        x = torch.randn(batch, d, generator=g).to(dev, dtype)
        t_ref = None
        for variant in spec.variants():
            row = dict(base, batch=batch, variant=variant)
            if variant in dense:
                w1, w2 = weights[variant]
                fn = (lambda w1=w1, w2=w2: ffn(x, w1, w2))
                row["params"] = w1.numel() + w2.numel()
                row["active_params"] = row["params"]
            else:
                method = variant.split("_", 1)[1]
                if variant in unavailable:
                    row.update(status=f"unavailable: {unavailable[variant]}")
                    yield row
                    continue

                def fn(method=method):
                    r = route(x, gate, k)
                    return moe_forward(x, exp, r.expert, r.weight, method=method)
                row["params"] = exp.params() + gate.numel()
                row["active_params"] = k * exp.params() // E + gate.numel()
            task = Task(op="moe-layer" if variant.startswith("moe") else "ffn", backend=variant,
                        dims={"batch": batch, "d_model": d, "d_ff": h, "experts": E, "k": k},
                        dtype=spec.dtype, device=dev.type, device_name=base["device"],
                        versions={"torch_version": torch.__version__})
            try:
                with torch.inference_mode():
                    m = time_call(fn, spec.min_run_time, task)
            except (RuntimeError, ValueError) as exc:  # e.g. out of memory: say so, go on
                row.update(status=f"error: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}")
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                yield row
                continue
            median = m.median_s
            row.update({k2: v for k2, v in m.row().items() if k2 not in ("device", "k")})
            row.update(status="ok", timer=f"engine.bench.timer.measure ({m.method}), median",
                       time_ms=median * 1e3, iqr_ms=m.iqr_s * 1e3,
                       tokens_per_s=batch / median if median else float("nan"))
            if variant == "dense_1x":
                t_ref = median
            row["ratio_vs_dense_1x"] = median / t_ref if t_ref else float("nan")
            yield row


def sweep_summary(rows: list[dict]) -> list[dict]:
    """Per MoE variant at the largest batch measured: time / dense_1x (ideal k), and the
    efficiency k / ratio; plus time / dense_active and / dense_total at the smallest and
    the largest batch (the memory paradox in two numbers each). ``noisy_at``: the batches
    among those two where a row these numbers divide is noisy (IQR/median > threshold)."""
    ok = [r for r in rows if r.get("status") == "ok"]
    if not ok:
        return []
    times = {(r["batch"], r["variant"]): r["time_ms"] for r in ok}
    noisy = {(r["batch"], r["variant"]) for r in ok if noisy_flag(r.get("noisy"))}
    small, big = min(r["batch"] for r in ok), max(r["batch"] for r in ok)

    def ratio(batch, variant, base):
        a, b = times.get((batch, variant)), times.get((batch, base))
        return a / b if a and b else float("nan")

    out = []
    for r in ok:
        if r["batch"] == big and str(r["variant"]).startswith("moe_"):
            v = r["variant"]
            out.append({"variant": v, "batch": big, "ratio_vs_dense_1x": r["ratio_vs_dense_1x"],
                        "ideal": r["k"], "efficiency": r["k"] / r["ratio_vs_dense_1x"],
                        "small_batch": small,
                        "small_vs_dense_active": ratio(small, v, "dense_active"),
                        "small_vs_dense_total": ratio(small, v, "dense_total"),
                        "big_vs_dense_active": ratio(big, v, "dense_active"),
                        "big_vs_dense_total": ratio(big, v, "dense_total"),
                        "noisy_at": sorted({b for b in (small, big) for w in (v, "dense_1x", "dense_active",
                                                                            "dense_total") if (b, w) in noisy})})
    return out


def spec_dict(spec) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(spec).items()}


def now_utc() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def load_reference_sweep(root=None) -> tuple[list[dict], str] | None:
    """The newest committed MoE timing run (engine.bench.reference; ``root``: another results
    folder), by the date inside it, as rows and a label naming its device, dtype, d and date;
    None when there is none."""
    from engine.bench.reference import newest

    ref = newest("moe", root)
    if ref is None:
        return None
    rows = ref.frame().to_dict("records")
    return rows, f"{run_label(rows, ref.device_name)}, {ref.date[:10] or 'undated'}"


def run_label(rows: list[dict], device_name: str = "") -> str:
    """"NVIDIA H100 80GB HBM3, bfloat16, d=2048, E/k=8/2": what a sweep ran on, from its rows
    (so this run and a committed one are named the same way on one figure)."""
    def values(key):
        got = sorted({str(r[key]) for r in rows if r.get(key) not in (None, "") and r[key] == r[key]})
        return ", ".join(got) or "?"

    device = device_name or values("device")
    return f"{device}, {values('dtype')}, d={values('d_model')}, E/k={values('experts')}/{values('k')}"
