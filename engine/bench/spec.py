"""BenchmarkSpec: one measurement to make, frozen and hashable (it is the cache key)."""
from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass

from engine.sparse.formats import BACKENDS, DTYPES, OPS, PATTERNS, get_backend
from engine.validate import check_choice, check_float, check_int

MAX_DIM = 65536
MAX_REPEATS = 1000


@dataclass(frozen=True)
class BenchmarkSpec:
    """y = A @ x with A (m, n) at ``sparsity`` in ``pattern``; x (n,) for spmv, (n, k) for spmm.

    op: "spmv" or "spmm"; format/backend: a registered backend and its format;
    shape: (m, n); k: columns of x (1 for spmv); block: block edge for "block"
    patterns and BSR; dtype: "float32"...; device: "cpu" or "cuda"; repeats: timed
    runs; seed: generator seed for A and x.
    """

    op: str
    format: str
    backend: str
    shape: tuple[int, int]
    k: int
    sparsity: float
    pattern: str
    block: int
    dtype: str
    device: str
    repeats: int
    seed: int = 0

    def __post_init__(self) -> None:
        check_choice("op", self.op, OPS)
        check_choice("pattern", self.pattern, PATTERNS)
        check_choice("dtype", self.dtype, DTYPES)
        check_choice("device", self.device, ("cpu", "cuda"))
        if not isinstance(self.shape, tuple) or len(self.shape) != 2:
            raise ValueError(f"shape: expected a tuple (m, n), got {self.shape!r}")
        for what, v in (("rows", self.shape[0]), ("cols", self.shape[1])):
            check_int(what, v, lo=1, hi=MAX_DIM)
        check_int("k", self.k, lo=1, hi=MAX_DIM)
        if self.op == "spmv" and self.k != 1:
            raise ValueError(f"k: expected 1 for spmv, got {self.k!r}")
        check_float("sparsity", self.sparsity, lo=0.0, hi=1.0)
        check_int("block", self.block, lo=1, hi=4096)
        check_int("repeats", self.repeats, lo=1, hi=MAX_REPEATS)
        check_int("seed", self.seed, lo=0)
        if self.backend in BACKENDS and get_backend(self.backend).format != self.format:
            raise ValueError(f"format: expected {get_backend(self.backend).format!r} for backend "
                             f"{self.backend}, got {self.format!r}")

    @classmethod
    def make(cls, op: str, backend: str, size: int | tuple[int, int], sparsity: float, *,
             k: int = 1, pattern: str = "uniform", block: int = 16, dtype: str = "float32",
             device: str = "cpu", repeats: int = 20, seed: int = 0) -> "BenchmarkSpec":
        """A spec for a registered backend; ``size`` n means an n x n matrix."""
        shape = (int(size), int(size)) if not isinstance(size, (tuple, list)) else tuple(map(int, size))
        fmt = get_backend(backend).format if backend in BACKENDS else "unknown"
        return cls(op=op, format=fmt, backend=backend, shape=shape,
                   k=1 if op == "spmv" else int(k), sparsity=float(sparsity), pattern=pattern,
                   block=int(block), dtype=dtype, device=device, repeats=int(repeats), seed=int(seed))

    def with_backend(self, backend: str) -> "BenchmarkSpec":
        return BenchmarkSpec.make(self.op, backend, self.shape, self.sparsity, k=self.k,
                                  pattern=self.pattern, block=self.block, dtype=self.dtype,
                                  device=self.device, repeats=self.repeats, seed=self.seed)

    def as_dict(self) -> dict:
        d = asdict(self)
        m, n = d.pop("shape")
        return {"op": d["op"], "format": d["format"], "backend": d["backend"], "rows": m,
                "cols": n, "k": d["k"], "sparsity": d["sparsity"], "pattern": d["pattern"],
                "block": d["block"], "dtype": d["dtype"], "device": d["device"],
                "repeats": d["repeats"], "seed": d["seed"]}

    @property
    def key(self) -> str:
        """Stable text key (same spec -> same key across processes and runs)."""
        d = self.as_dict()
        text = "|".join(f"{k}={d[k]!r}" for k in sorted(d))
        return hashlib.sha1(text.encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        m, n = self.shape
        kk = "" if self.op == "spmv" else f" k={self.k}"
        return f"{self.backend} {self.op} {m}x{n}{kk} {self.dtype} s={self.sparsity:g} {self.pattern}"
