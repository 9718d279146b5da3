"""/structured-sparsity: block sparsity, 2:4, and what each pattern costs in accuracy.

Widgets -> one engine spec (``engine.bench.pattern_sweep.sweep_config``,
``engine.sparse.pruning.accuracy_spec``) -> the engine (its rows, its tables in
``engine.sparse.tables``, its choice of committed lab-bsr run in ``engine.bench.bsr_runs``)
-> figures and notes from ``components.figures_sparsity``. Ids come from ``ID``.
"""
from __future__ import annotations

import os
import dash
from dash import Input, Output, State, dcc, html

from components.figures_sparsity import (accuracy_figure, break_even_figure, bsr_bench_figure,
                                         efficiency_figure, empty_figure, nm_figure,
                                         pattern_heatmaps, speedup_figure)
from components.ids import page_ids
from components.jobs import JobPlan, cancelled_total, job_ids, job_panel, register_job
from components.layout import (controls_row, error_message, labelled, message, page_header,
                               section)
from components.pure_callback import PURE_LAYOUT_READING_REFERENCES, pure_callback, pure_reference_callback
from components.sparsity_panels import bsr_notes, percall_note, reference_note, table_output
from components.tables import COLUMN_UNITS, csv_download, data_table, register_csv_download
from engine.bench.bsr_results import TARGET_BLOCK, TARGET_SPEEDUPS, TIMINGS, goals_text
from engine.bench.bsr_runs import (break_evens, goals as bsr_goals, kernel_only_run, per_call_run, side_by_side,
                                   unreadable_runs)
from engine.bench.pattern_sweep import (SWEEP_BLOCKS, SWEEP_SIZES, SWEEP_SPARSITIES, structured_sweep,
                                        sweep_config, sweep_params, unsupported_notes)
from engine.bench.reference import find, references
from engine.bench.sweeps import LIMITS
from engine.runtime.device import describe_device
from engine.sparse.pruning import (ACCURACY_LIMITS, ACCURACY_MODELS, ACCURACY_PATTERNS,
                                   ACCURACY_SPARSITIES, BLOCK_SIZES, NM_PRESETS, VIEW_SIZES,
                                   accuracy_spec, accuracy_spec_rows, pattern_view)
from engine.sparse.tables import (ACC_TABLE_COLUMNS, BSR_TABLE_COLUMNS, TIME_TABLE_COLUMNS,
                                  accuracy_table, chapter_beside_ours, goals_table, timing_frame,
                                  timing_tables)
from engine.validate import check_choice, check_int

dash.register_page(__name__, path="/structured-sparsity", name="Structured sparsity", order=6,
                   description="Block sparsity and 2:4: the same matrix pruned three ways, the "
                               "timing of each against dense, and the accuracy each costs.",
                   pure_layout=PURE_LAYOUT_READING_REFERENCES)  # the kernel tab's side-by-side run

P = "ss"
# Every id of this page, built once: ID.t_size == "ss-t-size" (components.ids).
ID = page_ids(P, "sparsity", "block", "nm", "size", "heatmaps", "pattern_msg", "pattern_table",
              "t_size", "t_k", "t_dtype", "t_blocks", "t_sparsities", "t_nm", "t_repeats", "t_notes",
              "ref", "ref_note", "speedup", "efficiency", "breakeven_plot", "breakeven", "nm_plot",
              "time_table", "a_models", "a_patterns", "a_sparsities", "a_epochs", "a_finetune",
              "a_seeds", "a_stage", "acc_plot", "acc_table", "chapter", "bsr_timing", "bsr_note",
              "bsr_plot", "bsr_percall", "bsr_percall_note", "bsr_targets", "bsr_table", "tabs",
              "pattern_csv", "breakeven_csv", "time_csv", "acc_csv", "chapter_csv", "bsr_csv",
              "bsr_targets_csv", "bsr_percall_csv", "tab_patterns", "tab_timing", "tab_kernel",
              "tab_accuracy", "time", "acc")
TIME = ID.time  # the two job panels' prefixes (components.jobs)
ACC = ID.acc
TIME_IDS = job_ids(TIME)
ACC_IDS = job_ids(ACC)
TABLE_CSVS = {  # table id -> (its CSV download's id, file name)
    ID.pattern_table: (ID.pattern_csv, "structured_patterns.csv"),
    ID.breakeven: (ID.breakeven_csv, "structured_break_even.csv"),
    ID.time_table: (ID.time_csv, "structured_sparsity_timing_rows.csv"),
    ID.acc_table: (ID.acc_csv, "structured_accuracy.csv"),
    ID.chapter: (ID.chapter_csv, "structured_chapter_accuracy.csv"),
    ID.bsr_table: (ID.bsr_csv, "bsr_bench.csv"),
    ID.bsr_targets: (ID.bsr_targets_csv, "bsr_targets.csv"),
    ID.bsr_percall: (ID.bsr_percall_csv, "bsr_percall_side_by_side.csv"),
}
TIME_STATES = [State(i, "value") for i in (ID.t_size, ID.t_k, ID.t_dtype, ID.t_blocks,
                                            ID.t_sparsities, ID.t_nm, ID.t_repeats)]
ACC_STATES = [State(i, "value") for i in (ID.a_models, ID.a_patterns, ID.a_sparsities, ID.a_epochs,
                                           ID.a_finetune, ID.a_seeds)]


# --------------------------------------------------------------------------- jobs

def timing_plan(size, k, dtype, blocks, sparsities, nm, repeats) -> JobPlan:
    """Runs inside the background job (so it may look at the GPU)."""
    from engine.runtime.device import job_device, runtime_device_name

    dev = job_device("auto")
    config = sweep_config(size, k, dtype, blocks, sparsities, nm, repeats, device=dev.type)
    name = runtime_device_name(dev)
    return JobPlan(rows=structured_sweep(config, device_name=name), total=config.total,
                   params=sweep_params(config), meta={"device_name": name, "pid": os.getpid()})


def accuracy_plan(models, patterns, sparsities, epochs, finetune, seeds=1) -> JobPlan:
    """Widget values -> the accuracy job, on the GPU when there is one (runs inside the job)."""
    from engine.runtime.device import job_device, runtime_device_name

    spec = accuracy_spec(models, patterns, sparsities, epochs, finetune, seeds)
    dev = job_device("auto")
    name = runtime_device_name(dev)
    return JobPlan(rows=accuracy_spec_rows(spec, device=dev.type, device_name=name), total=spec.total,
                   params=spec.params(), meta={"device_name": name, "pid": os.getpid()})


register_job(TIME, TIME_STATES, timing_plan, kind="structured", filename="structured_sparsity_timing.csv")
register_job(ACC, ACC_STATES, accuracy_plan, kind="structured-accuracy",
             filename="structured_accuracy.csv")


# --------------------------------------------------------------------------- layout

def _num(id_: str, value, limits: tuple[int, int]) -> dcc.Input:
    """A number box whose min / max are the engine's ``limits`` (lo, hi)."""
    return dcc.Input(id=id_, type="number", value=value, min=limits[0], max=limits[1], step=1, debounce=True,
                     style={"width": "9.5em"})


def _checklist(id_: str, options, value) -> dcc.Checklist:
    return dcc.Checklist(id=id_, inline=True, value=list(value),
                         options=[{"label": f" {lab} ", "value": v} for lab, v in options])


def _table(id_: str, rows=None, **kwargs) -> html.Div:
    """A table of this page with its CSV download (TABLE_CSVS); cells wrap, so at 1280 px
    no table is wider than its column."""
    wrap = {"whiteSpace": "normal", "height": "auto"}  # headers wrap too: assets/structured_sparsity.css
    return html.Div([data_table(id_, rows, style_data=wrap, **kwargs), csv_download(TABLE_CSVS[id_][0])],
                    className="ss-table")


def _pattern_section() -> html.Section:
    marks = {i: str(b) for i, b in enumerate(BLOCK_SIZES)}
    return section(
        "One matrix, three patterns",
        controls_row(
            labelled("Sparsity (fraction of zeros)",
                     html.Div(dcc.Slider(id=ID.sparsity, min=0.0, max=0.99, step=0.01, value=0.75,
                                         marks={v: f"{v:g}" for v in (0, 0.25, 0.5, 0.75, 0.9)},
                                         tooltip={"placement": "top", "always_visible": True}),
                              style={"paddingTop": "42px"}),
                     help="for unstructured and block; N:M fixes its own"),
            labelled("Block size b (b x b)",
                     dcc.Slider(id=ID.block, min=0, max=len(BLOCK_SIZES) - 1, step=1, value=3,
                                marks=marks, allow_direct_input=False)),
            labelled("N:M pattern",
                     dcc.RadioItems(id=ID.nm, value="2:4", inline=True,
                                    options=[{"label": f" {k} ", "value": k} for k in NM_PRESETS])),
            labelled("Matrix (n x n, normal weights)",
                     dcc.Dropdown(id=ID.size, value=256, clearable=False,
                                  options=[{"label": f"{s} x {s}", "value": s} for s in VIEW_SIZES])),
        ),
        html.Div(id=ID.pattern_msg),
        dcc.Graph(id=ID.heatmaps, config={"displaylogo": False}),
        _table(ID.pattern_table),
        note="The same random matrix, pruned by magnitude: unstructured keeps the largest entries "
             "anywhere; block keeps whole b x b tiles with the largest mean |w|; N:M keeps the n "
             "largest of every m consecutive entries in a row. 'energy kept' is the share of "
             "sum(w^2) that survives: a first hint at what each constraint costs.")


def _timing_section() -> html.Section:
    dev = describe_device()
    gpu = dev.kind == "cuda"
    return section(
        "Timing: block sizes and 2:4 against dense",
        controls_row(
            labelled("Matrix n (A is n x n)",
                     dcc.Dropdown(id=ID.t_size, value=4096 if gpu else 256, clearable=False,
                                  options=[{"label": str(s), "value": s} for s in SWEEP_SIZES])),
            labelled("k (columns of B)", _num(ID.t_k, 512 if gpu else 64, LIMITS["k"])),
            labelled("dtype", dcc.Dropdown(id=ID.t_dtype, clearable=False,
                                           value="float16" if gpu else "float32",
                                           options=["float32", "float16", "bfloat16"])),
            labelled("Repeats", _num(ID.t_repeats, 10, LIMITS["repeats"])),
        ),
        controls_row(
            labelled("Block sizes", _checklist(ID.t_blocks, [(str(b), b) for b in SWEEP_BLOCKS],
                                               (16, 32, 64) if gpu else (4, 16, 32))),
            labelled("Sparsities", _checklist(ID.t_sparsities,
                                              [(f"{s:g}", s) for s in SWEEP_SPARSITIES],
                                              (0.5, 0.75, 0.9, 0.95))),
            labelled("2:4", _checklist(ID.t_nm, [("dense vs 2:4 at n", "on"),
                                                      ("also square (k = n)", "square")], ["on"]),
                     help="NVIDIA sparse tensor cores: fp16/bf16, sm80+"),
        ),
        html.Div(id=ID.t_notes),
        job_panel(TIME, run_label="Run timing sweep",
                  note=f"Runs on {dev.label}. Each block size gets its own block-sparse matrix "
                       "(whole b x b tiles zero) at each sparsity; every registered backend is "
                       "timed on it, dense first. Backends this device cannot run are listed "
                       "as unsupported, never drawn."),
        controls_row(labelled("Reference run (committed GPU CSV)",
                              dcc.Dropdown(id=ID.ref, options=[], value=None,
                                           placeholder="none", style={"minWidth": "24em"}))),
        html.Div(id=ID.ref_note),
        dcc.Graph(id=ID.speedup, config={"displaylogo": False}),
        html.Div([
            html.Div([html.H3("Share of the theoretical speedup, per block size"),
                      dcc.Graph(id=ID.efficiency, config={"displaylogo": False})]),
            html.Div([html.H3("Break-even sparsity (time = dense time)"),
                      dcc.Graph(id=ID.breakeven_plot, config={"displaylogo": False})]),
        ], className="two-col"),
        html.Div([
            html.Div([html.H3("Break-even table"),
                      _table(ID.breakeven)]),
            html.Div([html.H3("2:4 against dense"), dcc.Graph(id=ID.nm_plot,
                                                               config={"displaylogo": False})]),
        ], className="two-col"),
        html.H3("All timing rows"),
        _table(ID.time_table, page_size=8),
        note="Speedup = dense time / format time on the same device in the same run; "
             "theoretical = 1/density. The chapter says block sparsity reaches about 80 % of the "
             "theoretical speedup (random sparsity about 20 %) and that 2:4 runs fp16 tensor cores "
             "at twice the dense rate (624 vs 312 TFLOPS on the A100): check both here.")


def _accuracy_section() -> html.Section:
    return section(
        "What each pattern costs in accuracy",
        controls_row(
            labelled("Models", _checklist(ID.a_models, [("MLP", "mlp"), ("CNN", "cnn")],
                                          ACCURACY_MODELS)),
            labelled("Patterns", _checklist(ID.a_patterns, [(k, k) for k in ACCURACY_PATTERNS],
                                            ("unstructured", "block 4x4", "block 16x16", "2:4"))),
            labelled("Sparsities (unstructured, block)",
                     _checklist(ID.a_sparsities, [(f"{100 * s:g} %", s) for s in ACCURACY_SPARSITIES],
                                ACCURACY_SPARSITIES)),
            labelled("Training epochs", _num(ID.a_epochs, 15, ACCURACY_LIMITS["epochs"])),
            labelled("Fine-tune epochs", _num(ID.a_finetune, 3, ACCURACY_LIMITS["finetune_epochs"])),
            labelled("Seeds", _num(ID.a_seeds, 1, ACCURACY_LIMITS["seeds"]),
                     help="repeat with seeds 0, 1, ...: bars show the mean, whiskers min-max"),
        ),
        job_panel(ACC, run_label="Run accuracy job",
                  note="Trains each model on scikit-learn's 8x8 digits (1347 train, 450 test "
                       "images), prunes its hidden layers by magnitude to each pattern, fine-tunes "
                       "with the mask held, and measures test accuracy. Runs on the GPU when there is "
                       "one, else the CPU, and every row names its device; one to two minutes "
                       "with the defaults on a busy 2-core CPU."),
        html.Div([
            html.Div([html.H3("Ours: accuracy drop against the dense model"),
                      dcc.RadioItems(id=ID.a_stage, value="finetuned", inline=True, options=[
                          {"label": " after fine-tuning ", "value": "finetuned"},
                          {"label": " right after pruning ", "value": "pruned"}]),
                      dcc.Graph(id=ID.acc_plot, config={"displaylogo": False})]),
            html.Div([html.H3("The chapter's table (ResNet-50, as the chapter reports it), "
                              "ours beside it"),
                      _table(ID.chapter, chapter_beside_ours([])),
                      html.P("The 'chapter' column is the chapter's figure for ResNet-50 on "
                             "ImageNet, not measured here. The 'ours' columns are this page's "
                             "run: accuracy drop in percentage points, the mean over seeds with min to max when several "
                             "(small models on a small data set; 'not run' until the job "
                             "covers that pattern and sparsity; our layers are too small for "
                             "64x64 tiles). Compare the ordering of the patterns, not the sizes.",
                             className="section-note")]),
        ], className="two-col"),
        html.H3("Every accuracy row"),
        _table(ID.acc_table),
        note="Drop = dense accuracy - fine-tuned accuracy, in percentage points (negative: the "
             "pruned model did better on this test split).")


def _kernel_section() -> html.Section:
    side = side_by_side()  # read at page load; a file it cannot read gives a note, not an error
    shape = f" ({side.shape_text})" if side.shape_text else ""
    return section(
        "The lab's own block-sparse kernel (lab-bsr) on a GPU",
        controls_row(labelled("Timing", dcc.RadioItems(
            id=ID.bsr_timing, value="graph", inline=True,
            options=[{"label": " GPU time (CUDA-graph replay)", "value": "graph"},
                     {"label": " call by call (launch included)", "value": "events"}]))),
        html.Div(id=ID.bsr_note),
        dcc.Graph(id=ID.bsr_plot, config={"displaylogo": False}),
        html.H3(f"Per call and kernel-only, side by side{shape}"),
        percall_note(side, id=ID.bsr_percall_note),
        _table(ID.bsr_percall, side.table),
        html.H3(f"This lab's goals for its kernel ({TARGET_BLOCK} x {TARGET_BLOCK} blocks)"),
        _table(ID.bsr_targets),
        html.H3("All benchmark rows"),
        _table(ID.bsr_table, page_size=8),
        note="Dense torch.matmul, torch BSR and lab-bsr (engine/sparse/kernels/bsr_matmul.py, "
             "Triton) on the same A (n x n, uniform random b x b blocks) and B (n x k), in one run, "
             "from the committed runs under benchmarks/results/. GPU time: the newest run of "
             "benchmarks/bsr_bench.py that covers the goals; call by call: that run's own per-call "
             "timings, else the committed per-call run most like it (benchmarks/gpu_bsr_app.py, or "
             "this page's timing sweep run on a GPU), with every difference named. The note above "
             "the plot names the run shown: device, date, timing method and file. The goals are "
             f"this lab's, set from the theory: {goals_text()} (the 80 % at 50 % is the chapter's "
             "block-sparse efficiency). docs/bsr_kernel.md explains what limits the kernel. Your "
             "own lab-bsr rows come from the timing sweep on a GPU.")


def layout(**_kwargs):
    return html.Div([
        page_header(
            "Structured sparsity",
            "Random zeros are hard for hardware to skip; zeros in a known shape are not. Prune "
            "the same matrix as unstructured, block and N:M and see where the zeros go; time "
            "each shape against dense on this device; and measure what each shape costs a "
            "trained model in accuracy.",
            seed="the sparsity chapter, section 10.3 (block sparsity, NVIDIA 2:4, the accuracy "
                 "trade-off)"),
        dcc.Tabs(id=ID.tabs, value="patterns", className="page-tabs", children=[
            dcc.Tab(label=label, value=value, id=ID.of(f"tab_{value}"), children=build())
            for value, label, build in (
                ("patterns", "One matrix, three patterns", _pattern_section),
                ("timing", "Timing against dense", _timing_section),
                ("kernel", "The lab's kernel (lab-bsr)", _kernel_section),
                ("accuracy", "Accuracy cost", _accuracy_section))
        ]),
    ])


for _table_id, (_csv_id, _name) in TABLE_CSVS.items():
    register_csv_download(_csv_id, (_table_id, "data"), _name)


# --------------------------------------------------------------------------- callbacks

@pure_callback(Output(ID.heatmaps, "figure"), Output(ID.pattern_table, "data"),
          Output(ID.pattern_table, "columns"), Output(ID.pattern_msg, "children"),
          Input(ID.sparsity, "value"), Input(ID.block, "value"), Input(ID.nm, "value"),
          Input(ID.size, "value"))
def draw_patterns(sparsity, block_index, nm, size):
    """Sliders -> the same matrix pruned three ways, and a row per pattern."""
    try:
        block = BLOCK_SIZES[check_int("block size", block_index, 0, len(BLOCK_SIZES) - 1)]
        view = pattern_view(size, sparsity, block, nm)
    except ValueError as exc:
        return dash.no_update, [], [], error_message(exc)
    note = None
    if block >= view.size:
        note = message(f"A {block} x {block} block covers the whole {view.size} x {view.size} matrix: "
                       "block pruning can only keep all of it or nothing.", "warn")
    return (pattern_heatmaps(view), *table_output(list(view.rows), COLUMN_UNITS), note)


@pure_callback(Output(ID.t_notes, "children"), *[Input(s.component_id, "value") for s in TIME_STATES])
def timing_notes(size, k, dtype, blocks, sparsities, nm, repeats):
    """Before a run: bad input, and which backends this device cannot run (and why)."""
    dev = describe_device()
    try:
        config = sweep_config(size, k, dtype, blocks, sparsities, nm, repeats, device=dev.kind)
    except ValueError as exc:
        return error_message(exc)
    notes = unsupported_notes(config, dev.kind)
    text = (f"{config.total} rows planned on {dev.label}."
            + (" Shown as unsupported, never drawn: " + "; ".join(notes) if notes else ""))
    return message(text, "warn" if notes else "info")


@pure_reference_callback(Output(ID.ref, "options"), Output(ID.ref, "value"), Input(ID.ref, "id"))
def reference_options(_id):
    """Committed runs of this sweep (engine.bench.reference), newest first."""
    opts = [{"label": f"{r.name} ({r.label})", "value": r.name} for r in references("structured")]
    return opts, (opts[0]["value"] if opts else None)


@pure_reference_callback(Output(ID.speedup, "figure"), Output(ID.efficiency, "figure"),
          Output(ID.breakeven_plot, "figure"), Output(ID.nm_plot, "figure"),
          Output(ID.breakeven, "data"), Output(ID.breakeven, "columns"),
          Output(ID.time_table, "data"), Output(ID.time_table, "columns"),
          Output(ID.ref_note, "children"),
          Input(TIME_IDS.rows, "data"), Input(ID.ref, "value"), Input(TIME_IDS.status, "children"),
          State(TIME_IDS.progress, "max"))
def draw_timing(rows, ref_name, status=None, total=None):
    """Timing rows (+ a committed reference run) -> speedup, efficiency, break-even, 2:4, tables."""
    ref = note = None
    try:
        ref = find(ref_name, "structured") if ref_name else None
    except ValueError as exc:
        note = error_message(exc)
    frame = timing_frame(rows, ref, cancelled_total(status, total))
    tables = timing_tables(frame)
    return (speedup_figure(frame), efficiency_figure(frame), break_even_figure(tables.break_even),
            nm_figure(frame), *table_output(tables.break_even, COLUMN_UNITS),
            *table_output(tables.rows, COLUMN_UNITS, shown=TIME_TABLE_COLUMNS), note or reference_note(ref))


@pure_callback(Output(ID.acc_plot, "figure"), Output(ID.acc_table, "data"),
          Output(ID.acc_table, "columns"), Output(ID.chapter, "data"),
          Output(ID.chapter, "columns"), Input(ACC_IDS.rows, "data"), Input(ID.a_stage, "value"))
def draw_accuracy(rows, stage="finetuned"):
    """Accuracy rows -> the drop per pattern and model, our table, the chapter's beside ours."""
    stage = check_choice("stage", stage, ("finetuned", "pruned"))
    return (accuracy_figure(accuracy_table(rows), stage),
            *table_output(rows, COLUMN_UNITS, shown=ACC_TABLE_COLUMNS),
            *table_output(chapter_beside_ours(rows)))


@pure_reference_callback(Output(ID.bsr_plot, "figure"), Output(ID.bsr_note, "children"),
          Output(ID.bsr_targets, "data"), Output(ID.bsr_targets, "columns"),
          Output(ID.bsr_table, "data"), Output(ID.bsr_table, "columns"),
          Input(ID.bsr_timing, "value"))
def draw_bsr_bench(timing):
    """The committed lab-bsr runs: kernel-only, or the newest per-call run most like it."""
    try:
        _ms, col, label = TIMINGS[check_choice("timing", timing, TIMINGS)]
        kernel = kernel_only_run()
        run = kernel if timing == "graph" else per_call_run(like=kernel)
    except (ValueError, OSError) as exc:
        return (empty_figure("The lab-bsr benchmark could not be read."), error_message(exc),
                [], [], [], [])
    if run is None:
        bad = unreadable_runs()
        return (empty_figure("No lab-bsr benchmark committed (benchmarks/results/bsr_bench.csv)."),
                error_message(ValueError("; ".join(bad))) if bad else None, [], [], [], [])
    goals = goals_table(bsr_goals(run, timing))
    unlike = "not like the kernel-only run: " + run.mismatch if run.mismatch else ""
    return (bsr_bench_figure(run.frame, col, f"{label}<br>{run.label}", run.device, TARGET_SPEEDUPS, unlike),
            bsr_notes(run, kernel, goals, break_evens(run, timing), label), *table_output(goals),
            *table_output(run.frame, COLUMN_UNITS, shown=BSR_TABLE_COLUMNS))
