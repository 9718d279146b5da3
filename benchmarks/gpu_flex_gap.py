"""Where the lab's FlexAttention time differs from a bare run: an ablation (GPU).

    python3 benchmarks/gpu_flex_gap.py --out DIR

The attention sweep measured FlexAttention (sliding window 256, B=4, H=16, d=64,
bf16) 0.13-0.2 ms per call slower than a bare ``torch.compile(flex_attention)`` timed
with ``triton.testing.do_bench``. This script times the same call several ways so the
difference can be pinned on one thing:

    variants  bare-fresh   dynamo reset, torch.compile(flex_attention), a plain lambda,
                           create_block_mask; S = 4096 then 16384 (torch's default
                           compile: the second length recompiles with symbolic shapes)
              bare-static  the same with dynamic=False (one kernel per length)
              lab          dynamo reset, then the engine's path: masks.sliding_window,
                           attention.make_block_mask, compiled_flex(None), timer_threads
              lab-sweep    no reset: after compiling the sweep's other masks and lengths
                           first (as the sweep does), the engine's path again
    timers    do_bench     triton.testing.do_bench (per-call CUDA events, L2 flushed)
              lab          engine.bench.timer.measure (wall time of back-to-back calls)
              events       CUDA events around 50 back-to-back calls, per call
              host         wall time for 50 calls to return without a sync, per call
              kernels      torch.profiler: summed device time of the call's kernels

Writes DIR/flex_gap.csv (one row per variant, length and timer) and prints it.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from engine.attention import masks as M  # noqa: E402
from engine.attention.attend import (compiled_flex, make_block_mask, random_qkv,  # noqa: E402
                              timer_threads)
from engine.bench.timer import measure  # noqa: E402
from engine.runtime.device import runtime_device_name  # noqa: E402

SEQS = (4096, 16384)
WINDOW = 256
B, H, D = 4, 16, 64


def timings(fn, label: dict) -> list[dict]:
    from triton.testing import do_bench

    rows = []
    fn()
    torch.cuda.synchronize()
    rows.append({**label, "timer": "do_bench", "ms": float(do_bench(fn, warmup=25, rep=200))})
    t = measure(fn, repeats=10, device="cuda", warmup=1, max_total_s=5.0)
    rows.append({**label, "timer": "lab", "ms": t.median_s * 1e3, "number": t.number_per_run})
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(50):
        fn()
    end.record()
    torch.cuda.synchronize()
    rows.append({**label, "timer": "events", "ms": start.elapsed_time(end) / 50})
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(50):
        fn()
    host = (time.perf_counter() - t0) / 50 * 1e3
    torch.cuda.synchronize()
    rows.append({**label, "timer": "host", "ms": host})
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CUDA, ProfilerActivity.CPU]) as prof:
        for _ in range(10):
            fn()
        torch.cuda.synchronize()
    kernels = [e for e in prof.events() if e.device_type.name == "CUDA"]
    dev_ms = sum(e.device_time_total if hasattr(e, "device_time_total") else e.cuda_time_total
                 for e in kernels) / 1e3 / 10
    names = sorted({e.name[:60] for e in kernels})
    rows.append({**label, "timer": "kernels", "ms": dev_ms, "kernels_per_call": len(kernels) / 10,
                 "kernel_names": " | ".join(names)})
    for r in rows:
        print(f"{r['variant']:12s} S={r['seq_len']:6d} {r['timer']:9s} {r['ms']:8.4f} ms"
              + (f"  {r.get('kernels_per_call')} kernels: {r.get('kernel_names')}" if r["timer"] == "kernels" else ""),
              flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    import torch._dynamo
    from torch.nn.attention.flex_attention import create_block_mask, flex_attention

    device = torch.device("cuda")
    name = runtime_device_name(device)
    qkv = {s: random_qkv(B, H, s, D, "bfloat16", device, seed=1) for s in SEQS}
    compiled_flex(None)  # raise dynamo's recompile limit once (as the sweep does)

    def sliding(b, h, q_idx, kv_idx):
        return (q_idx >= kv_idx) & (q_idx - kv_idx < WINDOW)

    rows: list[dict] = []
    base = {"device_name": name, "torch_version": torch.__version__, "window": WINDOW,
            "batch": B, "heads": H, "head_dim": D, "dtype": "bfloat16"}
    for variant, dynamic in (("bare-fresh", None), ("bare-static", False)):
        torch._dynamo.reset()
        flex = torch.compile(flex_attention, dynamic=dynamic)
        for s in SEQS:
            q, k, v = qkv[s]
            bm = create_block_mask(sliding, None, None, s, s, device=device)
            rows += timings(lambda: flex(q, k, v, block_mask=bm), {**base, "variant": variant, "seq_len": s})

    torch._dynamo.reset()
    compiled_flex.cache_clear()
    with timer_threads():
        lab = compiled_flex(None)
        for s in SEQS:
            q, k, v = qkv[s]
            bm = make_block_mask(M.sliding_window(WINDOW), s, device, 128)
            rows += timings(lambda: lab(q, k, v, block_mask=bm), {**base, "variant": "lab", "seq_len": s})
        # as the sweep: other masks and lengths compiled first, then sliding window again
        for kind in ("longformer", "bigbird", "document"):
            for s in (1024, 2048):
                q, k, v = random_qkv(B, H, s, D, "bfloat16", device, seed=1)
                mask = M.build_mask(kind, s, {"w": WINDOW, "g": 4, "r": 2, "seed": 0, "docs": 4}, 128, device)
                lab(q, k, v, block_mask=make_block_mask(mask, s, device, 128))
        for s in SEQS:
            q, k, v = qkv[s]
            bm = make_block_mask(M.sliding_window(WINDOW), s, device, 128)
            rows += timings(lambda: lab(q, k, v, block_mask=bm), {**base, "variant": "lab-sweep", "seq_len": s})
    keys = list(dict.fromkeys(k for r in rows for k in r))
    with open(args.out / "flex_gap.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out / 'flex_gap.csv'} ({len(rows)} rows)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
