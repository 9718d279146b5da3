"""Sparse recovery: undo y = A a knowing that a has at most k nonzeros.

The scanner's column four is k-sparse (the dice). When there are fewer outputs than
entries (F < K) no linear inverse can bring it back: pinv returns the minimum-norm
solution, spread over all K entries. Orthogonal matching pursuit (scikit-learn's
``orthogonal_mp``) picks k columns of A greedily and solves least squares on them;
it recovers the vector exactly when the columns of A are incoherent enough, e.g.
F = 6 outputs, K = 24 entries, 3 nonzeros, where pinv fails.

``phase_transition_rows`` is the success map over (nonzeros, outputs) at fixed K,
one row per cell, for a background job:

    A = np.random.default_rng(0).normal(size=(6, 24))
    a = omp(A, A @ x, k=3)                  # x with 3 nonzeros
    exact_recovery_coefficient(A, np.flatnonzero(x)) < 1   # then a == x, guaranteed
    rows = phase_transition_rows(24, trials=20, seed=0)   # generator of dicts
"""
from __future__ import annotations

import warnings
from typing import Iterator

import numpy as np
from sklearn.linear_model import orthogonal_mp

from engine.runtime.device import cpu_device_name
from engine.validate import check_float, check_int

SUCCESS_TOL = 1e-3      # relative error below which a recovery counts as a success
PT_LIMITS = {"k": (2, 64), "trials": (1, 200)}


def omp(A: np.ndarray, Y, k: int) -> np.ndarray:
    """Orthogonal matching pursuit: the k-sparse a with A a ~ y, for y (F,) or Y (n, F).

    Returns (K,) or (n, K). k is clipped to the number of outputs F (OMP cannot pick
    more columns than it has equations).
    """
    A = np.asarray(A, dtype=float)
    Y = np.asarray(Y, dtype=float)
    F, K = A.shape
    k = check_int("k (nonzeros)", k, 1, K)
    one = Y.ndim == 1
    Yt = (Y[None, :] if one else Y)
    if Yt.ndim != 2 or Yt.shape[1] != F or not np.all(np.isfinite(Yt)):
        raise ValueError(f"y: expected finite outputs of shape (F,) or (n, F) with F = {F}, "
                         f"got shape {Y.shape}")
    out = np.zeros((Yt.shape[0], K))
    nonzero = np.linalg.norm(Yt, axis=1) > 0
    if nonzero.any():
        norms = np.linalg.norm(A, axis=0)
        safe = np.where(norms > 0, norms, 1.0)
        with warnings.catch_warnings():  # "Orthogonal matching pursuit ended prematurely"
            warnings.simplefilter("ignore", RuntimeWarning)
            coef = orthogonal_mp(A / safe, Yt[nonzero].T, n_nonzero_coefs=min(k, F),
                                 precompute=False)
        coef = np.asarray(coef).reshape(K, -1).T / safe
        out[nonzero] = np.where(norms > 0, coef, 0.0)
    return out[0] if one else out


def coherence(A: np.ndarray) -> float:
    """Mutual coherence: the largest |cosine| between two distinct columns of A."""
    A = np.asarray(A, dtype=float)
    norms = np.linalg.norm(A, axis=0)
    if A.shape[1] < 2 or np.any(norms == 0):
        return 1.0
    G = np.abs((A / norms).T @ (A / norms))
    np.fill_diagonal(G, 0.0)
    return float(G.max())


def omp_certified(A: np.ndarray, k: int) -> bool:
    """Tropp's (2004) exact-recovery condition from coherence: mu < 1 / (2k - 1).

    When it holds, OMP recovers every k-sparse vector exactly from noiseless y = A a.
    """
    return coherence(A) < 1.0 / (2 * k - 1)


def exact_recovery_coefficient(A: np.ndarray, support) -> float:
    """Tropp's ERC(S) = max over columns j outside S of ||pinv(A_S) a_j||_1, on A with
    unit-norm columns (the dictionary OMP works with; a zero column makes it inf).

    ERC < 1 guarantees that OMP recovers *every* vector supported on S exactly from
    noiseless y = A a (Tropp 2004, "Greed is good", theorem 3.1); inf when A_S has
    dependent columns.
    """
    A = np.asarray(A, dtype=float)
    norms = np.linalg.norm(A, axis=0)
    if np.any(norms == 0):
        return float("inf")
    A = A / norms
    S = np.asarray(sorted(set(int(i) for i in np.ravel(support))), dtype=np.int64)
    rest = np.setdiff1d(np.arange(A.shape[1]), S)
    sub = A[:, S]
    if S.size and np.linalg.matrix_rank(sub) < S.size:
        return float("inf")
    if S.size == 0 or rest.size == 0:
        return 0.0
    return float(np.max(np.abs(np.linalg.pinv(sub) @ A[:, rest]).sum(axis=0)))


def relative_error(x: np.ndarray, x_hat: np.ndarray) -> np.ndarray:
    """Row-wise ||x_hat - x|| / ||x||."""
    x, x_hat = np.atleast_2d(x), np.atleast_2d(x_hat)
    return np.linalg.norm(x_hat - x, axis=1) / np.maximum(np.linalg.norm(x, axis=1), 1e-300)


def sparse_cases(n_outputs: int, k: int, nonzeros: int, trials: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One gaussian operator A (F, K) and ``trials`` vectors X (trials, K) with the given
    number of nonzeros (random support, values N(0, 1) kept away from zero)."""
    A = rng.normal(size=(n_outputs, k))
    X = np.zeros((trials, k))
    for i in range(trials):
        support = rng.choice(k, size=nonzeros, replace=False)
        X[i, support] = rng.normal(size=nonzeros) + np.sign(rng.normal(size=nonzeros)) * 0.2
    return A, X


def phase_transition_cells(k: int) -> list[tuple[int, int]]:
    """(nonzeros, outputs) of the map at K = k: nonzeros 1..k/2, outputs 1..k."""
    return [(s, f) for s in range(1, k // 2 + 1) for f in range(1, k + 1)]


def phase_transition_rows(k: int = 24, trials: int = 20, seed: int = 0,
                          tol: float = SUCCESS_TOL) -> Iterator[dict]:
    """Yield one row per (nonzeros, outputs) cell: OMP's and pinv's success rates.

    Each cell draws a fresh gaussian operator per trial (seeded from ``seed`` and the
    cell, so a cell's numbers do not depend on the order of the cells).
    """
    k = check_int("K", k, *PT_LIMITS["k"])
    trials = check_int("trials", trials, *PT_LIMITS["trials"])
    seed = check_int("seed", seed, 0, 2**32 - 1)
    tol = check_float("tol", tol, 0.0, 1.0)
    device = cpu_device_name()  # numpy and scikit-learn: the CPU, also on a GPU host
    for s, f in phase_transition_cells(k):
        rng = np.random.default_rng([seed, s, f])
        omp_ok = pinv_ok = 0
        for _ in range(trials):
            A, X = sparse_cases(f, k, s, 1, rng)
            y = A @ X[0]
            omp_ok += int(relative_error(X[0], omp(A, y, s))[0] <= tol)
            pinv_ok += int(relative_error(X[0], np.linalg.pinv(A) @ y)[0] <= tol)
        yield {"K": k, "nonzeros": s, "outputs": f, "trials": trials,
               "omp_success_rate": omp_ok / trials, "pinv_success_rate": pinv_ok / trials,
               "device": device}
