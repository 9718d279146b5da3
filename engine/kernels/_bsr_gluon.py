"""A warp-specialised Hopper kernel for ``engine.kernels.bsr_matmul`` (kind "ws"),
written in Gluon, Triton's lower-level language (imported lazily, only on use).

It runs the same host-balanced runs of steps as the persistent Triton kernel
(``persist_plan``; unsplit plans only) but splits each program's warps by task:

* a one-warp **loader** walks the bin's steps and, for each, waits until a slot of a
  ring of ``NBUF`` shared-memory slots is free, then starts the TMA loads of the A
  block [BLK, BLK] and the B tile [BLK, BLOCK_N] into it (the slot's "ready"
  barrier counts the bytes in). It reads the step records a few steps ahead, so
  that their load latency is off its critical path;
* the **default partition** (one or two warpgroups) waits for each slot, issues the
  asynchronous warpgroup MMA, and gives a slot back as soon as the MMA that read it
  has finished (one MMA stays in flight). At the last step of a work item it waits
  for the MMAs, writes the fp16/bf16 tile into a staging buffer and starts its TMA
  store; the next item's MMAs run while that store drains.

So loads never wait for the MMA's issue order or the epilogue (in the software-
pipelined ``pers`` kernel one warpgroup does all three in program order). Needs
sm_90+ and a real GPU: Gluon kernels do not run under the CPU interpreter; the GPU
tests and ``benchmarks/bsr_configs.py`` check it against the reference.

Step record (int32 [S, 4]): stored block j, first B row (col * BLK), first Y column
n0, tag (0: more steps of this item follow; r + 1: last step of block row r).
"""
from __future__ import annotations

try:  # triton's Gluon is optional and experimental: the engine must import without it
    from triton.experimental import gluon
    from triton.experimental.gluon import language as gl
    from triton.experimental.gluon.language.nvidia.hopper import (
        fence_async_shared, mbarrier, tma, warpgroup_mma, warpgroup_mma_wait)

    AVAILABLE = True
    IMPORT_ERROR = ""
except Exception as exc:  # pragma: no cover - depends on the installed triton
    gluon = gl = None
    AVAILABLE = False
    IMPORT_ERROR = f"{type(exc).__name__}: {exc}"

if AVAILABLE:

    @gluon.jit
    def _loader(step_ptr, bin_ptr, a_desc, b_desc, a_bufs, b_bufs, ready, empty,
                BLK: gl.constexpr, NBUF: gl.constexpr):
        pid = gl.program_id(0)
        s0 = gl.load(bin_ptr + pid)
        s1 = gl.load(bin_ptr + pid + 1)
        last = gl.maximum(s1 - 1, s0)
        nbytes: gl.constexpr = a_desc.block_type.nbytes + b_desc.block_type.nbytes
        # records of steps s0 .. s0 + 2 in flight before the loop (clamped to the bin)
        r0 = step_ptr + gl.minimum(s0, last) * 4
        r1 = step_ptr + gl.minimum(s0 + 1, last) * 4
        r2 = step_ptr + gl.minimum(s0 + 2, last) * 4
        j0 = gl.load(r0)
        c0 = gl.load(r0 + 1)
        n0 = gl.load(r0 + 2)
        j1 = gl.load(r1)
        c1 = gl.load(r1 + 1)
        n1 = gl.load(r1 + 2)
        j2 = gl.load(r2)
        c2 = gl.load(r2 + 1)
        n2 = gl.load(r2 + 2)
        for s in range(s0, s1):
            i = s - s0
            idx = i % NBUF
            phase = (i // NBUF) & 1
            # the record three steps on: its load overlaps the wait below
            r3 = step_ptr + gl.minimum(s + 3, last) * 4
            j3 = gl.load(r3)
            c3 = gl.load(r3 + 1)
            n3 = gl.load(r3 + 2)
            # slots start free: the first pass waits on the phase before 0, which is done
            mbarrier.wait(empty.index(idx), phase ^ 1)
            bar = ready.index(idx)
            mbarrier.expect(bar, nbytes)
            tma.async_copy_global_to_shared(a_desc, [j0 * BLK, 0], bar, a_bufs.index(idx))
            tma.async_copy_global_to_shared(b_desc, [c0, n0], bar, b_bufs.index(idx))
            j0, c0, n0 = j1, c1, n1
            j1, c1, n1 = j2, c2, n2
            j2, c2, n2 = j3, c3, n3

    @gluon.jit
    def _mma_store(step_ptr, bin_ptr, y_desc, a_bufs, b_bufs, ready, empty, c_smem,
                   BLK: gl.constexpr, BLOCK_N: gl.constexpr, NBUF: gl.constexpr,
                   acc_layout: gl.constexpr):
        pid = gl.program_id(0)
        s0 = gl.load(bin_ptr + pid)
        s1 = gl.load(bin_ptr + pid + 1)
        last = gl.maximum(s1 - 1, s0)
        acc = gl.zeros((BLK, BLOCK_N), dtype=gl.float32, layout=acc_layout)
        use_acc = False
        held = False  # the previous step's slot is still read by an MMA in flight
        tag = gl.load(step_ptr + s0 * 4 + 3)
        n0 = gl.load(step_ptr + s0 * 4 + 2)
        for s in range(s0, s1):
            i = s - s0
            idx = i % NBUF
            phase = (i // NBUF) & 1
            nxt = step_ptr + gl.minimum(s + 1, last) * 4
            tag_next = gl.load(nxt + 3)
            n0_next = gl.load(nxt + 2)
            mbarrier.wait(ready.index(idx), phase)
            acc = warpgroup_mma(a_bufs.index(idx), b_bufs.index(idx), acc, use_acc=use_acc,
                                is_async=True)
            # at most one MMA in flight: the previous step's has finished reading its slot
            acc = warpgroup_mma_wait(num_outstanding=1, deps=(acc,))
            mbarrier.arrive(empty.index((i + NBUF - 1) % NBUF), pred=held)
            if tag > 0:
                acc = warpgroup_mma_wait(num_outstanding=0, deps=(acc,))
                mbarrier.arrive(empty.index(idx))
                tma.store_wait(0)  # the previous item's store has left the staging buffer
                c_smem.store(acc.to(y_desc.dtype))
                fence_async_shared()
                tma.async_copy_shared_to_global(y_desc, [(tag - 1) * BLK, n0], c_smem)
                use_acc = False
                held = False
            else:
                use_acc = True
                held = True
            tag = tag_next
            n0 = n0_next
        tma.store_wait(0)

    @gluon.constexpr_function
    def _acc_layout(BLK, BLOCK_N, num_warps):
        # num_warps 4: one warpgroup, instr n = BLOCK_N; 8: two, each half the columns
        wn = num_warps // 4
        return gl.NVMMADistributedLayout(version=[3, 0], warps_per_cta=[4, wn],
                                         instr_shape=[16, min(256, BLOCK_N // wn), 16])

    @gluon.jit
    def bsr_mm_ws_kernel(step_ptr, bin_ptr, a_desc, b_desc, y_desc,
                         BLK: gl.constexpr, BLOCK_N: gl.constexpr, NBUF: gl.constexpr,
                         LOADER_REGS: gl.constexpr, num_warps: gl.constexpr):
        """One program per bin; see the module docstring. a_desc: A's stored blocks
        as [nnz * BLK, BLK] with box [BLK, BLK]; b_desc: B [n, k] with box
        [BLK, BLOCK_N]; y_desc: Y [m, k] with box [BLK, BLOCK_N]."""
        a_bufs = gl.allocate_shared_memory(a_desc.dtype, [NBUF, BLK, BLK], a_desc.layout)
        b_bufs = gl.allocate_shared_memory(b_desc.dtype, [NBUF, BLK, BLOCK_N], b_desc.layout)
        c_smem = gl.allocate_shared_memory(y_desc.dtype, [BLK, BLOCK_N], y_desc.layout)
        ready = gl.allocate_shared_memory(gl.int64, [NBUF, 1], mbarrier.MBarrierLayout())
        empty = gl.allocate_shared_memory(gl.int64, [NBUF, 1], mbarrier.MBarrierLayout())
        for k in gl.static_range(NBUF):
            mbarrier.init(ready.index(k), count=1)
            mbarrier.init(empty.index(k), count=1)
        acc_layout: gl.constexpr = _acc_layout(BLK, BLOCK_N, num_warps)
        gl.warp_specialize([
            (_mma_store, (step_ptr, bin_ptr, y_desc, a_bufs, b_bufs, ready, empty, c_smem,
                          BLK, BLOCK_N, NBUF, acc_layout)),
            (_loader, (step_ptr, bin_ptr, a_desc, b_desc, a_bufs, b_bufs, ready, empty,
                       BLK, NBUF)),
        ], [1], [LOADER_REGS])
