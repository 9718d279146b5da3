"""Triton kernels behind ``engine.sparse.kernels.bsr_matmul`` (imported lazily, only on use).

Y = A @ B with A block-sparse (BSR: ``crow`` [R + 1], ``col`` [nnz], ``values``
[nnz, BLK, BLK]), B dense [n_cols_A, K] (row-major, contiguous) and Y dense [R * BLK, K].

One program owns one block row of A (BLK rows of Y) and one tile of BLOCK_N
columns of Y; it walks the stored blocks of its row and accumulates in fp32.
Programs are launched in the order given by ``sched`` (int32 [R, 4]: block row,
first stored block, end, 0; rows sorted by stored-block count, longest first), so
that the GPU's block scheduler starts the long rows first and fills the tail with
short ones (a greedy longest-first schedule; empty rows only write zeros). One
record per work item means a program reads its row, start and end in one round
trip. A block row much longer than the mean can be split into segments (record
field 3 = its slot >= 0 in an fp32 workspace, else -1): each segment adds its
partial product into the workspace with atomics and then bumps a per-(row, tile)
counter; the segment that arrives last reads the sum back (an atomic add of
zero, served by L2), writes Y, and zeroes the workspace rows and the counter. So one launch does it all and
the workspace is left clean for the next call (one call at a time per plan).

Two formulations of the inner product, chosen per shape by the tuner:

* ``TRANS = False``: acc[BLK, BLOCK_N] += A_chunk[BLK, G*BLK] @ B_rows[G*BLK, BLOCK_N]
* ``TRANS = True``:  acc[BLOCK_N, BLK] += B_rows^T[BLOCK_N, G*BLK] @ A_chunk^T[G*BLK, BLK]
  (the matrix unit's M dimension is then BLOCK_N rather than BLK, which suits
  small blocks: M = 16 or 32 wastes most of a Hopper warpgroup MMA).

``GROUP`` (G) stored blocks of one row are consumed per step, so that the
reduction dimension of each ``tl.dot`` is G * BLK even for 16 x 16 blocks.

``bsr_mm_tma_kernel``: the same schedule with TMA tiles (the presets' kernel where rows
are cut); ``bsr_mm_union_kernel``: the union schedule (several block rows per program
sharing each B tile, b32 presets); ``bsr_mm_persist_kernel``: one or two programs per
SM walking host-balanced runs of precomputed steps (b64/b128 presets); see their
docstrings. Only variants a preset uses live here; the explored ones (the union kernel
with pointer loads or MMA skipping, the pairs-of-rows union kernel with A by TMA, the
TMA kernel taking two blocks a step) are in benchmarks/bsr_explore_kernels.py with
their evidence.

This module imports triton at the top but guards it, so that importing the
engine never fails where triton is missing; ``AVAILABLE`` / ``IMPORT_ERROR`` say why.
"""
from __future__ import annotations

try:  # triton is optional: the engine must import without it
    import triton
    import triton.language as tl

    AVAILABLE = True
    IMPORT_ERROR = ""
except Exception as exc:  # pragma: no cover - depends on the machine
    triton = None
    tl = None
    AVAILABLE = False
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"


if AVAILABLE:

    @triton.jit
    def _mma(x, y, acc, UPCAST: tl.constexpr):
        # UPCAST is only ever True under the CPU interpreter, whose bf16 tl.dot returns
        # garbage (seen with triton 3.7.1); on a GPU the operands go to tl.dot as they are.
        if UPCAST:
            return tl.dot(x.to(tl.float32), y.to(tl.float32), acc)
        else:
            return tl.dot(x, y, acc)

    @triton.jit
    def _work_item(sched_ptr, N_TILES):
        """This program's record of the schedule (int32 [P, 4]: row or group, first stored
        block or entry, end, slot) and its tile of BLOCK_N columns."""
        pid = tl.program_id(0)
        rec = sched_ptr + (pid // N_TILES) * 4
        return tl.load(rec), tl.load(rec + 1), tl.load(rec + 2), tl.load(rec + 3), pid % N_TILES

    @triton.jit
    def bsr_mm_kernel(
        sched_ptr, col_ptr, val_ptr, b_ptr, y_ptr, ws_ptr, cnt_ptr, np_ptr,
        K_COLS, N_TILES, MAX_TILES,
        BLK: tl.constexpr, GROUP: tl.constexpr, BLOCK_N: tl.constexpr,
        TRANS: tl.constexpr, EVEN_N: tl.constexpr, UPCAST: tl.constexpr,
    ):
        row, start, end, slot, tile = _work_item(sched_ptr, N_TILES)

        offs_r = tl.arange(0, BLK)
        offs_n = tile * BLOCK_N + tl.arange(0, BLOCK_N)
        n_mask = offs_n < K_COLS
        offs_kk = tl.arange(0, GROUP * BLK)
        g = offs_kk // BLK
        c = offs_kk % BLK

        if TRANS:
            acc = tl.zeros((BLOCK_N, BLK), dtype=tl.float32)
        else:
            acc = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)

        for j in range(start, end, GROUP):
            if GROUP == 1:
                col = tl.load(col_ptr + j)
                a_base = val_ptr + j * (BLK * BLK)  # int32: the wrapper keeps values.numel() < 2**31
                b_rows = col * BLK + offs_r  # [BLK]
                if TRANS:
                    # A^T block: element (kk, r) = A[r, kk]
                    a = tl.load(a_base + offs_r[None, :] * BLK + offs_r[:, None])
                    bptrs = b_ptr + b_rows[None, :] * K_COLS + offs_n[:, None]
                    if EVEN_N:
                        bt = tl.load(bptrs)
                    else:
                        bt = tl.load(bptrs, mask=n_mask[:, None], other=0.0)
                    acc = _mma(bt, a, acc, UPCAST)
                else:
                    a = tl.load(a_base + offs_r[:, None] * BLK + offs_r[None, :])
                    bptrs = b_ptr + b_rows[:, None] * K_COLS + offs_n[None, :]
                    if EVEN_N:
                        bb = tl.load(bptrs)
                    else:
                        bb = tl.load(bptrs, mask=n_mask[None, :], other=0.0)
                    acc = _mma(a, bb, acc, UPCAST)
            else:
                jj = j + g  # [G*BLK]: which stored block each reduction index uses
                valid = jj < end
                col = tl.load(col_ptr + jj, mask=valid, other=0)
                b_rows = col * BLK + c
                a_off = jj * (BLK * BLK) + c
                if TRANS:
                    a = tl.load(val_ptr + a_off[:, None] + offs_r[None, :] * BLK,
                                mask=valid[:, None], other=0.0)
                    bmask = valid[None, :] & n_mask[:, None]
                    bt = tl.load(b_ptr + b_rows[None, :] * K_COLS + offs_n[:, None],
                                 mask=bmask, other=0.0)
                    acc = _mma(bt, a, acc, UPCAST)
                else:
                    a = tl.load(val_ptr + a_off[None, :] + offs_r[:, None] * BLK,
                                mask=valid[None, :], other=0.0)
                    bmask = valid[:, None] & n_mask[None, :]
                    bb = tl.load(b_ptr + b_rows[:, None] * K_COLS + offs_n[None, :],
                                 mask=bmask, other=0.0)
                    acc = _mma(a, bb, acc, UPCAST)

        if TRANS:
            out = tl.trans(acc)
        else:
            out = acc
        if slot < 0:  # the whole block row: write Y
            y_rows = row * BLK + offs_r
            yptrs = y_ptr + y_rows[:, None].to(tl.int64) * K_COLS + offs_n[None, :]
            if EVEN_N:
                tl.store(yptrs, out.to(y_ptr.dtype.element_ty))
            else:
                tl.store(yptrs, out.to(y_ptr.dtype.element_ty), mask=n_mask[None, :])
        else:  # one segment of a split row: add into its fp32 workspace rows
            _segment_store(out, row, slot, tile, tile * BLOCK_N, ws_ptr, cnt_ptr, np_ptr, y_ptr,
                           K_COLS, MAX_TILES, BLK, BLOCK_N, False)

    @triton.jit
    def bsr_mm_tma_kernel(
        sched_ptr, col_ptr, a_desc, b_desc, y_desc, ws_ptr, cnt_ptr, np_ptr, K_COLS, N_TILES,
        MAX_TILES,
        BLK: tl.constexpr, BLOCK_N: tl.constexpr, UPCAST: tl.constexpr,
    ):
        """Same schedule as ``bsr_mm_kernel`` (TRANS=False, one stored block a step), with
        every tile moved by the tensor-memory accelerator through host-built descriptors:
        a_desc over values viewed as [nnz * BLK, BLK], b_desc over B, y_desc over Y."""
        row, start, end, slot, tile = _work_item(sched_ptr, N_TILES)
        n0 = tile * BLOCK_N
        acc = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
        for j in range(start, end):
            col = tl.load(col_ptr + j)
            a = a_desc.load([j * BLK, 0])
            bb = b_desc.load([col * BLK, n0])
            acc = _mma(a, bb, acc, UPCAST)
        _tma_write(acc, row, slot, tile, n0, ws_ptr, cnt_ptr, np_ptr, y_desc, K_COLS, MAX_TILES,
                   BLK, BLOCK_N)

    @triton.jit
    def _tma_write(acc, row, slot, tile, n0, ws_ptr, cnt_ptr, np_ptr, y_desc, K_COLS,
                   MAX_TILES, BLK: tl.constexpr, BLOCK_N: tl.constexpr):
        """A whole block row (slot < 0) is stored through ``y_desc``; a segment of a split
        row goes through the workspace (``_segment_store``)."""
        if slot < 0:
            y_desc.store([row * BLK, n0], acc.to(y_desc.dtype))
        else:
            _segment_store(acc, row, slot, tile, n0, ws_ptr, cnt_ptr, np_ptr, y_desc, K_COLS,
                           MAX_TILES, BLK, BLOCK_N)

    @triton.jit
    def _segment_store(acc, row, slot, tile, n0, ws_ptr, cnt_ptr, np_ptr, y_out, K_COLS,
                       MAX_TILES, BLK: tl.constexpr, BLOCK_N: tl.constexpr,
                       DESC: tl.constexpr = True):
        """One segment of a split row: add ``acc`` into the row's fp32 workspace, bump
        the (row, tile) counter; the last segment writes Y (through the descriptor
        ``y_out`` when DESC, else to the pointer ``y_out``) and leaves workspace and
        counter zeroed."""
        offs_r = tl.arange(0, BLK)
        offs_n = n0 + tl.arange(0, BLOCK_N)
        wptrs = ws_ptr + (slot * BLK + offs_r)[:, None].to(tl.int64) * K_COLS + offs_n[None, :]
        wmask = (offs_n < K_COLS)[None, :] & (offs_r[:, None] < BLK)
        tl.atomic_add(wptrs, acc, mask=wmask, sem="relaxed")
        cptr = cnt_ptr + slot * MAX_TILES + tile
        done = tl.atomic_add(cptr, 1, sem="acq_rel")
        if done == tl.load(np_ptr + slot) - 1:  # the last segment of this row and tile
            # read the sum coherently (from L2) by adding zero, then clear it: no other
            # program touches these workspace rows again in this launch
            total = tl.atomic_add(wptrs, tl.zeros_like(acc), mask=wmask, sem="relaxed")
            tl.store(wptrs, tl.zeros_like(acc), mask=wmask)
            total = tl.where(wmask, total, 0.0)
            if DESC:
                y_out.store([row * BLK, n0], total.to(y_out.dtype))
            else:
                yptrs = y_out + (row * BLK + offs_r)[:, None].to(tl.int64) * K_COLS + offs_n[None, :]
                tl.store(yptrs, total.to(y_out.dtype.element_ty), mask=wmask)
            tl.store(cptr, 0)

    @triton.jit
    def bsr_mm_persist_kernel(
        step_ptr, bin_ptr, sched_ptr, a_desc, b_desc, y_desc, ws_ptr, cnt_ptr, np_ptr,
        K_COLS, MAX_TILES,
        BLK: tl.constexpr, BLOCK_N: tl.constexpr, UPCAST: tl.constexpr,
        SPLIT: tl.constexpr = True, HALF_STORE: tl.constexpr = False,
    ):
        """Persistent form of ``bsr_mm_tma_kernel``: one program per bin (a few per SM),
        each walking a contiguous run of precomputed steps (``persist_plan``), so the
        loads of the next work item are in flight while the current one finishes and
        the bins are balanced on the host (longest item first into the least loaded bin).

        step_ptr: int32 [S, 4] per step: stored block j, first B row (col * BLK), first
        Y column n0, tag (0: more steps of this item follow; r + 1 > 0: last step of an
        unsplit item of block row r, write Y; -(i + 1) < 0: last step of split item i
        of ``sched_ptr`` [P, 4] (row, start, end, slot): add into the workspace).
        bin_ptr: int32 [G + 1], bin g owns steps bin[g] .. bin[g + 1] - 1. SPLIT False
        (no split item in the plan): the workspace branch is not compiled. HALF_STORE
        (only without SPLIT; y_desc's box is [BLK, BLOCK_N // 2]): Y is written in two
        halves, so the store needs half the shared-memory staging and one more stage of
        loads fits beside it."""
        pid = tl.program_id(0)
        s0 = tl.load(bin_ptr + pid)
        s1 = tl.load(bin_ptr + pid + 1)
        acc = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
        for s in range(s0, s1):
            rec = step_ptr + s * 4
            j = tl.load(rec)
            brow = tl.load(rec + 1)
            n0 = tl.load(rec + 2)
            tag = tl.load(rec + 3)
            a = a_desc.load([j * BLK, 0])
            bb = b_desc.load([brow, n0])
            acc = _mma(a, bb, acc, UPCAST)
            if SPLIT:
                if tag != 0:
                    if tag > 0:
                        y_desc.store([(tag - 1) * BLK, n0], acc.to(y_desc.dtype))
                    else:
                        item = sched_ptr + (-tag - 1) * 4
                        _segment_store(acc, tl.load(item), tl.load(item + 3), n0 // BLOCK_N,
                                       n0, ws_ptr, cnt_ptr, np_ptr, y_desc, K_COLS, MAX_TILES,
                                       BLK, BLOCK_N)
                    acc = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
            else:
                if tag > 0:
                    if HALF_STORE:
                        halves = tl.permute(tl.reshape(acc, (BLK, 2, BLOCK_N // 2)), (0, 2, 1))
                        lo, hi = tl.split(halves)
                        y_desc.store([(tag - 1) * BLK, n0], lo.to(y_desc.dtype))
                        y_desc.store([(tag - 1) * BLK, n0 + BLOCK_N // 2], hi.to(y_desc.dtype))
                    else:
                        y_desc.store([(tag - 1) * BLK, n0], acc.to(y_desc.dtype))
                    acc = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)

    @triton.jit
    def _union_a_tile(ent_ptr, e, val_ptr, RM: tl.constexpr, BLK: tl.constexpr):
        """Entry e of a group's union schedule: its block column and the A tile
        [RM * BLK, BLK] of the group's stored blocks at that column (rows i * BLK ..
        (i + 1) * BLK - 1 are member i's; a member with no block there reads zeros,
        masked: no memory traffic)."""
        offs_m = tl.arange(0, RM * BLK)
        offs_k = tl.arange(0, BLK)
        ent = ent_ptr + e * (RM + 1)
        col = tl.load(ent)
        idx = tl.load(ent + 1 + offs_m // BLK)  # [RM * BLK]: stored block of each row's member
        a = tl.load(val_ptr + idx[:, None] * (BLK * BLK) + (offs_m % BLK)[:, None] * BLK
                    + offs_k[None, :], mask=(idx >= 0)[:, None], other=0.0)
        return col, a

    @triton.jit
    def _union_store(y_ptr, acc, grow_ptr, grp, offs_n, n_mask, K_COLS, RM: tl.constexpr,
                     BLK: tl.constexpr):
        """Write a group's accumulator [RM * BLK, BLOCK_N] to its members' rows of Y (a
        member row of -1 is padding: not written)."""
        offs_m = tl.arange(0, RM * BLK)
        rows = tl.load(grow_ptr + grp * RM + offs_m // BLK)
        y_rows = rows * BLK + offs_m % BLK
        ymask = (rows >= 0)[:, None] & n_mask[None, :]
        yptrs = y_ptr + y_rows[:, None].to(tl.int64) * K_COLS + offs_n[None, :]
        tl.store(yptrs, acc.to(y_ptr.dtype.element_ty), mask=ymask)

    @triton.jit
    def bsr_mm_union_kernel(
        gs_ptr, ent_ptr, grow_ptr, val_ptr, b_desc, y_ptr, K_COLS, N_TILES,
        BLK: tl.constexpr, RM: tl.constexpr, BLOCK_N: tl.constexpr, UPCAST: tl.constexpr,
    ):
        """Several block rows per program, so that each B tile is loaded once for all of
        them ("union" schedule, built on the host by ``union_plan``).

        One program owns a group of RM block rows (RM * BLK rows of Y) and one tile of
        BLOCK_N columns. It walks the UNION of the block columns stored in those rows:
        entry e of the group is (column, idx_0 .. idx_{RM-1}) where idx_i is the stored
        block of row i at that column or -1. Per entry the B tile [BLK, BLOCK_N] is
        loaded once by TMA and multiplied by the A tile [RM * BLK, BLK] whose missing
        blocks are masked loads (zeros, no memory traffic).
        gs_ptr: int32 [G, 4] (group, first entry, end, 0) in launch order; grow_ptr:
        int32 [G_total, RM] block row of each member (-1: padding, not written)."""
        pid = tl.program_id(0)
        rec = gs_ptr + (pid // N_TILES) * 4
        grp = tl.load(rec)
        start = tl.load(rec + 1)
        end = tl.load(rec + 2)
        tile = pid % N_TILES
        n0 = tile * BLOCK_N
        offs_n = n0 + tl.arange(0, BLOCK_N)
        n_mask = offs_n < K_COLS
        acc = tl.zeros((RM * BLK, BLOCK_N), dtype=tl.float32)
        for e in range(start, end):
            col, a = _union_a_tile(ent_ptr, e, val_ptr, RM, BLK)
            acc = _mma(a, b_desc.load([col * BLK, n0]), acc, UPCAST)
        _union_store(y_ptr, acc, grow_ptr, grp, offs_n, n_mask, K_COLS, RM, BLK)
