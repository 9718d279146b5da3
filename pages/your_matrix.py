"""/your-matrix: your own matrix on this device: structure, fill-in, roofline, measurement, advice."""
from __future__ import annotations

import base64
import binascii
import os
from pathlib import Path

import dash
import numpy as np
from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from components.chain_controls import control_id
from components.figures_matrix import (bandwidth_figure, predicted_measured_figure,
                                       row_length_figure, spy_figure)
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import controls_row, error_message, labelled, message, page_header, section
from components.pure_callback import PURE_LAYOUT, pure_callback
from components.tables import csv_download, data_table, register_csv_download, table_columns, table_with_csv
from engine.bench.matrix_sweep import (K_LIMITS, KIND, REPEATS_LIMITS, MatrixSweepConfig,
                                       efficiency_table, recommendation)
from engine.bench.roofline import (ABOVE_ROOFLINE, OFF_ROOFLINE, CalibrationPlan, Structure,
                                   calibrate, load_calibration, predict)
from engine.runtime.device import describe_device
from engine.sparse.formats import DTYPES
from engine.sparse.user_matrix import (FACT_LABELS, SUFFIXES, LoadedMatrix, check_file_size,
                                       load_matrix_bytes, load_stored, max_upload_bytes,
                                       safetensors_choices, store_matrix, stored_info,
                                       structure_summary, suffix_of, to_mtx_bytes, reordered)
from engine.validate import check_choice, check_int

dash.register_page(__name__, path="/your-matrix", name="Your matrix", order=5.5,
                   description="Upload your own matrix (.mtx, .npz, .npy, .safetensors): its "
                               "structure and BSR fill-in, a roofline prediction per format, a "
                               "measurement on this device and a recommendation.",
                   pure_layout=PURE_LAYOUT)

P = "matrix"
CAL = "matrix-cal"
IDS, CAL_IDS = job_ids(P), job_ids(CAL)
K_RANGE, REPEATS_RANGE = K_LIMITS, REPEATS_LIMITS  # the engine's limits


def ID(key: str) -> str:
    return control_id(P, key)


def _device_name() -> str:
    dev = describe_device()
    return dev.name if dev.kind == "cuda" else "CPU: " + dev.name


# -- jobs ------------------------------------------------------------------------------------
def sweep_config(k, dtype, repeats, device: str = "cpu") -> MatrixSweepConfig:
    """Widget values -> a validated config (ValueError "expected ... got ...")."""
    return MatrixSweepConfig(ops=("spmv", "spmm"), k=check_int("k", k, *K_RANGE),
                             dtype=check_choice("dtype", dtype, DTYPES),
                             repeats=check_int("repeats", repeats, *REPEATS_RANGE), device=device)


def plan_measure(h, k, dtype, repeats) -> JobPlan:
    """Inside the job: calibrate first if this device never was, then time every backend."""
    from engine.bench.matrix_sweep import matrix_sweep
    from engine.runtime.device import job_device, runtime_device_name

    if not h:
        raise ValueError("matrix: expected a loaded matrix, got none (upload a file first)")
    info = stored_info(h)
    dev = job_device("auto")
    config = sweep_config(k, dtype, repeats, device=dev.type)
    a = load_stored(h)
    from engine.bench.matrix_sweep import check_dense_fits

    check_dense_fits(a.shape, config.dtype, config.k)
    name = runtime_device_name(dev)

    def rows():
        cal = load_calibration(name)
        if cal is None:
            for _ in calibrate(CalibrationPlan.for_device(dev.type), device_name=name):
                pass
            cal = load_calibration(name)
        yield from matrix_sweep(config, a, cal, info, device_name=name)

    return JobPlan(rows=rows(), total=config.total,
                   params={"matrix_hash": h, "matrix_name": info["name"], "k": config.k,
                           "dtype": config.dtype, "repeats": config.repeats},
                   meta={"device_name": name, "pid": os.getpid(), "host": os.uname().nodename})


def plan_calibration() -> JobPlan:
    from engine.runtime.device import job_device, runtime_device_name

    dev = job_device("auto")
    plan = CalibrationPlan.for_device(dev.type)
    name = runtime_device_name(dev)
    return JobPlan(rows=calibrate(plan, device_name=name), total=plan.total,
                   params={"device": dev.type}, meta={"device_name": name, "pid": os.getpid()})


register_job(P, [State(ID("hash"), "data"), State(ID("k"), "value"), State(ID("dtype"), "value"),
                 State(ID("repeats"), "value")], plan_measure, kind=KIND, filename="your_matrix_rows.csv")
register_job(CAL, [], plan_calibration, kind="calibration", filename="calibration.csv")


# -- layout ----------------------------------------------------------------------------------
def _num(key: str, value, lo, hi) -> dcc.Input:
    return dcc.Input(id=ID(key), type="number", value=value, min=lo, max=hi, step=1, debounce=True,
                     style={"width": "8em"})


def _load_section() -> html.Section:
    limit = max_upload_bytes()
    return section(
        "Your matrix",
        dcc.Upload(id=ID("upload"), max_size=limit, multiple=False, className="upload-box",
                   children=html.Div(["Drop a file here or ", html.A("choose one", href="#"),
                                      f" ({', '.join(SUFFIXES)}; at most {limit / 2**20:.0f} MB)"]),
                   style={"border": "2px dashed #9db4d6", "borderRadius": "6px", "padding": "18px",
                          "textAlign": "center", "cursor": "pointer", "background": "#f7faff"}),
        controls_row(
            html.Div(labelled("Tensor (safetensors files)", dcc.Dropdown(
                id=ID("tensor"), options=[], value=None, clearable=False,
                placeholder="the first 2-D tensor", style={"minWidth": "22em"})),
                id=ID("tensor-box"), style={"display": "none"}),
            labelled("No file at hand?", html.Button(
                "Use an example: a scrambled 2-D grid Laplacian (1024 x 1024)", id=ID("example"),
                className="btn btn-secondary", n_clicks=0)),
        ),
        html.Div(id=ID("load-msg")),
        dcc.Store(id=ID("hash"), data=None),
        html.Div(table_with_csv(ID("facts"), ID("facts-csv"), page_size=20),
                 style={"maxWidth": "640px"}),
        note="The file is checked from its header first: too large for the lab's memory budget, "
             "a malformed header, a wrong dtype, NaN or inf entries, or more than 2 dimensions are "
             "refused with a message and nothing is stored. An accepted matrix is stored once under "
             "its content hash, so runs on it compare across machines.")


def _structure_section() -> html.Section:
    return section(
        "Structure",
        controls_row(labelled("Order", dcc.RadioItems(id=ID("spy-view"), value="stored", inline=True,
                                                      options=[{"label": " as stored ", "value": "stored"},
                                                               {"label": " after reverse Cuthill-McKee ",
                                                                "value": "rcm"}]))),
        html.Div([
            html.Div(dcc.Graph(id=ID("spy"), config={"displaylogo": False})),
            html.Div([dcc.Graph(id=ID("rows"), config={"displaylogo": False}),
                      dcc.Graph(id=ID("profile"), config={"displaylogo": False})]),
        ], className="two-col"),
        html.H3("BSR fill-in per block size"),
        data_table(ID("fill"), []),
        html.Div([csv_download(ID("fill-csv")),
                  html.Div([html.Button("Download the reordered matrix (.mtx)", id=ID("rcm-mtx"),
                                        className="btn btn-secondary"),
                            dcc.Download(id=ID("rcm-mtx-download"))], className="csv-download")],
                 className="job-buttons"),
        note="Fill-in = stored zeros per non-zero if the matrix were stored as BSR with square "
             "blocks (exact count of the tiles that hold a non-zero). Reverse Cuthill-McKee "
             "(scipy) permutes rows and columns to pull non-zeros toward the diagonal, which "
             "often fills blocks; for a rectangular matrix rows and columns get their own order.")


def _predict_section() -> html.Section:
    dev = describe_device()
    return section(
        "Prediction (roofline)",
        controls_row(
            labelled("Op shown", dcc.RadioItems(id=ID("op"), value="spmv", inline=True, options=[
                {"label": " SpMV (A x) ", "value": "spmv"}, {"label": " SpMM (A B) ", "value": "spmm"}])),
            labelled(f"k (columns of B, {K_RANGE[0]}-{K_RANGE[1]})", _num("k", 64, *K_RANGE)),
            labelled("dtype", dcc.Dropdown(id=ID("dtype"), options=list(DTYPES), value="float32",
                                           clearable=False, style={"width": "9em"})),
            labelled(f"Repeats ({REPEATS_RANGE[0]}-{REPEATS_RANGE[1]})", _num("repeats", 10, *REPEATS_RANGE)),
        ),
        html.Div(id=ID("cal-note")),
        job_panel(CAL, run_label="Calibrate this device",
                  note=f"Measures on {dev.label}: copy bandwidth, dense GEMM rate per dtype, the "
                       "random-gather bandwidth of a CSR SpMV on a uniform random matrix, and the "
                       "per-call floor. Stored with the device name; about 10 s on a CPU."),
        *table_with_csv(ID("pred"), ID("pred-csv"), page_size=15),
        note="Predicted time = max(bytes moved / bandwidth, FLOPs / GEMM rate, per-call floor): "
             "copy bandwidth for streamed formats (dense, BSR, 2:4), gather bandwidth for index-"
             "chasing ones (COO, CSR, whose bytes include one read of x per non-zero).")


def _measure_section() -> html.Section:
    return section(
        "Measure and compare",
        job_panel(P, run_label="Measure every backend",
                  note="Times every backend of the lab's registry on this matrix, SpMV and SpMM "
                       "with the k above, dense first; block formats at 16/32/64/128 as stored "
                       "and reordered. Calibrates first if this device never was. Each row is "
                       "stored as it finishes; cancel keeps them (see Runs)."),
        html.Div(id=ID("advice")),
        dcc.Graph(id=ID("pvm"), config={"displaylogo": False}),
        html.H3("Efficiency (predicted / measured)"),
        *table_with_csv(ID("eff"), ID("eff-csv"), page_size=15),
        note=f"Efficiency 1 means the backend runs at its roofline; below {OFF_ROOFLINE:g} it is "
             f"named far below it; above {ABOVE_ROOFLINE:g} it beat its prediction because its "
             "operands stayed in cache (the calibrated bandwidth is memory's, measured with copies "
             "larger than the cache), so read the prediction as a floor there. Every product is checked against scipy in float64 before it is "
             "timed. The measurement panel's 'Download CSV' has every row.")


def layout(**_kwargs):
    return html.Div([
        page_header(
            "Your matrix",
            "Bring a matrix of your own, a Matrix Market file from a sparse solver or a pruned "
            "weight from a checkpoint, and find out whether skipping its zeros pays on this "
            "device: see where its non-zeros are, how much BSR would pad it (before and after "
            "reordering), what a roofline predicts for each format, what each format really "
            "takes, and one sentence of advice backed by the rows.",
            seed="the sparsity chapter, sections 10.1-10.2, applied to your own matrix"),
        _load_section(), _structure_section(), _predict_section(), _measure_section(),
        dcc.Store(id=ID("pred-store"), data=[]),
    ])


for _key, _name in (("facts", "matrix_facts.csv"), ("fill", "matrix_fill_in.csv"),
                    ("pred", "matrix_predictions.csv"), ("eff", "matrix_efficiency.csv")):
    register_csv_download(ID(f"{_key}-csv"), (ID(_key), "data"), _name)


# -- callbacks -------------------------------------------------------------------------------
def decode_upload(contents: str, filename: str) -> bytes:
    """dcc.Upload's "data:...;base64,XXXX" -> bytes, its size checked before decoding."""
    if not isinstance(contents, str) or "," not in contents:
        raise ValueError(f"upload: expected a data URL, got {type(contents).__name__}")
    suffix_of(filename or "")
    b64 = contents.split(",", 1)[1]
    check_file_size(f"file {filename}", len(b64) * 3 // 4)
    try:
        return base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("upload: expected base64 file contents, got malformed data") from None


def example_matrix() -> LoadedMatrix:
    """A 32 x 32 grid's 5-point Laplacian (1024 x 1024) with rows and columns scrambled:
    what RCM is for."""
    import scipy.sparse as sp

    g = 32
    t = sp.diags([-1.0, 2.0, -1.0], [-1, 0, 1], shape=(g, g))
    lap = sp.kronsum(t, t).tocsr()
    perm = np.random.default_rng(7).permutation(g * g)
    a = sp.csr_array(lap[perm][:, perm])
    from engine.sparse.user_matrix import _canonical

    return LoadedMatrix("example-scrambled-laplacian-32x32.mtx", "example", _canonical(a, "example"),
                        "generated")


def _tensor_options(data: bytes) -> list[dict]:
    return [{"label": f"{c['name']}  {c['dtype']} {'x'.join(map(str, c['shape']))}"
                      + (f"  ({c['reason']})" if c["reason"] else ""),
             "value": c["name"], "disabled": bool(c["reason"])} for c in safetensors_choices(data)]


@callback(Output(ID("hash"), "data"), Output(ID("load-msg"), "children"),
          Output(ID("tensor"), "options"), Output(ID("tensor-box"), "style"),
          Output(ID("tensor"), "value"),
          Input(ID("upload"), "contents"), Input(ID("tensor"), "value"), Input(ID("example"), "n_clicks"),
          State(ID("upload"), "filename"), prevent_initial_call=True)
def load(contents, tensor, _example, filename):
    """Validate and store the uploaded file (or the example); nothing is stored on a refusal."""
    h, msg, options, box = load_action(ctx.triggered_id == ID("example"), contents, tensor, filename)
    chosen = no_update
    if h:  # show which tensor was loaded (None for other files and the example)
        chosen = stored_info(h).get("tensor") if options else None
    return h, msg, options, box, chosen


def load_action(example: bool, contents, tensor, filename):
    """What ``load`` does: (hash or None, message, tensor options, tensor box style)."""
    hidden, shown = {"display": "none"}, {"display": "block"}
    tensor = tensor if isinstance(tensor, str) else None
    filename = filename if isinstance(filename, str) else ""
    try:
        if example:
            loaded, options, box = example_matrix(), [], hidden
        else:
            if not contents:
                return no_update, no_update, no_update, no_update
            data = decode_upload(contents, filename)
            options, box = [], hidden
            if suffix_of(filename) == ".safetensors":
                options, box = _tensor_options(data), shown
                if tensor not in {o["value"] for o in options}:
                    tensor = None
            loaded = load_matrix_bytes(filename, data, tensor=tensor)
        info = store_matrix(loaded)
    except ValueError as exc:
        return None, error_message(exc), no_update, no_update
    f = info["facts"]
    what = f" (tensor {loaded.tensor!r})" if loaded.tensor else ""
    text = (f"Loaded {loaded.name}{what}: {f['rows']} x {f['cols']}, {f['nnz']} non-zeros "
            f"(density {f['density']:.3g}), stored as {info['hash'][:12]}.")
    return info["hash"], message(text, "ok"), options, box


def _facts_rows(summary: dict, info: dict) -> list[dict]:
    out = [{"fact": "name", "value": info["name"]}, {"fact": "content hash (sha256)", "value": info["hash"]},
           {"fact": "source", "value": f"{info['source_format']} ({info['source_dtype']})"}]
    for key, label in FACT_LABELS.items():
        v = summary["facts"][key]
        out.append({"fact": label, "value": f"{v:.4g}" if isinstance(v, float) else str(v)})
    out.append({"fact": "bandwidth after RCM", "value": str(summary["facts_rcm"]["bandwidth"])})
    return out


@callback(Output(ID("spy"), "figure"), Output(ID("rows"), "figure"), Output(ID("profile"), "figure"),
          Output(ID("fill"), "data"), Output(ID("fill"), "columns"),
          Output(ID("facts"), "data"), Output(ID("facts"), "columns"),
          Input(ID("hash"), "data"), Input(ID("spy-view"), "value"))
def structure(h, view):
    """The stored matrix's spy plot, row lengths, bandwidth profile, fill-in and facts."""
    if not h:
        return spy_figure(None), row_length_figure(None), bandwidth_figure(None), [], [], [], []
    import pandas as pd

    summary, info = structure_summary(h), stored_info(h)
    rcm = view == "rcm"
    spy = spy_figure(summary["spy_rcm" if rcm else "spy"],
                     "After reverse Cuthill-McKee" if rcm else "Where the non-zeros are")
    fill = pd.DataFrame(summary["fill"])
    facts = pd.DataFrame(_facts_rows(summary, info))
    return (spy, row_length_figure(summary["hist"]), bandwidth_figure(summary["profile"]),
            fill.to_dict("records"), table_columns(fill), facts.to_dict("records"),
            table_columns(facts))


@callback(Output(ID("rcm-mtx-download"), "data"), Input(ID("rcm-mtx"), "n_clicks"),
          State(ID("hash"), "data"), prevent_initial_call=True)
def download_reordered(_clicks, h):
    if not h:
        return no_update
    info = stored_info(h)
    b = reordered(load_stored(h))
    stem = Path(info["name"]).stem or "matrix"
    text = to_mtx_bytes(b, comment=f" {info['name']} reordered by reverse Cuthill-McKee (Sparsity Lab); "
                                   f"original sha256 {h}")
    return dcc.send_bytes(text, f"{stem}-rcm.mtx")


def prediction_rows(h, op, k, dtype, device: str, device_name: str) -> tuple[list[dict], str | None]:
    """Predictions for the stored matrix ``h`` from this device's calibration; (rows, problem)."""
    cal = load_calibration(device_name)
    if cal is None:
        return [], f"No calibration stored for {device_name} yet: calibrate (or measure, which calibrates first)."
    k = check_int("k", k, *K_RANGE)
    dtype = check_choice("dtype", dtype, DTYPES)
    summary = structure_summary(h)
    f = summary["facts"]
    from engine.bench.roofline import is_two_four

    s = Structure(f["rows"], f["cols"], f["nnz"], summary["tiles"], summary["tiles_rcm"],
                  is_two_four(load_stored(h)))
    rows = []
    for o in ("spmv", "spmm"):
        rows += predict(s, cal, o, k, dtype)
    return rows, None


@callback(Output(ID("pred"), "data"), Output(ID("pred"), "columns"), Output(ID("pred-store"), "data"),
          Output(ID("cal-note"), "children"),
          Input(ID("hash"), "data"), Input(ID("op"), "value"), Input(ID("k"), "value"),
          Input(ID("dtype"), "value"), Input(CAL_IDS.result, "data"), Input(IDS.result, "data"))
def predictions(h, op, k, dtype, _cal_result, _measure_result):
    """The roofline table for the shown op, from the stored calibration of this device."""
    import pandas as pd

    dev, name = describe_device(), _device_name()
    cal = load_calibration(name)
    note = (message(f"Calibration of {name} from {cal.measured_at}: copy {cal.copy_gbs:.3g} GB/s, "
                    f"gather {cal.gather_gbs:.3g} GB/s, GEMM "
                    + ", ".join(f"{d} {v:.3g} GFLOP/s" for d, v in cal.gemm_gflops.items())
                    + f", floor {1e6 * cal.floor_s:.3g} us.", "info") if cal else None)
    if not h:
        return [], [], [], note
    try:
        rows, problem = prediction_rows(h, op, k, dtype, dev.kind, name)
    except ValueError as exc:
        return [], [], [], error_message(exc)
    if problem:
        return [], [], [], message(problem, "warn")
    shown = pd.DataFrame([{"candidate": r["candidate"], "op": r["op"], "k": r["k"],
                           "predicted (us)": 1e6 * r["predicted_s"], "bound": r["bound"],
                           "bytes moved (MB)": r["bytes_moved"] / 1e6, "GFLOP": r["flops"] / 1e9,
                           "note": r.get("note", "")} for r in rows if r["op"] == op])
    return shown.to_dict("records"), table_columns(shown), rows, note


def _dicts(value) -> list[dict]:
    """The dicts of a list (a Store's data as the browser sent it); anything else: none."""
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


@pure_callback(Output(ID("pvm"), "figure"), Output(ID("advice"), "children"),
          Output(ID("eff"), "data"), Output(ID("eff"), "columns"),
          Input(IDS.rows, "data"), Input(ID("pred-store"), "data"), Input(ID("op"), "value"),
          Input(ID("hash"), "data"))
def draw(rows, preds, op, h):
    """Predicted vs measured for the shown op, the recommendation and the efficiency table."""
    import pandas as pd

    op = op if op in ("spmv", "spmm") else "spmv"
    mine = [r for r in _dicts(rows) if r.get("matrix_hash") == h and isinstance(h, str)
            and {"op", "status", "candidate", "format", "backend"} <= set(r)]
    preds = [p for p in _dicts(preds) if {"op", "candidate", "predicted_s", "bound"} <= set(p)]
    fig = predicted_measured_figure(preds, mine, op)
    advice = (message(recommendation(mine, op), "ok") if mine else
              message("Run the measurement to get a recommendation computed from the rows.", "info"))
    eff = pd.DataFrame([r for r in efficiency_table(mine) if r["op"] == op])
    return fig, advice, eff.to_dict("records"), table_columns(eff)
