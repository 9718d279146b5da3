"""/structured-matrices: when structure beats sparsity (the chapter's section 10.6)."""
from __future__ import annotations

from pathlib import Path

import dash
from dash import Input, Output, State, callback, dcc, html, no_update

from components import figures_structured as figs
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import (controls_row, error_message, labelled, message, page_header,
                               section, stat)
from components.tables import csv_download, data_table, register_csv_download
from engine.structured import pareto, sweep, tables, targets
from engine.validate import check_choice, check_int

dash.register_page(__name__, path="/structured-matrices", name="Structured matrices", order=9,
                   description="Low-rank, butterfly, Monarch, circulant and Toeplitz against "
                               "magnitude-pruned sparse at equal parameters: error and speed.")

P = "sm"
SWEEP = f"{P}-sweep"
THIS_RUN = "this-run"
BATCHES = (1, 4, 16, 64, 256, 1024, 4096)
SWEEP_SIZES = (256, 1024, 4096, 8192)
# The chapter's decision guide: (problem, best approach, the page of this lab that shows it).
DECISION_GUIDE = [
    ("Natural sparsity (pruned nets)", "2:4 structured sparsity", "/structured-sparsity"),
    ("Conditional compute", "MoE (dynamic sparsity)", "/moe"),
    ("Compressing large weights", "Low-rank (LoRA, SVD)", "/structured-matrices"),
    ("Replacing dense layers", "Monarch or butterfly", "/structured-matrices"),
    ("Convolution-like operations", "Circulant (FFT)", "/isomorphism"),
    ("Long-range dependencies", "Structured attention (not sparse)", "/attention"),
]


# ------------------------------------------------------------------------- layout
def _slider(id: str, lo: int, hi: int, value: int, marks: dict) -> dcc.Slider:
    return dcc.Slider(id=f"{P}-{id}", min=lo, max=hi, step=1, value=value, marks=marks,
                      updatemode="mouseup", allow_direct_input=False)


def _analysis_controls() -> html.Div:
    return controls_row(
        labelled("Target matrix", dcc.Dropdown(
            id=f"{P}-target", value="kernel", clearable=False,
            options=[{"label": v, "value": k} for k, v in targets.TARGETS.items()])),
        labelled("Size n", _slider("size", 6, 9, 7, {k: str(2 ** k) for k in range(6, 10)}),
                 help="n x n, powers of 2 (butterfly)"),
        labelled("Parameter budget (share of dense n²)",
                 _slider("budget", 1, 8, 2, {k: f"1/{2 ** k}" for k in range(1, 9)}),
                 help="each family's best configuration within the budget"),
    )


def _sweep_controls() -> html.Div:
    return controls_row(
        labelled("Size n", dcc.Dropdown(id=f"{SWEEP}-n", value=1024, clearable=False,
                                        options=[{"label": f"{n} x {n}", "value": n} for n in SWEEP_SIZES])),
        labelled("Batches", dcc.Dropdown(id=f"{SWEEP}-batches", value=[1, 16, 256], multi=True,
                                         options=[{"label": str(b), "value": b} for b in BATCHES])),
        labelled("dtypes", dcc.Checklist(id=f"{SWEEP}-dtypes", value=["float32"], inline=True,
                                         options=["float32", "float16"]),
                 help="float16 FFT and sparse need a GPU"),
        labelled("Low-rank r", dcc.Input(id=f"{SWEEP}-rank", type="number", value=32, min=1, max=1024)),
        labelled("Monarch blocks", dcc.Input(id=f"{SWEEP}-blocks", type="number", value=16, min=2, max=128),
                 help="b with b² dividing n (64 at n = 8192)"),
    )


def _decision_guide() -> html.Div:
    head = html.Tr([html.Th("Problem"), html.Th("Best approach (the chapter)"), html.Th("Shown on")])
    body = [html.Tr([html.Td(p), html.Td(a), html.Td(dcc.Link(href, href=href))])
            for p, a, href in DECISION_GUIDE]
    rows = [{"problem": p, "approach": a, "page": h} for p, a, h in DECISION_GUIDE]
    return html.Div([html.Table([head, *body], className="facts", id=f"{P}-guide"),
                     dcc.Store(id=f"{P}-guide-rows", data=rows),
                     csv_download(f"{P}-guide-csv")])


def layout(**_kwargs):
    sources = [{"label": "this session's run", "value": THIS_RUN}]
    sources += [{"label": sweep.run_label(p), "value": str(p)} for p in sweep.committed_runs()]
    return html.Div([
        page_header(
            "Structured matrices: when structure beats sparsity",
            "Zeros scattered at random give the hardware nothing to predict. A dense matrix with "
            "structure (a product of thin factors, of block-diagonal factors, of 2x2 butterflies, "
            "or a shift-invariant one applied by FFT) can store as few numbers and multiply with "
            "regular, fast kernels. Pick a target, move the parameter budget, and compare each "
            "family's error with magnitude-pruned sparsity at the same count; then time them.",
            seed="the sparsity chapter, section 10.6 (From Sparsity to Structure) and its decision guide",
        ),
        section("Target and budget", _analysis_controls(),
                dcc.Loading(html.Div(id=f"{P}-target-info"), type="dot"),
                note="Every family is fitted to the target: truncated SVD (low-rank), block-wise "
                     "low-rank projection (Monarch, Dao et al. 2022), hierarchical rank-one "
                     "projection then 100 steps of gradient descent (butterfly; 30 at n = 512), "
                     "diagonal averaging (circulant, Toeplitz), largest magnitudes (sparse)."),
        html.Div([
            section("Error against parameter count",
                    dcc.Loading(dcc.Graph(id=f"{P}-pareto", config={"displaylogo": False}), type="dot"),
                    dcc.Store(id=f"{P}-pareto-rows", data=[]),
                    csv_download(f"{P}-pareto-csv", "Download Pareto CSV"),
                    note="Each point is one configuration; sparse keeps the same number of "
                         "values as a structured point (its indices are extra storage)."),
            section("At the budget", html.Div(id=f"{P}-budget-table"),
                    csv_download(f"{P}-budget-csv", "Download CSV"),
                    note="The best configuration of each family within the budget."),
        ], className="two-col"),
        section("Target and approximations",
                dcc.Loading(dcc.Graph(id=f"{P}-heatmaps", config={"displaylogo": False}), type="dot"),
                note="Entries on one colour scale (the target's); complex targets show the real "
                     "part; matrices above 128 x 128 are drawn as block means."),
        section("Timing sweep: apply time vs dense and sparse at equal parameters",
                _sweep_controls(),
                job_panel(SWEEP, "Run timing sweep",
                          note="Runs as a background job on the GPU when there is one, else the "
                               "CPU. Random values of each structure: time depends on the "
                               "structure, not on the values. Sparse is a random pattern with "
                               "the parameter count of low-rank or Monarch."),
                controls_row(
                    labelled("Show", dcc.Dropdown(id=f"{P}-source", value=sources[-1]["value"], clearable=False,
                                                  options=sources),
                             help="a committed GPU reference CSV, or the run above (shown once it starts)"),
                    labelled("dtype", dcc.RadioItems(id=f"{P}-show-dtype", value="float32", inline=True,
                                                     options=["float32", "float16"])),
                ),
                html.Div(id=f"{P}-timing-msg"),
                dcc.Graph(id=f"{P}-timing", config={"displaylogo": False}),
                dcc.Store(id=f"{P}-timing-rows", data=[]),
                html.H3("Speedup vs dense (same dtype) by batch"),
                html.Div(id=f"{P}-pivot"),
                csv_download(f"{P}-pivot-csv", "Download CSV")),
        section("The chapter's comparison table, measured",
                html.Div(id=f"{P}-compare"),
                csv_download(f"{P}-compare-csv", "Download CSV"),
                note="Columns headed 'chapter' are the chapter's estimates; 'measured' columns come "
                     "from the sweep shown above at its largest batch. Efficiency = measured "
                     "speedup / FLOP ratio."),
        section("The lab's goal figures beside the measured ones",
                html.Div(id=f"{P}-reference"),
                csv_download(f"{P}-reference-csv", "Download CSV"),
                note="The goal: speedups measured on an NVIDIA H200 at n = 8192, batch 4096, that a "
                     "like-for-like run here should come close to: low-rank r = 32 15.3x faster "
                     "than dense in fp16 (128x by FLOPs), a naive Monarch with 64 blocks 2.7x (32x "
                     "by FLOPs), circulant by FFT 28x faster than dense fp32. They are not the "
                     "chapter's numbers; a run on another device or size is a different comparison "
                     "(the 'lab at' and 'lab device' columns say which)."),
        section("When to use each approach (the chapter's decision guide)", _decision_guide()),
    ])


# ---------------------------------------------------------------------- callbacks
def _view_inputs(target, size_log2, budget_exp) -> tuple[str, int, int]:
    """Widget values -> (target, n, budget exponent), checked once ("expected ... got ...")."""
    target = check_choice("target", target, targets.TARGETS)
    n = 2 ** check_int("size (log2 n)", size_log2, min(pareto.SIZE_EXPONENTS), max(pareto.SIZE_EXPONENTS))
    return target, n, check_int("budget", budget_exp, min(pareto.BUDGET_EXPONENTS), max(pareto.BUDGET_EXPONENTS))


VIEW_INPUTS = [Input(f"{P}-target", "value"), Input(f"{P}-size", "value"), Input(f"{P}-budget", "value")]


@callback(Output(f"{P}-target-info", "children"), Output(f"{P}-pareto", "figure"),
          Output(f"{P}-pareto-rows", "data"), Output(f"{P}-budget-table", "children"), *VIEW_INPUTS)
def update_analysis(target, size_log2, budget_exp):
    """Target, Pareto plot and the at-budget table (fits computed once per input, cached)."""
    try:
        target, n, k = _view_inputs(target, size_log2, budget_exp)
        a, view = pareto.analysis(target, n), pareto.budget_view(target, n, k)
    except ValueError as exc:
        return error_message(exc), figs.empty_figure(str(exc)), [], None
    info = html.Div([
        stat("target", a.target.label, id=f"{P}-target-label"),
        stat("size", f"{n} x {n}"),
        stat("budget (parameters)", f"{view.budget:,}", id=f"{P}-budget-value"),
        html.P(a.target.note, className="section-note"),
    ])
    return (info, figs.pareto_figure_json(a.rows, view.budget, n), list(a.rows),
            data_table(f"{P}-budget-data", list(view.table), page_size=8))


@callback(Output(f"{P}-heatmaps", "figure"), *VIEW_INPUTS)
def update_heatmaps(target, size_log2, budget_exp):
    """The target, each family's fit at the budget and the best fit's error, as heatmaps."""
    try:
        view = pareto.budget_view(*_view_inputs(target, size_log2, budget_exp))
    except ValueError as exc:
        return figs.empty_figure(str(exc))
    return figs.heatmap_grid_json(view.panels)


def _sweep_spec(n, batches, dtypes, rank, blocks) -> sweep.SweepSpec:
    n = check_choice("size n", n, SWEEP_SIZES)
    if not isinstance(batches, list) or not batches:
        raise ValueError(f"batches: expected at least one of {BATCHES}, got {batches!r}")
    batches = tuple(sorted({check_choice("batch", b, BATCHES) for b in batches}))
    if not isinstance(dtypes, list) or not dtypes:
        raise ValueError(f"dtypes: expected float32 and/or float16, got {dtypes!r}")
    dtypes = tuple(check_choice("dtype", d, ("float32", "float16")) for d in dtypes)
    rank = check_int("rank", rank, 1, n // 2)
    blocks = check_int("Monarch blocks", blocks, 2, 256)
    return sweep.SweepSpec(n=n, batches=batches, dtypes=dtypes, rank=rank, monarch_blocks=blocks,
                        repeats=15, max_total_s=1.0)


def plan_sweep(n, batches, dtypes, rank, blocks) -> JobPlan:
    """Check the widgets and describe the job (runs inside the background job)."""
    spec = _sweep_spec(n, batches, dtypes, rank, blocks)

    def rows():
        from engine.runtime.device import job_device, runtime_device_name

        dev = job_device()
        yield from sweep.timing_sweep(spec, str(dev), runtime_device_name(dev))

    return JobPlan(rows=rows(), total=spec.total,
                   params={"n": spec.n, "batches": list(spec.batches), "dtypes": list(spec.dtypes),
                           "rank": spec.rank, "monarch_blocks": spec.monarch_blocks},
                   meta={"page": "/structured-matrices"})


register_job(SWEEP, [State(f"{SWEEP}-n", "value"), State(f"{SWEEP}-batches", "value"),
                     State(f"{SWEEP}-dtypes", "value"), State(f"{SWEEP}-rank", "value"),
                     State(f"{SWEEP}-blocks", "value")],
             plan_sweep, kind="structured-matrices", filename="structured_matrices_timing.csv")


@callback(
    Output(f"{P}-timing", "figure"),
    Output(f"{P}-timing-rows", "data"),
    Output(f"{P}-timing-msg", "children"),
    Output(f"{P}-compare", "children"),
    Output(f"{P}-reference", "children"),
    Output(f"{P}-pivot", "children"),
    Input(job_ids(SWEEP).rows, "data"),
    Input(f"{P}-source", "value"),
    Input(f"{P}-show-dtype", "value"),
)
def update_timing(run_rows, source, dtype):
    try:
        dtype = check_choice("dtype", dtype, ("float32", "float16"))
        if source == THIS_RUN:
            rows, label = sweep.check_rows(run_rows), "this session's run"
        else:
            rows, label = sweep.load_run(str(source)), f"reference {Path(str(source)).name}"
        return _timing_outputs(rows, label, dtype)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        empty = figs.empty_figure(str(exc))
        return (empty, [], error_message(exc), _table(f"{P}-compare-data", []),
                _table(f"{P}-reference-data", []), _table(f"{P}-pivot-data", []))


def _table(id: str, rows: list[dict]):
    return data_table(id, rows, page_size=12)


def _timing_outputs(rows: list[dict], label: str, dtype: str):
    notes = []
    if rows:
        devs = sorted({str(r.get("device_name") or r.get("device")) for r in rows})
        notes.append(message(f"Showing {label}: {len(rows)} rows on {', '.join(devs)}.", "info"))
        noisy = [r for r in rows if r.get("noisy") in (True, "True", 1)]
        if noisy:
            notes.append(message(f"{len(noisy)} of {len(rows)} timings are noisy (IQR / median > 0.1; "
                                 "column 'noisy' in the CSV): read those as rough.",
                                 "warn"))
        bad = sorted({f"{r['label']} ({r['dtype']}): {r['status']}" for r in rows
                      if str(r.get("status", "ok")) != "ok"})
        if bad:
            notes.append(message(["Not measured here:", html.Ul([html.Li(b) for b in bad])], "warn"))
    else:
        notes.append(message("No sweep rows yet: run the sweep above, or pick a committed reference.",
                             "info"))
    compare = tables.comparison_table(rows, dtype=dtype) if rows else []
    ref = tables.reference_comparison(rows)
    return (figs.timing_figure(rows, dtype), rows, notes, _table(f"{P}-compare-data", compare),
            _table(f"{P}-reference-data", ref), _table(f"{P}-pivot-data", tables.speedup_pivot(rows, dtype)))


@callback(Output(f"{P}-source", "value"), Input(job_ids(SWEEP).rows, "data"), prevent_initial_call=True)
def follow_run(rows):
    """Show this session's run as soon as its first rows arrive."""
    return THIS_RUN if isinstance(rows, list) and rows else no_update


register_csv_download(f"{P}-pareto-csv", (f"{P}-pareto-rows", "data"), "structured_pareto.csv")
register_csv_download(f"{P}-budget-csv", (f"{P}-budget-data", "data"), "structured_at_budget.csv")
register_csv_download(f"{P}-compare-csv", (f"{P}-compare-data", "data"), "structured_comparison.csv")
register_csv_download(f"{P}-reference-csv", (f"{P}-reference-data", "data"), "structured_matrices_goal.csv")
register_csv_download(f"{P}-pivot-csv", (f"{P}-pivot-data", "data"), "structured_speedup_by_batch.csv")
register_csv_download(f"{P}-guide-csv", (f"{P}-guide-rows", "data"), "structured_decision_guide.csv")
