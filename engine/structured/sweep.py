"""The timing sweep of /structured-matrices: apply time of every family against dense
and magnitude-pruned sparse at equal parameters, per batch and dtype."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from engine.structured.operators import (FAMILY_LABELS, Butterfly, Circulant, Dense, LowRank,
                                         MagnitudeSparse, Monarch, StructuredMatrix, Toeplitz,
                                         is_pow2)
from engine.sparse.formats import DTYPE_BYTES
from engine.validate import check_choice, check_float, check_int

# The page's widgets, from here: sizes, batches, dtypes, rank and Monarch blocks (lo, hi).
SWEEP_SIZES = (256, 1024, 4096, 8192)
BATCHES = (1, 4, 16, 64, 256, 1024, 4096)
DTYPES = ("float32", "float16")
RANK_LIMITS = (1, 1024)          # and at most n / 2
BLOCK_LIMITS = (2, 128)          # Monarch blocks b, with b^2 dividing n


@dataclass(frozen=True)
class SweepSpec:
    """What the timing sweep measures: every family at size n vs dense and sparse."""

    n: int = 8192
    batches: tuple[int, ...] = (1, 16, 256, 4096)
    dtypes: tuple[str, ...] = ("float32", "float16")
    rank: int = 32
    monarch_blocks: int = 64
    repeats: int = 15
    max_total_s: float = 2.0
    seed: int = 0

    def __post_init__(self):
        check_int("n", self.n, 16, 65536)
        if not is_pow2(self.n):
            raise ValueError(f"n: expected a power of 2 (butterfly, Monarch), got {self.n}")
        if not self.batches:
            raise ValueError("batches: expected at least one batch size, got none")
        for b in self.batches:
            check_int("batch", b, 1, 65536)
        for d in self.dtypes:
            check_choice("dtype", d, ("float32", "float16", "bfloat16"))
        check_int("rank", self.rank, 1, self.n)
        Monarch.check_blocks(self.n, self.monarch_blocks)
        check_int("repeats", self.repeats, 1, 1000)
        check_float("max_total_s", self.max_total_s, 0.001, 60)

    @classmethod
    def from_widgets(cls, n, batches, dtypes, rank, blocks) -> "SweepSpec":
        """The page's widgets -> a spec (page timing: 15 runs within 1 s a row)."""
        n = check_choice("size n", n, SWEEP_SIZES)
        if not isinstance(batches, list) or not batches:
            raise ValueError(f"batches: expected at least one of {BATCHES}, got {batches!r}")
        batches = tuple(sorted({check_choice("batch", b, BATCHES) for b in batches}))
        if not isinstance(dtypes, list) or not dtypes:
            raise ValueError(f"dtypes: expected float32 and/or float16, got {dtypes!r}")
        dtypes = tuple(check_choice("dtype", d, DTYPES) for d in dtypes)
        rank = check_int("rank", rank, RANK_LIMITS[0], min(RANK_LIMITS[1], n // 2))
        blocks = check_int("Monarch blocks", blocks, *BLOCK_LIMITS)
        return cls(n=n, batches=batches, dtypes=dtypes, rank=rank, monarch_blocks=blocks,
                   repeats=15, max_total_s=1.0)

    def memory_bytes(self, device_type: str = "cpu") -> int:
        """Estimated peak bytes of host memory, calibrated on CPU runs of whole sweeps
        (fp32: 23-27 bytes per n^2 entry, 43 per batch x n entry; fp32 + fp16 at n = 256,
        batch 4096: 56 MB): per dtype, 8 of its elements per matrix entry (each operator's
        values drawn in float64, its copy, the sparse indices) and, on the CPU, 12 per
        entry of the largest batch (input, output and the butterfly's and Monarch's
        temporaries); on a GPU the batches are the GPU's."""
        n, b = self.n, max(self.batches)
        batch = 12 * b * n if device_type == "cpu" else 0
        return sum(DTYPE_BYTES[d] * (8 * n * n + batch) for d in self.dtypes)

    def operators(self) -> list[tuple[str, StructuredMatrix]]:
        """(name, operator) with random values: time depends on the structure, not on the values."""
        n, s = self.n, self.seed
        low = LowRank.random(n, self.rank, s)
        mon = Monarch.random(n, self.monarch_blocks, s)
        return [
            ("dense", Dense.random(n, s)),
            ("lowrank", low),
            ("monarch", mon),
            ("butterfly", Butterfly.random(n, s)),
            ("circulant", Circulant.random(n, s)),
            ("toeplitz", Toeplitz.random(n, s)),
            ("sparse@lowrank", MagnitudeSparse.random(n, low.n_params, s)),
            ("sparse@monarch", MagnitudeSparse.random(n, mon.n_params, s)),
        ]

    @property
    def total(self) -> int:
        return len(self.batches) * len(self.dtypes) * 8


def default_timer(call: Callable[[], object], task, spec: SweepSpec):
    """A Measurement of call() with the lab's timer (engine.bench.timer: warm-up, CUDA
    synchronisation, torch.utils.benchmark; at most ``spec.repeats`` runs in
    ``spec.max_total_s``)."""
    from engine.bench.timer import measure

    return measure(call, repeats=spec.repeats, max_total_s=spec.max_total_s, task=task)


def timing_sweep(spec: SweepSpec, device: str = "cpu", device_name: str = "",
                 timer: Callable | None = None) -> Iterator[dict]:
    """Yield one row per (dtype, batch, operator): apply time vs dense at equal batch.

    Rows: family, label, config, n, batch, dtype, device, params, flops, theoretical_speedup
    (dense FLOPs / FLOPs), the Measurement's columns (op, backend, method, runs, median_s,
    iqr_s, noisy: the lab's one rule), speedup_vs_dense (same dtype), speedup_vs_dense_fp32,
    efficiency (speedup / theoretical), status ("ok" or "unavailable: <reason>").
    ``timer(call, task, spec)`` returns an engine.bench.measurement.Measurement.
    """
    import torch

    from engine.bench.measurement import Task
    from engine.sparse.formats import torch_dtype

    timer = timer or default_timer
    ops = spec.operators()
    dense_t: dict[tuple[str, int], float] = {}
    dtypes = sorted(spec.dtypes, key=lambda d: d != "float32")  # fp32 first: others compare to it
    for dtype in dtypes:
        closures: dict[str, Callable | str] = {}
        for name, op in ops:
            try:
                closures[name] = op.torch_apply(device, dtype)
            except Exception as exc:  # e.g. sparse half on CPU
                closures[name] = f"unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        for batch in spec.batches:
            g = torch.Generator(device="cpu").manual_seed(spec.seed + batch)
            x = torch.randn(batch, spec.n, generator=g).to(device=device, dtype=torch_dtype(dtype))
            dense_flops = 2.0 * spec.n * spec.n * batch
            for name, op in ops:
                family = op.family
                row = {"family": family, "name": name, "label": FAMILY_LABELS[family], "config": op.config,
                       "n": spec.n, "batch": batch, "dtype": dtype, "device": device,
                       "device_name": device_name, "params": int(op.n_params),
                       "storage_bytes": int(op.storage_bytes(2 if dtype != "float32" else 4)),
                       "flops": float(op.flops(batch)),
                       "theoretical_speedup": dense_flops / float(op.flops(batch)),
                       "median_s": None, "iqr_s": None, "noisy": None, "speedup_vs_dense": None,
                       "speedup_vs_dense_fp32": None, "efficiency": None, "status": "ok",
                       "torch": torch.__version__}
                fn = closures[name]
                if isinstance(fn, str):
                    row["status"] = fn
                    yield row
                    continue
                task = Task(op="structured-apply", backend=name, dims={"n": spec.n, "batch": batch},
                            dtype=dtype, device=device.split(":")[0], device_name=device_name,
                            versions={"torch_version": torch.__version__})
                try:
                    with torch.no_grad():
                        m = timer(lambda: fn(x), task, spec)
                except Exception as exc:
                    row["status"] = f"unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
                    yield row
                    continue
                row.update({k: v for k, v in m.row().items() if k not in ("device",)})
                med = m.median_s
                if name == "dense":
                    dense_t[(dtype, batch)] = med
                if (dtype, batch) in dense_t:
                    row["speedup_vs_dense"] = dense_t[(dtype, batch)] / med
                    row["efficiency"] = row["speedup_vs_dense"] / row["theoretical_speedup"]
                if ("float32", batch) in dense_t:
                    row["speedup_vs_dense_fp32"] = dense_t[("float32", batch)] / med
                yield row
            del x


# ------------------------------------------------------------- committed sweeps
ROW_KEYS = frozenset({"family", "name", "label", "config", "n", "batch", "dtype", "device", "median_s",
                      "status", "speedup_vs_dense", "theoretical_speedup", "params", "flops"})


def committed_runs(root: Path | None = None) -> list[Path]:
    """Committed timing sweeps of structured matrices (engine.bench.reference, kind
    "structured-matrices": found by their columns, whatever the file is called), newest first."""
    from engine.bench.reference import references

    return [r.path for r in references("structured-matrices", root)]


def load_run(path: str | Path, root: Path | None = None) -> list[dict]:
    """Rows of a committed sweep (only runs the reference registry lists)."""
    from engine.bench.reference import find

    return check_rows(find(str(path), "structured-matrices", root).records())


def check_rows(rows) -> list[dict]:
    """Rows with every column of ROW_KEYS ("expected the columns ... got ..." otherwise);
    anything that is not a list of dicts counts as no rows."""
    rows = [r for r in (rows if isinstance(rows, list) else []) if isinstance(r, dict)]
    missing = [r for r in rows if not ROW_KEYS <= set(r)]
    if missing:
        raise ValueError(f"sweep rows: expected the columns {sorted(ROW_KEYS)}, got {sorted(missing[0])}")
    return rows


def run_date(path: str | Path, root: Path | None = None) -> str:
    """The committed sweep's own date ("2026-11-22 06:36"), "undated" when it has none."""
    from engine.bench.reference import find

    return find(str(path), "structured-matrices", root).date or "undated"


def run_label(path: Path, root: Path | None = None) -> str:
    """"reference: structured/structured_timing.csv (NVIDIA H100 80GB HBM3, 2026-11-22 06:36)"."""
    from engine.bench.reference import find

    ref = find(str(path), "structured-matrices", root)
    return f"reference: {ref.name} ({ref.device_name or 'unknown device'}, {ref.date or 'undated'})"
