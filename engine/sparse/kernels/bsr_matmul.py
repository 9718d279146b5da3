"""lab-bsr: the lab's own block-sparse x dense matrix product (Triton), with a
plain-torch reference beside it.

    Y[m, k] = A[m, n] @ B[n, k]

A is block-sparse (BSR) with square blocks of 16, 32, 64 or 128; B and Y are
dense and row-major. Inputs fp16 or bf16, accumulation in fp32, output in the
input dtype. This module is the public face; the pieces live beside it by concern:

* ``bsr_matrix``: ``BsrMatrix`` (the container, its conversions and per-matrix work
  plan), ``bsr_matmul_reference``;
* ``bsr_plans``: the persistent kernel's balanced bins and the union schedule;
* ``bsr_configs``: ``Config`` and its labels, the tuner's candidates, the H200 presets;
* ``bsr_launch``: the launchers, built once per matrix and (k, dtype, configuration);
* ``bsr_tune``: ``graph_time`` (CUDA-graph timer) and the tuner;
* ``bsr_op``: the ``torch.library`` custom op and ``BlockSparseLinear``;
* ``_bsr_triton``: the Triton kernels.

``bsr_matmul(a, b)`` checks its inputs and chooses the configuration on the first
call for a matrix and (k, options); that choice and the launch are cached on the
matrix, and later calls with B of the same shape, dtype and device only check those,
allocate Y and launch (``bsr_launch``). ``register()`` adds backend "lab-bsr" (CUDA,
fp16/bf16, presets instead of tuning) to ``engine.sparse.formats``, which calls it when
it loads its optional backends; importing this module registers nothing. What outlives
a matrix (GPU facts, tuned configurations) is in ``bsr_cache.KERNEL_CACHE``.

The kernel runs on CUDA; on a CPU it runs only under Triton's interpreter
(``TRITON_INTERPRET=1`` set before triton is imported), which the tests use.
"""
from __future__ import annotations

from typing import Any

import torch

from engine.sparse.kernels.bsr_configs import (  # noqa: F401  (the public names)
    DEEP_CANDIDATES, DEFAULT_CONFIG, PRESETS, SPLIT_PRESETS, TMA_KINDS, UNION_KINDS,
    UNION_PRESETS, Config, _has_tma, _PTR_TWIN, candidate_configs, config_ok, interpreting,
    preset_config, triton_cdiv)
from engine.sparse.kernels.bsr_cache import (  # noqa: F401
    KERNEL_CACHE, BoundedCache, clear_caches)
from engine.sparse.kernels.bsr_launch import (  # noqa: F401
    Launch, _kernel, _with_fewer_stages_if_needed, launch, launcher)
from engine.sparse.kernels.bsr_matrix import (  # noqa: F401
    BLOCK_SIZES, DTYPES, BsrMatrix, WorkPlan, _check_block, _check_shapes, as_bsr,
    auto_split_len, bsr_matmul_reference)
from engine.sparse.kernels.bsr_plans import (  # noqa: F401
    PersistPlan, UnionPlan, group_rows, persist_plan, sm_count, union_plan)
from engine.sparse.kernels.bsr_tune import (  # noqa: F401
    FLUSHES, TUNE_LOG, _tune_key, graph_time, tune, tuned_config)

NAME = "lab-bsr"
_config_ok = config_ok  # the old private name, used by benchmarks/


# ----------------------------------------------------------------------------- support
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


# ----------------------------------------------------------------------------- per call
class _Call:
    """What a repeated call with B of one shape, dtype and device needs: the launch
    chosen on the first call, and the few checks that keep it valid."""

    __slots__ = ("launch", "shape_b", "shape_y", "dtype", "device")

    def __init__(self, launch_: Launch, shape_b, shape_y, dtype, device) -> None:
        self.launch, self.shape_b, self.shape_y = launch_, shape_b, shape_y
        self.dtype, self.device = dtype, device

    def __call__(self, b: Any, out: torch.Tensor | None) -> torch.Tensor | None:
        """Y, or None when these inputs need the full checks of ``bsr_matmul``."""
        if (type(b) is not torch.Tensor or b.dtype != self.dtype or b.shape != self.shape_b
                or b.device != self.device or not b.is_contiguous()):
            return None
        if out is None:
            out = torch.empty(self.shape_y, dtype=self.dtype, device=self.device)
        elif (type(out) is not torch.Tensor or out.dtype != self.dtype
              or out.shape != self.shape_y or out.device != self.device
              or not out.is_contiguous()):
            return None
        self.launch(b, out)
        return out


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
    configurations (kind "utma") never cut rows: split is ignored."""
    if type(a) is BsrMatrix and type(b) is torch.Tensor and b.dim() == 2:
        try:
            call = a._plans.get(("call", int(b.shape[1]), config, autotune, split))
        except TypeError:  # an unhashable split or config: the full path says what is wrong
            call = None
        if call is not None:
            y = call(b, out)
            if y is not None:
                return y
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
    elif (tuple(out.shape) != (m, k) or out.dtype != b.dtype or not out.is_contiguous()
          or out.device != b.device):
        raise ValueError(f"out: expected a contiguous {b.dtype} tensor of shape {(m, k)} on "
                         f"{b.device}, got {out.dtype} {tuple(out.shape)} on {out.device}")
    if m == 0 or k == 0:
        return out
    if a.nnz_blocks == 0:
        return out.zero_()
    split_len = _split_len(a, split)
    cfg = config
    if cfg is None:
        cfg = tuned_config(a, b)
        if cfg is None:
            if autotune and a.device.type == "cuda" and not interpreting():
                cfg = tune(a, b, split_len=split_len)
            else:
                cfg = preset_config(a, b, split_len)
    if not _config_ok(a, b, cfg):
        raise ValueError(f"config: expected a configuration valid for these inputs, got "
                         f"{cfg.label()}")
    run = launcher(a, k, b.dtype, cfg, split_len)
    run(b, out)
    try:  # later calls of this shape skip everything above (see _Call)
        a._plans[("call", k, config, autotune, split)] = _Call(run, b.shape, out.shape,
                                                               b.dtype, b.device)
    except TypeError:  # an unhashable split or config: no per-call cache
        pass
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


def register():
    """Add backend "lab-bsr" to ``engine.sparse.formats`` (the registry calls this when it
    loads its optional backends); idempotent: a second call returns the registered
    backend. Importing this module registers nothing."""
    from engine.sparse.formats import BACKENDS, Backend, register_backend

    if NAME in BACKENDS:
        return BACKENDS[NAME]
    return register_backend(Backend(
        name=NAME, format="bsr", library="triton",
        dtypes={"cuda": ("float16", "bfloat16")},
        prepare=_backend_prepare, matmul=_backend_matmul,
        to_dense=lambda a: a.to_dense(), needs_block=True, check=_backend_check,
        bytes_of=_backend_bytes, ops=("spmv", "spmm"),
        description="the lab's own Triton kernel for block-sparse (BSR) x dense, fp32 "
                    "accumulation, tiles preset from an H200 tuning run",
    ))
