"""Launch lab-bsr a few times on one benchmark point, for a profiler (ncu) to catch.

    ncu -k regex:bsr_mm --launch-skip 2 --launch-count 1 \\
        python3 benchmarks/bsr_profile.py --block 64 --sparsity 0.9 --bench-csv DIR/bsr_bench.csv

The configuration is the one bsr_bench.py chose for that point (read from its CSV),
or --config "ptr n128 g1 N w4 s3". Also launches dense torch.matmul once for comparison.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--block", type=int, default=64)
    p.add_argument("--sparsity", type=float, default=0.9)
    p.add_argument("--n", type=int, default=8192)
    p.add_argument("--k", type=int, default=512)
    p.add_argument("--bench-csv", default="")
    p.add_argument("--config", default="")
    p.add_argument("--launches", type=int, default=4)
    args = p.parse_args()
    import torch

    from engine.sparse.kernels import bsr_matmul as lab

    label = args.config
    if not label and args.bench_csv:
        from engine.bench.bsr_results import load_bsr_bench, sweep_rows

        rows = sweep_rows(load_bsr_bench(args.bench_csv))  # old and new CSVs alike
        hit = rows[(rows["method"] == "lab-bsr") & (rows["block"] == args.block)
                   & ((rows["sparsity"] - args.sparsity).abs() < 1e-9)]
        label = str(hit["config"].iloc[0]) if len(hit) else ""
    cfg = lab.Config.from_label(label) if label else lab.DEFAULT_CONFIG[args.block]
    seed = int(args.sparsity * 1000) + args.block
    a = lab.BsrMatrix.random(args.n, args.n, args.block, 1 - args.sparsity, dtype=torch.float16,
                             device="cuda", seed=seed)
    b = torch.randn(args.n, args.k, device="cuda", dtype=torch.float16)
    y = torch.empty(args.n, args.k, device="cuda", dtype=torch.float16)
    for _ in range(args.launches):
        lab.bsr_matmul(a, b, config=cfg, out=y)
    torch.matmul(a.to_dense(), b)
    torch.cuda.synchronize()
    print("profiled", cfg.label(), "nnz blocks", a.nnz_blocks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
