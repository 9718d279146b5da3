"""GPU evidence for /structured-sparsity: block sizes and 2:4 against dense.

    python3 benchmarks/gpu_structured_sparsity.py --out DIR            # the H100 sweep
    python3 benchmarks/gpu_structured_sparsity.py --out DIR --quick    # tiny, CPU smoke test

Default sweep (issue #7): A 8192 x 8192 fp16 times B 8192 x 512 at sparsity 0.5-0.95
with whole 16/32/64 blocks zero: dense vs torch CSR vs torch BSR vs the lab's Triton
kernel "lab-bsr" (each measured on the same matrix, dense first); and 2:4 (magnitude
pruned, exactly 50 %) vs dense at n = 4096, 8192, 16384 with k = 512 and with k = n
(square products, where cuSPARSELt's fixed per-call cost is amortised).

Writes, as rows finish (an interrupted run keeps them):
  DIR/structured_sparsity_timing.csv  one row per measurement (benchmark CSV schema + "part")
  DIR/break_even_structured.csv       break-even sparsity per block size and backend
  DIR/efficiency_structured.csv       speedup, theoretical 1/density and their ratio
Uses only the engine (no dash, no plotly). Stops starting new measurements after
--max-seconds (default 165) so it ends inside 3 minutes; what it skipped is printed.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from engine.bench.schema import column_order  # noqa: E402
from engine.runtime.device import job_device, runtime_device_name  # noqa: E402
from engine.bench.pattern_sweep import (StructuredSweepConfig, break_even_by_block,  # noqa: E402
                                     efficiency_table, structured_sweep)

GPU_BACKENDS = ("torch-dense", "torch-csr", "torch-bsr", "lab-bsr")


def _ints(text: str) -> tuple[int, ...]:
    return tuple(int(v) for v in text.replace(",", " ").split())


def _floats(text: str) -> tuple[float, ...]:
    return tuple(float(v) for v in text.replace(",", " ").split())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke test)")
    ap.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    ap.add_argument("--size", type=int, default=8192)
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--dtype", default=None, help="default float16 on a GPU, float32 on a CPU")
    ap.add_argument("--blocks", type=_ints, default=(16, 32, 64))
    ap.add_argument("--sparsities", type=_floats, default=(0.5, 0.6, 0.7, 0.8, 0.9, 0.95))
    ap.add_argument("--nm-sizes", type=_ints, default=(4096, 8192, 16384))
    ap.add_argument("--backends", default=",".join(GPU_BACKENDS),
                    help="block-part backends, comma-separated ('all' = every registered one)")
    ap.add_argument("--no-square", dest="nm_square", action="store_false",
                    help="2:4 only at k (default: also at k = n, square products)")
    ap.add_argument("--repeats", type=int, default=20)
    ap.add_argument("--max-seconds", type=float, default=165.0)
    args = ap.parse_args(argv)

    dev = job_device(args.device)
    dtype = args.dtype or ("float16" if dev.type == "cuda" else "float32")
    if args.quick:
        args.size, args.k, args.blocks, args.nm_sizes = 128, 32, (16, 32), (64, 128)
        args.sparsities, args.repeats = (0.5, 0.9), 3
    backends = None if args.backends == "all" else tuple(b for b in args.backends.split(",") if b)
    config = StructuredSweepConfig(size=args.size, k=args.k, sparsities=args.sparsities,
                                   blocks=args.blocks, dtype=dtype, device=dev.type,
                                   repeats=args.repeats, nm_sizes=args.nm_sizes, backends=backends,
                                   nm_square=args.nm_square)
    args.out.mkdir(parents=True, exist_ok=True)
    name = runtime_device_name(dev)
    print(f"device: {name}; {config.total} rows planned; dtype {dtype}; "
          f"backends {config.block_backends}", flush=True)

    from engine.sparse.formats import OPTIONAL_BACKEND_ERRORS, backend_names

    print(f"registered backends: {backend_names()}; optional import errors: {OPTIONAL_BACKEND_ERRORS}",
          flush=True)
    started = time.time()
    fields = column_order() + ["part"]
    rows = []
    timing_path = args.out / "structured_sparsity_timing.csv"
    with timing_path.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        sweep = structured_sweep(config, device_name=name, nm_first=True)
        for row in sweep:
            rows.append(row)
            writer.writerow(row)
            fh.flush()
            speed = row.get("speedup")
            speed_txt = f"{speed:.3f}x" if isinstance(speed, float) else "-"
            print(f"[{len(rows):3d}/{config.total}] {time.time() - started:6.1f} s  {row['part']:5s} "
                  f"{row['backend']:12s} b{row['block']:<4} n={row['rows']} k={row['k']} s={row['sparsity']:.2f} "
                  f"{row['status']:11s} {speed_txt} {row.get('message') or ''}"[:200], flush=True)
            if time.time() - started > args.max_seconds:
                print(f"time budget of {args.max_seconds:.0f} s reached: {config.total - len(rows)} "
                      "planned rows not measured", flush=True)
                sweep.close()
                break
    frame = pd.DataFrame(rows)
    break_even_by_block(frame).to_csv(args.out / "break_even_structured.csv", index=False)
    efficiency_table(frame).to_csv(args.out / "efficiency_structured.csv", index=False)
    ok = frame[frame["status"] == "ok"] if len(frame) else frame
    print(f"done: {len(rows)} rows ({len(ok)} ok) in {time.time() - started:.1f} s -> {args.out}")
    if len(ok):
        summary = ok[ok["backend"] != "torch-dense"].pivot_table(
            index=["part", "backend", "block"], columns="sparsity", values="speedup", aggfunc="median")
        print(summary.round(3).to_string())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
