"""GPU evidence for /paradox: dense vs CSR / COO / BSR on one device, sparsity 0.5 to 0.999.

    python3 benchmarks/gpu_paradox.py --out DIR            # H100 sweep of issue #4 (< 3 min)
    python3 benchmarks/gpu_paradox.py --out DIR --quick    # tiny sizes, for a CPU check

The full sweep: 8192 x 8192, float32 and float16, uniform random sparsity
0.5 / 0.7 / 0.9 / 0.95 / 0.99 / 0.995 / 0.999, SpMV and SpMM with k = 512, backends
torch-dense / torch-csr / torch-coo / torch-bsr (block 32). Same engine as the
page and the CLI (engine.bench.paradox_sweep); equivalent to

    python -m engine.bench paradox --device cuda --sizes 8192 --dtypes float32,float16 \
        --ops spmv,spmm --k 512 --block 32 --repeats 15 --out DIR/paradox_h100.csv

Writes, as rows finish (a timeout keeps what finished):
  DIR/paradox_<gpu>.csv          every row (schema: engine/bench/schema.py)
  DIR/paradox_break_even.csv     break-even sparsity per backend / op / dtype
  DIR/paradox_vs_chapter.csv     measured speedup at 50/90/95/99 % beside the chapter's
  DIR/paradox_env.txt            device, versions, command, date, seconds, truncation note
Uses only the engine (torch, numpy, scipy, pandas); no dash or plotly.
"""
from __future__ import annotations

import argparse
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402

from engine.bench.schema import column_order  # noqa: E402
from engine.bench.sweeps import ParadoxConfig, break_even, paradox_sweep  # noqa: E402
from engine.runtime.device import job_device, package_version, runtime_device_name  # noqa: E402
from engine.runtime.store import to_csv_text  # noqa: E402

SPARSITIES = (0.5, 0.7, 0.9, 0.95, 0.99, 0.995, 0.999)
BACKENDS = ("torch-dense", "torch-csr", "torch-coo", "torch-bsr")
CHAPTER = {0.5: (2.0, 1.1), 0.9: (10.0, 1.8), 0.95: (20.0, 2.3), 0.99: (100.0, 3.5)}


def configs(device: str, quick: bool) -> list[ParadoxConfig]:
    """fp32 first (the headline), then fp16; each a full SpMV + SpMM sweep."""
    size, k, repeats = (256, 32, 5) if quick else (8192, 512, 15)
    return [ParadoxConfig(sizes=(size,), sparsities=SPARSITIES, backends=BACKENDS, dtypes=(dt,),
                          ops=("spmv", "spmm"), k=k, pattern="uniform", block=32, repeats=repeats,
                          device=device) for dt in ("float32", "float16")]


def vs_chapter(frame: pd.DataFrame) -> pd.DataFrame:
    ok = frame[(frame["status"] == "ok") & (frame["backend"] != "torch-dense")]
    rows = []
    for (backend, op, dtype), g in ok.groupby(["backend", "op", "dtype"]):
        med = g.groupby("sparsity")["speedup"].median()
        for s, (theory, actual) in CHAPTER.items():
            rows.append({"backend": backend, "op": op, "dtype": dtype, "sparsity": s,
                         "chapter_theoretical": theory, "chapter_actual": actual,
                         "measured_speedup": float(med.get(s, float("nan"))),
                         "device_name": g["device_name"].iloc[0]})
    return pd.DataFrame(rows)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke test)")
    ap.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    ap.add_argument("--budget-s", type=float, default=165.0,
                    help="stop starting new rows after this many seconds (rows so far are kept)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    dev = job_device(args.device)
    name = runtime_device_name(dev)
    slug = re.sub(r"[^a-z0-9]+", "_", name.lower().replace("nvidia ", "")).strip("_")[:40] or "device"
    rows_path = args.out / f"paradox_{slug}.csv"
    started = time.time()
    rows: list[dict] = []
    note = "complete"
    for config in configs(dev.type, args.quick):
        total = config.total
        for i, row in enumerate(paradox_sweep(config, device_name=name), 1):
            rows.append(row)
            frame = pd.DataFrame(rows)
            frame = frame[[c for c in column_order() if c in frame]]
            rows_path.write_text(to_csv_text(frame))
            print(f"[{time.time() - started:6.1f} s] {config.dtypes[0]} {i}/{total} {row['backend']:<12} "
                  f"{row['op']} s={row['sparsity']:<6g} {row['status']:<11} "
                  f"median={row.get('median_s') or float('nan'):.3g} s speedup={row.get('speedup') or float('nan'):.3g}",
                  flush=True)
            if time.time() - started > args.budget_s:
                note = f"truncated at {len(rows)} rows: time budget {args.budget_s:.0f} s reached"
                break
        if note != "complete":
            break
    frame = pd.DataFrame(rows)
    be = break_even(frame)
    (args.out / "paradox_break_even.csv").write_text(to_csv_text(be))
    (args.out / "paradox_vs_chapter.csv").write_text(to_csv_text(vs_chapter(frame)))
    import torch

    env = [f"date_utc={time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}",
           f"device={name}", f"torch={torch.__version__}", f"cuda={torch.version.cuda}",
           f"scipy={package_version('scipy')}", f"command={' '.join(sys.argv)}",
           f"rows={len(rows)}", f"seconds={time.time() - started:.1f}", f"status={note}"]
    (args.out / "paradox_env.txt").write_text("\n".join(env) + "\n")
    print("\n".join(env))
    print(be.to_string(index=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
