"""GPU evidence for /isomorphism: native conv (cuDNN) vs the same layer as a CSR matrix.

    python3 benchmarks/gpu_isomorphism.py --out DIR           # channels 1,16,64; image 32,64; batch 32,128,256
    python3 benchmarks/gpu_isomorphism.py --out DIR --quick   # tiny sizes, for a CPU check

Writes DIR/gpu_isomorphism.csv: one row per (channels, image, batch) from
engine.layers.lowering.conv_timing_sweep (3x3 kernel, padding 1, C_in = C_out, float32;
median and IQR of repeated synchronised runs after warm-up; the CSR matrix is
torch.sparse_csr on the same device; max |native - matrix| checks they agree) and
DIR/gpu_isomorphism_summary.csv (matrix / native time by channels and image at the
largest batch). Uses only the engine; no dash, no plotly.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from engine.layers import lowering  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke test)")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--repeats", type=int, default=None)
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.quick:
        channels, images, batches, repeats = [1, 4], [8, 16], [2, 4], args.repeats or 3
    else:
        channels, images, batches, repeats = [1, 16, 64], [32, 64], [32, 128, 256], args.repeats or 20
    started = time.time()
    rows = []
    for row in lowering.conv_timing_sweep(channels, images, batches, device=args.device, repeats=repeats):
        row["date_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
        row["cuda"] = torch.version.cuda or "none"
        rows.append(row)
        print({k: row.get(k) for k in ("channels", "image", "batch", "native_median_s", "matrix_median_s",
                                        "matrix_over_native", "max_abs_diff", "status")}, flush=True)
        pd.DataFrame(rows).to_csv(args.out / "gpu_isomorphism.csv", index=False)  # keep partial results
    frame = pd.DataFrame(rows)
    ok = frame[frame["status"] == "ok"]
    if not ok.empty:
        top = ok[ok["batch"] == ok["batch"].max()]
        summary = top.pivot_table(index="channels", columns="image", values="matrix_over_native")
        summary.columns = [f"matrix_over_native_{c}" for c in summary.columns]
        summary = summary.reset_index()
        summary["batch"] = int(ok["batch"].max())
        summary["device_name"] = ok["device_name"].iloc[0]
        summary.to_csv(args.out / "gpu_isomorphism_summary.csv", index=False)
        print(summary.to_string(index=False))
    print(f"done: {len(frame)} rows in {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
