"""/structured-matrices: when structure beats sparsity (the chapter's section 10.6)."""
from __future__ import annotations

from pathlib import Path

import dash
from dash import Input, Output, State, dcc, html, no_update

from components import figures_structured as figs
from components.compact_table import Col, columns, compact_table
from components.ids import page_ids
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import (controls_row, error_message, labelled, message, page_header,
                               section, stat)
from components.pure_callback import PURE_LAYOUT_READING_REFERENCES, pure_callback, pure_reference_callback
from components.tables import csv_download, register_csv_download, table_slot
from engine.structured import pareto, sweep, tables, targets
from engine.validate import check_budget, check_choice

dash.register_page(__name__, path="/structured-matrices", name="Structured matrices", order=9,
                   description="Low-rank, butterfly, Monarch, circulant and Toeplitz against "
                               "magnitude-pruned sparse at equal parameters: error and speed.",
                   pure_layout=PURE_LAYOUT_READING_REFERENCES)

P, SWEEP = "sm", "sm-sweep"
THIS_RUN = "this-run"
ID = page_ids(P, "target", "size", "budget", "target_info", "target_label", "budget_value", "pareto",
              "pareto_rows", "pareto_csv", "budget_table", "budget_data", "budget_rows", "budget_csv",
              "heatmaps", "source", "show_dtype", "timing_msg", "timing", "timing_rows", "pivot",
              "pivot_data", "pivot_rows", "pivot_csv", "compare", "compare_data", "compare_rows",
              "compare_csv", "reference", "reference_data", "reference_rows", "reference_csv", "guide",
              "guide_rows", "guide_csv", "compare_whose", "reference_whose", "pivot_whose")
SID = page_ids(SWEEP, "n", "batches", "dtypes", "rank", "blocks")
SWEEP_JOB = job_ids(SWEEP)
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
def _slider(id_: str, exponents: range, value: int, mark) -> dcc.Slider:
    """A slider over the engine's exponents (engine.structured.pareto)."""
    return dcc.Slider(id=id_, min=min(exponents), max=max(exponents), step=1, value=value,
                      marks={k: mark(k) for k in exponents}, updatemode="mouseup", allow_direct_input=False)


def _analysis_controls() -> html.Div:
    return controls_row(
        labelled("Target matrix", dcc.Dropdown(
            id=ID.target, value="kernel", clearable=False,
            options=[{"label": v, "value": k} for k, v in targets.TARGETS.items()])),
        labelled("Size n", _slider(ID.size, pareto.SIZE_EXPONENTS, 7, lambda k: str(2 ** k)),
                 help="n x n, powers of 2 (butterfly)"),
        labelled("Parameter budget (share of dense n²)",
                 _slider(ID.budget, pareto.BUDGET_EXPONENTS, 2, lambda k: f"1/{2 ** k}"),
                 help="each family's best configuration within the budget"),
    )


def _sweep_controls() -> html.Div:
    return controls_row(
        labelled("Size n", dcc.Dropdown(id=SID.n, value=1024, clearable=False,
                                        options=[{"label": f"{n} x {n}", "value": n} for n in sweep.SWEEP_SIZES])),
        labelled("Batches", dcc.Dropdown(id=SID.batches, value=[1, 16, 256], multi=True,
                                         options=[{"label": str(b), "value": b} for b in sweep.BATCHES])),
        labelled("dtypes", dcc.Checklist(id=SID.dtypes, value=["float32"], inline=True,
                                         options=list(sweep.DTYPES)),
                 help="float16 FFT and sparse need a GPU"),
        labelled("Low-rank r", dcc.Input(id=SID.rank, type="number", value=32, min=sweep.RANK_LIMITS[0],
                                                      max=sweep.RANK_LIMITS[1])),
        labelled("Monarch blocks", dcc.Input(id=SID.blocks, type="number", value=16, min=sweep.BLOCK_LIMITS[0],
                                                          max=sweep.BLOCK_LIMITS[1]),
                 help="b with b² dividing n (64 at n = 8192)"),
    )


def _decision_guide() -> html.Div:
    head = html.Tr([html.Th("Problem"), html.Th("Best approach (the chapter)"), html.Th("Shown on")])
    body = [html.Tr([html.Td(p), html.Td(a), html.Td(dcc.Link(href, href=href))])
            for p, a, href in DECISION_GUIDE]
    rows = [{"problem": p, "approach": a, "page": h} for p, a, h in DECISION_GUIDE]
    return html.Div([html.Table([head, *body], className="facts", id=ID.guide),
                     dcc.Store(id=ID.guide_rows, data=rows),
                     csv_download(ID.guide_csv)])


def layout(**_kwargs):
    sources = [{"label": "this session's run", "value": THIS_RUN}]
    sources += [{"label": sweep.run_label(p), "value": str(p)} for p in sweep.committed_runs()]  # newest first
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
                dcc.Loading(html.Div(id=ID.target_info), type="dot"),
                note="Every family is fitted to the target: truncated SVD (low-rank), block-wise "
                     "low-rank projection (Monarch, Dao et al. 2022), hierarchical rank-one "
                     "projection then up to 100 L-BFGS steps (butterfly; 30 at n = 512), "
                     "diagonal averaging (circulant, Toeplitz), largest magnitudes (sparse)."),
        html.Div([
            section("Error against parameter count",
                    dcc.Loading(dcc.Graph(id=ID.pareto, config={"displaylogo": False}), type="dot"),
                    dcc.Store(id=ID.pareto_rows, data=[]),
                    csv_download(ID.pareto_csv, "Download Pareto CSV"),
                    note="Each point is one configuration; sparse keeps the same number of "
                         "values as a structured point (its indices are extra storage)."),
            section("At the budget", html.Div(id=ID.budget_table), dcc.Store(id=ID.budget_rows, data=[]),
                    csv_download(ID.budget_csv, "Download CSV"),
                    note="The best configuration of each family within the budget."),
        ], className="two-col"),
        section("Target and approximations",
                dcc.Loading(dcc.Graph(id=ID.heatmaps, config={"displaylogo": False}), type="dot"),
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
                    labelled("Show", dcc.Dropdown(id=ID.source, value=sources[min(1, len(sources) - 1)]["value"], clearable=False,
                                                  options=sources),
                             help="a committed GPU reference CSV, or the run above (shown once it starts)"),
                    labelled("dtype", dcc.RadioItems(id=ID.show_dtype, value="float32", inline=True,
                                                     options=list(sweep.DTYPES))),
                ),
                html.Div(id=ID.timing_msg),
                dcc.Graph(id=ID.timing, config={"displaylogo": False}),
                dcc.Store(id=ID.timing_rows, data=[]),
                html.H3("Speedup vs dense (same dtype) by batch"),
                html.Div(id=ID.pivot_whose), *table_slot(ID.pivot, ID.pivot_csv, ID.pivot_rows)),
        section("The chapter's comparison table, measured",
                html.Div(id=ID.compare_whose), *table_slot(ID.compare, ID.compare_csv, ID.compare_rows),
                note="Columns headed 'chapter' are the chapter's estimates; 'measured' columns come "
                     "from the sweep shown above at its largest batch. Efficiency = measured "
                     "speedup / FLOP ratio. A speedup that rests on a noisy time (its own or "
                     "dense's) is grey and italic, and its status says so."),
        section("The lab's goal figures beside the measured ones",
                html.Div(id=ID.reference_whose), *table_slot(ID.reference, ID.reference_csv, ID.reference_rows),
                note="The goal: speedups measured on an NVIDIA H200 at n = 8192, batch 4096, that a "
                     "like-for-like run here should come close to: low-rank r = 32 15.3x faster "
                     "than dense in fp16 (128x by FLOPs), a naive Monarch with 64 blocks 2.7x (32x "
                     "by FLOPs), circulant by FFT 28x faster than dense fp32. They are not the "
                     "chapter's numbers. A run on another device, size, batch or configuration "
                     "is not comparable, and its status names what differs; a noisy lab speedup "
                     "is not a finding."),
        section("When to use each approach (the chapter's decision guide)", _decision_guide()),
    ])


# ---------------------------------------------------------------------- callbacks
VIEW_INPUTS = [Input(ID.target, "value"), Input(ID.size, "value"), Input(ID.budget, "value")]
BUDGET_COLUMNS = columns("""
family         | family    | structured family, or magnitude-pruned sparse
relative error | rel. error | relative Frobenius error ||A - fit|| / ||A||
params         | params    | numbers stored (sparse: values only; indices are extra)
configuration  | config    | the best configuration within the budget
note           | note      | why a family has no fit within the budget (the CSV has it too)
""")
COMPARE_COLUMNS = columns("""
matrix type                  | matrix type          | the chapter's row
chapter: storage             | storage (chapter)    | the chapter's storage estimate
chapter: multiply cost       | multiply (chapter)   | the chapter's multiply cost
chapter: hardware efficiency | efficiency (chapter) | the chapter's hardware efficiency
measured: time (ms)          | time (ms)            | measured median apply time
measured: speedup vs dense   | speedup (x)          | t(dense) / t, same dtype and batch
measured: FLOP ratio         | FLOP ratio (x)       | dense FLOPs / FLOPs
measured: efficiency         | efficiency           | measured speedup / FLOP ratio
measured: status             | status               | ok; noisy (the time or dense's: not a finding); or why not measured
""")
GOAL_COLUMNS = columns("""
comparison          | comparison     | what is compared (and against which dense)
dtype               | dtype          | the operator's dtype
goal speedup (H200) | goal (x)       | the lab's goal: measured on an H200 at n = 8192, batch 4096
lab speedup         | lab (x)        | measured here
goal FLOP ratio     | goal FLOPs (x) | dense FLOPs / FLOPs at the goal's shape
lab FLOP ratio      | lab FLOPs (x)  | dense FLOPs / FLOPs at the lab's shape
goal config         | goal config    | the configuration of the goal's operator
lab config          | lab config     | the measured operator's configuration
lab at              | lab at         | the measured shape
lab device          | lab device     | where it ran
status              | status         | like for like; not comparable (what differs, goal vs lab); noisy; or why not measured
""")
NOISY_CELL = {"color": "#a0a7b4", "fontStyle": "italic"}  # components.figures_common.NOISY_COLOR


def _noisy_table(id_: str, rows: list[dict], cols, flags: dict[str, str]):
    """compact_table of ``rows`` whose cells rest on a noisy timing are grey and italic:
    ``flags`` maps a shown column (the rows' key) to the rows' field that is True when
    that cell is noisy (carried in the table's data as ``noisy0``, ``noisy1``, ...)."""
    table = compact_table(id_, rows, cols)
    header = {c.key: c.header for c in cols}
    table.data = [{**shown, **{f"noisy{i}": int(bool(r.get(f))) for i, f in enumerate(flags.values())}}
                  for shown, r in zip(table.data, rows)]
    table.style_data_conditional = [{"if": {"filter_query": f"{{noisy{i}}} = 1", "column_id": header.get(k, k)},
                                     **NOISY_CELL} for i, k in enumerate(flags)]
    return table


@pure_callback(Output(ID.target_info, "children"), Output(ID.pareto, "figure"), Output(ID.pareto_rows, "data"),
               Output(ID.budget_table, "children"), Output(ID.budget_rows, "data"), Output(ID.heatmaps, "figure"),
               *VIEW_INPUTS)
def update_analysis(target, size_log2, budget_exp):
    """Target, Pareto plot, the at-budget table and the heatmaps, in one request so that
    each fit is computed once (per (target, n) and per budget, then cached)."""
    try:
        target, n, k = pareto.view_inputs(target, size_log2, budget_exp)
        a, view = pareto.analysis(target, n), pareto.budget_view(target, n, k)
    except ValueError as exc:
        return error_message(exc), figs.empty_figure(str(exc)), [], None, [], figs.empty_figure(str(exc))
    info = html.Div([
        stat("target", a.target.label, id=ID.target_label),
        stat("size", f"{n} x {n}"),
        stat("budget (parameters)", f"{view.budget:,}", id=ID.budget_value),
        html.P(a.target.note, className="section-note"),
    ])
    return (info, figs.pareto_figure_json(a.rows, view.budget, n), list(a.rows),
            compact_table(ID.budget_data, list(view.table), BUDGET_COLUMNS, page_size=8), list(view.table),
            figs.heatmap_grid_json(view.panels, view.cell))


def plan_sweep(n, batches, dtypes, rank, blocks) -> JobPlan:
    """Check the widgets and the memory budget, and describe the job (runs inside the job)."""
    from engine.runtime.device import job_device

    spec = sweep.SweepSpec.from_widgets(n, batches, dtypes, rank, blocks)
    check_budget("timing sweep", spec.memory_bytes(job_device().type))

    def rows():
        from engine.runtime.device import job_device, runtime_device_name

        dev = job_device()
        yield from sweep.timing_sweep(spec, str(dev), runtime_device_name(dev))

    return JobPlan(rows=rows(), total=spec.total,
                   params={"n": spec.n, "batches": list(spec.batches), "dtypes": list(spec.dtypes),
                           "rank": spec.rank, "monarch_blocks": spec.monarch_blocks},
                   meta={"page": "/structured-matrices"})


register_job(SWEEP, [State(SID.n, "value"), State(SID.batches, "value"), State(SID.dtypes, "value"),
                     State(SID.rank, "value"), State(SID.blocks, "value")],
             plan_sweep, kind="structured-matrices", filename="structured_matrices_timing.csv")


@pure_reference_callback(Output(ID.timing, "figure"), Output(ID.timing_rows, "data"), Output(ID.timing_msg, "children"),
          Output(ID.compare, "children"), Output(ID.compare_rows, "data"), Output(ID.reference, "children"),
          Output(ID.reference_rows, "data"), Output(ID.pivot, "children"), Output(ID.pivot_rows, "data"),
          Output(ID.compare_whose, "children"), Output(ID.reference_whose, "children"),
          Output(ID.pivot_whose, "children"),
          Input(SWEEP_JOB.rows, "data"), Input(ID.source, "value"), Input(ID.show_dtype, "value"))
def update_timing(run_rows, source, dtype):
    rows, label, dtype, failed = _timing_source(run_rows, source, dtype)
    notes = error_message(failed) if failed else [
        message([text, html.Ul([html.Li(i) for i in items])] if items else text, kind)
        for text, kind, items in tables.timing_notes(rows, label)]
    compare = tables.comparison_table(rows, dtype=dtype) if rows else []
    goal, pivot = tables.reference_comparison(rows), tables.speedup_pivot(rows, dtype)
    fig = figs.empty_figure(str(failed)) if failed else figs.timing_figure(rows, dtype)
    whose = tables.numbers_of(rows, label)
    at = compare[0]["at"] if compare else ""
    batches = [k for k in (pivot[0] if pivot else {}) if k.startswith("batch ") and not k.endswith(" noisy")]
    pivot_cols = tuple(Col(k, k if not k.startswith("batch ") else f"{k} (x)",
                           "speedup vs dense at this batch" if k.startswith("batch ") else k)
                       for k in ("operator", "config", "params", *batches, "status"))
    return (fig, rows, notes,
            _noisy_table(ID.compare_data, compare, COMPARE_COLUMNS,
                         {"measured: time (ms)": "measured: time noisy", "measured: speedup vs dense": "measured: noisy",
                          "measured: efficiency": "measured: noisy"}),
            compare,
            _noisy_table(ID.reference_data, goal, GOAL_COLUMNS, {"lab speedup": "lab noisy"}), goal,
            _noisy_table(ID.pivot_data, pivot, pivot_cols, {b: f"{b} noisy" for b in batches}), pivot,
            message(f"Measured columns: {whose}, at {at}." if at else f"Measured columns: {whose}.", "info"),
            message(f"Goal columns: the lab's goal run on an {tables.GOAL_DEVICE} ({tables.GOAL_DATE}), "
                    f"n = {tables.GOAL_DIMS['n']}, batch {tables.GOAL_DIMS['batch']}. Lab columns: {whose}.",
                    "info"),
            message(f"Speedups of {whose}, {dtype}; grey italic cells rest on a noisy time "
                    "(the operator's or dense's): rough, not a finding.", "info"))


def _timing_source(run_rows, source, dtype):
    """(rows, label, dtype, None) of the run to show, or ([], "", "float32", the error)."""
    try:
        dtype = check_choice("dtype", dtype, sweep.DTYPES)
        if source == THIS_RUN:
            return sweep.check_rows(run_rows), "this session's run", dtype, None
        return (sweep.load_run(str(source)), f"reference {Path(str(source)).name} ({sweep.run_date(str(source))})",
                dtype, None)
    except (ValueError, OSError, KeyError, TypeError) as exc:
        return [], "", "float32", exc


@pure_callback(Output(ID.source, "value"), Input(SWEEP_JOB.rows, "data"), prevent_initial_call=True)
def follow_run(rows):
    """Show this session's run as soon as its first rows arrive."""
    return THIS_RUN if isinstance(rows, list) and rows else no_update


register_csv_download(ID.pareto_csv, (ID.pareto_rows, "data"), "structured_pareto.csv")
register_csv_download(ID.budget_csv, (ID.budget_rows, "data"), "structured_at_budget.csv")
register_csv_download(ID.compare_csv, (ID.compare_rows, "data"), "structured_comparison.csv")
register_csv_download(ID.reference_csv, (ID.reference_rows, "data"), "structured_matrices_goal.csv")
register_csv_download(ID.pivot_csv, (ID.pivot_rows, "data"), "structured_speedup_by_batch.csv")
register_csv_download(ID.guide_csv, (ID.guide_rows, "data"), "structured_decision_guide.csv")
