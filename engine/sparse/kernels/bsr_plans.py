"""lab-bsr's host-side planners, each run once per matrix and cached on it:

* ``union_plan`` / ``group_rows``: groups of block rows that walk the union of their
  block columns (kind "utma"), so each B tile is loaded once for all of them;
* ``persist_plan``: host-balanced runs of precomputed steps for the persistent kernel
  (kind "pers"), longest work item first into the least loaded bin.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from engine.sparse.kernels.bsr_cache import KERNEL_CACHE
from engine.sparse.kernels.bsr_matrix import BsrMatrix


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


def sm_count(device: torch.device) -> int:
    """Streaming multiprocessors of a CUDA device (4 under the CPU interpreter; kept in
    ``KERNEL_CACHE``)."""
    if device.type != "cuda":
        return 4
    return KERNEL_CACHE.get_or_make(
        ("sm_count", str(device)),
        lambda: torch.cuda.get_device_properties(device).multi_processor_count)
