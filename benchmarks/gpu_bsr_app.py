"""lab-bsr per call and per kernel, its host cost, its peers, and a block-sparse MLP (CUDA).

    python3 benchmarks/gpu_bsr_app.py --out DIR [--quick] [--skip-tune] [--skip-mlp]

fp16, A n x n (n = 8192) block-sparse with b = 64 at 90 % and 50 % sparsity, B n x k.
Writes under DIR (one CSV each, every row with device, torch, triton and date):

  bsr_percall.csv  per (sparsity, k = 512 / 2048 / 8192): lab-bsr and dense torch.matmul,
                   each timed two ways, named in the column ``timing``:
                   "cuda-graph replay, L2 evicted before each call" (kernel only,
                   ``graph_time``) and "eager per call, back-to-back over 4 rotating
                   input sets" (what a Python caller gets: host work included whenever
                   it is longer than the GPU's); speedups vs dense per method.
  bsr_host.csv     host cost per call on a matrix with one stored block per block row
                   (the GPU does almost nothing, so the time is the host's): the whole bsr_matmul,
                   the cached launch alone, building the arguments, torch.empty, and
                   torch.matmul of the same shapes for scale.
  bsr_peers.csv    at k = 512: torch's Triton BSR kernel (torch.sparse._triton_ops
                   .bsr_dense_mm) with its defaults and tuned for this GPU
                   (_triton_ops_meta.tune_bsr_dense_addmm), the cuBLAS ceiling (a dense
                   GEMM with the same multiply-adds: A compacted to n x (n * density)),
                   lab-bsr as a fraction of that ceiling and against tuned torch.
  bsr_mlp.csv      a 2-layer MLP (d -> 4d -> d, GELU, 8192 tokens, d = 4096): dense vs
                   BlockSparseLinear (b64) at 50 / 90 %, eager and torch.compile.
  bsr_check.csv    the cached launch against bsr_matmul_reference for every preset
                   kind on fresh random inputs, outputs poisoned with NaN first.
"""
from __future__ import annotations

import argparse
import csv
import datetime as dt
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

GRAPH = "cuda-graph replay, L2 evicted before each call"
EAGER = "eager per call, back-to-back over 4 rotating input sets"


def write_csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    with open(path, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=keys)
        w.writeheader()
        w.writerows(rows)


def eager_per_call(torch, fns, calls: int = 100, reps: int = 5) -> tuple[float, float, float]:
    """ms per call of back-to-back eager calls cycling over ``fns`` (one per input set),
    CUDA events around each run of ``calls``; (median, q25, q75) over ``reps``."""
    for f in fns:
        f()
    torch.cuda.synchronize()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    samples = []
    n = len(fns)
    for _ in range(reps):
        start.record()
        for i in range(calls):
            fns[i % n]()
        end.record()
        end.synchronize()
        samples.append(start.elapsed_time(end) / calls)
    q = torch.tensor(samples, dtype=torch.float64).quantile(
        torch.tensor([0.5, 0.25, 0.75], dtype=torch.float64))
    return float(q[0]), float(q[1]), float(q[2])


def host_us(torch, fn, calls: int = 2000) -> float:
    """Host time per call in us while calls are queued without waiting."""
    fn()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    t = (time.perf_counter() - t0) / calls
    torch.cuda.synchronize()
    return t * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--quick", action="store_true", help="small sizes (a smoke test)")
    p.add_argument("--skip-tune", action="store_true")
    p.add_argument("--skip-peers", action="store_true")
    p.add_argument("--skip-mlp", action="store_true")
    p.add_argument("--skip-compile", action="store_true")
    args = p.parse_args()
    import torch
    import triton

    from engine.sparse.kernels import bsr_matmul as lab
    from engine.bench.measurement import is_noisy  # the lab's one noise rule
    from engine.sparse.kernels import bsr_launch
    from engine.sparse.kernels.bsr_launch import launcher

    if not torch.cuda.is_available():
        print("gpu_bsr_app.py needs a CUDA device")
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    meta = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
            "triton": triton.__version__,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    print(meta, flush=True)
    n = 2048 if args.quick else 8192
    ks = (512,) if args.quick else (512, 2048, 8192)
    blk, dtype = 64, torch.float16
    summary: list[str] = []

    def section(name, fn):
        t0 = time.time()
        try:
            fn()
        except Exception:
            traceback.print_exc()
            summary.append(f"{name}: FAILED (see log)")
        print(f"== {name}: {time.time() - t0:.0f} s", flush=True)

    # ------------------------------------------------------------------ check
    def check():
        rows = []
        for b_sz, s, k in ((16, 0.9, 128), (32, 0.5, 128), (32, 0.9, 200), (64, 0.9, 256),
                           (64, 0.5, 256), (64, 0.95, 128), (128, 0.5, 256), (64, 0.9, 40)):
            a = lab.BsrMatrix.random(1024, 1024, b_sz, 1 - s, dtype=dtype, device="cuda",
                                     seed=b_sz + k, empty_rows=(1,))
            for rep in range(4):  # the JIT path, the direct launch, then graph replays
                if rep < 2:  # the same two buffers from then on: the graph's case
                    b = torch.empty(1024, k, device="cuda").half()
                    y = torch.empty((1024, k), device="cuda", dtype=dtype)
                b.copy_(torch.randn(1024, k, device="cuda").half())  # fresh values
                y.fill_(float("nan"))
                lab.bsr_matmul(a, b, out=y, autotune=False)
                ref = lab.bsr_matmul_reference(a, b).double()
                err = float((y.double() - ref).norm() / ref.norm())
                call = [v for kk, v in a._plans.items() if kk[0] == "call"][0]
                rows.append({**meta, "block": b_sz, "sparsity": s, "k": k, "rep": rep,
                             "config": lab.preset_config(a, b).label(), "rel_err": err,
                             "nan": int(torch.isnan(y).sum()),
                             "direct_launches": call.launch.fast_calls,
                             "graph_replays": call.launch.graph_calls,
                             "direct_error": call.launch.direct_error,
                             "graph_error": call.launch.graph_error,
                             "ok": err < 3e-3 and not torch.isnan(y).any()})
        write_csv(out_dir / "bsr_check.csv", rows)
        bad = [r for r in rows if not r["ok"]]
        last = [r for r in rows if r["rep"] == 3]
        summary.append(f"check: {len(rows) - len(bad)}/{len(rows)} ok; direct launches "
                       f"used: {sum(r['direct_launches'] > 0 for r in last)}/{len(last)}; "
                       f"graph replays used: {sum(r['graph_replays'] > 0 for r in last)}/{len(last)}"
                       + "".join(f"; {r['graph_error']}" for r in last if r["graph_error"])[:300])

    section("check", check)

    # ------------------------------------------------------------------ per call vs kernel
    percall: list[dict] = []

    def per_call():
        for s in (0.9, 0.5):
            mats = [lab.BsrMatrix.random(n, n, blk, 1 - s, dtype=dtype, device="cuda", seed=i + 7)
                    for i in range(4)]
            dense = [m.to_dense() for m in mats]
            for k in ks:
                bs = [torch.randn(n, k, device="cuda").half() for _ in range(4)]
                ys = [torch.empty(n, k, device="cuda", dtype=dtype) for _ in range(4)]
                ref = mats[0].to_dense().float() @ bs[0].float()
                got = lab.bsr_matmul(mats[0], bs[0], autotune=False)
                err = float((got.float() - ref).norm() / ref.norm())
                cfg = lab.preset_config(mats[0], bs[0]).label()
                lab_fns = [lambda i=i: lab.bsr_matmul(mats[i], bs[i], autotune=False)
                           for i in range(4)]
                lab_out_fns = [lambda i=i: lab.bsr_matmul(mats[i], bs[i], out=ys[i],
                                                          autotune=False) for i in range(4)]
                dense_fns = [lambda i=i: torch.matmul(dense[i], bs[i]) for i in range(4)]
                bsr_launch.GRAPH_REPLAY = False
                direct = eager_per_call(torch, lab_fns)
                bsr_launch.GRAPH_REPLAY = True
                res = {
                    ("lab-bsr, direct launch (no graph replay)", EAGER): direct,
                    ("lab-bsr", GRAPH): lab.graph_time(lab_out_fns[0], n_inner=8, reps=9),
                    ("dense", GRAPH): lab.graph_time(lambda: torch.matmul(dense[0], bs[0], out=ys[1]),
                                                     n_inner=8, reps=9),
                    ("lab-bsr", EAGER): eager_per_call(torch, lab_fns),
                    ("lab-bsr out=", EAGER): eager_per_call(torch, lab_out_fns),
                    ("dense", EAGER): eager_per_call(torch, dense_fns),
                }
                for (method, timing), (med, q25, q75) in res.items():
                    d = res[("dense", timing)][0]
                    percall.append({**meta, "n": n, "k": k, "dtype": "fp16", "block": blk,
                                    "sparsity": s, "density": mats[0].density, "method": method,
                                    "timing": timing, "ms": med, "ms_q25": q25, "ms_q75": q75,
                                    "noisy": is_noisy(med, q75 - q25),
                                    "speedup_vs_dense": d / med,
                                    "config": cfg if method.startswith("lab") else "torch.matmul",
                                    "rel_err": err if method.startswith("lab") else ""})
                g = res[("lab-bsr", GRAPH)][0]
                e = res[("lab-bsr", EAGER)][0]
                line = (f"s={s} k={k}: lab-bsr kernel {g * 1e3:.1f} us ({res[('dense', GRAPH)][0] / g:.2f}x dense), "
                        f"per call {e * 1e3:.1f} us ({res[('dense', EAGER)][0] / e:.2f}x dense eager), "
                        f"per call / kernel {e / g:.2f}; direct launch without graphs "
                        f"{direct[0] * 1e3:.1f} us ({res[('dense', EAGER)][0] / direct[0]:.2f}x)")
                print(line, flush=True)
                summary.append(line)
                write_csv(out_dir / "bsr_percall.csv", percall)

    section("per call vs kernel", per_call)

    # ------------------------------------------------------------------ host cost
    def host():
        k = 512
        one = torch.eye(n // blk, dtype=torch.bool)  # one block per block row: no empty rows
        a = lab.BsrMatrix.from_dense(torch.randn(n, n).half().cuda(), blk, keep=one.cuda())
        b = torch.randn(n, k, device="cuda").half()
        y = torch.empty(n, k, device="cuda", dtype=dtype)
        lab.bsr_matmul(a, b, autotune=False)
        cfg = lab.preset_config(a, b)
        run = launcher(a, k, dtype, cfg, lab.auto_split_len(a))
        dense = torch.randn(n, n, device="cuda").half()
        small = torch.randn(64, 64, device="cuda").half()
        rows = []
        def no_graph(fn):
            def call():
                bsr_launch.GRAPH_REPLAY = False
                try:
                    return fn()
                finally:
                    bsr_launch.GRAPH_REPLAY = True
            return call
        for what, fn in (("bsr_matmul(a, b) (Y allocated)", lambda: lab.bsr_matmul(a, b, autotune=False)),
                         ("bsr_matmul(a, b), direct launch (no graph replay)",
                          no_graph(lambda: lab.bsr_matmul(a, b, autotune=False))),
                         ("cached launch alone, no graph replay", no_graph(lambda: run(b, y))),
                         ("bsr_matmul(a, b, out=y)", lambda: lab.bsr_matmul(a, b, out=y, autotune=False)),
                         ("cached launch alone: launch(b, y)", lambda: run(b, y)),
                         ("arguments alone: make_args(b, y)", lambda: run.make_args(b, y)),
                         ("torch.empty(n, k)", lambda: torch.empty(n, k, device="cuda", dtype=dtype)),
                         ("torch.matmul 64 x 64 (a tiny cuBLAS call, for scale)", lambda: torch.matmul(small, small)),
                         ("torch.matmul(A_dense, b) (host side)", lambda: torch.matmul(dense, b))):
            us = host_us(torch, fn, calls=300 if "A_dense" in what else 2000)
            rows.append({**meta, "n": n, "k": k, "block": blk, "stored_blocks": a.nnz_blocks,
                         "config": cfg.label(), "what": what, "host_us_per_call": us,
                         "timing": "host clock over calls queued without waiting"})
            print(f"host: {what}: {us:.1f} us", flush=True)
        write_csv(out_dir / "bsr_host.csv", rows)
        summary.append("host: " + "; ".join(f"{r['what']} {r['host_us_per_call']:.1f} us"
                                            for r in rows[:6]))

    section("host cost", host)

    # ------------------------------------------------------------------ peers
    def peers():
        from torch.sparse._triton_ops import bsr_dense_mm
        rows = []
        k = 512
        for s in (0.9, 0.5):
            a = lab.BsrMatrix.random(n, n, blk, 1 - s, dtype=dtype, device="cuda", seed=11)
            b = torch.randn(n, k, device="cuda").half()
            y = torch.empty(n, k, device="cuda", dtype=dtype)
            a_t = a.to_torch()
            a_t = torch.sparse_bsr_tensor(a_t.crow_indices(), a_t.col_indices(), a_t.values(),
                                          size=a_t.shape)
            ref = a.to_dense().float() @ b.float()
            kc = int(round(n * a.density / blk)) * blk  # A compacted: the same multiply-adds
            ac = torch.randn(n, kc, device="cuda").half()
            bc = torch.randn(kc, k, device="cuda").half()
            yc = torch.empty(n, k, device="cuda", dtype=dtype)
            t = {}
            t["lab-bsr"] = lab.graph_time(lambda: lab.bsr_matmul(a, b, out=y, autotune=False))
            dense = a.to_dense()
            t["dense torch.matmul"] = lab.graph_time(lambda: torch.matmul(dense, b, out=yc))
            t["ceiling: cuBLAS n x (n * density) @ (n * density) x k"] = lab.graph_time(
                lambda: torch.matmul(ac, bc, out=yc))
            errs = {"lab-bsr": float((y.float() - ref).norm() / ref.norm())}
            cfgs = {"lab-bsr": lab.preset_config(a, b).label()}
            try:
                got = bsr_dense_mm(a_t, b)
                errs["torch bsr_dense_mm (defaults)"] = float((got.float() - ref).norm() / ref.norm())
                t["torch bsr_dense_mm (defaults)"] = lab.graph_time(lambda: bsr_dense_mm(a_t, b, out=y))
                cfgs["torch bsr_dense_mm (defaults)"] = "no meta for this GPU: defaults"
            except Exception as exc:
                summary.append(f"peers: bsr_dense_mm failed: {type(exc).__name__}: {exc}")
            if not args.skip_tune:
                try:
                    from torch.sparse._triton_ops_meta import tune_bsr_dense_addmm
                    t0 = time.time()
                    tuned = tune_bsr_dense_addmm(torch.zeros(n, k, device="cuda", dtype=dtype),
                                                 a_t, b, beta=0, store=False)
                    tune_s = time.time() - t0
                    got = bsr_dense_mm(a_t, b, meta=tuned)
                    name = "torch bsr_dense_mm (tuned here)"
                    errs[name] = float((got.float() - ref).norm() / ref.norm())
                    t[name] = lab.graph_time(lambda: bsr_dense_mm(a_t, b, out=y, meta=tuned))
                    cfgs[name] = f"{tuned} (tuned in {tune_s:.0f} s)"
                except Exception as exc:
                    traceback.print_exc()
                    summary.append(f"peers: tuning failed: {type(exc).__name__}: {exc}")
            ceiling = t["ceiling: cuBLAS n x (n * density) @ (n * density) x k"][0]
            for name, v in t.items():
                if v is None:
                    continue
                rows.append({**meta, "n": n, "k": k, "dtype": "fp16", "block": blk, "sparsity": s,
                             "density": a.density, "method": name, "timing": GRAPH, "ms": v[0],
                             "ms_q25": v[1], "ms_q75": v[2],
                             "noisy": is_noisy(v[0], v[2] - v[1]),
                             "fraction_of_ceiling": ceiling / v[0],
                             "speedup_vs_dense": t["dense torch.matmul"][0] / v[0],
                             "config": cfgs.get(name, ""), "rel_err": errs.get(name, "")})
            lab_ms = t["lab-bsr"][0]
            tuned_ms = t.get("torch bsr_dense_mm (tuned here)", (float("nan"),))[0]
            line = (f"peers s={s}: lab-bsr {lab_ms * 1e3:.1f} us = {ceiling / lab_ms:.2f} of the ceiling "
                    f"({ceiling * 1e3:.1f} us), {tuned_ms / lab_ms:.2f}x tuned torch, "
                    f"{t['dense torch.matmul'][0] / lab_ms:.2f}x dense")
            print(line, flush=True)
            summary.append(line)
            write_csv(out_dir / "bsr_peers.csv", rows)

    if not args.skip_peers:
        section("peers", peers)

    # ------------------------------------------------------------------ MLP
    def mlp():
        from torch import nn

        from engine.sparse.kernels.bsr_op import BlockSparseLinear
        d, tokens = (1024, 2048) if args.quick else (4096, 8192)
        torch.manual_seed(0)
        dense = nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d)).cuda().half()
        x = torch.randn(tokens, d, device="cuda").half()
        rows = []
        models = {"dense nn.Linear": dense}
        for s in (0.5, 0.9):
            models[f"BlockSparseLinear b64 {int(s * 100)} %"] = nn.Sequential(
                BlockSparseLinear.from_linear(dense[0], blk, s), nn.GELU(),
                BlockSparseLinear.from_linear(dense[2], blk, s))
        flops = 2 * tokens * d * 4 * d * 2
        for name, model in models.items():
            with torch.no_grad():
                ref = None
                if name != "dense nn.Linear":
                    w1, w2 = model[0].dense_weight(), model[2].dense_weight()
                    h = torch.nn.functional.gelu(x.float() @ w1.float().t() + model[0].bias.float())
                    ref = h @ w2.float().t() + model[2].bias.float()
                for mode in ("eager", "torch.compile"):
                    if mode == "torch.compile" and args.skip_compile:
                        continue
                    t0 = time.time()
                    fn = model if mode == "eager" else torch.compile(model)
                    y = fn(x)
                    compile_s = time.time() - t0
                    err = float((y.float() - ref).norm() / ref.norm()) if ref is not None else ""
                    med, q25, q75 = eager_per_call(torch, [lambda: fn(x)], calls=20, reps=5)
                    rows.append({**meta, "d": d, "hidden": 4 * d, "tokens": tokens, "dtype": "fp16",
                                 "model": name, "mode": mode,
                                 "timing": "per forward, back-to-back (CUDA events)",
                                 "ms": med, "ms_q25": q25, "ms_q75": q75,
                                 "noisy": is_noisy(med, q75 - q25),
                                 "dense_tflops_equiv": flops / med / 1e9, "rel_err": err,
                                 "first_call_s": compile_s})
                    print(f"mlp {name} {mode}: {med:.3f} ms (err {err})", flush=True)
        base = {r["mode"]: r["ms"] for r in rows if r["model"] == "dense nn.Linear"}
        for r in rows:
            r["speedup_vs_dense"] = base.get(r["mode"], float("nan")) / r["ms"]
        write_csv(out_dir / "bsr_mlp.csv", rows)
        summary.append("mlp: " + "; ".join(f"{r['model']} {r['mode']} {r['ms']:.3f} ms "
                                           f"({r['speedup_vs_dense']:.2f}x)" for r in rows))

    if not args.skip_mlp:
        section("mlp", mlp)
    print("\n".join(["", "SUMMARY", *summary]), flush=True)
    (out_dir / "summary.txt").write_text("\n".join([str(meta), *summary]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
