"""Sweeps: generators that yield one finished row (a dict) at a time.

    config = ParadoxConfig(sizes=(512,), sparsities=(0.5, 0.9, 0.99), ops=("spmv",))
    for row in paradox_sweep(config):   # runs on config.device
        print(row["backend"], row["speedup"])

The same generator feeds the CLI (``python -m engine.bench paradox``), the
/paradox page (through components.jobs.register_job) and the tests. Each matrix
is generated once per (size, dtype, op, sparsity) and every backend is measured on
it, dense first, so speedup = t_dense / t_backend is always "same device, same
run". A backend that cannot run a spec yields an "unsupported" row, a spec that
would not fit in memory a "refused" row (nothing allocated), and an out-of-memory
or other failure an "error" row; the sweep then goes on.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import numpy as np

from engine.bench.schema import PARADOX_COLUMNS
from engine.bench.spec import BenchmarkSpec
from engine.bench.measurement import NOISY_LABEL, Measurement, Task, ratio_noisy
from engine.bench.timer import _sync, measure
from engine.sparse.formats import (DTYPE_BYTES, DTYPES, OPS, PATTERNS, backend_names, estimate_bytes, generate_matrix,
                            get_backend, torch_dtype, unsupported_reason)
from engine.validate import check_choice, check_float, check_int

DENSE = "torch-dense"
# the columns that name the dense row a sweep row's speedup is taken against (same matrix)
DENSE_KEYS = ("op", "rows", "cols", "k", "dtype", "sparsity", "pattern", "block", "device_name")
DEFAULT_SPARSITIES = (0.5, 0.7, 0.9, 0.95, 0.99, 0.995, 0.999)
DEFAULT_BACKENDS = ("torch-dense", "torch-csr", "torch-coo", "torch-bsr")
# The one set of limits of a paradox sweep (and the structured-sparsity sweep built on it):
# ParadoxConfig checks them, /paradox sets its widgets' min/max from them.
LIMITS = {"size": (16, 16384), "k": (1, 4096), "block": (1, 512), "repeats": (1, 200),
          "sparsity": (0.0, 0.9999)}

# Peak memory bandwidth (GB/s, vendor figures) by a substring of the device name.
PEAK_GBS = {
    "H100 80GB HBM3": 3350.0, "H100 NVL": 3900.0, "H100 PCIe": 2000.0, "H100": 3350.0,
    "H200": 4800.0, "GH200": 4000.0, "A100-SXM4-80GB": 2039.0, "A100 80GB PCIe": 1935.0,
    "A100": 1555.0, "L40S": 864.0, "L4": 300.0, "A10G": 600.0, "T4": 320.0, "V100": 900.0,
    "RTX 4090": 1008.0, "RTX 3090": 936.0,
}


def peak_bandwidth_gbs(device_name: str) -> float:
    """Vendor peak memory bandwidth for a GPU name, NaN when unknown (e.g. CPUs)."""
    for key in sorted(PEAK_GBS, key=len, reverse=True):
        if key in device_name:
            return PEAK_GBS[key]
    return float("nan")


@dataclass(frozen=True)
class ParadoxConfig:
    """What a paradox sweep measures; validated on construction."""

    sizes: tuple[int, ...] = (512,)
    sparsities: tuple[float, ...] = (0.5, 0.9, 0.95, 0.99)
    backends: tuple[str, ...] = DEFAULT_BACKENDS
    dtypes: tuple[str, ...] = ("float32",)
    ops: tuple[str, ...] = ("spmv", "spmm")
    k: int = 64
    pattern: str = "uniform"
    block: int = 16
    repeats: int = 20
    device: str = "cpu"
    seed: int = 0
    memory_budget_bytes: int | None = None  # None: the device's free memory only
    max_seconds_per_spec: float = 10.0

    def __post_init__(self) -> None:
        if not self.sizes:
            raise ValueError("sizes: expected at least one size, got none")
        if not self.sparsities:
            raise ValueError("sparsities: expected at least one sparsity, got none")
        for what in ("backends", "dtypes", "ops"):
            if not getattr(self, what):
                raise ValueError(f"{what}: expected at least one, got none")
        for s in self.sizes:
            check_int("size", s, *LIMITS["size"])
        for s in self.sparsities:
            check_float("sparsity", s, *LIMITS["sparsity"])
        for op in self.ops:
            check_choice("op", op, OPS)
        for dtype in self.dtypes:
            check_choice("dtype", dtype, DTYPES)
        for name in self.backends:
            check_choice("backend", name, backend_names())
        check_choice("pattern", self.pattern, PATTERNS)
        check_choice("device", self.device, ("cpu", "cuda"))
        check_int("k", self.k, *LIMITS["k"])
        check_int("block", self.block, *LIMITS["block"])
        check_int("repeats", self.repeats, *LIMITS["repeats"])

    @classmethod
    def from_form(cls, size, k, dtype, pattern, block, sparsities, backends, ops, repeats,
                  device: str = "cpu", memory_budget_bytes: int | None = None) -> "ParadoxConfig":
        """A page's widget values -> a validated config (ValueError "expected ... got ...").

        The one place /paradox's widgets are read: the sparsities text is parsed here once
        (``parse_float_list``), every other value is checked by the constructor.
        """
        from engine.bench.reference import parse_float_list

        for what, value, needs in (("backends", backends, "at least one backend ticked"),
                                   ("ops", ops, "SpMV and/or SpMM ticked")):
            if not value:
                raise ValueError(f"{what}: expected {needs}, got none")
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{what}: expected a list of names, got {value!r:.60}")
        if not isinstance(sparsities, str):
            raise ValueError(f"sparsities: expected text like 0.5, 0.9, got {sparsities!r:.60}")
        return cls(sizes=(size,), sparsities=parse_float_list("sparsities", sparsities, *LIMITS["sparsity"]),
                   backends=tuple(backends), dtypes=(dtype,), ops=tuple(ops), k=k, pattern=pattern,
                   block=block, repeats=repeats, device=device, memory_budget_bytes=memory_budget_bytes)

    def to_dict(self) -> dict:
        """What was asked for, as JSON (a page's dcc.Store): every field but the server's own
        settings (memory budget, time per spec), which ``from_dict`` takes from the server."""
        return {name: list(v) if isinstance(v, tuple) else v for name, v in vars(self).items()
                if name in _ASKED}

    @classmethod
    def from_dict(cls, data, **server) -> "ParadoxConfig":
        """The config ``to_dict`` wrote (``server``: memory_budget_bytes, max_seconds_per_spec).

        The data may have travelled through a browser, so the constructor checks it again
        (the same one check); anything that is not what ``to_dict`` writes is refused.
        """
        if not isinstance(data, dict) or set(data) != _ASKED:
            got = sorted(data) if isinstance(data, dict) else type(data).__name__
            raise ValueError(f"sweep: expected the fields {', '.join(sorted(_ASKED))}, got {got}"[:300])
        for name in _LISTS:
            if not isinstance(data[name], list):
                raise ValueError(f"{name}: expected a list, got {data[name]!r:.60}")
        fields = {k: tuple(v) if k in _LISTS else v for k, v in data.items()}
        return cls(**fields, **server)

    def storage_model(self):
        """The byte-count model (``storage_table``) at this config's first size and dtype."""
        return storage_table(self.sizes[0], self.dtypes[0], self.block, self.sparsities)

    def specs(self) -> list[BenchmarkSpec]:
        """Every spec, in the order the sweep measures them (dense first per matrix)."""
        names = [DENSE] + [b for b in self.backends if b != DENSE]
        out = []
        for size in self.sizes:
            for dtype in self.dtypes:
                for op in self.ops:
                    for s in sorted(self.sparsities):
                        for b in names:
                            out.append(BenchmarkSpec.make(
                                op, b, size, s, k=self.k, pattern=self.pattern, block=self.block,
                                dtype=dtype, device=self.device, repeats=self.repeats,
                                seed=self.seed))
        return out

    @property
    def total(self) -> int:
        return len(self.specs())


_LISTS = ("sizes", "sparsities", "backends", "dtypes", "ops")
_ASKED = {"sizes", "sparsities", "backends", "dtypes", "ops", "k", "pattern", "block", "repeats", "device",
          "seed"}


def versions() -> dict:
    from engine.runtime.device import package_version

    return {"torch_version": package_version("torch"), "scipy_version": package_version("scipy")}


def task_of(spec: BenchmarkSpec, device_name: str, vers: dict) -> Task:
    """What one spec times, as the Measurement's Task (dims rows, cols, k)."""
    m, n = spec.shape
    return Task(op=spec.op, backend=spec.backend, dims={"rows": m, "cols": n, "k": spec.k},
                dtype=spec.dtype, block=spec.block, pattern=spec.pattern, sparsity=spec.sparsity,
                device=spec.device, device_name=device_name, versions=vers)


def base_row(spec: BenchmarkSpec, device_name: str, vers: dict) -> dict:
    """A row for ``spec`` before (or without) a measurement: what, not yet how long."""
    row = {c: None for c in PARADOX_COLUMNS}
    row.update({"sweep": "paradox", "spec_key": spec.key, **spec.as_dict(),
                "device_name": device_name, **vers,
                "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "noisy": None, "message": ""})
    return row  # noisy stays blank (no timing, no noise verdict) unless a measurement fills it


def free_bytes(device: str) -> int:
    """Memory a new allocation may use now (GPU: free device memory; CPU: available RAM)."""
    if device == "cuda":
        import torch

        free, _total = torch.cuda.mem_get_info()
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def memory_refusal(spec: BenchmarkSpec, available: int, budget: int | None = None) -> str | None:
    """None when ``spec`` fits; else "memory: expected ... got ..." (checked before allocating)."""
    m, n = spec.shape
    need = estimate_bytes(m, n, spec.k, 1.0 - spec.sparsity, spec.dtype, spec.format, spec.block)
    limit = int(available * 0.8)
    where = f"80% of the free memory on {spec.device}"
    if budget is not None and budget < limit:
        limit, where = int(budget), "the memory budget"
    if need > limit:
        return (f"memory: expected at most {limit / 2**20:.0f} MB ({where}), got an estimated "
                f"{need / 2**20:.0f} MB for {spec.label}")
    return None


def _is_oom(exc: BaseException) -> bool:
    name = type(exc).__name__
    return "OutOfMemory" in name or "out of memory" in str(exc).lower()


def measure_spec(spec: BenchmarkSpec, a, x, dense_median: float | None, device_name: str,
                 vers: dict, nnz: float) -> dict:
    """Measure one backend on prepared inputs a (m, n) dense and x (n,) or (n, k)."""
    import torch

    row = base_row(spec, device_name, vers)
    row["nnz"] = float(nnz)
    row["density"] = float(nnz) / (spec.shape[0] * spec.shape[1])
    reason = unsupported_reason(spec.backend, spec)
    if reason:
        row.update(status="unsupported", message=reason)
        return row
    backend = get_backend(spec.backend)
    prepared = None
    try:
        # Conversion (dense -> format) timed on its own, once, synchronised.
        started = time.perf_counter()
        prepared = backend.prepare(a, spec)
        _sync(spec.device)
        row["prepare_s"] = time.perf_counter() - started
        rhs = backend.prepare_rhs(x)
        timing = measure(lambda: backend.matmul(prepared, rhs), repeats=spec.repeats,
                         task=task_of(spec, device_name, vers), max_total_s=10.0)
        stored = backend.nbytes(prepared)
    except Exception as exc:  # noqa: BLE001 - every failure becomes a row, the sweep goes on
        text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if _is_oom(exc):
            row.update(status="error", message=f"out of memory: {text[:300]}")
        elif "not implemented" in text.lower() or "not supported" in text.lower():
            row.update(status="unsupported", message=f"unsupported: {text[:300]}")
        else:
            row.update(status="error", message=f"{type(exc).__name__}: {text[:300]}")
        return row
    finally:
        del prepared
        if spec.device == "cuda" and torch.cuda.is_available():
            torch.cuda.empty_cache()
    return measured_row(row, timing, dense_median, stored)


def measured_row(row: dict, timing: Measurement, dense_median: float | None, stored_bytes: float) -> dict:
    """``row`` (from base_row, with nnz and the measured density) filled from a Measurement."""
    density = row["density"]
    row.update(timing.row(), status="ok")
    row["density"] = density  # the matrix's own nnz / (m n), not the nominal 1 - sparsity
    base = timing.median_s if row["backend"] == DENSE else dense_median
    return derive(row, timing.median_s, base, stored_bytes)


def derive(row: dict, median_s: float, dense_median: float | None, stored_bytes: float) -> dict:
    """Fill speedup, theoretical, efficiency, GFLOP/s, GB/s and % of peak in ``row``."""
    density = row["density"] or 0.0
    row["dense_median_s"] = dense_median
    row["theoretical"] = (1.0 / density) if density > 0 else float("inf")
    row["speedup"] = (dense_median / median_s) if dense_median and median_s > 0 else float("nan")
    row["efficiency"] = (row["speedup"] / row["theoretical"]
                         if math.isfinite(row["theoretical"]) and row["theoretical"] > 0 else float("nan"))
    spec_k = row["k"]
    row["gflops"] = 2.0 * row["nnz"] * spec_k / median_s / 1e9 if median_s > 0 else float("nan")
    el = DTYPE_BYTES[row["dtype"]]
    moved = stored_bytes + row["cols"] * spec_k * el + row["rows"] * spec_k * el
    row["bytes_moved"] = float(moved)
    row["gbs"] = moved / median_s / 1e9 if median_s > 0 else float("nan")
    row["peak_gbs"] = peak_bandwidth_gbs(row["device_name"] or "")
    row["pct_peak_bw"] = (100.0 * row["gbs"] / row["peak_gbs"]
                          if math.isfinite(row["peak_gbs"]) else float("nan"))
    return row


def paradox_sweep(config: ParadoxConfig, device_name: str | None = None,
                  reuse: Callable[[BenchmarkSpec], dict | None] | None = None,
                  free_memory: Callable[[str], int] = free_bytes) -> Iterator[dict]:
    """Yield one row per spec of ``config`` (see the module docstring).

    reuse(spec) may return a stored row for a spec. When every spec of a matrix (size,
    dtype, op, sparsity) is stored, the stored rows are yielded with status "reused"
    and nothing is measured; a partly stored matrix is measured again in full, so its
    speedups still compare timings from one run.
    """
    import torch

    from engine.runtime.device import job_device, runtime_device_name

    dev = job_device(config.device)
    if dev.type != config.device:
        raise ValueError(f"device: expected {config.device}, got {dev.type}")
    name = device_name or runtime_device_name(dev)
    vers = versions()
    specs = config.specs()
    groups: dict[tuple, list[BenchmarkSpec]] = {}
    for spec in specs:
        groups.setdefault((spec.shape, spec.dtype, spec.op, spec.sparsity), []).append(spec)
    for (_shape, _dtype, _op, _s), group in groups.items():
        first = group[0]
        stored = {s: reuse(s) for s in group} if reuse else {}
        if stored and all(stored.values()):
            for s in group:
                yield {**stored[s], "status": "reused"} if stored[s].get("status") == "ok" else stored[s]
            continue
        refusal = memory_refusal(first.with_backend("torch-coo"), free_memory(config.device),
                                 config.memory_budget_bytes)
        if refusal:
            for s in group:
                row = base_row(s, name, vers)
                row.update(status="refused", message=refusal)
                yield row
            continue
        a = x = None
        try:
            m, n = first.shape
            a = generate_matrix(first.pattern, m, n, first.sparsity, block=first.block,
                                seed=first.seed, device=config.device, dtype=first.dtype)
            nnz = float((a != 0).sum().item())
            gen = torch.Generator(device=config.device).manual_seed(first.seed + 2)
            shape_x = (n,) if first.op == "spmv" else (n, first.k)
            x = torch.randn(*shape_x, generator=gen, device=config.device,
                            dtype=torch.float32).to(torch_dtype(first.dtype))
        except Exception as exc:  # noqa: BLE001
            text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            msg = ("out of memory: " if _is_oom(exc) else "") + text[:300]
            for s in group:
                row = base_row(s, name, vers)
                row.update(status="error", message=msg)
                yield row
            a = x = None
            if config.device == "cuda":
                torch.cuda.empty_cache()
            continue
        dense_median = None
        for spec in group:  # partly stored groups are measured again: speedups need one run
            row = measure_spec(spec, a, x, dense_median, name, vers, nnz)
            if spec.backend == DENSE and row["status"] == "ok":
                dense_median = row["median_s"]
            yield row
        del a, x
        if config.device == "cuda":
            torch.cuda.empty_cache()


def break_even(frame, dense: str = DENSE):
    """Sparsity where each backend's speedup crosses 1 (interpolated), per group.

    frame: rows of a sweep (pandas DataFrame). Returns a DataFrame with columns
    backend, op, dtype, device_name, rows, k, break_even (NaN when the speedup never
    reaches 1 in the range measured), noisy, note.
    Interpolation is linear in log10(1 - sparsity) against log10(speedup).
    noisy: the value rests on a noisy speedup (the backend's time or the dense time it is
    divided by, ``ratio_noisy``): either measured sparsity around the crossing, the lowest
    one when it is already faster, any of them when it is never faster. Its note then ends
    "from noisy timings (IQR/median > 0.1)": a reading of noisy timings, not a finding.
    """
    import pandas as pd

    cols = ["backend", "op", "dtype", "device_name", "rows", "k", "break_even", "noisy", "note"]
    if frame is None or len(frame) == 0 or "speedup" not in frame:
        return pd.DataFrame(columns=cols)
    measured = frame[frame["status"].isin(["ok", "reused"])].copy()
    keys = [c for c in DENSE_KEYS if c in measured]
    measured["speedup_noisy"] = ratio_noisy(measured.to_dict("records"),
                                            measured[measured["backend"] == dense].to_dict("records"), keys)
    ok = measured[measured["backend"] != dense].copy()
    ok["speedup"] = pd.to_numeric(ok["speedup"], errors="coerce")
    ok["sparsity"] = pd.to_numeric(ok["sparsity"], errors="coerce")
    ok = ok[np.isfinite(ok["speedup"]) & (ok["speedup"] > 0)]
    out = []
    for group, g in ok.groupby(["backend", "op", "dtype", "device_name", "rows", "k"], sort=True):
        g = g.groupby("sparsity", as_index=False).agg(speedup=("speedup", "median"),
                                                      noisy=("speedup_noisy", "any")).sort_values("sparsity")
        s = g["sparsity"].to_numpy(float)
        y = np.log10(g["speedup"].to_numpy(float))
        flags = g["noisy"].to_numpy(bool)
        value, note, noisy = float("nan"), "never faster than dense in the range measured", bool(flags.any())
        if len(s) and y[0] >= 0:
            value, note = float(s[0]), f"already faster than dense at the lowest sparsity ({s[0]:g})"
            noisy = bool(flags[0])
        else:
            for i in range(1, len(s)):
                if y[i - 1] < 0 <= y[i]:
                    u0, u1 = math.log10(max(1 - s[i - 1], 1e-12)), math.log10(max(1 - s[i], 1e-12))
                    t = -y[i - 1] / (y[i] - y[i - 1])
                    value = 1 - 10 ** (u0 + t * (u1 - u0))
                    note, noisy = f"between {s[i - 1]:g} and {s[i]:g}", bool(flags[i - 1] or flags[i])
                    break
        if noisy:
            note += f", from noisy timings ({NOISY_LABEL.removeprefix('noisy (').rstrip(')')})"
        out.append(dict(zip(cols[:6], group), break_even=value, noisy=noisy, note=note))
    return pd.DataFrame(out, columns=cols)


def storage_table(size: int, dtype: str, block: int, sparsities):
    """Bytes of dense / CSR / COO / BSR (n x n, uniform random non-zeros) at each sparsity,
    in MB, and the byte ratio dense / CSR: a byte-count model, not a measurement."""
    import pandas as pd

    from engine.sparse.formats import storage_bytes

    rows = []
    for s in sparsities:
        d = 1.0 - s
        mb = {f: storage_bytes(f, size, size, d, dtype, block) / 2**20 for f in ("dense", "csr", "coo", "bsr")}
        rows.append({"sparsity": f"{100 * s:.4g}%", "theoretical (1/density)": 1.0 / d if d else float("inf"),
                     "dense MB": mb["dense"], "CSR MB": mb["csr"], "COO MB": mb["coo"],
                     f"BSR {block}x{block} MB": mb["bsr"], "bytes dense / CSR": mb["dense"] / mb["csr"]})
    return pd.DataFrame(rows)
