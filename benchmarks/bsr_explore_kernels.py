"""lab-bsr kernel variants that were explored and are used by no preset, kept runnable
beside their evidence (moved out of engine/sparse/kernels/_bsr_triton.py on 2026-12-02).

* ``bsr_mm_tma_kernel`` with GROUP=2 (two stored blocks a step): never the tuner's
  choice on the H200 (benchmarks/results/bsr_tune.csv, 2026-11-30: kind "tma" rows with
  group 2 lose to group 1 and to the persistent kernel at every b64 density).
* ``bsr_mm_union_kernel`` with USE_TMA=False (kind "uptr", pointer loads of B) and
  SKIP=True (kind "u* r2 S", two accumulators, MMA of missing blocks skipped): "uptr"
  was slower than "utma" at every key of bsr_tune.csv; SKIP was 1.3-2x slower than r2
  on the H100 (2026-11-22, benchmarks/results/bsr-h100-2026-11-22/).
* ``bsr_mm_union2_tma_kernel`` (kind "uatma", pairs of rows with A by TMA and
  zero-filled missing blocks): never the fastest kind at any key of bsr_tune.csv
  (e.g. b32 at 50-60 % sparsity: 167 / 143 us against "utma" 143 / 125 us).

The kernels take the arguments they took in the library (git history: commit 41fe348,
engine/sparse/kernels/bsr_launch.py, launched them). ``explored_matmul(a, b, variant)``
runs one of ``VARIANTS`` on a lab ``BsrMatrix`` with the library's own host pieces
(work plans, union plan, TMA descriptors); under ``TRITON_INTERPRET=1`` (set before
triton is imported) it runs on the CPU, which tests/unit/test_bsr_explore_kernels.py does.

What these kernels share is written once, as small ``@triton.jit`` helpers: the ones the
library's kernels use too (``_work_item``, ``_tma_write``, ``_union_a_tile``,
``_union_store``, ``_mma``, ``_segment_store``) are imported from engine/sparse/kernels/_bsr_triton.py, the rest
(``_tile_columns``, ``_b_tile``, ...) are here. On the H200 the library's helpers were
checked against the inline lines they replaced (benchmarks/results/bsr_percall/ptx_check.md):
``_work_item`` and ``_tma_write`` compile to the same normalized PTX; the union kernel's
two compile to other instructions of the same length and the same time within 1 %.
"""
from __future__ import annotations

from engine.sparse.kernels._bsr_triton import AVAILABLE

# variant -> (kernel, options): the explored kinds as the tuning CSVs label them
VARIANTS = {
    "tma g2": ("tma", {"group": 2}),
    "uptr r2": ("union", {"rows": 2, "use_tma": False, "skip": False}),
    "uptr r4": ("union", {"rows": 4, "use_tma": False, "skip": False}),
    "uptr r2 S": ("union", {"rows": 2, "use_tma": False, "skip": True}),
    "utma r2 S": ("union", {"rows": 2, "use_tma": True, "skip": True}),
    "uatma r2": ("union2", {"rows": 2}),
}

if AVAILABLE:
    import triton
    import triton.language as tl

    from engine.sparse.kernels._bsr_triton import (_mma, _segment_store, _tma_write, _union_a_tile,
                                                   _union_store, _work_item)

    @triton.jit
    def _tile_columns(tile, BLOCK_N: tl.constexpr, K_COLS):
        """First column n0 of a tile, its columns [BLOCK_N] and which of them exist."""
        n0 = tile * BLOCK_N
        offs_n = n0 + tl.arange(0, BLOCK_N)
        return n0, offs_n, offs_n < K_COLS

    @triton.jit
    def _tma_step(col_ptr, a_desc, b_desc, j, n0, acc, BLK: tl.constexpr, UPCAST: tl.constexpr):
        """acc += stored block j times its B tile, both by TMA."""
        return _mma(a_desc.load([j * BLK, 0]), b_desc.load([tl.load(col_ptr + j) * BLK, n0]), acc,
                    UPCAST)

    @triton.jit
    def _b_tile(b_ptr, b_desc, col, n0, offs_k, offs_n, n_mask, K_COLS, BLK: tl.constexpr,
                USE_TMA: tl.constexpr, EVEN_N: tl.constexpr):
        """The B tile [BLK, BLOCK_N] of block column ``col``: by TMA, or by pointer loads."""
        if USE_TMA:
            bb = b_desc.load([col * BLK, n0])
        else:
            bptrs = b_ptr + (col * BLK + offs_k)[:, None] * K_COLS + offs_n[None, :]
            if EVEN_N:
                bb = tl.load(bptrs)
            else:
                bb = tl.load(bptrs, mask=n_mask[None, :], other=0.0)
        return bb

    @triton.jit
    def _pair_entry(ent_ptr, e):
        """Entry e of the pairs-of-rows union schedule: (column, block of row 0 or -1,
        block of row 1 or -1)."""
        ent = ent_ptr + e * 3
        return tl.load(ent), tl.load(ent + 1), tl.load(ent + 2)

    @triton.jit
    def _store_rows(y_ptr, out, y_rows, ymask, offs_n, K_COLS):
        """Store ``out`` at rows ``y_rows`` and columns ``offs_n`` of Y (int64 offsets)."""
        yptrs = y_ptr + y_rows[:, None].to(tl.int64) * K_COLS + offs_n[None, :]
        tl.store(yptrs, out.to(y_ptr.dtype.element_ty), mask=ymask)

    @triton.jit
    def _store_pair(y_ptr, acc0, acc1, grow_ptr, grp, offs_n, n_mask, K_COLS, BLK: tl.constexpr):
        """Write the two accumulators [BLK, BLOCK_N] of a pair of block rows (a member
        row of -1 is padding: not written)."""
        offs_r = tl.arange(0, BLK)
        for i in tl.static_range(2):
            row = tl.load(grow_ptr + grp * 2 + i)
            if i == 0:
                out = acc0
            else:
                out = acc1
            _store_rows(y_ptr, out, row * BLK + offs_r,
                        n_mask[None, :] & (offs_r[:, None] < BLK) & (row >= 0), offs_n, K_COLS)

    @triton.jit
    def bsr_mm_tma_kernel(
        sched_ptr, col_ptr, a_desc, b_desc, y_desc, ws_ptr, cnt_ptr, np_ptr, K_COLS, N_TILES,
        MAX_TILES,
        BLK: tl.constexpr, BLOCK_N: tl.constexpr, GROUP: tl.constexpr, UPCAST: tl.constexpr,
    ):
        """Same schedule as the library's ``bsr_mm_kernel`` (TRANS=False), with every tile
        moved by the tensor-memory accelerator through host-built descriptors: a_desc over
        values viewed as [nnz * BLK, BLK], b_desc over B, y_desc over Y. GROUP=2 takes two
        stored blocks per step (an odd last block is done after the loop); GROUP=1 is the
        library's ``bsr_mm_tma_kernel``."""
        row, start, end, slot, tile = _work_item(sched_ptr, N_TILES)
        n0 = tile * BLOCK_N
        acc = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
        if GROUP == 2:
            for j in range(start, end - 1, 2):
                c0 = tl.load(col_ptr + j)
                c1 = tl.load(col_ptr + j + 1)
                a0 = a_desc.load([j * BLK, 0])
                a1 = a_desc.load([(j + 1) * BLK, 0])
                b0 = b_desc.load([c0 * BLK, n0])
                b1 = b_desc.load([c1 * BLK, n0])
                acc = _mma(a0, b0, acc, UPCAST)
                acc = _mma(a1, b1, acc, UPCAST)
            if (end - start) % 2 == 1:
                acc = _tma_step(col_ptr, a_desc, b_desc, end - 1, n0, acc, BLK, UPCAST)
        else:
            for j in range(start, end):
                acc = _tma_step(col_ptr, a_desc, b_desc, j, n0, acc, BLK, UPCAST)
        _tma_write(acc, row, slot, tile, n0, ws_ptr, cnt_ptr, np_ptr, y_desc, K_COLS, MAX_TILES,
                   BLK, BLOCK_N)

    @triton.jit
    def bsr_mm_union_kernel(
        gs_ptr, ent_ptr, grow_ptr, val_ptr, b_ptr, b_desc, y_ptr, K_COLS, N_TILES,
        BLK: tl.constexpr, RM: tl.constexpr, BLOCK_N: tl.constexpr, USE_TMA: tl.constexpr,
        SKIP: tl.constexpr, EVEN_N: tl.constexpr, UPCAST: tl.constexpr,
    ):
        """Several block rows per program, so that each B tile is loaded once for all of
        them ("union" schedule, built on the host by ``union_plan``).

        One program owns a group of RM block rows (RM * BLK rows of Y) and one tile of
        BLOCK_N columns. It walks the UNION of the block columns stored in those rows:
        entry e of the group is (column, idx_0 .. idx_{RM-1}) where idx_i is the stored
        block of row i at that column or -1. Per entry the B tile [BLK, BLOCK_N] is
        loaded once (TMA descriptor when USE_TMA, else pointer loads) and multiplied by
        the A tile [RM * BLK, BLK] whose missing blocks are masked loads (zeros, no
        memory traffic). SKIP (RM == 2 only): two accumulators, and the MMA of a
        missing block is skipped instead of multiplying zeros. USE_TMA without SKIP is
        the library's ``bsr_mm_union_kernel``.
        gs_ptr: int32 [G, 4] (group, first entry, end, 0) in launch order; grow_ptr:
        int32 [G_total, RM] block row of each member (-1: padding, not written)."""
        grp, start, end, _slot, tile = _work_item(gs_ptr, N_TILES)
        n0, offs_n, n_mask = _tile_columns(tile, BLOCK_N, K_COLS)
        offs_k = tl.arange(0, BLK)
        if SKIP:
            acc0 = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
            acc1 = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
            for e in range(start, end):
                col, i0, i1 = _pair_entry(ent_ptr, e)
                bb = _b_tile(b_ptr, b_desc, col, n0, offs_k, offs_n, n_mask, K_COLS,
                             BLK, USE_TMA, EVEN_N)
                if i0 >= 0:
                    a0 = tl.load(val_ptr + i0 * (BLK * BLK) + offs_k[:, None] * BLK + offs_k[None, :])
                    acc0 = _mma(a0, bb, acc0, UPCAST)
                if i1 >= 0:
                    a1 = tl.load(val_ptr + i1 * (BLK * BLK) + offs_k[:, None] * BLK + offs_k[None, :])
                    acc1 = _mma(a1, bb, acc1, UPCAST)
            _store_pair(y_ptr, acc0, acc1, grow_ptr, grp, offs_n, n_mask, K_COLS, BLK)
        else:
            acc = tl.zeros((RM * BLK, BLOCK_N), dtype=tl.float32)
            for e in range(start, end):
                col, a = _union_a_tile(ent_ptr, e, val_ptr, RM, BLK)
                bb = _b_tile(b_ptr, b_desc, col, n0, offs_k, offs_n, n_mask, K_COLS, BLK,
                             USE_TMA, EVEN_N)
                acc = _mma(a, bb, acc, UPCAST)
            _union_store(y_ptr, acc, grow_ptr, grp, offs_n, n_mask, K_COLS, RM, BLK)

    @triton.jit
    def bsr_mm_union2_tma_kernel(
        gs_ptr, ent_ptr, grow_ptr, a_desc, b_desc, y_ptr, K_COLS, N_TILES, NNZ,
        BLK: tl.constexpr, BLOCK_N: tl.constexpr, UPCAST: tl.constexpr,
    ):
        """The union schedule for pairs of block rows with every tile moved by TMA: per
        entry one B tile and the two A blocks (a missing block is addressed past the end
        of ``values``, so the TMA unit fills zeros without reading memory), two MMAs
        into two accumulators [BLK, BLOCK_N]; no branches in the loop."""
        grp, start, end, _slot, tile = _work_item(gs_ptr, N_TILES)
        n0, offs_n, n_mask = _tile_columns(tile, BLOCK_N, K_COLS)
        acc0 = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
        acc1 = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
        for e in range(start, end):
            col, i0, i1 = _pair_entry(ent_ptr, e)
            bb = b_desc.load([col * BLK, n0])
            a0 = a_desc.load([tl.where(i0 >= 0, i0, NNZ) * BLK, 0])
            a1 = a_desc.load([tl.where(i1 >= 0, i1, NNZ) * BLK, 0])
            acc0 = _mma(a0, bb, acc0, UPCAST)
            acc1 = _mma(a1, bb, acc1, UPCAST)
        _store_pair(y_ptr, acc0, acc1, grow_ptr, grp, offs_n, n_mask, K_COLS, BLK)


def explored_matmul(a, b, variant: str, block_n: int = 64, split_len: int | None = None,
                    num_warps: int = 4, num_stages: int = 3, out=None):
    """Y = A @ B [n_rows, k] by one explored ``variant`` (a key of VARIANTS), into ``out``
    when given.

    a: engine.sparse.kernels.bsr_matmul.BsrMatrix (fp16 / bf16 values); b: [n_cols, k]
    contiguous, same dtype and device (a CUDA GPU with TMA, or the CPU under
    TRITON_INTERPRET=1); split_len cuts longer rows into segments ("tma g2" only: the
    union schedule never cuts rows). The host side is the library's: ``a.plan``,
    ``union_plan``, ``bsr_launch._descriptor``."""
    import torch

    from engine.sparse.kernels.bsr_configs import interpreting
    from engine.sparse.kernels.bsr_launch import _descriptor
    from engine.sparse.kernels.bsr_plans import union_plan
    from engine.validate import check_choice

    kernel, opts = VARIANTS[check_choice("variant", variant, VARIANTS)]
    if not AVAILABLE:
        from engine.sparse.kernels._bsr_triton import IMPORT_ERROR
        raise RuntimeError(f"triton: expected it importable, got {IMPORT_ERROR}")
    k, bsz = int(b.shape[1]), a.block
    if out is None:
        out = torch.empty(a.shape[0], k, dtype=b.dtype, device=b.device)
    upcast = interpreting() and b.dtype == torch.bfloat16  # as the library: CPU interpreter only
    n_tiles = -(-k // block_n)
    launch = {"num_warps": num_warps, "num_stages": num_stages}
    a_desc = _descriptor(a.values.view(a.nnz_blocks * bsz, bsz), [bsz, bsz])
    b_desc = _descriptor(b, [bsz, block_n])
    if kernel == "tma":
        plan = a.plan(split_len)
        if plan.n_split:
            ws, cnt, max_tiles = plan.workspace(bsz, k, a.device)
            pieces = plan.pieces
        else:  # never touched: no work item has a slot
            ws, cnt, pieces, max_tiles = a.values, a.col, a.col, 1
        bsr_mm_tma_kernel[(int(plan.sched.shape[0]) * n_tiles,)](
            plan.sched, a.col, a_desc, b_desc, _descriptor(out, [bsz, block_n]), ws, cnt, pieces,
            k, n_tiles, max_tiles, bsz, block_n, opts["group"], upcast, **launch)
        return out
    plan = union_plan(a, opts["rows"])
    grid = (int(plan.gsched.shape[0]) * n_tiles,)
    if kernel == "union2":
        bsr_mm_union2_tma_kernel[grid](plan.gsched, plan.entries, plan.members, a_desc, b_desc, out,
                                       k, n_tiles, a.nnz_blocks, bsz, block_n, upcast, **launch)
    else:
        bsr_mm_union_kernel[grid](plan.gsched, plan.entries, plan.members, a.values, b, b_desc, out,
                                  k, n_tiles, bsz, opts["rows"], block_n, opts["use_tma"], opts["skip"],
                                  k % block_n == 0, upcast, **launch)
    return out
