"""/moe: routing, load balance, capacity, and the cost of conditional compute."""
from __future__ import annotations


import dash
from dash import Input, Output, State, dcc, html

from components import figures_moe as figs
from components.ids import page_ids
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import (controls_row, error_message, labelled, message, page_header,
                               section, stat)
from components.pure_callback import PURE_LAYOUT, pure_callback, pure_reference_callback
from components.tables import csv_download, data_table, register_csv_download
from engine.moe import example, params, timing, training
from engine.validate import check_budget

dash.register_page(__name__, path="/moe", name="Mixture of Experts", nav_name="MoE", order=7,
                   description="Routing, load balance, capacity and drops, and what conditional "
                               "compute costs: dense FFN vs MoE timing.",
                   pure_layout=PURE_LAYOUT)

P, TRAIN, SWEEP = "moe", "moe-train", "moe-sweep"
PARAM_FIELDS = params.CONFIG_FIELDS
ID = page_ids(P, "tokens", "experts", "k", "cf", "d", "h", "temp", "skew", "jitter", "seed", "dropless",
              "error", "stats", "heatmap", "load", "util", "expert_table", "experts_table", "experts_csv",
              "expert_rows", "stat_balance", "stat_z", "stat_capacity", "stat_dropped",
              "stat_dropped_tokens", "stat_dead", "stat_agree", "cfg_preset", "cfg_gated",
              *[f"cfg_{f}" for f in PARAM_FIELDS], "params_plot", "params_error", "params_table",
              "params_dt", "params_csv", "params_note", "params_rows")
TID = page_ids(TRAIN, "experts", "k", "alpha", "epochs", "curves", "load", "spec", "summary", "summary_list")
SID = page_ids(SWEEP, "d", "max", "ek", "dtype", "device", "summary", "summary_list", "time", "ratio",
               "reference_note")
TRAIN_JOB, SWEEP_JOB = job_ids(TRAIN), job_ids(SWEEP)
# slider -> the RoutingSpec field whose limits it shows, and its marks
SLIDERS = {"tokens": ("tokens", (8, 256, 512)), "experts": ("experts", (2, 32, 64)), "k": ("k", (1, 4, 8)),
           "cf": ("capacity_factor", (0.25, 1, 2, 4)), "d": ("d_model", (8, 256, 512)),
           "h": ("d_ff", (32, 2048, 4096)), "temp": ("temperature", (0.1, 1, 5)),
           "skew": ("skew", (0, 2.5, 5)), "jitter": ("jitter", (0, 0.25, 0.5))}
PARAM_LABELS = {"d_model": "Model width", "d_ff": "Expert FFN width", "n_layers": "Layers",
                "experts": "Experts", "k": "Top-k", "n_heads": "Heads", "n_kv_heads": "KV heads",
                "vocab": "Vocabulary"}
AGREE_LABEL = (f"batched vs per-token reference, max |diff| (first {example.AGREEMENT_TOKENS} tokens, "
               f"h <= {example.AGREEMENT_MAX_FF})")


def _slider(name: str) -> html.Div:
    """A slider whose value is always shown (a tooltip above the handle, in room kept free
    for it below the label); its range is the engine's (example.ROUTING_LIMITS)."""
    field, marks = SLIDERS[name]
    lo, hi, step = example.ROUTING_LIMITS[field]
    return html.Div(dcc.Slider(id=ID.of(name), min=lo, max=hi, step=step,
                               value=getattr(example.RoutingSpec(), field),
                               marks={m: f"{m:g}" for m in marks}, allow_direct_input=False,
                               updatemode="mouseup", tooltip={"placement": "top", "always_visible": True}),
                    className="slider-with-value", style={"paddingTop": "40px"})


def _routing_controls() -> html.Div:
    seed_lo, seed_hi, _ = example.ROUTING_LIMITS["seed"]
    return html.Div([
        controls_row(labelled("Tokens", _slider("tokens")), labelled("Experts E", _slider("experts")),
                     labelled("Top-k", _slider("k")),
                     labelled("Capacity factor", _slider("cf"), help="capacity = ceil(T / E x factor) x k")),
        controls_row(labelled("Model width d", _slider("d")),
                     labelled("FFN width h", _slider("h"), help="per expert; used for the parameter count"),
                     labelled("Temperature", _slider("temp")),
                     labelled("Skew", _slider("skew"), help="logit bias toward low-numbered experts")),
        controls_row(
            labelled("Jitter", _slider("jitter"), help="input noise U(1-j, 1+j), as in Switch"),
            labelled("Seed", dcc.Input(id=ID.seed, type="number", value=0, min=seed_lo, max=seed_hi, step=1,
                                       debounce=True)),
            labelled("Capacity", dcc.Checklist(id=ID.dropless, value=[],
                                               options=[{"label": " dropless (no capacity)",
                                                         "value": "dropless"}])),
        ),
    ])


def _params_controls() -> html.Div:
    mix = params.MIXTRAL_8X7B
    inputs = [labelled(PARAM_LABELS[f], dcc.Input(id=ID.of(f"cfg_{f}"), type="number", value=getattr(mix, f),
                                                  min=params.CONFIG_LIMITS[f][0],
                                                  max=params.CONFIG_LIMITS[f][1], step=1, debounce=True))
              for f in PARAM_FIELDS]
    return html.Div([
        controls_row(
            labelled("Preset", dcc.Dropdown(id=ID.cfg_preset, value="Mixtral 8x7B", clearable=False,
                                            options=list(params.CALCULATOR_PRESETS))),
            labelled("Expert FFN", dcc.Checklist(id=ID.cfg_gated, value=["gated"],
                                              options=[{"label": " SwiGLU (3 matrices)", "value": "gated"}])),
            *inputs[:3]),
        controls_row(*inputs[3:]),
    ])


def _number(id_: str, value, lo, hi, step=1) -> dcc.Input:
    return dcc.Input(id=id_, type="number", value=value, min=lo, max=hi, step=step)


def _train_controls() -> html.Div:
    lim = training.TRAIN_LIMITS
    return controls_row(
        labelled("Experts", _number(TID.experts, 8, *lim["experts"])),
        labelled("Top-k", _number(TID.k, 2, *lim["k"])),
        labelled("Balancing alpha", _number(TID.alpha, 0.1, *lim["alpha"], step=0.01)),
        labelled("Epochs", _number(TID.epochs, 10, *lim["epochs"])),
    )


def _sweep_controls() -> html.Div:
    return controls_row(
        labelled("Model width d", _number(SID.d, 256, *timing.SWEEP_LIMITS["d_model"]),
                 help="expert FFN width h = 4d"),
        labelled("Largest batch (tokens)", _number(SID.max, 1024, *timing.SWEEP_LIMITS["max_batch"]),
                 help="powers of two from 1 up to this"),
        labelled("Experts / top-k", dcc.Dropdown(id=SID.ek, value="8/2", clearable=False,
                                                 options=list(timing.EXPERT_CHOICES))),
        labelled("dtype", dcc.Dropdown(id=SID.dtype, value="float32", clearable=False,
                                       options=list(timing.DTYPES)),
                 help="on a GPU, the grouped GEMM may need bfloat16"),
        labelled("Device", dcc.Dropdown(id=SID.device, value="auto", clearable=False,
                                        options=list(timing.DEVICES))),
    )


def layout(**_kwargs):
    return html.Div([
        page_header(
            "Mixture of Experts",
            "Instead of making weights sparse, make their use conditional: a router sends each "
            "token to k of E expert FFNs. Move the sliders to see where tokens go, which experts "
            "overflow their capacity and drop tokens, and what the balancing loss says; train a "
            "router on digits with and without that loss; time a dense FFN against the MoE layer.",
            seed="The sparsity chapter, 10.4 'Investigation: Mixture of Experts'"),
        section("Routing", _routing_controls(), html.Div(id=ID.error),
                html.Div(id=ID.stats),
                html.Div([dcc.Graph(id=ID.heatmap), dcc.Graph(id=ID.load)], className="two-col"),
                html.Div([dcc.Graph(id=ID.util),
                          html.Div([html.Div(id=ID.expert_table),
                                    csv_download(ID.experts_csv, "Download per-expert CSV")])],
                         className="two-col"),
                note="Random tokens and a random linear gate (seeded). Assignments arrive in token "
                     "order, each token's first choice before its second; an expert past capacity "
                     "drops the rest. The balancing loss is shown with alpha = 1, so 1.0 is even."),
        section("Parameters: total vs active",
                _params_controls(),
                html.Div([dcc.Graph(id=ID.params_plot),
                          html.Div([html.Div(id=ID.params_error),
                                    html.Div(id=ID.params_table),
                                    csv_download(ID.params_csv, "Download parameters CSV"),
                                    html.P(id=ID.params_note, className="section-note")])],
                         className="two-col"),
                note="The chapter reports Mixtral 8x7B at 46.7B total and 12.9B active parameters "
                     "per token (8 experts, top-2). The calculator counts a decoder-only MoE "
                     "transformer from its shapes (attention with grouped KV heads, E experts "
                     "per layer, router, norms, untied embeddings; no biases); the Mixtral preset "
                     "uses its published shapes."),
        section("A trained router (scikit-learn digits)",
                _train_controls(),
                job_panel(TRAIN, "Train router", note="Two runs from the same start: without and "
                          "with the balancing loss. Tiny: seconds on a CPU; on the GPU when there "
                          "is one (every row names the device)."),
                dcc.Graph(id=TID.curves),
                html.Div([dcc.Graph(id=TID.load), dcc.Graph(id=TID.spec)], className="two-col"),
                html.Div(id=TID.summary)),
        section("Cost: dense FFN vs MoE over batch size",
                _sweep_controls(),
                job_panel(SWEEP, "Run timing sweep", note="Runs on the GPU when there is one, "
                          "else the CPU. Batches are powers of two from 1 token to the largest."),
                html.Div(id=SID.summary),
                html.Div([dcc.Graph(id=SID.time), dcc.Graph(id=SID.ratio)], className="two-col"),
                html.Div(id=SID.reference_note),
                note="Open markers: noisy rows (IQR / median > 0.1, or under 3 timed runs). "
                     "The chapter's memory paradox: at one token the MoE must hold all E experts "
                     "and pays routing overhead to use k of them; at large batches every expert "
                     "gets a full GEMM and the MoE costs about k dense FFNs while holding E."),
        dcc.Store(id=ID.expert_rows),
        dcc.Store(id=ID.params_rows),
    ])


# ------------------------------------------------------------------------ routing
def _routing_stats(view: example.RoutingView) -> html.Div:
    s = view.stats
    return html.Div([
        stat("balancing loss (alpha=1)", f"{s['balance_loss']:.3f}", id=ID.stat_balance),
        stat("router z-loss", f"{s['z_loss']:.3f}", id=ID.stat_z),
        stat("capacity per expert", "none" if s["capacity"] is None else str(s["capacity"]),
             id=ID.stat_capacity),
        stat("dropped assignments", f"{s['dropped']} of {s['assignments']}", id=ID.stat_dropped),
        stat("tokens with a drop", str(s["dropped_tokens"]), id=ID.stat_dropped_tokens),
        stat("dead experts", str(s["dead"]), id=ID.stat_dead),
        stat(AGREE_LABEL, " / ".join(f"{m} {v:.1e}" for m, v in view.agreement.items()), id=ID.stat_agree),
    ])


@pure_callback(
    Output(ID.heatmap, "figure"), Output(ID.load, "figure"), Output(ID.util, "figure"),
    Output(ID.stats, "children"), Output(ID.expert_table, "children"),
    Output(ID.expert_rows, "data"), Output(ID.error, "children"),
    *[Input(ID.of(n), "value") for n in ("tokens", "experts", "k", "cf", "d", "temp", "skew", "jitter",
                                         "dropless", "seed", "h")],
)
def update_routing(tokens, experts, k, cf, d, temp, skew, jitter, dropless, seed, h=256):
    try:
        view = example.routing_view(example.RoutingSpec(
            tokens=tokens, experts=experts, k=k, capacity_factor=cf, d_model=d, temperature=temp,
            skew=skew, jitter=jitter, dropless="dropless" in (dropless or []), seed=seed or 0, d_ff=h))
    except ValueError as exc:
        blank = figs.empty_figure("Fix the input above.")
        return blank, blank, blank, None, None, [], error_message(exc)
    return (*figs.routing_figures_json(view), _routing_stats(view),
            data_table(ID.experts_table, view.rows, page_size=8), view.rows, None)


register_csv_download(ID.experts_csv, (ID.expert_rows, "data"), "moe_experts.csv")


# --------------------------------------------------------------------- parameters
@pure_callback(*[Output(ID.of(f"cfg_{f}"), "value") for f in PARAM_FIELDS], Output(ID.cfg_gated, "value"),
          Input(ID.cfg_preset, "value"), prevent_initial_call=True)
def apply_preset(name):
    cfg = params.CALCULATOR_PRESETS.get(name, params.MIXTRAL_8X7B)
    return (*[getattr(cfg, f) for f in PARAM_FIELDS], ["gated"] if cfg.gated else [])


@pure_callback(
    Output(ID.params_plot, "figure"), Output(ID.params_table, "children"),
    Output(ID.params_rows, "data"), Output(ID.params_note, "children"),
    Output(ID.params_error, "children"),
    *[Input(ID.of(f"cfg_{f}"), "value") for f in PARAM_FIELDS], Input(ID.cfg_gated, "value"),
    Input(ID.d, "value"), Input(ID.h, "value"), Input(ID.experts, "value"), Input(ID.k, "value"),
)
def update_params(*values):
    n = len(PARAM_FIELDS)
    view = params.params_view(dict(zip(PARAM_FIELDS, values[:n])), "gated" in (values[n] or []),
                              tuple(values[n + 1:]))
    error = error_message(ValueError(view.error)) if view.error else None
    return (figs.params_bars(list(view.plotted)), data_table(ID.params_dt, list(view.table), page_size=6),
            list(view.rows), view.note, error)


register_csv_download(ID.params_csv, (ID.params_rows, "data"), "moe_params.csv")


# ------------------------------------------------------------------ trained router
def plan_training(experts, k, alpha, epochs) -> JobPlan:
    """Runs in the job's process: checked once (ValueError "expected ... got ..."), then the
    rows train on the GPU when there is one."""
    checked = training.check_training(experts, k, alpha, epochs)
    return JobPlan(training.train_router_rows(**checked),
                   training.train_router_plan_total(checked["epochs"], checked["experts"]),
                   params={**checked, "dataset": "digits"})


register_job(TRAIN, [State(TID.experts, "value"), State(TID.k, "value"), State(TID.alpha, "value"),
                     State(TID.epochs, "value")],
             plan_training, kind="moe-router", filename="moe_router_training.csv")


@pure_callback(Output(TID.curves, "figure"), Output(TID.load, "figure"), Output(TID.spec, "figure"),
          Output(TID.summary, "children"), Input(TRAIN_JOB.rows, "data"))
def draw_training(rows):
    rows = rows or []
    lines = figs.training_summary_lines(rows)
    text = html.Ul([html.Li(t) for t in lines], id=TID.summary_list) if lines else None
    return figs.train_curves(rows), figs.train_load(rows), figs.specialisation(rows), text


# -------------------------------------------------------------------- timing sweep
def plan_sweep(d, max_batch, ek, dtype, device) -> JobPlan:
    from engine.runtime.device import job_device

    spec = timing.SweepSpec.from_widgets(d, max_batch, ek, dtype, device)
    check_budget("timing sweep", spec.memory_bytes(job_device(spec.device).type))
    return JobPlan(timing.timing_sweep_rows(spec), spec.total, params=timing.spec_dict(spec))


register_job(SWEEP, [State(SID.d, "value"), State(SID.max, "value"), State(SID.ek, "value"),
                     State(SID.dtype, "value"), State(SID.device, "value")],
             plan_sweep, kind="moe-timing", filename="moe_timing.csv")


def _reference() -> tuple[list | None, str, html.Div]:
    """The committed GPU reference run: (rows or None, its label, the note saying so)."""
    try:
        ref = timing.load_reference_sweep()
    except (ValueError, OSError) as exc:
        return None, "reference", message(f"Reference CSV unreadable: {exc}", "warn")
    if not ref:
        return None, "reference", message("No committed GPU reference yet "
                                          "(benchmarks/results/**/moe_timing.csv).", "info")
    return ref[0], ref[1], message(f"Dashed lines: committed GPU reference ({ref[1]}).", "info")


@pure_reference_callback(Output(SID.time, "figure"), Output(SID.ratio, "figure"), Output(SID.summary, "children"),
          Output(SID.reference_note, "children"), Input(SWEEP_JOB.rows, "data"))
def draw_sweep(rows):
    rows = rows or []
    ref_rows, ref_label, note = _reference()
    here = f"this run ({timing.run_label(rows)})" if rows else "this run"
    lines = [line for source, rs in ((here, rows), (ref_label, ref_rows or []))
             for line in figs.sweep_summary_lines(source, rs, timing.sweep_summary(rs))]
    summary = html.Ul([html.Li(t) for t in lines], id=SID.summary_list) if lines else None
    return (figs.sweep_time(rows, ref_rows, ref_label, here), figs.sweep_ratio(rows, ref_rows, ref_label, here),
            summary, note)
