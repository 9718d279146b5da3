"""Host cost of one lab-bsr call, and what the backend registry picks (CUDA only).

    python3 benchmarks/bsr_launch.py --out DIR

For b64 at several sparsities (n = 8192, k = 512, fp16): the preset configuration the
registry uses (``preset_config``), then per configuration (the preset and the one-row
TMA kernel) the host time per call when calls are queued without waiting
("launch_us": Python + Triton launch, what a page pays when the GPU keeps up), the
per-call time with a synchronisation after each call ("synced_us"), and the GPU time
(``graph_time``). Also checks a pattern with split rows through the "H" preset (the
launcher falls back to full-width stores there). Writes DIR/bsr_launch.csv.
"""
from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bsr_bench import write_csv  # noqa: E402  (the sweep's CSV writer)
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--calls", type=int, default=300)
    args = p.parse_args()
    import torch
    import triton

    from engine.sparse.formats import SimpleSpec, get_backend
    from engine.sparse.kernels import bsr_matmul as lab

    if not torch.cuda.is_available():
        print("bsr_launch.py needs a CUDA device")
        return 2
    meta = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__,
            "triton": triton.__version__,
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")}
    print(meta, flush=True)
    n, k, blk = 8192, 512, 64
    b = torch.randn(n, k, device="cuda").half()
    y = torch.empty(n, k, device="cuda", dtype=torch.float16)
    rows = []
    for s in (0.3, 0.5, 0.9, 0.95):
        a = lab.BsrMatrix.random(n, n, blk, 1 - s, dtype=torch.float16, device="cuda",
                                 seed=int(s * 1000) + blk)
        preset = lab.preset_config(a, b)
        for label in (preset.label(), "tma n128 g1 N w4 s3"):
            cfg = lab.Config.from_label(label)

            def call():
                return lab.bsr_matmul(a, b, config=cfg, out=y)

            call()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.calls):
                call()
            t_launch = (time.perf_counter() - t0) / args.calls
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(args.calls // 3):
                call()
                torch.cuda.synchronize()
            t_sync = (time.perf_counter() - t0) / (args.calls // 3)
            gpu = lab.graph_time(call)[0] * 1e-3
            err = float((y.double() - lab.bsr_matmul_reference(a, b).double()).norm()
                        / lab.bsr_matmul_reference(a, b).double().norm())
            row = {**meta, "block": blk, "sparsity": s, "config": label,
                   "preset": label == preset.label(), "launch_us": t_launch * 1e6,
                   "synced_us": t_sync * 1e6, "gpu_us": gpu * 1e6, "rel_err": err}
            print(row, flush=True)
            rows.append(row)
    # the registry path (what the pages call): presets, no tuning
    backend = get_backend(lab.NAME)
    dense = torch.zeros(1024, 1024, device="cuda", dtype=torch.float16)
    dense[:256, :128] = torch.randn(256, 128, device="cuda").half()
    prepared = backend.prepare(dense, SimpleSpec(device="cuda", dtype="float16",
                                                 shape=(1024, 1024), block=64))
    x = torch.randn(1024, 16, device="cuda").half()
    got = backend.matmul(prepared, x)
    reg_err = float((got.double() - dense.double() @ x.double()).norm()
                    / (dense.double() @ x.double()).norm())
    # split rows through the "H" preset: one long row among short ones
    keep = torch.zeros(n // blk, n // blk, dtype=torch.bool)
    keep[:, :2] = True
    keep[5, :] = True
    dense_a = torch.randn(n, n, device="cuda").half() * keep.repeat_interleave(blk, 0).repeat_interleave(blk, 1).cuda()
    a = lab.BsrMatrix.from_dense(dense_a, blk)
    cfg = lab.Config.from_label("pers n256 o1 H w4 s9")
    out = lab.bsr_matmul(a, b, config=cfg, split="auto")
    ref = lab.bsr_matmul_reference(a, b).double()
    split_err = float((out.double() - ref).norm() / ref.norm())
    extra = {**meta, "block": blk, "config": "registry (presets) / split rows via H",
             "rel_err": max(reg_err, split_err),
             "note": f"registry err {reg_err:.1e}; split rows {lab.auto_split_len(a)} "
                     f"per segment, err {split_err:.1e}"}
    print(extra, flush=True)
    rows.append(extra)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    write_csv(out / "bsr_launch.csv", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
