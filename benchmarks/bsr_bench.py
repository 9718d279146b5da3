"""lab-bsr vs dense torch.matmul vs torch BSR, in one run on one GPU.

    python3 benchmarks/bsr_bench.py --out DIR            # the full sweep (CUDA)
    python3 benchmarks/bsr_bench.py --out DIR --quick    # tiny sizes (CPU: Triton interpreter)

Y = A @ B, A n x n block-sparse (random blocks, exact count), B n x k dense, fp16.
Writes under DIR:
  bsr_check.csv  every candidate kernel configuration against bsr_matmul_reference
                 on small cases (fp16 and bf16, empty block rows, fully dense, odd k)
  bsr_bench.csv  one row per (block, sparsity, backend, figure), each from a Measurement
                 (engine.bench.script_rows, schema "gpu-script"): "kernel-only" = GPU
                 time from CUDA-graph replays with L2 evicted before each call, "per
                 call" = CUDA events around each call (triton do_bench; lab-bsr's launch
                 is then replayed from the CUDA graph bsr_matmul caches for the same B and
                 Y, and its rows' timing says so: LAB_BSR_PER_CALL); median / IQR /
                 noisy, speedups vs dense and vs torch BSR within one figure, theory
                 1/density, relative error. engine.bench.bsr_results reads it (and the
                 older one-row-per-point CSVs).
  bsr_tune.csv   every (shape key, configuration) the tuner timed, each with a Measurement
                 row (CUDA-graph replay, 5 runs: median_s, iqr_s, noisy) or its error
  bsr_union.csv  per point: the tuner's best one-row-per-program ("row") and union
                 ("union", several block rows per program) configuration, and the
                 union schedule's MMA work and B tiles per stored block (r2, r4)
and prints a summary with the lab's goals last. Without CUDA (--quick) the timings
are wall-clock smoke timings, labelled so.
Only the engine, torch and triton are needed (no dash).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.bench.measurement import CUDA_GRAPH, EAGER  # noqa: E402
from engine.bench.schema import SCRIPT_COLUMNS  # noqa: E402
from engine.bench.script_rows import (EVENTS_TIMING, GRAPH_TIMING, SMOKE_TIMING,  # noqa: E402
                                      ScriptRun, write_rows)


def parse() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True, help="folder for the CSV files")
    p.add_argument("--quick", action="store_true", help="tiny sizes (CPU interpreter)")
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--k", type=int, default=512)
    p.add_argument("--blocks", default="16,32,64")
    p.add_argument("--sparsities", default="0.5,0.6,0.7,0.75,0.8,0.9,0.95")
    p.add_argument("--low", default="0.0,0.1,0.2,0.3,0.4",
                   help="extra sparsities for the largest block (break-even)")
    p.add_argument("--skip-check", action="store_true")
    p.add_argument("--rep-ms", type=float, default=100.0)
    return p.parse_args()


def main() -> int:
    args = parse()
    if args.quick:
        os.environ.setdefault("TRITON_INTERPRET", "1")
    import torch

    from engine.sparse.kernels import bsr_matmul as lab

    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    cuda = torch.cuda.is_available() and not args.quick
    dev = torch.device("cuda" if cuda else "cpu")
    if not cuda and not lab.interpreting():
        print("no CUDA device: run with --quick for the CPU interpreter")
        return 2
    n, k = (256, 64) if args.quick else (args.n, args.k)
    blocks = [int(b) for b in args.blocks.split(",") if b]
    if args.quick:
        blocks = [b for b in blocks if b <= 64]
    sparsities = [float(s) for s in args.sparsities.split(",") if s]
    low = [float(s) for s in args.low.split(",") if s]
    dtype = torch.float16

    import triton

    run = ScriptRun.here("bsr_bench", {"triton_version": triton.__version__}, cuda=cuda)
    meta = {"script": run.script, "device_name": run.device_name, **dict(run.versions),
            "measured_at": run.measured_at}
    print(meta, flush=True)
    t_start = time.time()

    # ------------------------------------------------------------------ correctness
    good: dict[int, list] = {}
    check_rows = []
    if not args.skip_check:
        torch.manual_seed(0)
        for blk in (16, 32, 64, 128):
            rb = 3 if args.quick else 8
            cases = [("fp16 random", torch.float16, 0.5, (1,), 2 * blk if args.quick else 512),
                     ("fp16 dense", torch.float16, 1.0, (), 128),
                     ("bf16 k=72, empty rows", torch.bfloat16, 0.4, (0, 2), 72),
                     ("fp16 odd k=37", torch.float16, 0.3, (), 37)]
            good[blk] = []
            configs = lab.candidate_configs(blk, 512)
            if args.quick:
                configs = (configs[:1] + [c for c in configs if c.kind == "tma"][:1]
                           + [c for c in configs if c.union][:2])
            extra = {lab.DEFAULT_CONFIG[blk]} | {c for c in configs if c.kind != "ptr"}
            for cfg in configs:
                ok_all = True
                for ci, (name, dty, dens, empty, kk) in enumerate(cases):
                    if ci > 0 and cfg not in extra:
                        continue  # every config on the fp16 case; other cases on a few
                    a = lab.BsrMatrix.random(rb * blk, 5 * blk, blk, dens, dtype=dty, device=dev,
                                             seed=blk + ci, empty_rows=empty)
                    b = torch.randn(5 * blk, kk, device=dev).to(dty)
                    ref = lab.bsr_matmul_reference(a, b).float()
                    exact = a.to_dense().double() @ b.double()
                    y = torch.full((a.shape[0], kk), float("nan"), device=dev, dtype=dty)
                    if not lab._config_ok(a, b, cfg):
                        continue
                    try:
                        lab.bsr_matmul(a, b, config=cfg, out=y)
                        den = max(float(exact.norm()), 1e-12)
                        err = float((y.double() - exact).norm()) / den
                        ref_err = float((ref.double() - exact).norm()) / den
                        finite = bool(torch.isfinite(y).all())
                        ok = finite and err < (2e-2 if dty == torch.bfloat16 else 3e-3)
                        msg = ""
                    except Exception as exc:
                        err = ref_err = float("nan")
                        ok, finite, msg = False, False, f"{type(exc).__name__}: {str(exc)[:300]}"
                    ok_all &= ok
                    check_rows.append({**meta, "block": blk, "case": name, "config": cfg.label(),
                                       "rel_err": err, "ref_rel_err": ref_err, "finite": finite,
                                       "ok": ok, "error": msg})
                    if not ok:
                        print("CHECK FAIL", blk, name, cfg.label(), err, msg, flush=True)
                if ok_all:
                    good[blk].append(cfg)
            print(f"check b{blk}: {len(good[blk])} configs pass "
                  f"({time.time() - t_start:.0f} s)", flush=True)
        write_rows(out_dir / "bsr_check.csv", check_rows)

    # ------------------------------------------------------------------ timing

    def kernel_time(fn, task):
        """GPU time with L2 evicted before each call, launch cost excluded (CUDA graphs);
        per-call events instead when fn cannot be captured."""
        try:
            return run.graph(fn, task, n_inner=8, reps=9)
        except Exception as exc:
            print("  graph capture failed, per-call events instead:", type(exc).__name__,
                  str(exc)[:120], flush=True)
            torch.cuda.synchronize()
            return run.events(fn, task, rep_ms=args.rep_ms)

    rows = []
    union_rows = []
    summary = {"kernel-only": [], "per call": []}
    gen = torch.Generator(device=dev).manual_seed(1)
    B = torch.randn(n, k, device=dev, generator=gen).to(dtype)
    for blk in blocks:
        levels = sorted(set(sparsities + (low if blk == max(blocks) else [])))
        for s in levels:
            a = lab.BsrMatrix.random(n, n, blk, 1.0 - s, dtype=dtype, device=dev, seed=int(s * 1000) + blk)
            A_dense = a.to_dense()
            exact = A_dense.float() @ B.float()
            point = Point(n=n, k=k, block=blk, sparsity=s, density=a.density, nnz_blocks=a.nnz_blocks)
            fns, status, config, errs = {}, {}, {}, {}
            fns["dense"] = lambda: torch.matmul(A_dense, B)
            status["dense"], config["dense"] = "ok", "torch.matmul"
            errs["dense"] = float((torch.matmul(A_dense, B).float() - exact).norm() / exact.norm())
            try:
                A_t = A_dense.to_sparse_bsr((blk, blk))
                errs["torch-bsr"] = float(((A_t @ B).float() - exact).norm() / exact.norm())
                fns["torch-bsr"] = lambda: A_t @ B
                status["torch-bsr"] = "ok"
            except Exception as exc:
                status["torch-bsr"] = f"unavailable: {type(exc).__name__}: {str(exc)[:160]}"
            config["torch-bsr"] = "A.to_sparse_bsr() @ B"
            try:
                cfg = lab.tuned_config(a, B)
                if cfg is None and cuda:
                    cfg = lab.tune(a, B, configs=good.get(blk) or None)
                cfg = cfg or lab.DEFAULT_CONFIG[blk]
                y = torch.full((n, k), float("nan"), device=dev, dtype=dtype)
                lab.bsr_matmul(a, B, config=cfg, out=y)
                errs["lab-bsr"] = float((y.float() - exact).norm() / exact.norm())
                fns["lab-bsr"] = lambda: lab.bsr_matmul(a, B, config=cfg, out=y)
                status["lab-bsr"] = "ok" if errs["lab-bsr"] < 3e-3 else f"wrong: rel_err {errs['lab-bsr']:.2e}"
                config["lab-bsr"] = cfg.label()
            except Exception as exc:
                status["lab-bsr"] = f"error: {type(exc).__name__}: {str(exc)[:160]}"
                config["lab-bsr"] = ""
            measured = {}
            for backend, fn in fns.items():
                task = point.task(run, backend)
                measured[backend] = {"kernel-only": kernel_time(fn, task)}
                try:  # what a caller gets call by call (launch cost shows when it exceeds the flush)
                    measured[backend]["per call"] = run.events(fn, task, rep_ms=args.rep_ms)
                except Exception as exc:
                    print("  per-call events failed:", type(exc).__name__, str(exc)[:120], flush=True)
            new = point_rows(run, point, measured, status, config, errs)
            rows += new
            label = config["lab-bsr"]
            for fig in summary:
                ms = {r["backend"]: r["ms"] for r in new if r.get("figure") == fig}
                summary[fig].append((blk, s, ms.get("dense", float("nan")), ms.get("torch-bsr", float("nan")),
                                     ms.get("lab-bsr", float("nan")), label, errs.get("lab-bsr", float("nan"))))
            # bsr_union.csv: the best of each kernel family (one block row per program,
            # "row"; several, "union") that the tuner timed for this point's key, and
            # the union schedule's MMA work and B tiles per stored block
            lab_ms = summary["kernel-only"][-1][4]
            fam_row = {**point.columns(run), "chosen": label, "chosen_ms": lab_ms}
            for rows_per in (2, 4):
                up = lab.union_plan(a, rows_per)
                fam_row[f"r{rows_per}_mma_per_stored"] = up.slots / max(up.stored, 1)
                fam_row[f"r{rows_per}_b_tiles_per_stored"] = up.slots / rows_per / max(up.stored, 1)
            key = str(lab._tune_key(a, B))
            fam = {}
            for t in lab.TUNE_LOG:   # a Measurement row per candidate (median_s) and its config
                ms_t = t["median_s"] * 1e3
                if t["key"] == key and ms_t == ms_t:
                    f = "union" if t["kind"] in lab.UNION_KINDS else "row"
                    if ms_t < fam.get(f, (float("inf"),))[0]:
                        fields = lab.Config.__dataclass_fields__
                        fam[f] = (ms_t, lab.Config(**{x: t[x] for x in fields}).label())
            fam_row["tune_key"] = key
            for f, (ms_f, lab_f) in fam.items():
                fam_row[f"tune_best_{f}_ms"] = ms_f
                fam_row[f"tune_best_{f}_config"] = lab_f
                print(f"    tuner best {f}: {ms_f * 1e3:.1f} us [{lab_f}]", flush=True)
            union_rows.append(fam_row)
            by = {(r["backend"], r.get("figure")): r for r in new}
            lab_k, lab_c = by.get(("lab-bsr", "kernel-only"), {}), by.get(("lab-bsr", "per call"), {})
            print(f"b{blk:<3} s={s:.2f} dense {summary['kernel-only'][-1][2]*1e3:8.1f} us  "
                  f"torch-bsr {summary['kernel-only'][-1][3]*1e3:9.1f} us  lab-bsr {lab_ms*1e3:8.1f} us  "
                  f"x{lab_k.get('speedup_vs_dense', float('nan')):5.2f} vs dense  (per call: "
                  f"x{lab_c.get('speedup_vs_dense', float('nan')):5.2f}, lab {lab_c.get('ms', float('nan'))*1e3:.1f} us)  "
                  f"x{lab_k.get('speedup_vs_torch_bsr', float('nan')):6.2f} vs torch-bsr  [{label}] "
                  f"err {errs.get('lab-bsr', float('nan')):.1e}  ({time.time() - t_start:.0f} s)", flush=True)
            del A_dense, exact
            write_rows(out_dir / "bsr_bench.csv", rows, SCRIPT_COLUMNS)
            write_rows(out_dir / "bsr_union.csv", union_rows)

    # load balance: one uneven pattern, launched longest-first vs in natural order
    if cuda and 64 in blocks:
        rows.extend(_load_balance(lab, torch, B, n, k, run, kernel_time))
        try:
            rows.extend(_gather_ceiling(lab, torch, B, n, k, run, kernel_time))
        except Exception as exc:
            print("gather ceiling failed:", type(exc).__name__, str(exc)[:300])
        write_rows(out_dir / "bsr_bench.csv", rows, SCRIPT_COLUMNS)
    write_rows(out_dir / "bsr_tune.csv", [{**meta, **r} for r in lab.TUNE_LOG])
    print("\n=== GPU time (CUDA-graph replay, L2 evicted before each call) ===")
    _targets(summary["kernel-only"], blocks)
    if cuda:
        print("\n=== per-call CUDA events (triton do_bench; Python launch cost shows when it "
              "exceeds the L2 flush) ===")
        _targets(summary["per call"], blocks)
    print(f"total {time.time() - t_start:.0f} s")
    return 0


BACKENDS = ("dense", "torch-bsr", "lab-bsr")
# bsr_matmul replays a CUDA graph of its own launch when the same B and Y come back
# (engine/sparse/kernels/bsr_launch.py), which every per-call timing here does.
LAB_BSR_PER_CALL = "; lab-bsr's launch replayed from its cached CUDA graph (same B and Y each call)"
FIGURES = ("kernel-only", "per call")  # the two figures of every point: GPU time, per call


@dataclass(frozen=True)
class Point:
    """One (block, sparsity) point of the sweep: A n x n, B n x k, fp16."""

    n: int
    k: int
    block: int
    sparsity: float
    density: float
    nnz_blocks: int
    pattern: str = ""

    def task(self, run: ScriptRun, backend: str):
        return run.task("spmm", backend, {"n": self.n, "k": self.k}, dtype="float16",
                        block=self.block, sparsity=self.sparsity, pattern=self.pattern)

    def columns(self, run: ScriptRun) -> dict:
        """The point's own columns (for rows that are not timings)."""
        return {"script": run.script, "device_name": run.device_name, **dict(run.versions),
                "measured_at": run.measured_at, "n": self.n, "k": self.k, "dtype": "float16",
                "block": self.block, "sparsity": self.sparsity, "density": self.density,
                "nnz_blocks": self.nnz_blocks}


def point_rows(run: ScriptRun, point: Point, measured: dict, status: dict, config: dict,
               errs: dict) -> list[dict]:
    """One row per backend and figure of one point, each from its Measurement
    (``measured[backend][figure]``); speedups within one figure and one timing method only
    (a kernel-only time that fell back to per-call events gets no speedup, NaN).
    A backend that could not be timed gets a row with its status and no numbers."""
    n, k, blk = point.n, point.k, point.block
    theory = 1.0 / point.density if point.density else float("inf")
    flops = {"dense": 2.0 * n * n * k}
    sparse_flops = 2.0 * point.nnz_blocks * blk * blk * k
    rows = []
    for fig in FIGURES:
        got = {b: measured.get(b, {}).get(fig) for b in BACKENDS}
        dense, bsr = got["dense"], got["torch-bsr"]
        for backend in BACKENDS:
            m = got[backend]
            extra = {"figure": fig, "status": status.get(backend, "not run"),
                     "config": config.get(backend, ""), "rel_err": errs.get(backend, float("nan")),
                     "density": point.density, "nnz_blocks": point.nnz_blocks, "theory": theory,
                     "flops_dense": flops["dense"], "flops_sparse": sparse_flops}
            if m is None:
                rows.append(run.failed_row(point.task(run, backend), extra.pop("status"), **extra))
                continue
            speedup = (dense.median_s / m.median_s if dense is not None and dense.method == m.method
                       else float("nan"))
            row = run.row(m, timing=_timing_text(m, backend), **extra, speedup_vs_dense=speedup,
                          efficiency=speedup / theory if point.density else float("nan"),
                          tflops=flops.get(backend, sparse_flops) / m.median_s / 1e12)
            if backend == "lab-bsr":
                row["speedup_vs_torch_bsr"] = (bsr.median_s / m.median_s
                                               if bsr is not None and bsr.method == m.method
                                               else float("nan"))
            rows.append(row)
    return rows


def _timing_text(m, backend: str = "") -> str:
    """The row's timing method in words; lab-bsr per call names its graph replay."""
    from engine.sparse.kernels.bsr_launch import GRAPH_REPLAY

    text = {CUDA_GRAPH: GRAPH_TIMING, EAGER: EVENTS_TIMING}.get(m.method, SMOKE_TIMING)
    return text + (LAB_BSR_PER_CALL if backend == "lab-bsr" and m.method == EAGER and GRAPH_REPLAY else "")


def _gather_ceiling(lab, torch, B, n, k, run, kernel_time, blk=64, sparsities=(0.5, 0.9)):
    """The same launch schedule as lab-bsr's TMA kernel, but each step only moves the
    B tile to the SM and adds it up (no A, no matrix unit): the time the B traffic
    alone needs through L2 for this pattern, i.e. a floor for any kernel that keeps
    one block row per program."""
    import triton
    import triton.language as tl
    from triton.tools.tensor_descriptor import TensorDescriptor

    @triton.jit
    def gather_only(sched_ptr, col_ptr, b_desc, out_ptr, N_TILES, BLK: tl.constexpr,
                    BLOCK_N: tl.constexpr):
        pid = tl.program_id(0)
        rec = sched_ptr + (pid // N_TILES) * 4
        start = tl.load(rec + 1)
        end = tl.load(rec + 2)
        n0 = (pid % N_TILES) * BLOCK_N
        acc = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
        for j in range(start, end):
            col = tl.load(col_ptr + j)
            acc += b_desc.load([col * BLK, n0]).to(tl.float32)
        tl.store(out_ptr + pid, tl.sum(acc))

    rows = []
    for s in sparsities:
        a = lab.BsrMatrix.random(n, n, blk, 1.0 - s, dtype=B.dtype, device=B.device,
                                 seed=int(s * 1000) + blk)
        for bn in (128, 256):
            n_tiles = -(-k // bn)
            out = torch.empty(a.block_rows * n_tiles, device=B.device, dtype=torch.float32)
            desc = TensorDescriptor.from_tensor(B, [blk, bn])
            point = Point(n, k, blk, s, a.density, a.nnz_blocks)
            m = kernel_time(lambda: gather_only[(a.block_rows * n_tiles,)](
                a.sched, a.col, desc, out, n_tiles, BLK=blk, BLOCK_N=bn, num_warps=4, num_stages=3),
                point.task(run, f"B-gather only (n{bn})"))
            nbytes = a.nnz_blocks * blk * k * 2
            rows.append(run.row(m, timing=_timing_text(m), figure="kernel-only", status="ok",
                                config=f"tma n{bn} w4 s3", density=a.density,
                                nnz_blocks=a.nnz_blocks, gather_bytes=nbytes,
                                gather_tb_per_s=nbytes / m.median_s / 1e12))
            print(f"B-gather only b{blk} s={s} n{bn}: {m.median_s*1e6:.1f} us for {nbytes/1e6:.0f} MB "
                  f"= {nbytes / m.median_s / 1e12:.2f} TB/s from L2", flush=True)
    return rows


def _load_balance(lab, torch, B, n, k, run, kernel_time):
    """Block rows whose lengths follow a steep power law (a few rows dense, most
    nearly empty, mean density 10 %): longest-first launch order vs natural order,
    split rows, the union schedule and the persistent kernel's balanced bins."""
    blk = 64
    r = n // blk
    gen = torch.Generator().manual_seed(7)
    weights = 1.0 / (torch.arange(r, dtype=torch.float64) + 1.0) ** 1.2
    lengths = (weights / weights.sum() * 0.1 * r * r).round().clamp(0, r).long()
    lengths = lengths[torch.randperm(r, generator=gen)]
    keep = torch.zeros(r, r, dtype=torch.bool)
    for i in range(r):
        keep[i, torch.randperm(r, generator=gen)[: int(lengths[i])]] = True
    dense = torch.randn(n, n, generator=gen) / math.sqrt(n)
    dense = (dense.reshape(r, blk, r, blk) * keep[:, None, :, None]).reshape(n, n)
    a = lab.BsrMatrix.from_dense(dense.to(B.device, B.dtype), blk, keep=keep.to(B.device))
    natural = lab.BsrMatrix(a.crow, a.col, a.values, a.shape, a.block,
                            torch.arange(r, dtype=torch.int32, device=B.device))
    A_dense = a.to_dense()
    point = Point(n, k, blk, 1 - a.density, a.density, a.nnz_blocks, pattern="power-law rows")
    t_dense = kernel_time(lambda: torch.matmul(A_dense, B), point.task(run, "dense")).median_s
    cfg = lab.tune(a, B, configs=[c for c in lab.candidate_configs(blk, k) if not c.union])
    try:
        ucfg = lab.tune(a, B, configs=[c for c in lab.candidate_configs(blk, k) if c.union])
    except Exception as exc:
        print("union tune failed:", type(exc).__name__, str(exc)[:200], flush=True)
        ucfg = None
    out = []
    exact = A_dense.float() @ B.float()
    variants = [("lab-bsr natural order", natural, None, cfg),
                ("lab-bsr longest-first", a, None, cfg),
                ("lab-bsr longest-first + split rows", a, "auto", cfg)]
    if ucfg is not None:
        variants.append(("lab-bsr union (grouped rows, no split)", a, None, ucfg))
    pcfg = lab.preset_config(a, B)  # what the registry runs: the persistent kernel here
    if pcfg.kind == "pers":
        variants.append(("lab-bsr persistent (balanced bins) + split rows", a, "auto", pcfg))
    for name, mat, split, cf in variants:
        y = torch.full((n, k), float("nan"), device=B.device, dtype=B.dtype)
        lab.bsr_matmul(mat, B, config=cf, out=y, split=split)
        err = float((y.float() - exact).norm() / exact.norm())
        m = kernel_time(lambda: lab.bsr_matmul(mat, B, config=cf, out=y, split=split),
                        point.task(run, name))
        out.append(run.row(m, timing=_timing_text(m), figure="kernel-only", density=a.density,
                           nnz_blocks=a.nnz_blocks, rel_err=err,
                           status="ok" if err < 3e-3 else f"wrong: rel_err {err:.2e}",
                           config=cf.label() + (f" split {lab.auto_split_len(mat)}" if split else ""),
                           speedup_vs_dense=t_dense / m.median_s, max_row_blocks=int(lengths.max()),
                           mean_row_blocks=float(lengths.float().mean())))
        print(f"load balance ({name}): {m.median_s*1e6:.1f} us, err {err:.1e}, dense {t_dense*1e6:.1f} us, "
              f"rows max {int(lengths.max())} mean {float(lengths.float().mean()):.1f}", flush=True)
    return out


def _targets(summary, blocks):
    if not summary:
        return
    print("\nblock sparsity  dense_us  torch_bsr_us  lab_us  x_dense  x_torch_bsr  theory  config")
    for blk, s, td, tb, tlab, label, err in summary:
        print(f"{blk:5d} {s:8.2f} {td*1e3:9.1f} {tb*1e3:13.1f} {tlab*1e3:7.1f} {td/tlab:8.2f} "
              f"{tb/tlab:12.2f} {1/(1-s) if s < 1 else float('inf'):7.1f}  {label}")
    big = max(blocks)
    pts = {(b, round(s, 4)): (td, tb, tl) for b, s, td, tb, tl, _, _ in summary}

    def get(b, s):
        return pts.get((b, round(s, 4)))

    print(f"\ntargets at b{big}:")
    if get(big, 0.9):
        td, tb, tl = get(big, 0.9)
        print(f"  90%: x{td/tl:.2f} vs dense (target >= 5), x{tb/tl:.2f} vs torch BSR (target >= 15)")
    if get(big, 0.5):
        td, tb, tl = get(big, 0.5)
        print(f"  50%: x{td/tl:.2f} vs dense (target >= 1.6)")
    curve = sorted((s, td / tl) for b, s, td, tb, tl, _, _ in summary if b == big)
    be = break_even(curve)
    print(f"  break-even sparsity: {be if be is None else round(be, 3)} (target <= 0.40)")


def break_even(curve):
    """Lowest sparsity from which lab-bsr is at least as fast as dense (linear
    interpolation between measured points); None if never."""
    if not curve:
        return None
    if curve[0][1] >= 1.0:
        return curve[0][0]
    for (s0, r0), (s1, r1) in zip(curve, curve[1:]):
        if r0 < 1.0 <= r1:
            return s0 + (1.0 - r0) * (s1 - s0) / (r1 - r0)
    return None


if __name__ == "__main__":
    sys.exit(main())
