"""/moe: routing, load balance, capacity, and the cost of conditional compute."""
from __future__ import annotations


import dash
from dash import Input, Output, State, callback, dcc, html

from components import figures_moe as figs
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import (controls_row, error_message, labelled, message, page_header,
                               section, stat)
from components.tables import csv_download, data_table, register_csv_download
from engine.moe import layer as moe
from engine.validate import check_budget, check_float, check_int

dash.register_page(__name__, path="/moe", name="Mixture of Experts", nav_name="MoE", order=7,
                   description="Routing, load balance, capacity and drops, and what conditional "
                               "compute costs: dense FFN vs MoE timing.")

P = "moe"
TRAIN, SWEEP = f"{P}-train", f"{P}-sweep"


def _slider(id: str, lo, hi, step, value, marks=None) -> html.Div:
    """A slider whose value is always shown (a tooltip above the handle, in room kept free
    for it below the label); no typed box beside it."""
    return html.Div(dcc.Slider(id=f"{P}-{id}", min=lo, max=hi, step=step, value=value, marks=marks,
                               allow_direct_input=False, updatemode="mouseup",
                               tooltip={"placement": "top", "always_visible": True}),
                    className="slider-with-value", style={"paddingTop": "40px"})


def _routing_controls() -> html.Div:
    return html.Div([
        controls_row(
            labelled("Tokens", _slider("tokens", 8, 512, 8, 64, {8: "8", 256: "256", 512: "512"})),
            labelled("Experts E", _slider("experts", 2, 64, 1, 8, {2: "2", 32: "32", 64: "64"})),
            labelled("Top-k", _slider("k", 1, 8, 1, 2, {1: "1", 4: "4", 8: "8"})),
            labelled("Capacity factor", _slider("cf", 0.25, 4, 0.25, 1.25, {0.25: "0.25", 1: "1", 2: "2", 4: "4"}),
                     help="capacity = ceil(T / E x factor) x k"),
        ),
        controls_row(
            labelled("Model width d", _slider("d", 8, 512, 8, 64, {8: "8", 256: "256", 512: "512"})),
            labelled("FFN width h", _slider("h", 32, 4096, 32, 256, {32: "32", 2048: "2048", 4096: "4096"}),
                     help="per expert; used for the parameter count"),
            labelled("Temperature", _slider("temp", 0.1, 5, 0.1, 1.0, {0.1: "0.1", 1: "1", 5: "5"})),
            labelled("Skew", _slider("skew", 0, 5, 0.1, 0, {0: "0", 2.5: "2.5", 5: "5"}),
                     help="logit bias toward low-numbered experts"),
        ),
        controls_row(
            labelled("Jitter", _slider("jitter", 0, 0.5, 0.01, 0, {0: "0", 0.25: "0.25", 0.5: "0.5"}),
                     help="input noise U(1-j, 1+j), as in Switch"),
            labelled("Seed", dcc.Input(id=f"{P}-seed", type="number", value=0, min=0, step=1,
                                       debounce=True)),
            labelled("Capacity", dcc.Checklist(id=f"{P}-dropless",
                                               options=[{"label": " dropless (no capacity)",
                                                         "value": "dropless"}], value=[])),
        ),
    ])


PARAM_FIELDS = ("d_model", "d_ff", "n_layers", "experts", "k", "n_heads", "n_kv_heads", "vocab")
PARAM_LABELS = {"d_model": "Model width", "d_ff": "Expert FFN width", "n_layers": "Layers",
                "experts": "Experts", "k": "Top-k", "n_heads": "Heads", "n_kv_heads": "KV heads",
                "vocab": "Vocabulary"}
PARAM_PRESETS = {"Mixtral 8x7B": moe.MIXTRAL_8X7B,
                 "Mistral-7B-like dense (1 expert)": moe.MoEConfig(
                     "Mistral-7B-like dense", d_model=4096, d_ff=14336, n_layers=32, experts=1, k=1,
                     vocab=32000, n_heads=32, n_kv_heads=8)}


def _params_controls() -> html.Div:
    mix = moe.MIXTRAL_8X7B
    inputs = [labelled(PARAM_LABELS[f], dcc.Input(id=f"{P}-cfg-{f}", type="number", value=getattr(mix, f),
                                                  min=1, step=1, debounce=True))
              for f in PARAM_FIELDS]
    return html.Div([
        controls_row(
            labelled("Preset", dcc.Dropdown(id=f"{P}-cfg-preset", value="Mixtral 8x7B", clearable=False,
                                            options=list(PARAM_PRESETS))),
            labelled("Expert FFN", dcc.Checklist(id=f"{P}-cfg-gated", value=["gated"],
                                              options=[{"label": " SwiGLU (3 matrices)", "value": "gated"}])),
            *inputs[:3]),
        controls_row(*inputs[3:]),
    ])


def _train_controls() -> html.Div:
    return controls_row(
        labelled("Experts", dcc.Input(id=f"{TRAIN}-experts", type="number", value=8, min=2, max=32)),
        labelled("Top-k", dcc.Input(id=f"{TRAIN}-k", type="number", value=2, min=1, max=8)),
        labelled("Balancing alpha", dcc.Input(id=f"{TRAIN}-alpha", type="number", value=0.1,
                                              min=0, max=10, step=0.01)),
        labelled("Epochs", dcc.Input(id=f"{TRAIN}-epochs", type="number", value=10, min=1, max=200)),
    )


def _sweep_controls() -> html.Div:
    return controls_row(
        labelled("Model width d", dcc.Input(id=f"{SWEEP}-d", type="number", value=256, min=8,
                                            max=8192, step=8), help="expert FFN width h = 4d"),
        labelled("Largest batch (tokens)", dcc.Input(id=f"{SWEEP}-max", type="number", value=1024,
                                                     min=1, max=16384),
                 help="powers of two from 1 up to this"),
        labelled("Experts / top-k", dcc.Dropdown(id=f"{SWEEP}-ek", value="8/2", clearable=False,
                                                 options=["8/1", "8/2", "16/2", "64/8"])),
        labelled("dtype", dcc.Dropdown(id=f"{SWEEP}-dtype", value="float32", clearable=False,
                                       options=["float32", "bfloat16", "float16"]),
                 help="on a GPU, the grouped GEMM may need bfloat16"),
        labelled("Device", dcc.Dropdown(id=f"{SWEEP}-device", value="auto", clearable=False,
                                        options=["auto", "cpu", "cuda"])),
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
        section("Routing", _routing_controls(), html.Div(id=f"{P}-error"),
                html.Div(id=f"{P}-stats"),
                html.Div([dcc.Graph(id=f"{P}-heatmap"), dcc.Graph(id=f"{P}-load")], className="two-col"),
                html.Div([dcc.Graph(id=f"{P}-util"),
                          html.Div([html.Div(id=f"{P}-expert-table"),
                                    csv_download(f"{P}-experts-csv", "Download per-expert CSV")])],
                         className="two-col"),
                note="Random tokens and a random linear gate (seeded). Assignments arrive in token "
                     "order, each token's first choice before its second; an expert past capacity "
                     "drops the rest. The balancing loss is shown with alpha = 1, so 1.0 is even."),
        section("Parameters: total vs active",
                _params_controls(),
                html.Div([dcc.Graph(id=f"{P}-params-plot"),
                          html.Div([html.Div(id=f"{P}-params-error"),
                                    html.Div(id=f"{P}-params-table"),
                                    csv_download(f"{P}-params-csv", "Download parameters CSV"),
                                    html.P(id=f"{P}-params-note", className="section-note")])],
                         className="two-col"),
                note="The chapter reports Mixtral 8x7B at 46.7B total and 12.9B active parameters "
                     "per token (8 experts, top-2). The calculator counts a decoder-only MoE "
                     "transformer from its shapes (attention with grouped KV heads, E experts "
                     "per layer, router, norms, untied embeddings; no biases); the Mixtral preset "
                     "uses its published shapes."),
        section("A trained router (scikit-learn digits)",
                _train_controls(),
                job_panel(TRAIN, "Train router", note="Two runs from the same start: without and "
                          "with the balancing loss. Tiny (seconds on a CPU)."),
                dcc.Graph(id=f"{TRAIN}-curves"),
                html.Div([dcc.Graph(id=f"{TRAIN}-load"), dcc.Graph(id=f"{TRAIN}-spec")],
                         className="two-col"),
                html.Div(id=f"{TRAIN}-summary")),
        section("Cost: dense FFN vs MoE over batch size",
                _sweep_controls(),
                job_panel(SWEEP, "Run timing sweep", note="Runs on the GPU when there is one, "
                          "else the CPU. Batches are powers of two from 1 token to the largest."),
                html.Div(id=f"{SWEEP}-summary"),
                html.Div([dcc.Graph(id=f"{SWEEP}-time"), dcc.Graph(id=f"{SWEEP}-ratio")],
                         className="two-col"),
                html.Div(id=f"{SWEEP}-reference-note"),
                note="Open markers: noisy rows (IQR / median > 0.1, or under 3 timed runs). "
                     "The chapter's memory paradox: at one token the MoE must hold all E experts "
                     "and pays routing overhead to use k of them; at large batches every expert "
                     "gets a full GEMM and the MoE costs about k dense FFNs while holding E."),
        dcc.Store(id=f"{P}-expert-rows"),
        dcc.Store(id=f"{P}-params-rows"),
    ])


# ------------------------------------------------------------------------ routing
@callback(
    Output(f"{P}-heatmap", "figure"), Output(f"{P}-load", "figure"), Output(f"{P}-util", "figure"),
    Output(f"{P}-stats", "children"), Output(f"{P}-expert-table", "children"),
    Output(f"{P}-expert-rows", "data"), Output(f"{P}-error", "children"),
    Input(f"{P}-tokens", "value"), Input(f"{P}-experts", "value"), Input(f"{P}-k", "value"),
    Input(f"{P}-cf", "value"), Input(f"{P}-d", "value"), Input(f"{P}-temp", "value"),
    Input(f"{P}-skew", "value"), Input(f"{P}-jitter", "value"), Input(f"{P}-dropless", "value"),
    Input(f"{P}-seed", "value"), Input(f"{P}-h", "value"),
)
def update_routing(tokens, experts, k, cf, d, temp, skew, jitter, dropless, seed, h=256):
    try:
        spec = moe.RoutingSpec(tokens=tokens, experts=experts, k=k, capacity_factor=cf, d_model=d,
                               temperature=temp, skew=skew, jitter=jitter,
                               dropless="dropless" in (dropless or []), seed=seed or 0)
        res = moe.routing_example(spec)
        agree = moe.layer_agreement(res, min(int(h or 0), 128) or 1)  # cheap: a check, not a benchmark
    except ValueError as exc:
        blank = figs.empty_figure("Fix the input above.")
        return blank, blank, blank, None, None, [], error_message(exc)
    rows = res.expert_rows()
    weights = res.routing.dense_weights().numpy()
    kept = res.routing.dense_weights(res.cap.keep).numpy()
    fair = spec.tokens * spec.k / spec.experts
    dropped = int(res.cap.dropped.sum())
    dead = sum(1 for r in rows if r["load"] == 0)
    stats = html.Div([
        stat("balancing loss (alpha=1)", f"{res.balance_loss:.3f}", id=f"{P}-stat-balance"),
        stat("router z-loss", f"{res.z_loss:.3f}", id=f"{P}-stat-z"),
        stat("capacity per expert", "none" if res.cap.capacity is None else str(res.cap.capacity),
             id=f"{P}-stat-capacity"),
        stat("dropped assignments", f"{dropped} of {spec.tokens * spec.k}", id=f"{P}-stat-dropped"),
        stat("tokens with a drop", str(res.cap.dropped_tokens), id=f"{P}-stat-dropped-tokens"),
        stat("dead experts", str(dead), id=f"{P}-stat-dead"),
        stat("batched vs per-token reference, max |diff| (first 64 tokens, h <= 128)",
             " / ".join(f"{m} {v:.1e}" for m, v in agree.items()), id=f"{P}-stat-agree"),
    ])
    return (figs.routing_heatmap(weights, kept), figs.load_bars(rows, res.cap.capacity, fair),
            figs.utilisation_bars(rows), stats, data_table(f"{P}-experts-table", rows, page_size=8),
            rows, None)


register_csv_download(f"{P}-experts-csv", (f"{P}-expert-rows", "data"), "moe_experts.csv")


# --------------------------------------------------------------------- parameters
@callback(*[Output(f"{P}-cfg-{f}", "value") for f in PARAM_FIELDS], Output(f"{P}-cfg-gated", "value"),
          Input(f"{P}-cfg-preset", "value"), prevent_initial_call=True)
def apply_preset(name):
    cfg = PARAM_PRESETS.get(name, moe.MIXTRAL_8X7B)
    return (*[getattr(cfg, f) for f in PARAM_FIELDS], ["gated"] if cfg.gated else [])


@callback(
    Output(f"{P}-params-plot", "figure"), Output(f"{P}-params-table", "children"),
    Output(f"{P}-params-rows", "data"), Output(f"{P}-params-note", "children"),
    Output(f"{P}-params-error", "children"),
    *[Input(f"{P}-cfg-{f}", "value") for f in PARAM_FIELDS], Input(f"{P}-cfg-gated", "value"),
    Input(f"{P}-d", "value"), Input(f"{P}-h", "value"), Input(f"{P}-experts", "value"),
    Input(f"{P}-k", "value"),
)
def update_params(*values):
    n = len(PARAM_FIELDS)
    cfg_values, gated, (d, h, experts, k) = values[:n], values[n], values[n + 1:]
    rows, error = [], None
    try:
        cfg = moe.MoEConfig("your config (counted)", **dict(zip(PARAM_FIELDS, cfg_values)),
                            gated="gated" in (gated or []))
        mine = moe.param_count(cfg)
        rows.append({"config": cfg.name, "total": mine["total"], "active": mine["active"],
                     "active_fraction": round(mine["active_fraction"], 4)})
    except (ValueError, TypeError) as exc:
        error = error_message(exc if isinstance(exc, ValueError) else ValueError(str(exc)))
    mix = moe.param_count(moe.MIXTRAL_8X7B)
    rows += [{"config": "Mixtral 8x7B (counted)", "total": mix["total"], "active": mix["active"],
              "active_fraction": round(mix["active_fraction"], 4)},
             {"config": "Mixtral 8x7B (chapter)", "total": 46.7e9, "active": 12.9e9,
              "active_fraction": round(12.9 / 46.7, 4)},
             {"config": "dense 70B (chapter)", "total": 70e9, "active": 70e9, "active_fraction": 1.0}]
    try:
        layer = moe.layer_params(d, h, experts, k)
    except ValueError as exc:
        note = f"Routing sliders' layer not counted: {exc}"
    else:
        rows.append({k_: layer[k_] for k_ in ("config", "total", "active")}
                    | {"active_fraction": round(layer["active_fraction"], 4)})
        note = (f"The routing sliders' layer holds {layer['total']:,} parameters "
                f"({layer['bytes_bf16_total'] / 2**20:.1f} MiB in bf16) and uses "
                f"{layer['active']:,} per token.")
    table_rows = [{"config": r["config"], "total (B)": round(r["total"] / 1e9, 4),
                   "active (B)": round(r["active"] / 1e9, 4), "active fraction": r["active_fraction"]}
                  for r in rows]
    # whole models only (the slider layer is a different scale); the user's config when valid
    skip = {"Mixtral 8x7B (counted)"} if error is None else set()
    plotted = [r for r in rows if not r["config"].startswith("one layer") and r["config"] not in skip]
    return (figs.params_bars(plotted), data_table(f"{P}-params-dt", table_rows, page_size=6),
            rows, note, error)


register_csv_download(f"{P}-params-csv", (f"{P}-params-rows", "data"), "moe_params.csv")


# ------------------------------------------------------------------ trained router
def plan_training(experts, k, alpha, epochs) -> JobPlan:
    experts = check_int("experts", experts, 2, 32)
    k = check_int("top-k", k, 1, experts)
    alpha = check_float("alpha", alpha, 0.0, 10.0)
    epochs = check_int("epochs", epochs, 1, 200)
    params = {"experts": experts, "k": k, "alpha": alpha, "epochs": epochs, "dataset": "digits"}
    return JobPlan(moe.train_router_rows(experts=experts, k=k, alpha=alpha, epochs=epochs),
                   moe.train_router_plan_total(epochs, experts), params=params)


register_job(TRAIN, [State(f"{TRAIN}-experts", "value"), State(f"{TRAIN}-k", "value"),
                     State(f"{TRAIN}-alpha", "value"), State(f"{TRAIN}-epochs", "value")],
             plan_training, kind="moe-router", filename="moe_router_training.csv")


@callback(Output(f"{TRAIN}-curves", "figure"), Output(f"{TRAIN}-load", "figure"),
          Output(f"{TRAIN}-spec", "figure"), Output(f"{TRAIN}-summary", "children"),
          Input(job_ids(TRAIN).rows, "data"))
def draw_training(rows):
    rows = rows or []
    summary = [r for r in rows if r.get("kind") == "summary"]
    text = None
    if summary:
        text = html.Ul([html.Li(f"{r['variant']}: test accuracy {r['test_accuracy']:.3f}, balancing "
                                f"loss {r['balance_loss']:.3f}, largest expert share "
                                f"{r['max_share']:.3f}, dead experts {r['dead_experts']}")
                        for r in summary], id=f"{TRAIN}-summary-list")
    return figs.train_curves(rows), figs.train_load(rows), figs.specialisation(rows), text


# -------------------------------------------------------------------- timing sweep
def plan_sweep(d, max_batch, ek, dtype, device) -> JobPlan:
    try:
        experts, k = (int(v) for v in str(ek).split("/"))
    except ValueError:
        raise ValueError(f"experts/top-k: expected E/k such as 8/2, got {ek!r}") from None
    max_batch = check_int("largest batch", max_batch, 1, 16384)
    spec = moe.SweepSpec(d_model=d, experts=experts, k=k, dtype=dtype, device=device,
                         batches=moe.powers_of_two(1, max_batch), min_run_time=0.05)
    # the largest dense layer (equal total parameters) and its activations at the largest batch
    h_total = spec.ffn_mult * d * experts
    check_budget("timing sweep", 4 * (2 * d * h_total + int(max_batch) * (h_total + d)))
    return JobPlan(moe.timing_sweep_rows(spec), spec.total, params=moe.spec_dict(spec))


register_job(SWEEP, [State(f"{SWEEP}-d", "value"), State(f"{SWEEP}-max", "value"),
                     State(f"{SWEEP}-ek", "value"), State(f"{SWEEP}-dtype", "value"),
                     State(f"{SWEEP}-device", "value")],
             plan_sweep, kind="moe-timing", filename="moe_timing.csv")


@callback(Output(f"{SWEEP}-time", "figure"), Output(f"{SWEEP}-ratio", "figure"),
          Output(f"{SWEEP}-summary", "children"), Output(f"{SWEEP}-reference-note", "children"),
          Input(job_ids(SWEEP).rows, "data"))
def draw_sweep(rows):
    rows = rows or []
    try:
        ref = moe.load_reference_sweep()
    except (ValueError, OSError) as exc:
        ref, note = None, message(f"Reference CSV unreadable: {exc}", "warn")
    else:
        note = (message(f"Dashed lines: committed GPU reference ({ref[1]}).", "info") if ref else
                message("No committed GPU reference yet (benchmarks/results/**/moe_timing.csv).", "info"))
    ref_rows, ref_label = (ref if ref else (None, "reference"))
    k = int(rows[0]["k"]) if rows and "k" in rows[0] else 2
    parts = []
    for source, rs in (("this run", rows), (ref_label, ref_rows or [])):
        for s in moe.sweep_summary(rs):
            parts.append(html.Li(
                f"{source}: {s['variant']} at {s['batch']} tokens takes "
                f"{s['ratio_vs_dense_1x']:.2f}x one dense FFN (ideal {s['ideal']}x, "
                f"{100 * s['efficiency']:.0f}% of ideal); against the dense layer with equal "
                f"active / equal total parameters: {s['small_vs_dense_active']:.2f}x / "
                f"{s['small_vs_dense_total']:.2f}x at {s['small_batch']} token(s), "
                f"{s['big_vs_dense_active']:.2f}x / {s['big_vs_dense_total']:.2f}x at {s['batch']}."))
        for r in rs:  # say what could not be measured (once per variant and reason)
            status = str(r.get("status", ""))
            if status.startswith(("unavailable", "error")):
                text = f"{source}: {r['variant']} at {r.get('batch')} tokens: {status}"
                if r.get("batch") == 1 or status.startswith("error"):
                    parts.append(html.Li(text))
    summary = html.Ul(parts, id=f"{SWEEP}-summary-list") if parts else None
    return (figs.sweep_time(rows, ref_rows, ref_label), figs.sweep_ratio(rows, ref_rows, ref_label, k),
            summary, note)
