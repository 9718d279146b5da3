"""The scanner: the generator's chain run backwards through its transposes.

The generator multiplies by A; the scanner starts from an output y and multiplies by
the transposes in reverse order (the DRT deck's scanner), or by least-squares or ridge
inverses, and compares every column with what the forward pass produced:

    column      reverse value (transpose mode)               shape
    assemble    y (possibly with noise)                       (F,)
    propagate   h^ = M^T y                                    (H,)
    activation  a^ = W^T h^                                   (K,)
    sparse      x^ = sigma^-1(a^)                             (K,)
    select      r^ = x^ on the routing support                (K,)
    lookup      e_p^ = S^T r^ = R r^                          (P,)
    clock       e_t^ = L^T e_p^                               (T,)

``pinv`` replaces each transpose by the pseudo-inverse, and takes a^ from y through
M W jointly (``pinv(M W) y``: exact whenever M W has full column rank, even when M
alone is wide); ``tikhonov`` uses the ridge inverse (A^T A + lam I)^-1 A^T the same way;
``omp`` recovers a^ from y knowing it has the routing row's number of nonzeros
(orthogonal matching pursuit, engine/chain/recovery.py), then h^ = W a^, and the
lookup and clock columns by least squares. sigma^-1 is atanh for tanh and logit for
sigmoid (clipped to the open interval, with the clipped entries counted); relu is not
invertible: the reverse pass passes the positive part through and marks entries with
a^ <= 0, where a negative pre-activation may have been lost.

**Certified agreement.** ``error_bounds`` predicts, from the matrices, the forward
values and the noise level alone, how large each column's relative error can be: each
reverse step v^ = B u^ of a forward step u = A v adds ``||B|| * err(u) + ||(B A - I) v||``
(zero for an exact inverse), sigma^-1 multiplies by its largest slope over the error
ball, relu adds what it set to zero. ``agreement`` reports every column's measured
error beside its bound: "agrees within its bound" or "exceeds its bound" (possible
only when the noise drawn is larger than its level), or "no finite bound".

**The transpose pass and the vector-Jacobian product.** For the linear columns
(propagate, activation) ``scan(..., "transpose")`` equals torch.autograd's VJP of the
forward chain. Left of the activation they differ unless sigma is the identity: the
VJP multiplies by sigma'(x), the scanner applies sigma^-1 (``vjp_table`` computes both
and says for which columns the claim holds).

    chain = make_chain(**SCAN_PRESETS["orthogonal + identity"])
    table = agreement(chain, "transpose")        # every (phase, column) within its bound
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from engine.chain.generator import ACTIVATIONS, COLUMNS, Chain
from engine.chain.recovery import exact_recovery_coefficient, omp
from engine.validate import check_choice, check_float, check_int

MODES = ("transpose", "pinv", "tikhonov", "omp")
REVERSE_COLUMNS = tuple(reversed(COLUMNS))
CLIP_EPS = 1e-6
SIGMOID_ZERO_TOL = 1e-9

SCAN_PRESETS = {
    # W and M with orthonormal columns, R with orthonormal rows, T = P: every transpose
    # is an exact inverse and the activation is the identity.
    "orthogonal + identity": dict(preset="balanced", n_phases=8, n_patterns=8, k=16,
                                  nnz_per_row=2, hidden=16, n_harmonics=16,
                                  activation="identity", seed=0, weights="orthogonal"),
    # relu drops negative pre-activations; W is wide (H < K) and M wide (F < H), so the
    # transposes cannot undo them either.
    "relu + wide W": dict(preset="balanced", n_phases=16, n_patterns=8, k=24, nnz_per_row=3,
                          hidden=8, n_harmonics=6, activation="relu", seed=0),
    # F = 12 outputs for K = 24 entries: no linear inverse can undo M W, but the sparse
    # vector has 2 nonzeros, and orthogonal matching pursuit (mode omp) recovers it.
    "sparse recovery (F < K)": dict(preset="random", n_phases=8, n_patterns=8, k=24,
                                    nnz_per_row=2, hidden=24, n_harmonics=12,
                                    activation="identity", seed=0),
}


# -- linear reverse operators ----------------------------------------------------------------
def reverse_operator(A: np.ndarray, mode: str, lam: float = 0.0) -> np.ndarray:
    """The (n, m) matrix that maps back through A (m, n): A^T, pinv(A) or the ridge inverse.

    omp mode uses the pseudo-inverse for the columns it does not recover by pursuit.
    """
    if mode == "transpose":
        return A.T.copy()
    u, s, vt = np.linalg.svd(A, full_matrices=False)
    if mode in ("pinv", "omp"):
        cutoff = (s.max() if s.size else 0.0) * max(A.shape) * np.finfo(float).eps
        inv = np.divide(1.0, s, out=np.zeros_like(s), where=s > cutoff)
    else:  # tikhonov: V diag(s / (s^2 + lam)) U^T = (A^T A + lam I)^-1 A^T
        denom = s**2 + lam
        inv = np.divide(s, denom, out=np.zeros_like(s), where=denom > 0)
    return (vt.T * inv) @ u.T


def _check_mode(mode: str, lam: float) -> tuple[str, float]:
    mode = check_choice("mode", mode, MODES)
    lam = check_float("lam", lam, 0.0, 1e6)
    if mode == "tikhonov" and lam == 0:
        raise ValueError("lam: expected a ridge parameter > 0 for tikhonov mode, got 0.0")
    return mode, lam


# -- sigma^-1 -----------------------------------------------------------------------------------
def inverse_activation(a: np.ndarray, activation: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """sigma^-1 element-wise: (x, clipped, relu_ambiguous), all shaped like ``a``.

    clipped marks entries pushed into the open interval before atanh / logit;
    relu_ambiguous marks, for relu, entries with a <= 0 (the pre-activation could have
    been any non-positive number: lost). Sigmoid was applied to nonzeros only, so an
    entry that is (numerically) zero maps back to zero.
    """
    a = np.asarray(a, dtype=float)
    none = np.zeros(a.shape, dtype=bool)
    if activation == "identity":
        return a.copy(), none, none
    if activation == "relu":
        return a.copy(), none, a <= 0
    if activation == "tanh":
        lim = 1.0 - CLIP_EPS
        clipped = np.abs(a) >= lim
        return np.arctanh(np.clip(a, -lim, lim)), clipped, none
    if activation == "sigmoid":
        zero = np.abs(a) <= SIGMOID_ZERO_TOL
        clipped = ~zero & ((a <= CLIP_EPS) | (a >= 1.0 - CLIP_EPS))
        c = np.clip(a, CLIP_EPS, 1.0 - CLIP_EPS)
        return np.where(zero, 0.0, np.log(c) - np.log1p(-c)), clipped, none
    raise ValueError(f"activation: expected relu, sigmoid, tanh or identity, got {activation!r}")


# -- the reverse pass ----------------------------------------------------------------------------
@dataclass
class Scan:
    """Reverse values of every column for n outputs: columns[c] is (n, size of c).

    clipped: (n,) entries clipped by sigma^-1; relu_ambiguous: (n, K) bool.
    """

    columns: dict[str, np.ndarray]
    clipped: np.ndarray
    relu_ambiguous: np.ndarray
    mode: str
    lam: float


def scan(chain: Chain, y, mode: str = "transpose", lam: float = 0.0) -> Scan:
    """Run the chain backwards from outputs ``y``: (F,) or (n, F)."""
    mode, lam = _check_mode(mode, lam)
    Y = np.asarray(y, dtype=float)
    F = chain.spec.n_harmonics
    if Y.ndim == 1:
        Y = Y[None, :]
    if Y.ndim != 2 or Y.shape[1] != F or not np.all(np.isfinite(Y)):
        raise ValueError(f"y: expected finite outputs of shape (F,) or (n, F) with F = {F}, "
                         f"got shape {np.asarray(y).shape}")
    if mode == "omp":  # a^ is k-sparse: pursuit through M W, then forward to h^
        a_hat = omp(chain.M @ chain.W, Y, chain.spec.row_nnz)
        h_hat = a_hat @ chain.W.T
    else:
        h_hat = Y @ reverse_operator(chain.M, mode, lam).T
    if mode == "transpose":
        a_hat = h_hat @ chain.W                      # W^T h^ for every row
    elif mode != "omp":
        a_hat = Y @ reverse_operator(chain.M @ chain.W, mode, lam).T
    x_hat, clipped, ambiguous = inverse_activation(a_hat, chain.spec.activation)
    r_hat = np.where(chain.support_mask[None, :], x_hat, 0.0)
    p_hat = r_hat @ reverse_operator(chain.S, mode, lam).T
    t_hat = p_hat @ reverse_operator(chain.L, mode, lam).T
    cols = dict(zip(COLUMNS, (t_hat, p_hat, r_hat, x_hat, a_hat, h_hat, Y.copy())))
    return Scan(cols, clipped.sum(axis=1), ambiguous, mode, lam)


def noisy_outputs(chain: Chain, noise: float, seed: int) -> np.ndarray:
    """(T, F) forward outputs plus gaussian noise of std ``noise`` x rms(outputs), seeded."""
    noise = check_float("noise", noise, 0.0, 100.0)
    seed = check_int("seed", seed, 0, 2**32 - 1)
    Y = chain.forward_all()["assemble"]
    if noise == 0:
        return Y.copy()
    rms = float(np.sqrt(np.mean(Y**2))) or 1.0
    return Y + noise * rms * np.random.default_rng(seed).normal(size=Y.shape)


def _rel_error_cosine(f: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-wise ||f - r|| / ||f|| (||r|| when f = 0) and cosine (1 when both are zero)."""
    nf = np.linalg.norm(f, axis=1)
    nr = np.linalg.norm(r, axis=1)
    err = np.linalg.norm(f - r, axis=1)
    rel = np.where(nf > 0, err / np.where(nf > 0, nf, 1.0), err)
    both = nf * nr
    cos = np.where(both > 0, np.sum(f * r, axis=1) / np.where(both > 0, both, 1.0),
                   np.where((nf == 0) & (nr == 0), 1.0, 0.0))
    return rel, cos


def noise_level(chain: Chain, noise: float) -> float:
    """The predicted norm of one phase's added noise: noise x rms(y) x sqrt(F).

    This is the noise *level* (the expected norm); a draw can be larger, which is why a
    measured error can exceed its bound once there is noise.
    """
    noise = check_float("noise", noise, 0.0, 100.0)
    Y = chain.forward_all()["assemble"]
    rms = float(np.sqrt(np.mean(Y**2))) or 1.0
    return noise * rms * float(np.sqrt(Y.shape[1])) if noise > 0 else 0.0


ROUNDING = 1e-12  # relative floating-point slack added at every step of the bound


def _step(B: np.ndarray, A: np.ndarray, V: np.ndarray, err_in: np.ndarray,
          size_in: np.ndarray) -> np.ndarray:
    """Error bound of v^ = B u^ where u = A v: ||B|| err(u) + ||(B A - I) v|| + rounding.

    V: (T, n) forward values v per phase; err_in, size_in: (T,) error bound and norm of u.
    """
    nb = float(np.linalg.norm(B, 2)) if B.size else 0.0
    bias = np.linalg.norm(V @ (B @ A - np.eye(A.shape[1])).T, axis=1)
    return nb * err_in + bias + ROUNDING * (1.0 + nb) * (size_in + err_in + 1.0)


def _inverse_activation_bound(chain: Chain, a: np.ndarray, x: np.ndarray,
                              err_a: np.ndarray) -> np.ndarray:
    """(T,) bound on ||sigma^-1(a^) - x|| given ||a^ - a|| <= err_a (per phase)."""
    act = chain.spec.activation
    exact = np.linalg.norm(inverse_activation(a, act)[0] - x, axis=1)  # clipping, relu's loss
    e = err_a[:, None]
    if act in ("identity", "relu"):
        return err_a + exact
    if act == "tanh":  # atanh's slope over the ball, or: the clip caps |x^| at atanh(lim)
        lim = 1.0 - CLIP_EPS
        m = np.minimum(np.abs(a) + e, lim)
        slope = np.max(1.0 / (1.0 - m**2), axis=1)
        cap = np.linalg.norm(x, axis=1) + np.arctanh(lim) * np.sqrt(a.shape[1])
        return np.minimum(slope * err_a + exact, cap)
    # sigmoid: 0 <-> 0 below SIGMOID_ZERO_TOL, logit elsewhere; a jump between the two
    zero = a == 0
    jumps = np.any(zero & (e >= SIGMOID_ZERO_TOL), axis=1) | np.any(
        ~zero & (a - e <= SIGMOID_ZERO_TOL), axis=1)
    lo = np.clip(a - e, CLIP_EPS, 1 - CLIP_EPS)
    hi = np.clip(a + e, CLIP_EPS, 1 - CLIP_EPS)
    slope_end = np.maximum(1.0 / (lo * (1 - lo)), 1.0 / (hi * (1 - hi)))
    slope = np.max(np.where(zero, 0.0, slope_end), axis=1)
    return np.where(jumps, np.inf, slope * err_a + exact)


def error_bounds(chain: Chain, mode: str = "transpose", lam: float = 0.0,
                 noise: float = 0.0) -> dict[str, np.ndarray]:
    """{column: (T,)} the predicted bound on ||reverse - forward|| / ||forward|| per phase.

    From the matrices, the forward values and the noise level (``noise_level``) only;
    never from the reverse values. inf: no finite bound (sigmoid's inverse jumps at 0;
    omp where the phase's support fails Tropp's exact-recovery condition, or with noise).
    """
    mode, lam = _check_mode(mode, lam)
    fwd = chain.forward_all()
    T = chain.spec.n_phases
    norm = {c: np.linalg.norm(fwd[c], axis=1) for c in COLUMNS}
    err = {"assemble": np.full(T, noise_level(chain, noise)) + ROUNDING * (norm["assemble"] + 1)}
    M, W, MW = chain.M, chain.W, chain.M @ chain.W
    if mode == "omp":  # certified per phase by Tropp's ERC of the forward support, noiseless
        erc = np.array([exact_recovery_coefficient(MW, np.flatnonzero(a)) for a in fwd["activation"]])
        ok = (noise == 0) & (erc < 1)
        cond = float(np.linalg.cond(MW)) if np.all(np.isfinite(MW)) else np.inf
        base = ROUNDING * (1 + cond) * (norm["activation"] + 1)
        err["activation"] = np.where(ok, base, np.inf)
        nw = float(np.linalg.norm(W, 2))
        err["propagate"] = nw * err["activation"] + ROUNDING * (1 + nw) * (norm["activation"] + 1)
    else:
        err["propagate"] = _step(reverse_operator(M, mode, lam), M, fwd["propagate"],
                                 err["assemble"], norm["assemble"])
        if mode == "transpose":
            err["activation"] = _step(W.T, W, fwd["activation"], err["propagate"], norm["propagate"])
        else:
            err["activation"] = _step(reverse_operator(MW, mode, lam), MW, fwd["activation"],
                                      err["assemble"], norm["assemble"])
    with np.errstate(invalid="ignore"):
        err["sparse"] = _inverse_activation_bound(chain, fwd["activation"], fwd["sparse"],
                                                  err["activation"])
        err["select"] = err["sparse"].copy()  # masking to the support never adds error
        err["lookup"] = _step(reverse_operator(chain.S, mode, lam), chain.S, fwd["lookup"],
                              err["select"], norm["select"])
        err["clock"] = _step(reverse_operator(chain.L, mode, lam), chain.L, fwd["clock"],
                             err["lookup"], norm["lookup"])
    return {c: np.where(norm[c] > 0, err[c] / np.where(norm[c] > 0, norm[c], 1.0), err[c])
            for c in COLUMNS}


VERDICTS = ("agrees within its bound", "exceeds its bound", "no finite bound")


def agreement(chain: Chain, mode: str = "transpose", lam: float = 0.0, noise: float = 0.0,
              seed: int = 0) -> pd.DataFrame:
    """For every phase and column: rel_error beside its certified bound, and the verdict.

    Columns: phase, pattern, column, rel_error, bound (``error_bounds``), verdict (one of
    ``VERDICTS``), agree (rel_error <= bound), cosine. Rows run phase by phase, columns
    in reverse order (assemble first), as the scanner reads them.
    """
    fwd = chain.forward_all()
    rev = scan(chain, noisy_outputs(chain, noise, seed), mode, lam).columns
    bounds = error_bounds(chain, mode, lam, noise)
    T = chain.spec.n_phases
    parts = []
    for c in REVERSE_COLUMNS:
        rel, cos = _rel_error_cosine(fwd[c], rev[c])
        b = bounds[c]
        within = rel <= b
        verdict = np.where(~np.isfinite(b), VERDICTS[2], np.where(within, VERDICTS[0], VERDICTS[1]))
        parts.append(pd.DataFrame({"phase": np.arange(T), "pattern": chain.lut, "column": c,
                                   "rel_error": rel, "bound": b, "verdict": verdict,
                                   "agree": within & np.isfinite(b), "cosine": cos}))
    frame = pd.concat(parts, ignore_index=True)
    order = {c: i for i, c in enumerate(REVERSE_COLUMNS)}
    frame["_o"] = frame["column"].map(order)
    return frame.sort_values(["phase", "_o"]).drop(columns="_o").reset_index(drop=True)


def column_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per column (reverse order): fraction of phases within their bound, the median and
    max measured rel_error beside the median and max bound, the mean cosine."""
    g = table.groupby("column", sort=False)
    out = pd.DataFrame({"within_bound": g["agree"].mean(),
                        "median_rel_error": g["rel_error"].median(),
                        "median_bound": g["bound"].median(),
                        "max_rel_error": g["rel_error"].max(), "max_bound": g["bound"].max(),
                        "mean_cosine": g["cosine"].mean()})
    return out.reindex([c for c in REVERSE_COLUMNS if c in out.index]).reset_index()


# -- pattern recovery, hallucinated support -----------------------------------------------------
def reference_rows(chain: Chain) -> np.ndarray:
    """(P, K) routing rows as the reverse pass can see them: sigma^-1(sigma(R_p)).

    The plain rows for invertible activations; for relu their positive parts.
    """
    a = np.where(chain.R != 0, ACTIVATIONS[chain.spec.activation](chain.R), 0.0)
    return inverse_activation(a, chain.spec.activation)[0] * (chain.R != 0)


def recover_patterns(chain: Chain, x_hat: np.ndarray) -> np.ndarray:
    """(n,) pattern id of each reconstructed sparse vector x_hat (n, K): the nearest row."""
    ref = reference_rows(chain)
    d = ((x_hat[:, None, :] - ref[None, :, :]) ** 2).sum(axis=2)
    return np.argmin(d, axis=1)


def recovery(chain: Chain, mode: str = "transpose", lam: float = 0.0, noise: float = 0.0,
             seed: int = 0, support_tol: float = 0.05) -> pd.DataFrame:
    """Per phase: the pattern recovered from x_hat, hallucinated and missed support, clipping.

    hallucinated: entries with |x_hat| > support_tol x max|x| (over all phases) where the
    forward sparse vector was zero; missed: forward entries above that tolerance that x_hat
    drops below it.
    Columns: phase, pattern, recovered, correct, nnz, hallucinated, missed, clipped,
    relu_lost (forward pre-activations < 0 that relu set to zero).
    """
    support_tol = check_float("support_tol", support_tol, 0.0, 1.0)
    fwd = chain.forward_all()
    s = scan(chain, noisy_outputs(chain, noise, seed), mode, lam)
    x, x_hat = fwd["sparse"], s.columns["sparse"]
    tol = support_tol * (float(np.max(np.abs(x))) or 1.0)
    big = np.abs(x_hat) > tol
    rec = recover_patterns(chain, x_hat)
    relu_lost = (x < 0).sum(axis=1) if chain.spec.activation == "relu" else np.zeros(len(x), int)
    return pd.DataFrame({
        "phase": np.arange(chain.spec.n_phases), "pattern": chain.lut, "recovered": rec,
        "correct": rec == chain.lut, "nnz": (x != 0).sum(axis=1),
        "hallucinated": (big & (x == 0)).sum(axis=1), "missed": (~big & (np.abs(x) > tol)).sum(axis=1),
        "clipped": s.clipped.astype(int), "relu_lost": relu_lost,
    })


def hallucinated_map(chain: Chain, mode: str = "transpose", lam: float = 0.0, noise: float = 0.0,
                     seed: int = 0, support_tol: float = 0.05) -> np.ndarray:
    """(T, K) int: +1 hallucinated (x_hat big where x = 0), -1 missed, 0 as the forward."""
    fwd = chain.forward_all()["sparse"]
    x_hat = scan(chain, noisy_outputs(chain, noise, seed), mode, lam).columns["sparse"]
    tol = support_tol * (float(np.max(np.abs(fwd))) or 1.0)
    big = np.abs(x_hat) > tol
    return np.where(big & (fwd == 0), 1, np.where(~big & (np.abs(fwd) > tol), -1, 0))


# -- conditioning ------------------------------------------------------------------------------
def singular_values(chain: Chain) -> dict[str, np.ndarray]:
    """Singular values (descending) of W, M and M W."""
    return {name: np.linalg.svd(A, compute_uv=False)
            for name, A in (("W", chain.W), ("M", chain.M), ("M W", chain.M @ chain.W))}


def conditioning(chain: Chain) -> pd.DataFrame:
    """Per matrix: shape, rank, s_max, s_min, condition number (inf when rank-deficient).

    full_column_rank says whether the matrix can be undone from its output (rank = columns).
    """
    rows = []
    mats = {"W": chain.W, "M": chain.M, "M W": chain.M @ chain.W}
    for name, s in singular_values(chain).items():
        A = mats[name]
        tol = s.max() * max(A.shape) * np.finfo(float).eps if s.size else 0.0
        rank = int(np.sum(s > tol))
        full = rank == min(A.shape)
        rows.append({"matrix": name, "shape": f"{A.shape[0]} x {A.shape[1]}", "rank": rank,
                     "full_column_rank": rank == A.shape[1], "s_max": float(s.max()),
                     "s_min": float(s.min()),
                     "condition": float(s.max() / s.min()) if full and s.min() > 0 else float("inf")})
    return pd.DataFrame(rows)


# -- the transpose pass and the vector-Jacobian product --------------------------------------------
VJP_TOL = 1e-9  # relative: |scan - VJP| <= VJP_TOL x (1 + max |VJP|) counts as equal


def _torch_activation(name: str):
    import torch

    if name == "sigmoid":  # applied to the nonzeros only: off the support the map is 0
        return lambda x: torch.where(x != 0, torch.sigmoid(x), torch.zeros_like(x))
    return {"relu": torch.relu, "tanh": torch.tanh, "identity": lambda x: x}[name]


def true_vjps(chain: Chain, phase: int, y) -> dict[str, np.ndarray]:
    """torch.autograd's VJP of the forward chain at ``phase``, cotangent ``y`` (F,):
    {column: d<y, chain(column)>/d column} for every column, through sigma'(x)."""
    import torch

    t = check_int("phase", phase, 0, chain.spec.n_phases - 1)
    fwd = chain.forward(t)
    f64 = dict(dtype=torch.float64)
    M, W = torch.tensor(chain.M, **f64), torch.tensor(chain.W, **f64)
    S, L = torch.tensor(chain.S, **f64), torch.tensor(chain.L, **f64)
    mask = torch.tensor(chain.support_mask, **f64)
    sigma = _torch_activation(chain.spec.activation)
    ty = torch.tensor(np.asarray(y, dtype=float).ravel(), **f64)
    to_y = {
        "assemble": lambda v: v,
        "propagate": lambda h: M @ h,
        "activation": lambda a: M @ (W @ a),
        "sparse": lambda x: M @ (W @ sigma(x)),
        "select": lambda r: M @ (W @ sigma(mask * r)),
        "lookup": lambda e: M @ (W @ sigma(mask * (S @ e))),
        "clock": lambda e: M @ (W @ sigma(mask * (S @ (L @ e)))),
    }
    out = {}
    for c in COLUMNS:
        v = torch.tensor(fwd[c], **f64, requires_grad=True)
        (g,) = torch.autograd.grad(to_y[c](v), v, grad_outputs=ty)
        out[c] = g.numpy()
    return out


def vjp_table(chain: Chain, Y=None) -> pd.DataFrame:
    """Per column (reverse order): does the transpose pass equal the true VJP?

    Checked at every phase t, with cotangent Y[t] (default: the forward outputs; the page
    passes the scanner's input, noise included). Columns: column, scanner_uses (what the
    transpose mode applies there), max_abs_diff (max over phases of |scan(transpose) -
    VJP|), equals_vjp (at every phase, to rounding).
    """
    T = chain.spec.n_phases
    Y = chain.forward_all()["assemble"] if Y is None else np.asarray(Y, dtype=float)
    if Y.shape != (T, chain.spec.n_harmonics):
        raise ValueError(f"Y: expected one cotangent per phase, shape {(T, chain.spec.n_harmonics)}, "
                         f"got {Y.shape}")
    rev = scan(chain, Y, "transpose").columns
    act = chain.spec.activation
    uses = {"assemble": "y", "propagate": "M^T y", "activation": "W^T h^",
            "sparse": f"sigma^-1 = inverse {act}" if act != "identity" else "identity",
            "select": "support mask", "lookup": "R r^ (S^T)", "clock": "L^T"}
    diff = {c: 0.0 for c in COLUMNS}
    equal = {c: True for c in COLUMNS}
    for t in range(T):
        vjp = true_vjps(chain, t, Y[t])
        for c in COLUMNS:
            d = float(np.max(np.abs(rev[c][t] - vjp[c])))
            diff[c] = max(diff[c], d)
            equal[c] &= d <= VJP_TOL * (1.0 + float(np.max(np.abs(vjp[c]))))
    return pd.DataFrame([{"column": c, "scanner_uses": uses[c], "max_abs_diff": diff[c],
                          "equals_vjp": bool(equal[c])} for c in REVERSE_COLUMNS])


def transpose_vjp_difference(chain: Chain, Y=None) -> dict[str, float]:
    """max |scan(transpose) - torch.autograd VJP| per column over the phases."""
    table = vjp_table(chain, Y)
    return dict(zip(table["column"], table["max_abs_diff"]))


def vjp_claim(table: pd.DataFrame) -> str:
    """One sentence: for which columns the transpose pass is the VJP, and where not."""
    holds = [c for c, ok in zip(table["column"], table["equals_vjp"]) if ok and c != "assemble"]
    fails = table[~table["equals_vjp"]]
    text = ("The transpose pass equals the vector-Jacobian product (torch.autograd, through "
            "sigma') for " + (", ".join(holds) if holds else "no column") + ".")
    if len(fails):
        worst = fails.iloc[int(np.argmax(fails["max_abs_diff"].to_numpy()))]
        text += (" It does not for " + ", ".join(fails["column"]) + ": there the scanner "
                 "applies sigma^-1 where the VJP multiplies by sigma'(x) (largest difference "
                 f"{worst['max_abs_diff']:.3g}, in {worst['column']}).")
    return text


def divergence_reasons(chain: Chain, mode: str = "transpose", lam: float = 0.0,
                       noise: float = 0.0, seed: int = 0) -> list[str]:
    """Plain sentences, computed from this chain, on where information is lost and why."""
    mode, lam = _check_mode(mode, lam)
    s = chain.spec
    out: list[str] = []
    cond = conditioning(chain).set_index("matrix")
    for name, cols in (("W", s.k), ("M", s.hidden)):
        row = cond.loc[name]
        if not row["full_column_rank"]:
            out.append(f"{name} is {row['shape']} with rank {row['rank']} < {cols} columns: "
                       f"{cols - row['rank']} directions of its input never reach its output, "
                       f"so no reverse pass can bring them back.")
    mw = cond.loc["M W"]
    if mode == "transpose":
        gram = chain.W.T @ chain.M.T @ chain.M @ chain.W
        off = float(np.max(np.abs(gram - np.eye(s.k))))
        if off > 1e-9:
            out.append(f"(M W)^T (M W) is not the identity (max |entry - I| = {off:.3g}): the "
                       "transposes undo the forward pass only when W and M have orthonormal "
                       "columns; try pinv.")
        rr = chain.R @ chain.R.T
        if float(np.max(np.abs(rr - np.eye(s.n_patterns)))) > 1e-9:
            out.append("The routing rows are not orthonormal (R R^T is not I): S^T mixes "
                       "patterns in the lookup column.")
    elif mw["full_column_rank"]:
        out.append(f"M W has full column rank (condition {mw['condition']:.3g}): least squares "
                   "recovers the activation column exactly without noise.")
    if s.activation == "relu":
        lost = int((chain.forward_all()["sparse"] < 0).sum())
        out.append(f"relu set {lost} negative pre-activations to zero over all phases; the "
                   "reverse pass cannot know what they were.")
    rec = recovery(chain, mode, lam, noise, seed)
    if rec["clipped"].sum():
        out.append(f"sigma^-1 clipped {int(rec['clipped'].sum())} entries into its domain "
                   f"({s.activation} outputs outside it came back from the reverse pass).")
    if s.n_phases > len(set(chain.lut.tolist())):
        out.append(f"{s.n_phases} phases share {len(set(chain.lut.tolist()))} patterns: the "
                   "clock column can be recovered only up to the pattern.")
    if noise > 0:
        out.append(f"Noise of {noise:g} x rms(y) is added to the outputs before the reverse pass.")
    if not out:
        out.append("Nothing is lost: every column can be undone at this configuration.")
    return out
