"""GPU evidence for /moe: dense FFN vs the MoE layer batched by expert, over batch size.

    python3 benchmarks/gpu_moe.py --out DIR           # d=2048, FFN 4d, 8 experts, top-2, bf16
    python3 benchmarks/gpu_moe.py --out DIR --quick   # tiny sizes, for a CPU check

Writes DIR/moe_timing.csv (one row per batch x variant, from engine.moe.timing_sweep_rows),
DIR/moe_summary.csv (MoE / one dense FFN time at the largest batch; ideal = k) and
DIR/moe_check.csv (batched == per-token reference on this device, with and without drops).
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

from engine import moe  # noqa: E402
from engine.device import job_device, runtime_device_name  # noqa: E402


CHECKS = [  # (tokens, k, capacity factor or None): 3 tokens top-1 leaves experts empty
    (96, 2, None), (96, 2, 0.75), (3, 1, None)]


def check_rows(device, dtype, methods) -> list[dict]:
    """Batched layer vs the per-token reference at small sizes: dropless, with drops, and
    with empty expert groups."""
    rows = []
    g = torch.Generator().manual_seed(1)
    d, h, E = 64, 256, 8
    gate = torch.randn(d, E, generator=g) / math.sqrt(d)
    ex = moe.Experts.random(E, d, h, seed=2)
    for tokens, k, cf in CHECKS:
        x = torch.randn(tokens, d, generator=g)
        r = moe.route(x, gate, k)
        cap = None if cf is None else moe.expert_capacity(tokens, E, cf, k)
        c = moe.apply_capacity(r.expert, E, cap)
        ref = moe.moe_forward_reference(x.double(), moe.Experts(ex.w1.double(), ex.w2.double()),
                                        r.expert, r.weight.double(), c.keep)
        for method in methods:
            row = {"device": runtime_device_name(device), "dtype": str(dtype).replace("torch.", ""),
                   "method": method, "tokens": tokens, "k": k, "experts": E,
                   "capacity": cap if cap is not None else "dropless",
                   "dropped_assignments": int(c.dropped.sum()),
                   "empty_experts": int((c.load == 0).sum())}
            try:
                out = moe.moe_forward(x.to(device, dtype), moe.Experts(ex.w1.to(device, dtype),
                                      ex.w2.to(device, dtype)), r.expert.to(device),
                                      r.weight.to(device, dtype), c.keep.to(device), method=method)
                err = (out.double().cpu() - ref).abs().max().item()
                scale = ref.abs().max().item()
                tol = (2e-2 if dtype in (torch.bfloat16, torch.float16) else 1e-4) * max(scale, 1.0)
                row.update(status="ok", max_abs_err=err, ref_max_abs=scale, tolerance=tol,
                           agrees=bool(err <= tol))
            except Exception as exc:  # report, do not hide
                row.update(status=f"unavailable: {str(exc).splitlines()[0][:160]}")
            rows.append(row)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke test)")
    ap.add_argument("--d-model", type=int, default=2048)
    ap.add_argument("--max-batch", type=int, default=16384)
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--min-run-time", type=float, default=0.2)
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

    check = check_rows(device, getattr(torch, args.dtype), moe.METHODS)
    pd.DataFrame(check).to_csv(args.out / "moe_check.csv", index=False)
    print(pd.DataFrame(check).to_string(index=False), flush=True)

    spec = moe.SweepSpec(d_model=args.d_model, ffn_mult=4, experts=8, k=2,
                         batches=moe.powers_of_two(1, args.max_batch), dtype=args.dtype,
                         min_run_time=args.min_run_time)
    rows = []
    for row in moe.timing_sweep_rows(spec):
        row["date_utc"] = moe.now_utc()
        rows.append(row)
        pd.DataFrame(rows).to_csv(args.out / "moe_timing.csv", index=False)  # keep partial results
        if row.get("status") == "ok":
            print(f"{row['batch']:>6} {row['variant']:<13} {row['time_ms']:9.4f} ms "
                  f"x{row['ratio_vs_dense_1x']:.3f}", flush=True)
        else:
            print(f"{row['batch']:>6} {row['variant']:<13} {row['status']}", flush=True)
    summary = moe.sweep_summary(rows)
    for s in summary:
        s.update(device=rows[0]["device"], dtype=args.dtype, d_model=args.d_model,
                 target=2.35, meets_target=bool(s["ratio_vs_dense_1x"] <= 2.35))
    pd.DataFrame(summary).to_csv(args.out / "moe_summary.csv", index=False)
    print(pd.DataFrame(summary).to_string(index=False))
    print(f"total {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
