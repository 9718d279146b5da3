"""The one registry of sparse formats and backends, and the test-matrix generators.

Every page, sweep and test that multiplies a (sparse) matrix by a vector or a
matrix goes through a :class:`Backend` from this registry:

    backend = get_backend("torch-csr")
    reason = backend.supports(spec)          # None, or "unsupported: expected ... got ..."
    prepared = backend.prepare(A, spec)      # A: dense (m, n) torch tensor; timed apart
    x_ready = backend.prepare_rhs(x)         # x: (n,) for SpMV or (n, k) for SpMM
    y = backend.matmul(prepared, x_ready)    # (m,) or (m, k); y == A @ x up to rounding
    backend.to_dense(prepared)               # (m, n) dense torch tensor, the slow reference

``spec`` is anything with the attributes ``device`` ("cpu" or "cuda"), ``dtype``
("float32", "float16", "bfloat16", "float64"), ``op`` ("spmv" or "spmm"),
``shape`` ((m, n)) and ``block`` (block edge for block formats). The benchmark's
``engine.bench.spec.BenchmarkSpec`` is one such object; ``SimpleSpec`` below is a
light one for pages and tests.

Other modules add backends with :func:`register_backend` (see the optional module
list at the bottom of this file): the registry imports each and calls its
``register()``, which builds a :class:`Backend` and registers it.  A module that is missing or fails to import is recorded in
``OPTIONAL_BACKEND_ERRORS`` and never breaks this import.

Generators (:func:`generate_matrix`) make dense (m, n) matrices with exact zeros in
four patterns: uniform random, power-law rows (graph-like), banded and
block-sparse.
"""
from __future__ import annotations

import importlib
import math
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import torch

from engine.validate import check_choice, check_float, check_int

DTYPES: dict[str, torch.dtype] = {
    "float32": torch.float32,
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float64": torch.float64,
}
DTYPE_BYTES = {"float32": 4, "float16": 2, "bfloat16": 2, "float64": 8}
DEVICES = ("cpu", "cuda")
OPS = ("spmv", "spmm")
PATTERNS = ("uniform", "powerlaw", "banded", "block")
PATTERN_LABELS = {
    "uniform": "uniform random",
    "powerlaw": "power-law rows (graph-like)",
    "banded": "banded",
    "block": "block-sparse",
}
INDEX_BYTES = 8  # torch sparse indices are int64
warnings.filterwarnings("ignore", message="Sparse (CSR|BSR|CSC|BSC) tensor support is in beta")


def torch_dtype(name: str) -> torch.dtype:
    """torch dtype of a dtype name ("float32", ...); ValueError otherwise."""
    check_choice("dtype", name, DTYPES)
    return DTYPES[name]


def device_type(device: Any) -> str:
    """"cpu" or "cuda" from a string like "cuda:0" or a torch.device."""
    text = device.type if isinstance(device, torch.device) else str(device)
    return text.split(":", 1)[0]


@dataclass(frozen=True)
class SimpleSpec:
    """The fields :meth:`Backend.supports` reads; for pages and tests."""

    device: str = "cpu"
    dtype: str = "float32"
    op: str = "spmm"
    shape: tuple[int, int] = (256, 256)
    block: int = 16


def _identity(x):
    return x


@dataclass(frozen=True)
class Backend:
    """One way to store A and multiply it by x.

    name: registry key, e.g. "torch-csr".
    format: storage format, e.g. "dense", "coo", "csr", "bsr", "2:4".
    library: who does the work ("torch", "scipy", "triton", ...).
    dtypes: device type -> dtype names it runs; a device absent here is unsupported.
    prepare(A, spec) -> prepared: dense (m, n) tensor -> this backend's object.
    matmul(prepared, x) -> y: x (n,) or (n, k) as returned by prepare_rhs.
    prepare_rhs(x) -> x in the form matmul wants (default: unchanged).
    to_dense(prepared) -> dense (m, n) torch tensor (the slow reference).
    needs_block: True when the format stores blocks of ``spec.block``.
    check(spec) -> None or a reason, for anything beyond device/dtype/block
        (a missing library, a shape constraint); the reason is the text after
        "unsupported: " and should read "expected ... got ...".
    bytes_of(prepared) -> bytes the prepared operand occupies (for the traffic model).
    ops: which ops it runs ("spmv", "spmm").
    """

    name: str
    format: str
    library: str
    dtypes: Mapping[str, tuple[str, ...]]
    prepare: Callable[[torch.Tensor, Any], Any]
    matmul: Callable[[Any, Any], Any]
    to_dense: Callable[[Any], torch.Tensor]
    prepare_rhs: Callable[[Any], Any] = _identity
    needs_block: bool = False
    check: Callable[[Any], str | None] | None = None
    bytes_of: Callable[[Any], int] | None = None
    ops: tuple[str, ...] = OPS
    description: str = ""
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def devices(self) -> tuple[str, ...]:
        return tuple(self.dtypes)

    def supports(self, spec: Any) -> str | None:
        """None when this backend can run ``spec``, else "unsupported: expected ... got ..."."""
        dev = device_type(getattr(spec, "device", "cpu"))
        if dev not in self.dtypes:
            return (f"unsupported: expected device in ({', '.join(self.dtypes)}) "
                    f"for {self.name}, got {dev}")
        dtype = getattr(spec, "dtype", "float32")
        if dtype not in self.dtypes[dev]:
            return (f"unsupported: expected dtype in ({', '.join(self.dtypes[dev])}) "
                    f"for {self.name} on {dev}, got {dtype}")
        op = getattr(spec, "op", "spmm")
        if op not in self.ops:
            return f"unsupported: expected op in ({', '.join(self.ops)}) for {self.name}, got {op}"
        if self.needs_block:
            block = int(getattr(spec, "block", 0) or 0)
            m, n = tuple(getattr(spec, "shape", (0, 0)))[:2]
            if block < 1 or m % block or n % block:
                return (f"unsupported: expected a block size dividing the shape for {self.name}, "
                        f"got block {block} for shape {m}x{n}")
        if self.check is not None:
            reason = self.check(spec)
            if reason:
                return reason if reason.startswith("unsupported") else "unsupported: " + reason
        return None

    def nbytes(self, prepared: Any) -> int:
        """Bytes the prepared operand occupies in memory."""
        if self.bytes_of is not None:
            return int(self.bytes_of(prepared))
        return tensor_bytes(prepared)


BACKENDS: dict[str, Backend] = {}


def register_backend(backend: Backend, replace: bool = False) -> Backend:
    """Add ``backend`` to the registry (call from your module's ``register()``).

    Registering the same name twice raises unless ``replace`` is True (a module
    that is re-imported may pass replace=True).
    """
    if not isinstance(backend, Backend):
        raise ValueError(f"backend: expected an engine.sparse.formats.Backend, got {type(backend).__name__}")
    if not backend.name or not isinstance(backend.name, str):
        raise ValueError(f"backend name: expected a non-empty string, got {backend.name!r}")
    if backend.name in BACKENDS and not replace and BACKENDS[backend.name] is not backend:
        raise ValueError(f"backend name: expected a new name, got {backend.name!r} (already registered)")
    BACKENDS[backend.name] = backend
    return backend


def backend_names() -> list[str]:
    """Registered backend names, in registration order."""
    return list(BACKENDS)


def get_backend(name: str) -> Backend:
    check_choice("backend", name, BACKENDS)
    return BACKENDS[name]


def unsupported_reason(name: str, spec: Any) -> str | None:
    """None when backend ``name`` can run ``spec``; else its reason text."""
    if name not in BACKENDS:
        err = OPTIONAL_BACKEND_ERRORS.get(name)
        return f"unsupported: expected backend {name!r} registered, got {err or 'no such backend'}"
    return BACKENDS[name].supports(spec)


# -- byte counting -------------------------------------------------------------
def tensor_bytes(t: Any) -> int:
    """Bytes held by a dense or sparse torch tensor (values + indices), or a scipy matrix."""
    if isinstance(t, torch.Tensor):
        layout = t.layout
        if layout == torch.strided:
            return t.numel() * t.element_size()
        if layout == torch.sparse_coo:
            t = t.coalesce() if not t.is_coalesced() else t
            return t.values().numel() * t.element_size() + t.indices().numel() * t.indices().element_size()
        if layout in (torch.sparse_csr, torch.sparse_bsr):
            crow, col = t.crow_indices(), t.col_indices()
            return (t.values().numel() * t.element_size()
                    + crow.numel() * crow.element_size() + col.numel() * col.element_size())
        if hasattr(t, "_values"):
            return t._values().numel() * t.element_size()
        return 0
    if hasattr(t, "data") and hasattr(t, "indices") and hasattr(t, "indptr"):
        return int(t.data.nbytes + t.indices.nbytes + t.indptr.nbytes)
    return 0


# -- torch backends ------------------------------------------------------------
def _dense_matmul(a, x):
    return a @ x


def _sparse_matmul(a, x):
    return a @ x


def _to_dense(a):
    return a.to_dense()


def _prepare_dense(a: torch.Tensor, spec: Any) -> torch.Tensor:
    return a.contiguous()


def _prepare_coo(a: torch.Tensor, spec: Any) -> torch.Tensor:
    return a.to_sparse_coo().coalesce()


def _prepare_csr(a: torch.Tensor, spec: Any) -> torch.Tensor:
    return a.to_sparse_csr()


def _prepare_bsr(a: torch.Tensor, spec: Any) -> torch.Tensor:
    b = int(getattr(spec, "block", 16) or 16)
    return a.to_sparse_bsr((b, b))


_ALL_FLOATS = ("float32", "float64", "float16", "bfloat16")
_CPU_MKL = ("float32", "float64")  # torch's CPU CSR/BSR kernels (MKL) lack half types

register_backend(Backend(
    name="torch-dense", format="dense", library="torch",
    dtypes={"cpu": _ALL_FLOATS, "cuda": _ALL_FLOATS},
    prepare=_prepare_dense, matmul=_dense_matmul, to_dense=lambda a: a,
    description="dense torch.matmul (cuBLAS / CPU BLAS); the baseline",
))
register_backend(Backend(
    name="torch-coo", format="coo", library="torch",
    dtypes={"cpu": _ALL_FLOATS, "cuda": _ALL_FLOATS},
    prepare=_prepare_coo, matmul=_sparse_matmul, to_dense=_to_dense,
    description="torch sparse COO (coordinate list)",
))
register_backend(Backend(
    name="torch-csr", format="csr", library="torch",
    dtypes={"cpu": _CPU_MKL, "cuda": _ALL_FLOATS},
    prepare=_prepare_csr, matmul=_sparse_matmul, to_dense=_to_dense,
    description="torch sparse CSR (cuSPARSE on GPU, MKL on CPU)",
))
register_backend(Backend(
    name="torch-bsr", format="bsr", library="torch",
    dtypes={"cpu": _CPU_MKL, "cuda": _ALL_FLOATS},
    prepare=_prepare_bsr, matmul=_sparse_matmul, to_dense=_to_dense, needs_block=True,
    description="torch block-sparse rows (BSR) with square blocks of spec.block",
))


# -- scipy backend (CPU) -------------------------------------------------------
def _scipy_missing(spec: Any) -> str | None:
    try:
        import scipy.sparse  # noqa: F401
    except ImportError:
        return "expected scipy installed, got not installed"
    return None


def _prepare_scipy_csr(a: torch.Tensor, spec: Any):
    import scipy.sparse

    return scipy.sparse.csr_matrix(a.detach().cpu().numpy())


def _scipy_rhs(x):
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else x


def _scipy_matmul(a, x):
    return a @ x


def _scipy_to_dense(a):
    return torch.from_numpy(a.toarray())


register_backend(Backend(
    name="scipy-csr", format="csr", library="scipy",
    dtypes={"cpu": ("float32", "float64")},
    prepare=_prepare_scipy_csr, matmul=_scipy_matmul, to_dense=_scipy_to_dense,
    prepare_rhs=_scipy_rhs, check=_scipy_missing,
    description="scipy.sparse.csr_matrix on the CPU (single-threaded)",
))


# -- matrix generators ---------------------------------------------------------
def _generator(device: str, seed: int) -> torch.Generator:
    gen = torch.Generator(device=device)
    gen.manual_seed(int(seed))
    return gen


def pattern_mask(pattern: str, rows: int, cols: int, density: float, block: int = 16,
                 seed: int = 0, device: str = "cpu", alpha: float = 1.5) -> torch.Tensor:
    """Boolean (rows, cols) mask of the non-zeros, about ``density`` of them True.

    uniform: each entry kept independently with probability ``density``.
    powerlaw: row i keeps entries with a probability proportional to rank^-alpha over a
        random row order (a few dense rows, many near-empty ones, like a graph's
        degree distribution), clipped at 1.
    banded: |i - j * rows/cols| <= half-width, the width chosen to hit ``density``.
    block: (block x block) tiles kept with probability ``density``; needs rows and
        cols divisible by ``block``.
    """
    check_choice("pattern", pattern, PATTERNS)
    rows = check_int("rows", rows, lo=1)
    cols = check_int("cols", cols, lo=1)
    density = check_float("density", density, lo=0.0, hi=1.0)
    gen = _generator(device, seed)
    if pattern == "uniform":
        return torch.rand(rows, cols, generator=gen, device=device) < density
    if pattern == "powerlaw":
        alpha = check_float("alpha", alpha, lo=0.0, hi=10.0)
        ranks = torch.randperm(rows, generator=gen, device=device).to(torch.float64) + 1.0
        weights = ranks.pow(-alpha)
        per_row = (weights / weights.sum()) * (density * rows)
        # Redistribute what clipping at 1 removes, a few rounds, so the total holds.
        for _ in range(8):
            clipped = per_row.clamp(max=1.0)
            missing = density * rows - clipped.sum()
            room = (clipped < 1.0)
            if missing <= 1e-9 or not bool(room.any()):
                break
            per_row = clipped + room * weights / (weights * room).sum() * missing
        per_row = per_row.clamp(0.0, 1.0).to(torch.float32)
        return torch.rand(rows, cols, generator=gen, device=device) < per_row[:, None]
    if pattern == "banded":
        i = torch.arange(rows, device=device, dtype=torch.float64)[:, None]
        j = torch.arange(cols, device=device, dtype=torch.float64)[None, :] * (rows / cols)
        half = max(0.0, (density * cols - 1.0) / 2.0) * (rows / cols)
        if density <= 0.0:
            return torch.zeros(rows, cols, dtype=torch.bool, device=device)
        return (i - j).abs() <= half + 1e-9
    block = check_int("block", block, lo=1)
    if rows % block or cols % block:
        raise ValueError(f"block: expected a block size dividing {rows}x{cols}, got {block}")
    tiles = torch.rand(rows // block, cols // block, generator=gen, device=device) < density
    return tiles.repeat_interleave(block, 0).repeat_interleave(block, 1)


def generate_matrix(pattern: str, rows: int, cols: int, sparsity: float, block: int = 16,
                    seed: int = 0, device: str = "cpu", dtype: str = "float32") -> torch.Tensor:
    """Dense (rows, cols) tensor with exact zeros: ``sparsity`` = fraction of zeros (about).

    Non-zeros are standard normal, never exactly 0 (shifted away from 0), so the
    number of stored entries equals the mask's count.
    """
    sparsity = check_float("sparsity", sparsity, lo=0.0, hi=1.0)
    dt = torch_dtype(dtype)
    mask = pattern_mask(pattern, rows, cols, 1.0 - sparsity, block=block, seed=seed, device=device)
    gen = _generator(device, seed + 1)
    values = torch.randn(rows, cols, generator=gen, device=device, dtype=torch.float32)
    values = torch.where(values >= 0, values + 0.1, values - 0.1)
    return torch.where(mask, values, torch.zeros((), device=device)).to(dt)


def density_of(a: torch.Tensor) -> float:
    """Fraction of non-zero entries of a dense tensor."""
    return float((a != 0).sum().item()) / max(1, a.numel())


# Calibrated against peaks measured on whole sweeps of one matrix (every default backend),
# tests/unit/test_memory_calibration.py: a (rows, cols) matrix is generated from float32
# values, their +-0.1 copies and boolean masks (about 18 bytes per entry beside the result),
# and a sparse form built from it holds its values, two int64 indices per non-zero and as
# many index temporaries while it is built, next to the dense matrix and its != 0 mask.
GEN_BYTES_PER_ENTRY = 18
BUILD_BYTES_PER_NNZ = 4 * INDEX_BYTES
ESTIMATE_MARGIN = 1.25  # measured peaks sit 0-30 % below the bare model: keep a margin above


def estimate_bytes(rows: int, cols: int, k: int, density: float, dtype: str, fmt: str,
                   block: int = 16) -> int:
    """Peak bytes of measuring one (rows, cols) matrix with x of (cols, k) (the memory
    guard): the larger of generating A and building its sparse form, plus x, y and a
    result temporary, times ESTIMATE_MARGIN. It covers every format a sweep measures on
    that matrix, since they run one after another on the same A."""
    el = DTYPE_BYTES.get(dtype, 4)
    entries = rows * cols
    nnz = density * entries
    generate = entries * (GEN_BYTES_PER_ENTRY + el)
    if fmt == "dense":
        build = 2 * entries * el
    elif fmt == "bsr":
        tiles = min(entries, math.ceil(nnz / (block * block)) * block * block + nnz)
        build = entries * (2 * el + 3) + tiles * el + nnz * BUILD_BYTES_PER_NNZ
    else:  # coo / csr, and the bsr / scipy conversions that follow on the same A
        build = entries * (2 * el + 3) + nnz * (el + BUILD_BYTES_PER_NNZ)
    rhs = 2 * (cols + rows) * max(1, k) * el
    return int(ESTIMATE_MARGIN * (max(generate, build) + rhs))


def storage_bytes(fmt: str, rows: int, cols: int, density: float, dtype: str = "float32",
                  block: int = 16, index_bytes: int = INDEX_BYTES) -> float:
    """Bytes to store an (rows, cols) matrix of uniform ``density`` in ``fmt`` (a model).

    dense: every value. coo: value + row and column index per non-zero. csr: value +
    column index per non-zero, plus rows + 1 row pointers. bsr: every (block x block)
    tile holding a non-zero is stored whole (expected count for uniform random
    non-zeros), plus one column index per tile and row pointers per block row.
    Indices are int64 in torch (index_bytes = 8).
    """
    check_choice("format", fmt, ("dense", "coo", "csr", "bsr"))
    el = DTYPE_BYTES[dtype]
    nnz = density * rows * cols
    if fmt == "dense":
        return float(rows * cols * el)
    if fmt == "coo":
        return nnz * (el + 2 * index_bytes)
    if fmt == "csr":
        return nnz * (el + index_bytes) + (rows + 1) * index_bytes
    tiles = (rows / block) * (cols / block)
    filled = tiles * (1.0 - (1.0 - density) ** (block * block))
    return filled * (block * block * el + index_bytes) + (rows / block + 1) * index_bytes


def bytes_break_even(fmt: str, dtype: str = "float32", index_bytes: int = INDEX_BYTES) -> float:
    """Sparsity above which ``fmt`` ("coo" or "csr") needs fewer bytes than dense (large n)."""
    el = DTYPE_BYTES[dtype]
    per_nnz = el + (2 if fmt == "coo" else 1) * index_bytes
    return 1.0 - el / per_nnz


# -- optional backends from other modules ----------------------------------------
# Add your module's import path here. The registry imports it and calls its
# ``register()`` (idempotent; it calls register_backend): importing a backend module
# registers nothing.
OPTIONAL_BACKEND_MODULES: tuple[str, ...] = (
    "engine.sparse.kernels.bsr_matmul",   # "lab-bsr": the project's Triton BSR kernel
    "engine.sparse.two_four",       # "torch-2:4": NVIDIA 2:4 via to_sparse_semi_structured
)
OPTIONAL_BACKEND_ERRORS: dict[str, str] = {}


def _load_optional_backends() -> None:
    for module in OPTIONAL_BACKEND_MODULES:
        try:
            register = getattr(importlib.import_module(module), "register", None)
            if register is not None:
                register()
        except Exception as exc:  # noqa: BLE001 - a broken optional module must not break the registry
            OPTIONAL_BACKEND_ERRORS[module] = f"{type(exc).__name__}: {exc}"


_load_optional_backends()

from engine.sparse.pruning import prune_mask  # noqa: E402,F401  (magnitude pruning to a pattern)
