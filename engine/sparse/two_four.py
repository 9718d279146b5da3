"""The "torch-2:4" backend: NVIDIA 2:4 semi-structured sparsity through torch.

``torch.sparse.to_sparse_semi_structured`` compresses a dense (m, n) fp16/bf16 CUDA
matrix whose every group of 4 consecutive entries along a row holds at most 2
non-zeros, and multiplies it on the sparse tensor cores of sm80+ GPUs (Ampere,
Hopper): ``y = A @ x`` with x (n, k).

What it enforces is reported instead of raised:

* ``semi_structured_shape_problem(shape, dtype)``: None, or "unsupported: expected
  ..." (2-D, rows and cols multiples of the backend's minimum tile, fp16/bf16).
* ``semi_structured_unavailable(device)``: None, or "unavailable: needs an NVIDIA
  GPU (sm80+) ..." (call inside a job: it may ask CUDA for the capability).
* ``nm_problem(a)``: None, or why ``a`` is not 2:4 sparse.

The backend is registered in ``engine.sparse.formats`` (listed there as an optional
module); ``prepare`` refuses a matrix that is not 2:4 (compressing it would silently
drop non-zeros). ``semi_structured_matmul_reference`` is the slow dense product
beside it.
"""
from __future__ import annotations

from typing import Any

import torch

from engine.sparse.formats import Backend, device_type, register_backend

NAME = "torch-2:4"
DTYPES = ("float16", "bfloat16")
NEEDS_GPU = "unavailable: needs an NVIDIA GPU (sm80+)"
# Minimum (rows, cols) of the sparse operand per dtype, from torch itself when it has
# the table (both dimensions must be multiples); these are the values of torch 2.x.
_FALLBACK_MIN = {"cusparselt": {"float16": (16, 16), "bfloat16": (16, 16)},
                 "cutlass": {"float16": (32, 64), "bfloat16": (32, 64)}}


def kernel_library() -> str:
    """"cusparselt" when torch was built with cuSPARSELt (its default), else "cutlass"."""
    try:
        from torch.sparse import SparseSemiStructuredTensor

        if SparseSemiStructuredTensor._FORCE_CUTLASS:
            return "cutlass"
    except (ImportError, AttributeError):
        pass
    return "cusparselt" if getattr(torch._C, "_has_cusparselt", False) else "cutlass"


def min_shape(dtype: str, library: str | None = None) -> tuple[int, int]:
    """Smallest (rows, cols) tile the sparse operand's dimensions must be multiples of."""
    library = library or kernel_library()
    try:
        from torch.sparse import (SparseSemiStructuredTensorCUSPARSELT,
                                  SparseSemiStructuredTensorCUTLASS)

        cls = (SparseSemiStructuredTensorCUSPARSELT if library == "cusparselt"
               else SparseSemiStructuredTensorCUTLASS)
        cfg = cls._DTYPE_SHAPE_CONSTRAINTS[getattr(torch, dtype)]
        return int(cfg.sparse_min_rows), int(cfg.sparse_min_cols)
    except (ImportError, AttributeError, KeyError):
        return _FALLBACK_MIN[library][dtype]


def semi_structured_shape_problem(shape: Any, dtype: str) -> str | None:
    """None when (rows, cols) in ``dtype`` can be stored 2:4; else "unsupported: expected ...".

    shape: (rows, cols) of the sparse operand A in y = A @ x.
    """
    if dtype not in DTYPES:
        return f"unsupported: expected dtype in ({', '.join(DTYPES)}) for 2:4, got {dtype}"
    shape = tuple(shape)
    if len(shape) != 2:
        return f"unsupported: expected a 2-D matrix for 2:4, got shape {shape}"
    rows, cols = (int(v) for v in shape)
    min_r, min_c = min_shape(dtype)
    if rows < min_r or rows % min_r or cols < min_c or cols % min_c:
        return (f"unsupported: expected rows a multiple of {min_r} and cols a multiple of {min_c} "
                f"for {dtype} 2:4 ({kernel_library()}), got {rows}x{cols}")
    return None


def semi_structured_unavailable(device: Any) -> str | None:
    """None when ``device`` runs 2:4 kernels; else "unavailable: needs an NVIDIA GPU (sm80+)...".

    Asks CUDA for the compute capability: call inside a job only, never in the web process.
    """
    if device_type(device) != "cuda":
        return NEEDS_GPU
    if not torch.cuda.is_available():
        return NEEDS_GPU + ", got no CUDA device"
    major, minor = torch.cuda.get_device_capability(torch.device(device))
    if major < 8:
        return NEEDS_GPU + f", got sm{major}{minor} ({torch.cuda.get_device_name(torch.device(device))})"
    return None


def nm_problem(a: torch.Tensor, n: int = 2, m: int = 4) -> str | None:
    """None when every group of ``m`` consecutive entries of each row of ``a`` has <= ``n`` non-zeros.

    a: (rows, cols) with cols divisible by m.
    """
    rows, cols = a.shape
    if cols % m:
        return f"expected cols divisible by {m}, got {cols}"
    counts = (a != 0).reshape(rows, cols // m, m).sum(dim=-1)
    bad = int((counts > n).sum())
    if bad:
        return f"expected at most {n} non-zeros in every group of {m}, got {bad} groups with more"
    return None


def to_semi_structured(a: torch.Tensor) -> Any:
    """Compress a 2:4-sparse (rows, cols) fp16/bf16 CUDA matrix; raises NotImplementedError
    ("not supported: ...") when the device, shape, dtype or pattern does not fit."""
    from torch.sparse import to_sparse_semi_structured

    reason = semi_structured_unavailable(a.device)
    if reason is None:
        dtype = str(a.dtype).replace("torch.", "")
        reason = semi_structured_shape_problem(tuple(a.shape), dtype)
    if reason is None:
        problem = nm_problem(a)
        reason = f"unsupported: {problem}" if problem else None
    if reason:
        raise NotImplementedError(f"not supported: {reason}")
    return to_sparse_semi_structured(a.contiguous())


def semi_structured_matmul(prepared: Any, x: torch.Tensor) -> torch.Tensor:
    """y (rows, k) = A @ x for a compressed A (rows, cols) and dense x (cols, k)."""
    return torch.mm(prepared, x)


def semi_structured_matmul_reference(a: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """The slow reference: dense float32 product of a (rows, cols) and x (cols, k), cast back."""
    return (a.float() @ x.float()).to(a.dtype)


def _check(spec: Any) -> str | None:
    return semi_structured_shape_problem(tuple(getattr(spec, "shape", (0, 0)))[:2],
                                         getattr(spec, "dtype", "float32"))


def _bytes(prepared: Any) -> int:
    """Stored bytes: the kept values plus metadata (packed tensors of the subclass)."""
    total = 0
    for attr in ("packed", "meta", "packed_t", "meta_t"):
        t = getattr(prepared, attr, None)
        if isinstance(t, torch.Tensor):
            total += t.numel() * t.element_size()
    return total


def register() -> Backend:
    """Add "torch-2:4" to the formats registry (``engine.sparse.formats`` calls it when it
    loads its optional backends); idempotent like ``bsr_matmul.register``: a second call
    returns the registered backend. Importing this module registers nothing."""
    from engine.sparse.formats import BACKENDS

    if NAME in BACKENDS:
        return BACKENDS[NAME]
    return register_backend(Backend(
        name=NAME, format="2:4", library="torch",
        dtypes={"cuda": DTYPES},
        prepare=lambda a, spec: to_semi_structured(a),
        matmul=semi_structured_matmul,
        to_dense=lambda p: p.to_dense(),
        check=_check, bytes_of=_bytes, ops=("spmm",),
        description="NVIDIA 2:4 semi-structured sparsity (torch.sparse.to_sparse_semi_structured, "
                    "sparse tensor cores, sm80+); A must be 2:4 sparse",
    ))
