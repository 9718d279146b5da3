"""Roofline predictions for a user's matrix, from a per-device calibration.

Calibration (``calibrate(device)``, a generator of rows; the last step stores the
result under <cache>/calibration/ keyed by the device name) measures on this device:

* copy bandwidth: ``dst.copy_(src)`` of a buffer far larger than the caches, bytes =
  read + write;
* the multiply-add rate of a dense n x n GEMM for each dtype (2 n^3 FLOP per call);
* the random-gather bandwidth: a CSR SpMV (torch sparse CSR, the kernel behind the
  registry's "torch-csr") on a uniform random matrix, bytes = :func:`csr_bytes`
  (values + column indices + row pointers + one x read per non-zero + y);
* the per-call floor: the time of a one-element add (launch and dispatch cost).

Prediction (``predict(structure, calibration, op, k, dtype)``): for each backend of the
registry that could run on the device, bytes moved and FLOPs of the format on THIS
matrix (exact tile counts for BSR, with and without reverse Cuthill-McKee), then

    t = max(bytes / bandwidth, flops / GEMM rate, per-call floor)

with the copy bandwidth for streamed formats (dense, BSR, 2:4) and the gather
bandwidth for index-chasing ones (COO, CSR), whose bytes include one read of x (or of a
row of B) per non-zero. It is a roofline: a lower bound on time when the calibrated
rates are the device's best; efficiency = predicted / measured (1 = on the roofline).
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

from engine.sparse.formats import DTYPE_BYTES, INDEX_BYTES
from engine.validate import check_choice, check_int

CAL_DTYPES = ("float32", "float64", "float16", "bfloat16")
OFF_ROOFLINE = 0.25  # efficiency below this names a backend "far off its roofline"
ABOVE_ROOFLINE = 1.5  # above this a backend beat its prediction: its operands were served from
# cache, which the calibration (copies larger than the last-level cache) does not model


# -- byte and FLOP models ---------------------------------------------------------------
def csr_bytes(m: int, nnz: float, k: int, el: int, index_bytes: int = INDEX_BYTES) -> float:
    """CSR y = A x: values + column indices + row pointers, one x (row of B) read per
    non-zero, y written once."""
    return nnz * (el + index_bytes) + (m + 1) * index_bytes + nnz * k * el + m * k * el


def coo_bytes(m: int, nnz: float, k: int, el: int, index_bytes: int = INDEX_BYTES) -> float:
    return nnz * (el + 2 * index_bytes) + nnz * k * el + m * k * el


def dense_bytes(m: int, n: int, k: int, el: int) -> float:
    return float(m * n * el + n * k * el + m * k * el)


def bsr_bytes(m: int, n: int, tiles: int, block: int, k: int, el: int,
              index_bytes: int = INDEX_BYTES) -> float:
    """Whole tiles + a column index per tile + block-row pointers, x (B) once, y once."""
    return (tiles * (block * block * el + index_bytes) + (m // block + 1) * index_bytes
            + n * k * el + m * k * el)


def two_four_bytes(m: int, n: int, k: int, el: int) -> float:
    """Half the values plus 2 bits of metadata per kept value, B once, C once."""
    return m * n / 2 * el + m * n / 2 / 4 + n * k * el + m * k * el


# -- calibration -------------------------------------------------------------------------
@dataclass
class Calibration:
    """What one device sustains; ``rows`` are the timing rows it came from."""

    device_name: str
    device: str
    copy_gbs: float
    gather_gbs: float
    floor_s: float
    gemm_gflops: dict = field(default_factory=dict)   # dtype -> GFLOP/s
    measured_at: str = ""
    torch_version: str = ""
    rows: list = field(default_factory=list)

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Calibration":
        fields = {f for f in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in d.items() if k in fields})


def calibration_dir() -> Path:
    from engine.runtime.store import cache_dir

    path = cache_dir() / "calibration"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _slug(device_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", device_name).strip("_")[:120] or "device"


def save_calibration(cal: Calibration, folder: Path | None = None) -> Path:
    path = (folder or calibration_dir()) / f"{_slug(cal.device_name)}.json"
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    tmp.write_text(json.dumps(cal.as_dict(), indent=1))
    os.replace(tmp, path)
    return path


def load_calibration(device_name: str, folder: Path | None = None) -> Calibration | None:
    """The stored calibration of ``device_name``, or None when it was never calibrated."""
    path = (folder or calibration_dir()) / f"{_slug(device_name)}.json"
    if not path.exists():
        return None
    try:
        return Calibration.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


@dataclass(frozen=True)
class CalibrationPlan:
    """Sizes of the calibration steps (smaller for quick runs and tests)."""

    device: str = "cpu"
    dtypes: tuple[str, ...] = CAL_DTYPES
    copy_mb: int = 128
    gemm_n: int = 1024
    gemm_n_half_cpu: int = 256   # CPU half precision is emulated: keep it short
    gather_n: int = 32768
    gather_nnz_per_row: int = 64
    repeats: int = 10

    def __post_init__(self) -> None:
        check_choice("device", self.device, ("cpu", "cuda"))
        for d in self.dtypes:
            check_choice("calibration dtype", d, CAL_DTYPES)
        check_int("copy_mb", self.copy_mb, lo=1, hi=8192)
        check_int("gemm_n", self.gemm_n, lo=16, hi=32768)
        check_int("gather_n", self.gather_n, lo=64, hi=2**24)
        check_int("repeats", self.repeats, lo=1, hi=200)

    @classmethod
    def for_device(cls, device: str, quick: bool = False) -> "CalibrationPlan":
        if device == "cuda":
            return cls("cuda", CAL_DTYPES, copy_mb=2048, gemm_n=8192, gather_n=2**20,
                       gather_nnz_per_row=32, repeats=20)
        if quick:
            return cls("cpu", ("float32",), copy_mb=16, gemm_n=256, gather_n=4096,
                       gather_nnz_per_row=16, repeats=3)
        return cls("cpu")

    @property
    def total(self) -> int:
        return 3 + len(self.dtypes)


def _row(step: str, what: str, value: float, unit: str, timing, detail: str, device_name: str) -> dict:
    """A calibration row: the step's result beside its Measurement's own columns."""
    timed = timing.row()
    return {"step": step, "what": what, "value": float(value), "unit": unit, "detail": detail,
            **{c: timed[c] for c in ("method", "runs", "median_s", "iqr_s", "noisy", "dtype")},
            "device_name": device_name}


def calibrate(plan: CalibrationPlan, device_name: str | None = None,
              folder: Path | None = None) -> Iterator[dict]:
    """Yield one row per step; after the last one the calibration is stored (see module)."""
    import torch

    from engine.bench.timer import Task, measure
    from engine.runtime.device import job_device, package_version, runtime_device_name
    from engine.sparse.formats import get_backend, torch_dtype

    dev = job_device(plan.device)
    name = device_name or runtime_device_name(dev)
    d = plan.device
    rows = []
    vers = {"torch_version": package_version("torch")}

    def task(op: str, backend: str, dtype: str, **dims) -> Task:
        return Task(op=op, backend=backend, dims=dims, dtype=dtype, device=d, device_name=name,
                    versions=vers)

    # 1. copy bandwidth
    n_el = plan.copy_mb * 2**20 // 4
    src = torch.ones(n_el, dtype=torch.float32, device=d)
    dst = torch.empty_like(src)
    t = measure(lambda: dst.copy_(src), repeats=plan.repeats,
                task=task("copy", "torch copy_", "float32", elements=n_el))
    copy_gbs = 2 * n_el * 4 / t.median_s / 1e9
    rows.append(_row("copy", "copy bandwidth", copy_gbs, "GB/s", t,
                     f"dst.copy_(src), {plan.copy_mb} MB float32, read + write", name))
    del src, dst
    yield rows[-1]
    # 2. GEMM per dtype
    gemm = {}
    for dtype in plan.dtypes:
        n = plan.gemm_n if (d == "cuda" or DTYPE_BYTES[dtype] >= 4) else plan.gemm_n_half_cpu
        gen = torch.Generator(device=d).manual_seed(0)
        a = torch.randn(n, n, generator=gen, device=d).to(torch_dtype(dtype))
        b = torch.randn(n, n, generator=gen, device=d).to(torch_dtype(dtype))
        try:
            t = measure(lambda: a @ b, repeats=plan.repeats,
                        task=task("gemm", "torch-dense", dtype, rows=n, cols=n, k=n))
        except RuntimeError as exc:  # e.g. a dtype this CPU build cannot multiply
            rows.append({"step": "gemm", "what": f"GEMM {dtype}", "value": float("nan"),
                         "unit": "GFLOP/s", "detail": f"failed: {str(exc)[:120]}", "device_name": name})
            yield rows[-1]
            continue
        gemm[dtype] = 2 * n**3 / t.median_s / 1e9
        rows.append(_row("gemm", f"GEMM {dtype}", gemm[dtype], "GFLOP/s", t,
                         f"{n} x {n} @ {n} x {n}, 2 n^3 FLOP", name))
        del a, b
        yield rows[-1]
    # 3. random-gather bandwidth: CSR SpMV on a uniform random matrix
    m = plan.gather_n
    per_row = min(plan.gather_nnz_per_row, m)
    gen = torch.Generator(device="cpu").manual_seed(1)
    cols = torch.randint(0, m, (m, per_row), generator=gen).sort(dim=1).values.reshape(-1)
    crow = torch.arange(0, m * per_row + 1, per_row, dtype=torch.int64)
    vals = torch.randn(m * per_row, generator=gen)
    csr = torch.sparse_csr_tensor(crow, cols, vals, (m, m), check_invariants=False).to(d)
    x = torch.randn(m, generator=gen).to(d)
    backend = get_backend("torch-csr")
    t = measure(lambda: backend.matmul(csr, x), repeats=plan.repeats,
                task=task("spmv", "torch-csr", "float32", rows=m, cols=m, k=1))
    nnz = m * per_row
    gather_gbs = csr_bytes(m, nnz, 1, 4) / t.median_s / 1e9
    rows.append(_row("gather", "random-gather bandwidth", gather_gbs, "GB/s", t,
                     f"torch CSR SpMV float32, {m} x {m}, {per_row} uniform random non-zeros per row",
                     name))
    del csr, x
    yield rows[-1]
    # 4. per-call floor
    tiny = torch.zeros(1, device=d)
    t = measure(lambda: tiny.add_(1.0), repeats=plan.repeats,
                task=task("add_", "torch", "float32", elements=1))
    rows.append(_row("floor", "per-call floor", t.median_s * 1e6, "us", t,
                     "one-element in-place add: dispatch (and launch on a GPU)", name))
    cal = Calibration(device_name=name, device=d, copy_gbs=copy_gbs, gather_gbs=gather_gbs,
                      floor_s=t.median_s, gemm_gflops=gemm,
                      measured_at=time.strftime("%Y-%m-%d %H:%M:%S"),
                      torch_version=package_version("torch"), rows=list(rows))
    save_calibration(cal, folder)
    rows[-1]["detail"] += "; calibration stored"
    yield rows[-1]


# -- the matrix's structure that predictions need -----------------------------------------
@dataclass(frozen=True)
class Structure:
    """What the byte/FLOP models need from a matrix (tiles per block size, as stored and
    after RCM)."""

    rows: int
    cols: int
    nnz: int
    tiles: dict          # block -> tiles as stored
    tiles_rcm: dict      # block -> tiles after reverse Cuthill-McKee
    is_two_four: bool = False

    @classmethod
    def of(cls, a, reordered=None, blocks=(16, 32, 64, 128)) -> "Structure":
        from engine.sparse.user_matrix import bsr_tiles
        from engine.sparse.user_matrix import reordered as rcm

        b = reordered if reordered is not None else rcm(a)
        return cls(int(a.shape[0]), int(a.shape[1]), int(a.nnz),
                   {int(s): bsr_tiles(a, s) for s in blocks},
                   {int(s): bsr_tiles(b, s) for s in blocks}, is_two_four(a))


def is_two_four(a) -> bool:
    """True when every group of 4 consecutive entries along a row holds at most 2 non-zeros."""
    m, n = a.shape
    if n % 4 or a.nnz == 0:
        return False
    rows = np.repeat(np.arange(m, dtype=np.int64), np.diff(a.indptr))
    groups = rows * (n // 4) + a.indices.astype(np.int64) // 4
    return bool(np.bincount(groups).max() <= 2)


@dataclass(frozen=True)
class Candidate:
    """One backend configuration to predict (and later measure)."""

    backend: str
    format: str
    block: int = 0
    reordered: bool = False

    @property
    def label(self) -> str:
        text = self.backend + (f" b{self.block}" if self.block else "")
        return text + (" RCM" if self.reordered else "")


def candidates(device: str, op: str, dtype: str, blocks=(16, 32, 64, 128)) -> list[Candidate]:
    """Every registry backend configuration for ``device``: block formats at each block
    size, with and without reordering; CSR also reordered (its gathers get local)."""
    from engine.sparse.formats import BACKENDS

    out = []
    for name, b in BACKENDS.items():
        if device not in b.dtypes or op not in b.ops:
            continue
        if b.needs_block:
            for s in blocks:
                out += [Candidate(name, b.format, s, False), Candidate(name, b.format, s, True)]
        elif b.format == "csr":
            out += [Candidate(name, b.format), Candidate(name, b.format, 0, True)]
        else:
            out.append(Candidate(name, b.format))
    return out


def predict_one(c: Candidate, s: Structure, cal: Calibration, op: str, k: int, dtype: str) -> dict:
    """Bytes, FLOPs and roofline time of one candidate (see the module docstring)."""
    check_choice("op", op, ("spmv", "spmm"))
    k = 1 if op == "spmv" else check_int("k", k, lo=1, hi=65536)
    el = DTYPE_BYTES[dtype]
    m, n, nnz = s.rows, s.cols, s.nnz
    peak = cal.gemm_gflops.get(dtype) or cal.gemm_gflops.get("float32") or float("nan")
    bw, bound_note = cal.copy_gbs, "copy"
    if c.format == "dense":
        moved, flop = dense_bytes(m, n, k, el), 2.0 * m * n * k
    elif c.format == "csr":
        moved, flop, bw, bound_note = csr_bytes(m, nnz, k, el), 2.0 * nnz * k, cal.gather_gbs, "gather"
    elif c.format == "coo":
        moved, flop, bw, bound_note = coo_bytes(m, nnz, k, el), 2.0 * nnz * k, cal.gather_gbs, "gather"
    elif c.format == "bsr":
        tiles = (s.tiles_rcm if c.reordered else s.tiles)[c.block]
        pm, pn = -(-m // c.block) * c.block, -(-n // c.block) * c.block  # padded to whole tiles
        moved, flop = bsr_bytes(pm, pn, tiles, c.block, k, el), 2.0 * tiles * c.block**2 * k
    elif c.format == "2:4":
        moved, flop = two_four_bytes(m, n, k, el), 1.0 * m * n * k
        peak = peak * 2  # sparse tensor cores: twice the dense rate (the vendor's claim)
    else:
        moved, flop = float("nan"), float("nan")
    t_mem = moved / (bw * 1e9) if bw and bw > 0 else float("nan")
    t_flop = flop / (peak * 1e9) if peak and peak > 0 else float("nan")
    terms = {"memory (" + bound_note + ")": t_mem, "compute": t_flop, "per-call floor": cal.floor_s}
    finite = {k_: v for k_, v in terms.items() if v == v}
    bound = max(finite, key=finite.get) if finite else "unknown"
    return {"candidate": c.label, "backend": c.backend, "format": c.format, "block": c.block,
            "reordered": c.reordered, "op": op, "k": k, "dtype": dtype,
            "bytes_moved": moved, "flops": flop, "t_memory_s": t_mem, "t_compute_s": t_flop,
            "predicted_s": max(finite.values()) if finite else float("nan"), "bound": bound,
            "device_name": cal.device_name}


def predict(s: Structure, cal: Calibration, op: str, k: int, dtype: str,
            cands: list[Candidate] | None = None) -> list[dict]:
    """Predictions for every candidate; a 2:4 backend only when the matrix is 2:4."""
    cands = cands if cands is not None else candidates(cal.device, op, dtype)
    out = []
    for c in cands:
        row = predict_one(c, s, cal, op, k, dtype)
        if c.format == "2:4" and not s.is_two_four:
            row.update(note="the matrix is not 2:4 sparse (at most 2 non-zeros in every 4): not run",
                       skipped=True)
        if c.format == "bsr" and (s.rows % c.block or s.cols % c.block):
            row["note"] = f"zero-padded to a multiple of {c.block} (the padding counts as fill-in)"
        out.append(row)
    return out


def efficiency(predicted_s: float, measured_s: float) -> float:
    """predicted / measured: 1 on the roofline, small when far below it."""
    if not (predicted_s and measured_s) or measured_s <= 0 or predicted_s != predicted_s:
        return float("nan")
    return float(predicted_s / measured_s)


def off_roofline(rows: list[dict], threshold: float = OFF_ROOFLINE) -> list[dict]:
    """Rows whose efficiency is below ``threshold``, the farthest first."""
    bad = [r for r in rows if isinstance(r.get("efficiency"), float)
           and math.isfinite(r["efficiency"]) and r["efficiency"] < threshold]
    return sorted(bad, key=lambda r: r["efficiency"])
