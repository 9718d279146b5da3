"""/paper: the seed paper's experiment rerun: native vs sparse-matrix models trained side by side.

Thin page: widgets -> engine.layers.paper.PaperSpec -> a background job streaming one row per
(epoch, variant) -> curves, the paper-form table and a verdict computed from the rows.
"""
from __future__ import annotations


import dash
import pandas as pd
from dash import Input, Output, State, dcc, html

from components import figures_paper as figs
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import controls_row, labelled, message, page_header, section
from components.pure_callback import PURE_LAYOUT, pure_callback, pure_reference_callback
from components.tables import data_table, register_csv_download, table_columns, table_with_csv
from engine.bench.reference import newest
from engine.layers import paper as pp
from engine.runtime.datafiles import DATA_DIR_ENV

dash.register_page(__name__, path="/paper", name="Paper experiment", nav_name="Paper", order=4,
                   description="Native CNN, linear RNN and linear attention trained beside their "
                               "sparse-matrix forms: does the paper's results table hold?",
                   pure_layout=PURE_LAYOUT)

P = "paper"
JOB = job_ids(f"{P}-train")
SEED = "Unified Sparse-Matrix Representations for Diverse Neural Architectures (arXiv 2506.01966), section 7"


def _paper_table_rows() -> list[dict]:
    rows = []
    for r in pp.PAPER_RESULTS:
        fmt = (lambda v: "lost in extraction" if v is None else v)
        rows.append({"field": r["field"], "dataset": r["dataset"], "metric": r["metric"],
                     "original": fmt(r["native"]), "original epoch": r["native_epoch"],
                     "sparse-isomorphic": fmt(r["sparse"]), "sparse epoch": r["sparse_epoch"]})
    return rows


def layout(**_kwargs):
    return html.Div([
        page_header(
            "Paper experiment: native vs sparse-matrix models",
            "The paper reports that its sparse-matrix formulations \"match or exceed native model "
            "performance while converging in comparable or fewer epochs\". Here each architecture is "
            "trained twice or three times from the same initial weights, batches and Adam settings: native "
            "torch layers; the same layers as sparse matrices whose nonzeros are tied to the layer's "
            "weights (the isomorphism); and sparse matrices whose every stored entry is free (a larger, "
            "locally connected model). Data ship with installed packages; nothing is downloaded.",
            seed=SEED),
        section(
            "Run",
            html.Div(className="paper-controls", children=[
                controls_row(
                    labelled("Tasks", dcc.Checklist(id="paper-tasks", value=["vision"], inline=True, options=[
                        {"label": " vision (CNN, digits)", "value": "vision"},
                        {"label": " time series (linear RNN)", "value": "timeseries"},
                        {"label": " text (linear attention LM)", "value": "text"}])),
                    labelled("Sparse variants (native always runs)", dcc.Checklist(
                        id="paper-variants", value=["tied", "free"], inline=True,
                        options=[{"label": " weight-tied", "value": "tied"},
                                 {"label": " free entries", "value": "free"}])),
                    labelled("Epochs", dcc.Slider(id="paper-epochs", min=1, max=60, step=1, value=10,
                                                  marks={1: "1", 10: "10", 30: "30", 60: "60"},
                                                  tooltip={"placement": "bottom"})),
                ),
                controls_row(
                    labelled("Learning rate (Adam)", dcc.Dropdown(id="paper-lr", value=3e-3, clearable=False,
                                                                  options=[1e-3, 3e-3, 1e-2])),
                    labelled("Batch size", dcc.Dropdown(id="paper-batch", value=64, clearable=False,
                                                        options=[16, 32, 64, 128])),
                    labelled("Max training examples", dcc.Input(id="paper-max-train", type="number", min=8,
                                                                step=1, value=None, placeholder="all"),
                             help="text: sequences of 8 characters; blank = all (on a CPU the text "
                                  "tensor models take minutes per epoch on all ~13k sequences: try 1000)"),
                    labelled("Series (statsmodels)", dcc.Dropdown(id="paper-series", value="co2", clearable=False,
                                                                 options=[{"label": "CO2", "value": "co2"},
                                                                          {"label": "sunspots", "value": "sunspots"}])),
                    labelled("Seed", dcc.Input(id="paper-seed", type="number", min=0, step=1, value=0)),
                    labelled("Seeds per task", dcc.Input(id="paper-seeds", type="number", min=1, max=pp.SEEDS_MAX,
                                                         step=1, value=3),
                             help="seed, seed + 1, ...: initial weights and batch order; same data split"),
                ),
                controls_row(
                    labelled("MNIST folder (optional)", dcc.Input(id="paper-mnist", type="text", value="",
                                                                  placeholder="folder with *-idx3-ubyte files",
                                                                  debounce=True),
                             help=f"inside the data folder ({DATA_DIR_ENV}); local IDX files replace the digits"),
                    labelled("Text file (optional)", dcc.Input(id="paper-text", type="text", value="",
                                                               placeholder="path to a UTF-8 file", debounce=True),
                             help=f"inside the data folder ({DATA_DIR_ENV}); blank: Python stdlib docstrings, "
                                  "held out by module"),
                ),
            ]),
            job_panel(f"{P}-train", "Train",
                      note="One row per epoch and model, stored as it finishes (see Runs). Runs on the "
                           "GPU when the job host has one."),
        ),
        section("Curves", dcc.Graph(id="paper-curves", figure=figs.curves_figure([]))),
        section("Verdict", html.Div(id="paper-verdict", children=message("No run yet.", "info"))),
        html.Div([
            section("This run, in the paper's form",
                    *table_with_csv("paper-final", "paper-final-csv", "Table CSV", page_size=6),
                    html.H3("Cost of each model", style={"marginTop": "12px"}),
                    *table_with_csv("paper-cost", "paper-cost-csv", "Cost CSV", page_size=9),
                    note="Best test metric per model (native, weight-tied sparse, free sparse): mean and "
                         "standard deviation (sd) over the seeds, and the mean epoch it was reached. Cost: "
                         "seconds per epoch (median over seeds), the spread of epoch times (IQR/median), "
                         "how many seeds were noisy, time as a multiple of native's (x native: mean over the "
                         "seeds where both models' epoch times were steady, 'x native from' says how many; "
                         "blank when that is not most of the seeds), max |output - native| over the run, and "
                         "the final metric (mean over seeds) in the unit its 'metric' column names."),
            section("The paper's table (theirs, for context)",
                    *table_with_csv("paper-theirs", "paper-theirs-csv", "Their table CSV", page_size=9,
                                    rows=_paper_table_rows()),
                    note="As reported in the paper (RTX 4090, MNIST/CIFAR/ETTh1/...). Most metric "
                         "values were lost when the text was extracted; their epochs survived."),
        ]),
        section("Reference run from a GPU (committed CSV)",
                dcc.Checklist(id="paper-ref-show", value=[], options=[
                    {"label": " show the committed GPU run (benchmarks/results/gpu_paper*.csv)", "value": "ref"}]),
                html.Div(id="paper-ref-note"),
                data_table("paper-ref-table", [], page_size=6)),
    ])


def plan_training(tasks, variants, epochs, lr, batch, max_train, series, seed, seeds, mnist, text) -> JobPlan:
    spec = pp.PaperSpec(tasks=tuple(tasks or ()), variants=tuple(variants or ()), epochs=epochs,
                        lr=float(lr), batch_size=batch, max_train=max_train or None, series=series,
                        seed=seed if seed is not None else 0, seeds=seeds, mnist_dir=(mnist or "").strip() or None,
                        text_path=(text or "").strip() or None)
    return JobPlan(rows=pp.train_rows(spec), total=spec.total_rows, params=spec.as_dict(),
                   meta={"page": "paper"})


register_job(f"{P}-train", [State("paper-tasks", "value"), State("paper-variants", "value"),
                            State("paper-epochs", "value"), State("paper-lr", "value"),
                            State("paper-batch", "value"), State("paper-max-train", "value"),
                            State("paper-series", "value"), State("paper-seed", "value"),
                            State("paper-seeds", "value"), State("paper-mnist", "value"),
                            State("paper-text", "value")],
             plan_training, kind="paper-training", filename="paper-training.csv")
register_csv_download("paper-final-csv", ("paper-final", "data"), "paper-table.csv")
register_csv_download("paper-cost-csv", ("paper-cost", "data"), "paper-cost.csv")
register_csv_download("paper-theirs-csv", ("paper-theirs", "data"), "paper-their-table.csv")


def verdict_children(rows: list[dict], summary: list[dict] | None = None) -> list:
    lines = pp.verdict(rows, summary=summary)
    if not lines:
        return [message("No run yet." if not rows else "Waiting for a full epoch of every model.", "info")]
    return [message(text, kind) for kind, text in lines]


@pure_callback(Output("paper-curves", "figure"), Output("paper-final", "data"), Output("paper-final", "columns"),
          Output("paper-cost", "data"), Output("paper-cost", "columns"),
          Output("paper-verdict", "children"), Input(JOB.rows, "data"))
def draw_run(rows):
    """Curves, the paper-form table, the cost table and the verdict from the rows so far."""
    rows = rows or []
    summary = pp.summarise(rows)
    return (figs.curves_figure(rows, summary), *_table(pp.paper_form(rows, summary)), *_table(pp.cost_table(rows, summary)),
            verdict_children(rows, summary))


def _table(records: list[dict]) -> tuple[list[dict], list[dict]]:
    """An engine table as DataTable data (a missing value, such as the spread of one seed, blank) and columns."""
    frame = pd.DataFrame(records)
    return frame.astype(object).where(frame.notna(), None).to_dict("records"), table_columns(frame)


@pure_reference_callback(Output("paper-ref-table", "data"), Output("paper-ref-table", "columns"),
          Output("paper-ref-note", "children"), Input("paper-ref-show", "value"))
def show_reference(show):
    if "ref" not in (show or []):
        return [], [], None
    ref = newest("paper")
    if ref is None:
        return [], [], message("No committed GPU run yet (benchmarks/results/paper/).", "info")
    records = ref.frame().to_dict("records")
    data, columns = _table(pp.paper_form(records))
    lines = [message(f"Reference: {ref.description}.", "info")] + [message(t, k) for k, t in pp.verdict(records)]
    return data, columns, lines
