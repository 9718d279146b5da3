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

These are the kernels as they were in the library (same arguments), for a trial that
wants them again: launch them with ``kernel[grid](...)`` as
engine/sparse/kernels/bsr_launch.py did before (git history: commit 41fe348).
"""
from __future__ import annotations

from engine.sparse.kernels._bsr_triton import AVAILABLE

if AVAILABLE:
    import triton
    import triton.language as tl

    from engine.sparse.kernels._bsr_triton import _mma, _segment_store  # noqa: F401

    @triton.jit
    def bsr_mm_tma_kernel(
        sched_ptr, col_ptr, a_desc, b_desc, y_desc, ws_ptr, cnt_ptr, np_ptr, K_COLS, N_TILES,
        MAX_TILES,
        BLK: tl.constexpr, BLOCK_N: tl.constexpr, GROUP: tl.constexpr, UPCAST: tl.constexpr,
    ):
        """Same schedule as ``bsr_mm_kernel`` (TRANS=False), with every tile moved by
        the tensor-memory accelerator through host-built descriptors: a_desc over
        values viewed as [nnz * BLK, BLK], b_desc over B, y_desc over Y. GROUP=2 takes
        two stored blocks per step (an odd last block is done after the loop)."""
        pid = tl.program_id(0)
        rec = sched_ptr + (pid // N_TILES) * 4
        row = tl.load(rec)
        start = tl.load(rec + 1)
        end = tl.load(rec + 2)
        slot = tl.load(rec + 3)
        tile = pid % N_TILES
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
                col = tl.load(col_ptr + end - 1)
                a = a_desc.load([(end - 1) * BLK, 0])
                bb = b_desc.load([col * BLK, n0])
                acc = _mma(a, bb, acc, UPCAST)
        else:
            for j in range(start, end):
                col = tl.load(col_ptr + j)
                a = a_desc.load([j * BLK, 0])
                bb = b_desc.load([col * BLK, n0])
                acc = _mma(a, bb, acc, UPCAST)
        if slot < 0:
            y_desc.store([row * BLK, n0], acc.to(y_desc.dtype))
        else:
            _segment_store(acc, row, slot, tile, n0, ws_ptr, cnt_ptr, np_ptr, y_desc, K_COLS,
                           MAX_TILES, BLK, BLOCK_N)


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
        missing block is skipped instead of multiplying zeros.
        gs_ptr: int32 [G, 4] (group, first entry, end, 0) in launch order; grow_ptr:
        int32 [G_total, RM] block row of each member (-1: padding, not written)."""
        pid = tl.program_id(0)
        rec = gs_ptr + (pid // N_TILES) * 4
        grp = tl.load(rec)
        start = tl.load(rec + 1)
        end = tl.load(rec + 2)
        tile = pid % N_TILES
        n0 = tile * BLOCK_N
        offs_k = tl.arange(0, BLK)
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_mask = offs_n < K_COLS
        if SKIP:
            acc0 = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
            acc1 = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
            for e in range(start, end):
                ent = ent_ptr + e * 3
                col = tl.load(ent)
                i0 = tl.load(ent + 1)
                i1 = tl.load(ent + 2)
                if USE_TMA:
                    bb = b_desc.load([col * BLK, n0])
                else:
                    bptrs = b_ptr + (col * BLK + offs_k)[:, None] * K_COLS + offs_n[None, :]
                    if EVEN_N:
                        bb = tl.load(bptrs)
                    else:
                        bb = tl.load(bptrs, mask=n_mask[None, :], other=0.0)
                if i0 >= 0:
                    a0 = tl.load(val_ptr + i0 * (BLK * BLK) + offs_k[:, None] * BLK + offs_k[None, :])
                    acc0 = _mma(a0, bb, acc0, UPCAST)
                if i1 >= 0:
                    a1 = tl.load(val_ptr + i1 * (BLK * BLK) + offs_k[:, None] * BLK + offs_k[None, :])
                    acc1 = _mma(a1, bb, acc1, UPCAST)
            for i in tl.static_range(2):
                row = tl.load(grow_ptr + grp * 2 + i)
                if i == 0:
                    out = acc0
                else:
                    out = acc1
                y_rows = row * BLK + offs_k
                ymask = n_mask[None, :] & (offs_k[:, None] < BLK) & (row >= 0)
                yptrs = y_ptr + y_rows[:, None].to(tl.int64) * K_COLS + offs_n[None, :]
                tl.store(yptrs, out.to(y_ptr.dtype.element_ty), mask=ymask)
        else:
            offs_m = tl.arange(0, RM * BLK)
            sub = offs_m // BLK
            r = offs_m % BLK
            acc = tl.zeros((RM * BLK, BLOCK_N), dtype=tl.float32)
            for e in range(start, end):
                ent = ent_ptr + e * (RM + 1)
                col = tl.load(ent)
                idx = tl.load(ent + 1 + sub)  # [RM * BLK]: stored block of each row's member
                has = idx >= 0
                a = tl.load(val_ptr + idx[:, None] * (BLK * BLK) + r[:, None] * BLK + offs_k[None, :],
                            mask=has[:, None], other=0.0)
                if USE_TMA:
                    bb = b_desc.load([col * BLK, n0])
                else:
                    bptrs = b_ptr + (col * BLK + offs_k)[:, None] * K_COLS + offs_n[None, :]
                    if EVEN_N:
                        bb = tl.load(bptrs)
                    else:
                        bb = tl.load(bptrs, mask=n_mask[None, :], other=0.0)
                acc = _mma(a, bb, acc, UPCAST)
            rows = tl.load(grow_ptr + grp * RM + sub)
            y_rows = rows * BLK + r
            ymask = (rows >= 0)[:, None] & n_mask[None, :]
            yptrs = y_ptr + y_rows[:, None].to(tl.int64) * K_COLS + offs_n[None, :]
            tl.store(yptrs, acc.to(y_ptr.dtype.element_ty), mask=ymask)


    @triton.jit
    def bsr_mm_union2_tma_kernel(
        gs_ptr, ent_ptr, grow_ptr, a_desc, b_desc, y_ptr, K_COLS, N_TILES, NNZ,
        BLK: tl.constexpr, BLOCK_N: tl.constexpr, UPCAST: tl.constexpr,
    ):
        """The union schedule for pairs of block rows with every tile moved by TMA: per
        entry one B tile and the two A blocks (a missing block is addressed past the end
        of ``values``, so the TMA unit fills zeros without reading memory), two MMAs
        into two accumulators [BLK, BLOCK_N]; no branches in the loop."""
        pid = tl.program_id(0)
        rec = gs_ptr + (pid // N_TILES) * 4
        grp = tl.load(rec)
        start = tl.load(rec + 1)
        end = tl.load(rec + 2)
        tile = pid % N_TILES
        n0 = tile * BLOCK_N
        acc0 = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
        acc1 = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
        for e in range(start, end):
            ent = ent_ptr + e * 3
            col = tl.load(ent)
            i0 = tl.load(ent + 1)
            i1 = tl.load(ent + 2)
            i0 = tl.where(i0 >= 0, i0, NNZ)
            i1 = tl.where(i1 >= 0, i1, NNZ)
            bb = b_desc.load([col * BLK, n0])
            a0 = a_desc.load([i0 * BLK, 0])
            a1 = a_desc.load([i1 * BLK, 0])
            acc0 = _mma(a0, bb, acc0, UPCAST)
            acc1 = _mma(a1, bb, acc1, UPCAST)
        offs_r = tl.arange(0, BLK)
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_mask = offs_n < K_COLS
        for i in tl.static_range(2):
            row = tl.load(grow_ptr + grp * 2 + i)
            if i == 0:
                out = acc0
            else:
                out = acc1
            y_rows = row * BLK + offs_r
            ymask = n_mask[None, :] & (offs_r[:, None] < BLK) & (row >= 0)
            yptrs = y_ptr + y_rows[:, None].to(tl.int64) * K_COLS + offs_n[None, :]
            tl.store(yptrs, out.to(y_ptr.dtype.element_ty), mask=ymask)
