"""Headless sweeps: ``python -m engine.bench paradox --device cuda --sizes 8192 --out results.csv``.

With ``--matrix FILE`` (.mtx, .npz, .npy, .safetensors with ``--tensor NAME``) the sweep
runs on that matrix instead of generated ones, as /your-matrix does (see
engine.bench.matrix_sweep.run_matrix_cli): calibration, roofline, every backend, advice.

Rows are written to the CSV as they finish (so an interrupted run keeps them), a
progress bar goes to stderr, and with ``--store`` every row also lands in the
lab's run store (so it shows on /runs).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from engine.bench.schema import column_order
from engine.bench.sweeps import DEFAULT_BACKENDS, DEFAULT_SPARSITIES, ParadoxConfig, paradox_sweep
from engine.sparse.formats import DTYPES, OPS, PATTERNS


def _list(kind):
    def parse(text: str):
        try:
            return tuple(kind(v) for v in text.replace(",", " ").split() if v)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"expected a list of {kind.__name__}, got {text!r}") from exc
    return parse


def progress_bar(done: int, total: int, started: float, label: str = "", width: int = 30) -> str:
    """One line like ``[#######.......]  7/30  12.3 s  torch-csr spmv ...``."""
    filled = int(width * done / max(total, 1))
    return (f"\r[{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
            f"{time.time() - started:6.1f} s  {label[:60]:<60}")


def write_rows_as_they_come(rows_iter, out: Path, order: list[str], store, run_id, total: int,
                            label, quiet: bool = False) -> tuple[list[dict], str]:
    """Consume a sweep: each row goes to the store (if any) and the CSV is rewritten (a
    crash keeps what finished), with a progress bar on stderr. Returns (rows, status):
    "done", or "cancelled" on Ctrl-C."""
    import pandas as pd

    from engine.runtime.store import to_csv_text

    out.parent.mkdir(parents=True, exist_ok=True)
    started, rows, status = time.time(), [], "done"
    try:
        for row in rows_iter:
            rows.append(row)
            if store is not None:
                store.append(run_id, row)
            frame = pd.DataFrame(rows)
            out.write_text(to_csv_text(frame[[c for c in order if c in frame]
                                             + [c for c in frame if c not in order]]))
            if not quiet:
                sys.stderr.write(progress_bar(len(rows), total, started, label(row)))
                sys.stderr.flush()
    except KeyboardInterrupt:
        status = "cancelled"
    finally:
        if store is not None:
            store.finish(run_id, status)
    if not quiet:
        sys.stderr.write("\n")
    return rows, status


def create_cli_run(kind: str, params: dict, device_name: str):
    """(store, run_id) of a new run for a CLI sweep of ``kind``, recorded like every job's:
    pid, host and process start time (engine.runtime.liveness.job_identity), so /runs can
    tell "died" (the process is gone) from "running"."""
    from engine.runtime.liveness import job_identity
    from engine.runtime.store import RunStore

    store = RunStore()
    run_id = store.create_run(kind, params={"source": "cli", **params},
                              meta={"device_name": device_name, **job_identity()})
    return store, run_id


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m engine.bench", description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="command", required=True)
    q = sub.add_parser("paradox", help="theoretical vs measured speedup of sparse formats")
    q.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    q.add_argument("--sizes", type=_list(int), default=(1024,), help="matrix sizes n (n x n), e.g. 1024,4096")
    q.add_argument("--sparsities", type=_list(float), default=DEFAULT_SPARSITIES)
    q.add_argument("--backends", type=_list(str), default=DEFAULT_BACKENDS)
    q.add_argument("--dtypes", type=_list(str), default=("float32",), help=f"of {', '.join(DTYPES)}")
    q.add_argument("--ops", type=_list(str), default=OPS)
    q.add_argument("--k", type=int, default=512, help="columns of B for spmm")
    q.add_argument("--pattern", default="uniform", choices=PATTERNS)
    q.add_argument("--block", type=int, default=32)
    q.add_argument("--repeats", type=int, default=20)
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--out", type=Path, required=True, help="CSV file to write")
    q.add_argument("--store", action="store_true", help="also store the run in the lab's run store")
    q.add_argument("--quiet", action="store_true", help="no progress bar")
    q.add_argument("--matrix", type=Path, default=None,
                   help="your own matrix (.mtx, .npz, .npy, .safetensors): measured instead of generated ones")
    q.add_argument("--tensor", default=None, help="with --matrix FILE.safetensors: the tensor's name")
    q.add_argument("--recalibrate", action="store_true", help="with --matrix: calibrate this device again")
    q.add_argument("--reordered-out", type=Path, default=None,
                   help="with --matrix: also write the matrix after reverse Cuthill-McKee (.mtx)")
    return p


def resolve_device(requested: str) -> str:
    if requested != "auto":
        return requested
    from engine.runtime.device import job_device

    return job_device("auto").type


def run_paradox(args) -> int:
    config = ParadoxConfig(sizes=args.sizes, sparsities=args.sparsities, backends=args.backends,
                           dtypes=args.dtypes, ops=args.ops, k=args.k, pattern=args.pattern,
                           block=args.block, repeats=args.repeats, device=resolve_device(args.device),
                           seed=args.seed)
    total = config.total
    store = run_id = None
    if args.store:
        from engine.runtime.device import job_device, runtime_device_name

        store, run_id = create_cli_run("paradox", {
            k: list(v) if isinstance(v, tuple) else v for k, v in vars(config).items()},
            runtime_device_name(job_device(config.device)))
    started = time.time()
    rows, status = write_rows_as_they_come(
        paradox_sweep(config), args.out, column_order(), store, run_id, total,
        lambda r: f"{r['backend']} {r['op']} {r['dtype']} s={r['sparsity']:g} {r['status']}",
        quiet=args.quiet)
    bad = sum(r["status"] not in ("ok", "reused") for r in rows)
    print(f"{len(rows)} rows ({bad} not ok) in {time.time() - started:.1f} s -> {args.out}")
    return 0 if status == "done" else 130


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "paradox" and args.matrix is not None:
            from engine.bench.matrix_sweep import run_matrix_cli

            return run_matrix_cli(args)
        if args.command == "paradox":
            return run_paradox(args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 2


if __name__ == "__main__":
    sys.exit(main())
