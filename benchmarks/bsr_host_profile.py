"""Where lab-bsr's host time per call goes (CUDA): cProfile over repeated cached calls on
a matrix with one stored block per block row (the GPU does almost nothing), top functions by own time.

    python3 benchmarks/bsr_host_profile.py [--calls 3000] > profile.txt
"""
from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--calls", type=int, default=3000)
    p.add_argument("--graphs", action="store_true", help="with graph replay (default: direct launch)")
    args = p.parse_args()
    import torch

    from engine.sparse.kernels import bsr_matmul as lab

    n, k, blk = 8192, 512, 64
    keep = torch.eye(n // blk, dtype=torch.bool)  # one block per block row

    a = lab.BsrMatrix.from_dense(torch.randn(n, n).half().cuda(), blk, keep=keep.cuda())
    b = torch.randn(n, k, device="cuda").half()
    y = torch.empty(n, k, device="cuda", dtype=torch.float16)
    for _ in range(10):
        lab.bsr_matmul(a, b, out=y, autotune=False)
    torch.cuda.synchronize()
    from engine.sparse.kernels import bsr_launch
    bsr_launch.GRAPH_REPLAY = "--graphs" in sys.argv
    prof = cProfile.Profile()
    prof.enable()
    for _ in range(args.calls):
        lab.bsr_matmul(a, b, out=y, autotune=False)
    prof.disable()
    torch.cuda.synchronize()
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(18)
    print(f"{args.calls} calls of bsr_matmul(a, b, out=y), config "
          f"{lab.preset_config(a, b).label()}; times include cProfile's own overhead")
    print(buf.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
