"""Structured matrices: low-rank, butterfly, Monarch, circulant, Toeplitz (and the
magnitude-pruned sparse matrix they are compared against).

Every family answers the same questions:

    op = LowRank.fit(A, rank=8)      # best approximation of A (n, n) in the family
    op.apply(x)                      # fast path, x: (n,) or (batch, n) -> (batch, m)
    op.apply_reference(x)            # slow, obviously-correct path (loops / explicit factors)
    op.to_dense()                    # (m, n) numpy array
    op.n_params, op.flops(batch)     # stored numbers; floating-point operations
    op.torch_apply(device, dtype)    # a closure x -> y on torch tensors (for timing)

Conventions: x holds one vector per row, so ``apply(x) == x @ to_dense().T``.
FLOPs count a multiply-add as 2; an FFT of length n as 5 n log2 n (complex) or
2.5 n log2 n (real input). Parameters may be complex (the DFT target is complex).

The rest of engine.structured builds on these classes: ``targets`` (the matrices to
approximate), ``pareto`` (error against parameter count, fits within a budget),
``sweep`` (the timing sweep) and ``tables`` (the chapter's comparison table and the
lab's goal figures beside measured rows).
"""
from __future__ import annotations

import math
import warnings
from typing import Callable

import numpy as np

from engine.validate import check_int
from engine.runtime.threads import torch_threads

FAMILIES = ("lowrank", "monarch", "butterfly", "circulant", "toeplitz", "sparse")
FAMILY_LABELS = {
    "dense": "Dense",
    "lowrank": "Low-rank",
    "monarch": "Monarch",
    "butterfly": "Butterfly",
    "circulant": "Circulant (FFT)",
    "toeplitz": "Toeplitz (FFT)",
    "sparse": "Sparse (magnitude-pruned)",
}


# --------------------------------------------------------------------------- helpers
def is_pow2(n: int) -> bool:
    return n >= 1 and (n & (n - 1)) == 0


def _as_batch(x: np.ndarray, n: int) -> tuple[np.ndarray, bool]:
    """x: (n,) or (batch, n) -> ((batch, n), was_vector)."""
    x = np.asarray(x)
    if x.ndim == 1:
        x = x[None, :]
        vec = True
    elif x.ndim == 2:
        vec = False
    else:
        raise ValueError(f"x: expected shape (n,) or (batch, n) with n={n}, got {x.shape}")
    if x.shape[1] != n:
        raise ValueError(f"x: expected last dimension {n}, got {x.shape}")
    return x, vec


def check_square(A: np.ndarray, what: str = "A") -> np.ndarray:
    A = np.asarray(A)
    if A.ndim != 2 or A.shape[0] != A.shape[1] or A.shape[0] < 2:
        raise ValueError(f"{what}: expected a square (n, n) matrix with n >= 2, got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError(f"{what}: expected finite entries, got NaN or inf")
    return A


def relative_error(A: np.ndarray, B: np.ndarray) -> float:
    """||A - B||_F / ||A||_F (0 when both are zero)."""
    den = float(np.linalg.norm(A))
    num = float(np.linalg.norm(np.asarray(A) - np.asarray(B)))
    return num / den if den > 0 else num


def _fmt(k: int) -> str:
    return f"{k:,}"


def bit_reversal(n: int) -> np.ndarray:
    """The bit-reversal permutation of range(n) (n a power of 2)."""
    if not is_pow2(n):
        raise ValueError(f"n: expected a power of 2, got {n}")
    bits = int(math.log2(n))
    idx = np.arange(n)
    out = np.zeros(n, dtype=np.int64)
    for b in range(bits):
        out |= ((idx >> b) & 1) << (bits - 1 - b)
    return out


def fft_flops(n: int, real: bool) -> float:
    """The usual count for one FFT of length n: 5 n log2 n (complex), half for real input."""
    f = 5.0 * n * math.log2(max(n, 2))
    return f / 2 if real else f


def few_threads(k: int = 1):
    """Run small dense algebra on ``k`` threads (restored after, see engine.runtime.threads).

    Fits here are many small SVDs and tiny tensor ops: on a shared machine a full
    BLAS thread pool per call oversubscribes the cores and runs tens of times slower.
    """
    return torch_threads(k)


def _torch_dtype(dtype: str):
    """The torch dtype of ``dtype`` through the lab's one dtype map (engine.sparse.formats)."""
    from engine.sparse.formats import torch_dtype

    return torch_dtype(dtype)


# ------------------------------------------------------------------------ the families
class StructuredMatrix:
    """Base class: shape, parameter count, FLOPs, to_dense and the two apply paths."""

    family = "base"
    shape: tuple[int, int]
    stored: tuple[str, ...] = ()  # the attributes that hold the stored numbers

    def apply(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def apply_reference(self, x: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def n_params(self) -> int:
        """Numbers stored: the sizes of ``stored`` (indices, permutations not counted)."""
        return sum(getattr(self, f).size for f in self.stored)

    def flops(self, batch: int = 1) -> float:
        """Floating-point operations for ``batch`` vectors (multiply-add = 2)."""
        return 2.0 * self.n_params * batch

    @property
    def config(self) -> str:
        return ""

    def to_dense(self) -> np.ndarray:
        """The (m, n) matrix, built by applying the fast path to the identity."""
        m, n = self.shape
        return self.apply(np.eye(n, dtype=self.dtype)).T.copy()

    @property
    def dtype(self):
        """The dtype of the stored numbers (``stored``)."""
        return np.result_type(*(getattr(self, f) for f in self.stored)) if self.stored else np.float64

    def storage_bytes(self, itemsize: int = 4) -> int:
        """Bytes to store the operator (values only; no indices for structured families)."""
        return self.n_params * itemsize

    def torch_apply(self, device: str = "cpu", dtype: str = "float32") -> Callable:
        raise NotImplementedError(f"{type(self).__name__} has no torch path")

    def __repr__(self) -> str:
        m, n = self.shape
        cfg = f", {self.config}" if self.config else ""
        share = 100.0 * self.n_params / (m * n)
        return (f"{type(self).__name__}({m}x{n}{cfg}, params={_fmt(self.n_params)} "
                f"({share:.3g}% of dense), flops/vector={_fmt(int(self.flops(1)))})")


class LowRank(StructuredMatrix):
    """A = U V^T with U: (m, r), V: (n, r). Apply as U (V^T x): 2 r (m + n) FLOPs per vector."""

    family = "lowrank"
    stored = ("U", "V")

    def __init__(self, U: np.ndarray, V: np.ndarray):
        U, V = np.asarray(U), np.asarray(V)
        if U.ndim != 2 or V.ndim != 2 or U.shape[1] != V.shape[1]:
            raise ValueError(f"U, V: expected (m, r) and (n, r), got {U.shape} and {V.shape}")
        self.U, self.V = U, V
        self.shape = (U.shape[0], V.shape[0])

    @property
    def rank(self) -> int:
        return self.U.shape[1]

    @property
    def config(self) -> str:
        return f"r={self.rank}"

    @classmethod
    def fit(cls, A: np.ndarray, rank: int) -> "LowRank":
        """Truncated SVD (the best rank-r approximation, Eckart-Young)."""
        A = np.asarray(A)
        if A.ndim != 2:
            raise ValueError(f"A: expected a 2-D matrix, got shape {A.shape}")
        rank = check_int("rank", rank, 1, min(A.shape))
        u, s, vh = np.linalg.svd(A, full_matrices=False)
        return cls(u[:, :rank] * s[:rank], vh[:rank].T)

    @classmethod
    def random(cls, n: int, rank: int, seed: int = 0) -> "LowRank":
        rng = np.random.default_rng(seed)
        return cls(rng.standard_normal((n, rank)) / math.sqrt(rank),
                   rng.standard_normal((n, rank)) / math.sqrt(n))

    def apply(self, x):
        x, vec = _as_batch(x, self.shape[1])
        y = (x @ self.V) @ self.U.T
        return y[0] if vec else y

    def to_dense(self) -> np.ndarray:
        """U V^T: one product of the factors (apply to the identity: two)."""
        return self.U @ self.V.T

    def apply_reference(self, x):
        # A sum of rank-one terms: y = sum_k U[:, k] (V[:, k] . x).
        x, vec = _as_batch(x, self.shape[1])
        y = np.zeros((x.shape[0], self.shape[0]), dtype=np.result_type(x, self.dtype))
        for k in range(self.rank):
            y += np.outer(x @ self.V[:, k], self.U[:, k])
        return y[0] if vec else y

    def torch_apply(self, device="cpu", dtype="float32"):
        import torch

        dt = _torch_dtype(dtype)
        V = torch.as_tensor(np.ascontiguousarray(self.V.real), dtype=dt, device=device)
        UT = torch.as_tensor(np.ascontiguousarray(self.U.real.T), dtype=dt, device=device)
        return lambda x: (x @ V) @ UT


class Monarch(StructuredMatrix):
    """M = L P R: two block-diagonal factors and a fixed 'transpose' permutation.

    n = b q with q a multiple of b. R: (b, q, q), block k acts on x[k q:(k+1) q];
    the permutation reads the intermediate u as a (b, q) array and flattens its
    transpose; L: (b, q, q), block beta acts on the permuted entries [beta q:(beta+1) q].
    With b = q = sqrt(n) this is the square Monarch of Dao et al. (2022). Parameters
    2 n q = 2 n^2 / b.
    """

    family = "monarch"
    stored = ("L", "R")

    def __init__(self, L: np.ndarray, R: np.ndarray):
        L, R = np.asarray(L), np.asarray(R)
        if L.ndim != 3 or L.shape != R.shape or L.shape[1] != L.shape[2]:
            raise ValueError(f"L, R: expected two (b, q, q) arrays, got {L.shape} and {R.shape}")
        b, q, _ = L.shape
        if q % b:
            raise ValueError(f"Monarch blocks: expected block size q a multiple of b, got b={b}, q={q}")
        self.L, self.R = L, R
        self.b, self.q = b, q
        self.shape = (b * q, b * q)

    @staticmethod
    def check_blocks(n: int, nblocks: int) -> None:
        if nblocks < 1 or n % nblocks or (n // nblocks) % nblocks:
            raise ValueError(f"nblocks: expected b with b^2 dividing n={n}, got {nblocks}")

    @staticmethod
    def valid_blocks(n: int) -> list[int]:
        """Numbers of blocks b >= 2 with b^2 dividing n."""
        return [b for b in range(2, int(math.isqrt(n)) + 1) if n % (b * b) == 0]

    @property
    def config(self) -> str:
        return f"{self.b} blocks of {self.q}"

    def permutation(self) -> np.ndarray:
        """perm with w = u[perm]: w[j b + k] = u[k q + j]."""
        j, k = np.divmod(np.arange(self.b * self.q), self.b)
        return k * self.q + j

    @classmethod
    def fit(cls, A: np.ndarray, nblocks: int) -> "Monarch":
        """Block-wise low-rank projection (Dao et al. 2022), optimal in Frobenius norm.

        Entry (beta, s), (k, i) of M equals sum_jj L[beta, s, jj b + k] R[k, beta c + jj, i]
        (c = q / b), so each (q, q) slice A[beta, :, k, :] is a product of rank c whose
        factors belong to that slice alone: its truncated SVD is the best choice.
        With b = q (square Monarch) every slice is rank one.
        """
        A = check_square(A)
        n = A.shape[0]
        cls.check_blocks(n, nblocks)
        b = nblocks
        q = n // b
        c = q // b
        T = A.reshape(b, q, b, q).transpose(0, 2, 1, 3)  # (beta, k, s, i)
        u, s, vh = np.linalg.svd(T, full_matrices=False)
        root = np.sqrt(s[..., :c])
        left = u[..., :, :c] * root[..., None, :]  # (beta, k, q, c)
        right = vh[..., :c, :] * root[..., :, None]  # (beta, k, c, q)
        dt = np.result_type(A, np.float64)
        L = np.zeros((b, q, q), dtype=dt)
        R = np.zeros((b, q, q), dtype=dt)
        for k in range(b):
            # columns jj b + k of L[beta]; rows beta c .. beta c + c of R[k]
            L[:, :, k::b] = left[:, k]
            R[k] = right[:, k].reshape(b * c, q)
        return cls(L, R)

    @classmethod
    def random(cls, n: int, nblocks: int, seed: int = 0) -> "Monarch":
        cls.check_blocks(n, nblocks)
        rng = np.random.default_rng(seed)
        q = n // nblocks
        return cls(rng.standard_normal((nblocks, q, q)) / math.sqrt(q),
                   rng.standard_normal((nblocks, q, q)) / math.sqrt(q))

    def apply(self, x):
        x, vec = _as_batch(x, self.shape[1])
        B, b, q = x.shape[0], self.b, self.q
        # batched matrix products (BLAS) over the blocks: (b, B, q) throughout
        u = np.matmul(x.reshape(B, b, q).swapaxes(0, 1), self.R.swapaxes(1, 2))  # [k, z, j]
        w = u.transpose(1, 2, 0).reshape(B, b, q).swapaxes(0, 1)  # the permutation
        y = np.matmul(w, self.L.swapaxes(1, 2)).swapaxes(0, 1).reshape(B, b * q)
        return y[0] if vec else y

    def to_dense(self) -> np.ndarray:
        """The (n, n) matrix block by block: block (beta, k) is L[beta][:, k::b] @
        R[k][beta c:(beta + 1) c] (c = q / b), n^2 c multiplies (apply to the identity: 2 n^2 q)."""
        b, q = self.b, self.q
        c = q // b
        left = self.L.reshape(b, q, c, b).transpose(0, 3, 1, 2)  # (beta, k, s, jj)
        right = self.R.reshape(b, b, c, q).transpose(1, 0, 2, 3)  # (beta, k, jj, i)
        return np.matmul(left, right).transpose(0, 2, 1, 3).reshape(b * q, b * q)

    def apply_reference(self, x):
        # Block by block, with the permutation as an explicit index array.
        x, vec = _as_batch(x, self.shape[1])
        b, q = self.b, self.q
        perm = self.permutation()
        out = np.zeros((x.shape[0], self.shape[0]), dtype=np.result_type(x, self.dtype))
        for z in range(x.shape[0]):
            u = np.concatenate([self.R[k] @ x[z, k * q:(k + 1) * q] for k in range(b)])
            w = u[perm]
            out[z] = np.concatenate([self.L[k] @ w[k * q:(k + 1) * q] for k in range(b)])
        return out[0] if vec else out

    def torch_apply(self, device="cpu", dtype="float32"):
        import torch

        dt = _torch_dtype(dtype)
        RT = torch.as_tensor(np.ascontiguousarray(self.R.real.transpose(0, 2, 1)), dtype=dt, device=device)
        LT = torch.as_tensor(np.ascontiguousarray(self.L.real.transpose(0, 2, 1)), dtype=dt, device=device)
        b, q, n = self.b, self.q, self.shape[0]

        def run(x):
            B = x.shape[0]
            u = torch.bmm(x.view(B, b, q).transpose(0, 1), RT)  # (b, B, q)
            w = u.permute(1, 2, 0).reshape(B, b, q).transpose(0, 1)  # (b, B, q)
            return torch.bmm(w, LT).transpose(0, 1).reshape(B, n)

        return run


def butterfly_product(twiddle):
    """T_L ... T_1 of the twiddles (log2 n, n/2, 2, 2) as an (n, n) array (numpy or torch).

    After the factors of strides 1 .. s/2 the product is block diagonal with (s, s)
    blocks; the factor of stride s joins each pair of blocks into one (2s, 2s) block,
    N[a s + t, h s + c] = w[t, a, h] M_h[t, c]. About 2 n^2 multiplies in all (one
    broadcast product per level), not n^2 log2 n for the factors applied to the identity.
    """
    levels, half = twiddle.shape[:2]
    M = twiddle[0].reshape(half, 2, 2)  # stride 1: n/2 blocks of (2, 2)
    for l in range(1, levels):
        s = 2 ** l
        g = half // s
        w = twiddle[l].reshape(g, s, 2, 2).swapaxes(1, 2)[..., None]  # (g, a, t, h, 1)
        Mv = M.reshape(g, 2, s, s).swapaxes(1, 2)[:, None]  # (g, 1, t, h, c)
        M = (w * Mv).reshape(g, 2 * s, 2 * s)
    return M.reshape(2 * half, 2 * half)


class Butterfly(StructuredMatrix):
    """B = T_(n/2) ... T_2 T_1 P: log2 n factors of 2x2 blocks and an input permutation.

    twiddle: (log2 n, n/2, 2, 2). Factor l (stride s = 2^l, applied l-th) mixes the
    pairs (g 2s + t, g 2s + s + t) with the 2x2 block twiddle[l].reshape(n/(2s), s, 2, 2)[g, t].
    perm: (n,) with (P x) = x[perm]; the DFT needs the bit reversal, Hadamard none.
    Parameters 2 n log2 n, FLOPs 4 n log2 n per vector.
    """

    family = "butterfly"
    stored = ("twiddle",)

    def __init__(self, twiddle: np.ndarray, perm: np.ndarray | None = None):
        twiddle = np.asarray(twiddle)
        if twiddle.ndim != 4 or twiddle.shape[2:] != (2, 2):
            raise ValueError(f"twiddle: expected (log2 n, n/2, 2, 2), got {twiddle.shape}")
        n = 2 * twiddle.shape[1]
        if not is_pow2(n) or twiddle.shape[0] != int(math.log2(n)):
            raise ValueError(f"twiddle: expected (log2 n, n/2, 2, 2) with n a power of 2, got {twiddle.shape}")
        self.twiddle = twiddle
        self.perm = np.arange(n) if perm is None else np.asarray(perm, dtype=np.int64)
        if sorted(self.perm.tolist()) != list(range(n)):
            raise ValueError(f"perm: expected a permutation of range({n}), got {perm!r}")
        self.shape = (n, n)
        self.levels = twiddle.shape[0]

    @property
    def config(self) -> str:
        bitrev = np.array_equal(self.perm, bit_reversal(self.shape[0]))
        ident = np.array_equal(self.perm, np.arange(self.shape[0]))
        p = "" if ident else (", bit-rev. input" if bitrev else ", permuted input")
        return f"{self.levels} factors{p}"

    def _level(self, l: int) -> np.ndarray:
        s = 2 ** l
        return self.twiddle[l].reshape(self.shape[0] // (2 * s), s, 2, 2)

    def apply(self, x):
        x, vec = _as_batch(x, self.shape[1])
        B, n = x.shape[0], self.shape[0]
        y = x[:, self.perm]
        for l in range(self.levels):
            s = 2 ** l
            y = np.einsum("zgbt,gtab->zgat", y.reshape(B, n // (2 * s), 2, s), self._level(l))
            y = y.reshape(B, n)
        return y[0] if vec else y

    def to_dense(self) -> np.ndarray:
        """The (n, n) matrix: the factors' product (butterfly_product), columns permuted."""
        T = butterfly_product(self.twiddle)
        D = np.empty_like(T)
        D[:, self.perm] = T  # B x = T x[perm]
        return D

    def factors(self) -> list[np.ndarray]:
        """The explicit (n, n) factors [P, T_1, T_2, ...] built entry by entry."""
        n = self.shape[0]
        P = np.zeros((n, n), dtype=self.dtype)
        P[np.arange(n), self.perm] = 1
        out = [P]
        for l in range(self.levels):
            s = 2 ** l
            T = np.zeros((n, n), dtype=self.dtype)
            W = self._level(l)
            for g in range(n // (2 * s)):
                for t in range(s):
                    rows = (g * 2 * s + t, g * 2 * s + s + t)
                    for a in range(2):
                        for b in range(2):
                            T[rows[a], rows[b]] = W[g, t, a, b]
            out.append(T)
        return out

    def apply_reference(self, x):
        # The product of explicit sparse factors, one after another.
        x, vec = _as_batch(x, self.shape[1])
        y = x.T.astype(np.result_type(x, self.dtype))
        for F in self.factors():
            y = F @ y
        return y.T[0] if vec else y.T

    @classmethod
    def dft(cls, n: int, normalized: bool = True) -> "Butterfly":
        """Cooley-Tukey: F_n = [[I, W], [I, -W]] diag(F_n/2, F_n/2) (even/odd split)."""
        if not is_pow2(n) or n < 2:
            raise ValueError(f"n: expected a power of 2 >= 2, got {n}")
        levels = int(math.log2(n))
        tw = np.zeros((levels, n // 2, 2, 2), dtype=np.complex128)
        scale = 1 / math.sqrt(2) if normalized else 1.0
        for l in range(levels):
            s = 2 ** l
            w = np.exp(-2j * np.pi * np.arange(s) / (2 * s))
            blk = np.empty((s, 2, 2), dtype=np.complex128)
            blk[:, 0, 0], blk[:, 0, 1], blk[:, 1, 0], blk[:, 1, 1] = 1, w, 1, -w
            tw[l] = np.tile(blk * scale, (n // (2 * s), 1, 1))
        return cls(tw, bit_reversal(n))

    @classmethod
    def hadamard(cls, n: int, normalized: bool = True) -> "Butterfly":
        """Sylvester: H_n = [[I, I], [I, -I]] diag(H_n/2, H_n/2)."""
        if not is_pow2(n) or n < 2:
            raise ValueError(f"n: expected a power of 2 >= 2, got {n}")
        levels = int(math.log2(n))
        blk = np.array([[1.0, 1.0], [1.0, -1.0]]) * (1 / math.sqrt(2) if normalized else 1.0)
        return cls(np.tile(blk, (levels, n // 2, 1, 1)), None)

    @classmethod
    def random(cls, n: int, seed: int = 0) -> "Butterfly":
        if not is_pow2(n) or n < 2:
            raise ValueError(f"n: expected a power of 2 >= 2, got {n}")
        rng = np.random.default_rng(seed)
        levels = int(math.log2(n))
        return cls(rng.standard_normal((levels, n // 2, 2, 2)) / math.sqrt(2), None)

    @classmethod
    def project(cls, A: np.ndarray, perm: np.ndarray | None = None) -> "Butterfly":
        """Hierarchical rank-one projection, outermost factor first (exact if A is a butterfly).

        With M = A P^T, the top factor splits M into 2x2 blocks M_ab = D_ab R_b (D diagonal),
        so rows t and s + t of column half b form a rank-one (2, s) matrix: its leading
        singular pair gives the twiddles and the row t of R_b. Recurse into every R_b.
        """
        A = check_square(A)
        n = A.shape[0]
        if not is_pow2(n):
            raise ValueError(f"A: expected n a power of 2 for a butterfly, got {n}")
        perm = np.arange(n) if perm is None else np.asarray(perm)
        levels = int(math.log2(n))
        dt = np.result_type(A, np.float64)
        tw = np.zeros((levels, n // 2, 2, 2), dtype=dt)
        G = A[:, perm][None]  # (groups, 2s, 2s)
        for l in range(levels - 1, 0, -1):
            s = 2 ** l
            ng = G.shape[0]
            S = G.reshape(ng, 2, s, 2, s).transpose(0, 2, 3, 1, 4)  # (g, t, b, a, col)
            u, sv, vh = np.linalg.svd(S, full_matrices=False)
            root = np.sqrt(sv[..., 0])
            w = u[..., :, 0] * root[..., None]  # (g, t, b, a)
            tw[l] = w.transpose(0, 1, 3, 2).reshape(n // 2, 2, 2)
            rows = vh[..., 0, :] * root[..., None]  # (g, t, b, col)
            G = rows.transpose(0, 2, 1, 3).reshape(2 * ng, s, s)
        tw[0] = G.reshape(n // 2, 2, 2)
        return cls(tw, perm)

    @classmethod
    def fit(cls, A: np.ndarray, steps: int = 100, lr: float = 0.01, seed: int = 0,
            tol: float = 1e-9) -> "Butterfly":
        """Best of the hierarchical projections (identity and bit-reversal input
        permutations), then refined by at most ``steps`` L-BFGS evaluations (``_refine``) unless
        it is already exact. Exact for the DFT and Hadamard matrices."""
        A = check_square(A)
        n = A.shape[0]
        if not is_pow2(n):
            raise ValueError(f"A: expected n a power of 2 for a butterfly, got {n}")
        steps = check_int("steps", steps, 0, 100_000)
        candidates = [cls.project(A, p) for p in (None, bit_reversal(n))]
        best = min(candidates, key=lambda op: relative_error(A, op.to_dense()))
        if steps == 0 or relative_error(A, best.to_dense()) < tol:
            return best
        return best._refine(A, steps, lr, seed)

    def _refine(self, A: np.ndarray, steps: int, lr: float, seed: int) -> "Butterfly":
        """At most ``steps`` loss-and-gradient evaluations of L-BFGS (scipy) on the
        twiddles, the gradient by torch autograd. L-BFGS, not torch.optim: the first
        torch.optim step imports torch._dynamo (seconds, in the web process), and on
        these fits L-BFGS reaches Adam's error in fewer evaluations."""
        import scipy.optimize
        import torch

        del lr, seed  # the descent starts from the projection: nothing random (kept for the API)
        cplx = np.iscomplexobj(A) or np.iscomplexobj(self.twiddle)
        # single precision is plenty for a descent that stops at a few digits
        dt = torch.complex64 if cplx else torch.float32
        shape = self.twiddle.shape
        target = torch.as_tensor(A[:, self.perm], dtype=dt)  # fit B = A P^T
        norm2 = float((target.abs() ** 2).sum()) or 1.0

        def loss_and_grad(p: np.ndarray):
            p = torch.from_numpy(p.astype(np.float32))
            half = p.numel() // 2
            t = (torch.complex(p[:half], p[half:]) if cplx else p).reshape(shape).requires_grad_(True)
            loss = ((butterfly_product(t) - target).abs() ** 2).sum() / norm2
            loss.backward()
            g = torch.cat([t.grad.real.reshape(-1), t.grad.imag.reshape(-1)]) if cplx else t.grad.reshape(-1)
            return float(loss.detach()), g.numpy().astype(np.float64)

        tw = self.twiddle
        x0 = np.concatenate([tw.real.ravel(), tw.imag.ravel()]) if cplx else tw.ravel().astype(np.float64)
        with few_threads():
            res = scipy.optimize.minimize(loss_and_grad, x0, jac=True, method="L-BFGS-B",
                                          options={"maxiter": steps, "maxfun": steps})
        x = res.x
        out = (x[:x.size // 2] + 1j * x[x.size // 2:]) if cplx else x.astype(tw.dtype)
        fitted = Butterfly(out.reshape(shape), self.perm)
        start = relative_error(A, self.to_dense())  # never worse than where it started
        return fitted if relative_error(A, fitted.to_dense()) <= start else self

    def torch_apply(self, device="cpu", dtype="float32"):
        import torch

        dt = _torch_dtype(dtype)
        n = self.shape[0]
        levels = []
        for l in range(self.levels):
            s = 2 ** l
            W = torch.as_tensor(np.ascontiguousarray(self._level(l).real), dtype=dt, device=device)
            levels.append((s, W[..., 0, 0], W[..., 0, 1], W[..., 1, 0], W[..., 1, 1]))
        perm = torch.as_tensor(self.perm, device=device)
        identity = np.array_equal(self.perm, np.arange(n))

        def run(x):
            B = x.shape[0]
            y = x if identity else x[:, perm]
            for s, w00, w01, w10, w11 in levels:
                v = y.view(B, n // (2 * s), 2, s)
                x0, x1 = v[:, :, 0], v[:, :, 1]
                y = torch.stack((w00 * x0 + w01 * x1, w10 * x0 + w11 * x1), dim=2).view(B, n)
            return y

        return run


class Circulant(StructuredMatrix):
    """C[i, j] = c[(i - j) mod n]; C x = ifft(fft(c) * fft(x)). n parameters."""

    family = "circulant"
    stored = ("c",)

    def __init__(self, c: np.ndarray):
        c = np.asarray(c)
        if c.ndim != 1 or c.size < 2:
            raise ValueError(f"c: expected a first column of shape (n,) with n >= 2, got {c.shape}")
        self.c = c
        self.shape = (c.size, c.size)

    def flops(self, batch: int = 1) -> float:
        n = self.shape[0]
        real = not np.iscomplexobj(self.c)
        # forward FFT of x, inverse FFT, pointwise complex product (6 flops each)
        return batch * (2 * fft_flops(n, real) + 6 * (n // 2 + 1 if real else n))

    @classmethod
    def fit(cls, A: np.ndarray) -> "Circulant":
        """Average of each wrapped diagonal: the closest circulant in Frobenius norm."""
        A = check_square(A)
        n = A.shape[0]
        i = np.arange(n)
        return cls(np.array([A[i, (i - d) % n].mean() for d in range(n)]))

    @classmethod
    def random(cls, n: int, seed: int = 0) -> "Circulant":
        return cls(np.random.default_rng(seed).standard_normal(n) / math.sqrt(n))

    def apply(self, x):
        x, vec = _as_batch(x, self.shape[1])
        n = self.shape[0]
        if np.iscomplexobj(x) or np.iscomplexobj(self.c):
            y = np.fft.ifft(np.fft.fft(x, axis=-1) * np.fft.fft(self.c), axis=-1)
        else:
            y = np.fft.irfft(np.fft.rfft(x, axis=-1) * np.fft.rfft(self.c), n=n, axis=-1)
        return y[0] if vec else y

    def apply_reference(self, x):
        # y[i] = sum_d c[d] x[i - d]: a sum of shifted copies, no FFT.
        x, vec = _as_batch(x, self.shape[1])
        y = np.zeros(x.shape, dtype=np.result_type(x, self.c))
        for d in range(self.shape[0]):
            y += self.c[d] * np.roll(x, d, axis=1)
        return y[0] if vec else y

    def torch_apply(self, device="cpu", dtype="float32"):
        import torch

        dt = _torch_dtype(dtype)
        n = self.shape[0]
        cf = torch.fft.rfft(torch.as_tensor(self.c.real, dtype=dt, device=device))
        return lambda x: torch.fft.irfft(torch.fft.rfft(x, dim=-1) * cf, n=n, dim=-1)


class Toeplitz(StructuredMatrix):
    """T[i, j] = t[i - j + n - 1], t: (2n - 1,). Applied through a circulant of size 2n."""

    family = "toeplitz"
    stored = ("t",)

    def __init__(self, t: np.ndarray):
        t = np.asarray(t)
        if t.ndim != 1 or t.size < 3 or t.size % 2 == 0:
            raise ValueError(f"t: expected diagonals of shape (2n - 1,) with n >= 2, got {t.shape}")
        self.t = t
        n = (t.size + 1) // 2
        self.shape = (n, n)

    def flops(self, batch: int = 1) -> float:
        n2 = 2 * self.shape[0]
        real = not np.iscomplexobj(self.t)
        return batch * (2 * fft_flops(n2, real) + 6 * (n2 // 2 + 1 if real else n2))

    def embedding(self) -> np.ndarray:
        """First column (2n,) of the circulant whose top-left (n, n) block is T."""
        n = self.shape[0]
        t = self.t
        return np.concatenate([t[n - 1:], np.zeros(1, dtype=t.dtype), t[:n - 1]])

    @classmethod
    def fit(cls, A: np.ndarray) -> "Toeplitz":
        """Average of each diagonal: the closest Toeplitz matrix in Frobenius norm."""
        A = check_square(A)
        n = A.shape[0]
        return cls(np.array([np.diagonal(A, offset=-k).mean() for k in range(-(n - 1), n)]))

    @classmethod
    def random(cls, n: int, seed: int = 0) -> "Toeplitz":
        return cls(np.random.default_rng(seed).standard_normal(2 * n - 1) / math.sqrt(n))

    def apply(self, x):
        x, vec = _as_batch(x, self.shape[1])
        n = self.shape[0]
        y = Circulant(self.embedding()).apply(np.concatenate([x, np.zeros_like(x)], axis=1))[:, :n]
        return y[0] if vec else y

    def apply_reference(self, x):
        x, vec = _as_batch(x, self.shape[1])
        n = self.shape[0]
        y = np.zeros(x.shape, dtype=np.result_type(x, self.t))
        for k in range(-(n - 1), n):  # diagonal i - j = k
            coef = self.t[k + n - 1]
            if k >= 0:
                y[:, k:] += coef * x[:, :n - k]
            else:
                y[:, :n + k] += coef * x[:, -k:]
        return y[0] if vec else y

    def torch_apply(self, device="cpu", dtype="float32"):
        import torch

        dt = _torch_dtype(dtype)
        n = self.shape[0]
        cf = torch.fft.rfft(torch.as_tensor(self.embedding().real, dtype=dt, device=device))
        return lambda x: torch.fft.irfft(torch.fft.rfft(x, n=2 * n, dim=-1) * cf, n=2 * n, dim=-1)[:, :n]


class MagnitudeSparse(StructuredMatrix):
    """The k entries of A largest in magnitude, stored as CSR (values + column indices + row pointers)."""

    family = "sparse"
    stored = ("vals",)

    def __init__(self, rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, shape: tuple[int, int]):
        self.rows, self.cols, self.vals = np.asarray(rows), np.asarray(cols), np.asarray(vals)
        self.shape = tuple(shape)

    @property
    def config(self) -> str:
        return f"density {self.vals.size / (self.shape[0] * self.shape[1]):.3g}"

    def storage_bytes(self, itemsize: int = 4) -> int:
        # values, int32 column indices, int32 row pointers
        return self.vals.size * (itemsize + 4) + 4 * (self.shape[0] + 1)

    @classmethod
    def fit(cls, A: np.ndarray, nnz: int) -> "MagnitudeSparse":
        A = np.asarray(A)
        if A.ndim != 2:
            raise ValueError(f"A: expected a 2-D matrix, got shape {A.shape}")
        nnz = check_int("nnz", nnz, 0, A.size)
        flat = np.abs(A).ravel()
        keep = np.argpartition(-flat, nnz - 1)[:nnz] if 0 < nnz < A.size else np.arange(nnz)
        keep = np.sort(keep)
        rows, cols = np.divmod(keep, A.shape[1])
        return cls(rows, cols, A.ravel()[keep], A.shape)

    @classmethod
    def random(cls, n: int, nnz: int, seed: int = 0) -> "MagnitudeSparse":
        rng = np.random.default_rng(seed)
        keep = np.sort(rng.choice(n * n, size=nnz, replace=False))
        rows, cols = np.divmod(keep, n)
        return cls(rows, cols, rng.standard_normal(nnz) / math.sqrt(max(nnz / n, 1)), (n, n))

    def csr(self):
        import scipy.sparse as sp

        return sp.csr_matrix((self.vals, (self.rows, self.cols)), shape=self.shape)

    def apply(self, x):
        x, vec = _as_batch(x, self.shape[1])
        y = (self.csr() @ x.T).T
        return y[0] if vec else y

    def apply_reference(self, x):
        x, vec = _as_batch(x, self.shape[1])
        y = np.zeros((x.shape[0], self.shape[0]), dtype=np.result_type(x, self.vals))
        for r, c, v in zip(self.rows, self.cols, self.vals):
            y[:, r] += v * x[:, c]
        return y[0] if vec else y

    def to_dense(self):
        D = np.zeros(self.shape, dtype=self.vals.dtype)
        D[self.rows, self.cols] = self.vals
        return D

    def torch_apply(self, device="cpu", dtype="float32"):
        import torch

        dt = _torch_dtype(dtype)
        csr = self.csr()
        warnings.filterwarnings("ignore", message="Sparse (CSR tensor support|invariant checks)")
        W = torch.sparse_csr_tensor(torch.as_tensor(csr.indptr, dtype=torch.int32),
                                    torch.as_tensor(csr.indices, dtype=torch.int32),
                                    torch.as_tensor(csr.data.real), size=self.shape)
        W = W.to(device=device, dtype=dt)
        return lambda x: torch.sparse.mm(W, x.T).T


class Dense(StructuredMatrix):
    """The plain (m, n) matrix, the baseline of every comparison."""

    family = "dense"
    stored = ("W",)

    def __init__(self, W: np.ndarray):
        self.W = np.asarray(W)
        self.shape = self.W.shape

    @classmethod
    def random(cls, n: int, seed: int = 0) -> "Dense":
        return cls(np.random.default_rng(seed).standard_normal((n, n)) / math.sqrt(n))

    def apply(self, x):
        x, vec = _as_batch(x, self.shape[1])
        y = x @ self.W.T
        return y[0] if vec else y

    def apply_reference(self, x):
        x, vec = _as_batch(x, self.shape[1])
        y = np.array([[sum(self.W[i, j] * row[j] for j in range(self.shape[1]))
                       for i in range(self.shape[0])] for row in x])
        return y[0] if vec else y

    def to_dense(self):
        return self.W.copy()

    def torch_apply(self, device="cpu", dtype="float32"):
        import torch

        WT = torch.as_tensor(np.ascontiguousarray(self.W.real.T), dtype=_torch_dtype(dtype), device=device)
        return lambda x: x @ WT
