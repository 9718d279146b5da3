"""Time chosen lab-bsr configurations at chosen points, each configuration in its own
process (a kernel that fails to compile, or hangs, costs only its own time limit).

    python3 benchmarks/bsr_configs.py --out DIR                       # persistent candidates, b64
    python3 benchmarks/bsr_configs.py --out DIR --configs "tma n128 g1 N w4 s3,pers n128 o2 N w4 s3"

A is n x n with random blocks (exact count, the seed of bsr_bench.py), B n x k, fp16.
Every configuration is first checked against bsr_matmul_reference on the same inputs
and then timed with ``graph_time`` (CUDA graphs, L2 evicted before each call), like
bsr_bench.py. The rows "dense" and "torch-bsr" are timed the same way in one more
process. Writes DIR/bsr_configs.csv (one row per configuration and point) and prints
each row as it comes. CUDA only.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bsr_bench import write_csv  # noqa: E402  (the sweep's CSV writer)

_WORKER = r"""
import json, sys, torch
from engine.sparse.kernels import bsr_matmul as lab
args = json.loads(sys.argv[1])
KERNELS = {"ptr": "bsr_mm_kernel", "tma": "bsr_mm_tma_kernel",
           "pers": "bsr_mm_persist_kernel"}


def ir_summary(label):
    # what the compiler made of the loop: multi-buffered shared memory (pipelined loads),
    # async warpgroup MMAs, warp specialisation; "" when the kernel cannot be found
    import re
    from engine.sparse.kernels import _bsr_triton as kern
    fn = getattr(kern, KERNELS.get(label.split()[0], ""), None)
    if fn is None:
        return ""
    found = []
    for cache in getattr(fn, "device_caches", {}).values():
        kcache = cache[0] if isinstance(cache, tuple) else cache
        for compiled in getattr(kcache, "values", lambda: [])():
            ttgir = getattr(compiled, "asm", {}).get("ttgir", "")
            bufs = sorted(set(re.findall(r"memdesc<(\d+)x\d+x\d+x", ttgir)))
            found.append(f"bufs={'/'.join(bufs) or '-'} tma_loads={ttgir.count('async_tma_copy_global_to_local')} "
                         f"regs={getattr(compiled, 'n_regs', '?')} spills={getattr(compiled, 'n_spills', '?')} "
                         f"async_dot={ttgir.count('isAsync = true')} ws={ttgir.count('ttg.warp_specialize')} "
                         f"smem={getattr(getattr(compiled, 'metadata', None), 'shared', '?')}")
    return "; ".join(sorted(set(found)))
n, k, blk, label = args["n"], args["k"], args["block"], args["config"]
b = torch.randn(n, k, device="cuda", generator=torch.Generator("cuda").manual_seed(1)).half()
for s in args["sparsities"]:
    a = lab.BsrMatrix.random(n, n, blk, 1.0 - s, dtype=torch.float16, device="cuda",
                             seed=int(s * 1000) + blk)  # the seed of bsr_bench.py
    row = {"block": blk, "sparsity": s, "config": label, "flush": args.get("flush", "write")}
    try:
        if label == "dense":
            dense = a.to_dense()
            fn = lambda: torch.matmul(dense, b)
            y = fn()
        elif label == "torch-bsr":
            t = a.to_torch()
            fn = lambda: torch.matmul(t, b)
            y = fn()
        else:
            cfg = lab.Config.from_label(label)
            out = torch.empty(n, k, dtype=b.dtype, device="cuda")
            fn = lambda: lab.bsr_matmul(a, b, config=cfg, out=out)
            out.fill_(float("nan"))
            y = fn().clone()
        ref = lab.bsr_matmul_reference(a, b).double()
        row["rel_err"] = float((y.double() - ref).norm() / ref.norm())
        med, q25, q75 = lab.graph_time(fn, flush=args.get("flush", "write"))
        row.update(us=med * 1e3, q25_us=q25 * 1e3, q75_us=q75 * 1e3, error="",
                   ir=ir_summary(label))
    except Exception as exc:
        row.update(error=f"{type(exc).__name__}: {str(exc)[:300]}")
    print("ROW " + json.dumps(row), flush=True)
"""


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--k", type=int, default=512)
    p.add_argument("--block", type=int, default=64)
    p.add_argument("--sparsities", default="0.5,0.75,0.9,0.95")
    p.add_argument("--configs", default="", help="comma-separated labels (default: the "
                   "presets for this block, then DEEP_CANDIDATES)")
    p.add_argument("--timeout", type=int, default=90, help="seconds per configuration")
    p.add_argument("--flush", default="write", help="comma-separated L2 states before each "
                   "call: write (the benchmarks' default), read, none (see graph_time)")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch
    import triton

    from engine.sparse.kernels import bsr_matmul as lab

    if not torch.cuda.is_available():
        print("bsr_configs.py needs a CUDA device")
        return 2
    labels = [c.strip() for c in args.configs.split(",") if c.strip()]
    if not labels:
        presets = [c.label() for _, c in lab.PRESETS[args.block]]
        labels = list(dict.fromkeys(presets + list(lab.DEEP_CANDIDATES[args.block])))
    meta = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
            "triton": triton.__version__,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "n": args.n, "k": args.k}
    print(meta, flush=True)
    sparsities = [float(s) for s in args.sparsities.split(",")]
    rows = []
    env = dict(os.environ, PYTHONPATH=f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}")
    flushes = [f.strip() for f in args.flush.split(",") if f.strip()]
    bad = [f for f in flushes if f not in lab.FLUSHES]
    if bad or not flushes:
        p.error(f"--flush: expected some of {lab.FLUSHES}, got {args.flush!r}")
    jobs = [(label, f) for f in flushes for label in ["dense", "torch-bsr"] + labels]
    for label, flush in jobs:
        job = {"n": args.n, "k": args.k, "block": args.block, "config": label,
               "sparsities": sparsities, "flush": flush}
        try:
            proc = subprocess.run([sys.executable, "-c", _WORKER, json.dumps(job)], cwd=ROOT,
                                  env=env, capture_output=True, text=True, timeout=args.timeout)
            got = [json.loads(x[4:]) for x in proc.stdout.splitlines() if x.startswith("ROW ")]
            if not got:
                got = [{"block": args.block, "sparsity": None, "config": label, "flush": flush,
                        "error": f"rc {proc.returncode}: {proc.stderr.strip()[-300:]}"}]
        except subprocess.TimeoutExpired:
            got = [{"block": args.block, "sparsity": None, "config": label, "flush": flush,
                    "error": f"timed out after {args.timeout} s"}]
        for r in got:
            print(r, flush=True)
            rows.append({**meta, **r})
    dense = {(r["sparsity"], r["flush"]): r.get("us") for r in rows if r["config"] == "dense"}
    for r in rows:
        ref = dense.get((r["sparsity"], r["flush"]))
        if r.get("us") and ref:
            r["speedup_vs_dense"] = ref / r["us"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "bsr_configs.csv", rows)
    for r in rows:
        if r.get("us"):
            print(f"{r['config']:24s} {r['flush']:5s} s={r['sparsity']:.2f} {r['us']:8.1f} us "
                  f"{r.get('speedup_vs_dense', float('nan')):5.2f}x err {r.get('rel_err', 0):.1e}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
