"""What /isomorphism shows for one setting of its widgets, computed here (never in the page).

Each tab's widgets become one spec (``ConvSpec``, ``PoolSpec``, ``RnnSpec``, ``AttnSpec``).
The spec's constructor checks every value once against ``LIMITS`` (the page reads the
same numbers for its slider ranges, so widget and server limits cannot disagree) and
estimates, from the spec alone, how many nonzeros and bytes the construction needs.
Too large a spec is refused with "expected ... got ..." before anything is allocated,
against ``MAX_PAGE_NNZ`` and ``SPARSITY_LAB_MEMORY_BUDGET_MB``.

``parts_view(spec)`` builds the matrix, runs the native torch layer beside it and returns
plain data (arrays, facts, the claim's verdict) for the page's figure functions: pure in
the spec, so cached. ``conv_view(spec)`` and its siblings add a small timing of both paths
(timing rows, medians, their ratio), which is never cached; the page asks for it in a
callback of its own.

    spec = ConvSpec(size=28, padding=1)            # the paper's setting: zero padding
    view = conv_view(spec)
    view["claim"]                                  # ("warn", "The paper calls ... it is neither: 2,970 ...")
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import scipy.sparse as sp

from engine.layers import lowering as low
from engine.runtime.cache import pure_cache
from engine.validate import check_budget, check_choice, check_fields, check_float, check_int

# (lo, hi) of every integer widget, per tab. The page's sliders use these numbers.
LIMITS = {
    "conv": {"size": (4, 64), "cin": (1, 16), "cout": (1, 16), "kernel": (1, 7), "stride": (1, 4),
             "padding": (0, 3), "dilation": (1, 3), "digit": (0, 1796)},
    "pool": {"size": (2, 64), "channels": (1, 8), "kernel": (1, 6), "stride": (1, 6), "digit": (0, 1796)},
    "rnn": {"t_len": (1, 64), "hidden": (1, 16), "d": (1, 8)},
    "attn": {"t_len": (1, 8), "d": (1, 6), "d_v": (1, 6)},
}
FLOAT_LIMITS = {"radius": (0.1, 1.5), "scale": (0.1, 3.0)}
LABELS = {"size": "image size", "cin": "input channels", "cout": "output channels", "kernel": "kernel",
          "stride": "stride", "padding": "padding", "dilation": "dilation", "digit": "digit index",
          "channels": "channels", "t_len": "sequence length", "hidden": "hidden size", "d": "input size",
          "d_v": "value size", "radius": "spectral radius", "scale": "input scale"}
MAX_PAGE_NNZ = 4_000_000
# What building, aggregating, timing and downloading a matrix costs per stored entry
# (index arrays, values, the COO copy of the spy grid, the torch CSR, the .mtx text).
BYTES_PER_NNZ = 128
MTX_BYTES_PER_NNZ = 160
PAPER_PADDING = 1          # zero padding 1: the paper's setting ("same" size for a 3x3 kernel)
TIMING_BATCH = 8


def _check_size(what: str, nnz: int, dense_bytes: float = 0.0, download: bool = False) -> None:
    """Refuse before allocating: nonzeros against MAX_PAGE_NNZ, bytes against the budget."""
    if nnz > MAX_PAGE_NNZ:
        raise ValueError(f"{what}: expected at most {MAX_PAGE_NNZ:,} nonzeros on this page, got {nnz:,}; "
                         "choose smaller settings (the timing sweep goes larger)")
    per = BYTES_PER_NNZ + (MTX_BYTES_PER_NNZ if download else 0)
    check_budget(what, nnz * per + dense_bytes)


class _Spec:
    """Shared by the specs: ``nnz`` and ``dense_bytes`` come from the fields alone."""

    what = "matrix"

    def check_size(self, download: bool = False):
        """Refuse, before anything is built, a spec over MAX_PAGE_NNZ or the memory budget."""
        _check_size(self.what, self.nnz, self.dense_bytes, download)
        return self


@dataclass(frozen=True)
class ConvSpec(_Spec):
    """One convolution: a square image of ``size`` pixels, C_in -> C_out, k x k kernel."""

    source: str = "digit"
    digit: int = 0
    size: int = 16
    cin: int = 1
    cout: int = 1
    kernel: int = 3
    stride: int = 1
    padding: int = PAPER_PADDING
    dilation: int = 1

    def __post_init__(self):
        check_choice("image source", self.source, ("digit", "random"))
        check_fields(self, LIMITS["conv"], LABELS)
        out = low.conv_output_size(self.size, self.kernel, self.stride, self.padding, self.dilation)
        if out < 1:
            raise ValueError(f"kernel: expected a kernel that fits the padded {self.size}x{self.size} image "
                             f"(dilation {self.dilation}), got {self.kernel}x{self.kernel}")

    @property
    def out_size(self) -> int:
        return low.conv_output_size(self.size, self.kernel, self.stride, self.padding, self.dilation)

    what = "convolution matrix"

    @property
    def nnz(self) -> int:
        """Stored entries, at most (every tap inside the padded image counts once)."""
        return self.cout * self.out_size ** 2 * self.cin * self.kernel ** 2

    @property
    def dense_bytes(self) -> float:
        return 8.0 * (TIMING_BATCH + 2) * (self.cin * self.size ** 2 + self.cout * self.out_size ** 2)


@dataclass(frozen=True)
class PoolSpec(_Spec):
    """Average or max pooling of a digit: C channels, a k x k window, stride s, no padding."""

    mode: str = "avg"
    size: int = 16
    channels: int = 1
    kernel: int = 2
    stride: int = 2
    digit: int = 0

    def __post_init__(self):
        check_choice("pooling", self.mode, ("avg", "max"))
        check_fields(self, LIMITS["pool"], LABELS)
        if self.kernel > self.size:
            raise ValueError(f"window: expected at most the image size {self.size}, got {self.kernel}")

    what = "pooling matrix"

    @property
    def nnz(self) -> int:
        out = (self.size - self.kernel) // self.stride + 1
        return self.channels * out * out * self.kernel ** 2

    @property
    def dense_bytes(self) -> float:
        return 8.0 * 4 * self.channels * self.size ** 2


@dataclass(frozen=True)
class RnnSpec(_Spec):
    """A linear RNN unrolled over T steps: hidden size h, input size d."""

    t_len: int = 12
    hidden: int = 4
    d: int = 2
    radius: float = 0.9
    scale: float = 1.0

    def __post_init__(self):
        check_fields(self, {**LIMITS["rnn"], **FLOAT_LIMITS}, LABELS)

    what = "RNN matrix"

    @property
    def nnz(self) -> int:
        return self.t_len * (self.t_len + 1) // 2 * self.hidden * self.d

    @property
    def dense_bytes(self) -> float:
        return 8.0 * (self.t_len * self.hidden * (self.d + 6) + self.hidden ** 2)


@dataclass(frozen=True)
class AttnSpec(_Spec):
    """Single-head linear attention over T tokens of size d, values of size d_v."""

    t_len: int = 4
    d: int = 3
    d_v: int = 2
    token: int = 0
    causal: bool = False

    def __post_init__(self):
        check_fields(self, LIMITS["attn"], LABELS)
        object.__setattr__(self, "token", min(check_int("output token", self.token, 0, 63), self.t_len - 1))
        object.__setattr__(self, "causal", bool(self.causal))

    @property
    def nnz(self) -> int:
        pairs = self.t_len * (self.t_len + 1) // 2 if self.causal else self.t_len ** 2
        return pairs * self.d ** 3 * self.d_v

    what = "attention tensor"

    @property
    def dense_bytes(self) -> float:
        return 40.0 * (self.nnz + self.t_len ** 2 * self.d ** 2)    # coords (4 int64) + value, and the scores


SPECS = {"conv": ConvSpec, "pool": PoolSpec, "rnn": RnnSpec, "attn": AttnSpec}


def spec_from_widgets(tab: str, values: list) -> Any:
    """The tab's spec from its widget values, in the order of the spec's fields (None: default)."""
    cls = SPECS[tab]
    names = list(cls.__dataclass_fields__)
    kwargs = {n: v for n, v in zip(names, values) if v is not None}
    if tab == "attn" and "causal" in kwargs and not isinstance(kwargs["causal"], bool):
        kwargs["causal"] = "causal" in (kwargs["causal"] or [])
    return cls(**kwargs)


# ------------------------------------------------------------------ weights and inputs


def rnn_weights(hidden: int, d: int, radius: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """W_ih (h, d) and W_hh (h, h) scaled to spectral radius ``radius``."""
    rng = np.random.default_rng(seed)
    w_ih = rng.standard_normal((hidden, d)) / math.sqrt(d)
    w_hh = rng.standard_normal((hidden, hidden))
    rho = max(np.abs(np.linalg.eigvals(w_hh)).max(), 1e-12)
    return w_ih, w_hh * (radius / rho)


def attn_weights(d: int, d_v: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((d, d)) / math.sqrt(d), rng.standard_normal((d, d)) / math.sqrt(d),
            rng.standard_normal((d, d_v)) / math.sqrt(d))


def matrix_for(spec: Any) -> sp.csr_matrix:
    """The tab's matrix alone (for the .mtx download), after the size check with the download's cost."""
    spec.check_size(download=True)
    return PARTS[type(spec)](spec)["matrix"]


def parts_view(spec: Any) -> dict:
    """What the tab shows for ``spec`` without its timing (``*_parts``: pure, cached), after the
    size check; ``*_view`` adds this request's timing to the same parts."""
    return PARTS[type(spec)](spec.check_size())


def mtx_text(spec: Any, tab: str) -> str:
    values = {k: v for k, v in asdict(spec).items()}
    return low.matrix_market_text(matrix_for(spec), comment=f"Sparsity Lab /isomorphism {tab}: {values}")


# ------------------------------------------------------------------ tables


FACT_KEYS = ("matrix", "rows", "cols", "nnz", "density", "lower_bandwidth", "upper_bandwidth",
             "nnz_below_diagonal", "nnz_on_diagonal", "nnz_above_diagonal", "triangularity",
             "block", "block_lower_triangular")
FACT_UNITS = {"rows": "rows", "cols": "columns", "nnz": "entries", "lower_bandwidth": "diagonals",
              "upper_bandwidth": "diagonals", "nnz_below_diagonal": "entries", "nnz_on_diagonal": "entries",
              "nnz_above_diagonal": "entries"}


def _fact_value(key: str, value: Any) -> Any:
    if isinstance(value, (bool, str)):
        return str(value)
    if key == "density":
        return f"{100 * value:.3g} %"
    if key in FACT_UNITS:
        return f"{value:,} {FACT_UNITS[key]}"
    return value


def facts_rows(facts: dict, extra: list[tuple[str, Any]] = ()) -> list[dict]:
    """The facts table: one (fact, value with its unit) row per kept fact; ``extra`` after the name."""
    rows = [{"fact": k, "value": _fact_value(k, facts[k])} for k in FACT_KEYS if k in facts]
    rows[1:1] = [{"fact": k, "value": v} for k, v in extra]
    return rows


def timing_rows(times: dict, extra: dict) -> list[dict]:
    """One row per timed path, from its Measurement: median and IQR in ms, runs, noisy, method."""
    return [{"path": name, "median_ms": m.median_s * 1e3, "iqr_ms": m.iqr_s * 1e3, "runs": m.runs,
             "noisy": str(m.noisy), "method": m.method, **extra} for name, m in times.items()]


def _parts(matrix, facts, diff, extra_facts=(), **more) -> dict:
    """The pure part of a view: matrix, its spy grid (at most SPY_MAX_CELLS a side), facts and their table."""
    return {"matrix": matrix, "grid": low.spy_grid(matrix, low.SPY_MAX_CELLS), "facts": facts,
            "facts_rows": facts_rows(facts, extra_facts), "diff": diff, **more}


def _with_times(parts: dict, times: dict, timing_extra: dict | None = None) -> dict:
    """A view: the (cached) pure parts plus this request's timing, which is never cached."""
    names = list(times)
    ratio = times[names[1]].median_s / max(times[names[0]].median_s, 1e-12)
    extra = {"device": "cpu", "dtype": "float32", "nnz": int(parts["matrix"].nnz), **(timing_extra or {})}
    return {**parts, "times": times, "timing_rows": timing_rows(times, extra), "ratio": ratio,
            "noisy": any(m.noisy for m in times.values())}


# ------------------------------------------------------------------ convolution


def conv_claim(spec: ConvSpec, facts: dict) -> tuple[str, str]:
    """The paper's claim (upper-triangular, in its setting of zero padding) against these settings."""
    tri = facts["triangularity"]
    holds = tri in ("upper-triangular", "diagonal")
    text = (f"The paper calls the convolution matrix upper-triangular, assuming zero padding. "
            f"For these settings (zero padding {spec.padding}, {spec.cin} -> {spec.cout} channels) it is {tri}: "
            f"{facts['nnz_below_diagonal']:,} stored entries below the diagonal, "
            f"{facts['nnz_above_diagonal']:,} above; bandwidth {facts['lower_bandwidth']:,} below / "
            f"{facts['upper_bandwidth']:,} above.")
    if spec.padding > 0:
        special = ConvSpec(source=spec.source, digit=spec.digit, size=spec.size, cin=1, cout=1,
                           kernel=spec.kernel, stride=spec.stride, padding=0, dilation=spec.dilation)
        pat = low.conv2d_pattern((1, 1, spec.kernel, spec.kernel), (spec.size,) * 2, spec.stride, 0,
                                 spec.dilation)
        tri0 = low.matrix_facts(sp.csr_matrix((np.ones(pat.nnz), pat.cols, pat.indptr), shape=pat.shape))
        text += (f" In the paper's own setting the claim {'holds' if holds else 'fails'}. "
                 f"Without padding, one channel in and out ({special.out_size}x{special.out_size} output), "
                 f"the same kernel gives a matrix that is {tri0['triangularity']}: the special case where "
                 f"the claim holds.")
    else:
        text += (" No padding is the special case: " + ("here the claim holds." if holds else
                 "even so the claim fails for these channels.") +
                 f" The paper's own setting is zero padding (padding {PAPER_PADDING} by default here).")
    return ("ok" if holds else "warn"), text


@pure_cache
def conv_parts(spec: ConvSpec) -> dict:
    """What a conv spec shows, without timing: weight, image, matrix, native F.conv2d and matrix outputs,
    facts and the claim. Pure in ``spec``, so cached (engine.runtime.cache)."""
    import torch
    import torch.nn.functional as F

    weight = low.random_conv_weight(spec.cout, spec.cin, spec.kernel, spec.kernel, seed=0)
    image = low.sample_image(spec.source, spec.size, spec.cin, spec.digit)
    pattern = low.conv2d_pattern(weight.shape, (spec.size,) * 2, spec.stride, spec.padding, spec.dilation)
    m = low.conv2d_as_sparse(weight, (spec.size,) * 2, spec.stride, spec.padding, spec.dilation)
    native = F.conv2d(torch.as_tensor(image)[None], torch.as_tensor(weight), stride=spec.stride,
                      padding=spec.padding, dilation=spec.dilation)[0].numpy()
    matrix_out = (m @ image.reshape(-1)).reshape(native.shape)
    facts = low.matrix_facts(m, "convolution")
    return _parts(m, facts, float(np.abs(matrix_out - native).max()), weight=weight, image=image,
                  native=native, matrix_out=matrix_out, pattern=pattern, claim=conv_claim(spec, facts))


def conv_view(spec: ConvSpec) -> dict:
    """``conv_parts`` and a small CPU timing of F.conv2d against the CSR matrix on a batch."""
    import torch
    import torch.nn.functional as F

    parts = conv_parts(spec.check_size())
    xb = torch.as_tensor(np.repeat(parts["image"][None], TIMING_BATCH, axis=0), dtype=torch.float32)
    wt = torch.as_tensor(parts["weight"], dtype=torch.float32)
    mt = low.torch_csr(parts["matrix"])
    conv = dict(stride=spec.stride, padding=spec.padding, dilation=spec.dilation)
    times = low.time_callables({
        "native F.conv2d": lambda: F.conv2d(xb, wt, **conv),
        "CSR matrix @ X": lambda: (mt @ xb.reshape(TIMING_BATCH, -1).T).T})
    return _with_times(parts, times, {"batch": TIMING_BATCH})


def conv_row_view(spec: ConvSpec, row: int) -> dict:
    """The receptive field of one output row and native / matrix outputs of its channel."""
    parts = conv_parts(spec.check_size())
    pattern = parts["pattern"]
    c_out, h_out, w_out = pattern.out_chw
    row = min(max(int(row or 0), 0), parts["matrix"].shape[0] - 1)
    channel, rest = divmod(row, h_out * w_out)
    return {"row": row, "channel": channel, "oy": rest // w_out, "ox": rest % w_out, "image": parts["image"],
            "field": low.receptive_field(pattern, row, pattern.in_chw), "native": parts["native"][channel],
            "matrix_out": parts["matrix_out"][channel]}


def conv_row_from_click(spec: ConvSpec, current_row: int, x: int, y: int) -> int:
    """The matrix row of output pixel (y, x) in the output channel that ``current_row`` shows."""
    n_out = spec.out_size
    channel = int(current_row or 0) // max(n_out * n_out, 1)
    return int(channel * n_out * n_out + int(y) * n_out + int(x))


# ------------------------------------------------------------------ pooling


def _pool_matrix(spec: PoolSpec, image: np.ndarray) -> sp.csr_matrix:
    if spec.mode == "max":
        return low.maxpool2d_selection(image, spec.kernel, spec.stride)
    return low.avgpool2d_as_sparse(spec.channels, (spec.size, spec.size), spec.kernel, spec.stride)


@pure_cache
def pool_parts(spec: PoolSpec) -> dict:
    """Pooling as a matrix beside F.avg_pool2d / F.max_pool2d; for max pooling also the selection
    reused on the next digit. Pure in ``spec``, so cached."""
    import torch
    import torch.nn.functional as F

    k, s = spec.kernel, spec.stride
    image = low.sample_image("digit", spec.size, spec.channels, spec.digit)
    m = _pool_matrix(spec, image)
    pool_fn = F.max_pool2d if spec.mode == "max" else F.avg_pool2d
    native = pool_fn(torch.as_tensor(image)[None], k, s)[0].numpy()
    out = (m @ image.reshape(-1)).reshape(native.shape)
    more = {"image": image, "native": native, "matrix_out": out, "fn": pool_fn.__name__}
    facts = low.matrix_facts(m, f"{spec.mode} pooling")
    if spec.mode == "max":
        other_digit = (spec.digit + 1) % (LIMITS["pool"]["digit"][1] + 1)
        other = low.sample_image("digit", spec.size, spec.channels, other_digit)
        more["reused"] = (m @ other.reshape(-1)).reshape(native.shape)
        more["truth"] = F.max_pool2d(torch.as_tensor(other)[None], k, s)[0].numpy()
        more["reuse_error"] = float(np.abs(more["reused"] - more["truth"]).max())
        more["other_digit"] = other_digit
        more["claim"] = ("warn", "Max pooling is not linear: its matrix is a 0/1 selection that depends on the "
                                 "input. It reproduces max pooling for this image only; the right plot reuses it "
                                 "on the next digit.")
    else:
        more["field"] = low.receptive_field(m, 0, (spec.channels, spec.size, spec.size))
        more["claim"] = ("ok", f"Average pooling is linear: one fixed block-diagonal matrix, each row holding "
                               f"{k * k} entries of 1/{k * k}. It is {facts['triangularity']}.")
    return _parts(m, facts, float(np.abs(out - native).max()), **more)


def pool_view(spec: PoolSpec) -> dict:
    """``pool_parts`` and a small CPU timing of the native pooling against the CSR matrix."""
    import torch
    import torch.nn.functional as F

    parts = pool_parts(spec.check_size())
    xt = torch.as_tensor(parts["image"], dtype=torch.float32)[None]
    mt = low.torch_csr(parts["matrix"])
    pool_fn = getattr(F, parts["fn"])
    times = low.time_callables({f"native F.{parts['fn']}": lambda: pool_fn(xt, spec.kernel, spec.stride),
                                "CSR matrix @ x": lambda: mt @ xt.reshape(-1, 1)})
    return _with_times(parts, times)


# ------------------------------------------------------------------ RNN


@pure_cache
def rnn_parts(spec: RnnSpec) -> dict:
    """L (block lower-triangular) beside the loop, the tanh gap and the claim. Pure in ``spec``, so cached."""
    w_ih, w_hh = rnn_weights(spec.hidden, spec.d, spec.radius)
    x = spec.scale * np.random.default_rng(1).standard_normal((spec.t_len, spec.d))
    lmat = low.rnn_as_block_lower_triangular(w_ih, w_hh, spec.t_len)
    loop = low.rnn_reference(w_ih, w_hh, x)
    mat = (lmat @ x.reshape(-1)).reshape(spec.t_len, spec.hidden)
    facts = low.matrix_facts(lmat, "RNN (unrolled)", block=(spec.hidden, spec.d))
    block = "block lower-triangular" if facts["block_lower_triangular"] else "not block lower-triangular"
    claim = ("warn" if facts["triangularity"] != "lower-triangular" else "ok",
             f"The paper calls this matrix strictly lower-triangular (block-banded). It is {block} in "
             f"{spec.hidden}x{spec.d} blocks (the diagonal blocks hold W_ih, so not strictly), elementwise "
             f"{facts['triangularity']}, and dense below the block diagonal: block (t, s) is W_hh^(t-s) W_ih, "
             f"so it is not banded.")
    return _parts(lmat, facts, float(np.abs(loop - mat).max()), loop=loop, matrix_out=mat, x=x, w_ih=w_ih,
                  w_hh=w_hh, gap=low.rnn_tanh_gap(w_ih, w_hh, x), claim=claim)


def rnn_view(spec: RnnSpec) -> dict:
    """``rnn_parts`` and a small CPU timing of the step loop against L @ x."""
    import torch

    parts = rnn_parts(spec.check_size())
    xs32 = torch.as_tensor(parts["x"], dtype=torch.float32)
    wi32, wh32 = (torch.as_tensor(parts[k], dtype=torch.float32) for k in ("w_ih", "w_hh"))
    lt = low.torch_csr(parts["matrix"])

    def native():
        h, states = torch.zeros(spec.hidden), []
        for xt in xs32:
            h = wi32 @ xt + wh32 @ h
            states.append(h)
        return torch.stack(states)

    times = low.time_callables({"native loop over steps": native, "CSR L @ x": lambda: lt @ xs32.reshape(-1, 1)})
    return _with_times(parts, times)


# ------------------------------------------------------------------ attention


@pure_cache
def attn_parts(spec: AttnSpec) -> dict:
    """The attention tensor, its contraction beside the layer, the softmax gap and the token support.
    Pure in ``spec``, so cached."""
    wq, wk, wv = attn_weights(spec.d, spec.d_v)
    x = np.random.default_rng(2).standard_normal((spec.t_len, spec.d))
    scale = 1.0 / math.sqrt(spec.d)
    tensor = low.linear_attention_as_tensor(wq, wk, wv, spec.t_len, causal=spec.causal, scale=scale)
    flat = x.reshape(-1)
    native = low.linear_attention_reference(wq, wk, wv, x, causal=spec.causal, scale=scale)
    via_tensor = tensor.contract(flat).reshape(spec.t_len, spec.d_v)
    scores_t = low.attention_scores_as_tensor(wq, wk, spec.t_len)
    score_diff = float(np.abs(scores_t.contract(flat) - ((x @ wq) @ (x @ wk).T).reshape(-1)).max())
    gap = low.attention_softmax_gap(wq, wk, wv, x, causal=spec.causal)
    mat = tensor.as_matrix()
    facts = low.matrix_facts(mat, "attention tensor as matrix")
    extra = [("tensor shape", str(tensor.shape)), ("tensor density", f"{100 * tensor.density:.3g} %"),
             ("scores tensor shape", str(scores_t.shape)), ("scores tensor nnz", f"{scores_t.nnz:,} entries")]
    claim = ("info", f"Without softmax the layer is a cubic form in x: {tensor.nnz:,} of "
                     f"{float(np.prod(tensor.shape)):.3g} tensor entries can be nonzero (density "
                     f"{tensor.density:.2g}); index i lies in the output's token, j and k in one shared token. "
                     f"With softmax (the real layer) the same tensor is off by a relative error of "
                     f"{gap['rel_error']:.3g}: the paper's stated limitation, measured.")
    return _parts(mat, facts, float(np.abs(native - via_tensor).max()), extra_facts=extra, tensor_nnz=tensor.nnz,
                  native=native, matrix_out=via_tensor, score_diff=score_diff, gap=gap, claim=claim, x=x,
                  weights=(wq, wk, wv), support=low.token_support(tensor, spec.t_len)[spec.token, spec.token])


def attn_view(spec: AttnSpec) -> dict:
    """``attn_parts`` and a small CPU timing of native linear attention against the CSR tensor."""
    import torch

    parts = attn_parts(spec.check_size())
    x = parts["x"]
    xt = torch.as_tensor(x, dtype=torch.float32)
    tq, tk, tv = (torch.as_tensor(w, dtype=torch.float32) for w in parts["weights"])
    tm = low.torch_csr(parts["matrix"])
    flat = torch.as_tensor(x.reshape(-1), dtype=torch.float32)
    lifted = torch.einsum("i,j,k->ijk", flat, flat, flat).reshape(-1, 1)
    times = low.time_callables({"native (XWq)(XWk)^T(XWv)": lambda: ((xt @ tq) @ (xt @ tk).T) @ (xt @ tv),
                                "CSR tensor @ (x⊗x⊗x)": lambda: tm @ lifted})
    return _with_times(parts, times, {"nnz": parts["tensor_nnz"]})


PARTS = {ConvSpec: conv_parts, PoolSpec: pool_parts, RnnSpec: rnn_parts, AttnSpec: attn_parts}
