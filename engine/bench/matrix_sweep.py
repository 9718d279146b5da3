"""Measure every registry backend on a user's matrix, beside its roofline prediction.

    config = MatrixSweepConfig(ops=("spmv",), k=64, dtype="float32", device="cpu")
    for row in matrix_sweep(config, A, calibration, info):   # A: scipy CSR (user_matrix)
        print(row["candidate"], row["predicted_s"], row["median_s"], row["efficiency"])

Backends come only from the formats registry (``engine.sparse.formats``); block
formats run at every block size of ``config.blocks`` (a shape that is not a multiple
of the block is zero-padded up to one, as the fill-in count assumes), as stored and
after reverse Cuthill-McKee (rows and columns permuted, so y comes out permuted:
the time is what is compared). CSR runs reordered too. Dense is measured first on
each op, so speedup = t_dense / t_backend is one run on one device. Every product is
checked once against scipy in float64 (``max_rel_err``). A configuration the backend
cannot run yields an "unsupported" row with the reason; the sweep goes on.

``recommendation(rows)`` turns the rows into one sentence.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from engine.bench.roofline import (Calibration, Structure, candidates, efficiency, off_roofline,
                                   predict_one)
from engine.bench.schema import MATRIX_COLUMNS  # noqa: F401  (listed in schema.SCHEMAS as "your-matrix")
from engine.sparse.formats import DTYPE_BYTES, DTYPES, OPS, SimpleSpec, get_backend
from engine.validate import check_budget, check_choice, check_choices, check_int

KIND = "your-matrix"
# columns taken from each Measurement.row() (the rest of a row is the sweep's own)
MEASUREMENT_KEYS = ("method", "repeats", "warmup", "number_per_run", "runs", "median_s", "iqr_s",
                    "noisy")
BLOCKS = (16, 32, 64, 128)
K_LIMITS = (1, 4096)        # columns of B for SpMM (the page's widget limits come from here)
REPEATS_LIMITS = (1, 200)
# float32/64 products agree with float64 scipy to this relative error; half types looser.
TOLERANCE = {"float64": 1e-9, "float32": 1e-4, "float16": 2e-2, "bfloat16": 1e-1}


@dataclass(frozen=True)
class MatrixSweepConfig:
    ops: tuple[str, ...] = ("spmv", "spmm")
    k: int = 64
    dtype: str = "float32"
    device: str = "cpu"
    repeats: int = 10
    blocks: tuple[int, ...] = BLOCKS
    backends: tuple[str, ...] | None = None  # None: every registered backend
    seed: int = 0
    max_seconds_per_backend: float = 5.0

    def __post_init__(self) -> None:
        check_choices("ops", self.ops, OPS, "op", expected="SpMV and/or SpMM")
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("device", self.device, ("cpu", "cuda"))
        check_int("k", self.k, *K_LIMITS)
        check_int("repeats", self.repeats, *REPEATS_LIMITS)
        for b in self.blocks:
            check_int("block", b, lo=1, hi=512)

    def candidates(self, op: str):
        cands = candidates(self.device, op, self.dtype, self.blocks)
        if self.backends is not None:
            cands = [c for c in cands if c.backend in self.backends]
        dense = [c for c in cands if c.format == "dense"]
        return dense + [c for c in cands if c.format != "dense"]

    @property
    def total(self) -> int:
        return sum(len(self.candidates(op)) for op in self.ops)


def check_dense_fits(shape: tuple[int, int], dtype: str, k: int) -> None:
    """The registry's backends start from a dense tensor: refuse before allocating one
    (the dense matrix, its reordered copy and a conversion's temporaries)."""
    m, n = shape
    el = DTYPE_BYTES[dtype]
    check_budget(f"measuring needs the dense {m} x {n} {dtype} matrix", 3 * m * n * el
                 + 2 * (m + n) * k * el)


def _dense(a, dtype: str, device: str):
    import torch

    from engine.sparse.formats import torch_dtype

    coo = a.tocoo()
    t = torch.zeros(a.shape, dtype=torch.float64)
    t[torch.from_numpy(coo.row.astype(np.int64)), torch.from_numpy(coo.col.astype(np.int64))] = \
        torch.from_numpy(coo.data)
    return t.to(torch_dtype(dtype)).to(device)


def backend_needs_block(name: str) -> bool:
    return bool(get_backend(name).needs_block)


def _padded_shape(shape: tuple[int, int], block: int) -> tuple[int, int]:
    """The shape rounded up to a multiple of ``block`` (block formats need whole tiles)."""
    return tuple(-(-int(v) // block) * block for v in shape)


def _pad(t, shape: tuple):
    """``t`` with zero rows/columns appended up to ``shape`` (itself when it already fits)."""
    if tuple(t.shape) == tuple(shape):
        return t
    import torch

    out = torch.zeros(shape, dtype=t.dtype, device=t.device)
    out[tuple(slice(0, s) for s in t.shape)] = t
    return out


def _prepared(backend, source, spec) -> tuple:
    """(backend.prepare(source, spec), its synchronised wall time in seconds): the
    conversion is timed once, apart from the product."""
    from engine.bench.timer import _sync

    t0 = time.perf_counter()
    out = backend.prepare(source, spec)
    _sync(spec.device)
    return out, time.perf_counter() - t0


def _rel_err(y, ref: np.ndarray) -> float:
    import torch

    got = y.to_dense() if isinstance(y, torch.Tensor) and y.layout != torch.strided else y
    got = got.detach().cpu().double().numpy() if isinstance(got, torch.Tensor) else np.asarray(got, float)
    scale = max(float(np.abs(ref).max()), 1e-30)
    return float(np.abs(got.reshape(ref.shape) - ref).max() / scale)


def matrix_sweep(config: MatrixSweepConfig, a, cal: Calibration, info: dict | None = None,
                 device_name: str | None = None) -> Iterator[dict]:
    """Yield one row per (op, candidate) of ``config`` on CSR matrix ``a`` (module doc)."""
    import torch

    from engine.bench.timer import Task, measure
    from engine.runtime.device import job_device, package_version, runtime_device_name
    from engine.sparse.formats import torch_dtype
    from engine.sparse.user_matrix import content_hash, permute, rcm_permutation

    dev = job_device(config.device)
    if dev.type != config.device:
        raise ValueError(f"device: expected {config.device}, got {dev.type}")
    name = device_name or runtime_device_name(dev)
    m, n = a.shape
    check_dense_fits((m, n), config.dtype, config.k)
    info = info or {}
    h = info.get("hash") or content_hash(a)
    r_order, c_order = rcm_permutation(a)
    b = permute(a, r_order, c_order)
    structure = Structure.of(a, b, config.blocks)
    fills = {s: (structure.tiles[s] * s * s - a.nnz) / max(a.nnz, 1) for s in config.blocks}
    fills_rcm = {s: (structure.tiles_rcm[s] * s * s - a.nnz) / max(a.nnz, 1) for s in config.blocks}
    base = {"sweep": KIND, "matrix_hash": h, "matrix_name": info.get("name", ""),
            "dtype": config.dtype, "device": config.device, "device_name": name,
            "rows": m, "cols": n, "nnz": int(a.nnz), "repeats": config.repeats,
            "calibrated_at": cal.measured_at, "torch_version": package_version("torch")}
    dense_t = {"plain": _dense(a, config.dtype, config.device)}
    gen = np.random.default_rng(config.seed)
    for op in config.ops:
        k = 1 if op == "spmv" else config.k
        x64 = gen.standard_normal((n,) if op == "spmv" else (n, k))
        xr64 = x64[c_order]
        x = torch.from_numpy(x64).to(torch_dtype(config.dtype)).to(config.device)
        xr = torch.from_numpy(xr64).to(torch_dtype(config.dtype)).to(config.device)
        # reference in the dtype's rounding of x, float64 arithmetic
        ref = a @ x.detach().cpu().double().numpy()
        ref_r = b @ xr.detach().cpu().double().numpy()
        dense_median = None
        for cand in config.candidates(op):
            row = {**base, "candidate": cand.label, "backend": cand.backend, "format": cand.format,
                   "block": cand.block, "reordered": cand.reordered, "op": op, "k": k,
                   "fill_in": (fills_rcm if cand.reordered else fills).get(cand.block)
                   if cand.block else None,
                   "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"), "noisy": False, "message": ""}
            pred = predict_one(cand, structure, cal, op, k, config.dtype)
            row.update(predicted_s=pred["predicted_s"], bound=pred["bound"],
                       bytes_moved=pred["bytes_moved"], flops=pred["flops"])
            pm, pn = _padded_shape((m, n), cand.block if backend_needs_block(cand.backend) else 1)
            spec = SimpleSpec(device=config.device, dtype=config.dtype, op=op, shape=(pm, pn),
                              block=cand.block or 16)
            backend = get_backend(cand.backend)
            reason = backend.supports(spec)
            if reason:
                row.update(status="unsupported", message=reason)
                yield row
                continue
            if cand.reordered and "reordered" not in dense_t:
                dense_t["reordered"] = _dense(b, config.dtype, config.device)
            source = _pad(dense_t["reordered" if cand.reordered else "plain"], (pm, pn))
            rhs_src, want = (xr, ref_r) if cand.reordered else (x, ref)
            rhs_src = _pad(rhs_src, (pn,) + tuple(rhs_src.shape[1:]))
            if (pm, pn) != (m, n):
                row["message"] = (f"zero-padded to {pm} x {pn} (a multiple of block {cand.block}); "
                                  "the padding's fill-in is counted")
            prepared = None
            try:
                prepared, row["prepare_s"] = _prepared(backend, source, spec)
                rhs = backend.prepare_rhs(rhs_src)
                err = _rel_err(backend.matmul(prepared, rhs)[:m], want)
                row["max_rel_err"] = err
                if not err <= TOLERANCE[config.dtype]:
                    row.update(status="error", message=f"result: expected a relative error at most "
                               f"{TOLERANCE[config.dtype]:g} against scipy float64, got {err:.3g}")
                    yield row
                    continue
                task = Task(op=op, backend=cand.backend, dims={"rows": m, "cols": n, "k": k},
                            dtype=config.dtype, block=cand.block or None,
                            pattern=f"user {h[:12]}" + (" RCM" if cand.reordered else ""),
                            device=config.device, device_name=name,
                            versions={"torch_version": base["torch_version"]})
                timing = measure(lambda: backend.matmul(prepared, rhs), repeats=config.repeats,
                                 max_total_s=config.max_seconds_per_backend, task=task)
            except Exception as exc:  # noqa: BLE001 - every failure becomes a row
                text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                low = text.lower()
                status = "unsupported" if ("not implemented" in low or "not supported" in low
                                           or "expected" in low) else "error"
                row.update(status=status, message=f"{type(exc).__name__}: {text[:300]}")
                yield row
                continue
            finally:
                del prepared
            if cand.format == "dense":
                dense_median = timing.median_s
            timed = timing.row()  # the Measurement's own columns: how it was timed and its statistics
            row.update({c: timed[c] for c in MEASUREMENT_KEYS})
            row.update(status="ok", dense_median_s=dense_median,
                       speedup=(dense_median / timing.median_s) if dense_median else float("nan"),
                       efficiency=efficiency(pred["predicted_s"], timing.median_s),
                       gbs=pred["bytes_moved"] / timing.median_s / 1e9)
            yield row
        del x, xr
    del dense_t
    if config.device == "cuda":
        torch.cuda.empty_cache()


# -- the sentence ------------------------------------------------------------------------
def _ok(rows, op):
    return [r for r in rows if r.get("op") == op and r.get("status") in ("ok", "reused")
            and isinstance(r.get("median_s"), (int, float)) and r["median_s"] > 0]


OP_NAMES = {"spmv": "SpMV", "spmm": "SpMM"}


def _num(v) -> str:
    if not isinstance(v, (int, float)) or not math.isfinite(v):
        return "n/a"
    return f"{v:.2g}" if abs(v) < 100 else f"{v:.0f}"


def _x(v: float) -> str:
    return _num(v) + "x"


def _nice(r: dict) -> str:
    fmt = {"csr": "CSR", "coo": "COO", "bsr": "BSR", "dense": "dense", "2:4": "2:4"}.get(r["format"], r["format"])
    lib = "" if r["backend"].startswith("torch-") else f" ({r['backend']})"
    return f"{fmt}{' ' + str(r['block']) if r.get('block') else ''}{lib}"


def recommendation(rows: list[dict], op: str | None = None) -> str:
    """One sentence from the measured rows of one op (the first op with a dense row).

    Names the best format against dense, then how the best BSR block fares as stored
    and after reordering, with its fill-in, and the backend farthest off its roofline.
    """
    ops = [op] if op else ["spmv", "spmm"]
    for o in ops:
        ok = _ok(rows, o)
        dense = [r for r in ok if r["format"] == "dense"]
        if not dense:
            continue
        d = dense[0]
        where = "GPU" if d["device"] == "cuda" else "CPU"
        device = (d.get("device_name") or where).removeprefix("CPU: ")
        others = [r for r in ok if r["format"] != "dense"]
        if not others:
            return f"On this {where} ({device}), only dense {OP_NAMES[o]} ran for this matrix."
        best = min(others, key=lambda r: r["median_s"])
        ratio = d["median_s"] / best["median_s"]
        verb = "is" if ratio >= 1 else "is only"
        tail = "" if not best.get("reordered") else " after reordering"
        text = (f"On this {where} ({device}), {_nice(best)} {OP_NAMES[o]}{tail} {verb} "
                f"{_x(ratio)} dense for this matrix")
        if ratio < 1:
            text += ", so dense wins"
        bsr = [r for r in others if r["format"] == "bsr"]
        if bsr:  # the block size of the fastest BSR row, as stored and after reordering
            top = min(bsr, key=lambda r: r["median_s"])
            pair = {bool(r.get("reordered")): r for r in bsr
                    if r["block"] == top["block"] and r["backend"] == top["backend"]}
            b0, b1 = pair.get(False), pair.get(True)
            if b0 is not None:
                s0 = d["median_s"] / b0["median_s"]
                text += (f"; {_nice(b0)} {'wins' if s0 >= 1 else 'loses'} ({_x(s0)}, fill-in "
                         f"{_num(b0['fill_in'])} stored zeros per non-zero)")
            if b1 is not None:
                s1 = d["median_s"] / b1["median_s"]
                text += ((" and " if b0 is not None else f"; {_nice(b1)} ")
                         + f"after reverse Cuthill-McKee reordering {_x(s1)} "
                           f"(fill-in {_num(b1['fill_in'])})")
        far = off_roofline([r for r in ok if isinstance(r.get("efficiency"), float)])
        if far:
            f0 = far[0]
            text += (f". Farthest off its roofline: {f0['candidate']} at {100 * f0['efficiency']:.2g} % "
                     "of the predicted speed")
        return text + "."
    return "No measured rows yet: run the measurement to get a recommendation."


def efficiency_table(rows: list[dict]) -> list[dict]:
    """Per measured row: predicted, measured, efficiency and the roofline's verdict: "far
    below" (efficiency < OFF_ROOFLINE), "above: served from cache" (> ABOVE_ROOFLINE: the
    prediction's bandwidth is DRAM's, measured with copies larger than the cache) or "near"."""
    from engine.bench.roofline import ABOVE_ROOFLINE, OFF_ROOFLINE

    out = []
    for r in rows:
        if r.get("status") not in ("ok", "reused"):
            continue
        eff = r.get("efficiency")
        known = isinstance(eff, float) and math.isfinite(eff)
        verdict = ("" if not known else f"far below (< {OFF_ROOFLINE:g})" if eff < OFF_ROOFLINE
                   else f"above (> {ABOVE_ROOFLINE:g}): served from cache" if eff > ABOVE_ROOFLINE
                   else "near")
        out.append({"op": r["op"], "candidate": r["candidate"], "bound": r.get("bound"),
                    "predicted (us)": 1e6 * r["predicted_s"], "measured (us)": 1e6 * r["median_s"],
                    "efficiency (predicted / measured)": eff,
                    "speedup vs dense": r.get("speedup"), "roofline": verdict})
    return out


# -- the CLI: python -m engine.bench paradox --matrix FILE --out rows.csv -----------------------
def run_matrix_cli(args) -> int:
    """Load and store ``args.matrix``, calibrate if needed, measure, write the CSV, print advice."""
    import sys

    from engine.bench.__main__ import create_cli_run, resolve_device, write_rows_as_they_come
    from engine.bench.roofline import CalibrationPlan, calibrate, load_calibration
    from engine.bench.schema import column_order
    from engine.runtime.device import job_device, runtime_device_name
    from engine.sparse.user_matrix import (fill_in_table, load_matrix_file, load_stored, reordered,
                                           store_matrix, to_mtx_bytes)

    loaded = load_matrix_file(args.matrix, tensor=args.tensor)
    info = store_matrix(loaded)
    f = info["facts"]
    print(f"{info['name']}: {f['rows']} x {f['cols']}, {f['nnz']} non-zeros (density {f['density']:.3g}), "
          f"sha256 {info['hash'][:16]}")
    a = load_stored(info["hash"])
    b = reordered(a)
    for r in fill_in_table(a, reordered_matrix=b):
        print(f"  BSR {r['block']:>3}: fill-in {r['fill-in (zeros per nnz)']:.3g} stored zeros per "
              f"non-zero, after RCM {r['fill-in after RCM']:.3g}")
    if args.reordered_out is not None:
        args.reordered_out.write_bytes(to_mtx_bytes(b, comment=f" {info['name']} after RCM"))
        print(f"  reordered matrix -> {args.reordered_out}")
    device = resolve_device(args.device)
    name = runtime_device_name(job_device(device))
    cal = None if args.recalibrate else load_calibration(name)
    if cal is None:
        plan = CalibrationPlan.for_device(device)
        for row in calibrate(plan, device_name=name):
            if not args.quiet:
                sys.stderr.write(f"calibration: {row['what']} {row['value']:.4g} {row['unit']}\n")
        cal = load_calibration(name)
    config = MatrixSweepConfig(ops=tuple(args.ops), k=args.k, dtype=args.dtypes[0], device=device,
                               repeats=args.repeats, seed=args.seed)
    store = run_id = None
    if args.store:
        store, run_id = create_cli_run(KIND, {"matrix_hash": info["hash"], "matrix_name": info["name"],
                                              "k": config.k, "dtype": config.dtype}, name)
    order = column_order(MATRIX_COLUMNS)
    started = time.time()
    rows, status = write_rows_as_they_come(
        matrix_sweep(config, a, cal, info, device_name=name), args.out, order, store, run_id,
        config.total, lambda r: f"{r['candidate']} {r['op']} {r['status']}", quiet=args.quiet)
    for op in config.ops:
        print(recommendation(rows, op))
    bad = sum(r["status"] != "ok" for r in rows)
    print(f"{len(rows)} rows ({bad} not ok) in {time.time() - started:.1f} s -> {args.out}")
    return 0 if status == "done" else 130
