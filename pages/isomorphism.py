"""/isomorphism: convolution, pooling, a linear RNN and linear attention as sparse matrices.

Thin page: widgets -> engine.layers.lowering -> components.figures_lowering. Every matrix is
rebuilt from the widget values in the callback that needs it (nothing is held in the
server between requests).
"""
from __future__ import annotations

import glob
import math
import os
from pathlib import Path

import dash
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from components import figures_lowering as figs
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import controls_row, error_message, labelled, message, page_header, section, stat
from components.tables import csv_download, data_table, register_csv_download
from engine.layers import lowering as low
from engine.validate import check_int

dash.register_page(__name__, path="/isomorphism", name="Isomorphism", order=3,
                   description="Convolution, pooling, a linear RNN and attention built as sparse "
                               "matrices and checked against the native torch layers.")

P = "iso"
SEED = "Unified Sparse-Matrix Representations for Diverse Neural Architectures (arXiv 2506.01966)"
MAX_PAGE_NNZ = 4_000_000
ROOT = Path(__file__).resolve().parents[1]
REFERENCE_GLOB = "benchmarks/results/**/gpu_isomorphism*.csv"
SWEEP = job_ids(f"{P}-sweep")


def _slider(id_: str, lo: int, hi: int, value: int, step: int = 1, marks: list | None = None):
    marks = marks or [lo, hi]
    return dcc.Slider(id=id_, min=lo, max=hi, step=step, value=value,
                      marks={m: str(m) for m in marks}, tooltip={"placement": "bottom"},
                      updatemode="mouseup")


def _matrix_block(prefix: str, side_title: str) -> html.Div:
    """Spy plot, a side figure, native vs matrix outputs, stats, facts, downloads."""
    return html.Div([
        html.Div(id=f"{prefix}-msg"),
        html.Div([
            dcc.Graph(id=f"{prefix}-spy", figure=figs.empty_figure("computing..."),
                      config={"displaylogo": False}),
            html.Div([dcc.Graph(id=f"{prefix}-side", figure=figs.empty_figure(side_title),
                                config={"displaylogo": False})]),
        ], className="two-col"),
        html.Div(id=f"{prefix}-stats", className="iso-stats"),
        dcc.Graph(id=f"{prefix}-out", figure=figs.empty_figure("computing..."),
                  config={"displaylogo": False}),
        html.Div([
            html.Div([html.H3("Facts about this matrix"),
                      data_table(f"{prefix}-facts", [], page_size=6),
                      html.Div([csv_download(f"{prefix}-facts-csv", "Facts CSV"),
                                html.Button("Matrix (.mtx)", id=f"{prefix}-mtx-button",
                                            className="btn btn-secondary"),
                                dcc.Download(id=f"{prefix}-mtx")], className="job-buttons")]),
            html.Div([html.H3("Timing on this server (CPU, small run)"),
                      data_table(f"{prefix}-timing", [], page_size=6),
                      csv_download(f"{prefix}-timing-csv", "Timing CSV")]),
        ], className="two-col"),
    ])


def _conv_tab() -> dcc.Tab:
    return dcc.Tab(label="Convolution", value="conv", id="iso-tab-conv", children=[
        controls_row(
            labelled("Input image", dcc.Dropdown(id="iso-conv-source", clearable=False, value="digit",
                                                 options=[{"label": "handwritten digit (scikit-learn)",
                                                           "value": "digit"},
                                                          {"label": "random pixels", "value": "random"}])),
            labelled("Digit index", dcc.Input(id="iso-conv-digit", type="number", min=0, max=1796,
                                              step=1, value=0, debounce=True)),
            labelled("Image size (pixels)", _slider("iso-conv-size", 4, 64, 16, marks=[4, 16, 32, 48, 64])),
            labelled("Input channels", _slider("iso-conv-cin", 1, 16, 1, marks=[1, 4, 8, 16])),
            labelled("Output channels", _slider("iso-conv-cout", 1, 16, 1, marks=[1, 4, 8, 16])),
        ),
        controls_row(
            labelled("Kernel (k x k)", _slider("iso-conv-kernel", 1, 7, 3, marks=[1, 3, 5, 7])),
            labelled("Stride", _slider("iso-conv-stride", 1, 4, 1, marks=[1, 2, 3, 4])),
            labelled("Padding", _slider("iso-conv-padding", 0, 3, 0, marks=[0, 1, 2, 3])),
            labelled("Dilation", _slider("iso-conv-dilation", 1, 3, 1, marks=[1, 2, 3])),
            labelled("Output row", dcc.Input(id="iso-conv-row", type="number", min=0, step=1, value=0,
                                             debounce=True),
                     help="or click the spy plot or the output image"),
        ),
        _matrix_block("iso-conv", "click a row of the spy plot"),
    ])


def _pool_tab() -> dcc.Tab:
    return dcc.Tab(label="Pooling", value="pool", id="iso-tab-pool", children=[
        controls_row(
            labelled("Pooling", dcc.RadioItems(id="iso-pool-mode", value="avg", inline=True,
                                               options=[{"label": " average ", "value": "avg"},
                                                        {"label": " max", "value": "max"}])),
            labelled("Image size (pixels)", _slider("iso-pool-size", 2, 64, 16, marks=[2, 16, 32, 64])),
            labelled("Channels", _slider("iso-pool-channels", 1, 8, 1, marks=[1, 4, 8])),
            labelled("Window (k x k)", _slider("iso-pool-kernel", 1, 6, 2, marks=[1, 2, 4, 6])),
            labelled("Stride", _slider("iso-pool-stride", 1, 6, 2, marks=[1, 2, 4, 6])),
            labelled("Digit index", dcc.Input(id="iso-pool-digit", type="number", min=0, max=1796,
                                              step=1, value=0, debounce=True)),
        ),
        _matrix_block("iso-pool", "max pooling: selection reused on another digit"),
    ])


def _rnn_tab() -> dcc.Tab:
    return dcc.Tab(label="RNN", value="rnn", id="iso-tab-rnn", children=[
        controls_row(
            labelled("Sequence length T", _slider("iso-rnn-len", 1, 64, 12, marks=[1, 16, 32, 64])),
            labelled("Hidden size h", _slider("iso-rnn-hidden", 1, 16, 4, marks=[1, 4, 8, 16])),
            labelled("Input size d", _slider("iso-rnn-input", 1, 8, 2, marks=[1, 4, 8])),
            labelled("Spectral radius of W_hh", dcc.Slider(id="iso-rnn-radius", min=0.1, max=1.5, step=0.1,
                                                           value=0.9, marks={0.1: "0.1", 1: "1", 1.5: "1.5"},
                                                           updatemode="mouseup")),
            labelled("Input scale", dcc.Slider(id="iso-rnn-scale", min=0.1, max=3, step=0.1, value=1.0,
                                               marks={0.1: "0.1", 1: "1", 3: "3"}, updatemode="mouseup"),
                     help="larger inputs push tanh out of its linear range"),
        ),
        _matrix_block("iso-rnn", "tanh gap per step"),
    ])


def _attn_tab() -> dcc.Tab:
    return dcc.Tab(label="Attention", value="attn", id="iso-tab-attn", children=[
        controls_row(
            labelled("Sequence length T", _slider("iso-attn-len", 1, 8, 4, marks=[1, 4, 8])),
            labelled("Model size d", _slider("iso-attn-d", 1, 6, 3, marks=[1, 3, 6])),
            labelled("Value size d_v", _slider("iso-attn-dv", 1, 6, 2, marks=[1, 3, 6])),
            labelled("Output token", _slider("iso-attn-token", 0, 7, 0, marks=[0, 7])),
            labelled("Mask", dcc.Checklist(id="iso-attn-causal", value=[],
                                           options=[{"label": " causal (s <= t)", "value": "causal"}])),
        ),
        _matrix_block("iso-attn", "which token pairs can be nonzero"),
    ])


def _sweep_section() -> html.Section:
    return section(
        "Native vs matrix timing sweep (background job)",
        controls_row(
            labelled("Channels (C_in = C_out)", dcc.Checklist(id="iso-sweep-channels", value=[1, 4, 16],
                                                              options=[1, 4, 16, 64], inline=True)),
            labelled("Image size", dcc.Checklist(id="iso-sweep-images", value=[16, 32],
                                                 options=[16, 32, 64], inline=True)),
            labelled("Batch", dcc.Checklist(id="iso-sweep-batches", value=[8],
                                            options=[8, 32, 64, 128, 256], inline=True)),
            labelled("Repeats", dcc.Input(id="iso-sweep-repeats", type="number", min=1, max=50, step=1,
                                          value=3)),
        ),
        job_panel(f"{P}-sweep", "Run sweep",
                  note="3x3 kernel, padding 1, float32. Runs on the GPU when the job host has one; "
                       "each finished row is stored (see Runs)."),
        controls_row(labelled("Reference", dcc.Checklist(
            id="iso-ref-show", value=["ref"],
            options=[{"label": " show the committed GPU reference CSV (benchmarks/results)", "value": "ref"}]))),
        html.Div(id="iso-ref-note"),
        dcc.Graph(id="iso-sweep-plot", figure=figs.empty_figure("no rows yet")),
        note="The issue quotes one earlier measurement (H200): a CSR conv matrix took 0.39x, 4.5x and 58x "
             "the time of cuDNN at 1, 16 and 64 channels. Ratios above 1 mean the matrix is slower.",
    )


def layout(**_kwargs):
    return html.Div([
        page_header(
            "Isomorphism: layers as sparse matrices",
            "The paper claims a convolution is a banded, upper-triangular sparse matrix, a linear RNN "
            "a block lower-triangular matrix, and single-head attention a third-order tensor. Each tab "
            "builds the construction for the settings you choose, checks it against the native torch "
            "layer, and states what is true about the matrix.",
            seed=SEED),
        dcc.Tabs(id="iso-tabs", value="conv", children=[_conv_tab(), _pool_tab(), _rnn_tab(), _attn_tab()]),
        _sweep_section(),
    ])


# ------------------------------------------------------------------ convolution


def _conv_spec(size, cin, cout, kernel, stride, padding, dilation) -> dict:
    spec = dict(size=check_int("image size", size, 1, 256), cin=check_int("input channels", cin, 1, 64),
                cout=check_int("output channels", cout, 1, 64), kernel=check_int("kernel", kernel, 1, 15),
                stride=check_int("stride", stride, 1, 8), padding=check_int("padding", padding, 0, 8),
                dilation=check_int("dilation", dilation, 1, 8))
    pat = low.conv2d_pattern((spec["cout"], spec["cin"], spec["kernel"], spec["kernel"]),
                             (spec["size"], spec["size"]), spec["stride"], spec["padding"], spec["dilation"])
    if pat.nnz > MAX_PAGE_NNZ:
        raise ValueError(f"matrix size: expected at most {MAX_PAGE_NNZ:,} nonzeros on this page, got "
                         f"{pat.nnz:,}; use fewer channels or a smaller image (the sweep goes larger)")
    spec["pattern"] = pat
    return spec


def _conv_build(source, digit, size, cin, cout, kernel, stride, padding, dilation):
    spec = _conv_spec(size, cin, cout, kernel, stride, padding, dilation)
    weight = low.random_conv_weight(spec["cout"], spec["cin"], spec["kernel"], spec["kernel"], seed=0)
    image = low.sample_image(source or "digit", spec["size"], spec["cin"], digit if digit is not None else 0)
    m = low.conv2d_as_sparse(weight, (spec["size"],) * 2, spec["stride"], spec["padding"], spec["dilation"])
    native = F.conv2d(torch.as_tensor(image)[None], torch.as_tensor(weight), stride=spec["stride"],
                      padding=spec["padding"], dilation=spec["dilation"])[0].numpy()
    return spec, weight, image, m, native


def paper_claim_message(facts: dict, claim: str) -> html.Div:
    """What the paper says beside what is true for these settings."""
    tri = facts["triangularity"]
    text = (f"The paper calls this matrix {claim}. For these settings it is {tri}: "
            f"{facts['nnz_below_diagonal']:,} stored entries below the diagonal, "
            f"{facts['nnz_above_diagonal']:,} above; bandwidth {facts['lower_bandwidth']:,} below / "
            f"{facts['upper_bandwidth']:,} above.")
    ok = claim.startswith(tri) or (claim == "upper-triangular" and tri in ("upper-triangular", "diagonal"))
    return message(text, "ok" if ok else "warn")


def _facts_rows(facts: dict) -> list[dict]:
    keep = ("matrix", "rows", "cols", "nnz", "density", "lower_bandwidth", "upper_bandwidth",
            "nnz_below_diagonal", "nnz_on_diagonal", "nnz_above_diagonal", "triangularity",
            "block", "block_lower_triangular")
    return [{"fact": k, "value": str(facts[k]) if isinstance(facts[k], (bool, str)) else facts[k]}
            for k in keep if k in facts]


def _timing_rows(times: dict, extra: dict) -> list[dict]:
    rows = []
    for name, t in times.items():
        rows.append({"path": name, "median_ms": t["median_s"] * 1e3, "iqr_ms": t["iqr_s"] * 1e3,
                     "noisy": str(t["noisy"]), **extra})
    return rows


def _stats(diff: float, times: dict, extra: list | None = None) -> list:
    names = list(times)
    ratio = times[names[1]]["median_s"] / max(times[names[0]]["median_s"], 1e-12)
    return [stat("max |native - matrix|", f"{diff:.2e}", id=None),
            stat(f"{names[0]} (median)", f"{times[names[0]]['median_s'] * 1e3:.3f} ms"),
            stat(f"{names[1]} (median)", f"{times[names[1]]['median_s'] * 1e3:.3f} ms"),
            stat("matrix / native time", f"{ratio:.2f}x")] + list(extra or [])


CONV_STATES = [Input("iso-conv-source", "value"), Input("iso-conv-digit", "value"),
               Input("iso-conv-size", "value"), Input("iso-conv-cin", "value"),
               Input("iso-conv-cout", "value"), Input("iso-conv-kernel", "value"),
               Input("iso-conv-stride", "value"), Input("iso-conv-padding", "value"),
               Input("iso-conv-dilation", "value")]


@callback(Output("iso-conv-spy", "figure"), Output("iso-conv-facts", "data"),
          Output("iso-conv-facts", "columns"), Output("iso-conv-timing", "data"),
          Output("iso-conv-timing", "columns"), Output("iso-conv-stats", "children"),
          Output("iso-conv-msg", "children"), *CONV_STATES)
def update_conv(source, digit, size, cin, cout, kernel, stride, padding, dilation):
    """Matrix, spy plot, facts, equality and a small timing for the current settings."""
    try:
        spec, weight, image, m, native = _conv_build(source, digit, size, cin, cout, kernel, stride,
                                                     padding, dilation)
    except ValueError as exc:
        return (figs.empty_figure(str(exc)), [], [], [], [], [], error_message(exc))
    matrix_out = m @ image.reshape(-1)
    diff = float(np.abs(matrix_out - native.reshape(-1)).max())
    facts = low.matrix_facts(m, "convolution")
    grid = low.spy_grid(m, 512)
    spy = figs.spy_figure(grid, m.shape, f"Convolution matrix {m.shape[0]} x {m.shape[1]}, nnz {m.nnz:,}")
    batch = 8
    xb = torch.as_tensor(np.repeat(image[None], batch, axis=0), dtype=torch.float32)
    wt = torch.as_tensor(weight, dtype=torch.float32)
    mt = low.torch_csr(m)
    s, p, d = spec["stride"], spec["padding"], spec["dilation"]
    times = low.time_callables({
        "native F.conv2d": lambda: F.conv2d(xb, wt, stride=s, padding=p, dilation=d),
        "CSR matrix @ X": lambda: (mt @ xb.reshape(batch, -1).T).T}, repeats=5)
    timing = _timing_rows(times, {"batch": batch, "device": "cpu", "dtype": "float32", "nnz": m.nnz})
    fr, tr = _facts_rows(facts), timing
    return (spy, fr, [{"name": c, "id": c} for c in ("fact", "value")], tr,
            [{"name": c, "id": c} for c in tr[0]], _stats(diff, times),
            paper_claim_message(facts, "upper-triangular"))


@callback(Output("iso-conv-row", "value"), Input("iso-conv-spy", "clickData"),
          Input("iso-conv-out", "clickData"), State("iso-conv-row", "value"),
          State("iso-conv-size", "value"), State("iso-conv-kernel", "value"),
          State("iso-conv-stride", "value"), State("iso-conv-padding", "value"),
          State("iso-conv-dilation", "value"), prevent_initial_call=True)
def pick_conv_row(spy_click, out_click, row, size, kernel, stride, padding, dilation):
    """A click on the spy plot picks its row; a click on an output pixel picks that pixel's
    row in the output channel on show."""
    if ctx.triggered_id == "iso-conv-spy" and spy_click:
        return int(spy_click["points"][0]["y"])
    if ctx.triggered_id == "iso-conv-out" and out_click:
        pt = out_click["points"][0]
        n_out = low.conv_output_size(size, kernel, stride, padding, dilation)
        channel = int(row or 0) // max(n_out * n_out, 1)
        return int(channel * n_out * n_out + int(pt["y"]) * n_out + int(pt["x"]))
    return no_update


@callback(Output("iso-conv-side", "figure"), Output("iso-conv-out", "figure"),
          Input("iso-conv-row", "value"), *CONV_STATES)
def update_conv_row(row, source, digit, size, cin, cout, kernel, stride, padding, dilation):
    """Receptive field of the chosen output row, and native vs matrix output of its channel."""
    try:
        spec, weight, image, m, native = _conv_build(source, digit, size, cin, cout, kernel, stride,
                                                     padding, dilation)
    except ValueError as exc:
        return figs.empty_figure(str(exc)), figs.empty_figure(str(exc))
    c_out, h_out, w_out = spec["pattern"].out_chw
    row = min(max(int(row or 0), 0), m.shape[0] - 1)
    channel, rest = divmod(row, h_out * w_out)
    oy, ox = divmod(rest, w_out)
    field = low.receptive_field(spec["pattern"], row, spec["pattern"].in_chw)
    side = figs.field_figure(image[0], field,
                             f"Row {row}: output channel {channel}, y {oy}, x {ox} reads {int((field > 0).sum())} pixels")
    matrix_out = (m @ image.reshape(-1)).reshape(c_out, h_out, w_out)
    out = figs.outputs_figure(native[channel], matrix_out[channel],
                              title_left=f"native F.conv2d, channel {channel}",
                              title_right=f"matrix @ flattened image, channel {channel}")
    return side, out


# ------------------------------------------------------------------ pooling

POOL_STATES = [Input("iso-pool-mode", "value"), Input("iso-pool-size", "value"),
               Input("iso-pool-channels", "value"), Input("iso-pool-kernel", "value"),
               Input("iso-pool-stride", "value"), Input("iso-pool-digit", "value")]


def _pool_build(mode, size, channels, kernel, stride, digit):
    n = check_int("image size", size, 1, 256)
    c = check_int("channels", channels, 1, 16)
    k = check_int("window", kernel, 1, 16)
    s = check_int("stride", stride, 1, 16)
    if k > n:
        raise ValueError(f"window: expected at most the image size {n}, got {k}")
    image = low.sample_image("digit", n, c, digit or 0)
    xt = torch.as_tensor(image)[None]
    if mode == "max":
        m = low.maxpool2d_selection(image, k, s)
        native = F.max_pool2d(xt, k, s)[0].numpy()
    else:
        m = low.avgpool2d_as_sparse(c, (n, n), k, s)
        native = F.avg_pool2d(xt, k, s)[0].numpy()
    return image, m, native, (c, n, k, s)


@callback(Output("iso-pool-spy", "figure"), Output("iso-pool-side", "figure"),
          Output("iso-pool-out", "figure"), Output("iso-pool-facts", "data"),
          Output("iso-pool-facts", "columns"), Output("iso-pool-timing", "data"),
          Output("iso-pool-timing", "columns"), Output("iso-pool-stats", "children"),
          Output("iso-pool-msg", "children"), *POOL_STATES)
def update_pool(mode, size, channels, kernel, stride, digit):
    try:
        image, m, native, (c, n, k, s) = _pool_build(mode, size, channels, kernel, stride, digit)
    except ValueError as exc:
        e = figs.empty_figure(str(exc))
        return e, e, e, [], [], [], [], [], error_message(exc)
    out = (m @ image.reshape(-1)).reshape(native.shape)
    diff = float(np.abs(out - native).max())
    facts = low.matrix_facts(m, f"{mode} pooling")
    spy = figs.spy_figure(low.spy_grid(m), m.shape, f"{'Average' if mode == 'avg' else 'Max'} pooling "
                                                    f"matrix {m.shape[0]} x {m.shape[1]}")
    xt = torch.as_tensor(image, dtype=torch.float32)[None]
    mt = low.torch_csr(m)
    pool_fn = F.max_pool2d if mode == "max" else F.avg_pool2d
    times = low.time_callables({f"native F.{pool_fn.__name__}": lambda: pool_fn(xt, k, s),
                                "CSR matrix @ x": lambda: mt @ xt.reshape(-1, 1)})
    extra = []
    if mode == "max":
        other = low.sample_image("digit", n, c, (digit or 0) + 1)
        reused = m @ other.reshape(-1)
        truth = F.max_pool2d(torch.as_tensor(other)[None], k, s)[0].numpy().reshape(-1)
        err = float(np.abs(reused - truth).max())
        side = figs.outputs_figure(truth.reshape(native.shape)[0], reused.reshape(native.shape)[0],
                                   title_left=f"max pool of digit {(digit or 0) + 1}",
                                   title_right="this digit's selection matrix applied to it")
        side.update_layout(title=dict(text=f"Not linear: reusing the selection gives max |error| {err:.3f}",
                                      font_size=14), margin=dict(t=70))
        extra = [stat("selection reused on another digit: max |error|", f"{err:.3f}")]
        note = message("Max pooling is not linear: its matrix is a 0/1 selection that depends on the "
                       "input. It reproduces max pooling for this image only; the right plot reuses it on "
                       "the next digit.", "warn")
    else:
        side = figs.field_figure(image[0], low.receptive_field(m, 0, (c, n, n)),
                                 "Pixels averaged by output row 0")
        note = message(f"Average pooling is linear: one fixed block-diagonal matrix, each row holding "
                       f"{k * k} entries of 1/{k * k}. It is {facts['triangularity']}.", "ok")
    outs = figs.outputs_figure(native[0], out.reshape(native.shape)[0],
                               title_left=f"native F.{pool_fn.__name__}, channel 0",
                               title_right="matrix @ flattened image, channel 0")
    timing = _timing_rows(times, {"device": "cpu", "dtype": "float32", "nnz": m.nnz})
    return (spy, side, outs, _facts_rows(facts), [{"name": c_, "id": c_} for c_ in ("fact", "value")],
            timing, [{"name": c_, "id": c_} for c_ in timing[0]], _stats(diff, times, extra), note)


# ------------------------------------------------------------------ RNN

RNN_STATES = [Input("iso-rnn-len", "value"), Input("iso-rnn-hidden", "value"),
              Input("iso-rnn-input", "value"), Input("iso-rnn-radius", "value"),
              Input("iso-rnn-scale", "value")]


def rnn_weights(hidden: int, d: int, radius: float, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    w_ih = rng.standard_normal((hidden, d)) / math.sqrt(d)
    w_hh = rng.standard_normal((hidden, hidden))
    rho = max(np.abs(np.linalg.eigvals(w_hh)).max(), 1e-12)
    return w_ih, w_hh * (radius / rho)


@callback(Output("iso-rnn-spy", "figure"), Output("iso-rnn-side", "figure"),
          Output("iso-rnn-out", "figure"), Output("iso-rnn-facts", "data"),
          Output("iso-rnn-facts", "columns"), Output("iso-rnn-timing", "data"),
          Output("iso-rnn-timing", "columns"), Output("iso-rnn-stats", "children"),
          Output("iso-rnn-msg", "children"), *RNN_STATES)
def update_rnn(t_len, hidden, d, radius, scale):
    try:
        t_len = check_int("sequence length", t_len, 1, 256)
        hidden = check_int("hidden size", hidden, 1, 64)
        d = check_int("input size", d, 1, 64)
        w_ih, w_hh = rnn_weights(hidden, d, float(radius or 0.9))
        x = float(scale or 1.0) * np.random.default_rng(1).standard_normal((t_len, d))
        lmat = low.rnn_as_block_lower_triangular(w_ih, w_hh, t_len)
    except ValueError as exc:
        e = figs.empty_figure(str(exc))
        return e, e, e, [], [], [], [], [], error_message(exc)
    loop = low.rnn_reference(w_ih, w_hh, x)
    mat = (lmat @ x.reshape(-1)).reshape(t_len, hidden)
    diff = float(np.abs(loop - mat).max())
    gap = low.rnn_tanh_gap(w_ih, w_hh, x)
    facts = low.matrix_facts(lmat, "RNN (unrolled)", block=(hidden, d))
    spy = figs.spy_figure(low.spy_grid(lmat), lmat.shape, f"RNN matrix L {lmat.shape[0]} x {lmat.shape[1]}",
                          row_label="hidden row (t, unit)", col_label="input column (s, feature)")
    side = figs.lines_figure(gap["step"], {"tanh(L x) vs tanh RNN": gap["maxdiff_tanh_once"],
                                           "L x vs tanh RNN": gap["maxdiff_linear"]},
                             "time step t", "max |difference| over hidden units",
                             f"tanh applied once vs at every step: relative error "
                             f"{gap['rel_error_tanh_once']:.3f}")
    outs = figs.outputs_figure(loop.T, mat.T, "step-by-step linear recurrence", "L @ x (one matrix)",
                               x_title="time step t (index)", y_title="hidden unit (index)")
    xs32 = torch.as_tensor(x, dtype=torch.float32)
    wi32, wh32 = torch.as_tensor(w_ih, dtype=torch.float32), torch.as_tensor(w_hh, dtype=torch.float32)
    lt = low.torch_csr(lmat)

    def native():
        h, states = torch.zeros(hidden), []
        for xt in xs32:
            h = wi32 @ xt + wh32 @ h
            states.append(h)
        return torch.stack(states)

    times = low.time_callables({"native loop over steps": native,
                                "CSR L @ x": lambda: lt @ xs32.reshape(-1, 1)})
    timing = _timing_rows(times, {"device": "cpu", "dtype": "float32", "nnz": lmat.nnz})
    block_note = ("block lower-triangular" if facts["block_lower_triangular"] else "not block lower-triangular")
    note = message(f"The paper calls this matrix strictly lower-triangular (block-banded). It is {block_note} "
                   f"in {hidden}x{d} blocks (the diagonal blocks hold W_ih, so not strictly), elementwise "
                   f"{facts['triangularity']}, and dense below the block diagonal: block (t, s) is "
                   f"W_hh^(t-s) W_ih, so it is not banded.", "warn" if facts["triangularity"] != "lower-triangular"
                   else "ok")
    extra = [stat("tanh RNN vs tanh(L x): relative error", f"{gap['rel_error_tanh_once']:.3g}")]
    return (spy, side, outs, _facts_rows(facts), [{"name": c, "id": c} for c in ("fact", "value")],
            timing, [{"name": c, "id": c} for c in timing[0]], _stats(diff, times, extra), note)


# ------------------------------------------------------------------ attention

ATTN_STATES = [Input("iso-attn-len", "value"), Input("iso-attn-d", "value"),
               Input("iso-attn-dv", "value"), Input("iso-attn-token", "value"),
               Input("iso-attn-causal", "value")]


def attn_weights(d: int, d_v: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((d, d)) / math.sqrt(d), rng.standard_normal((d, d)) / math.sqrt(d),
            rng.standard_normal((d, d_v)) / math.sqrt(d))


@callback(Output("iso-attn-spy", "figure"), Output("iso-attn-side", "figure"),
          Output("iso-attn-out", "figure"), Output("iso-attn-facts", "data"),
          Output("iso-attn-facts", "columns"), Output("iso-attn-timing", "data"),
          Output("iso-attn-timing", "columns"), Output("iso-attn-stats", "children"),
          Output("iso-attn-msg", "children"), *ATTN_STATES)
def update_attn(t_len, d, d_v, token, causal):
    try:
        t_len = check_int("sequence length", t_len, 1, 16)
        d = check_int("model size", d, 1, 8)
        d_v = check_int("value size", d_v, 1, 8)
        token = min(check_int("output token", token, 0, 63), t_len - 1)
        is_causal = "causal" in (causal or [])
        wq, wk, wv = attn_weights(d, d_v)
        x = np.random.default_rng(2).standard_normal((t_len, d))
        scale = 1.0 / math.sqrt(d)
        tensor = low.linear_attention_as_tensor(wq, wk, wv, t_len, causal=is_causal, scale=scale)
    except ValueError as exc:
        e = figs.empty_figure(str(exc))
        return e, e, e, [], [], [], [], [], error_message(exc)
    flat = x.reshape(-1)
    native = low.linear_attention_reference(wq, wk, wv, x, causal=is_causal, scale=scale)
    via_tensor = tensor.contract(flat).reshape(t_len, d_v)
    diff = float(np.abs(native - via_tensor).max())
    scores_t = low.attention_scores_as_tensor(wq, wk, t_len)
    score_diff = float(np.abs(scores_t.contract(flat) - ((x @ wq) @ (x @ wk).T).reshape(-1)).max())
    gap = low.attention_softmax_gap(wq, wk, wv, x, causal=is_causal)
    mat = tensor.as_matrix()
    n = t_len * d
    spy = figs.spy_figure(low.spy_grid(mat), mat.shape,
                          f"Tensor ({t_len * d_v}, {n}, {n}, {n}) as a {mat.shape[0]} x {mat.shape[1]:,} matrix",
                          row_label="output (t, o)", col_label="lifted input (i, j, k)")
    support = low.token_support(tensor, t_len)[token, token]
    side = figs.support_figure(support, f"Output token {token}: nonzeros by tokens of (j, k); i is token {token}")
    outs = figs.outputs_figure(native, via_tensor, "linear attention (X Wq)(X Wk)^T (X Wv)",
                               "tensor contracted with x, x, x", x_title="value dimension (index)",
                               y_title="token (index)")
    xt = torch.as_tensor(x, dtype=torch.float32)
    tq, tk, tv = (torch.as_tensor(w, dtype=torch.float32) for w in (wq, wk, wv))
    tm = low.torch_csr(mat)
    lifted = torch.einsum("i,j,k->ijk", *(torch.as_tensor(flat, dtype=torch.float32),) * 3).reshape(-1, 1)
    times = low.time_callables({"native (XWq)(XWk)^T(XWv)": lambda: ((xt @ tq) @ (xt @ tk).T) @ (xt @ tv),
                                "CSR tensor @ (x⊗x⊗x)": lambda: tm @ lifted})
    facts = low.matrix_facts(mat, "attention tensor as matrix")
    rows = _facts_rows(facts)
    rows[1:1] = [{"fact": "tensor shape", "value": str(tensor.shape)},
                 {"fact": "tensor density", "value": tensor.density},
                 {"fact": "scores tensor shape", "value": str(scores_t.shape)},
                 {"fact": "scores tensor nnz", "value": scores_t.nnz}]
    timing = _timing_rows(times, {"device": "cpu", "dtype": "float32", "nnz": tensor.nnz})
    extra = [stat("scores as bilinear form: max |diff|", f"{score_diff:.2e}"),
             stat("with softmax: relative error", f"{gap['rel_error']:.3g}")]
    note = message(f"Without softmax the layer is a cubic form in x: {tensor.nnz:,} of "
                   f"{float(np.prod(tensor.shape)):.3g} tensor entries can be nonzero (density "
                   f"{tensor.density:.2g}); index i lies in the output's token, j and k in one shared token. "
                   f"With softmax (the real layer) the same tensor is off by a relative error of "
                   f"{gap['rel_error']:.3g}: the paper's stated limitation, measured.", "info")
    return (spy, side, outs, rows, [{"name": c, "id": c} for c in ("fact", "value")], timing,
            [{"name": c, "id": c} for c in timing[0]], _stats(diff, times, extra), note)


@callback(Output("iso-attn-token", "max"), Output("iso-attn-token", "marks"), Input("iso-attn-len", "value"))
def attn_token_range(t_len):
    t = max(int(t_len or 1), 1)
    return t - 1, {0: "0", t - 1: str(t - 1)}


# ------------------------------------------------------------------ downloads

def _matrix_for(tab: str, values: list):
    if tab == "conv":
        return _conv_build(*values)[3]
    if tab == "pool":
        return _pool_build(*values)[1]
    if tab == "rnn":
        t_len, hidden, d, radius, _scale = values
        w_ih, w_hh = rnn_weights(int(hidden), int(d), float(radius or 0.9))
        return low.rnn_as_block_lower_triangular(w_ih, w_hh, int(t_len))
    t_len, d, d_v, _tok, causal = values
    wq, wk, wv = attn_weights(int(d), int(d_v))
    return low.linear_attention_as_tensor(wq, wk, wv, int(t_len), causal="causal" in (causal or []),
                                          scale=1.0 / math.sqrt(int(d))).as_matrix()


def _register_downloads(tab: str, states: list) -> None:
    prefix = f"iso-{tab}"
    register_csv_download(f"{prefix}-facts-csv", (f"{prefix}-facts", "data"), f"{prefix}-facts.csv")
    register_csv_download(f"{prefix}-timing-csv", (f"{prefix}-timing", "data"), f"{prefix}-timing.csv")

    @callback(Output(f"{prefix}-mtx", "data"), Output(f"{prefix}-msg", "children", allow_duplicate=True),
              Input(f"{prefix}-mtx-button", "n_clicks"),
              *[State(s.component_id, s.component_property) for s in states], prevent_initial_call=True)
    def _mtx(_clicks, *values):
        try:
            m = _matrix_for(tab, list(values))
            text = low.matrix_market_text(m, comment=f"Sparsity Lab /isomorphism {tab}: {values}")
        except ValueError as exc:
            return no_update, error_message(exc)
        return dcc.send_string(text, f"{prefix}.mtx"), no_update


for _tab, _states in (("conv", CONV_STATES), ("pool", POOL_STATES), ("rnn", RNN_STATES),
                      ("attn", ATTN_STATES)):
    _register_downloads(_tab, _states)


# ------------------------------------------------------------------ timing sweep

def plan_sweep(channels, images, batches, repeats) -> JobPlan:
    """The background sweep: native conv vs CSR matrix for every chosen size."""
    chans = sorted(int(c) for c in (channels or []))
    imgs = sorted(int(i) for i in (images or []))
    bats = sorted(int(b) for b in (batches or []))
    if not chans or not imgs or not bats:
        raise ValueError("sweep: expected at least one channel count, image size and batch, got none")
    reps = check_int("repeats", repeats, 1, 50)
    return JobPlan(rows=low.conv_timing_sweep(chans, imgs, bats, device="auto", repeats=reps),
                   total=low.sweep_size(chans, imgs, bats),
                   params={"channels": chans, "images": imgs, "batches": bats, "repeats": reps},
                   meta={"page": "isomorphism"})


register_job(f"{P}-sweep", [State("iso-sweep-channels", "value"), State("iso-sweep-images", "value"),
                            State("iso-sweep-batches", "value"), State("iso-sweep-repeats", "value")],
             plan_sweep, kind="isomorphism-timing", filename="isomorphism-timing.csv")


def load_reference() -> tuple[pd.DataFrame | None, str]:
    """The newest committed GPU reference CSV, and a line saying what it is."""
    files = sorted(glob.glob(str(ROOT / REFERENCE_GLOB), recursive=True), key=os.path.getmtime)
    files = [f for f in files if os.path.basename(f) == "gpu_isomorphism.csv"]   # the rows, not summaries
    if not files:
        return None, "No committed GPU reference CSV yet (benchmarks/results/gpu_isomorphism*.csv)."
    frame = pd.read_csv(files[-1])
    device = frame["device_name"].iloc[0] if "device_name" in frame and len(frame) else "unknown device"
    rel = os.path.relpath(files[-1], ROOT)
    return frame, f"Reference: {rel} measured on {device} ({len(frame)} rows)."


@callback(Output("iso-sweep-plot", "figure"), Output("iso-ref-note", "children"),
          Input(SWEEP.rows, "data"), Input("iso-ref-show", "value"))
def draw_sweep(rows, show_ref):
    frames = {}
    if rows:
        frames["this run"] = pd.DataFrame(rows)
    note = None
    if "ref" in (show_ref or []):
        ref, text = load_reference()
        note = message(text, "info")
        if ref is not None:
            dev = ref["device_name"].iloc[0] if "device_name" in ref else "GPU"
            frames[f"reference ({dev})"] = ref
    return figs.timing_figure(frames), note
