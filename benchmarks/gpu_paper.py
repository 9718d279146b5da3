"""GPU evidence for /paper: all three native / sparse-matrix pairs trained side by side.

    python3 benchmarks/gpu_paper.py --out DIR           # vision 30 epochs, time series 60, text 6
    python3 benchmarks/gpu_paper.py --out DIR --quick   # tiny sizes, for a CPU check

Writes DIR/gpu_paper.csv (one row per task x seed x model x epoch, from
engine.layers.paper.train_rows: native, weight-tied sparse, free sparse; within a seed the same
initial weights, batches and Adam), DIR/gpu_paper_summary.csv (the paper's table form: best
metric, mean and standard deviation over seeds, and the mean epoch of best per model) and
DIR/gpu_paper_cost.csv (parameters, seconds per epoch, how steady they were, the time ratio to
native over steady seeds, max |output - native|). Each task and seed has a time budget; a seed
that runs out stops early and keeps its finished epochs (epochs_run in the summary says so).
Uses only the engine; no dash, no plotly. Finishes in under 8 minutes on an H200 (3 seeds).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pandas as pd  # noqa: E402
import torch  # noqa: E402

from engine.layers import paper as pp  # noqa: E402

FULL = {"vision": dict(epochs=30, budget_s=40), "timeseries": dict(epochs=60, budget_s=30),
        "text": dict(epochs=6, budget_s=45)}       # budget per seed
QUICK = {"vision": dict(epochs=2, budget_s=60, max_train=64), "timeseries": dict(epochs=2, budget_s=60, max_train=64),
         "text": dict(epochs=1, budget_s=60, max_train=32)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--quick", action="store_true", help="tiny sizes (CPU smoke test)")
    ap.add_argument("--device", default="auto", choices=["auto", "cuda", "cpu"])
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seeds", type=int, default=3, help="seeds per task (0, 1, ...)")
    args = ap.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    plan = QUICK if args.quick else FULL
    rows: list[dict] = []
    started = time.time()
    for task, cfg in plan.items():
        spec = pp.PaperSpec(tasks=(task,), epochs=cfg["epochs"], lr=args.lr, batch_size=64, seed=0,
                            seeds=args.seeds, max_train=cfg.get("max_train"), device=args.device)
        for seed, seed_rows in pp.task_seeds(spec, task):   # the task's data is loaded once
            t0 = time.time()
            for row in seed_rows:
                row["date_utc"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
                row["cuda"] = torch.version.cuda or "none"
                rows.append(row)
                print({k: row[k] for k in ("task", "seed", "variant", "epoch", "train_loss", "metric", "epoch_s",
                                            "max_abs_diff_vs_native")}, flush=True)
                pd.DataFrame(rows).to_csv(args.out / "gpu_paper.csv", index=False)   # keep partial results
                if time.time() - t0 > cfg["budget_s"] and row["variant"] == spec.variants[-1]:
                    print(f"{task} seed {seed}: time budget {cfg['budget_s']} s reached after epoch {row['epoch']}",
                          flush=True)
                    break
        # summaries after every task, so a run cut off later still leaves them
        pd.DataFrame(pp.paper_form(rows)).to_csv(args.out / "gpu_paper_summary.csv", index=False)
        pd.DataFrame(pp.cost_table(rows)).to_csv(args.out / "gpu_paper_cost.csv", index=False)
    print(pd.DataFrame(pp.paper_form(rows)).to_string(index=False))
    for kind, text in pp.verdict(rows):
        print(f"[{kind}] {text}")
    print(f"done: {len(rows)} rows in {time.time() - started:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
