"""/isomorphism: convolution, pooling, a linear RNN and linear attention as sparse matrices.

Thin page: widgets -> one spec of engine.layers.explore (checked once, limits from the
engine) -> ``parts_view(spec)`` builds the matrix, runs the native torch layer and tabulates
(pure: cached, and the panel's callback is declared pure) -> components.figures_lowering
draws. The small timing of both paths is a measurement, so each tab times in a callback of
its own (``time_conv`` ...: ``*_view(spec)``, never cached) that fills the timing table and
the stats. Every matrix is rebuilt from the widget values in the callback that needs it, or
read from the lab's pure cache (nothing else is held in the server between requests).
"""
from __future__ import annotations


import dash
import pandas as pd
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from components import figures_lowering as figs
from components.chain_controls import control_id
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import controls_row, error_message, labelled, message, page_header, section, stat
from components.pure_callback import PURE_LAYOUT, pure_callback, pure_reference_callback
from components.tables import csv_download, data_table, register_csv_download, table_columns
from engine.bench.reference import newest
from engine.layers import explore as ex
from engine.layers import lowering as low
from engine.validate import check_float, check_int

dash.register_page(__name__, path="/isomorphism", name="Isomorphism", order=3,
                   description="Convolution, pooling, a linear RNN and attention built as sparse "
                               "matrices and checked against the native torch layers.",
                   pure_layout=PURE_LAYOUT)

P = "iso"
SEED = "Unified Sparse-Matrix Representations for Diverse Neural Architectures (arXiv 2506.01966)"
SWEEP = job_ids(f"{P}-sweep")
FACT_COLUMNS = [{"name": c, "id": c} for c in ("fact", "value")]


def wid(tab: str, field: str) -> str:
    """The id of a tab's widget for one field of its engine spec (``iso-conv-padding``)."""
    return control_id(f"{P}-{tab}", field)


def _slider(tab: str, field: str, value: int, marks: list | None = None):
    """An integer slider whose range is the engine's limit for this field; value always shown."""
    lo, hi = ex.LIMITS[tab][field]
    marks = sorted({lo, hi, *(marks or [])})
    return dcc.Slider(id=wid(tab, field), min=lo, max=hi, step=1, value=value,
                      marks={m: str(m) for m in marks}, tooltip={"placement": "bottom", "always_visible": True},
                      updatemode="mouseup")


def _float_slider(tab: str, field: str, value: float, step: float = 0.1):
    lo, hi = ex.FLOAT_LIMITS[field]
    return dcc.Slider(id=wid(tab, field), min=lo, max=hi, step=step, value=value,
                      marks={lo: f"{lo:g}", 1: "1", hi: f"{hi:g}"},
                      tooltip={"placement": "bottom", "always_visible": True}, updatemode="mouseup")


def _digit_input(tab: str):
    lo, hi = ex.LIMITS[tab]["digit"]
    return dcc.Input(id=wid(tab, "digit"), type="number", min=lo, max=hi, step=1, value=0, debounce=True)


def _controls(*rows) -> html.Div:
    """The tab's widget rows, spaced for slider values that are always shown."""
    return html.Div(list(rows), className="iso-controls")


def _matrix_block(tab: str, side_title: str) -> html.Div:
    """Spy plot, a side figure, native vs matrix outputs, stats, facts, downloads."""
    prefix = f"{P}-{tab}"
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
                      csv_download(f"{prefix}-timing-csv", "Timing CSV"),
                      html.P("The CSV adds the device, dtype, nonzeros and batch.", className="section-note")]),
        ], className="two-col"),
    ])


def _conv_tab() -> dcc.Tab:
    return dcc.Tab(label="Convolution", value="conv", id="iso-tab-conv", children=[_controls(
        controls_row(
            labelled("Input image", dcc.Dropdown(id=wid("conv", "source"), clearable=False, value="digit",
                                                 options=[{"label": "handwritten digit (scikit-learn)",
                                                           "value": "digit"},
                                                          {"label": "random pixels", "value": "random"}])),
            labelled("Digit index", _digit_input("conv")),
            labelled("Image size (pixels)", _slider("conv", "size", 16, [16, 32, 48])),
            labelled("Input channels", _slider("conv", "cin", 1, [4, 8])),
            labelled("Output channels", _slider("conv", "cout", 1, [4, 8])),
        ),
        controls_row(
            labelled("Kernel (k x k)", _slider("conv", "kernel", 3, [3, 5])),
            labelled("Stride", _slider("conv", "stride", 1, [2, 3])),
            labelled("Zero padding (pixels)", _slider("conv", "padding", ex.PAPER_PADDING, [1, 2]),
                     help="the paper assumes zero padding (1 by default); 0 is the special case"),
            labelled("Dilation", _slider("conv", "dilation", 1, [2])),
            labelled("Output row", dcc.Input(id=wid("conv", "row"), type="number", min=0, step=1, value=0,
                                             debounce=True),
                     help="or click the spy plot or the output image"),
        )),
        _matrix_block("conv", "click a row of the spy plot"),
    ])


def _pool_tab() -> dcc.Tab:
    return dcc.Tab(label="Pooling", value="pool", id="iso-tab-pool", children=[_controls(
        controls_row(
            labelled("Pooling", dcc.RadioItems(id=wid("pool", "mode"), value="avg", inline=True,
                                               options=[{"label": " average ", "value": "avg"},
                                                        {"label": " max", "value": "max"}])),
            labelled("Image size (pixels)", _slider("pool", "size", 16, [16, 32])),
            labelled("Channels", _slider("pool", "channels", 1, [4])),
            labelled("Window (k x k)", _slider("pool", "kernel", 2, [2, 4])),
            labelled("Stride", _slider("pool", "stride", 2, [2, 4])),
            labelled("Digit index", _digit_input("pool")),
        )),
        _matrix_block("pool", "max pooling: selection reused on another digit"),
    ])


def _rnn_tab() -> dcc.Tab:
    return dcc.Tab(label="RNN", value="rnn", id="iso-tab-rnn", children=[_controls(
        controls_row(
            labelled("Sequence length T (steps)", _slider("rnn", "t_len", 12, [16, 32])),
            labelled("Hidden size h", _slider("rnn", "hidden", 4, [4, 8])),
            labelled("Input size d", _slider("rnn", "d", 2, [4])),
            labelled("Spectral radius of W_hh", _float_slider("rnn", "radius", 0.9)),
            labelled("Input scale", _float_slider("rnn", "scale", 1.0),
                     help="larger inputs push tanh out of its linear range"),
        )),
        _matrix_block("rnn", "tanh gap per step"),
    ])


def _attn_tab() -> dcc.Tab:
    return dcc.Tab(label="Attention", value="attn", id="iso-tab-attn", children=[_controls(
        controls_row(
            labelled("Sequence length T (tokens)", _slider("attn", "t_len", 4, [4])),
            labelled("Model size d", _slider("attn", "d", 3, [3])),
            labelled("Value size d_v", _slider("attn", "d_v", 2, [3])),
            labelled("Output token", dcc.Slider(id=wid("attn", "token"), min=0, max=3, step=1, value=0,
                                                marks={0: "0", 3: "3"}, updatemode="mouseup",
                                                tooltip={"placement": "bottom", "always_visible": True})),
            labelled("Mask", dcc.Checklist(id=wid("attn", "causal"), value=[],
                                           options=[{"label": " causal (s <= t)", "value": "causal"}])),
        )),
        _matrix_block("attn", "which token pairs can be nonzero"),
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
            labelled("Runs (at least)", dcc.Input(id="iso-sweep-repeats", type="number", min=3, max=50, step=1,
                                                 value=5)),
            labelled("Time budget per side (s)", dcc.Dropdown(id="iso-sweep-budget", value=low.SWEEP_BUDGET_S,
                                                              clearable=False, options=[0.5, 1.0, 2.0, 5.0]),
                     help="runs go on until IQR/median <= 0.1 or this is spent"),
        ),
        job_panel(f"{P}-sweep", "Run sweep",
                  note="3x3 kernel, padding 1, float32. Runs on the GPU when the job host has one; "
                       "each finished row is stored (see Runs)."),
        controls_row(labelled("Reference", dcc.Checklist(
            id="iso-ref-show", value=["ref"],
            options=[{"label": " show the committed GPU reference CSV (benchmarks/results)", "value": "ref"}]))),
        html.Div(id="iso-ref-note"),
        dcc.Graph(id="iso-sweep-plot", figure=figs.empty_figure("no rows yet")),
        html.Div(id="iso-sweep-summary"),
        note="Ratios above 1 mean the matrix is slower. The committed reference is this lab's own run on "
             "an H100 (benchmarks/results/isomorphism).",
    )


def layout(**_kwargs):
    return html.Div([
        page_header(
            "Isomorphism: layers as sparse matrices",
            "The paper claims a convolution is a banded, upper-triangular sparse matrix, a linear RNN "
            "a block lower-triangular matrix, and single-head attention a third-order tensor. Each tab "
            "builds the construction for the settings you choose, checks it against the native torch "
            "layer, and states what is true about the matrix. The convolution starts in the paper's own "
            "setting, zero padding.",
            seed=SEED),
        dcc.Tabs(id="iso-tabs", value="conv", children=[_conv_tab(), _pool_tab(), _rnn_tab(), _attn_tab()]),
        _sweep_section(),
    ])


# ------------------------------------------------------------------ callbacks (one spec each)

STATES = {tab: [Input(wid(tab, f), "value") for f in cls.__dataclass_fields__] for tab, cls in ex.SPECS.items()}
CONV_STATES, POOL_STATES, RNN_STATES, ATTN_STATES = (STATES[t] for t in ("conv", "pool", "rnn", "attn"))


def _outputs(tab: str, *props: str) -> list[Output]:
    return [Output(f"{P}-{tab}-{name}", prop) for name, prop in
            (p.split(".") for p in props)]


PANEL_OUTPUTS = ("spy.figure", "side.figure", "out.figure", "facts.data", "facts.columns", "msg.children")
TIMING_OUTPUTS = ("timing.data", "timing.columns", "stats.children")


def _refused(exc: ValueError, n_figures: int = 3) -> tuple:
    e = figs.empty_figure(str(exc))
    return (e,) * n_figures + ([], [], error_message(exc))


def _stats(view: dict, extra: list | None = None) -> list:
    """max |difference|, both medians and their ratio; a noisy timing (and a ratio resting
    on one) is shown small and grey as "noisy: not a finding", never as a headline."""
    (n0, t0), (n1, t1) = view["times"].items()
    return [stat("max |native - matrix|", f"{view['diff']:.2e}"),
            stat(f"{n0} (median)", f"{t0.median_s * 1e3:.3f} ms", noisy=t0.noisy),
            stat(f"{n1} (median)", f"{t1.median_s * 1e3:.3f} ms", noisy=t1.noisy),
            stat("matrix / native time", f"{view['ratio']:.2f}x", noisy=view["noisy"])] + list(extra or [])


TIMING_SHOWN = ["path", "median_ms", "iqr_ms", "runs", "noisy", "method"]  # the CSV adds device, dtype, nnz, batch


def _timing_table(view: dict) -> tuple:
    timing = pd.DataFrame(view["timing_rows"])
    shown = [c for c in TIMING_SHOWN if c in timing.columns]
    return timing.to_dict("records"), table_columns(timing, only=shown)


def _panel(view: dict, spy, side, out) -> tuple:
    kind, text = view["claim"]
    return (spy, side, out, view["facts_rows"], FACT_COLUMNS, message(text, kind))


@pure_callback(*_outputs("conv", "spy.figure", "facts.data", "facts.columns", "msg.children"), *CONV_STATES)
def update_conv(*values):
    """Matrix, spy plot, facts, equality and the paper's claim for these settings (the timing
    beside them comes from ``time_conv``)."""
    try:
        view = ex.parts_view(ex.spec_from_widgets("conv", values))
    except ValueError as exc:
        return (figs.empty_figure(str(exc)), [], [], error_message(exc))
    kind, text = view["claim"]
    return (figs.matrix_spy(view, "Convolution matrix"), view["facts_rows"], FACT_COLUMNS, message(text, kind))


@pure_callback(Output(wid("conv", "row"), "value"), Input(f"{P}-conv-spy", "clickData"),
          Input(f"{P}-conv-out", "clickData"), State(wid("conv", "row"), "value"), *[
              State(s.component_id, "value") for s in CONV_STATES], prevent_initial_call=True)
def pick_conv_row(spy_click, out_click, row, *values):
    """A click on the spy plot picks its row; a click on an output pixel picks that pixel's
    row in the output channel on show."""
    if ctx.triggered_id == f"{P}-conv-spy" and spy_click:
        return int(spy_click["points"][0]["y"])
    if ctx.triggered_id == f"{P}-conv-out" and out_click:
        pt = out_click["points"][0]
        try:
            return ex.conv_row_from_click(ex.spec_from_widgets("conv", values), row, pt["x"], pt["y"])
        except ValueError:
            return no_update
    return no_update


@pure_callback(Output(f"{P}-conv-side", "figure"), Output(f"{P}-conv-out", "figure"),
          Input(wid("conv", "row"), "value"), *CONV_STATES)
def update_conv_row(row, *values):
    """Receptive field of the chosen output row, and native vs matrix output of its channel."""
    try:
        v = ex.conv_row_view(ex.spec_from_widgets("conv", values), row)
    except ValueError as exc:
        return figs.empty_figure(str(exc)), figs.empty_figure(str(exc))
    title = (f"Row {v['row']}: output channel {v['channel']}, y {v['oy']}, x {v['ox']} reads "
             f"{int((v['field'] > 0).sum())} pixels")
    return (figs.field_figure(v["image"][0], v["field"], title),
            figs.outputs_figure(v["native"], v["matrix_out"], title_left=f"native F.conv2d, channel {v['channel']}",
                                title_right=f"matrix @ flattened image, channel {v['channel']}"))


def _matrix_panel(kind: str, values, draw):
    """The spec the widgets ask for, what it shows (``ex.parts_view``: pure, cached) and the
    panel ``draw(spec, view)`` makes of them; a refused spec says why in every output."""
    try:
        spec = ex.spec_from_widgets(kind, values)
        view = ex.parts_view(spec)
    except ValueError as exc:
        return _refused(exc)
    return draw(spec, view)


@pure_callback(*_outputs("pool", *PANEL_OUTPUTS), *POOL_STATES)
def update_pool(*values):
    return _matrix_panel("pool", values, _pool_panel)


def _pool_panel(spec, view):
    spy = figs.matrix_spy(view, f"{'Average' if spec.mode == 'avg' else 'Max'} pooling matrix")
    outs = figs.outputs_figure(view["native"][0], view["matrix_out"][0], title_left=f"native F.{view['fn']}, "
                               "channel 0", title_right="matrix @ flattened image, channel 0")
    if spec.mode == "max":
        side = figs.pool_reuse_figure(view, spec.digit)
    else:
        side = figs.field_figure(view["image"][0], view["field"], "Pixels averaged by output row 0")
    return _panel(view, spy, side, outs)


def _pool_stats(spec, view) -> list:
    return [stat("selection reused on another digit: max |error|", f"{view['reuse_error']:.3f}")] \
        if spec.mode == "max" else []


@pure_callback(*_outputs("rnn", *PANEL_OUTPUTS), *RNN_STATES)
def update_rnn(*values):
    return _matrix_panel("rnn", values, _rnn_panel)


def _rnn_panel(_spec, view):
    return _panel(view, figs.matrix_spy(view, "RNN matrix L", row_label="hidden row (t, unit)",
                                        col_label="input column (s, feature)"),
                  figs.tanh_gap_figure(view["gap"]), figs.outputs_figure(
                      view["loop"].T, view["matrix_out"].T, "step-by-step linear recurrence", "L @ x (one matrix)",
                      x_title="time step t (index)", y_title="hidden unit (index)"))


def _rnn_stats(_spec, view) -> list:
    return [stat("tanh RNN vs tanh(L x): relative error", f"{view['gap']['rel_error_tanh_once']:.3g}")]


@pure_callback(*_outputs("attn", *PANEL_OUTPUTS), *ATTN_STATES)
def update_attn(*values):
    return _matrix_panel("attn", values, _attn_panel)


def _attn_panel(spec, view):
    t, n = spec.t_len, spec.t_len * spec.d
    spy = figs.matrix_spy(view, f"Tensor ({t * spec.d_v}, {n}, {n}, {n}) as a matrix",
                          row_label="output (t, o)", col_label="lifted input (i, j, k)")
    side = figs.support_figure(view["support"], f"Output token {spec.token}: nonzeros by tokens of (j, k); "
                                                f"i is token {spec.token}")
    outs = figs.outputs_figure(view["native"], view["matrix_out"], "linear attention (X Wq)(X Wk)^T (X Wv)",
                               "tensor contracted with x, x, x", x_title="value dimension (index)",
                               y_title="token (index)")
    return _panel(view, spy, side, outs)


def _attn_stats(_spec, view) -> list:
    return [stat("scores as bilinear form: max |diff|", f"{view['score_diff']:.2e}"),
            stat("with softmax: relative error", f"{view['gap']['rel_error']:.3g}")]


# Each tab's timing is a measurement: in a callback of its own (never cached), beside the
# pure panel, so the panel is answered (or read from the response cache) at once.
TIMED = {"conv": (ex.conv_view, None), "pool": (ex.pool_view, _pool_stats), "rnn": (ex.rnn_view, _rnn_stats),
         "attn": (ex.attn_view, _attn_stats)}


def _register_timing(tab: str):
    view_of, more_stats = TIMED[tab]

    @callback(*_outputs(tab, *TIMING_OUTPUTS), *STATES[tab])
    def time_tab(*values):
        """A small CPU timing of the native layer and the matrix for these settings, the
        timing table and the stats beside it (max |difference|, medians, their ratio)."""
        try:
            spec = ex.spec_from_widgets(tab, values)
            view = view_of(spec)
        except ValueError:
            return [], [], []  # the panel says why
        return (*_timing_table(view), _stats(view, more_stats(spec, view) if more_stats else None))

    return time_tab


time_conv, time_pool, time_rnn, time_attn = (_register_timing(t) for t in ("conv", "pool", "rnn", "attn"))


@pure_callback(Output(wid("attn", "token"), "max"), Output(wid("attn", "token"), "marks"),
          Input(wid("attn", "t_len"), "value"))
def attn_token_range(t_len):
    t = max(int(t_len or 1), 1)
    return t - 1, {0: "0", t - 1: str(t - 1)}


# ------------------------------------------------------------------ downloads


def _register_downloads(tab: str, states: list) -> None:
    prefix = f"{P}-{tab}"
    register_csv_download(f"{prefix}-facts-csv", (f"{prefix}-facts", "data"), f"{prefix}-facts.csv")
    register_csv_download(f"{prefix}-timing-csv", (f"{prefix}-timing", "data"), f"{prefix}-timing.csv")

    @callback(Output(f"{prefix}-mtx", "data"), Output(f"{prefix}-msg", "children", allow_duplicate=True),
              Input(f"{prefix}-mtx-button", "n_clicks"),
              *[State(s.component_id, s.component_property) for s in states], prevent_initial_call=True)
    def _mtx(_clicks, *values):
        """The matrix as Matrix Market text; its size is checked from the spec before it is built."""
        try:
            text = ex.mtx_text(ex.spec_from_widgets(tab, values), tab)
        except ValueError as exc:
            return no_update, error_message(exc)
        return dcc.send_string(text, f"{prefix}.mtx"), no_update


for _tab, _states in STATES.items():
    _register_downloads(_tab, _states)


# ------------------------------------------------------------------ timing sweep

def plan_sweep(channels, images, batches, repeats, budget=low.SWEEP_BUDGET_S) -> JobPlan:
    """The background sweep: native conv vs CSR matrix for every chosen size."""
    chans = sorted(int(c) for c in (channels or []))
    imgs = sorted(int(i) for i in (images or []))
    bats = sorted(int(b) for b in (batches or []))
    if not chans or not imgs or not bats:
        raise ValueError("sweep: expected at least one channel count, image size and batch, got none")
    reps = check_int("runs", repeats, 3, 50)
    budget_s = check_float("time budget", budget, 0.1, 10.0)
    return JobPlan(rows=low.conv_timing_sweep(chans, imgs, bats, device="auto", repeats=reps, budget_s=budget_s),
                   total=low.sweep_size(chans, imgs, bats),
                   params={"channels": chans, "images": imgs, "batches": bats, "repeats": reps, "budget_s": budget_s},
                   meta={"page": "isomorphism"})


register_job(f"{P}-sweep", [State("iso-sweep-channels", "value"), State("iso-sweep-images", "value"),
                            State("iso-sweep-batches", "value"), State("iso-sweep-repeats", "value"),
                            State("iso-sweep-budget", "value")],
             plan_sweep, kind="isomorphism-timing", filename="isomorphism-timing.csv")


@pure_reference_callback(Output("iso-sweep-plot", "figure"), Output("iso-ref-note", "children"),
          Output("iso-sweep-summary", "children"), Input(SWEEP.rows, "data"), Input("iso-ref-show", "value"))
def draw_sweep(rows, show_ref):
    """This run's rows (and the reference's) drawn; sentences only from rows that are not noisy."""
    ref = newest("isomorphism") if "ref" in (show_ref or []) else None
    side = low.reference_beside(rows or [], ref) if ref is not None else {"local": low.run_label(rows or [])}
    frames = {side["local"]: pd.DataFrame(rows)} if rows else {}
    note = None
    if "ref" in (show_ref or []):
        note = message(side["text"], side["kind"]) if ref else message(
            "No committed GPU reference run yet (benchmarks/results/isomorphism/).", "info")
        if ref is not None:
            frames[side["reference"]] = ref.frame()
    summary = [message(t, k) for k, t in low.sweep_summary(rows or [])]
    return figs.timing_figure(frames), note, summary
