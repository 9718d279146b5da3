"""GPU evidence for /structured-matrices: apply time of every structured family vs dense
and vs sparse at equal parameters, n = 8192, batch 1 .. 4096, fp32 and fp16.

    python3 benchmarks/gpu_structured.py --out DIR            # the full sweep (CUDA)
    python3 benchmarks/gpu_structured.py --out DIR --quick    # tiny, runs on a CPU

Writes DIR/structured_matrices_timing.csv (one row per dtype x batch x operator, rewritten after
every row so a time-out keeps what finished) and DIR/structured_matrices_goal.csv (the
lab's goal speedups, measured on an H200, beside this run's). Uses only the engine (numpy, torch);
about 1-2 minutes on an H100.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from engine.structured import sweep, tables  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, help="folder for the CSVs")
    ap.add_argument("--quick", action="store_true", help="n = 256, batches 1 and 16 (a CPU check)")
    ap.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--batches", default="1,16,256,1024,4096")
    ap.add_argument("--dtypes", default="float32,float16")
    ap.add_argument("--rank", type=int, default=32)
    ap.add_argument("--blocks", type=int, default=64, help="Monarch blocks")
    ap.add_argument("--max-total-s", type=float, default=1.0, help="timing budget per measurement")
    args = ap.parse_args(argv)

    import torch

    if args.quick:
        args.n, args.batches, args.blocks, args.max_total_s = 256, "1,16", 16, 0.2
    if args.device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    else:
        device = args.device
    if device == "cuda" and not torch.cuda.is_available():
        print("no CUDA device; use --device cpu", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(0) if device == "cuda" else "CPU"
    spec = sweep.SweepSpec(n=args.n, batches=tuple(int(b) for b in args.batches.split(",")),
                           dtypes=tuple(args.dtypes.split(",")), rank=args.rank,
                           monarch_blocks=args.blocks, repeats=15, max_total_s=args.max_total_s)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    extra = {"date_utc": stamp, "cuda": torch.version.cuda or "",
             "tf32_matmul": bool(torch.backends.cuda.matmul.allow_tf32), "host_pid": os.getpid()}
    print(f"device {name} ({device}), torch {torch.__version__}, {spec}", flush=True)
    started = time.time()
    rows = []
    for row in sweep.timing_sweep(spec, device, name):
        rows.append({**row, **extra})
        pd.DataFrame(rows).to_csv(out / "structured_matrices_timing.csv", index=False)
        t = "-" if row["median_s"] is None else f"{1e3 * row['median_s']:.4g} ms"
        sp = "" if row["speedup_vs_dense"] is None else f"  {row['speedup_vs_dense']:.3g}x vs dense"
        print(f"[{len(rows)}/{spec.total} {time.time() - started:.0f}s] {row['dtype']} batch {row['batch']:>5} "
              f"{row['name']:<15} {t}{sp}  {row['status'] if row['status'] != 'ok' else ''}", flush=True)
    n_ref = args.n
    batch_ref = max(spec.batches)
    ref = pd.DataFrame(tables.reference_comparison(rows, n=n_ref, batch=batch_ref))
    ref.to_csv(out / "structured_matrices_goal.csv", index=False)
    print(ref.to_string(index=False))
    print(f"wrote {out / 'structured_matrices_timing.csv'} ({len(rows)} rows) in {time.time() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
