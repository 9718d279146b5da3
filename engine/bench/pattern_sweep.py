"""The structured-sparsity timing sweep: block sizes and 2:4 against dense, one row at a time.

Two parts, both built on the benchmark engine (``engine.bench``: its specs, timer,
row schema and ``paradox_sweep``) and the backend registry (``engine.sparse.formats``):

* block part: for each block size b, a block-sparse (size x size) A (whole b x b
  tiles zero) at each sparsity, times x (size, k); every registered backend is
  measured on the same matrix, dense first (CSR, COO, torch BSR with b x b blocks,
  the lab's Triton kernel "lab-bsr", ...). Backends that cannot run a spec yield
  "unsupported" rows, never numbers.
* 2:4 part: for each n in ``nm_sizes``, a random (n x n) A pruned by magnitude to 2:4
  (exactly 50 %), dense vs "torch-2:4", times x (n, k) (and x (n, n) with
  ``nm_square``). Off an sm80+ GPU the 2:4 rows read "unavailable: needs an NVIDIA
  GPU (sm80+)".

    config = StructuredSweepConfig(size=256, k=64, blocks=(16, 32), device="cpu")
    for row in structured_sweep(config):
        print(row["part"], row["backend"], row["block"], row["speedup"])

Every timed row comes from a Measurement (through ``engine.bench.sweeps.measure_spec``);
rows follow ``engine.bench.schema.STRUCTURED_COLUMNS`` (the paradox columns plus ``part``,
"block" or "2:4"); ``sweep`` is "structured", listed in ``engine.bench.schema.SCHEMAS``.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from engine.bench.sweeps import (DENSE, LIMITS, ParadoxConfig, base_row, free_bytes, measure_spec,
                                 memory_refusal, paradox_sweep, versions)
from engine.bench.spec import BenchmarkSpec
from engine.sparse.formats import BACKENDS, DTYPES, SimpleSpec, backend_names, torch_dtype, unsupported_reason
from engine.sparse.pruning import BLOCK_SIZES
from engine.validate import check_choice, check_float, check_int, memory_budget_bytes

SWEEP = "structured"
NM_BACKEND = "torch-2:4"
# What the page offers: matrix sizes (A is n x n), sparsities and block edges to tick.
SWEEP_SIZES = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
SWEEP_SPARSITIES = (0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99)
SWEEP_BLOCKS = BLOCK_SIZES


def default_block_backends() -> tuple[str, ...]:
    """Every registered backend except those that need a 2:4 matrix (dense first)."""
    names = [n for n in backend_names() if BACKENDS[n].format != "2:4"]
    return tuple([DENSE] + [n for n in names if n != DENSE])


@dataclass(frozen=True)
class StructuredSweepConfig:
    """What the sweep measures. A is (size, size), x is (size, k); 2:4 uses (n, n) @ (n, k).

    blocks: block edges (each must divide size); sparsities in [0, 1); backends: None
    means every registered backend that does not need 2:4 (see default_block_backends).
    """

    size: int = 256
    k: int = 64
    sparsities: tuple[float, ...] = (0.5, 0.75, 0.9, 0.95)
    blocks: tuple[int, ...] = (16, 32)
    dtype: str = "float32"
    device: str = "cpu"
    repeats: int = 10
    nm_sizes: tuple[int, ...] = (256,)
    backends: tuple[str, ...] | None = None
    seed: int = 0
    memory_budget_bytes: int | None = None  # None: the device's free memory only
    nm_square: bool = False  # 2:4 also at k = n (square products), beside k

    def __post_init__(self) -> None:
        size = check_int("size", self.size, *LIMITS["size"])
        check_int("k", self.k, *LIMITS["k"])
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("device", self.device, ("cpu", "cuda"))
        check_int("repeats", self.repeats, *LIMITS["repeats"])
        if not self.sparsities:
            raise ValueError("sparsities: expected at least one sparsity, got none")
        for s in self.sparsities:
            check_float("sparsity", s, 0.0, 0.999)
        for b in self.blocks:
            check_int("block", b, *LIMITS["block"])
            if size % b:
                raise ValueError(f"block: expected a block size dividing the size {size}, got {b}")
        for n in self.nm_sizes:
            check_int("2:4 size", n, 16, 65536)
        if not self.blocks and not self.nm_sizes:
            raise ValueError("blocks: expected at least one block size or one 2:4 size, got none")

    @property
    def block_backends(self) -> tuple[str, ...]:
        names = self.backends if self.backends is not None else default_block_backends()
        names = tuple(n for n in names if n != NM_BACKEND)
        return (DENSE,) + tuple(n for n in names if n != DENSE)

    def paradox_config(self, block: int) -> ParadoxConfig:
        return ParadoxConfig(sizes=(self.size,), sparsities=tuple(self.sparsities),
                             backends=self.block_backends, dtypes=(self.dtype,), ops=("spmm",),
                             k=self.k, pattern="block", block=block, repeats=self.repeats,
                             device=self.device, seed=self.seed,
                             memory_budget_bytes=self.memory_budget_bytes)

    @property
    def total(self) -> int:
        """Rows the sweep yields."""
        per_block = len(self.sparsities) * len(self.block_backends)
        return len(self.blocks) * per_block + 2 * len(self.nm_shapes)

    @property
    def nm_shapes(self) -> list[tuple[int, int]]:
        """(n, k) of every 2:4 product: (n, n) @ (n, k), plus (n, n) @ (n, n) with nm_square."""
        out = []
        for n in self.nm_sizes:
            out.append((n, self.k))
            if self.nm_square and n != self.k:
                out.append((n, n))
        return out


def sweep_config(size, k, dtype, blocks, sparsities, nm, repeats,
                 device: str = "cpu") -> StructuredSweepConfig:
    """The page's widget values -> a StructuredSweepConfig, checked once ("expected ... got ...").

    blocks: ticked block edges (SWEEP_BLOCKS); nm: ticked 2:4 options ("on": dense vs 2:4
    at n; "square": also k = n).
    """
    size = check_choice("matrix size", check_int("matrix size", size, 8, max(SWEEP_SIZES)), SWEEP_SIZES)
    nm = tuple(nm or ())
    if not blocks and "on" not in nm:
        raise ValueError("blocks: expected at least one block size or 2:4 ticked, got none")
    if blocks and not sparsities:
        raise ValueError("sparsities: expected at least one sparsity ticked, got none")
    blocks = tuple(sorted(check_choice("block", check_int("block", b, 1, max(SWEEP_BLOCKS)), SWEEP_BLOCKS)
                          for b in blocks or ()))
    for b in blocks:
        if b > size:
            raise ValueError(f"block: expected a block size at most the matrix size {size}, got {b}")
    return StructuredSweepConfig(
        size=size, k=k, sparsities=tuple(sorted(float(s) for s in sparsities or (0.5,))),
        blocks=blocks, dtype=dtype, device=device, repeats=repeats,
        nm_sizes=(size,) if "on" in nm else (), nm_square="square" in nm,
        memory_budget_bytes=memory_budget_bytes())


def sweep_params(config: StructuredSweepConfig) -> dict:
    """What a run of ``config`` records as its parameters (the run store, /runs)."""
    return {"size": config.size, "k": config.k, "dtype": config.dtype, "blocks": list(config.blocks),
            "sparsities": list(config.sparsities), "nm_shapes": [list(p) for p in config.nm_shapes],
            "repeats": config.repeats}


def unsupported_notes(config: StructuredSweepConfig, device: str) -> list[str]:
    """Before a run: every planned backend ``device`` cannot run, with the reason and, when it
    holds for some ticked blocks only, which ("lab-bsr (block 8): unsupported: ...")."""
    from engine.sparse.two_four import NEEDS_GPU

    names = list(config.block_backends) + ([NM_BACKEND] if config.nm_sizes else [])
    notes = []
    for name in names:
        blocks = config.blocks or (16,) if name != NM_BACKEND else (4,)
        reasons: dict[str, list[int]] = {}
        for block in blocks:  # every ticked block is checked (lab-bsr runs only some sizes)
            reason = unsupported_reason(name, SimpleSpec(device=device, dtype=config.dtype, op="spmm",
                                                         shape=(config.size, config.size), block=block))
            if name == NM_BACKEND and device != "cuda":
                reason = NEEDS_GPU
            if reason:
                reasons.setdefault(reason, []).append(block)
        for reason, hit in reasons.items():
            where = "" if len(hit) == len(blocks) else f" (block {', '.join(map(str, hit))})"
            notes.append(f"{name}{where}: {reason}")
    return notes


def _nm_matrix(n: int, dtype: str, device: str, seed: int):
    """A random (n, n) matrix pruned by magnitude to 2:4 (exactly 2 of every 4 kept)."""
    import torch

    from engine.sparse.pruning import prune_mask

    gen = torch.Generator(device=device).manual_seed(seed)
    a = torch.randn(n, n, generator=gen, device=device, dtype=torch.float32)
    a = torch.where(a >= 0, a + 0.1, a - 0.1)  # no exact zeros among the kept
    a = a * prune_mask(a, "2:4", None)
    return a.to(torch_dtype(dtype))


def _nm_key(spec: BenchmarkSpec) -> str:
    return hashlib.sha1((spec.key + "|pattern=2:4").encode()).hexdigest()[:16]


def _tag(row: dict, part: str) -> dict:
    row["sweep"] = SWEEP
    row["part"] = part
    return row


def _finish_nm(row: dict, spec: BenchmarkSpec) -> dict:
    row.update(pattern="2:4", block=4, spec_key=_nm_key(spec))
    return _tag(row, "2:4")


def nm_rows(config: StructuredSweepConfig, dev, name: str, vers: dict) -> Iterator[dict]:
    """Dense vs 2:4 for every (n, k) of config.nm_shapes (two rows each)."""
    import torch

    from engine.sparse.two_four import semi_structured_unavailable

    if NM_BACKEND not in BACKENDS:  # the module failed to import: say so, never a number
        from engine.sparse.formats import OPTIONAL_BACKEND_ERRORS

        err = OPTIONAL_BACKEND_ERRORS.get("engine.sparse.two_four", "not registered")
    unavailable = semi_structured_unavailable(dev)
    for n in config.nm_sizes:
        a = None
        for k in [kk for nn, kk in config.nm_shapes if nn == n]:
            specs = [BenchmarkSpec.make("spmm", b, n, 0.5, k=k, pattern="uniform", block=4,
                                        dtype=config.dtype, device=config.device,
                                        repeats=config.repeats, seed=config.seed)
                     for b in (DENSE, NM_BACKEND)]
            refusal = memory_refusal(specs[0], free_bytes(config.device), config.memory_budget_bytes)
            if refusal:
                for spec in specs:
                    row = base_row(spec, name, vers)
                    row.update(status="refused", message=refusal)
                    yield _finish_nm(row, spec)
                continue
            if a is None:
                a = _nm_matrix(n, config.dtype, config.device, config.seed)
                nnz = float((a != 0).sum().item())
            gen = torch.Generator(device=config.device).manual_seed(config.seed + 2)
            x = torch.randn(n, k, generator=gen, device=config.device).to(a.dtype)
            dense_median = None
            for spec in specs:
                if spec.backend == NM_BACKEND and (unavailable or NM_BACKEND not in BACKENDS):
                    row = base_row(spec, name, vers)
                    reason = unavailable or (f"unsupported: expected backend {NM_BACKEND} "
                                             f"registered, got {err}")
                    row.update(status="unsupported", message=reason, nnz=nnz,
                               density=nnz / (n * n), format="2:4")
                else:
                    row = measure_spec(spec, a, x, dense_median, name, vers, nnz)
                    if spec.backend == DENSE and row["status"] == "ok":
                        dense_median = row["median_s"]
                yield _finish_nm(row, spec)
            del x
        del a
        if config.device == "cuda":
            torch.cuda.empty_cache()


def structured_sweep(config: StructuredSweepConfig, device_name: str | None = None,
                     nm_first: bool = False) -> Iterator[dict]:
    """Yield the block part (per block size, per sparsity, per backend) and the 2:4 part.

    The block part comes first unless ``nm_first``. Runs on config.device; call inside
    a job (it may initialise CUDA).
    """
    from engine.runtime.device import job_device, runtime_device_name

    dev = job_device(config.device)
    if dev.type != config.device:
        raise ValueError(f"device: expected {config.device}, got {dev.type}")
    name = device_name or runtime_device_name(dev)
    if nm_first and config.nm_sizes:
        yield from nm_rows(config, dev, name, versions())
    for block in config.blocks:
        for row in paradox_sweep(config.paradox_config(block), device_name=name):
            yield _tag(row, "block")
    if not nm_first and config.nm_sizes:
        yield from nm_rows(config, dev, name, versions())


def break_even_by_block(frame):
    """Break-even sparsity (speedup = 1) per backend and block size, from block-part rows.

    frame: sweep rows (DataFrame). Returns columns block, backend, dtype, device_name,
    rows, k, break_even (NaN when never faster than dense in the range), note.
    """
    import pandas as pd

    from engine.bench.sweeps import break_even

    cols = ["block", "backend", "dtype", "device_name", "rows", "k", "break_even", "note"]
    if frame is None or len(frame) == 0 or "block" not in frame:
        return pd.DataFrame(columns=cols)
    part = frame[frame["part"] == "block"] if "part" in frame else frame
    out = []
    for block, g in part.groupby("block", sort=True):
        be = break_even(g)
        if len(be):
            be.insert(0, "block", int(block))
            out.append(be)
    if not out:
        return pd.DataFrame(columns=cols)
    return pd.concat(out, ignore_index=True)[cols]


def efficiency_table(frame):
    """Median speedup, theoretical (1/density) and efficiency per (backend, block, sparsity).

    frame: sweep rows with status ok. Returns a DataFrame sorted by backend, block, sparsity.
    """
    import pandas as pd

    cols = ["backend", "block", "sparsity", "speedup", "theoretical", "efficiency"]
    if frame is None or len(frame) == 0 or "status" not in frame:
        return pd.DataFrame(columns=cols)
    ok = frame[frame["status"].isin(["ok", "reused"]) & (frame["backend"] != DENSE)]
    if ok.empty:
        return pd.DataFrame(columns=cols)
    ok = ok.assign(**{c: pd.to_numeric(ok[c], errors="coerce") for c in cols[2:]})
    g = ok.groupby(["backend", "block", "sparsity"], as_index=False)[cols[3:]].median()
    g = g[np.isfinite(g["speedup"])]
    return g.sort_values(["backend", "block", "sparsity"]).reset_index(drop=True)
