"""lab-bsr: the lab's own block-sparse x dense matrix product (Triton), with a
plain-torch reference beside it.

    Y[m, k] = A[m, n] @ B[n, k]

A is block-sparse (BSR) with square blocks of 16, 32, 64 or 128; B and Y are
dense and row-major. Inputs fp16 or bf16, accumulation in fp32, output in the
input dtype.

* ``BsrMatrix``: the container (``crow`` [R + 1], ``col`` [nnz], ``values``
  [nnz, b, b], ``shape`` (m, n), ``block`` b), with ``from_dense``,
  ``from_torch``, ``random``, ``to_dense`` and ``to_torch``. It also holds the
  launch order of the block rows (longest first), computed once per matrix.
* ``bsr_matmul_reference(a, b)``: the slow, obvious product in torch (gather the
  rows of B each stored block touches, multiply in fp32, add into its block row).
* ``bsr_matmul(a, b, config=None)``: the Triton kernel. Tiles are tuned per
  (block, k, dtype, stored blocks per row) on first use unless ``config`` is given.
* ``support_reason(a, b)``: "" when lab-bsr can run these inputs, else
  "unsupported: expected ..." (used by the backend registry).
* Load balance: block rows launch longest first; ``split="auto"`` cuts rows far
  longer than the mean into segments that meet in an fp32 workspace (one launch).
* Persistent kernel (``persist_plan``, kind "pers"): one or two programs per SM walk
  host-balanced runs of precomputed steps (longest work item first into the least
  loaded bin), with deep load pipelines; the b64 presets use it where no row is cut.
* Union schedule (``union_plan``, kinds "uptr"/"utma"/"uatma"): one program owns
  2-8 block rows and walks the union of their block columns, so each B tile is
  loaded once for all of them (missing blocks are zeros in the MMA). Block rows are
  grouped greedily by shared columns on the host, once per matrix. The tuner tries
  it beside the one-row kernel; presets use it only where it measured faster.
* Registered in ``engine.sparse.formats`` as backend "lab-bsr" (CUDA, fp16/bf16), which
  uses ``PRESETS`` / ``UNION_PRESETS`` / ``SPLIT_PRESETS`` (the tuner's choices on the
  H200 run of 2026-11-30) instead of tuning on first use.

The kernel runs on CUDA; on a CPU it runs only under Triton's interpreter
(``TRITON_INTERPRET=1`` set before triton is imported), which the tests use.
"""
from __future__ import annotations

import math
import os
import warnings
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

BLOCK_SIZES = (16, 32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16)
NAME = "lab-bsr"
UNION_KINDS = ("uptr", "utma", "uatma")  # several block rows per program (see union_plan)
TMA_KINDS = ("tma", "pers")  # one block row per work item, tiles moved by TMA


# ----------------------------------------------------------------------------- container
@dataclass(frozen=True, eq=False)
class BsrMatrix:
    """Block-sparse rows: block row i holds stored blocks crow[i] .. crow[i+1]-1,
    block t sits at block column col[t] and holds values[t] ([b, b]).

    shape = (m, n) with m and n multiples of ``block``; R = m // b block rows."""

    crow: torch.Tensor  # int32 [R + 1]
    col: torch.Tensor  # int32 [nnz]
    values: torch.Tensor  # [nnz, b, b]
    shape: tuple[int, int]
    block: int
    order: torch.Tensor = field(default=None)  # int32 [R]: block rows, longest first

    def __post_init__(self) -> None:
        if self.order is None:
            lengths = (self.crow[1:] - self.crow[:-1]).to(torch.int64)
            order = torch.argsort(-lengths, stable=True).to(torch.int32)
            object.__setattr__(self, "order", order)
        if self.values.numel() >= 2**31:
            raise ValueError(f"values: expected fewer than 2**31 stored values (int32 "
                             f"offsets in the kernel), got {self.values.numel()}")
        o = self.order.long()
        sched = torch.stack([self.order, self.crow[o], self.crow[o + 1],
                             torch.full_like(self.order, -1)], dim=1).to(torch.int32).contiguous()
        object.__setattr__(self, "sched", sched)  # [R, 4]: row, start, end, -1 (launch order)
        object.__setattr__(self, "_plans", {})

    def plan(self, max_len: int | None = None) -> "WorkPlan":
        """Work items for the kernel. ``max_len`` None: one item per block row (in
        ``order``). Otherwise rows longer than ``max_len`` stored blocks are cut into
        ceil(len / max_len) near-equal segments that accumulate in an fp32 workspace;
        all items are sorted longest first. Cached per ``max_len``."""
        if max_len is None:
            return WorkPlan(self.sched, None, 0)
        if max_len in self._plans:
            return self._plans[max_len]
        lengths = self.row_lengths().cpu()
        crow = self.crow.cpu().long()
        long_rows = (lengths > max_len).nonzero().reshape(-1)
        if long_rows.numel() == 0:
            plan = WorkPlan(self.sched, None, 0)
        else:
            items = []  # (length, row, start, end, slot)
            slot_of = {int(r): i for i, r in enumerate(long_rows.tolist())}
            for r in range(self.block_rows):
                st, en = int(crow[r]), int(crow[r + 1])
                if r in slot_of:
                    pieces = -(-(en - st) // max_len)
                    cuts = [st + (en - st) * p // pieces for p in range(pieces + 1)]
                    items += [(b - a, r, a, b, slot_of[r]) for a, b in zip(cuts, cuts[1:])]
                else:
                    items.append((en - st, r, st, en, -1))
            items.sort(key=lambda t: -t[0])
            sched = torch.tensor([t[1:] for t in items], dtype=torch.int32).to(self.crow.device)
            pieces = torch.zeros(len(slot_of), dtype=torch.int32)
            for t in items:
                if t[4] >= 0:
                    pieces[t[4]] += 1
            plan = WorkPlan(sched.contiguous(), long_rows.to(self.crow.device), len(slot_of),
                            pieces.to(self.crow.device))
        self._plans[max_len] = plan
        return plan

    # -- facts
    @property
    def nnz_blocks(self) -> int:
        return int(self.col.numel())

    @property
    def block_rows(self) -> int:
        return self.shape[0] // self.block

    @property
    def block_cols(self) -> int:
        return self.shape[1] // self.block

    @property
    def density(self) -> float:
        total = self.block_rows * self.block_cols
        return self.nnz_blocks / total if total else 0.0

    @property
    def dtype(self) -> torch.dtype:
        return self.values.dtype

    @property
    def device(self) -> torch.device:
        return self.values.device

    def row_lengths(self) -> torch.Tensor:
        """Stored blocks per block row, int64 [R]."""
        return (self.crow[1:] - self.crow[:-1]).to(torch.int64)

    def to(self, device=None, dtype=None) -> "BsrMatrix":
        return BsrMatrix(self.crow.to(device), self.col.to(device),
                         self.values.to(device=device, dtype=dtype), self.shape, self.block,
                         self.order.to(device))

    # -- conversions
    @classmethod
    def from_dense(cls, dense: torch.Tensor, block: int, keep: torch.Tensor | None = None
                   ) -> "BsrMatrix":
        """Store the blocks of ``dense`` [m, n] that hold any nonzero, or exactly the
        blocks where ``keep`` [m/b, n/b] (bool) is True (stored zeros allowed)."""
        _check_block(block)
        if dense.dim() != 2:
            raise ValueError(f"dense: expected a 2-D tensor, got shape {tuple(dense.shape)}")
        m, n = dense.shape
        if m % block or n % block:
            raise ValueError(f"dense: expected a shape divisible by the block {block}, "
                             f"got {(m, n)}")
        r, c = m // block, n // block
        tiles = dense.reshape(r, block, c, block).permute(0, 2, 1, 3)  # [R, C, b, b]
        if keep is None:
            keep = tiles.ne(0).any(dim=3).any(dim=2)
        elif tuple(keep.shape) != (r, c):
            raise ValueError(f"keep: expected shape {(r, c)}, got {tuple(keep.shape)}")
        keep = keep.to(device=dense.device, dtype=torch.bool)
        rows, cols = keep.nonzero(as_tuple=True)  # row-major order
        values = tiles[rows, cols].contiguous()
        counts = torch.bincount(rows, minlength=r)
        crow = torch.zeros(r + 1, dtype=torch.int64, device=dense.device)
        crow[1:] = torch.cumsum(counts, 0)
        return cls(crow.to(torch.int32), cols.to(torch.int32), values, (m, n), block)

    @classmethod
    def from_torch(cls, t: torch.Tensor) -> "BsrMatrix":
        """From a torch ``sparse_bsr`` tensor with square blocks."""
        if t.layout != torch.sparse_bsr:
            raise ValueError(f"a: expected a torch.sparse_bsr tensor, got layout {t.layout}")
        values = t.values()
        if values.dim() != 3 or values.shape[1] != values.shape[2]:
            raise ValueError(f"a: expected square blocks, got blocks {tuple(values.shape[1:])}")
        block = int(values.shape[1])
        return cls(t.crow_indices().to(torch.int32), t.col_indices().to(torch.int32),
                   values.contiguous(), tuple(int(s) for s in t.shape), block)

    def to_torch(self) -> torch.Tensor:
        """As a torch ``sparse_bsr`` tensor (int64 indices)."""
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse BSR tensor support is in beta")
            return torch.sparse_bsr_tensor(self.crow.to(torch.int64), self.col.to(torch.int64),
                                           self.values, size=self.shape,
                                           check_invariants=False)

    def to_dense(self) -> torch.Tensor:
        """The dense [m, n] matrix (zeros where no block is stored)."""
        b = self.block
        r, c = self.block_rows, self.block_cols
        out = torch.zeros(r, c, b, b, dtype=self.values.dtype, device=self.values.device)
        if self.nnz_blocks:
            rows = torch.repeat_interleave(torch.arange(r, device=self.crow.device),
                                           self.row_lengths())
            out[rows.long(), self.col.long()] = self.values
        return out.permute(0, 2, 1, 3).reshape(self.shape)

    @classmethod
    def random(cls, m: int, n: int, block: int, density: float, *, dtype=torch.float16,
               device="cpu", seed: int = 0, empty_rows: tuple[int, ...] = ()) -> "BsrMatrix":
        """A random BSR matrix: exactly round(density * blocks) blocks (at most as many as
        the rows not in ``empty_rows`` hold), placed uniformly at random outside the
        ``empty_rows``, with N(0, 1/n) values."""
        _check_block(block)
        if m % block or n % block:
            raise ValueError(f"shape: expected multiples of the block {block}, got {(m, n)}")
        if not 0.0 <= density <= 1.0:
            raise ValueError(f"density: expected a number in [0, 1], got {density!r}")
        gen = torch.Generator().manual_seed(seed)
        r, c = m // block, n // block
        allowed = torch.ones(r, c, dtype=torch.bool)
        for i in empty_rows:
            allowed[i] = False
        slots = allowed.reshape(-1).nonzero().reshape(-1)
        count = min(int(round(density * r * c)), int(slots.numel()))
        keep = torch.zeros(r * c, dtype=torch.bool)
        keep[slots[torch.randperm(slots.numel(), generator=gen)[:count]]] = True
        keep = keep.reshape(r, c)
        k = int(keep.sum())
        values = torch.randn(k, block, block, generator=gen) / math.sqrt(max(n, 1))
        rows, cols = keep.nonzero(as_tuple=True)
        crow = torch.zeros(r + 1, dtype=torch.int64)
        crow[1:] = torch.cumsum(torch.bincount(rows, minlength=r), 0)
        mat = cls(crow.to(torch.int32), cols.to(torch.int32), values.to(dtype), (m, n), block)
        return mat.to(device)


def as_bsr(a: Any) -> BsrMatrix:
    """A ``BsrMatrix`` from a ``BsrMatrix`` or a torch sparse_bsr tensor."""
    if isinstance(a, BsrMatrix):
        return a
    if isinstance(a, torch.Tensor) and a.layout == torch.sparse_bsr:
        return BsrMatrix.from_torch(a)
    raise ValueError(f"a: expected a BsrMatrix or a torch.sparse_bsr tensor, got {type(a).__name__}"
                     + (f" with layout {a.layout}" if isinstance(a, torch.Tensor) else ""))


@dataclass(frozen=True)
class WorkPlan:
    """sched: int32 [P, 4] work items (row, start, end, slot); split_rows: the block
    rows cut into segments (their slot is their index here), or None; n_split."""

    sched: torch.Tensor
    split_rows: torch.Tensor | None
    n_split: int
    pieces: torch.Tensor | None = None  # int32 [n_split]: segments of each split row
    buffers: dict = field(default_factory=dict, compare=False)  # k -> (ws, counters)

    def workspace(self, block: int, k: int, device) -> tuple[torch.Tensor, torch.Tensor, int]:
        """fp32 [n_split * block, k] workspace and int32 counters [n_split, max_tiles],
        zeroed once; the kernel leaves both zeroed after each call."""
        max_tiles = -(-k // 16)
        key = (k, str(device))
        if key not in self.buffers:
            self.buffers[key] = (
                torch.zeros(max(self.n_split, 1) * block, k, dtype=torch.float32, device=device),
                torch.zeros(max(self.n_split, 1) * max_tiles, dtype=torch.int32, device=device))
        ws, cnt = self.buffers[key]
        return ws, cnt, max_tiles


def auto_split_len(a: "BsrMatrix") -> int | None:
    """The segment length for ``bsr_matmul(split="auto")``: rows longer than twice the
    mean row length (and than 8 blocks) are cut; None when no row is that long."""
    if "auto" in a._plans:
        return a._plans["auto"]
    limit = None
    if a.nnz_blocks and a.block_rows:
        mean = a.nnz_blocks / a.block_rows
        limit = max(8, 2 * math.ceil(mean))
        if int(a.row_lengths().max()) <= limit:
            limit = None
    a._plans["auto"] = limit  # computed once per matrix (it reads the row lengths)
    return limit


@dataclass(frozen=True)
class UnionPlan:
    """Work for the union kernel: groups of ``rows`` block rows walk the union of their
    block columns. gsched int32 [G, 4] (group, first entry, end, 0), longest union
    first; entries int32 [E, rows + 1] (block column, stored block of each member or
    -1); members int32 [G, rows] (block row of each member, -1 = padding).
    ``stored`` = A's stored blocks, ``slots`` = E * rows (the MMA work, in blocks)."""

    gsched: torch.Tensor
    entries: torch.Tensor
    members: torch.Tensor
    rows: int
    stored: int
    slots: int


def group_rows(pattern, rows: int, reorder: bool = True) -> list[list[int]]:
    """Block rows -> groups of ``rows`` (the last padded with -1). pattern: bool numpy
    [R, C] (stored blocks). reorder=False: consecutive rows. reorder=True: greedy,
    seeded by the longest remaining row, each next member the remaining row that adds
    the fewest new block columns to the group's union (ties: the longer row), so rows
    sharing columns share B tiles. O(R^2 C / rows) work, once per matrix."""
    import numpy as np

    n_rows = int(pattern.shape[0])
    if not reorder or rows == 1:
        ids = list(range(n_rows)) + [-1] * (-n_rows % rows)
        return [ids[i:i + rows] for i in range(0, len(ids), rows)]
    pat = pattern.astype(np.float32)
    lengths = pat.sum(1)
    left = np.ones(n_rows, dtype=bool)
    groups = []
    while left.any():
        cand = np.nonzero(left)[0]
        seed = int(cand[np.argmax(lengths[cand])])
        left[seed] = False
        group, union = [seed], pat[seed].copy()
        for _ in range(rows - 1):
            cand = np.nonzero(left)[0]
            if cand.size == 0:
                group.append(-1)
                continue
            growth = lengths[cand] - pat[cand] @ union  # new columns each would add
            score = growth * (pattern.shape[1] + 1) - lengths[cand]
            pick = int(cand[np.argmin(score)])
            left[pick] = False
            group.append(pick)
            union = np.maximum(union, pat[pick])
        groups.append(group)
    return groups


def union_plan(a: "BsrMatrix", rows: int, reorder: bool = True) -> UnionPlan:
    """The union kernel's work for ``a`` with ``rows`` block rows per program (cached
    per matrix: host-side preprocessing, once)."""
    import numpy as np

    key = ("union", rows, reorder)
    if key in a._plans:
        return a._plans[key]
    n_r, n_c = a.block_rows, a.block_cols
    crow = a.crow.cpu().long().numpy()
    col = a.col.cpu().long().numpy()
    idx = np.full((n_r, n_c), -1, dtype=np.int64)
    row_of = np.repeat(np.arange(n_r), np.diff(crow))
    idx[row_of, col] = np.arange(col.size)
    groups = group_rows(idx >= 0, rows, reorder)
    ents, spans = [], []
    pos = 0
    for gi, members in enumerate(groups):
        real = [m for m in members if m >= 0]
        cols = np.nonzero((idx[real] >= 0).any(0))[0]
        block = np.full((cols.size, rows + 1), -1, dtype=np.int64)
        block[:, 0] = cols
        for j, m in enumerate(members):
            if m >= 0:
                block[:, j + 1] = idx[m, cols]
        ents.append(block)
        spans.append((cols.size, gi, pos, pos + cols.size))
        pos += cols.size
    spans.sort(key=lambda t: -t[0])
    dev = a.crow.device
    entries = (np.concatenate(ents) if ents else np.zeros((0, rows + 1), dtype=np.int64))
    if entries.shape[0] == 0:
        entries = np.zeros((1, rows + 1), dtype=np.int64) - 1  # never read; keeps a valid pointer
    plan = UnionPlan(
        gsched=torch.tensor([[g, s, e, 0] for _, g, s, e in spans], dtype=torch.int32).to(dev),
        entries=torch.from_numpy(entries.astype(np.int32)).contiguous().to(dev),
        members=torch.tensor(groups, dtype=torch.int32).reshape(-1, rows).to(dev),
        rows=rows, stored=a.nnz_blocks, slots=pos * rows)
    a._plans[key] = plan
    return plan


@dataclass(frozen=True)
class PersistPlan:
    """Work for the persistent kernel: steps int32 [S, 4] (stored block, first B row,
    first Y column, tag; see ``bsr_mm_persist_kernel``), bins int32 [G + 1] (bin g owns
    steps bins[g] .. bins[g + 1] - 1), empty_rows (block rows with no stored block,
    zeroed by the launcher) or None, and ``loads`` (steps per bin, for the record)."""

    steps: torch.Tensor
    bins: torch.Tensor
    empty_rows: torch.Tensor | None
    loads: list

    @property
    def n_bins(self) -> int:
        return int(self.bins.numel()) - 1


def persist_plan(a: "BsrMatrix", k: int, block_n: int, n_bins: int,
                 split_len: int | None = None) -> PersistPlan:
    """Balance the work items (block row or segment x tile of ``block_n`` columns) of
    ``a.plan(split_len)`` over ``n_bins`` persistent programs: longest item first into
    the least loaded bin (LPT); each bin's items then run back to back as one run of
    steps. Cached per matrix and (k, block_n, n_bins, split_len)."""
    import heapq

    key = ("persist", k, block_n, n_bins, split_len)
    if key in a._plans:
        return a._plans[key]
    if n_bins < 1:
        raise ValueError(f"n_bins: expected >= 1, got {n_bins}")
    plan = a.plan(split_len)
    sched = plan.sched.cpu().long()
    n_tiles = -(-k // block_n)
    lengths = (sched[:, 2] - sched[:, 1]).tolist()
    items = [(lengths[i], i, t) for i in range(len(lengths)) if lengths[i] > 0
             for t in range(n_tiles)]
    items.sort(key=lambda x: (-x[0], x[1], x[2]))
    heap = [(0, g) for g in range(n_bins)]
    per_bin: list[list[tuple[int, int]]] = [[] for _ in range(n_bins)]
    for length, i, t in items:
        load, g = heapq.heappop(heap)
        per_bin[g].append((i, t))
        heapq.heappush(heap, (load + length, g))
    order = [it for g in range(n_bins) for it in per_bin[g]]
    loads = [sum(lengths[i] for i, _ in per_bin[g]) for g in range(n_bins)]
    col = a.col.cpu().long()
    if order:
        it_i = torch.tensor([i for i, _ in order], dtype=torch.long)
        it_t = torch.tensor([t for _, t in order], dtype=torch.long)
        lens = sched[it_i, 2] - sched[it_i, 1]
        ends = torch.cumsum(lens, 0)
        step_item = torch.repeat_interleave(torch.arange(len(order)), lens)
        j = sched[it_i, 1][step_item] + torch.arange(int(ends[-1])) - (ends - lens)[step_item]
        tag = torch.zeros_like(j)
        last = ends - 1
        unsplit = sched[it_i, 3] < 0
        tag[last] = torch.where(unsplit, sched[it_i, 0] + 1, -(it_i + 1))
        steps = torch.stack([j, col[j] * a.block, it_t[step_item] * block_n, tag], dim=1)
    else:
        steps = torch.zeros((1, 4), dtype=torch.long)  # never read: keeps a valid pointer
    bins = torch.cumsum(torch.tensor([0] + loads, dtype=torch.long), 0)
    empty = (a.row_lengths().cpu() == 0).nonzero().reshape(-1)
    dev = a.crow.device
    pp = PersistPlan(steps=steps.to(torch.int32).contiguous().to(dev),
                     bins=bins.to(torch.int32).to(dev),
                     empty_rows=empty.to(dev) if empty.numel() else None, loads=loads)
    a._plans[key] = pp
    return pp


_SM_COUNT: dict[str, int] = {}


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device (4 under the CPU interpreter)."""
    if device.type != "cuda":
        return 4
    key = str(device)
    if key not in _SM_COUNT:
        _SM_COUNT[key] = torch.cuda.get_device_properties(device).multi_processor_count
    return _SM_COUNT[key]


def _check_block(block: Any) -> None:
    if block not in BLOCK_SIZES:
        raise ValueError(f"block: expected square blocks of 16, 32, 64 or 128, got {block!r}")


# ----------------------------------------------------------------------------- reference
def bsr_matmul_reference(a: Any, b: torch.Tensor) -> torch.Tensor:
    """Y = A @ B the slow, obvious way: for each stored block, take the rows of B its
    block column covers, multiply in fp32, add into its block row. Returns Y [m, k]
    in B's dtype (fp32 accumulation, rounded once at the end)."""
    a = as_bsr(a)
    _check_shapes(a, b)
    bsz = a.block
    m, k = a.shape[0], b.shape[1]
    acc = torch.zeros(a.block_rows, bsz, k, dtype=torch.float32, device=b.device)
    if a.nnz_blocks:
        rows = torch.repeat_interleave(torch.arange(a.block_rows, device=a.crow.device),
                                       a.row_lengths()).to(b.device)
        b_blocks = b.reshape(a.block_cols, bsz, k).float()[a.col.long().to(b.device)]
        prod = torch.bmm(a.values.float().to(b.device), b_blocks)  # [nnz, b, k]
        acc.index_add_(0, rows.long(), prod)
    return acc.reshape(m, k).to(b.dtype)


def _check_shapes(a: BsrMatrix, b: torch.Tensor) -> None:
    if not isinstance(b, torch.Tensor) or b.dim() != 2:
        raise ValueError(f"b: expected a 2-D dense tensor, got "
                         f"{tuple(b.shape) if isinstance(b, torch.Tensor) else type(b).__name__}")
    if b.layout != torch.strided:
        raise ValueError(f"b: expected a dense (strided) tensor, got layout {b.layout}")
    if b.shape[0] != a.shape[1]:
        raise ValueError(f"b: expected {a.shape[1]} rows to match A {a.shape}, "
                         f"got {tuple(b.shape)}")


# ----------------------------------------------------------------------------- support
def interpreting() -> bool:
    """True when Triton's CPU interpreter is switched on (TRITON_INTERPRET=1)."""
    return os.environ.get("TRITON_INTERPRET", "0").lower() in ("1", "true", "on", "yes")


def triton_status() -> str:
    """"" when triton imports here, else the reason it does not."""
    from engine.sparse.kernels import _bsr_triton as kern
    return "" if kern.AVAILABLE else f"triton not importable: {kern.IMPORT_ERROR}"


def support_reason(a: Any, b: torch.Tensor | None = None) -> str:
    """"" if lab-bsr runs these inputs, else "unsupported: expected ..." (no CUDA init:
    only the tensors' own device and dtype are read)."""
    try:
        a = as_bsr(a)
    except ValueError as exc:
        return f"unsupported: {exc}"
    if a.block not in BLOCK_SIZES:
        return f"unsupported: expected square blocks of 16, 32, 64 or 128, got {a.block}"
    if a.dtype not in DTYPES:
        return f"unsupported: expected fp16 or bf16 values, got {a.dtype}"
    if b is not None:
        if b.dtype != a.dtype:
            return f"unsupported: expected B in the dtype of A ({a.dtype}), got {b.dtype}"
        if b.dim() != 2 or b.shape[0] != a.shape[1]:
            return f"unsupported: expected B with {a.shape[1]} rows, got {tuple(b.shape)}"
    dev = a.device
    if dev.type != "cuda" and not interpreting():
        return f"unsupported: expected CUDA tensors (Triton GPU kernel), got {dev.type}"
    if b is not None and b.device != dev:
        return f"unsupported: expected A and B on one device, got {dev} and {b.device}"
    why = triton_status()
    if why:
        return f"unsupported: {why}"
    return ""


# ----------------------------------------------------------------------------- configs
@dataclass(frozen=True)
class Config:
    """One way to launch the kernel. kind "ptr" (pointer loads; any GROUP, TRANS),
    "tma" (tensor-memory-accelerator descriptors; GROUP 1 or 2, no TRANS, sm_90+),
    "pers" (persistent, TMA: ``occ`` programs per SM walk host-balanced runs of steps,
    see ``persist_plan``; GROUP 1, no TRANS), or a union kind (see ``union_plan``)."""

    block_n: int = 128
    group: int = 1
    trans: bool = False
    num_warps: int = 4
    num_stages: int = 3
    kind: str = "ptr"
    rows: int = 1  # union kinds: block rows per program
    skip: bool = False  # union kinds, rows == 2: skip the MMA of missing blocks
    occ: int = 1  # "pers": programs per SM
    store: str = "N"  # "pers": "H" stores Y in two halves when no row is split (half
    #                   the shared-memory staging, so one more stage of loads fits)

    @property
    def union(self) -> bool:
        """True for the several-block-rows-per-program kernel (kinds "uptr", "utma")."""
        return self.kind in UNION_KINDS

    def label(self) -> str:
        if self.kind == "pers":
            return (f"pers n{self.block_n} o{self.occ} {self.store} "
                    f"w{self.num_warps} s{self.num_stages}")
        if self.union:
            return (f"{self.kind} n{self.block_n} r{self.rows} {'S' if self.skip else 'N'} "
                    f"w{self.num_warps} s{self.num_stages}")
        return (f"{self.kind} n{self.block_n} g{self.group} {'T' if self.trans else 'N'} "
                f"w{self.num_warps} s{self.num_stages}")

    def as_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_label(cls, label: str) -> "Config":
        """Inverse of ``label()``: "ptr n128 g1 N w4 s3" -> Config."""
        parts = label.split()
        if (len(parts) != 6 or parts[0] not in ("ptr",) + TMA_KINDS + UNION_KINDS
                or parts[4][0] != "w"):
            raise ValueError(f"config: expected a label like 'ptr n128 g1 N w4 s3', got {label!r}")
        if parts[0] == "pers":
            return cls(block_n=int(parts[1][1:]), occ=int(parts[2][1:]), store=parts[3],
                       num_warps=int(parts[4][1:]), num_stages=int(parts[5][1:]), kind="pers")
        if parts[0] in UNION_KINDS:
            return cls(block_n=int(parts[1][1:]), rows=int(parts[2][1:]), skip=parts[3] == "S",
                       num_warps=int(parts[4][1:]), num_stages=int(parts[5][1:]), kind=parts[0])
        return cls(block_n=int(parts[1][1:]), group=int(parts[2][1:]), trans=parts[3] == "T",
                   num_warps=int(parts[4][1:]), num_stages=int(parts[5][1:]), kind=parts[0])


# Deeper load pipelines and the persistent kernel, by block size (H200 trials of
# 2026-11-30, benchmarks/results/bsr_explore/). Triton's pipeliner keeps about
# (num_stages - 1) // 2 + 1 tiles in flight here (the B tile's address depends on a
# loaded column index), so s5-s9 are what put 3-5 tiles in flight.
DEEP_CANDIDATES = {
    16: ("pers n256 o1 N w4 s7", "pers n128 o2 N w4 s7"),
    32: ("pers n256 o1 N w4 s7", "pers n128 o2 N w4 s7"),
    64: ("pers n256 o1 N w4 s7", "pers n256 o1 H w4 s9", "pers n128 o2 N w4 s7",
         "pers n128 o2 N w4 s8", "pers n128 o2 N w4 s6", "tma n128 g1 N w4 s5",
         "tma n128 g1 N w4 s7", "tma n256 g1 N w4 s8"),
    128: ("pers n128 o1 N w8 s5", "pers n64 o2 N w4 s5"),
}


def candidate_configs(block: int, k: int, tma: bool = True) -> list[Config]:
    """The configurations the tuner tries for one block size (k limits BLOCK_N)."""
    bn_max = max(16, min(512, 1 << max(4, (k - 1).bit_length())))
    out: list[Config] = []

    def add(**kw):
        c = Config(**kw)
        tma_kind = c.kind in TMA_KINDS + ("utma", "uatma")
        limit = min(bn_max, 256) if tma_kind else bn_max  # a TMA box is at most 256 wide
        if c.block_n <= limit and c not in out:
            if not tma_kind or tma:
                out.append(c)

    # the union schedule (several block rows per program, one B tile for all of them)
    # (measured on the H100, 2026-11-22: r4 at b64, and the MMA-skipping "S" form,
    # were 1.3-2x slower than r2 at every density, so they are not tried any more)
    union = {16: ("utma n128 r4 N w4 s3", "utma n256 r4 N w4 s3", "utma n128 r8 N w8 s3",
                  "uptr n128 r4 N w4 s3"),
             32: ("utma n128 r2 N w4 s3", "utma n256 r2 N w4 s3", "uatma n128 r2 N w4 s3",
                  "uatma n256 r2 N w4 s3", "uatma n256 r2 N w8 s3"),
             64: ("utma n128 r2 N w4 s3", "utma n256 r2 N w8 s3", "utma n128 r2 N w8 s3",
                  "uptr n128 r2 N w8 s3", "uatma n128 r2 N w4 s3", "uatma n128 r2 N w8 s3",
                  "uatma n256 r2 N w8 s3", "uatma n128 r2 N w4 s4", "uatma n256 r2 N w4 s3",
                  "uatma n64 r2 N w4 s3"),
             128: ("utma n64 r2 N w8 s2", "uatma n64 r2 N w4 s2")}
    for label in union[block] + DEEP_CANDIDATES[block]:
        add(**Config.from_label(label).as_dict())

    if block == 16:
        for bn in (64, 128, 256):
            for g in (4, 8):
                add(block_n=bn, group=g, trans=True, num_warps=4, num_stages=3)
        add(block_n=128, group=8, trans=True, num_warps=8, num_stages=3)
        add(block_n=128, group=4, trans=True, num_warps=4, num_stages=4)
        add(block_n=128, group=4, trans=False, num_warps=4, num_stages=3)
    elif block == 32:
        for bn in (64, 128, 256):
            for g in (2, 4):
                add(block_n=bn, group=g, trans=True, num_warps=4, num_stages=3)
        add(block_n=128, group=2, trans=True, num_warps=8, num_stages=4)
        add(block_n=128, group=2, trans=False, num_warps=4, num_stages=3)
        add(block_n=256, group=2, trans=False, num_warps=8, num_stages=3)
    elif block == 64:
        for bn in (64, 128, 256):
            for w, s in ((4, 3), (4, 4), (8, 3)):
                add(block_n=bn, group=1, trans=False, num_warps=w, num_stages=s)
        add(block_n=128, group=1, trans=True, num_warps=4, num_stages=3)
        add(block_n=256, group=1, trans=True, num_warps=8, num_stages=3)
        add(block_n=128, group=2, trans=False, num_warps=4, num_stages=3)
        add(block_n=512, group=1, trans=False, num_warps=8, num_stages=2)
        add(block_n=512, group=1, trans=False, num_warps=8, num_stages=3)
        add(block_n=64, group=2, trans=False, num_warps=4, num_stages=3)
        add(block_n=256, group=2, trans=False, num_warps=8, num_stages=3)
        if tma:
            for bn, w, s in ((128, 4, 3), (128, 4, 4), (256, 8, 3), (256, 4, 3), (128, 4, 2),
                             (64, 4, 3), (64, 4, 4)):
                add(block_n=bn, num_warps=w, num_stages=s, kind="tma")
            for bn, w, s in ((128, 4, 3), (128, 8, 3), (256, 8, 3), (64, 4, 3)):
                add(block_n=bn, group=2, num_warps=w, num_stages=s, kind="tma")
    else:  # 128
        for bn in (64, 128, 256):
            for w, s in ((4, 3), (8, 3), (8, 2)):
                add(block_n=bn, group=1, trans=False, num_warps=w, num_stages=s)
        if tma:
            for bn, w, s in ((64, 4, 3), (128, 8, 3), (128, 4, 2)):
                add(block_n=bn, num_warps=w, num_stages=s, kind="tma")
    return out


DEFAULT_CONFIG = {16: Config(128, 4, True), 32: Config(128, 2, True),
                  64: Config(128, 1, False), 128: Config(64, 1, False)}

# What the tuner chose on the H200 (2026-11-30, benchmarks/results/bsr_bench.csv and
# bsr_tune.csv: n = 8192, k = 512, fp16), by block and by stored-block density up to
# the given bound; b128 from its own H200 sweep that day (benchmarks/results/bsr_b128/:
# the persistent kernel at every density from 0 to 95 % sparsity, 1.1-1.6x faster
# than the earlier H100 preset "ptr n64 g1 N w4 s3" in bsr_tune.csv). Used when tuning
# is off (e.g. through the backend registry, where a first call should not spend a
# minute compiling candidates).
PRESETS: dict[int, list[tuple[float, Config]]] = {
    16: [(0.15, Config.from_label("ptr n128 g4 N w4 s3")),
         (1.0, Config.from_label("ptr n128 g4 T w4 s3"))],
    32: [(0.15, Config.from_label("ptr n128 g2 T w4 s3")),
         (1.0, Config.from_label("ptr n128 g2 T w8 s4"))],
    64: [(0.075, Config.from_label("pers n128 o2 N w4 s8")),
         (0.55, Config.from_label("pers n256 o1 N w4 s7")),
         (1.0, Config.from_label("pers n256 o1 H w4 s9"))],
    128: [(1.0, Config.from_label("pers n128 o1 N w8 s5"))],
}
# The pointer-load twin of each TMA preset, for GPUs without TMA (before sm_90),
# for k not a multiple of 8, and for the CPU interpreter.
_PTR_TWIN = {"pers n128 o2 N w4 s8": Config.from_label("ptr n128 g1 N w4 s5"),
             "pers n256 o1 N w4 s7": Config.from_label("ptr n128 g1 N w4 s5"),
             "pers n256 o1 H w4 s9": Config.from_label("ptr n256 g1 N w8 s3"),
             "pers n128 o1 N w8 s5": Config.from_label("ptr n64 g1 N w8 s3"),
             "tma n128 g1 N w4 s7": Config.from_label("ptr n128 g1 N w4 s5")}
# When rows are cut into segments, the persistent kernel also carries the workspace
# epilogue (atomics, a branch, and shared memory that leaves room for fewer load
# stages): on the H200's power-law pattern (one row of 128 blocks, mean 9.8) it took
# 66.5 us against 19.8 us for the one-row TMA kernel with split rows
# (benchmarks/results/bsr_explore/balance.csv). Presets then use the one-row kernel
# the tuner chose there (b64), or the tuner's best one-row kernel of the b128 sweep
# (second to the persistent kernel at 75-95 % sparsity; not timed with cut rows).
SPLIT_PRESETS = {64: Config.from_label("tma n128 g1 N w4 s7"),
                 128: Config.from_label("tma n64 g1 N w4 s3")}


# Where the union schedule (two block rows per program sharing each B tile) beat the
# one-row kernel: b32 at 50-75 % sparsity, by 1.07-1.22x in both H100 runs of 2026-11-22
# and by 1.01-1.11x on the H200 (benchmarks/results/bsr_union.csv). (low density bound,
# high bound, config). Used only when no row will be cut (the union schedule never cuts
# rows) and TMA is there.
UNION_PRESETS: dict[int, list[tuple[float, float, Config]]] = {
    32: [(0.225, 0.55, Config.from_label("utma n256 r2 N w4 s3"))],
}


def preset_config(a: "BsrMatrix", b: torch.Tensor, split_len: Any = "auto") -> Config:
    """The tuner's choice for this block size and density (``PRESETS``; no timing).
    split_len: the segment length the call will use ("auto": ``auto_split_len(a)``,
    None: rows are never cut); where rows will be cut, neither the union schedule nor
    the persistent kernel is chosen (``SPLIT_PRESETS``)."""
    if split_len == "auto":
        split_len = auto_split_len(a)
    cut = split_len is not None and a.plan(split_len).n_split > 0
    dens = a.density
    for lo, hi, ucfg in UNION_PRESETS.get(a.block, ()):
        if lo < dens <= hi and _config_ok(a, b, ucfg) and not cut:
            return ucfg
    cfg = next(c for bound, c in PRESETS[a.block] if dens <= bound)
    if cut and cfg.kind == "pers":
        cfg = SPLIT_PRESETS.get(a.block, DEFAULT_CONFIG[a.block])
    if not _config_ok(a, b, cfg):
        cfg = _PTR_TWIN.get(cfg.label(), DEFAULT_CONFIG[a.block])
    return cfg

_TUNED: dict[tuple, Config] = {}
TUNE_LOG: list[dict] = []  # one row per (key, config) timed: what the tuner saw


def _tune_key(a: BsrMatrix, b: torch.Tensor) -> tuple:
    per_row = a.nnz_blocks / max(a.block_rows, 1)
    bucket = int(round(2 * math.log2(per_row))) if per_row >= 1 else -1  # half octaves
    return (a.block, int(b.shape[1]), str(a.dtype), bucket, a.block_rows >= 64)


# ----------------------------------------------------------------------------- launch
_INTERPRETED: dict[str, Any] = {}


def _kernel(name: str):
    """The jitted kernel, or its interpreted twin when TRITON_INTERPRET=1 was set after
    the kernels module had already been imported (e.g. by another test)."""
    from engine.sparse.kernels import _bsr_triton as kern

    fn = getattr(kern, name)
    if interpreting():
        from triton.runtime.interpreter import InterpretedFunction
        if not isinstance(fn, InterpretedFunction):
            if name not in _INTERPRETED:
                _INTERPRETED[name] = InterpretedFunction(fn.fn)
            fn = _INTERPRETED[name]
    return fn


def _launch(a: BsrMatrix, b: torch.Tensor, out: torch.Tensor, cfg: Config,
            split_len: int | None = None) -> None:
    if cfg.union:  # rows are never cut in the union schedule (split_len does not apply)
        _launch_union(a, b, out, cfg)
        return
    plan = a.plan(split_len)
    if plan.n_split:
        ws, cnt, max_tiles = plan.workspace(a.block, int(out.shape[1]), out.device)
        pieces = plan.pieces
    else:  # never touched by the kernel: no work item has a slot
        ws, cnt, pieces, max_tiles = out, a.col, a.col, 1
    if cfg.kind == "pers":
        _launch_persist(a, b, out, cfg, split_len, plan, ws, cnt, pieces, max_tiles)
        return
    _launch_items(a, b, out, cfg, plan.sched, ws, cnt, pieces, max_tiles)


def _launch_persist(a: BsrMatrix, b: torch.Tensor, out: torch.Tensor, cfg: Config,
                    split_len: int | None, plan: "WorkPlan", ws: torch.Tensor,
                    cnt: torch.Tensor, pieces: torch.Tensor, max_tiles: int) -> None:
    from triton.tools.tensor_descriptor import TensorDescriptor

    k = int(b.shape[1])
    pp = persist_plan(a, k, cfg.block_n, sm_count(a.device) * cfg.occ, split_len)
    if pp.empty_rows is not None:  # block rows with no stored block: no step writes them
        out.view(a.block_rows, a.block, k).index_fill_(0, pp.empty_rows, 0)
    bsz = a.block
    a_desc = TensorDescriptor.from_tensor(a.values.view(a.nnz_blocks * bsz, bsz), [bsz, bsz])
    b_desc = TensorDescriptor.from_tensor(b, [bsz, cfg.block_n])
    half_store = cfg.store == "H" and plan.n_split == 0
    y_box = cfg.block_n // 2 if half_store else cfg.block_n
    y_desc = TensorDescriptor.from_tensor(out, [bsz, y_box])
    upcast = interpreting() and b.dtype == torch.bfloat16

    def launch(stages: int) -> None:
        _kernel("bsr_mm_persist_kernel")[(pp.n_bins,)](
            pp.steps, pp.bins, plan.sched, a_desc, b_desc, y_desc, ws, cnt, pieces, k,
            max_tiles, BLK=bsz, BLOCK_N=cfg.block_n, UPCAST=upcast, SPLIT=plan.n_split > 0,
            HALF_STORE=half_store, num_warps=cfg.num_warps, num_stages=stages)

    # the workspace epilogue of split rows (and the full-width store when "H" cannot
    # halve it) needs shared memory the deepest pipelines use for loads: fewer stages then
    _with_fewer_stages_if_needed((cfg.label(), bsz, half_store, plan.n_split > 0),
                                 cfg.num_stages, launch)


_STAGES_FIT: dict[tuple, int] = {}


def _with_fewer_stages_if_needed(key: tuple, stages: int, launch) -> None:
    """launch(stages); when the compiled kernel needs more shared memory than the GPU
    has (triton OutOfResources, raised before anything runs), retry with one stage
    fewer, down to 2; the count that fits is remembered per key."""
    from triton.runtime.errors import OutOfResources

    stages = _STAGES_FIT.get(key, stages)
    while True:
        try:
            launch(stages)
        except OutOfResources:
            if stages <= 2:
                raise
            stages -= 1
            continue
        _STAGES_FIT[key] = stages
        return


def _launch_items(a: BsrMatrix, b: torch.Tensor, out: torch.Tensor, cfg: Config,
                  sched: torch.Tensor, ws: torch.Tensor, cnt: torch.Tensor,
                  pieces: torch.Tensor, max_tiles: int) -> None:
    k = int(b.shape[1])
    n_tiles = triton_cdiv(k, cfg.block_n)
    grid = (int(sched.shape[0]) * n_tiles,)
    upcast = interpreting() and b.dtype == torch.bfloat16  # CPU interpreter only
    if cfg.kind == "tma":
        from triton.tools.tensor_descriptor import TensorDescriptor
        bsz = a.block
        vals2d = a.values.view(a.nnz_blocks * bsz, bsz)
        a_desc = TensorDescriptor.from_tensor(vals2d, [bsz, bsz])
        b_desc = TensorDescriptor.from_tensor(b, [bsz, cfg.block_n])
        y_desc = TensorDescriptor.from_tensor(out, [bsz, cfg.block_n])
        _kernel("bsr_mm_tma_kernel")[grid](
            sched, a.col, a_desc, b_desc, y_desc, ws, cnt, pieces, k, n_tiles, max_tiles,
            BLK=bsz, BLOCK_N=cfg.block_n, GROUP=cfg.group, UPCAST=upcast,
            num_warps=cfg.num_warps, num_stages=cfg.num_stages)
        return
    _kernel("bsr_mm_kernel")[grid](
        sched, a.col, a.values, b, out, ws, cnt, pieces, k, n_tiles, max_tiles,
        BLK=a.block, GROUP=cfg.group, BLOCK_N=cfg.block_n, TRANS=cfg.trans,
        EVEN_N=(k % cfg.block_n == 0), UPCAST=upcast, num_warps=cfg.num_warps, num_stages=cfg.num_stages)


def _launch_union(a: BsrMatrix, b: torch.Tensor, out: torch.Tensor, cfg: Config) -> None:
    plan = union_plan(a, cfg.rows)
    k = int(b.shape[1])
    n_tiles = triton_cdiv(k, cfg.block_n)
    grid = (int(plan.gsched.shape[0]) * n_tiles,)
    upcast = interpreting() and b.dtype == torch.bfloat16  # CPU interpreter only
    b_desc = b
    if cfg.kind in ("utma", "uatma"):
        from triton.tools.tensor_descriptor import TensorDescriptor
        b_desc = TensorDescriptor.from_tensor(b, [a.block, cfg.block_n])
    if cfg.kind == "uatma":  # pairs of rows, A by TMA too (missing blocks: zero fill)
        bsz = a.block
        a_desc = TensorDescriptor.from_tensor(a.values.view(a.nnz_blocks * bsz, bsz), [bsz, bsz])
        _kernel("bsr_mm_union2_tma_kernel")[grid](
            plan.gsched, plan.entries, plan.members, a_desc, b_desc, out, k, n_tiles,
            a.nnz_blocks, BLK=bsz, BLOCK_N=cfg.block_n, UPCAST=upcast,
            num_warps=cfg.num_warps, num_stages=cfg.num_stages)
        return
    _kernel("bsr_mm_union_kernel")[grid](
        plan.gsched, plan.entries, plan.members, a.values, b, b_desc, out, k, n_tiles,
        BLK=a.block, RM=cfg.rows, BLOCK_N=cfg.block_n, USE_TMA=cfg.kind == "utma",
        SKIP=cfg.skip, EVEN_N=(k % cfg.block_n == 0), UPCAST=upcast,
        num_warps=cfg.num_warps, num_stages=cfg.num_stages)


def triton_cdiv(x: int, y: int) -> int:
    return -(-x // y)


_TMA_CAPABLE: dict[str, bool] = {}


def _has_tma(device: torch.device) -> bool:
    """True on sm_90+ GPUs (asked only for tensors already on that GPU)."""
    key = str(device)
    if key not in _TMA_CAPABLE:
        _TMA_CAPABLE[key] = torch.cuda.get_device_capability(device)[0] >= 9
    return _TMA_CAPABLE[key]


def _config_ok(a: BsrMatrix, b: torch.Tensor, cfg: Config) -> bool:
    if cfg.union:
        if cfg.rows < 1 or (cfg.skip and cfg.rows != 2) or cfg.group != 1 or cfg.trans:
            return False
        if cfg.kind == "uatma" and (cfg.rows != 2 or cfg.skip or a.nnz_blocks == 0):
            return False
        if cfg.kind in ("utma", "uatma"):
            if not (interpreting() and a.device.type == "cpu"):
                if not (a.device.type == "cuda" and _has_tma(a.device)):
                    return False
            return b.shape[1] % 8 == 0
        return True
    if cfg.kind in TMA_KINDS:
        if interpreting() and a.device.type == "cpu":
            where_ok = True
        else:
            where_ok = a.device.type == "cuda" and _has_tma(a.device)
        groups = (1, 2) if cfg.kind == "tma" else (1,)  # "pers": one stored block a step
        return (where_ok and a.nnz_blocks > 0 and b.shape[1] % 8 == 0
                and cfg.group in groups and not cfg.trans and cfg.occ >= 1
                and cfg.store in ("N", "H"))
    return cfg.kind == "ptr"


FLUSHES = ("write", "read", "none")


def graph_time(fn, n_inner: int = 8, reps: int = 7, flush_mb: int = 256,
               flush: str = "write") -> tuple[float, float, float]:
    """GPU time of ``fn()`` in ms as (median, q25, q75), free of Python launch cost:
    two CUDA graphs are captured, G1 = n_inner x (evict L2, fn) and G0 = the same
    without fn; each rep replays both (CUDA events) and the sample is
    (t(G1) - t(G0)) / n_inner. CUDA only; fn must be capturable.

    flush: how L2 is evicted before each call. "write" (what every benchmark here
    uses, like triton's do_bench) overwrites a ``flush_mb`` buffer, leaving L2 full of
    its dirty lines; "read" reads the buffer instead (clean lines); "none" does not
    evict, so fn finds its own data of the previous call in L2 (warm)."""
    if flush not in FLUSHES:
        raise ValueError(f"flush: expected one of {FLUSHES}, got {flush!r}")
    buf = torch.zeros(flush_mb * 2**20 // 4, dtype=torch.int32, device="cuda")

    def evict() -> None:
        if flush == "write":
            buf.zero_()
        elif flush == "read":
            buf.amax()  # reads every line; its one-number result is dropped
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):  # warm up (compile, allocate) outside the capture
        fn()
        fn()
    torch.cuda.current_stream().wait_stream(side)
    torch.cuda.synchronize()
    g1, g0 = torch.cuda.CUDAGraph(), torch.cuda.CUDAGraph()
    with torch.cuda.graph(g1):
        for _ in range(n_inner):
            evict()
            fn()
    with torch.cuda.graph(g0):
        for _ in range(n_inner):
            evict()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    g1.replay()
    g0.replay()
    samples = []
    for _ in range(reps):
        pair = []
        for g in (g1, g0):
            start.record()
            g.replay()
            end.record()
            end.synchronize()
            pair.append(start.elapsed_time(end))
        samples.append((pair[0] - pair[1]) / n_inner)
    del g1, g0, buf
    q = torch.tensor(samples, dtype=torch.float64).quantile(
        torch.tensor([0.5, 0.25, 0.75], dtype=torch.float64))
    return float(q[0]), float(q[1]), float(q[2])


def tune(a: BsrMatrix, b: torch.Tensor, configs: list[Config] | None = None,
         split_len: int | None = None) -> Config:
    """Time every candidate on these inputs (``graph_time``: GPU time with L2 evicted
    before each call, no Python launch cost) and remember the fastest for this
    shape's key. A candidate that fails to compile or run is logged and skipped."""
    key = _tune_key(a, b)
    out = torch.empty(a.shape[0], b.shape[1], dtype=b.dtype, device=b.device)
    best, best_ms = None, float("inf")
    for cfg in configs or candidate_configs(a.block, int(b.shape[1])):
        if not _config_ok(a, b, cfg):
            continue
        try:
            ms = graph_time(lambda: _launch(a, b, out, cfg, split_len), n_inner=4, reps=5)[0]
            err = ""
        except Exception as exc:  # a config the compiler or the chip refuses
            ms, err = float("nan"), f"{type(exc).__name__}: {str(exc)[:200]}"
        TUNE_LOG.append({"key": str(key), **cfg.as_dict(), "ms": ms, "error": err})
        if ms == ms and ms < best_ms:
            best, best_ms = cfg, ms
    if best is None:
        raise RuntimeError(f"lab-bsr: no configuration ran for key {key}")
    _TUNED[key] = best
    return best


def chosen_config(a: Any, b: torch.Tensor) -> Config | None:
    """The tuned configuration for these inputs, if tuned already."""
    return _TUNED.get(_tune_key(as_bsr(a), b))


def _split_len(a: BsrMatrix, split: Any) -> int | None:
    if split == "auto":
        return auto_split_len(a)
    if split is None or split is False:
        return None
    if isinstance(split, bool) or not isinstance(split, int) or split < 1:
        raise ValueError(f"split: expected 'auto', None or a positive int, got {split!r}")
    return split


def bsr_matmul(a: Any, b: torch.Tensor, *, config: Config | None = None,
               autotune: bool = True, out: torch.Tensor | None = None,
               split: Any = "auto") -> torch.Tensor:
    """Y = A @ B with lab-bsr. a: BsrMatrix or torch sparse_bsr [m, n]; b: dense [n, k]
    in A's dtype (fp16 or bf16). Returns Y [m, k] in that dtype (fp32 accumulation).

    config: launch exactly this ``Config``; otherwise the tuned one for this key
    (tuned on first use on CUDA when ``autotune``), else ``preset_config`` (the
    tuner's recorded choice for this block, density and split).
    split: "auto" cuts block rows longer than twice the mean into segments (see
    ``auto_split_len``); an int cuts rows longer than that; None never cuts. Union
    configurations (kinds "uptr", "utma", "uatma") never cut rows: split is ignored."""
    a = as_bsr(a)
    _check_shapes(a, b)
    why = support_reason(a, b)
    if why:
        raise ValueError(f"lab-bsr: {why}")
    if b.numel() >= 2**31:
        raise ValueError(f"b: expected fewer than 2**31 elements (int32 offsets in the "
                         f"kernel), got {b.numel()}")
    b = b.contiguous()
    m, k = a.shape[0], int(b.shape[1])
    if out is None:
        out = torch.empty(m, k, dtype=b.dtype, device=b.device)
    elif tuple(out.shape) != (m, k) or out.dtype != b.dtype or not out.is_contiguous():
        raise ValueError(f"out: expected a contiguous {b.dtype} tensor of shape {(m, k)}, "
                         f"got {out.dtype} {tuple(out.shape)}")
    if m == 0 or k == 0:
        return out
    if a.nnz_blocks == 0:
        return out.zero_()
    split_len = _split_len(a, split)
    cfg = config
    if cfg is None:
        key = _tune_key(a, b)
        cfg = _TUNED.get(key)
        if cfg is None:
            if autotune and a.device.type == "cuda" and not interpreting():
                cfg = tune(a, b, split_len=split_len)
            else:
                cfg = preset_config(a, b, split_len)
    if not _config_ok(a, b, cfg):
        raise ValueError(f"config: expected a configuration valid for these inputs, got "
                         f"{cfg.label()}")
    _launch(a, b, out, cfg, split_len)
    return out


# ----------------------------------------------------------------------------- registry
def _backend_check(spec: Any) -> str | None:
    block = int(getattr(spec, "block", 0) or 0)
    if block not in BLOCK_SIZES:
        return f"unsupported: expected square blocks of 16, 32, 64 or 128 for lab-bsr, got {block}"
    why = triton_status()
    return f"unsupported: expected triton importable for lab-bsr, got {why}" if why else None


def _backend_prepare(a: torch.Tensor, spec: Any) -> BsrMatrix:
    """Dense (m, n) -> BsrMatrix keeping every block that holds a nonzero."""
    return BsrMatrix.from_dense(a.contiguous(), int(spec.block))


def _backend_matmul(a: BsrMatrix, x: torch.Tensor) -> torch.Tensor:
    """x (n,) -> (m,), or (n, k) -> (m, k); presets, no tuning on first use."""
    if x.dim() == 1:
        return bsr_matmul(a, x.reshape(-1, 1), autotune=False).reshape(-1)
    return bsr_matmul(a, x, autotune=False)


def _backend_bytes(a: BsrMatrix) -> int:
    return int(a.values.numel() * a.values.element_size() + a.col.numel() * 4
               + a.crow.numel() * 4)


def _register() -> None:
    from engine.sparse.formats import Backend, register_backend

    register_backend(Backend(
        name=NAME, format="bsr", library="triton",
        dtypes={"cuda": ("float16", "bfloat16")},
        prepare=_backend_prepare, matmul=_backend_matmul,
        to_dense=lambda a: a.to_dense(), needs_block=True, check=_backend_check,
        bytes_of=_backend_bytes, ops=("spmv", "spmm"),
        description="the lab's own Triton kernel for block-sparse (BSR) x dense, fp32 "
                    "accumulation, tiles preset from an H200 tuning run",
    ), replace=True)


_register()
