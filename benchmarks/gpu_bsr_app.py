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
import sys
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.bench.schema import SCRIPT_COLUMNS  # noqa: E402
from engine.bench.script_rows import (GRAPH_TIMING, HOST_TIMING, ROTATING_TIMING,  # noqa: E402
                                      ScriptRun, write_rows)

GRAPH = GRAPH_TIMING  # kernel only
EAGER = ROTATING_TIMING  # what a Python caller gets, host work included
MLP_TIMING = "per forward, back-to-back (CUDA events)"


def percall_rows(run: ScriptRun, n: int, k: int, s: float, density: float, res: dict, cfg: str,
                 err: float) -> list[dict]:
    """bsr_percall.csv rows of one (sparsity, k): ``res[(backend, timing)]`` = Measurement;
    each speedup against dense timed the same way."""
    rows = []
    for (backend, timing), m in res.items():
        dense = res[("dense", timing)]
        rows.append(run.row(m, timing=timing, density=density, speedup_vs_dense=dense.median_s / m.median_s,
                            config=cfg if backend.startswith("lab") else "torch.matmul",
                            rel_err=err if backend.startswith("lab") else float("nan")))
    return rows


def host_rows(run: ScriptRun, measured: dict, stored_blocks: int, cfg: str) -> list[dict]:
    """bsr_host.csv rows: ``measured[what]`` = Measurement of the host clock per call."""
    return [run.row(m, timing=HOST_TIMING, host_us_per_call=m.median_s * 1e6,
                    stored_blocks=stored_blocks, config=cfg) for m in measured.values()]


CEILING = "ceiling: cuBLAS n x (n * density) @ (n * density) x k"


def peer_rows(run: ScriptRun, density: float, measured: dict, cfgs: dict, errs: dict) -> list[dict]:
    """bsr_peers.csv rows of one sparsity: ``measured[name]`` = Measurement (CUDA-graph
    replay); each as a fraction of the cuBLAS ceiling and against dense."""
    ceiling, dense = measured[CEILING].median_s, measured["dense torch.matmul"].median_s
    return [run.row(m, timing=GRAPH, density=density, fraction_of_ceiling=ceiling / m.median_s,
                    speedup_vs_dense=dense / m.median_s, config=cfgs.get(name, ""),
                    rel_err=errs.get(name, float("nan"))) for name, m in measured.items()]


def mlp_rows(run: ScriptRun, measured: dict, flops: float, errs: dict, first_call_s: dict) -> list[dict]:
    """bsr_mlp.csv rows: ``measured[(model, mode)]`` = Measurement per forward; speedup
    against the dense model in the same mode."""
    base = {mode: m.median_s for (model, mode), m in measured.items() if model == "dense nn.Linear"}
    return [run.row(m, timing=MLP_TIMING, mode=mode, dense_tflops_equiv=flops / m.median_s / 1e12,
                    rel_err=errs.get(model, float("nan")), first_call_s=first_call_s[(model, mode)],
                    speedup_vs_dense=base.get(mode, float("nan")) / m.median_s)
            for (model, mode), m in measured.items()]


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
    from engine.sparse.kernels import bsr_launch
    from engine.sparse.kernels.bsr_launch import launcher

    if not torch.cuda.is_available():
        print("gpu_bsr_app.py needs a CUDA device")
        return 2
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    run = ScriptRun.here("gpu_bsr_app", {"triton_version": triton.__version__})
    meta = {"script": run.script, "device_name": run.device_name, **dict(run.versions),
            "measured_at": run.measured_at}
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
        write_rows(out_dir / "bsr_check.csv", rows)
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
                def task(backend):
                    return run.task("spmm", backend, {"n": n, "k": k}, dtype="float16", block=blk,
                                    sparsity=s)
                direct_name = "lab-bsr, direct launch (no graph replay)"
                bsr_launch.GRAPH_REPLAY = False
                direct = run.rotating(lab_fns, task(direct_name))
                bsr_launch.GRAPH_REPLAY = True
                res = {
                    (direct_name, EAGER): direct,
                    ("lab-bsr", GRAPH): run.graph(lab_out_fns[0], task("lab-bsr"), n_inner=8, reps=9),
                    ("dense", GRAPH): run.graph(lambda: torch.matmul(dense[0], bs[0], out=ys[1]),
                                                task("dense"), n_inner=8, reps=9),
                    ("lab-bsr", EAGER): run.rotating(lab_fns, task("lab-bsr")),
                    ("lab-bsr out=", EAGER): run.rotating(lab_out_fns, task("lab-bsr out=")),
                    ("dense", EAGER): run.rotating(dense_fns, task("dense")),
                }
                percall.extend(percall_rows(run, n, k, s, mats[0].density, res, cfg, err))
                res = {key: m.median_s * 1e3 for key, m in res.items()}
                direct = (res[(direct_name, EAGER)],)
                g = res[("lab-bsr", GRAPH)]
                e = res[("lab-bsr", EAGER)]
                line = (f"s={s} k={k}: lab-bsr kernel {g * 1e3:.1f} us ({res[('dense', GRAPH)] / g:.2f}x dense), "
                        f"per call {e * 1e3:.1f} us ({res[('dense', EAGER)] / e:.2f}x dense eager), "
                        f"per call / kernel {e / g:.2f}; direct launch without graphs "
                        f"{direct[0] * 1e3:.1f} us ({res[('dense', EAGER)] / direct[0]:.2f}x)")
                print(line, flush=True)
                summary.append(line)
                write_rows(out_dir / "bsr_percall.csv", percall, SCRIPT_COLUMNS)

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
        cached = launcher(a, k, dtype, cfg, lab.auto_split_len(a))
        dense = torch.randn(n, n, device="cuda").half()
        small = torch.randn(64, 64, device="cuda").half()
        def no_graph(fn):
            def call():
                bsr_launch.GRAPH_REPLAY = False
                try:
                    return fn()
                finally:
                    bsr_launch.GRAPH_REPLAY = True
            return call
        measured = {}
        for what, fn in (("bsr_matmul(a, b) (Y allocated)", lambda: lab.bsr_matmul(a, b, autotune=False)),
                         ("bsr_matmul(a, b), direct launch (no graph replay)",
                          no_graph(lambda: lab.bsr_matmul(a, b, autotune=False))),
                         ("cached launch alone, no graph replay", no_graph(lambda: cached(b, y))),
                         ("bsr_matmul(a, b, out=y)", lambda: lab.bsr_matmul(a, b, out=y, autotune=False)),
                         ("cached launch alone: launch(b, y)", lambda: cached(b, y)),
                         ("arguments alone: make_args(b, y)", lambda: cached.make_args(b, y)),
                         ("torch.empty(n, k)", lambda: torch.empty(n, k, device="cuda", dtype=dtype)),
                         ("torch.matmul 64 x 64 (a tiny cuBLAS call, for scale)", lambda: torch.matmul(small, small)),
                         ("torch.matmul(A_dense, b) (host side)", lambda: torch.matmul(dense, b))):
            task = run.task("host", what, {"n": n, "k": k}, dtype="float16", block=blk)
            measured[what] = run.host(fn, task, calls=300 if "A_dense" in what else 2000)
            print(f"host: {what}: {measured[what].median_s * 1e6:.1f} us", flush=True)
        rows = host_rows(run, measured, a.nnz_blocks, cfg.label())
        write_rows(out_dir / "bsr_host.csv", rows, SCRIPT_COLUMNS)
        summary.append("host: " + "; ".join(f"{r['backend']} {r['host_us_per_call']:.1f} us"
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

            def timed(name, fn):
                t[name] = run.graph(fn, run.task("spmm", name, {"n": n, "k": k}, dtype="float16",
                                                 block=blk, sparsity=s))
            timed("lab-bsr", lambda: lab.bsr_matmul(a, b, out=y, autotune=False))
            dense = a.to_dense()
            timed("dense torch.matmul", lambda: torch.matmul(dense, b, out=yc))
            timed(CEILING, lambda: torch.matmul(ac, bc, out=yc))
            errs = {"lab-bsr": float((y.float() - ref).norm() / ref.norm())}
            cfgs = {"lab-bsr": lab.preset_config(a, b).label()}
            try:
                got = bsr_dense_mm(a_t, b)
                errs["torch bsr_dense_mm (defaults)"] = float((got.float() - ref).norm() / ref.norm())
                timed("torch bsr_dense_mm (defaults)", lambda: bsr_dense_mm(a_t, b, out=y))
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
                    timed(name, lambda: bsr_dense_mm(a_t, b, out=y, meta=tuned))
                    cfgs[name] = f"{tuned} (tuned in {tune_s:.0f} s)"
                except Exception as exc:
                    traceback.print_exc()
                    summary.append(f"peers: tuning failed: {type(exc).__name__}: {exc}")
            rows += peer_rows(run, a.density, t, cfgs, errs)
            ceiling, lab_ms = t[CEILING].median_s * 1e3, t["lab-bsr"].median_s * 1e3
            tuned = t.get("torch bsr_dense_mm (tuned here)")
            tuned_ms = tuned.median_s * 1e3 if tuned is not None else float("nan")
            line = (f"peers s={s}: lab-bsr {lab_ms * 1e3:.1f} us = {ceiling / lab_ms:.2f} of the ceiling "
                    f"({ceiling * 1e3:.1f} us), {tuned_ms / lab_ms:.2f}x tuned torch, "
                    f"{t['dense torch.matmul'].median_s * 1e3 / lab_ms:.2f}x dense")
            print(line, flush=True)
            summary.append(line)
            write_rows(out_dir / "bsr_peers.csv", rows, SCRIPT_COLUMNS)

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
        models = {"dense nn.Linear": dense}
        for s in (0.5, 0.9):
            models[f"BlockSparseLinear b64 {int(s * 100)} %"] = nn.Sequential(
                BlockSparseLinear.from_linear(dense[0], blk, s), nn.GELU(),
                BlockSparseLinear.from_linear(dense[2], blk, s))
        flops = 2 * tokens * d * 4 * d * 2
        measured, errs, first = {}, {}, {}
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
                    first[(name, mode)] = time.time() - t0
                    if ref is not None:
                        errs[name] = float((y.float() - ref).norm() / ref.norm())
                    task = run.task("mlp forward", name, {"d": d, "hidden": 4 * d, "tokens": tokens},
                                    dtype="float16", block=blk)
                    measured[(name, mode)] = run.rotating([lambda: fn(x)], task, calls=20, reps=5)
                    print(f"mlp {name} {mode}: {measured[(name, mode)].median_s * 1e3:.3f} ms "
                          f"(err {errs.get(name, '')})", flush=True)
        rows = mlp_rows(run, measured, flops, errs, first)
        write_rows(out_dir / "bsr_mlp.csv", rows, SCRIPT_COLUMNS)
        summary.append("mlp: " + "; ".join(f"{r['backend']} {r['mode']} {r['ms']:.3f} ms "
                                           f"({r['speedup_vs_dense']:.2f}x)" for r in rows))

    if not args.skip_mlp:
        section("mlp", mlp)
    print("\n".join(["", "SUMMARY", *summary]), flush=True)
    (out_dir / "summary.txt").write_text("\n".join([str(meta), *summary]) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
