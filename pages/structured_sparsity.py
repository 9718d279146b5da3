"""/structured-sparsity: block sparsity, 2:4, and what each pattern costs in accuracy."""
from __future__ import annotations

import itertools
import os

import dash
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from components.figures_sparsity import (accuracy_figure, break_even_figure, bsr_bench_figure,
                                         efficiency_figure, empty_figure, nm_figure,
                                         pattern_heatmaps, speedup_figure)
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import (controls_row, error_message, labelled, message, page_header,
                               section)
from components.tables import csv_download, data_table, register_csv_download, table_columns
from engine.bench.bsr_results import (PERCALL_CSV, TARGET_BLOCK, TARGET_SPEEDUPS, TIMINGS,
                                      break_even, load_bsr_bench, percall_table, sweep_rows,
                                      targets)
from engine.bench.reference import find, references, results_dir, short_device
from engine.runtime.device import describe_device
from engine.sparse.pruning import (ACCURACY_MODELS, BLOCK_SIZES, NM_PRESETS, VIEW_SIZES,
                                   accuracy_plan_size, accuracy_rows, pattern_view)
from engine.sparse.formats import SimpleSpec, unsupported_reason
from engine.sparse.two_four import NEEDS_GPU
from engine.bench.pattern_sweep import (NM_BACKEND, StructuredSweepConfig, break_even_by_block,
                                     structured_sweep)
from engine.validate import check_choice, check_int, memory_budget_bytes

dash.register_page(__name__, path="/structured-sparsity", name="Structured sparsity", order=6,
                   description="Block sparsity and 2:4: the same matrix pruned three ways, the "
                               "timing of each against dense, and the accuracy each costs.")

P = "ss"
TIME = f"{P}-time"
ACC = f"{P}-acc"
TIME_IDS = job_ids(TIME)
ACC_IDS = job_ids(ACC)
SWEEP_SIZES = (64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384)
SWEEP_SPARSITIES = (0.5, 0.6, 0.7, 0.75, 0.8, 0.9, 0.95, 0.99)
ACC_PATTERNS = {"unstructured": ("unstructured", None), "block 4x4": ("block", 4),
                "block 16x16": ("block", 16), "2:4": ("nm", (2, 4)), "1:4": ("nm", (1, 4)),
                "4:8": ("nm", (4, 8))}
# The chapter's accuracy table (ResNet-50), shown as the chapter's, never as ours.
CHAPTER_ACCURACY = [
    {"pattern": "unstructured", "sparsity": "90 %", "chapter (ResNet-50)": "1-2 %"},
    {"pattern": "block 16x16", "sparsity": "75 %", "chapter (ResNet-50)": "1-2 %"},
    {"pattern": "block 64x64", "sparsity": "50 %", "chapter (ResNet-50)": "1-2 %"},
    {"pattern": "2:4", "sparsity": "50 %", "chapter (ResNet-50)": "< 1 %"},
]


def chapter_beside_ours(frame: pd.DataFrame) -> list[dict]:
    """The chapter's rows with our measured drop (points) per model at the same pattern and
    sparsity; "not run" where this page has not measured that combination."""
    out = []
    for row in CHAPTER_ACCURACY:
        line = dict(row)
        target = float(row["sparsity"].rstrip(" %")) / 100
        for model in ACCURACY_MODELS:
            col = f"ours {model.upper()}"
            hit = pd.DataFrame()
            if len(frame) and {"model", "pattern", "target_sparsity"} <= set(frame.columns):
                hit = frame[(frame["model"] == model) & (frame["pattern"] == row["pattern"])
                            & ((frame["target_sparsity"] - target).abs() < 1e-6)]
            line[col] = round(float(hit["drop_pts"].mean()), 2) if len(hit) else "not run"
            if len(hit) > 1:
                line[col] = f"{line[col]:.2f} ({hit['drop_pts'].min():.2f} to {hit['drop_pts'].max():.2f})"
        out.append(line)
    return out
TIME_STATES = [State(f"{P}-t-size", "value"), State(f"{P}-t-k", "value"),
               State(f"{P}-t-dtype", "value"), State(f"{P}-t-blocks", "value"),
               State(f"{P}-t-sparsities", "value"), State(f"{P}-t-nm", "value"),
               State(f"{P}-t-repeats", "value")]
ACC_STATES = [State(f"{P}-a-models", "value"), State(f"{P}-a-patterns", "value"),
              State(f"{P}-a-sparsities", "value"), State(f"{P}-a-epochs", "value"),
              State(f"{P}-a-finetune", "value"), State(f"{P}-a-seeds", "value")]


# --------------------------------------------------------------------------- jobs

def build_sweep_config(size, k, dtype, blocks, sparsities, nm, repeats,
                       device: str = "cpu") -> StructuredSweepConfig:
    """Widget values -> a validated StructuredSweepConfig (ValueError "expected ... got ...")."""
    size = check_choice("matrix size", check_int("matrix size", size, 8, 16384), SWEEP_SIZES)
    if not blocks and not (nm and "on" in nm):
        raise ValueError("blocks: expected at least one block size or 2:4 ticked, got none")
    if blocks and not sparsities:
        raise ValueError("sparsities: expected at least one sparsity ticked, got none")
    blocks = tuple(sorted(check_int("block", b, 1, 128) for b in blocks or ()))
    for b in blocks:
        if b > size:
            raise ValueError(f"block: expected a block size at most the matrix size {size}, got {b}")
    return StructuredSweepConfig(
        size=size, k=check_int("k", k, 1, 8192), sparsities=tuple(sorted(float(s) for s in sparsities or (0.5,))),
        blocks=blocks, dtype=dtype, device=device, repeats=check_int("repeats", repeats, 1, 200),
        nm_sizes=(size,) if nm and "on" in nm else (), nm_square=bool(nm) and "square" in nm,
        memory_budget_bytes=memory_budget_bytes())


def timing_plan(size, k, dtype, blocks, sparsities, nm, repeats) -> JobPlan:
    """Runs inside the background job (so it may look at the GPU)."""
    from engine.runtime.device import job_device, runtime_device_name

    dev = job_device("auto")
    config = build_sweep_config(size, k, dtype, blocks, sparsities, nm, repeats, device=dev.type)
    name = runtime_device_name(dev)
    params = {"size": config.size, "k": config.k, "dtype": config.dtype, "blocks": list(config.blocks),
              "sparsities": list(config.sparsities), "nm_shapes": [list(p) for p in config.nm_shapes],
              "repeats": config.repeats}
    return JobPlan(rows=structured_sweep(config, device_name=name), total=config.total,
                   params=params, meta={"device_name": name, "pid": os.getpid()})


def accuracy_grid(patterns, sparsities) -> list[tuple]:
    """Picked patterns x sparsities -> (pattern, sparsity, block, n, m); N:M keep their own sparsity."""
    if not patterns:
        raise ValueError("patterns: expected at least one pattern ticked, got none")
    grid = []
    for label in patterns:
        kind, arg = ACC_PATTERNS[check_choice("pattern", label, ACC_PATTERNS)]
        if kind == "nm":
            grid.append(("nm", None, None, *arg))
            continue
        if not sparsities:
            raise ValueError("sparsities: expected at least one sparsity ticked, got none")
        grid += [(kind, float(s), arg, None, None) for s in sorted(sparsities)]
    return grid


def accuracy_plan(models, patterns, sparsities, epochs, finetune, seeds=1) -> JobPlan:
    """Widget values -> the accuracy job: every model x pattern, once per seed (0, 1, ...)."""
    if not models:
        raise ValueError("models: expected MLP and/or CNN ticked, got none")
    models = tuple(check_choice("model", m, ACCURACY_MODELS) for m in models)
    grid = accuracy_grid(patterns, sparsities)
    epochs = check_int("epochs", epochs, 1, 100)
    finetune = check_int("fine-tune epochs", finetune, 0, 50)
    seeds = check_int("seeds", seeds, 1, 10)
    rows = itertools.chain.from_iterable(
        accuracy_rows(models=models, grid=grid, epochs=epochs, finetune_epochs=finetune, seed=seed)
        for seed in range(seeds))
    return JobPlan(rows=rows, total=seeds * accuracy_plan_size(models, grid),
                   params={"models": list(models), "grid": [list(g) for g in grid],
                           "epochs": epochs, "finetune_epochs": finetune, "seeds": seeds})


register_job(TIME, TIME_STATES, timing_plan, kind="structured", filename="structured_sparsity_timing.csv")
register_job(ACC, ACC_STATES, accuracy_plan, kind="structured-accuracy",
             filename="structured_accuracy.csv")


# --------------------------------------------------------------------------- layout

def _num(id_: str, value, lo, hi) -> dcc.Input:
    return dcc.Input(id=id_, type="number", value=value, min=lo, max=hi, step=1, debounce=True,
                     style={"width": "9.5em"})


def _checklist(id_: str, options, value) -> dcc.Checklist:
    return dcc.Checklist(id=id_, inline=True, value=list(value),
                         options=[{"label": f" {lab} ", "value": v} for lab, v in options])


def _pattern_section() -> html.Section:
    marks = {i: str(b) for i, b in enumerate(BLOCK_SIZES)}
    return section(
        "One matrix, three patterns",
        controls_row(
            labelled("Sparsity (fraction of zeros)",
                     html.Div(dcc.Slider(id=f"{P}-sparsity", min=0.0, max=0.99, step=0.01, value=0.75,
                                         marks={v: f"{v:g}" for v in (0, 0.25, 0.5, 0.75, 0.9)},
                                         tooltip={"placement": "top", "always_visible": True}),
                              style={"paddingTop": "30px"}),
                     help="for unstructured and block; N:M fixes its own"),
            labelled("Block size b (b x b)",
                     dcc.Slider(id=f"{P}-block", min=0, max=len(BLOCK_SIZES) - 1, step=1, value=3,
                                marks=marks, allow_direct_input=False)),
            labelled("N:M pattern",
                     dcc.RadioItems(id=f"{P}-nm", value="2:4", inline=True,
                                    options=[{"label": f" {k} ", "value": k} for k in NM_PRESETS])),
            labelled("Matrix (n x n, normal weights)",
                     dcc.Dropdown(id=f"{P}-size", value=256, clearable=False,
                                  options=[{"label": f"{s} x {s}", "value": s} for s in VIEW_SIZES])),
        ),
        html.Div(id=f"{P}-pattern-msg"),
        dcc.Graph(id=f"{P}-heatmaps", config={"displaylogo": False}),
        data_table(f"{P}-pattern-table", []),
        csv_download(f"{P}-pattern-csv"),
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
                     dcc.Dropdown(id=f"{P}-t-size", value=4096 if gpu else 256, clearable=False,
                                  options=[{"label": str(s), "value": s} for s in SWEEP_SIZES])),
            labelled("k (columns of B)", _num(f"{P}-t-k", 512 if gpu else 64, 1, 8192)),
            labelled("dtype", dcc.Dropdown(id=f"{P}-t-dtype", clearable=False,
                                           value="float16" if gpu else "float32",
                                           options=["float32", "float16", "bfloat16"])),
            labelled("Repeats", _num(f"{P}-t-repeats", 10, 1, 200)),
        ),
        controls_row(
            labelled("Block sizes", _checklist(f"{P}-t-blocks", [(str(b), b) for b in BLOCK_SIZES],
                                               (16, 32, 64) if gpu else (4, 16, 32))),
            labelled("Sparsities", _checklist(f"{P}-t-sparsities",
                                              [(f"{s:g}", s) for s in SWEEP_SPARSITIES],
                                              (0.5, 0.75, 0.9, 0.95))),
            labelled("2:4", _checklist(f"{P}-t-nm", [("dense vs 2:4 at n", "on"),
                                                      ("also square (k = n)", "square")], ["on"]),
                     help="NVIDIA sparse tensor cores: fp16/bf16, sm80+"),
        ),
        html.Div(id=f"{P}-t-notes"),
        job_panel(TIME, run_label="Run timing sweep",
                  note=f"Runs on {dev.label}. Each block size gets its own block-sparse matrix "
                       "(whole b x b tiles zero) at each sparsity; every registered backend is "
                       "timed on it, dense first. Backends this device cannot run are listed "
                       "as unsupported, never drawn."),
        controls_row(labelled("Reference run (committed GPU CSV)",
                              dcc.Dropdown(id=f"{P}-ref", options=[], value=None,
                                           placeholder="none", style={"minWidth": "24em"}))),
        html.Div(id=f"{P}-ref-note"),
        dcc.Graph(id=f"{P}-speedup", config={"displaylogo": False}),
        html.Div([
            html.Div([html.H3("Share of the theoretical speedup, per block size"),
                      dcc.Graph(id=f"{P}-efficiency", config={"displaylogo": False})]),
            html.Div([html.H3("Break-even sparsity (time = dense time)"),
                      dcc.Graph(id=f"{P}-breakeven-plot", config={"displaylogo": False})]),
        ], className="two-col"),
        html.Div([
            html.Div([html.H3("Break-even table"),
                      data_table(f"{P}-breakeven", [], style_data={"whiteSpace": "normal", "height": "auto"}),
                      csv_download(f"{P}-breakeven-csv")]),
            html.Div([html.H3("2:4 against dense"), dcc.Graph(id=f"{P}-nm-plot",
                                                               config={"displaylogo": False})]),
        ], className="two-col"),
        html.H3("All timing rows"),
        data_table(f"{P}-time-table", [], page_size=8),
        csv_download(f"{P}-time-csv"),
        note="Speedup = dense time / format time on the same device in the same run; "
             "theoretical = 1/density. The chapter says block sparsity reaches about 80 % of the "
             "theoretical speedup (random sparsity about 20 %) and that 2:4 runs fp16 tensor cores "
             "at twice the dense rate (624 vs 312 TFLOPS on the A100): check both here.")


def _accuracy_section() -> html.Section:
    return section(
        "What each pattern costs in accuracy",
        controls_row(
            labelled("Models", _checklist(f"{P}-a-models", [("MLP", "mlp"), ("CNN", "cnn")],
                                          ACCURACY_MODELS)),
            labelled("Patterns", _checklist(f"{P}-a-patterns", [(k, k) for k in ACC_PATTERNS],
                                            ("unstructured", "block 4x4", "block 16x16", "2:4"))),
            labelled("Sparsities (unstructured, block)",
                     _checklist(f"{P}-a-sparsities", [("50 %", 0.5), ("75 %", 0.75), ("90 %", 0.9)],
                                (0.5, 0.75, 0.9))),
            labelled("Training epochs", _num(f"{P}-a-epochs", 15, 1, 100)),
            labelled("Fine-tune epochs", _num(f"{P}-a-finetune", 3, 0, 50)),
            labelled("Seeds", _num(f"{P}-a-seeds", 1, 1, 10),
                     help="repeat with seeds 0, 1, ...: bars show the mean, whiskers min-max"),
        ),
        job_panel(ACC, run_label="Run accuracy job",
                  note="Trains each model on scikit-learn's 8x8 digits (1347 train, 450 test "
                       "images), prunes its hidden layers by magnitude to each pattern, fine-tunes "
                       "with the mask held, and measures test accuracy. Runs on the CPU "
                       "(tiny models); one to two minutes with the defaults on a busy 2-core machine."),
        html.Div([
            html.Div([html.H3("Ours: accuracy drop against the dense model"),
                      dcc.RadioItems(id=f"{P}-a-stage", value="finetuned", inline=True, options=[
                          {"label": " after fine-tuning ", "value": "finetuned"},
                          {"label": " right after pruning ", "value": "pruned"}]),
                      dcc.Graph(id=f"{P}-acc-plot", config={"displaylogo": False}),
                      data_table(f"{P}-acc-table", []), csv_download(f"{P}-acc-csv")]),
            html.Div([html.H3("The chapter's table (ResNet-50, as the chapter reports it), "
                              "ours beside it"),
                      data_table(f"{P}-chapter", chapter_beside_ours(pd.DataFrame())),
                      csv_download(f"{P}-chapter-csv"),
                      html.P("The 'chapter' column is the chapter's figure for ResNet-50 on "
                             "ImageNet, not measured here. The 'ours' columns are this page's "
                             "run: accuracy drop in percentage points, the mean over seeds with min to max when several "
                             "(small models on a small data set; 'not run' until the job "
                             "covers that pattern and sparsity; our layers are too small for "
                             "64x64 tiles). Compare the ordering of the patterns, not the sizes.",
                             className="section-note")]),
        ], className="two-col"),
        note="Drop = dense accuracy - fine-tuned accuracy, in percentage points (negative: the "
             "pruned model did better on this test split).")


BSR_BENCH = "bsr_bench.csv"  # the committed lab-bsr run the page shows (engine.bench.reference)
BSR_TABLE_COLUMNS = ["block", "sparsity", "method", "ms", "speedup_vs_dense", "ms_events",
                     "speedup_vs_dense_events", "theory", "efficiency", "speedup_vs_torch_bsr",
                     "config", "rel_err"]


def _percall_note(frame: pd.DataFrame) -> html.P:
    if not len(frame):
        return message(f"No per-call run committed (benchmarks/results/{PERCALL_CSV}).",
                       id=f"{P}-bsr-percall-note")
    return html.P(f"{frame.attrs['device']}, {frame.attrs['date']}, benchmarks/gpu_bsr_app.py: "
                  "kernel-only = CUDA-graph replay with L2 evicted before each call (no Python "
                  "launch cost); per call = bsr_matmul called back to back from Python in eager "
                  "mode, what a caller gets. Each speedup compares with dense torch.matmul timed "
                  "the same way.", className="section-note", id=f"{P}-bsr-percall-note")


def _kernel_section() -> html.Section:
    percall = percall_table(results_dir() / PERCALL_CSV)
    return section(
        "The lab's own block-sparse kernel (lab-bsr) on a GPU",
        controls_row(labelled("Timing", dcc.RadioItems(
            id=f"{P}-bsr-timing", value="graph", inline=True,
            options=[{"label": " GPU time (CUDA-graph replay)", "value": "graph"},
                     {"label": " call by call (launch included)", "value": "events"}]))),
        html.Div(id=f"{P}-bsr-note"),
        dcc.Graph(id=f"{P}-bsr-plot", config={"displaylogo": False}),
        html.H3("Per call and kernel-only, side by side (64 x 64 blocks, n = 8192, fp16)"),
        _percall_note(percall),
        data_table(f"{P}-bsr-percall", percall),
        csv_download(f"{P}-bsr-percall-csv"),
        html.H3("This lab's goals for its kernel (64 x 64 blocks)"),
        data_table(f"{P}-bsr-targets", []),
        csv_download(f"{P}-bsr-targets-csv"),
        html.H3("All benchmark rows"),
        data_table(f"{P}-bsr-table", [], page_size=8),
        csv_download(f"{P}-bsr-csv"),
        note="From benchmarks/bsr_bench.py, committed as benchmarks/results/bsr_bench.csv: dense "
             "torch.matmul, torch BSR and lab-bsr (engine/sparse/kernels/bsr_matmul.py, Triton) on the "
             "same A (n x n, uniform random b x b blocks) and B (n x k), in one run. The goals are "
             "this lab's, set from the theory: at least half of the ideal 1/density at 90 % "
             "(5x of 10x), 80 % of it at 50 % (1.6x of 2x, the chapter's block-sparse efficiency), "
             "15x stock torch BSR at 90 %, and as fast as dense from 40 % zeros. "
             "docs/bsr_kernel.md explains what limits the kernel. Your own lab-bsr rows come from "
             "the timing sweep on a GPU.")


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
        dcc.Tabs(id=f"{P}-tabs", value="patterns", className="page-tabs", children=[
            dcc.Tab(label=label, value=value, id=f"{P}-tab-{value}", children=build())
            for value, label, build in (
                ("patterns", "One matrix, three patterns", _pattern_section),
                ("timing", "Timing against dense", _timing_section),
                ("kernel", "The lab's kernel (lab-bsr)", _kernel_section),
                ("accuracy", "Accuracy cost", _accuracy_section))
        ]),
    ])


for _id, _source, _name in (
        ("pattern", f"{P}-pattern-table", "structured_patterns.csv"),
        ("breakeven", f"{P}-breakeven", "structured_break_even.csv"),
        ("time", f"{P}-time-table", "structured_sparsity_timing_rows.csv"),
        ("acc", f"{P}-acc-table", "structured_accuracy.csv"),
        ("bsr", f"{P}-bsr-table", "bsr_bench.csv"),
        ("bsr-targets", f"{P}-bsr-targets", "bsr_targets.csv"),
        ("bsr-percall", f"{P}-bsr-percall", "bsr_percall_side_by_side.csv"),
        ("chapter", f"{P}-chapter", "structured_chapter_accuracy.csv")):
    register_csv_download(f"{P}-{_id}-csv", (_source, "data"), _name)


# --------------------------------------------------------------------------- callbacks

@callback(Output(f"{P}-heatmaps", "figure"), Output(f"{P}-pattern-table", "data"),
          Output(f"{P}-pattern-table", "columns"), Output(f"{P}-pattern-msg", "children"),
          Input(f"{P}-sparsity", "value"), Input(f"{P}-block", "value"), Input(f"{P}-nm", "value"),
          Input(f"{P}-size", "value"))
def draw_patterns(sparsity, block_index, nm, size):
    """Sliders -> the same matrix pruned three ways, and a row per pattern."""
    try:
        block = BLOCK_SIZES[check_int("block size", block_index, 0, len(BLOCK_SIZES) - 1)]
        view = pattern_view(size, sparsity, block, nm)
    except ValueError as exc:
        return dash.no_update, [], [], error_message(exc)
    rows = list(view.rows)
    note = None
    if block >= view.size:
        note = message(f"A {block} x {block} block covers the whole {view.size} x {view.size} matrix: "
                       "block pruning can only keep all of it or nothing.", "warn")
    return pattern_heatmaps(view), rows, table_columns(pd.DataFrame(rows), UNITS), note


@callback(Output(f"{P}-t-notes", "children"),
          Input(f"{P}-t-size", "value"), Input(f"{P}-t-k", "value"), Input(f"{P}-t-dtype", "value"),
          Input(f"{P}-t-blocks", "value"), Input(f"{P}-t-sparsities", "value"),
          Input(f"{P}-t-nm", "value"), Input(f"{P}-t-repeats", "value"))
def timing_notes(size, k, dtype, blocks, sparsities, nm, repeats):
    """Before a run: bad input, and which backends this device cannot run (and why)."""
    dev = describe_device()
    try:
        config = build_sweep_config(size, k, dtype, blocks, sparsities, nm, repeats, device=dev.kind)
    except ValueError as exc:
        return error_message(exc)
    names = list(config.block_backends) + ([NM_BACKEND] if config.nm_sizes else [])
    notes = []
    for name in names:
        reasons = {}  # every ticked block is checked (lab-bsr runs only some block sizes)
        for block in (config.blocks or (16,)) if name != NM_BACKEND else (4,):
            reason = unsupported_reason(name, SimpleSpec(device=dev.kind, dtype=config.dtype, op="spmm",
                                                         shape=(config.size, config.size), block=block))
            if name == NM_BACKEND and dev.kind != "cuda":
                reason = NEEDS_GPU
            if reason:
                reasons.setdefault(reason, []).append(block)
        for reason, blocks in reasons.items():
            where = "" if name == NM_BACKEND or len(blocks) == len(config.blocks or (16,)) else \
                f" (block {', '.join(map(str, blocks))})"
            notes.append(f"{name}{where}: {reason}")
    text = (f"{config.total} rows planned on {dev.label}."
            + (" Shown as unsupported, never drawn: " + "; ".join(notes) if notes else ""))
    return message(text, "warn" if notes else "info")


@callback(Output(f"{P}-ref", "options"), Output(f"{P}-ref", "value"), Input(f"{P}-ref", "id"))
def reference_options(_id):
    """Committed runs of this sweep (engine.bench.reference), newest first."""
    opts = [{"label": f"{r.name} ({r.label})", "value": r.name} for r in references("structured")]
    return opts, (opts[0]["value"] if opts else None)


def load_reference_rows(name: str) -> tuple[pd.DataFrame, str]:
    """A committed run of this sweep (only listed ones) and its device label."""
    ref = find(name, "structured")
    return ref.frame(), short_device(ref.device_name)


def cancelled_of(status, total) -> int | None:
    """The planned row count when the job's status line says it was cancelled, else None."""
    if not str(status or "").startswith("cancelled"):
        return None
    try:
        return int(float(total))
    except (TypeError, ValueError):
        return None


def timing_frame(rows, ref_path, cancelled_total: int | None = None) -> tuple[pd.DataFrame, object]:
    """Local rows (+ reference rows) with a "source" column naming the device; a cancelled
    run is named so ("this run: CPU (cancelled: 32 of 74 rows)") in every legend and table."""
    local = pd.DataFrame(rows or [])
    parts, note = [], None
    if len(local):
        name = str(local["device_name"].dropna().iloc[0]) if local["device_name"].notna().any() else "?"
        cut = f" (cancelled: {len(local)} of {cancelled_total} rows)" if cancelled_total else ""
        parts.append(local.assign(source=f"this run: {name.replace('NVIDIA ', '')}{cut}"))
    if ref_path:
        try:
            ref, label = load_reference_rows(ref_path)
            parts.append(ref.assign(source=f"reference: {label}"))
            note = message(f"Reference: {label}, from benchmarks/results/"
                           f"{ref_path} ({len(ref)} rows, measured by "
                           "benchmarks/gpu_structured_sparsity.py; see docs/structured-sparsity.md).",
                           "info")
        except (ValueError, OSError, KeyError) as exc:
            note = error_message(exc)
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return frame, note


def records(frame: pd.DataFrame) -> list[dict]:
    """Table rows with NaN/inf as empty cells (JSON has no NaN)."""
    if not len(frame):
        return []
    clean = frame.replace([float("inf"), float("-inf")], None).astype(object)
    return clean.where(clean.notna(), None).to_dict("records")


TIME_TABLE_COLUMNS = ["source", "part", "backend", "block", "sparsity", "density", "dtype", "rows",
                      "k", "status", "median_ms", "iqr_ms", "speedup", "theoretical", "efficiency",
                      "noisy", "message"]
# Units shown in the table headers of this page (the CSV keeps the plain column names).
UNITS = {"median_ms": "ms", "iqr_ms": "ms", "speedup": "x dense", "theoretical": "x, 1/density",
         "efficiency": "speedup / theoretical", "block": "b x b", "energy_kept": "share of sum w²",
         "kept": "entries", "drop_pts": "points",
         "seconds": "s", "ms_events": "ms", "speedup_vs_dense": "x",
         "speedup_vs_dense_events": "x", "speedup_vs_torch_bsr": "x"}


def in_ms(frame: pd.DataFrame) -> pd.DataFrame:
    """median_s / iqr_s as median_ms / iqr_ms (what the table shows)."""
    out = frame.copy()
    for col in ("median_s", "iqr_s"):
        if col in out:
            out[col.replace("_s", "_ms")] = 1e3 * pd.to_numeric(out.pop(col), errors="coerce")
    return out


@callback(Output(f"{P}-speedup", "figure"), Output(f"{P}-efficiency", "figure"),
          Output(f"{P}-breakeven-plot", "figure"), Output(f"{P}-nm-plot", "figure"),
          Output(f"{P}-breakeven", "data"), Output(f"{P}-breakeven", "columns"),
          Output(f"{P}-time-table", "data"), Output(f"{P}-time-table", "columns"),
          Output(f"{P}-ref-note", "children"),
          Input(TIME_IDS.rows, "data"), Input(f"{P}-ref", "value"), Input(TIME_IDS.status, "children"),
          State(TIME_IDS.progress, "max"))
def draw_timing(rows, ref_path, status=None, total=None):
    """Timing rows (+ an optional reference CSV) -> speedup, efficiency, break-even, 2:4, tables."""
    frame, note = timing_frame(rows, ref_path, cancelled_of(status, total))
    be = pd.DataFrame()
    if len(frame):
        be = pd.concat([break_even_by_block(g).assign(source=src)
                        for src, g in frame.groupby("source", sort=False)], ignore_index=True)
    shown = in_ms(frame)
    table = shown[[c for c in TIME_TABLE_COLUMNS if c in shown]] if len(frame) else frame
    be_table = be[["block", "backend", "break_even", "note", "source", "dtype", "rows", "k"]] \
        if len(be) else be
    return (speedup_figure(frame), efficiency_figure(frame), break_even_figure(be), nm_figure(frame),
            records(be_table), table_columns(be_table, UNITS), records(table), table_columns(table, UNITS),
            note)


ACC_TABLE_COLUMNS = ["model", "pattern", "target_sparsity", "sparsity", "seed", "acc_dense",
                     "acc_pruned", "acc_finetuned", "drop_pts", "epochs", "finetune_epochs", "seconds"]


@callback(Output(f"{P}-acc-plot", "figure"), Output(f"{P}-acc-table", "data"),
          Output(f"{P}-acc-table", "columns"), Output(f"{P}-chapter", "data"),
          Output(f"{P}-chapter", "columns"), Input(ACC_IDS.rows, "data"),
          Input(f"{P}-a-stage", "value"))
def draw_accuracy(rows, stage="finetuned"):
    """Accuracy rows -> the drop per pattern and model, our table, the chapter's beside ours."""
    frame = pd.DataFrame(rows or [])
    table = frame[[c for c in ACC_TABLE_COLUMNS if c in frame]] if len(frame) else frame
    chapter = chapter_beside_ours(frame)
    return (accuracy_figure(frame, check_choice("stage", stage, ("finetuned", "pruned"))),
            records(table), table_columns(table, UNITS), chapter,
            table_columns(pd.DataFrame(chapter)))


@callback(Output(f"{P}-bsr-plot", "figure"), Output(f"{P}-bsr-note", "children"),
          Output(f"{P}-bsr-targets", "data"), Output(f"{P}-bsr-targets", "columns"),
          Output(f"{P}-bsr-table", "data"), Output(f"{P}-bsr-table", "columns"),
          Input(f"{P}-bsr-timing", "value"))
def draw_bsr_bench(timing):
    """The committed lab-bsr benchmark: speedups, the lab's goals for it, every row."""
    empty = (empty_figure("No lab-bsr benchmark committed (benchmarks/results/bsr_bench.csv)."),
             None, [], [], [], [])
    try:
        timing = check_choice("timing", timing, TIMINGS)
        if BSR_BENCH not in {r.name for r in references("lab-bsr")}:
            return empty
        frame = load_bsr_bench(find(BSR_BENCH, "lab-bsr").path)
    except (ValueError, OSError) as exc:
        return (empty_figure("The lab-bsr benchmark could not be read."), error_message(exc),
                [], [], [], [])
    _ms, col, label = TIMINGS[timing]
    rows = sweep_rows(frame)
    device = ", ".join(sorted(set(frame["device"].dropna().astype(str))))
    first = frame.iloc[0]
    shape = (f"A {int(first['n'])} x {int(first['n'])}, B {int(first['n'])} x {int(first['k'])}, "
             f"{first['dtype']}; " if {"n", "k", "dtype"} <= set(frame) else "")
    goals = pd.DataFrame(targets(frame, timing))
    goals["reached"] = [f"{v:.1%}" if u == "sparsity" else f"{v:.2f}x"
                        for v, u in zip(goals["reached"], goals["unit"])]
    goals = goals[["target", "goal", "reached", "met", "block", "timing"]]
    met = int(goals["met"].sum())
    evens = []
    for method in ("lab-bsr", "torch-bsr"):
        be = break_even(frame, method, TARGET_BLOCK, timing)
        evens.append(f"{method} from {be:.0%} of the blocks zero" if be is not None
                     else f"{method} at no measured sparsity")
    note = html.Div([
        message(f"Measured on {device} (torch {first['torch']}, triton {first['triton']}, "
                f"{first['date']}); {shape}{len(rows)} rows of dense / torch BSR / lab-bsr. Shown: {label}.",
                "info"),
        message(f"{met} of the lab's {len(goals)} goals met at 64 x 64 blocks with this timing. As fast as "
                f"dense at 64 x 64: {'; '.join(evens)}.", "ok" if met == len(goals) else "warn"),
    ])
    shown = rows[[c for c in BSR_TABLE_COLUMNS if c in rows]]
    return (bsr_bench_figure(rows, col, label, device.replace("NVIDIA ", ""), TARGET_SPEEDUPS), note,
            records(goals), table_columns(goals), records(shown), table_columns(shown, UNITS))
