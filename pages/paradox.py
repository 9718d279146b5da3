"""/paradox: 90 % zeros, shouldn't we be 10x faster? Measure it on this device."""
from __future__ import annotations

import os
from contextlib import closing

import dash
import pandas as pd
from dash import Input, Output, State, callback, dcc, html

from components.chain_controls import control_id
from components.figures_bench import (bandwidth_figure, efficiency_figure, measured_table,
                                      measured_vs_chapter, per_call_figures, per_call_note,
                                      speedup_figure)
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import (controls_row, error_message, graph_pair, labelled, message,
                               page_header, section)
from components.pure_callback import PURE_LAYOUT, pure_callback, pure_reference_callback
from components.tables import (COLUMN_UNITS, register_csv_download, shown_columns, table_columns,
                               table_records, table_with_csv)
from engine.bench.bsr_runs import side_by_side
from engine.bench.measurement import NOISE_THRESHOLD, NOISY_LABEL, normalise_method
from engine.bench.reference import compare, find, local_device_label, references, short_device
from engine.bench.sweeps import LIMITS, ParadoxConfig, break_even, paradox_sweep
from engine.runtime.device import describe_device
from engine.sparse.formats import (DTYPES, PATTERN_LABELS, SimpleSpec, backend_names, bytes_break_even,
                                   get_backend)
from engine.runtime.store import RunStore, stored_rows_by_key
from engine.validate import memory_budget_bytes

dash.register_page(__name__, path="/paradox", name="Sparsity paradox", nav_name="Paradox", order=5,
                   description="Theoretical vs measured speedup of sparse formats against dense, "
                               "on this device, with break-even sparsity.",
                   pure_layout=PURE_LAYOUT)

P = "paradox"
IDS = job_ids(P)
DEFAULT_SPARSITIES = "0.5, 0.9, 0.95, 0.99"
DEFAULT_BACKENDS = ["torch-dense", "torch-csr", "torch-coo", "torch-bsr", "scipy-csr"]
# The widgets ParadoxConfig.from_form reads, in its argument order.
FORM = ("size", "k", "dtype", "pattern", "block", "sparsities", "backends", "ops", "repeats")


def ID(key: str) -> str:
    """The id of this page's component ``key`` ("size" -> "paradox-size")."""
    return control_id(P, key)


# The job takes the page's one spec, and the widget values it must have been built from: a
# click on Run right after an edit (the edit's blur sends the spec callback, the click the
# job, in the same instant) would otherwise start the spec of the values before the edit.
STATES = [State(ID("spec"), "data"), State(ID("reuse"), "value"), *[State(ID(w), "value") for w in FORM]]


def _num(what: str, value, step=1) -> dcc.Input:
    """A number box for one of the engine's LIMITS ("size", "k", "block", "repeats")."""
    lo, hi = LIMITS[what]
    return dcc.Input(id=ID(what), type="number", value=value, min=lo, max=hi, step=step, debounce=True,
                     style={"width": "9.5em"})


def build_config(size, k, dtype, pattern, block, sparsities, backends, ops, repeats,
                 device: str = "cpu") -> ParadoxConfig:
    """Widget values -> a validated ParadoxConfig (ValueError "expected ... got ...")."""
    return ParadoxConfig.from_form(size, k, dtype, pattern, block, sparsities, backends, ops, repeats,
                                   device=device, memory_budget_bytes=memory_budget_bytes())


def spec_of(data, device: str | None = None) -> ParadoxConfig:
    """The config the spec store holds (``spec``'s output); ValueError with its message.

    ``device``: the device the sweep will run on, when it is not the one the page saw (a
    job on a GPU worker of a CPU web host); the config is checked again for it."""
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        raise ValueError(data["error"])
    config = data.get("config") if isinstance(data, dict) else data
    if device is not None and isinstance(config, dict):
        config = dict(config, device=device)
    return ParadoxConfig.from_dict(config, memory_budget_bytes=memory_budget_bytes())


def plan(data, reuse, *form) -> JobPlan:
    """Runs inside the background job (so it may look at the GPU): the page's one spec
    (the ``spec`` store), for the device the job runs on; built again by ``spec`` from the
    widgets when the store is older than what they show (``form``)."""
    from engine.runtime.device import job_device, runtime_device_name

    if form and (not isinstance(data, dict) or data.get("form") != list(form)):
        data = spec(*form)
    dev = job_device("auto")
    config = spec_of(data, device=dev.type)
    name = runtime_device_name(dev)
    stored = {}
    if reuse:
        with closing(RunStore()) as store:
            stored = stored_rows_by_key(store, device_name=name, kind=P)
    rows = paradox_sweep(config, device_name=name, reuse=(lambda s: stored.get(s.key)) if reuse else None)
    params = {"size": config.sizes[0], "k": config.k, "dtype": config.dtypes[0], "pattern": config.pattern,
              "block": config.block, "sparsities": list(config.sparsities),
              "backends": list(config.backends), "ops": list(config.ops), "repeats": config.repeats}
    return JobPlan(rows=rows, total=config.total, params=params,
                   meta={"device_name": name, "pid": os.getpid(), "host": os.uname().nodename})


register_job(P, STATES, plan, kind=P, filename="paradox_rows.csv")


def _controls() -> html.Div:
    dev = describe_device()
    names = backend_names()
    return html.Div([
        controls_row(
            labelled("Matrix size n (n x n)", _num("size", 512)),
            labelled("k (columns of B, SpMM)", _num("k", 64)),
            labelled("dtype", dcc.Dropdown(id=ID("dtype"), options=list(DTYPES), value="float32",
                                           clearable=False, style={"width": "9em"})),
            labelled("Pattern", dcc.Dropdown(id=ID("pattern"), value="uniform", clearable=False,
                                             options=[{"label": v, "value": k} for k, v in PATTERN_LABELS.items()],
                                             style={"width": "100%", "minWidth": "12em"})),
            labelled("Block (BSR, block pattern)", _num("block", 16)),
            labelled("Repeats", _num("repeats", 10)),
        ),
        controls_row(
            labelled("Sparsities (fractions of zeros)",
                     dcc.Input(id=ID("sparsities"), type="text", value=DEFAULT_SPARSITIES,
                               debounce=True, style={"width": "18em"}),
                     help="comma-separated, e.g. 0.5, 0.9, 0.99, 0.999"),
            labelled("Ops", dcc.Checklist(id=ID("ops"), value=["spmv", "spmm"], inline=True,
                                          options=[{"label": " SpMV (A x) ", "value": "spmv"},
                                                   {"label": " SpMM (A B) ", "value": "spmm"}])),
            labelled("Backends", dcc.Checklist(id=ID("backends"), inline=True,
                                               value=[b for b in DEFAULT_BACKENDS if b in names],
                                               options=[{"label": f" {b} ", "value": b} for b in names])),
            labelled("Stored rows", dcc.Checklist(id=ID("reuse"), value=[], options=[
                {"label": " reuse rows already measured on this device", "value": "reuse"}])),
        ),
        dcc.Store(id=ID("spec"), data=None),
        html.Div(id=ID("notes")),
        job_panel(P, run_label="Run sweep",
                  note=f"Runs on {dev.label}. Dense is always measured first on the same matrix, "
                       "so every speedup compares like with like."),
    ])


def layout(**_kwargs):
    return html.Div([
        page_header(
            "The sparsity paradox",
            "A matrix that is 90 % zeros needs 10 % of the multiply-adds, so in theory it "
            "should run 10 times faster. Measure what you actually get: the same matrix is "
            "multiplied dense and in sparse formats (COO, CSR, BSR), and the measured speedup "
            "is drawn against the theoretical 1/density.",
            seed="the sparsity chapter, sections 10.1-10.2 (the sparsity paradox; why hardware hates random sparsity)"),
        html.P(["Have a matrix of your own (a Matrix Market file, a pruned weight)? ",
                dcc.Link("Measure it on Your matrix", href="/your-matrix", id=ID("your-matrix-link")),
                ": its structure, BSR fill-in, a roofline prediction and advice."], className="section-note"),
        section("Sweep", _controls(),
                note="Each finished row is stored at once: cancel keeps what finished; see Runs."),
        section("Speedup", controls_row(
            labelled("Plot op", dcc.RadioItems(id=ID("plot-op"), value="spmv", inline=True,
                                                options=[{"label": " SpMV ", "value": "spmv"},
                                                         {"label": " SpMM ", "value": "spmm"}])),
            html.Div([html.Label("Reference run (committed CSV)", className="control-label"),
                      dcc.Dropdown(id=ID("ref"), options=[], value=None, placeholder="none")],
                     className="control", style={"maxWidth": "560px", "flex": "1 1 420px"}),
        ), html.Div(id=ID("ref-note")),
            dcc.Graph(id=ID("speedup"), config={"displaylogo": False}),
            note="Solid lines: this device. Dotted lines with open diamonds: the reference run "
                 "(the legend names where it differs from this run: device, size n, dtype, timing). "
                 "Grey dashed: theoretical 1/density. Black stars: the chapter's measured speedups. "
                 f"Red dotted: speedup 1 (break-even). Hollow grey points: {NOISY_LABEL}."),
        html.Div([
            section("Efficiency", dcc.Graph(id=ID("efficiency"), config={"displaylogo": False}),
                    note="Measured speedup divided by the theoretical one: 1 would mean every "
                         "skipped multiply turned into saved time."),
            section("Bandwidth", dcc.Graph(id=ID("bandwidth"), config={"displaylogo": False}),
                    note="Bytes of A as stored, plus x and y, over the median time: the least "
                         "traffic the multiply needs. Dashed: the GPU's peak when known."),
        ], className="two-col"),
        html.Div([
            section("The chapter's table beside this device",
                    *table_with_csv(ID("chapter"), ID("chapter-csv"), rows=measured_vs_chapter(None)),
                    note="'theoretical' and 'chapter's actual' are the chapter's figures (it does "
                         "not name the device); 'measured' columns are this device's medians for "
                         "the plotted op and the sweep's dtype."),
            section("Break-even sparsity", *table_with_csv(ID("breakeven"), ID("breakeven-csv")),
                    note="Sparsity where a format's time equals dense time, interpolated between "
                         "the two measured sparsities around it. 'noisy': it rests on a noisy speedup (the "
                         f"format's time or dense's has {NOISY_LABEL.removeprefix('noisy (').rstrip(')')}), "
                         "so it is a reading of noisy timings, not a finding (the plot draws it hollow and "
                         "grey)."),
        ], className="two-col"),
        section("lab-bsr on a GPU: per call and kernel only, side by side",
                html.Div(id=ID("percall-note")),
                graph_pair(ID("percall"), ID("kernel")),
                *table_with_csv(ID("percall-table"), ID("percall-table-csv")),
                note="The lab's own block-sparse kernel against dense torch.matmul, from the newest "
                     "committed GPU run that times it both ways (the note above names its device, "
                     "date, file, block size, n and dtype). Left: what a Python caller gets per call "
                     "(eager, launch and host work included). Right: the kernel alone (CUDA-graph "
                     "replay). Each speedup compares lab-bsr and dense timed the same way."),
        section("Why the zeros do not turn into time",
                html.Div([
                    html.Div([
                        html.P("The chapter (10.2) gives three reasons. Memory: dense rows are read "
                               "in order and prefetched, while a sparse kernel jumps to wherever the "
                               "next non-zero lives. Indexing: every stored value drags its column "
                               "index along (and COO a row index too), so a sparse matrix stores "
                               "more bytes per useful number than a dense one. Parallelism: GPU "
                               "threads run in lockstep, and rows with different numbers of "
                               "non-zeros leave many of them idle."),
                        html.P(id=ID("bytes-note")),
                    ]),
                    html.Div(table_with_csv(ID("storage"), ID("storage-csv"))),
                ], className="two-col"),
                note="The table is a byte-count model for uniform random non-zeros at the chosen "
                     "size, dtype and block (torch stores int64 indices), not a measurement. A "
                     "memory-bound SpMV can at best run dense bytes / sparse bytes times faster."),
        section("Measured speedups", *table_with_csv(ID("measured"), ID("measured-csv"))),
        section("All rows", *table_with_csv(ID("rows-table"), ID("rows-table-csv"), page_size=10),
                note="The main columns of every row; Download CSV has all of them (spec, device, "
                     "versions, timing method, median, IQR, conversion time and derived columns). "
                     f"'noisy' marks IQR/median > {NOISE_THRESHOLD:g}. Unsupported combinations are listed with their "
                     "reason, never drawn."),
    ])


for _id, _name in (("chapter", "paradox_chapter_vs_measured.csv"), ("breakeven", "paradox_break_even.csv"),
                   ("measured", "paradox_measured_speedups.csv"), ("rows-table", "paradox_rows.csv"),
                   ("storage", "paradox_storage_model.csv"),
                   ("percall-table", "lab_bsr_per_call_vs_kernel.csv")):
    register_csv_download(ID(f"{_id}-csv"), (ID(_id), "data"), _name)


@pure_callback(Output(ID("spec"), "data"), *[Input(ID(w), "value") for w in FORM])
def spec(*values):
    """The page's widgets -> ONE validated sweep config (or its error), for every callback below."""
    try:
        return {"config": build_config(*values, device=describe_device().kind).to_dict(),
                "form": list(values)}
    except ValueError as exc:
        return {"error": str(exc), "form": list(values)}


@callback(Output(ID("notes"), "children"), Input(ID("spec"), "data"))
def notes(data):
    """Which ticked backends this device cannot run (and why), and how many rows are stored."""
    try:
        config = spec_of(data)
    except ValueError as exc:
        return error_message(exc)
    out = []
    for name in config.backends:
        reason = get_backend(name).supports(SimpleSpec(device=config.device, dtype=config.dtypes[0],
                                                       op=config.ops[0], shape=(config.sizes[0],) * 2,
                                                       block=config.block))
        if reason:
            out.append(message(f"{name}: unavailable: {reason.removeprefix('unsupported: ')}", "warn"))
    dev = describe_device()
    device_name = dev.name if dev.kind == "cuda" else "CPU: " + dev.name
    # Close at once: an SQLite handle left open in the server breaks the writes of
    # jobs forked from it (their rows would be lost).
    with closing(RunStore()) as store:
        stored = stored_rows_by_key(store, device_name=device_name, kind=P)
    have = sum(spec.key in stored for spec in config.specs())
    if have:
        out.append(message(f"{have} of {config.total} rows of this sweep are already stored for this "
                           "device; tick 'reuse rows' to show them without measuring again.", "info"))
    return out


@pure_reference_callback(Output(ID("ref"), "options"), Output(ID("ref"), "value"), Output(ID("ref"), "placeholder"),
          Input(ID("ref"), "id"))
def reference_options(_id):
    """Committed paradox runs (engine.bench.reference), the newest chosen; read at page load."""
    opts = [{"label": f"{r.name} ({r.label}, n = {', '.join(map(str, r.shape.get('rows', ())))})",
             "value": r.name} for r in references(P)]
    placeholder = "none" if opts else "none committed yet (benchmarks/results/ has no paradox run)"
    return opts, (opts[0]["value"] if opts else None), placeholder


@pure_reference_callback(Output(ID("speedup"), "figure"), Output(ID("efficiency"), "figure"),
          Output(ID("bandwidth"), "figure"), Output(ID("chapter"), "data"),
          Output(ID("chapter"), "columns"), Output(ID("breakeven"), "data"),
          Output(ID("breakeven"), "columns"), Output(ID("measured"), "data"),
          Output(ID("measured"), "columns"), Output(ID("rows-table"), "data"),
          Output(ID("rows-table"), "columns"), Output(ID("ref-note"), "children"),
          Input(IDS.rows, "data"), Input(ID("plot-op"), "value"), Input(ID("ref"), "value"))
def draw(rows, op, ref_path):
    """Rows of the current sweep (+ an optional reference CSV) -> figures and tables."""
    frame = rows_frame(rows)
    op = op if op in ("spmv", "spmm") else "spmv"
    ref_path = ref_path if isinstance(ref_path, str) else None
    if len(frame) and op not in set(frame["op"]):
        op = frame["op"].iloc[0]  # the sweep did not run the chosen op: show the one it ran
    local = frame[frame["op"] == op] if len(frame) else frame
    reference, labels, note = None, {}, None
    if ref_path:
        try:
            reference, labels, note = reference_beside(local, op, ref_path)
        except (ValueError, OSError, KeyError) as exc:
            reference, note = None, error_message(exc)
    be = break_even(local)
    shown_be = be.drop(columns=["device_name"]) if "device_name" in be else be
    out = [speedup_figure(local, reference, be, **labels), efficiency_figure(local, reference, **labels),
           bandwidth_figure(local, reference, **labels)]
    for t, units in ((measured_vs_chapter(local), None), (shown_be, {"break_even": "fraction of zeros"}),
                     (measured_table(local), None)):
        out += [table_records(t), table_columns(t, units)]
    out += [table_records(frame), table_columns(frame, COLUMN_UNITS, only=shown_columns(frame))]
    return (*out, note)


def reference_beside(local: pd.DataFrame, op: str, name: str):
    """(reference rows of ``op``, figure labels, note) for the committed run ``name``.

    The labels and the note name every way the reference differs from the local rows
    (device, n, k, dtype, timing method): "H100 80GB HBM3, n = 8192 · this CPU, n = 512".
    """
    ref = find(name, P)
    rows = ref.frame()
    rows = rows[rows["op"] == op]
    ok = local[local["status"].isin(["ok", "reused"])] if len(local) else local
    if len(ok):
        dtype = str(ok["dtype"].iloc[0])
        method = next((m for m in map(normalise_method, ok["method"].dropna()) if m), None) \
            if "method" in ok else None
        dims = {"rows": sorted(set(ok["rows"].astype(int))), "k": sorted(set(ok["k"].astype(int)))}
        match = compare(ref, device_name=str(ok["device_name"].iloc[0]), dims=dims, dtype=dtype, method=method)
    else:
        dtype, match = "float32", compare(ref)
    if "dtype" in rows and dtype not in set(rows["dtype"]) and len(rows):
        dtype = str(rows["dtype"].iloc[0])  # the reference never ran this dtype: show its own (named below)
    rows = rows[rows["dtype"] == dtype] if "dtype" in rows else rows
    where = f"{ref.name} ({ref.date}, {len(rows)} rows of {dtype} {op}; the GPU script, see docs/paradox.md)"
    common = shared_backends(ok, rows, ref.device_name)
    if not len(ok):
        text, kind = f"Reference: {short_device(ref.device_name)}, from {where}.", "info"
        labels = {"ref_label": f"reference: {short_device(ref.device_name)}"}
    elif match.same:
        text, kind = f"Reference: {match.label}, from {where}.", "info"
        labels = {"ref_label": f"reference: {short_device(ref.device_name)}", "local_label": "this run"}
    else:
        text = f"{match.unlike_text}; reference from {where}."
        kind = "warn"
        labels = {"ref_label": f"reference: {match.reference_text}", "local_label": match.local_text}
    if common:
        text, kind = f"{text} {common}", "warn"
    return rows, labels, message(text, kind)


def shared_backends(local: pd.DataFrame, reference: pd.DataFrame, ref_device: str) -> str | None:
    """None when this run and the reference drew a sparse backend in common (or either drew
    none); else the sentence that says they did not: "No backend in common: this CPU ran
    torch-coo, the reference torch-csr (each against its own dense)." """
    def drawn(frame: pd.DataFrame) -> list[str]:
        if not len(frame) or "backend" not in frame:
            return []
        measured = frame[frame["status"].isin(["ok", "reused"])] if "status" in frame else frame
        return sorted(set(measured["backend"]) - {"torch-dense"})

    mine, theirs = drawn(local), drawn(reference)
    if not mine or not theirs or set(mine) & set(theirs):
        return None
    who = local_device_label(str(local["device_name"].iloc[0])) if "device_name" in local else "this run"
    return (f"No backend in common: {who} ran {', '.join(mine)}, the reference "
            f"({short_device(ref_device)}) {', '.join(theirs)} (each against its own dense); no line "
            f"of one has a line of the other to compare with.")


def rows_frame(rows) -> pd.DataFrame:
    """The job's rows as a frame; anything that is not a list of benchmark rows gives an empty one."""
    needed = {"op", "backend", "sparsity", "status", "dtype"}
    if not isinstance(rows, list) or not all(isinstance(r, dict) and needed <= set(r) for r in rows):
        return pd.DataFrame()
    return pd.DataFrame(rows)


@pure_callback(Output(ID("storage"), "data"), Output(ID("storage"), "columns"),
          Output(ID("bytes-note"), "children"), Input(ID("spec"), "data"))
def storage(data):
    """The byte-count model for the sweep's size, dtype, block and sparsities."""
    try:
        config = spec_of(data)
    except ValueError as exc:
        return [], [], error_message(exc)
    table, dtype = config.storage_model(), config.dtypes[0]
    note = (f"In {dtype}, CSR needs fewer bytes than dense only above "
            f"{100 * bytes_break_even('csr', dtype):.0f}% sparsity, COO above "
            f"{100 * bytes_break_even('coo', dtype):.0f}%.")
    return table_records(table), table_columns(table), note


@pure_reference_callback(Output(ID("percall"), "figure"), Output(ID("kernel"), "figure"),
          Output(ID("percall-table"), "data"), Output(ID("percall-table"), "columns"),
          Output(ID("percall-note"), "children"), Input(ID("percall"), "id"))
def per_call(_id):
    """lab-bsr per call (eager) beside kernel only (CUDA-graph replay), from the newest committed
    run that times it both ways (engine.bench.bsr_runs.side_by_side: a file that cannot be
    read gives a note, not an error)."""
    view = side_by_side()
    call, kernel = per_call_figures(view.table)
    return call, kernel, table_records(view.table), table_columns(view.table), per_call_note(view)
