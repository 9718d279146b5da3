"""GPU evidence for /moe: dense FFN vs the MoE layer batched by expert, over batch size.

    python3 benchmarks/gpu_moe.py --out DIR           # d=2048, FFN 4d, 8 experts, top-2, bf16
    python3 benchmarks/gpu_moe.py --out DIR --quick   # tiny sizes, for a CPU check

Writes DIR/moe_timing.csv (one row per batch x variant, from engine.moe.timing.timing_sweep_rows),
DIR/moe_summary.csv (MoE / one dense FFN time at the largest batch; ideal = k) and
DIR/moe_check.csv (batched == per-token reference on this device, with and without drops,
for each method x combine), DIR/moe_profile.csv (each stage of the layer timed alone at the
largest batch, the whole layer per method x combine, the dense FFNs, and how far the ways
of computing the layer differ) and DIR/moe_profile.txt (torch.profiler tables on CUDA).
Uses only the engine; no dash, no plotly. Finishes in well under 3 minutes on an H100.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from engine.bench.measurement import Task  # noqa: E402
from engine.moe import layer, router, timing  # noqa: E402
from engine.runtime.device import job_device, runtime_device_name  # noqa: E402


CHECKS = [  # (tokens, k, capacity factor or None): 3 tokens top-1 leaves experts empty
    (96, 2, None), (96, 2, 0.75), (3, 1, None)]


def check_rows(device, dtype, methods) -> list[dict]:
    """Batched layer vs the per-token reference at small sizes: dropless, with drops, and
    with empty expert groups."""
    rows = []
    g = torch.Generator().manual_seed(1)
    d, h, E = 64, 256, 8
    gate = torch.randn(d, E, generator=g) / math.sqrt(d)
    ex = layer.Experts.random(E, d, h, seed=2)
    for tokens, k, cf in CHECKS:
        x = torch.randn(tokens, d, generator=g)
        r = router.route(x, gate, k)
        cap = None if cf is None else router.expert_capacity(tokens, E, cf, k)
        c = router.apply_capacity(r.expert, E, cap)
        ref = layer.moe_forward_reference(x.double(), layer.Experts(ex.w1.double(), ex.w2.double()),
                                        r.expert, r.weight.double(), c.keep)
        for method, combine in [(m, c) for m in methods for c in layer.COMBINES]:
            row = {"device": runtime_device_name(device), "dtype": str(dtype).replace("torch.", ""),
                   "method": method, "combine": combine, "tokens": tokens, "k": k, "experts": E,
                   "capacity": cap if cap is not None else "dropless",
                   "dropped_assignments": int(c.dropped.sum()),
                   "empty_experts": int((c.load == 0).sum())}
            try:
                out = layer.moe_forward(x.to(device, dtype), layer.Experts(ex.w1.to(device, dtype),
                                      ex.w2.to(device, dtype)), r.expert.to(device),
                                      r.weight.to(device, dtype), c.keep.to(device), method=method,
                                      combine=combine)
                err = (out.double().cpu() - ref).abs().max().item()
                scale = ref.abs().max().item()
                tol = (2e-2 if dtype in (torch.bfloat16, torch.float16) else 1e-4) * max(scale, 1.0)
                row.update(status="ok", max_abs_err=err, ref_max_abs=scale, tolerance=tol,
                           agrees=bool(err <= tol))
            except Exception as exc:  # report, do not hide
                row.update(status=f"unavailable: {str(exc).splitlines()[0][:160]}")
            rows.append(row)
    return rows


def profile_rows(device, dtype, d: int, tokens: int, out_dir: Path, experts: int = 8, k: int = 2,
                 min_run_time: float = 0.2) -> list[dict]:
    """Where the MoE layer's time goes at one batch: each stage timed alone (median of
    engine.bench.timer.measure), the whole layer per (method, combine), the dense FFNs,
    and a torch.profiler table of the whole layer (``moe_profile.txt``)."""
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(0)
    h = 4 * d
    ex = layer.Experts.random(experts, d, h, dtype=dtype, device=device)
    gate = (torch.randn(d, experts, generator=g) / math.sqrt(d)).to(device, dtype)
    x = torch.randn(tokens, d, generator=g).to(device, dtype)
    w1x, w2x = (torch.randn(h, d, generator=g) / math.sqrt(d)).to(device, dtype), \
        (torch.randn(d, h, generator=g) / math.sqrt(h)).to(device, dtype)
    w1a, w2a = (torch.randn(k * h, d, generator=g) / math.sqrt(d)).to(device, dtype), \
        (torch.randn(d, k * h, generator=g) / math.sqrt(k * h)).to(device, dtype)
    grouped = layer.grouped_mm_available(device, dtype) is None
    r = router.route(x, gate, k)
    order, counts, kept = layer.dispatch(r.expert, experts)
    token = order // k
    xs = x.index_select(0, token)
    offs = counts.cumsum(0).to(torch.int32)
    sizes = counts.tolist()
    stages = {
        "route (gate GEMM, softmax, top-k)": lambda: router.route(x, gate, k),
        "dispatch (argsort, counts)": lambda: layer.dispatch(r.expert, experts),
        "gather x rows": lambda: x.index_select(0, token),
        "dense_1x GEMM1": lambda: x @ w1x.T,
        "dense_1x gelu": (lambda hx=x @ w1x.T: F.gelu(hx)),
        "dense_active GEMM1": lambda: x @ w1a.T,
        "dense_1x (whole)": lambda: layer.ffn(x, w1x, w2x),
        "dense_active (whole)": lambda: layer.ffn(x, w1a, w2a),
    }
    hid = None
    if grouped:
        mm = torch._grouped_mm
        w1t, w2t = ex.w1.transpose(-2, -1), ex.w2.transpose(-2, -1)
        w1c, w2c = w1t.contiguous(), w2t.contiguous()
        hid = F.gelu(mm(xs, w1t, offs=offs))
        stages.update({
            "grouped GEMM1 (B = w1 transposed view)": lambda: mm(xs, w1t, offs=offs),
            "grouped GEMM1 (B contiguous (E, d, h))": lambda: mm(xs, w1c, offs=offs),
            "gelu on hidden (T*k, h)": lambda: F.gelu(hid),
            "grouped GEMM2 (B = w2 transposed view)": lambda: mm(hid, w2t, offs=offs),
            "grouped GEMM2 (B contiguous)": lambda: mm(hid, w2c, offs=offs),
        })
    else:
        hid = F.gelu(xs @ ex.w1[0].T)

    def loop_gemm1():
        start = 0
        for e, n in enumerate(sizes):
            torch.mm(xs[start:start + n], ex.w1[e].T)
            start += n
    stages["loop GEMM1 (one cuBLAS GEMM per expert)"] = loop_gemm1
    ys = xs.clone()
    stages["combine index_add (scale, zeros, index_add_)"] = \
        lambda: layer._combine_index_add(ys, order, r.weight, tokens, k)
    stages["combine gather (inverse perm, gather, mul + addcmul)"] = \
        lambda: layer._combine_gather(ys, order, r.weight, None)
    for method in layer.METHODS:
        if method == "grouped" and not grouped:
            continue
        for combine in layer.COMBINES:
            def layer(method=method, combine=combine):
                rr = router.route(x, gate, k)
                return layer.moe_forward(x, ex, rr.expert, rr.weight, method=method, combine=combine)
            stages[f"layer {method} / {combine} (whole, with routing)"] = layer
    rows = []
    with torch.inference_mode():
        outs = {name: fn() for name, fn in stages.items() if name.startswith("layer ")}
        base = outs.get("layer loop / index_add (whole, with routing)")
        for name, o in outs.items():  # the same layer every way: how far apart (bf16 rounding)
            rows.append({"stage": f"max |{name.split(' (')[0]} - loop / index_add|", "tokens": tokens,
                         "d_model": d, "status": "ok",
                         "max_abs_diff": float((o.float() - base.float()).abs().max()),
                         "out_max_abs": float(base.float().abs().max())})
        for name, fn in stages.items():
            try:
                m = timing.time_call(fn, min_run_time, Task(op="moe-stage", backend=name, device=device.type,
                                                         dims={"tokens": tokens, "d_model": d}))
                rows.append({"stage": name, "tokens": tokens, "d_model": d, "time_ms": m.median_s * 1e3,
                             "iqr_ms": m.iqr_s * 1e3, "runs": m.runs, "noisy": m.noisy,
                             "method": m.method, "status": "ok"})
            except Exception as exc:  # report, do not hide
                rows.append({"stage": name, "tokens": tokens, "d_model": d,
                             "status": f"error: {str(exc).splitlines()[0][:160]}"})
            print(rows[-1], flush=True)
        if device.type == "cuda":
            from torch.profiler import ProfilerActivity, profile
            text = []
            for method, combine in [("grouped" if grouped else "loop", c) for c in layer.COMBINES]:
                fn = stages[f"layer {method} / {combine} (whole, with routing)"]
                with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
                    for _ in range(5):
                        fn()
                    torch.cuda.synchronize()
                text.append(f"== layer {method} / {combine}, {tokens} tokens, 5 calls ==")
                text.append(prof.key_averages().table(sort_by="self_cuda_time_total", row_limit=25,
                                                      max_name_column_width=60))
            (out_dir / "moe_profile.txt").write_text("\n".join(text))
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke test)")
    ap.add_argument("--d-model", type=int, default=2048)
    ap.add_argument("--max-batch", type=int, default=16384)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--min-run-time", type=float, default=0.2)
    ap.add_argument("--no-profile", action="store_true", help="skip the stage profile")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        args.d_model, args.max_batch, args.min_run_time = 64, 256, 0.02
        if args.dtype == "bfloat16":
            args.dtype = "float32"
    started = time.time()
    device = job_device("auto")
    print(f"device: {runtime_device_name(device)}; torch {torch.__version__}", flush=True)
    torch.backends.cuda.matmul.allow_tf32 = True

    check = check_rows(device, getattr(torch, args.dtype), layer.METHODS)
    pd.DataFrame(check).to_csv(args.out / "moe_check.csv", index=False)
    print(pd.DataFrame(check).to_string(index=False), flush=True)

    if not args.no_profile:
        prof = profile_rows(device, getattr(torch, args.dtype), args.d_model, args.max_batch, args.out,
                            min_run_time=args.min_run_time)
        pd.DataFrame(prof).to_csv(args.out / "moe_profile.csv", index=False)

    spec = timing.SweepSpec(d_model=args.d_model, ffn_mult=4, experts=8, k=2,
                         batches=timing.powers_of_two(1, args.max_batch), dtype=args.dtype,
                         min_run_time=args.min_run_time)
    rows = []
    for row in timing.timing_sweep_rows(spec):
        row["date_utc"] = timing.now_utc()
        rows.append(row)
        pd.DataFrame(rows).to_csv(args.out / "moe_timing.csv", index=False)  # keep partial results
        if row.get("status") == "ok":
            print(f"{row['batch']:>6} {row['variant']:<13} {row['time_ms']:9.4f} ms "
                  f"x{row['ratio_vs_dense_1x']:.3f}", flush=True)
        else:
            print(f"{row['batch']:>6} {row['variant']:<13} {row['status']}", flush=True)
    summary = timing.sweep_summary(rows)
    for s in summary:
        s.update(device=rows[0]["device"], dtype=args.dtype, d_model=args.d_model,
                 target=2.35, meets_target=bool(s["ratio_vs_dense_1x"] <= 2.35))
    pd.DataFrame(summary).to_csv(args.out / "moe_summary.csv", index=False)
    print(pd.DataFrame(summary).to_string(index=False))
    print(f"total {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
