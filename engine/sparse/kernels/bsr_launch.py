"""lab-bsr's launchers: the thin per-call path.

``launcher(a, k, dtype, cfg, split_len)`` builds, once per matrix and (k, dtype,
configuration, split), a ``Launch``: the kernel, its grid, every argument that does
not change between calls (plans, schedules, workspace, A's TMA descriptor, constants)
and a ``make_args(b, out)`` that adds only what does: B and Y (their descriptors are
copied from a validated template, only the base pointer changes). The first call
goes through Triton's JIT (compile, specialise, fit the stages in shared memory); it
returns the compiled kernel, and every later call hands the argument list straight to
that kernel's launcher, skipping the JIT's binding and cache look-up (launch hooks,
e.g. a profiler's, are still called). That direct path is taken only on CUDA and only
for B and Y 16-byte aligned as the compiled kernel assumed; otherwise each call takes
the JIT path. On CUDA, the second time the same B and Y buffers come back, the
launch is captured in a CUDA graph and later calls with those buffers replay it (at
most ``GRAPHS_PER_LAUNCH`` pairs per launch; never while the caller is capturing a graph
of its own; ``SPARSITY_LAB_BSR_GRAPHS=0`` switches it off). A graph holds the kernel
with these buffers' addresses baked in and reads their contents when replayed, so it
computes exactly what the direct launch would. The launch is cached on the matrix
(``a._plans``), so it dies with it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Callable

import torch

from engine.sparse.kernels.bsr_cache import KERNEL_CACHE
from engine.sparse.kernels.bsr_configs import Config, interpreting
from engine.sparse.kernels.bsr_matrix import BsrMatrix
from engine.sparse.kernels.bsr_plans import persist_plan, sm_count, union_plan

def _kernel(name: str):
    """The jitted kernel, or its interpreted twin when TRITON_INTERPRET=1 was set after
    the kernels module had already been imported (e.g. by another test)."""
    from engine.sparse.kernels import _bsr_triton as kern

    fn = getattr(kern, name)
    if interpreting():
        from triton.runtime.interpreter import InterpretedFunction
        if not isinstance(fn, InterpretedFunction):
            fn = KERNEL_CACHE.get_or_make(("interpreted", name),
                                          lambda: InterpretedFunction(fn.fn))
    return fn


# Replay a CUDA graph of the launch when the same B and Y buffers come back (the usual
# case: PyTorch's caching allocator hands out the same blocks): about 10 us less host
# time per call than Triton's launcher. SPARSITY_LAB_BSR_GRAPHS=0 switches it off.
GRAPH_REPLAY = os.environ.get("SPARSITY_LAB_BSR_GRAPHS", "1") != "0"
GRAPHS_PER_LAUNCH = 8


def _with_fewer_stages_if_needed(key: tuple, stages: int, launch_fn) -> Any:
    """launch_fn(stages); when the compiled kernel needs more shared memory than the GPU
    has (triton OutOfResources, raised before anything runs), retry with one stage
    fewer, down to 2; the count that fits is remembered per key (``KERNEL_CACHE``,
    under ("stages", key)). Returns what launch_fn returned (the compiled kernel, on a
    GPU)."""
    from triton.runtime.errors import OutOfResources

    stages = KERNEL_CACHE.get(("stages", key), stages)
    while True:
        try:
            result = launch_fn(stages)
        except OutOfResources:
            if stages <= 2:
                raise
            stages -= 1
            continue
        KERNEL_CACHE.put(("stages", key), stages)
        return result


def _descriptor(t: torch.Tensor, block_shape: list[int]):
    from triton.tools.tensor_descriptor import TensorDescriptor

    return TensorDescriptor.from_tensor(t, block_shape)


def _rebase(template, t: torch.Tensor):
    """The validated descriptor ``template`` over another tensor of the same shape,
    dtype and strides (the caller checked alignment): no re-validation."""
    d = object.__new__(type(template))
    d.__dict__.update(template.__dict__)
    d.base = t
    return d


@dataclass(eq=False)
class Launch:
    """One kernel launch with everything fixed but B and Y (see the module docstring)."""

    name: str
    grid: tuple[int, int, int]
    make_args: Callable[[torch.Tensor, torch.Tensor], list]
    num_warps: int
    num_stages: int
    stage_key: tuple | None = None  # retry with fewer stages (shared memory) under this key
    prepare_out: Callable[[torch.Tensor], None] | None = None
    device_index: int = -1  # CUDA device; -1: not CUDA (interpreter)
    compiled: Any = field(default=None, repr=False)
    fast_calls: int = 0  # calls that went straight to the compiled kernel (for the record)
    graph_calls: int = 0  # calls served by replaying a captured graph
    direct_error: str = ""  # why the direct launch was given up, if it was
    graph_error: str = ""  # why graphs were given up for this launch, if they were
    graphs: dict = field(default_factory=dict, repr=False)  # (B, Y pointers) -> CUDAGraph
    seen: dict = field(default_factory=dict, repr=False)  # (B, Y pointers) -> calls so far
    side: Any = field(default=None, repr=False)  # the stream graphs are captured on

    def __call__(self, b: torch.Tensor, out: torch.Tensor) -> None:
        if self.compiled is not None and b.data_ptr() % 16 == 0 and out.data_ptr() % 16 == 0:
            if GRAPH_REPLAY and not self.graph_error and self._replay(b, out):
                return
            if self._direct(b, out):
                return
        if self.prepare_out is not None:
            self.prepare_out(out)
        args = self.make_args(b, out)
        fn = _kernel(self.name)

        def go(stages: int):
            return fn[self.grid](*args, num_warps=self.num_warps, num_stages=stages)

        if self.stage_key is None:
            result = go(self.num_stages)
        else:
            result = _with_fewer_stages_if_needed(self.stage_key, self.num_stages, go)
        if self.device_index < 0 or self.direct_error:
            return
        if hasattr(result, "result"):  # a Triton that compiles asynchronously
            result = result.result()
        if hasattr(result, "run") and hasattr(result, "function") \
                and b.data_ptr() % 16 == 0 and out.data_ptr() % 16 == 0:
            self.compiled = result
        else:
            self.direct_error = f"the JIT returned {type(result).__name__}, not a compiled kernel"

    def _direct(self, b: torch.Tensor, out: torch.Tensor) -> bool:
        """Launch the compiled kernel without the JIT; False if this Triton refuses."""
        from triton import knobs

        if self.prepare_out is not None:
            self.prepare_out(out)
        args = self.make_args(b, out)
        kern = self.compiled
        stream = torch._C._cuda_getCurrentRawStream(self.device_index)
        enter, leave = knobs.runtime.launch_enter_hook, knobs.runtime.launch_exit_hook
        meta = None if enter is None else kern.launch_metadata(self.grid, stream, *args)
        try:
            kern.run(self.grid[0], self.grid[1], self.grid[2], stream, kern.function,
                     kern.packed_metadata, meta, enter, leave, *args)
        except TypeError as exc:  # a Triton whose launcher takes other arguments
            self.compiled, self.direct_error = None, f"{type(exc).__name__}: {exc}"
            return False
        self.fast_calls += 1
        return True

    def _replay(self, b: torch.Tensor, out: torch.Tensor) -> bool:
        """Replay the graph captured for these B and Y buffers; capture one the second
        time the same pair comes back (at most GRAPHS_PER_LAUNCH). False: launch
        directly (first sight of a pair, too many pairs, or the caller is capturing a
        graph of its own)."""
        if torch.cuda.is_current_stream_capturing():
            return False
        key = (b.data_ptr(), out.data_ptr())
        graph = self.graphs.get(key)
        if graph is None:
            count = self.seen.get(key, 0) + 1
            if count < 2 or len(self.graphs) >= GRAPHS_PER_LAUNCH:
                if len(self.seen) > 4 * GRAPHS_PER_LAUNCH:
                    self.seen.clear()
                self.seen[key] = count
                return False
            graph = self._capture(b, out)
            if graph is None:
                return False
            self.graphs[key] = graph
        graph.replay()
        self.graph_calls += 1
        return True

    def _capture(self, b: torch.Tensor, out: torch.Tensor):
        try:
            graph = torch.cuda.CUDAGraph()
            current = torch.cuda.current_stream()
            if self.side is None:
                self.side = torch.cuda.Stream(device=current.device)
            self.side.wait_stream(current)
            with torch.cuda.stream(self.side):
                graph.capture_begin(capture_error_mode="thread_local")
                try:
                    ok = self._direct(b, out)
                finally:
                    graph.capture_end()
            current.wait_stream(self.side)
        except RuntimeError as exc:  # capture refused here: launch directly from now on
            self.graph_error = f"{type(exc).__name__}: {str(exc)[:200]}"
            return None
        return graph if ok else None


def launcher(a: BsrMatrix, k: int, dtype: torch.dtype, cfg: Config,
             split_len: int | None = None) -> Launch:
    """The cached ``Launch`` of ``cfg`` for ``a`` @ B [n, k] of ``dtype``."""
    key = ("launch", k, dtype, cfg, split_len)
    found = a._plans.get(key)
    if found is None:
        found = _build(a, k, dtype, cfg, split_len)
        a._plans[key] = found
    return found


def launch(a: BsrMatrix, b: torch.Tensor, out: torch.Tensor, cfg: Config,
           split_len: int | None = None) -> None:
    """Y = A @ B into ``out`` with ``cfg`` (inputs already checked by the caller)."""
    launcher(a, int(b.shape[1]), b.dtype, cfg, split_len)(b, out)


def _build(a: BsrMatrix, k: int, dtype: torch.dtype, cfg: Config,
           split_len: int | None) -> Launch:
    dev = a.device.index if a.device.type == "cuda" else -1
    if dev is None:
        dev = torch.cuda.current_device()
    upcast = interpreting() and dtype == torch.bfloat16  # CPU interpreter only
    if cfg.union:  # rows are never cut in the union schedule (split_len does not apply)
        return _build_union(a, k, cfg, upcast, dev)
    plan = a.plan(split_len)
    if plan.n_split:
        ws, cnt, max_tiles = plan.workspace(a.block, k, a.device)
        pieces = plan.pieces
    else:  # never touched by the kernel: no work item has a slot
        ws, cnt, pieces, max_tiles = a.values, a.col, a.col, 1
    if cfg.kind == "pers":
        return _build_persist(a, k, cfg, split_len, plan, ws, cnt, pieces, max_tiles, upcast, dev)
    n_tiles = -(-k // cfg.block_n)
    grid = (int(plan.sched.shape[0]) * n_tiles, 1, 1)
    bsz = a.block
    if cfg.kind == "tma":
        a_desc = _descriptor(a.values.view(a.nnz_blocks * bsz, bsz), [bsz, bsz])
        b_tpl = y_tpl = None

        def make_args(b, out):
            nonlocal b_tpl, y_tpl
            if b_tpl is None:
                b_tpl, y_tpl = _descriptor(b, [bsz, cfg.block_n]), _descriptor(out, [bsz, cfg.block_n])
            return [plan.sched, a.col, a_desc, _rebase(b_tpl, b), _rebase(y_tpl, out), ws, cnt,
                    pieces, k, n_tiles, max_tiles, bsz, cfg.block_n, upcast]

        return Launch("bsr_mm_tma_kernel", grid, make_args, cfg.num_warps, cfg.num_stages,
                      device_index=dev)
    even = k % cfg.block_n == 0

    def make_ptr_args(b, out):
        return [plan.sched, a.col, a.values, b, out, ws, cnt, pieces, k, n_tiles, max_tiles,
                bsz, cfg.group, cfg.block_n, cfg.trans, even, upcast]

    return Launch("bsr_mm_kernel", grid, make_ptr_args, cfg.num_warps, cfg.num_stages,
                  device_index=dev)


def _build_persist(a, k, cfg, split_len, plan, ws, cnt, pieces, max_tiles, upcast, dev) -> Launch:
    pp = persist_plan(a, k, cfg.block_n, sm_count(a.device) * cfg.occ, split_len)
    bsz = a.block
    prepare = None
    if pp.empty_rows is not None:  # block rows with no stored block: no step writes them
        empty = pp.empty_rows

        def prepare(out):
            out.view(a.block_rows, bsz, k).index_fill_(0, empty, 0)
    a_desc = _descriptor(a.values.view(a.nnz_blocks * bsz, bsz), [bsz, bsz])
    split = plan.n_split > 0
    half_store = cfg.store == "H" and not split
    y_box = cfg.block_n // 2 if half_store else cfg.block_n
    b_tpl = y_tpl = None

    def make_args(b, out):
        nonlocal b_tpl, y_tpl
        if b_tpl is None:
            b_tpl, y_tpl = _descriptor(b, [bsz, cfg.block_n]), _descriptor(out, [bsz, y_box])
        return [pp.steps, pp.bins, plan.sched, a_desc, _rebase(b_tpl, b), _rebase(y_tpl, out),
                ws, cnt, pieces, k, max_tiles, bsz, cfg.block_n, upcast, split, half_store]

    # the workspace epilogue of split rows (and the full-width store when "H" cannot
    # halve it) needs shared memory the deepest pipelines use for loads: fewer stages then
    return Launch("bsr_mm_persist_kernel", (pp.n_bins, 1, 1), make_args, cfg.num_warps,
                  cfg.num_stages, stage_key=(cfg.label(), bsz, half_store, split),
                  prepare_out=prepare, device_index=dev)


def _build_union(a: BsrMatrix, k: int, cfg: Config, upcast: bool, dev: int) -> Launch:
    plan = union_plan(a, cfg.rows)
    n_tiles = -(-k // cfg.block_n)
    grid = (int(plan.gsched.shape[0]) * n_tiles, 1, 1)
    bsz = a.block
    b_tpl = None

    def make_args(b, out):
        nonlocal b_tpl
        if b_tpl is None:
            b_tpl = _descriptor(b, [bsz, cfg.block_n])
        return [plan.gsched, plan.entries, plan.members, a.values, _rebase(b_tpl, b), out, k,
                n_tiles, bsz, cfg.rows, cfg.block_n, upcast]

    return Launch("bsr_mm_union_kernel", grid, make_args, cfg.num_warps, cfg.num_stages,
                  device_index=dev)
