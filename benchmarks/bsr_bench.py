"""lab-bsr vs dense torch.matmul vs torch BSR, in one run on one GPU.

    python3 benchmarks/bsr_bench.py --out DIR            # the full sweep (CUDA)
    python3 benchmarks/bsr_bench.py --out DIR --quick    # tiny sizes (CPU: Triton interpreter)

Y = A @ B, A n x n block-sparse (random blocks, exact count), B n x k dense, fp16.
Writes under DIR:
  bsr_check.csv  every candidate kernel configuration against bsr_matmul_reference
                 on small cases (fp16 and bf16, empty block rows, fully dense, odd k)
  bsr_bench.csv  one row per (block, sparsity, method): median / quartile times,
                 speedups vs dense and vs torch BSR, theory 1/density, relative error
  bsr_tune.csv   every (shape key, configuration) the tuner timed
  bsr_union.csv  per point: the tuner's best one-row-per-program ("row") and union
                 ("union", several block rows per program) configuration, and the
                 union schedule's MMA work and B tiles per stored block (r2, r4)
and prints a summary with the issue's targets last.
Only the engine, torch and triton are needed (no dash).
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import math
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


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

    meta = {
        "device": torch.cuda.get_device_name(0) if cuda else "CPU (Triton interpreter)",
        "torch": torch.__version__, "triton": triton.__version__,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
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
        write_csv(out_dir / "bsr_check.csv", check_rows)

    # ------------------------------------------------------------------ timing
    if cuda:
        from triton.testing import do_bench

        def timeit_events(fn):
            q25, q50, q75 = do_bench(fn, warmup=25, rep=args.rep_ms, quantiles=[0.25, 0.5, 0.75])
            return q50, q25, q75

        def timeit(fn):
            """GPU time with L2 evicted before each call, launch cost excluded (CUDA
            graphs); falls back to per-call events when fn cannot be captured."""
            try:
                return lab.graph_time(fn, n_inner=8, reps=9)
            except Exception as exc:
                print("  graph capture failed, per-call events instead:", type(exc).__name__,
                      str(exc)[:120], flush=True)
                torch.cuda.synchronize()
                return timeit_events(fn)
    else:
        def timeit_events(fn):
            return timeit(fn)

        def timeit(fn):
            ts = []
            for _ in range(3):
                t0 = time.perf_counter()
                fn()
                ts.append((time.perf_counter() - t0) * 1e3)
            ts.sort()
            return ts[1], ts[0], ts[2]

    rows = []
    union_rows = []
    summary = []
    summary_events = []
    gen = torch.Generator(device=dev).manual_seed(1)
    B = torch.randn(n, k, device=dev, generator=gen).to(dtype)
    for blk in blocks:
        levels = sorted(set(sparsities + (low if blk == max(blocks) else [])))
        for s in levels:
            a = lab.BsrMatrix.random(n, n, blk, 1.0 - s, dtype=dtype, device=dev, seed=int(s * 1000) + blk)
            A_dense = a.to_dense()
            exact = A_dense.float() @ B.float()
            base = {**meta, "n": n, "k": k, "dtype": "fp16", "block": blk, "sparsity": s,
                    "density": a.density, "nnz_blocks": a.nnz_blocks,
                    "flops_dense": 2.0 * n * n * k, "flops_sparse": 2.0 * a.nnz_blocks * blk * blk * k}
            # dense
            t_dense = timeit(lambda: torch.matmul(A_dense, B))
            rows.append({**base, "method": "dense", "ms": t_dense[0], "ms_q25": t_dense[1],
                         "ms_q75": t_dense[2], "status": "ok", "config": "torch.matmul",
                         "rel_err": float((torch.matmul(A_dense, B).float() - exact).norm() / exact.norm())})
            # torch BSR
            try:
                A_t = A_dense.to_sparse_bsr((blk, blk))
                y_t = A_t @ B
                err_t = float((y_t.float() - exact).norm() / exact.norm())
                t_bsr = timeit(lambda: A_t @ B)
                st = "ok"
            except Exception as exc:
                A_t = None
                t_bsr, err_t = (float("nan"),) * 3, float("nan")
                st = f"unavailable: {type(exc).__name__}: {str(exc)[:160]}"
            rows.append({**base, "method": "torch-bsr", "ms": t_bsr[0], "ms_q25": t_bsr[1],
                         "ms_q75": t_bsr[2], "status": st, "config": "A.to_sparse_bsr() @ B",
                         "rel_err": err_t})
            # lab-bsr
            try:
                configs = good.get(blk) or None
                cfg = lab.tuned_config(a, B)
                if cfg is None and cuda:
                    cfg = lab.tune(a, B, configs=configs)
                cfg = cfg or lab.DEFAULT_CONFIG[blk]
                y = torch.full((n, k), float("nan"), device=dev, dtype=dtype)
                lab.bsr_matmul(a, B, config=cfg, out=y)
                err_l = float((y.float() - exact).norm() / exact.norm())
                t_lab = timeit(lambda: lab.bsr_matmul(a, B, config=cfg, out=y))
                st = "ok" if err_l < 3e-3 else f"wrong: rel_err {err_l:.2e}"
                label = cfg.label()
            except Exception as exc:
                t_lab, err_l, label = (float("nan"),) * 3, float("nan"), ""
                st = f"error: {type(exc).__name__}: {str(exc)[:160]}"
            lab_row = {**base, "method": "lab-bsr", "ms": t_lab[0], "ms_q25": t_lab[1],
                       "ms_q75": t_lab[2], "status": st, "config": label, "rel_err": err_l}
            # bsr_union.csv: the best of each kernel family (one block row per program,
            # "row"; several, "union") that the tuner timed for this point's key, and
            # the union schedule's MMA work and B tiles per stored block
            fam_row = {**base, "chosen": label, "chosen_ms": t_lab[0]}
            for rows_per in (2, 4):
                up = lab.union_plan(a, rows_per)
                fam_row[f"r{rows_per}_mma_per_stored"] = up.slots / max(up.stored, 1)
                fam_row[f"r{rows_per}_b_tiles_per_stored"] = up.slots / rows_per / max(up.stored, 1)
            union_rows.append(fam_row)
            key = str(lab._tune_key(a, B))
            fam = {}
            for t in lab.TUNE_LOG:
                if t["key"] == key and t["ms"] == t["ms"]:
                    f = "union" if t["kind"] in lab.UNION_KINDS else "row"
                    if t["ms"] < fam.get(f, (float("inf"),))[0]:
                        fields = lab.Config.__dataclass_fields__
                        fam[f] = (t["ms"], lab.Config(**{x: t[x] for x in fields}).label())
            fam_row["tune_key"] = key
            for f, (ms_f, lab_f) in fam.items():
                fam_row[f"tune_best_{f}_ms"] = ms_f
                fam_row[f"tune_best_{f}_config"] = lab_f
                print(f"    tuner best {f}: {ms_f * 1e3:.1f} us [{lab_f}]", flush=True)
            rows.append(lab_row)
            fns = {"dense": lambda: torch.matmul(A_dense, B),
                   "torch-bsr": lambda: A_t @ B,
                   "lab-bsr": lambda: lab.bsr_matmul(a, B, config=cfg, out=y)}
            for r in rows[-3:]:
                r["timing"] = "cuda-graph replay, L2 evicted before each call" if cuda else "wall"
                ev = (float("nan"),) * 3
                if cuda and r["status"] == "ok":
                    try:
                        ev = timeit_events(fns[r["method"]])
                    except Exception:
                        pass
                r["ms_events"], r["ms_events_q25"], r["ms_events_q75"] = ev
                r["speedup_vs_dense_events"] = rows[-3]["ms_events"] / ev[0] if ev[0] == ev[0] else float("nan")
                r["speedup_vs_dense"] = t_dense[0] / r["ms"] if r["ms"] == r["ms"] else float("nan")
                r["theory"] = 1.0 / a.density if a.density else float("inf")
                r["efficiency"] = r["speedup_vs_dense"] / r["theory"] if a.density else float("nan")
                r["tflops"] = (r["flops_dense"] if r["method"] == "dense" else r["flops_sparse"]) / (r["ms"] * 1e9)
                r["noisy"] = bool((r["ms_q75"] - r["ms_q25"]) / r["ms"] > 0.1) if r["ms"] == r["ms"] else False
            lab_row["speedup_vs_torch_bsr"] = t_bsr[0] / t_lab[0] if t_bsr[0] == t_bsr[0] else float("nan")
            summary.append((blk, s, t_dense[0], t_bsr[0], t_lab[0], label, err_l))
            summary_events.append((blk, s, rows[-3]["ms_events"], rows[-2]["ms_events"],
                                   lab_row["ms_events"], label, err_l))
            print(f"b{blk:<3} s={s:.2f} dense {t_dense[0]*1e3:8.1f} us  torch-bsr {t_bsr[0]*1e3:9.1f} us  "
                  f"lab-bsr {t_lab[0]*1e3:8.1f} us  x{t_dense[0]/t_lab[0]:5.2f} vs dense  "
                  f"(events: x{lab_row['speedup_vs_dense_events']:5.2f}, lab {lab_row['ms_events']*1e3:.1f} us)  "
                  f"x{lab_row['speedup_vs_torch_bsr']:6.2f} vs torch-bsr  [{label}] err {err_l:.1e}"
                  f"  ({time.time() - t_start:.0f} s)", flush=True)
            del A_dense, exact
            write_csv(out_dir / "bsr_bench.csv", rows)
            write_csv(out_dir / "bsr_union.csv", union_rows)

    # load balance: one uneven pattern, launched longest-first vs in natural order
    if cuda and 64 in blocks:
        rows.extend(_load_balance(lab, torch, B, n, k, meta, timeit))
        try:
            rows.extend(_gather_ceiling(lab, torch, B, n, k, meta, timeit))
        except Exception as exc:
            print("gather ceiling failed:", type(exc).__name__, str(exc)[:300])
        write_csv(out_dir / "bsr_bench.csv", rows)
    write_csv(out_dir / "bsr_tune.csv", [{**meta, **r} for r in lab.TUNE_LOG])
    print("\n=== GPU time (CUDA-graph replay, L2 evicted before each call) ===")
    _targets(summary, blocks)
    if cuda:
        print("\n=== per-call CUDA events (triton do_bench; Python launch cost shows when it "
              "exceeds the L2 flush) ===")
        _targets(summary_events, blocks)
    print(f"total {time.time() - t_start:.0f} s")
    return 0


def _gather_ceiling(lab, torch, B, n, k, meta, timeit, blk=64, sparsities=(0.5, 0.9)):
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
            t = timeit(lambda: gather_only[(a.block_rows * n_tiles,)](
                a.sched, a.col, desc, out, n_tiles, BLK=blk, BLOCK_N=bn, num_warps=4, num_stages=3))
            nbytes = a.nnz_blocks * blk * k * 2
            rows.append({**meta, "n": n, "k": k, "dtype": "fp16", "block": blk, "sparsity": s,
                         "density": a.density, "nnz_blocks": a.nnz_blocks,
                         "method": f"B-gather only (n{bn})", "ms": t[0], "ms_q25": t[1],
                         "ms_q75": t[2], "status": "ok", "config": f"tma n{bn} w4 s3",
                         "gather_bytes": nbytes, "gather_tb_per_s": nbytes / (t[0] * 1e-3) / 1e12})
            print(f"B-gather only b{blk} s={s} n{bn}: {t[0]*1e3:.1f} us for {nbytes/1e6:.0f} MB "
                  f"= {nbytes / (t[0] * 1e-3) / 1e12:.2f} TB/s from L2", flush=True)
    return rows


def _load_balance(lab, torch, B, n, k, meta, timeit):
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
    t_dense = timeit(lambda: torch.matmul(A_dense, B))
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
        t = timeit(lambda: lab.bsr_matmul(mat, B, config=cf, out=y, split=split))
        out.append({**meta, "n": n, "k": k, "dtype": "fp16", "block": blk, "sparsity": 1 - a.density,
                    "density": a.density, "nnz_blocks": a.nnz_blocks, "method": name,
                    "pattern": "power-law rows", "ms": t[0], "ms_q25": t[1], "ms_q75": t[2],
                    "status": "ok" if err < 3e-3 else f"wrong: rel_err {err:.2e}", "rel_err": err,
                    "config": cf.label() + (f" split {lab.auto_split_len(mat)}" if split else ""),
                    "speedup_vs_dense": t_dense[0] / t[0],
                    "max_row_blocks": int(lengths.max()), "mean_row_blocks": float(lengths.float().mean())})
        print(f"load balance ({name}): {t[0]*1e3:.1f} us, err {err:.1e}, dense {t_dense[0]*1e3:.1f} us, "
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


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys: list[str] = []
    for r in rows:
        for key in r:
            if key not in keys:
                keys.append(key)
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        for r in rows:
            w.writerow(r)


if __name__ == "__main__":
    sys.exit(main())
