"""Triton kernels behind ``engine.kernels.bsr_matmul`` (imported lazily, only on use).

Y = A @ B with A block-sparse (BSR: ``crow`` [R + 1], ``col`` [nnz], ``values``
[nnz, BLK, BLK]), B dense [n_cols_A, K] (row-major, contiguous) and Y dense [R * BLK, K].

One program owns one block row of A (BLK rows of Y) and one tile of BLOCK_N
columns of Y; it walks the stored blocks of its row and accumulates in fp32.
Programs are launched in the order given by ``order`` (block rows sorted by
stored-block count, longest first), so that the GPU's block scheduler starts the
long rows first and fills the tail with short ones (a greedy longest-first
schedule; empty rows only write zeros).

Two formulations of the inner product, chosen per shape by the tuner:

* ``TRANS = False``: acc[BLK, BLOCK_N] += A_chunk[BLK, G*BLK] @ B_rows[G*BLK, BLOCK_N]
* ``TRANS = True``:  acc[BLOCK_N, BLK] += B_rows^T[BLOCK_N, G*BLK] @ A_chunk^T[G*BLK, BLK]
  (the matrix unit's M dimension is then BLOCK_N rather than BLK, which suits
  small blocks: M = 16 or 32 wastes most of a Hopper warpgroup MMA).

``GROUP`` (G) stored blocks of one row are consumed per step, so that the
reduction dimension of each ``tl.dot`` is G * BLK even for 16 x 16 blocks.

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
    def bsr_mm_kernel(
        crow_ptr, col_ptr, val_ptr, b_ptr, y_ptr, order_ptr,
        K_COLS, N_TILES,
        BLK: tl.constexpr, GROUP: tl.constexpr, BLOCK_N: tl.constexpr,
        TRANS: tl.constexpr, EVEN_N: tl.constexpr, UPCAST: tl.constexpr,
    ):
        pid = tl.program_id(0)
        row = tl.load(order_ptr + pid // N_TILES)
        tile = pid % N_TILES
        start = tl.load(crow_ptr + row)
        end = tl.load(crow_ptr + row + 1)

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
        y_rows = row * BLK + offs_r
        yptrs = y_ptr + y_rows[:, None].to(tl.int64) * K_COLS + offs_n[None, :]
        if EVEN_N:
            tl.store(yptrs, out.to(y_ptr.dtype.element_ty))
        else:
            tl.store(yptrs, out.to(y_ptr.dtype.element_ty), mask=n_mask[None, :])

    @triton.jit
    def bsr_mm_tma_kernel(
        crow_ptr, col_ptr, order_ptr, a_desc, b_desc, y_desc, N_TILES,
        BLK: tl.constexpr, BLOCK_N: tl.constexpr, UPCAST: tl.constexpr,
    ):
        """Same schedule as ``bsr_mm_kernel`` (TRANS=False, GROUP=1), with every
        tile moved by the tensor-memory accelerator through host-built descriptors:
        a_desc over values viewed as [nnz * BLK, BLK], b_desc over B, y_desc over Y."""
        pid = tl.program_id(0)
        row = tl.load(order_ptr + pid // N_TILES)
        tile = pid % N_TILES
        start = tl.load(crow_ptr + row)
        end = tl.load(crow_ptr + row + 1)
        n0 = tile * BLOCK_N
        acc = tl.zeros((BLK, BLOCK_N), dtype=tl.float32)
        for j in range(start, end):
            col = tl.load(col_ptr + j)
            a = a_desc.load([j * BLK, 0])
            bb = b_desc.load([col * BLK, n0])
            acc = _mma(a, bb, acc, UPCAST)
        y_desc.store([row * BLK, n0], acc.to(y_desc.dtype))
