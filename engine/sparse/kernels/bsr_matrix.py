"""lab-bsr's container: ``BsrMatrix`` (block-sparse rows with square blocks), its
conversions, the per-matrix work plan of block rows (``WorkPlan``, ``auto_split_len``)
and the plain-torch reference product ``bsr_matmul_reference``.

Everything that depends only on the matrix is computed once and cached on it
(``_plans``): launch order, split plans, persistent and union plans, and the
launchers ``engine.sparse.kernels.bsr_matmul`` builds per (k, dtype, configuration).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import torch

BLOCK_SIZES = (16, 32, 64, 128)
DTYPES = (torch.float16, torch.bfloat16)


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



def _check_block(block: Any) -> None:
    if block not in BLOCK_SIZES:
        raise ValueError(f"block: expected square blocks of 16, 32, 64 or 128, got {block!r}")


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
