"""Convolution, pooling, a linear RNN and linear attention written as sparse matrices.

The seed paper (arXiv 2506.01966) claims that a convolution is a banded
("upper-triangular") sparse matrix, a linear RNN a block lower-triangular matrix and
single-head linear attention a third-order tensor. This module builds each
construction, with a slow reference beside it, so tests and the /isomorphism page can
hold the construction equal to the native torch layer and report what is true about
the matrix (``matrix_facts``).

Flattening is row-major everywhere: an image ``x: (C, H, W)`` becomes
``x.reshape(-1)`` (channel, row, column); a sequence ``X: (T, d)`` becomes
``X.reshape(-1)`` (x_1 .. x_T stacked).

    M = conv2d_as_sparse(weight, (32, 32), stride=1, padding=1)   # csr (C_out*H_out*W_out, C_in*H*W)
    y = M @ x.reshape(-1)                                          # == F.conv2d(x[None], weight, padding=1)
"""
from __future__ import annotations

import math
import time
import warnings
from dataclasses import dataclass
from typing import Any, Iterator, Sequence

import numpy as np
import scipy.sparse as sp

from engine.bench.measurement import noisy_flag
from engine.validate import check_int

# --------------------------------------------------------------------------- helpers


def _pair(what: str, value: Any, lo: int) -> tuple[int, int]:
    """An int or a pair of ints, each >= lo, as a pair."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{what}: expected an int or a pair of ints, got {value!r}")
        return check_int(what, value[0], lo), check_int(what, value[1], lo)
    v = check_int(what, value, lo)
    return v, v


def _as_numpy(a: Any, what: str) -> np.ndarray:
    """A numpy array from a numpy array, list or torch tensor (detached, on the CPU)."""
    if hasattr(a, "detach"):
        a = a.detach().cpu().numpy()
    arr = np.asarray(a)
    if arr.dtype.kind not in "fiu":
        raise ValueError(f"{what}: expected a real numeric array, got dtype {arr.dtype}")
    if arr.dtype.kind in "iu":
        arr = arr.astype(np.float64)
    return arr


def conv_output_size(size: int, kernel: int, stride: int = 1, padding: int = 0,
                     dilation: int = 1) -> int:
    """Output length of a convolution along one axis (torch's formula)."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


# --------------------------------------------------------------------------- convolution


@dataclass(frozen=True)
class ConvPattern:
    """Where the nonzeros of a convolution matrix sit, independent of the weights.

    Stored for one output channel (every output channel repeats it): ``cols1`` (n1,)
    column of each entry, ``kidx1`` (n1,) index into ``weight[co].reshape(-1)``,
    ``per_row`` (H_out*W_out,) entries per row. ``cols``, ``rows``, ``kernel_index``
    and ``indptr`` give the full matrix in CSR order; shape (C_out*H_out*W_out, C_in*H*W).
    """

    cols1: np.ndarray
    kidx1: np.ndarray
    per_row: np.ndarray
    shape: tuple[int, int]
    out_chw: tuple[int, int, int]
    in_chw: tuple[int, int, int]
    kernel_size: int  # C_in*kh*kw: weights per output channel

    @property
    def nnz(self) -> int:
        return int(self.cols1.size) * self.out_chw[0]

    @property
    def cols(self) -> np.ndarray:
        return np.tile(self.cols1, self.out_chw[0])

    @property
    def kernel_index(self) -> np.ndarray:
        c_out = self.out_chw[0]
        return (np.arange(c_out, dtype=np.int64)[:, None] * self.kernel_size
                + self.kidx1[None, :]).reshape(-1)

    @property
    def indptr(self) -> np.ndarray:
        counts = np.tile(self.per_row, self.out_chw[0])
        out = np.zeros(counts.size + 1, dtype=np.int64)
        np.cumsum(counts, out=out[1:])
        return out

    @property
    def rows(self) -> np.ndarray:
        return np.repeat(np.arange(self.shape[0], dtype=np.int64), np.tile(self.per_row, self.out_chw[0]))

    def values(self, weight: np.ndarray) -> np.ndarray:
        """(nnz,) matrix entries for weight (C_out, C_in, kh, kw), in CSR order."""
        return weight.reshape(self.out_chw[0], -1)[:, self.kidx1].reshape(-1)

    def row_cols(self, row: int) -> np.ndarray:
        """Columns of the entries of one matrix row."""
        n_sp = int(self.per_row.size)
        start = np.concatenate([[0], np.cumsum(self.per_row)])
        r = row % n_sp
        return self.cols1[start[r]:start[r + 1]]

    def __repr__(self) -> str:
        return (f"ConvPattern(shape={self.shape}, nnz={self.nnz}, "
                f"density={self.nnz / max(self.shape[0] * self.shape[1], 1):.3g})")


def conv2d_pattern(weight_shape: Sequence[int], input_hw: Sequence[int], stride: Any = 1,
                   padding: Any = 0, dilation: Any = 1) -> ConvPattern:
    """The sparsity pattern of ``conv2d_as_sparse`` for a weight of ``weight_shape``.

    weight_shape: (C_out, C_in, kh, kw); input_hw: (H, W). Vectorised: the column
    pattern of one output channel is computed once (every channel repeats it).
    """
    if len(weight_shape) != 4:
        raise ValueError(f"weight: expected shape (C_out, C_in, kh, kw), got {tuple(weight_shape)}")
    c_out, c_in, kh, kw = (check_int("weight shape", s, 1) for s in weight_shape)
    h, w = _pair("input_hw", tuple(input_hw), 1)
    sh, sw = _pair("stride", stride, 1)
    ph, pw = _pair("padding", padding, 0)
    dh, dw = _pair("dilation", dilation, 1)
    h_out = conv_output_size(h, kh, sh, ph, dh)
    w_out = conv_output_size(w, kw, sw, pw, dw)
    if h_out < 1 or w_out < 1:
        raise ValueError(f"kernel: expected a kernel that fits the padded {h}x{w} input "
                         f"(dilation {dh}x{dw}), got {kh}x{kw}: output would be {h_out}x{w_out}")
    if c_out * h_out * w_out * c_in * kh * kw > 2**31 - 1:
        raise ValueError(f"layer: expected fewer than 2**31 matrix nonzeros, got "
                         f"{c_out * h_out * w_out * c_in * kh * kw:.3g}")
    # input row of (output row oy, kernel row ky), validity per axis: separable.
    iy = np.arange(h_out)[:, None] * sh - ph + np.arange(kh)[None, :] * dh      # (h_out, kh)
    ix = np.arange(w_out)[:, None] * sw - pw + np.arange(kw)[None, :] * dw      # (w_out, kw)
    vy = (iy >= 0) & (iy < h)
    vx = (ix >= 0) & (ix < w)
    # one output channel: (h_out, w_out, c_in, kh, kw); columns increase along the last
    # three axes, so each row comes out sorted (CSR order) with no sort.
    col = (np.arange(c_in)[None, None, :, None, None] * (h * w)
           + iy[:, None, None, :, None] * w + ix[None, :, None, None, :])
    valid = np.broadcast_to(vy[:, None, None, :, None] & vx[None, :, None, None, :], col.shape)
    kidx = np.broadcast_to(np.arange(c_in * kh * kw).reshape(1, 1, c_in, kh, kw), col.shape)
    idx_dtype = np.int32 if c_in * h * w < 2**31 else np.int64
    return ConvPattern(cols1=col[valid].astype(idx_dtype), kidx1=kidx[valid].astype(np.int64),
                       per_row=valid.reshape(h_out * w_out, -1).sum(axis=1).astype(np.int64),
                       shape=(c_out * h_out * w_out, c_in * h * w),
                       out_chw=(c_out, h_out, w_out), in_chw=(c_in, h, w),
                       kernel_size=c_in * kh * kw)


def conv2d_as_sparse(weight: Any, input_hw: Sequence[int], stride: Any = 1, padding: Any = 0,
                     dilation: Any = 1) -> sp.csr_matrix:
    """The convolution as a CSR matrix M of shape (C_out*H_out*W_out, C_in*H*W).

    weight: (C_out, C_in, kh, kw) array or tensor; input_hw: (H, W). For x: (C_in, H, W),
    ``M @ x.reshape(-1) == F.conv2d(x[None], weight, stride=, padding=, dilation=).reshape(-1)``.
    stride, padding, dilation: an int or an (h, w) pair. Entries that the weight makes
    zero are kept as explicit zeros (the pattern is the layer's, not the weight's).
    """
    wt = _as_numpy(weight, "weight")
    if wt.ndim != 4:
        raise ValueError(f"weight: expected shape (C_out, C_in, kh, kw), got {wt.shape}")
    pat = conv2d_pattern(wt.shape, input_hw, stride, padding, dilation)
    indptr = pat.indptr
    indices = pat.cols
    if indptr[-1] < 2**31:
        indptr = indptr.astype(np.int32)
    else:
        indices = indices.astype(np.int64)
    return sp.csr_matrix((pat.values(wt), indices, indptr), shape=pat.shape)


def conv2d_reference(x: np.ndarray, weight: np.ndarray, stride: Any = 1, padding: Any = 0,
                     dilation: Any = 1) -> np.ndarray:
    """Slow, loop-based convolution (cross-correlation, as torch): x (C_in, H, W) -> (C_out, H_out, W_out)."""
    x = np.asarray(x, dtype=np.float64)
    wt = np.asarray(weight, dtype=np.float64)
    c_out, c_in, kh, kw = wt.shape
    sh, sw = _pair("stride", stride, 1)
    ph, pw = _pair("padding", padding, 0)
    dh, dw = _pair("dilation", dilation, 1)
    h, w = x.shape[1:]
    xp = np.zeros((c_in, h + 2 * ph, w + 2 * pw))
    xp[:, ph:ph + h, pw:pw + w] = x
    h_out = conv_output_size(h, kh, sh, ph, dh)
    w_out = conv_output_size(w, kw, sw, pw, dw)
    out = np.zeros((c_out, h_out, w_out))
    for oy in range(h_out):
        for ox in range(w_out):
            patch = xp[:, oy * sh: oy * sh + dh * (kh - 1) + 1: dh,
                       ox * sw: ox * sw + dw * (kw - 1) + 1: dw]
            out[:, oy, ox] = np.tensordot(wt, patch, axes=([1, 2, 3], [0, 1, 2]))
    return out


def receptive_field(pattern_or_matrix: Any, row: int, in_chw: Sequence[int]) -> np.ndarray:
    """Which input pixels output ``row`` reads: a (H, W) count over input channels."""
    m = pattern_or_matrix
    if isinstance(m, ConvPattern):
        cols = m.row_cols(row)
    else:
        m = sp.csr_matrix(m)
        cols = m.indices[m.indptr[row]:m.indptr[row + 1]]
    c, h, w = in_chw
    field = np.zeros(h * w)
    np.add.at(field, cols % (h * w), 1.0)
    return field.reshape(h, w)


# --------------------------------------------------------------------------- pooling


def avgpool2d_as_sparse(channels: int, input_hw: Sequence[int], kernel: Any,
                        stride: Any = None) -> sp.csr_matrix:
    """Average pooling as a CSR matrix of shape (C*H_out*W_out, C*H*W).

    Equal to ``F.avg_pool2d(x[None], kernel, stride).reshape(-1)`` for x: (C, H, W)
    (no padding). Channels do not mix: the matrix is block diagonal.
    """
    c = check_int("channels", channels, 1)
    kh, kw = _pair("kernel", kernel, 1)
    sh, sw = (kh, kw) if stride is None else _pair("stride", stride, 1)
    one = np.full((1, 1, kh, kw), 1.0 / (kh * kw))
    single = conv2d_as_sparse(one, input_hw, stride=(sh, sw))
    return sp.kron(sp.identity(c, format="csr"), single, format="csr")


def maxpool2d_selection(x: Any, kernel: Any, stride: Any = None) -> sp.csr_matrix:
    """Max pooling as a 0/1 selection matrix S that depends on x: (C, H, W).

    ``S @ x.reshape(-1) == F.max_pool2d(x[None], kernel, stride).reshape(-1)``; each
    row holds a single 1 at the window's (first) maximum. Max pooling is not linear:
    a different input selects different entries, so S is a property of this x only.
    """
    arr = _as_numpy(x, "x")
    if arr.ndim != 3:
        raise ValueError(f"x: expected shape (C, H, W), got {arr.shape}")
    c, h, w = arr.shape
    kh, kw = _pair("kernel", kernel, 1)
    sh, sw = (kh, kw) if stride is None else _pair("stride", stride, 1)
    pat = conv2d_pattern((1, 1, kh, kw), (h, w), stride=(sh, sw))
    n_out = pat.shape[0]
    win = pat.cols.reshape(n_out, kh * kw)                # no padding: full windows
    flat = arr.reshape(c, h * w)
    best = np.argmax(flat[:, win], axis=2)                # (c, n_out), first max as torch
    chosen = win[np.arange(n_out)[None, :], best] + (np.arange(c) * h * w)[:, None]
    rows = np.arange(c * n_out)
    return sp.csr_matrix((np.ones(c * n_out), (rows, chosen.reshape(-1))),
                         shape=(c * n_out, c * h * w))


# --------------------------------------------------------------------------- RNN


def rnn_as_block_lower_triangular(w_ih: Any, w_hh: Any, seq_len: int) -> sp.csr_matrix:
    """The unrolled linear recurrence as one block lower-triangular CSR matrix.

    w_ih: (h, d), w_hh: (h, h). Returns L of shape (T*h, T*d) whose block (t, s) is
    ``w_hh^(t-s) @ w_ih`` for s <= t and zero above, so for x_flat = x_1..x_T stacked,
    ``L @ x_flat`` is h_1..h_T stacked with h_t = w_ih x_t + w_hh h_(t-1), h_0 = 0.
    """
    wi = _as_numpy(w_ih, "w_ih").astype(np.float64)
    wh = _as_numpy(w_hh, "w_hh").astype(np.float64)
    if wi.ndim != 2 or wh.ndim != 2 or wh.shape != (wi.shape[0], wi.shape[0]):
        raise ValueError(f"w_ih, w_hh: expected shapes (h, d) and (h, h), got {wi.shape} and {wh.shape}")
    t_len = check_int("seq_len", seq_len, 1, 1024)
    powers = [wi]
    for _ in range(1, t_len):
        powers.append(wh @ powers[-1])                      # w_hh^k w_ih
    h, d = wi.shape
    t_idx, s_idx = np.tril_indices(t_len)                   # blocks on and below the diagonal
    data = np.stack(powers)[t_idx - s_idx]                  # (n_blocks, h, d)
    rows = t_idx[:, None, None] * h + np.arange(h)[None, :, None] + 0 * np.arange(d)[None, None, :]
    cols = s_idx[:, None, None] * d + np.arange(d)[None, None, :] + 0 * np.arange(h)[None, :, None]
    return sp.csr_matrix((data.ravel(), (rows.ravel(), cols.ravel())), shape=(t_len * h, t_len * d))


def rnn_reference(w_ih: Any, w_hh: Any, x: Any, activation: str = "linear") -> np.ndarray:
    """The recurrence step by step: x (T, d) -> hidden states (T, h).

    activation: "linear" (h_t = W_ih x_t + W_hh h_(t-1)) or "tanh" (tanh of that).
    """
    wi = _as_numpy(w_ih, "w_ih").astype(np.float64)
    wh = _as_numpy(w_hh, "w_hh").astype(np.float64)
    xs = _as_numpy(x, "x").astype(np.float64)
    if activation not in ("linear", "tanh"):
        raise ValueError(f"activation: expected linear or tanh, got {activation!r}")
    h = np.zeros(wi.shape[0])
    out = []
    for xt in xs:
        h = wi @ xt + wh @ h
        if activation == "tanh":
            h = np.tanh(h)
        out.append(h)
    return np.stack(out)


def rnn_tanh_gap(w_ih: Any, w_hh: Any, x: Any) -> dict:
    """How far the single matrix is from a tanh RNN (the paper's stated limitation).

    Compares, per time step, the true tanh recurrence with tanh applied once after the
    matrix (``tanh(L x)``, the paper's recipe) and with the linear map alone.
    Returns per-step max |diff| lists and overall relative errors.
    """
    xs = _as_numpy(x, "x").astype(np.float64)
    t_len = xs.shape[0]
    lmat = rnn_as_block_lower_triangular(w_ih, w_hh, t_len)
    linear = (lmat @ xs.reshape(-1)).reshape(t_len, -1)
    true_tanh = rnn_reference(w_ih, w_hh, xs, "tanh")
    once = np.tanh(linear)
    norm = max(float(np.linalg.norm(true_tanh)), 1e-300)
    return {
        "step": list(range(1, t_len + 1)),
        "maxdiff_tanh_once": np.abs(once - true_tanh).max(axis=1).tolist(),
        "maxdiff_linear": np.abs(linear - true_tanh).max(axis=1).tolist(),
        "rel_error_tanh_once": float(np.linalg.norm(once - true_tanh) / norm),
        "rel_error_linear": float(np.linalg.norm(linear - true_tanh) / norm),
        "true_tanh": true_tanh,
        "tanh_once": once,
    }


# --------------------------------------------------------------------------- attention


@dataclass
class SparseTensor:
    """An n-dimensional sparse tensor in coordinate form.

    coords: (nnz, ndim) int64; values: (nnz,); shape: the dense shape. ``to_dense()``
    builds the full array (small shapes only); ``as_matrix()`` flattens all but the
    first index, giving the single matrix that acts on the lifted input x ⊗ x ⊗ ...
    """

    coords: np.ndarray
    values: np.ndarray
    shape: tuple[int, ...]

    @property
    def nnz(self) -> int:
        return int(self.values.size)

    @property
    def density(self) -> float:
        return self.nnz / float(np.prod(np.array(self.shape, dtype=np.float64)))

    def __repr__(self) -> str:
        return f"SparseTensor(shape={self.shape}, nnz={self.nnz}, density={self.density:.3g})"

    def to_dense(self) -> np.ndarray:
        if float(np.prod(np.array(self.shape, dtype=np.float64))) > 5e7:
            raise ValueError(f"to_dense: expected at most 5e7 entries, got shape {self.shape}")
        out = np.zeros(self.shape, dtype=self.values.dtype)
        np.add.at(out, tuple(self.coords.T), self.values)
        return out

    def as_matrix(self) -> sp.csr_matrix:
        """(shape[0], prod(shape[1:])) CSR: the tensor as a matrix on the lifted input."""
        tail = self.shape[1:]
        flat = np.ravel_multi_index(tuple(self.coords[:, 1:].T), tail) if tail else np.zeros(self.nnz, int)
        return sp.csr_matrix((self.values, (self.coords[:, 0], flat)),
                             shape=(self.shape[0], int(np.prod(tail))))

    def contract(self, x: np.ndarray) -> np.ndarray:
        """Contract every index but the first with x: einsum('o i j ..., i, j, ... -> o')."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        prod = self.values.astype(np.float64).copy()
        for axis in range(1, len(self.shape)):
            prod *= x[self.coords[:, axis]]
        out = np.zeros(self.shape[0])
        np.add.at(out, self.coords[:, 0], prod)
        return out


def _attention_weights(w_q: Any, w_k: Any, w_v: Any | None) -> tuple[np.ndarray, ...]:
    wq = _as_numpy(w_q, "w_q").astype(np.float64)
    wk = _as_numpy(w_k, "w_k").astype(np.float64)
    if wq.ndim != 2 or wk.shape != wq.shape:
        raise ValueError(f"w_q, w_k: expected equal shapes (d, d_k), got {wq.shape} and {wk.shape}")
    if w_v is None:
        return wq, wk
    wv = _as_numpy(w_v, "w_v").astype(np.float64)
    if wv.ndim != 2 or wv.shape[0] != wq.shape[0]:
        raise ValueError(f"w_v: expected shape ({wq.shape[0]}, d_v), got {wv.shape}")
    return wq, wk, wv


def attention_scores_as_tensor(w_q: Any, w_k: Any, seq_len: int) -> SparseTensor:
    """The scores (X W_q)(X W_k)^T as a bilinear form: S of shape (T*T, N, N), N = T*d.

    ``scores.reshape(-1) == einsum('pij,i,j->p', S, x, x)`` for x = X.reshape(-1).
    Entry ((t, s), (t, a), (s, b)) = (W_q W_k^T)[a, b]; every other entry is zero.
    """
    wq, wk = _attention_weights(w_q, w_k, None)
    t_len = check_int("seq_len", seq_len, 1, 256)
    d = wq.shape[0]
    g = wq @ wk.T                                                     # (d, d)
    t, s, a, b = np.meshgrid(np.arange(t_len), np.arange(t_len), np.arange(d), np.arange(d),
                             indexing="ij")
    coords = np.stack([(t * t_len + s).ravel(), (t * d + a).ravel(), (s * d + b).ravel()], axis=1)
    values = np.broadcast_to(g[None, None], t.shape).ravel().copy()
    n = t_len * d
    return SparseTensor(coords.astype(np.int64), values, (t_len * t_len, n, n))


def linear_attention_as_tensor(w_q: Any, w_k: Any, w_v: Any, seq_len: int, causal: bool = False,
                               scale: float = 1.0) -> SparseTensor:
    """Single-head attention without softmax as a third-order tensor (sparse storage).

    w_q, w_k: (d, d_k); w_v: (d, d_v). Returns T of shape (T*d_v, N, N, N), N = T*d,
    with ``out.reshape(-1) == einsum('oijk,i,j,k->o', T, x, x, x)`` where
    out = scale * mask ⊙ ((X W_q)(X W_k)^T) (X W_v) and x = X.reshape(-1).
    Entry ((t, o), (t, a), (s, b), (s, c)) = scale * (W_q W_k^T)[a, b] * W_v[c, o]:
    the first input index sits in the output's token, the other two in one shared
    token s (s <= t when causal); everything else is zero.
    """
    wq, wk, wv = _attention_weights(w_q, w_k, w_v)
    t_len = check_int("seq_len", seq_len, 1, 64)
    d, d_v = wq.shape[0], wv.shape[1]
    if t_len * t_len * d ** 3 * d_v > 2e7:
        raise ValueError(f"seq_len, d: expected at most 2e7 tensor nonzeros, got "
                         f"{t_len * t_len * d ** 3 * d_v:.3g} (seq_len={t_len}, d={d}, d_v={d_v})")
    g = wq @ wk.T
    core = g[:, :, None, None] * wv[None, None, :, :]                 # (a, b, c, o)
    pairs = [(t, s) for t in range(t_len) for s in range(t_len) if (s <= t or not causal)]
    ts = np.array(pairs, dtype=np.int64)                              # (P, 2)
    a, b, c, o = np.meshgrid(np.arange(d), np.arange(d), np.arange(d), np.arange(d_v), indexing="ij")
    a, b, c, o = (z.ravel()[None, :] for z in (a, b, c, o))
    t, s = ts[:, :1], ts[:, 1:]
    coords = np.stack([np.broadcast_to(t * d_v + o, (len(pairs), o.size)).ravel(),
                       np.broadcast_to(t * d + a, (len(pairs), a.size)).ravel(),
                       np.broadcast_to(s * d + b, (len(pairs), b.size)).ravel(),
                       np.broadcast_to(s * d + c, (len(pairs), c.size)).ravel()], axis=1)
    values = np.broadcast_to(core.reshape(1, -1) * float(scale), (len(pairs), core.size)).ravel().copy()
    n = t_len * d
    return SparseTensor(coords.astype(np.int64), values, (t_len * d_v, n, n, n))


def linear_attention_reference(w_q: Any, w_k: Any, w_v: Any, x: Any, causal: bool = False,
                               scale: float = 1.0, softmax: bool = False) -> np.ndarray:
    """Attention of X: (T, d) -> (T, d_v): scale * (X W_q)(X W_k)^T (X W_v), optionally
    with a causal mask and with a row softmax on the scaled scores (the real layer)."""
    wq, wk, wv = _attention_weights(w_q, w_k, w_v)
    xs = _as_numpy(x, "x").astype(np.float64)
    scores = (xs @ wq) @ (xs @ wk).T
    t_len = xs.shape[0]
    if softmax:
        logits = scores * scale
        if causal:
            logits = np.where(np.tril(np.ones((t_len, t_len), bool)), logits, -np.inf)
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        return p @ (xs @ wv)
    if causal:
        scores = np.tril(scores)
    return scale * scores @ (xs @ wv)


def attention_softmax_gap(w_q: Any, w_k: Any, w_v: Any, x: Any, causal: bool = False) -> dict:
    """How far the softmax-free tensor is from real attention (the paper's limitation).

    Compares the tensor contraction with softmax(X W_q (X W_k)^T / sqrt(d_k)) X W_v.
    """
    wq, wk, wv = _attention_weights(w_q, w_k, w_v)
    xs = _as_numpy(x, "x").astype(np.float64)
    scale = 1.0 / math.sqrt(wq.shape[1])
    tensor = linear_attention_as_tensor(wq, wk, wv, xs.shape[0], causal=causal, scale=scale)
    linear = tensor.contract(xs.reshape(-1)).reshape(xs.shape[0], -1)
    soft = linear_attention_reference(wq, wk, wv, xs, causal=causal, scale=scale, softmax=True)
    norm = max(float(np.linalg.norm(soft)), 1e-300)
    return {"linear": linear, "softmax": soft,
            "max_abs_diff": float(np.abs(linear - soft).max()),
            "rel_error": float(np.linalg.norm(linear - soft) / norm)}


def token_support(tensor: SparseTensor, seq_len: int) -> np.ndarray:
    """Count of nonzeros by token of each index: (T_out, T_i, T_j, T_k) for a 4-index tensor.

    Shows which index triples can be nonzero: i only in the output's token, j and k
    only in one shared token.
    """
    t_len = check_int("seq_len", seq_len, 1)
    per = [tensor.shape[0] // t_len] + [n // t_len for n in tensor.shape[1:]]
    tok = tensor.coords // np.array(per)[None, :]
    out = np.zeros((t_len,) * len(tensor.shape), dtype=np.int64)
    np.add.at(out, tuple(tok.T), 1)
    return out


# --------------------------------------------------------------------------- facts


def matrix_facts(m: Any, name: str = "", block: tuple[int, int] | None = None) -> dict:
    """What is true about a sparse matrix's pattern (explicit zeros count as stored).

    shape, nnz, density, lower and upper bandwidth (max i-j and j-i over nonzeros),
    nonzeros below, on and above the main diagonal, and whether it is upper or lower
    triangular (no stored entry below, respectively above, the diagonal). With
    ``block=(bh, bw)`` also whether it is block lower / upper triangular for blocks
    of bh rows and bw columns.
    """
    coo = sp.coo_matrix(m)
    n_rows, n_cols = coo.shape
    diff = coo.row.astype(np.int64) - coo.col.astype(np.int64)
    nnz = int(coo.nnz)
    below, above = int((diff > 0).sum()), int((diff < 0).sum())
    facts = {
        "matrix": name,
        "rows": int(n_rows),
        "cols": int(n_cols),
        "nnz": nnz,
        "density": nnz / max(n_rows * n_cols, 1),
        "lower_bandwidth": int(max(diff.max(), 0)) if nnz else 0,
        "upper_bandwidth": int(max(-diff.min(), 0)) if nnz else 0,
        "nnz_below_diagonal": below,
        "nnz_on_diagonal": nnz - below - above,
        "nnz_above_diagonal": above,
        "upper_triangular": below == 0,
        "lower_triangular": above == 0,
    }
    facts["triangularity"] = ("diagonal" if below == 0 and above == 0 else
                              "upper-triangular" if below == 0 else
                              "lower-triangular" if above == 0 else "neither")
    if block is not None:
        bh, bw = block
        bdiff = coo.row.astype(np.int64) // bh - coo.col.astype(np.int64) // bw
        facts["block"] = f"{bh}x{bw}"
        facts["block_lower_triangular"] = bool((bdiff >= 0).all())
        facts["block_upper_triangular"] = bool((bdiff <= 0).all())
    return facts


# --------------------------------------------------------------------------- torch forms


def torch_csr(m: sp.spmatrix, device: Any = "cpu", dtype: Any = None):
    """A scipy matrix as a torch sparse CSR tensor on ``device``."""
    import torch

    csr = sp.csr_matrix(m)
    dtype = dtype or torch.float32
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*Sparse CSR tensor support is in beta.*")
        return torch.sparse_csr_tensor(torch.as_tensor(csr.indptr, dtype=torch.int64),
                                       torch.as_tensor(csr.indices, dtype=torch.int64),
                                       torch.as_tensor(csr.data, dtype=dtype),
                                       size=csr.shape, device=device, check_invariants=False)


SWEEP_BUDGET_S = 2.0     # per timed path of a sweep point: runs go on until IQR/median settles or this is spent
INLINE_BUDGET_S = 0.03   # per timed path of the page's small inline timing (in the request path: at most ~70 ms for two paths)


def _versions() -> dict:
    import torch

    return {"torch_version": torch.__version__}


def conv_task(backend: str, c_out: int, c_in: int, kh: int, kw: int, h: int, w: int, batch: int,
              device: str, device_name: str = "") -> Any:
    """What one side of a conv timing is: engine.bench.measurement.Task with named dims."""
    from engine.bench.measurement import Task

    return Task(op="conv2d 3x3" if (kh, kw) == (3, 3) else f"conv2d {kh}x{kw}", backend=backend,
                dims={"c_out": c_out, "c_in": c_in, "kh": kh, "kw": kw, "height": h, "width": w, "batch": batch},
                dtype="float32", device=device, device_name=device_name, versions=_versions())


def time_conv_layer(weight: Any, input_hw: Sequence[int], batch: int, stride: Any = 1,
                    padding: Any = 0, dilation: Any = 1, device: Any = "cpu", repeats: int = 5,
                    seed: int = 0, x: Any = None, prebuilt: tuple | None = None,
                    budget_s: float = SWEEP_BUDGET_S, device_name: str = "") -> dict:
    """Time F.conv2d against the CSR matrix times the flattened batch, on one device.

    weight: (C_out, C_in, kh, kw), float32. x: (batch, C_in, H, W) or None (random).
    The matrix side includes the reshapes/transposes it needs: (M @ X^T)^T with X the
    batch as rows. Each side is timed by ``engine.bench.timer.repeat_until_settled``: at
    least ``repeats`` runs, then more until IQR/median <= 0.1 or ``budget_s`` is spent.
    Returns the matrix side's ``Measurement.row()`` with the native side's statistics,
    the ratio matrix/native, ``noisy`` (either side), nnz, build time and max |native - matrix|.
    ``prebuilt``: (scipy matrix, torch CSR on device, build seconds) from an earlier call
    with the same layer, to skip the build.
    """
    import torch
    import torch.nn.functional as F

    from engine.bench.timer import repeat_until_settled

    b = check_int("batch", batch, 1, 4096)
    reps = check_int("repeats", repeats, 3, 1000)
    dev = torch.device(device)
    wt = torch.as_tensor(_as_numpy(weight, "weight"), dtype=torch.float32)
    h, w = _pair("input_hw", tuple(input_hw), 1)
    if x is None:
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(b, wt.shape[1], h, w, generator=gen)
    x = torch.as_tensor(x, dtype=torch.float32)
    if prebuilt is None:
        prebuilt = build_conv_matrix(wt, (h, w), stride, padding, dilation, dev)
    m, mt, build_s = prebuilt
    wt, x = wt.to(dev), x.to(dev)
    s_, p_, d_ = _pair("stride", stride, 1), _pair("padding", padding, 0), _pair("dilation", dilation, 1)

    def native():
        return F.conv2d(x, wt, stride=s_, padding=p_, dilation=d_)

    def matrix():
        return (mt @ x.reshape(b, -1).T).T

    dims = (int(wt.shape[0]), int(wt.shape[1]), int(wt.shape[2]), int(wt.shape[3]), h, w, b, dev.type, device_name)
    with torch.no_grad():
        tn = repeat_until_settled(native, task=conv_task("torch F.conv2d", *dims), budget_s=budget_s,
                                  min_runs=reps, max_runs=max(reps, 1000), warmup=2)
        tm = repeat_until_settled(matrix, task=conv_task("torch sparse CSR @ X", *dims), budget_s=budget_s,
                                  min_runs=reps, max_runs=max(reps, 1000), warmup=2)
        diff = float((native().reshape(b, -1) - matrix()).abs().max())
    return {
        **tm.row(), "settled": tm.settled,
        "c_out": int(wt.shape[0]), "c_in": int(wt.shape[1]), "kernel": f"{wt.shape[2]}x{wt.shape[3]}",
        "image": f"{h}x{w}", "batch": b, "stride": str(s_), "padding": str(p_), "dilation": str(d_),
        "rows": m.shape[0], "cols": m.shape[1], "nnz": int(m.nnz),
        "density": m.nnz / (m.shape[0] * m.shape[1]), "build_s": build_s,
        "native_median_s": tn.median_s, "native_iqr_s": tn.iqr_s, "native_runs": tn.runs, "native_noisy": tn.noisy,
        "matrix_median_s": tm.median_s, "matrix_iqr_s": tm.iqr_s, "matrix_runs": tm.runs, "matrix_noisy": tm.noisy,
        "matrix_over_native": tm.median_s / tn.median_s if tn.median_s > 0 else float("nan"),
        "noisy": tn.noisy or tm.noisy, "max_abs_diff": diff, "budget_s": budget_s,
        "torch": torch.__version__,
        # cuDNN may run float32 convolutions in TF32 on Ampere+ GPUs: that, not the matrix,
        # is why max_abs_diff reaches ~1e-3 there
        "cudnn_allow_tf32": bool(torch.backends.cudnn.allow_tf32),
    }


def build_conv_matrix(weight: Any, input_hw: Sequence[int], stride: Any = 1, padding: Any = 0,
                      dilation: Any = 1, device: Any = "cpu") -> tuple:
    """(scipy CSR, torch CSR float32 on device, seconds to build both: one wall-clock reading)."""
    started = time.perf_counter()
    m = conv2d_as_sparse(weight, input_hw, stride=stride, padding=padding, dilation=dilation)
    mt = torch_csr(m, device)
    return m, mt, time.perf_counter() - started


def time_conv_native_vs_matrix(channels: int, image: int, batch: int | Sequence[int], kernel: int = 3,
                               padding: int = 1, stride: int = 1, device: Any = "cpu",
                               repeats: int = 5, seed: int = 0) -> dict | list[dict]:
    """``time_conv_layer`` for C_in = C_out = channels, a square image and kernel.

    batch: one batch size (returns a row) or several (returns a row each; the matrix
    is built once).
    """
    import torch

    c = check_int("channels", channels, 1, 512)
    n = check_int("image", image, 1, 1024)
    k = check_int("kernel", kernel, 1, 15)
    weight = torch.randn(c, c, k, k, generator=torch_generator(seed)) / math.sqrt(c * k * k)
    batches = [batch] if isinstance(batch, int) else list(batch)
    pre = build_conv_matrix(weight, (n, n), stride, padding, 1, torch.device(device))
    rows = []
    for b in batches:
        row = time_conv_layer(weight, (n, n), b, stride=stride, padding=padding, device=device,
                              repeats=repeats, seed=seed, prebuilt=pre)
        row["channels"] = c
        rows.append(row)
    return rows[0] if isinstance(batch, int) else rows


def time_callables(fns: dict, task: Any = None, repeats: int = 5, budget_s: float = INLINE_BUDGET_S) -> dict:
    """A Measurement per zero-argument CPU callable: ``{name: Measurement}``.

    Each runs at least ``repeats`` times, then until IQR/median settles or ``budget_s`` is
    spent (``engine.bench.timer.repeat_until_settled``). ``task``: a function name ->
    engine.bench.measurement.Task, or None (op = the name, on the CPU).
    """
    from engine.bench.measurement import Task
    from engine.bench.timer import repeat_until_settled

    reps = check_int("repeats", repeats, 3, 1000)
    make = task or (lambda name: Task(op=name, device="cpu", dtype="float32", versions=_versions()))
    return {name: repeat_until_settled(fn, task=make(name), budget_s=budget_s, min_runs=reps,
                                       max_runs=max(reps, 1000), warmup=2) for name, fn in fns.items()}


def torch_generator(seed: int):
    import torch

    return torch.Generator().manual_seed(int(seed))


def conv_timing_sweep(channels: Sequence[int], images: Sequence[int], batches: Sequence[int],
                      device: Any = "auto", repeats: int = 5, max_nnz: float = 4e8,
                      budget_s: float = SWEEP_BUDGET_S) -> Iterator[dict]:
    """Yield one timing row per (channels, image, batch); skipped sizes say why.

    device: "auto", "cpu" or "cuda"; resolved lazily through engine.runtime.device.job_device
    when the first row is asked for (so a job process, never the web server, does it).
    Each point runs until its IQR settles or ``budget_s`` per side is spent; rows that stay
    noisy say so (``noisy``, ``settled``).
    """
    from engine.runtime.device import job_device, runtime_device_name

    dev = name = None
    for c in channels:
        for n in images:
            nnz = c * c * 9 * n * n
            if nnz > max_nnz:
                for b in batches:
                    yield {"channels": c, "image": f"{n}x{n}", "batch": b, "device": str(device),
                           "status": f"skipped: matrix would hold {nnz:.3g} nonzeros"}
                continue
            if dev is None:
                dev = job_device(device)
                name = runtime_device_name(dev)
            import torch

            weight = torch.randn(c, c, 3, 3, generator=torch_generator(0)) / math.sqrt(c * 9)
            pre = build_conv_matrix(weight, (n, n), 1, 1, 1, dev)
            for b in batches:
                row = time_conv_layer(weight, (n, n), b, padding=1, device=dev, repeats=repeats,
                                      prebuilt=pre, budget_s=budget_s, device_name=name)
                row.update(channels=c, status="ok")
                yield row
            del pre


def sweep_summary(rows: list[dict]) -> list[tuple[str, str]]:
    """Sentences on a sweep's rows, (kind, text): ratios only from rows that are not noisy;
    how many rows stayed noisy after their time budget (those are drawn hollow, never quoted)."""
    ok = [r for r in rows or [] if r.get("status", "ok") == "ok" and "matrix_over_native" in r]
    noisy = [r for r in ok if noisy_flag(r.get("noisy"))]
    steady = [r for r in ok if r not in noisy]
    lines = []
    if steady:
        parts = [f"{r['channels']} channel{'s' if int(r['channels']) != 1 else ''}, {r['image']}, batch {r['batch']}: "
                 f"{float(r['matrix_over_native']):.2g}x" for r in sorted(steady, key=lambda r: (
                     int(r["channels"]), str(r["image"]), int(r["batch"])))]
        lines.append(("info", "Matrix time / native time, steady rows only: " + "; ".join(parts) + "."))
    if noisy:
        lines.append(("warn", f"{len(noisy)} of {len(ok)} timed rows stayed noisy (IQR/median > 0.1) after their "
                              "time budget: drawn hollow and grey, and not used in any sentence here. A larger "
                              "budget or a quieter machine may settle them."))
    return lines


def run_label(rows: list[dict]) -> str:
    """The legend prefix of a run's lines: "this run (CPU)", "this run (H100 80GB HBM3)"."""
    from engine.bench.reference import short_device

    device = next((str(r.get("device_name") or "") for r in rows or [] if r.get("device_name")), "")
    return f"this run ({short_device(device)})" if device else "this run"


def reference_beside(rows: list[dict], ref: Any) -> dict:
    """How a committed reference (engine.bench.reference.Reference) is drawn beside a run's
    rows: {"local": ..., "reference": ...} (the legend prefixes of each side's lines),
    "text" and "kind" (the note). Every way the two differ (device, channels, batch, image,
    dtype, timing method: engine.bench.reference.compare) is named in the note; the legend
    names each side's device and any dtype or method that differs (each line names its own
    image and batch)."""
    from engine.bench.measurement import normalise_method
    from engine.bench.reference import compare, short_device

    ok = [r for r in rows or [] if r.get("status", "ok") == "ok" and "matrix_over_native" in r]
    ref_dev = short_device(ref.device_name)
    if not ok:
        return {"local": "this run", "reference": f"reference ({ref_dev})", "kind": "info",
                "text": f"Reference: {ref.description}."}
    device = str(ok[0].get("device_name") or ok[0].get("device") or "")
    method = next((m for m in (normalise_method(r.get("method")) for r in ok) if m), None)
    dims = {"channels": sorted({int(r["channels"]) for r in ok}), "batch": sorted({int(r["batch"]) for r in ok}),
            "image": sorted({str(r["image"]) for r in ok})}
    match = compare(ref, device_name=device, dims=dims, dtype=str(ok[0].get("dtype") or "float32"), method=method)
    ref_side, local_side = [ref_dev], [short_device(device) if device else "this device"]
    if "dtype" in match.mismatches:
        ref_side.append(", ".join(ref.dtypes))
        local_side.append(str(ok[0].get("dtype")))
    if "method" in match.mismatches:
        ref_side.append(", ".join(ref.methods) or "method not recorded")
        local_side.append(str(method))
    labels = {"local": f"this run ({', '.join(local_side)})", "reference": f"reference ({', '.join(ref_side)})"}
    if match.same:
        return {**labels, "kind": "info", "text": f"Reference: {match.label}; {ref.description}."}
    return {**labels, "kind": "warn",
            "text": f"{match.unlike_text}; reference: {ref.description}."}


def sweep_size(channels: Sequence[int], images: Sequence[int], batches: Sequence[int]) -> int:
    return len(channels) * len(images) * len(batches)


SPY_MAX_CELLS = 512      # a spy plot or heatmap is drawn from at most this many cells per side


def spy_grid(m: Any, max_cells: int = SPY_MAX_CELLS) -> dict:
    """Aggregate a sparse matrix into at most max_cells x max_cells cells for a spy plot.

    Returns z (cells: sum of |values| per cell, NaN where the cell holds no entry),
    count (nnz per cell), and the row / column edges of each cell (cell i covers
    rows row_edges[i] .. row_edges[i+1]-1).
    """
    coo = sp.coo_matrix(m)
    n_rows, n_cols = coo.shape
    gr = min(n_rows, max_cells)
    gc = min(n_cols, max_cells)
    ri = (coo.row.astype(np.int64) * gr) // max(n_rows, 1)
    ci = (coo.col.astype(np.int64) * gc) // max(n_cols, 1)
    count = np.zeros((gr, gc))
    np.add.at(count, (ri, ci), 1.0)
    z = np.zeros((gr, gc))
    np.add.at(z, (ri, ci), coo.data.astype(np.float64))
    row_edges = -(-np.arange(gr + 1) * n_rows // gr)   # first row of each cell
    col_edges = -(-np.arange(gc + 1) * n_cols // gc)
    return {"z": np.where(count > 0, z, np.nan), "count": count, "row_edges": row_edges,
            "col_edges": col_edges, "aggregated": gr < n_rows or gc < n_cols}


# --------------------------------------------------------------------------- inputs and export


def sample_image(source: str = "digit", size: int = 8, channels: int = 1, index: int = 0,
                 seed: int = 0) -> np.ndarray:
    """An input image (channels, size, size) in [0, 1].

    source: "digit" (scikit-learn's handwritten digit ``index``, 8x8, resized bilinearly,
    copied into every channel) or "random" (uniform noise from ``seed``).
    """
    from engine.validate import check_choice

    check_choice("image source", source, ("digit", "random"))
    n = check_int("image size", size, 1, 512)
    c = check_int("channels", channels, 1, 512)
    if source == "random":
        return np.random.default_rng(seed).random((c, n, n))
    from engine.data import digits_images

    images = digits_images()
    i = check_int("digit index", index, 0, len(images) - 1)
    img = images[i]
    if n != 8:
        import torch
        import torch.nn.functional as F

        img = F.interpolate(torch.as_tensor(img)[None, None], size=(n, n), mode="bilinear",
                            align_corners=False)[0, 0].numpy()
    return np.repeat(img[None], c, axis=0)


def random_conv_weight(c_out: int, c_in: int, kh: int, kw: int, seed: int = 0) -> np.ndarray:
    """(C_out, C_in, kh, kw) weights with torch's default conv scale (uniform ±1/sqrt(fan_in))."""
    bound = 1.0 / math.sqrt(c_in * kh * kw)
    return np.random.default_rng(seed).uniform(-bound, bound, (c_out, c_in, kh, kw))


def matrix_market_text(m: Any, comment: str = "", max_nnz: int = 2_000_000) -> str:
    """The matrix in Matrix Market coordinate format (text); refuses very large matrices."""
    import io

    from scipy.io import mmwrite

    m = sp.coo_matrix(m)
    if m.nnz > max_nnz:
        raise ValueError(f"matrix download: expected at most {max_nnz} nonzeros, got {m.nnz}; "
                         "reduce channels or image size")
    buf = io.BytesIO()
    mmwrite(buf, m, comment=comment)
    return buf.getvalue().decode("ascii")
