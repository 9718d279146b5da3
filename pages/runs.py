"""/runs: every stored run; open one, compare two, delete, export and import CSV."""
from __future__ import annotations

import base64
import io
from pathlib import Path
import binascii
from contextlib import closing

import dash
import pandas as pd
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from components.figures_bench import compare_figure
from components.layout import controls_row, labelled, message, page_header, section
from components.run_views import compare_note, run_labels
from components.tables import (COLUMN_UNITS, csv_payload, data_table, fitting_columns, shown_columns,
                               table_columns)
from engine.bench.reference import find, references
from engine.bench.run_compare import (PREFERRED_X, PREFERRED_Y, choose_slices, compare_runs, numeric_columns,
                                      pick_axis, select, series_column, slice_text)
from engine.bench.schema import KIND_OK_REQUIRED, KIND_STATUSES, SCHEMAS, kind_of_columns
from engine.runtime.store import (IMPORT_MAX_BYTES, RunStore, check_header, csv_header, import_csv,
                                  mark_dead_runs)

dash.register_page(__name__, path="/runs", name="Runs", order=10,
                   description="Every stored sweep: open, compare two runs in one plot, "
                               "delete, export and import CSV.")

P = "runs"
RUN_COLUMNS = ["created", "kind", "op", "device", "status", "rows", "run_id"]



# What each kind of run times or trains, for kinds whose rows name no "op".
KIND_OPS = {"attention": "masked attention (SDPA, FlexAttention)", "moe-timing": "MoE layer vs dense FFN",
            "moe-router": "router training", "isomorphism-timing": "conv vs its sparse matrix",
            "paper-training": "training epochs (native vs sparse-matrix layers)",
            "structured-matrices": "structured matrix x batch", "structured-accuracy": "prune + fine-tune",
            "your-matrix": "spmv / spmm on an uploaded matrix"}
NOT_RECORDED = "not recorded in the rows"


def run_table_rows(store: RunStore) -> list[dict]:
    """One dict per stored run, newest first (first marks runs whose job process is gone as "died")."""
    mark_dead_runs(store)
    out = []
    for r in store.list_runs():
        out.append({"created": r.get("created", ""), "kind": r.get("kind", ""), "op": run_ops(r),
                    "device": run_device(store, r), "status": r.get("status", ""), "rows": r.get("n_rows", 0),
                    "run_id": r["run_id"]})
    return out


def run_device(store: RunStore, meta: dict) -> str:
    """The device a run ran on: from its metadata, else from its first row's device_name / device."""
    params = meta.get("params") or {}
    named = meta.get("device_name") or params.get("device_name") or meta.get("device")
    if named:
        return str(named)
    first = (store.first_row(meta["run_id"]) or {}) if meta.get("n_rows") else {}
    return str(first.get("device_name") or first.get("device") or NOT_RECORDED)


def run_ops(meta: dict) -> str:
    """Which ops a run measured, from its parameters or metadata, else what its kind does."""
    params = meta.get("params") or {}
    ops = meta.get("ops") or params.get("ops") or params.get("op") or KIND_OPS.get(meta.get("kind"), "")
    return ", ".join(map(str, ops)) if isinstance(ops, (list, tuple)) else str(ops)


def run_label(meta: dict) -> str:
    dev = (meta.get("device_name") or "").replace("NVIDIA ", "")
    return f"{meta.get('created', '')} {meta.get('kind', '')} {dev} ({meta.get('n_rows', 0)} rows, {meta.get('status', '')})"


def decode_upload(contents: str) -> bytes:
    """dcc.Upload contents ("data:<type>;base64,<data>") -> bytes; ValueError otherwise."""
    if not contents or "," not in contents:
        raise ValueError("file: expected an uploaded CSV, got nothing")
    header, data = contents.split(",", 1)
    if ";base64" not in header:
        raise ValueError(f"file: expected base64 upload data, got {header[:40]!r}")
    if len(data) * 3 // 4 > IMPORT_MAX_BYTES:
        raise ValueError(f"file size: expected at most {IMPORT_MAX_BYTES // 2**20} MB, "
                         f"got {len(data) * 3 / 4 / 2**20:.1f} MB")
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("file: expected base64 upload data, got undecodable bytes") from None


def import_upload(store: RunStore, raw: bytes, filename: str) -> str:
    """Validate and store an uploaded CSV as a run of the kind it is: the value of its
    'sweep' column on every row, or for kinds without one, the kind its columns show."""
    name = filename or "upload.csv"
    if not name.lower().endswith(".csv"):
        raise ValueError(f"file name: expected a .csv file, got {name!r}")
    kind = upload_kind(raw)
    return import_csv(store, raw, kind, SCHEMAS[kind], filename=name, ok_required=KIND_OK_REQUIRED.get(kind, ()),
                      statuses=KIND_STATUSES.get(kind))


def upload_kind(raw: bytes) -> str:
    """The kind of run an uploaded CSV holds (ValueError "expected ... got ..." otherwise).

    The header is read as written (a repeated column is refused, not renamed) and its
    width capped before pandas parses anything; a 'sweep' column is read on every row.
    """
    text = raw.decode("utf-8-sig", errors="replace")
    header = csv_header(text)
    check_header(header, header)  # width and repeats first; unknown columns per kind below
    if "sweep" not in header:
        kind = kind_of_columns(header)
        if kind is None:
            raise ValueError("columns: expected a 'sweep' column naming the kind of run, or the columns of "
                             f"one of {', '.join(SCHEMAS)}, got {', '.join(header[:8])[:120]}")
        return kind
    frame = pd.read_csv(io.StringIO(text), usecols=["sweep"], dtype=str, keep_default_na=False)
    kinds = sorted(set(frame["sweep"]))
    if len(kinds) != 1 or kinds[0] not in SCHEMAS:
        raise ValueError(f"column sweep: expected one of {', '.join(k for k in SCHEMAS if 'sweep' in SCHEMAS[k])} "
                         f"on every row, got {', '.join(map(repr, kinds[:5])) or 'nothing'}")
    return kinds[0]


def wide_control(label: str, control) -> html.Div:
    """A labelled control wider than the default (run labels are long)."""
    return html.Div([html.Label(label, className="control-label"), control], className="control",
                    style={"maxWidth": "560px", "flex": "1 1 420px"})


def layout(run=None, **_kwargs):
    """``run``: a run id to open (the home page's "Recent runs" link here with ?run=<id>)."""
    opened = _text(run)
    return html.Div([
        page_header("Runs",
                    "Every sweep the lab has stored, from any page, the CLI or an import: open one "
                    "to see its rows, compare two in one plot (this CPU against a GPU reference, "
                    "say), export it as CSV, delete it, or import a CSV made elsewhere."),
        dcc.Store(id=f"{P}-version", data=0),
        dcc.Store(id=f"{P}-select", data=None),
        section("Stored runs", controls_row(
            html.Button("Refresh", id=f"{P}-refresh", className="btn btn-secondary", n_clicks=0),
            dcc.Upload(html.Button("Import CSV", className="btn btn-primary"), id=f"{P}-upload",
                       accept=".csv,text/csv", max_size=IMPORT_MAX_BYTES, multiple=False),
        ), html.Div(id=f"{P}-msg"),
            data_table(f"{P}-table", pd.DataFrame(columns=RUN_COLUMNS), page_size=10),
            note="A cancelled run shows 'cancelled'; a run whose job process is gone (killed or "
                 "crashed) shows 'died'. Both keep every finished row. Imports are checked (columns, "
                 "types, empty numbers, size, spreadsheet formulas); a bad file stores nothing."),
        section("Open and compare", controls_row(
            # the opened run is an option from the start (the list fills in after the page loads,
            # and a dropdown whose value is not among its options shows none)
            wide_control("Run", dcc.Dropdown(id=f"{P}-open", options=[opened] if opened else [], value=opened,
                                             placeholder="choose a run")),
            wide_control("Compare with", dcc.Dropdown(id=f"{P}-compare", options=[], placeholder="(none)")),
        ), controls_row(
            labelled("x", dcc.Dropdown(id=f"{P}-x", options=["sparsity"], value="sparsity", clearable=False,
                                       style={"width": "100%"})),
            labelled("y", dcc.Dropdown(id=f"{P}-y", options=["speedup"], value="speedup", clearable=False,
                                       style={"width": "100%"})),
            labelled("Filter op", dcc.Dropdown(id=f"{P}-op", options=[], value=None, placeholder="all",
                                               style={"width": "100%"})),
            labelled("Filter dtype", dcc.Dropdown(id=f"{P}-dtype", options=[], value=None,
                                                  placeholder="all", style={"width": "100%"})),
            html.Div([
                html.Button("Export CSV", id=f"{P}-export", className="btn btn-secondary", n_clicks=0),
                dcc.Download(id=f"{P}-download"),
                html.Button("Delete run", id=f"{P}-delete", className="btn btn-secondary", n_clicks=0),
                dcc.ConfirmDialog(id=f"{P}-confirm", message="Delete this run and all its rows?"),
            ], className="control"),
        ), html.Div(id=f"{P}-facts"),
            dcc.Graph(id=f"{P}-plot", config={"displaylogo": False}),
            html.Div(id=f"{P}-note"),
            data_table(f"{P}-rows", [], page_size=10),
            note="The table under the plot shows the opened run's main columns (those that differ between rows "
                 "first); Export CSV has every column."),
    ])


@callback(Output(f"{P}-table", "data"), Output(f"{P}-table", "columns"),
          Output(f"{P}-open", "options"), Output(f"{P}-compare", "options"),
          Output(f"{P}-open", "value"),
          Input(f"{P}-version", "data"), Input(f"{P}-refresh", "n_clicks"),
          State(f"{P}-select", "data"), State(f"{P}-open", "value"))
def list_runs(_version, _clicks, select, current):
    """The run table and the run choices; after an import or delete, open what it says."""
    select, current = _text(select), _text(current)
    with closing(RunStore()) as store:
        rows = run_table_rows(store)
        frame = pd.DataFrame(rows, columns=RUN_COLUMNS)
        opts = [{"label": run_label(m), "value": m["run_id"]} for m in store.list_runs()]
        refs = reference_options()
        ids = {o["value"] for o in opts + refs}
        value = select if select in ids else (current if current in ids else None)
        return frame.to_dict("records"), table_columns(frame), opts + refs, refs + opts, value


def reference_options() -> list[dict]:
    """Every committed reference run (engine.bench.reference), for "Run" and "Compare with"."""
    return [{"label": f"committed {r.kind} reference: {r.name} ({r.label})", "value": REF + r.name}
            for r in references()]


@callback(Output(f"{P}-confirm", "displayed"), Input(f"{P}-delete", "n_clicks"),
          State(f"{P}-open", "value"), prevent_initial_call=True)
def ask_delete(clicks, run_id):
    return bool(clicks and _text(run_id))


@callback(Output(f"{P}-msg", "children"), Output(f"{P}-version", "data"),
          Output(f"{P}-select", "data"),
          Input(f"{P}-upload", "contents"), Input(f"{P}-confirm", "submit_n_clicks"),
          State(f"{P}-upload", "filename"), State(f"{P}-open", "value"), State(f"{P}-version", "data"),
          prevent_initial_call=True)
def change_store(contents, _confirmed, filename, open_id, version):
    """Import an uploaded CSV, or delete the opened run (after the confirm dialog)."""
    contents, filename, open_id = _text(contents), _text(filename), _text(open_id)
    version = version if isinstance(version, int) and not isinstance(version, bool) else 0
    with closing(RunStore()) as store:
        version = (version or 0) + 1
        if _trigger() == f"{P}-upload":
            if not contents:
                return no_update, no_update, no_update
            try:
                run_id = import_upload(store, decode_upload(contents), filename)
            except ValueError as exc:
                return message(f"Import rejected, nothing stored: {exc}", "error"), version, no_update
            n = store.meta(run_id)["n_rows"]
            return message(f"Imported {n} rows from {filename} as run {run_id}.", "ok"), version, run_id
        if not open_id:
            return message("Choose a run to delete first.", "warn"), no_update, no_update
        try:
            store.delete(open_id)
        except KeyError as exc:
            return message(str(exc), "error"), version, None
        return message(f"Deleted run {open_id}.", "ok"), version, None


REF = "ref:"


def load_run(store: RunStore, key: str):
    """(meta, rows frame) of a stored run id, or of a committed reference CSV ("ref:<path>")."""
    if key.startswith(REF):
        try:
            ref = find(key[len(REF):])
            frame = ref.frame()
        except (ValueError, OSError):
            return None
        return ({"run_id": Path(ref.name).name, "kind": ref.kind, "status": "committed reference",
                 "created": ref.date, "device_name": ref.device_name, "n_rows": len(frame),
                 "params": {"file": ref.name, **({"dtypes": ", ".join(ref.dtypes)} if ref.dtypes else {}),
                            "timing": ", ".join(ref.methods) or "not recorded"}}, frame)
    try:
        return store.meta(key), store.frame(key)
    except KeyError:
        return None


def _text(value):
    """``value`` if it is a non-empty string, else None (widgets send strings; anything else is noise)."""
    return value if isinstance(value, str) and value else None


def _trigger():
    """Id of the input that fired the running callback (a function so tests can replace it)."""
    return ctx.triggered_id


@callback(Output(f"{P}-facts", "children"), Output(f"{P}-plot", "figure"),
          Output(f"{P}-rows", "data"), Output(f"{P}-rows", "columns"),
          Output(f"{P}-x", "options"), Output(f"{P}-y", "options"),
          Output(f"{P}-op", "options"), Output(f"{P}-dtype", "options"),
          Output(f"{P}-x", "value"), Output(f"{P}-y", "value"), Output(f"{P}-note", "children"),
          Input(f"{P}-open", "value"), Input(f"{P}-compare", "value"), Input(f"{P}-x", "value"),
          Input(f"{P}-y", "value"), Input(f"{P}-op", "value"), Input(f"{P}-dtype", "value"),
          Input(f"{P}-version", "data"))
def show(run_id, other_id, x, y, op, dtype, _version):
    """The opened run's facts, rows and a plot (with the compared run in the same plot):
    x and y from the opened run's numeric columns, one op and one dtype per curve, and a
    note naming how the two runs differ."""
    run_id, other_id, op, dtype = _text(run_id), _text(other_id), _text(op), _text(dtype)
    x, y = _text(x), _text(y)
    with closing(RunStore()) as store:
        frames = [loaded for rid in (run_id, other_id) if rid
                  for loaded in [load_run(store, rid)] if loaded is not None]
    if not frames:
        keep = [v for v in (x, y) if v]
        return (message("Choose a run above to open it.", "info"), compare_figure([], x or "sparsity", y or "speedup"),
                [], [], [x] if x else keep, [y] if y else keep, [], [], no_update, no_update, [])
    meta0, frame0 = frames[0]
    numeric = numeric_columns(frame0)
    x = pick_axis(x, numeric, PREFERRED_X)
    y = pick_axis(y, numeric, PREFERRED_Y, avoid=x)
    slices = choose_slices([f for _m, f in frames], {"op": op, "dtype": dtype})
    drawn = [select(f, s) for (_m, f), s in zip(frames, slices)]
    both_drawn = len(frames) == 2 and all(len(d) for d in drawn)
    match = compare_runs(meta0, drawn[0], frames[1][0], drawn[1]) if both_drawn else None
    labels = run_labels(frames, match, slices)
    shown = {slice_text(s) for s in slices if s}
    if x and y:
        fig = compare_figure(list(zip(labels, drawn)), x, y, series=series_column(drawn),
                             shown=shown.pop() if len(shown) == 1 else "")
    else:
        fig = compare_figure([], "sparsity", "speedup")
    note = compare_note(frames, drawn, slices, match, fig, labels, x, y, bool(op or dtype)) if x and y else \
        [message(f"The opened run ({meta0['kind']}) has no numeric column to plot; its rows are below.", "info")]
    facts = html.Table([html.Tr([html.Th(k), html.Td(str(v))]) for k, v in (
        ("run", meta0["run_id"]), ("kind", meta0["kind"]), ("status", meta0["status"]),
        ("created", meta0.get("created", "")), ("finished", meta0.get("finished", "")),
        ("device", meta0.get("device_name", "")), ("rows", meta0["n_rows"]),
        ("parameters", ", ".join(f"{k}={v}" for k, v in (meta0.get("params") or {}).items()
                                 if v not in ("", None, [], ()))[:300]),
    )], className="facts")
    shown_rows = select(frame0, {c: v for c, v in (("op", op), ("dtype", dtype)) if v})
    clean = shown_rows.replace([float("inf"), float("-inf")], None).astype(object)
    clean = clean.where(clean.notna(), None)
    both = pd.concat([f for _, f in frames], ignore_index=True)
    ops = sorted(both["op"].dropna().astype(str).unique()) if "op" in both else []
    dtypes = sorted(both["dtype"].dropna().astype(str).unique()) if "dtype" in both else []
    return (facts, fig, clean.to_dict("records"),
            table_columns(shown_rows, COLUMN_UNITS, only=fitting_columns(shown_rows, shown_columns(shown_rows))),
            numeric, numeric, ops, dtypes, x, y, note)


@callback(Output(f"{P}-download", "data"), Input(f"{P}-export", "n_clicks"),
          State(f"{P}-open", "value"), prevent_initial_call=True)
def export(_clicks, run_id):
    run_id = _text(run_id)
    if not run_id:
        return no_update
    with closing(RunStore()) as store:
        loaded = load_run(store, run_id)
    if loaded is None:
        return no_update
    name = Path(run_id[len(REF):]).stem if run_id.startswith(REF) else run_id
    return csv_payload(loaded[1], f"run_{name}.csv")
