"""/scanner: the generator's chain run backwards through its transposes.

The chain arrives in the URL query (the generator's "open it in the Scanner" link
writes ``/scanner?preset=...&k=...``), or from this page's own controls and presets.
Widget values -> ``engine.chain.scanner`` (agreement, recovery, conditioning, VJP check) ->
figures (components/chain_scan_figures.py); the reverse-pass animation runs in the
browser (``assets/generator.js``, namespace ``scanner``).
"""
from __future__ import annotations

import dash
import dash_cytoscape as cyto
import numpy as np
from dash import ClientsideFunction, Input, Output, State, clientside_callback, dcc, html

from components.chain_controls import (CHAIN_DEFAULTS, chain_controls, chain_inputs, chain_params,
                                       clock_row, params_from_query, register_clock,
                                       train_from_query)
from components.chain_scan_figures import phase_transition_figure, scanner_views
from components.figures_chain import graph_stylesheet
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import (controls_row, error_message, labelled, message, page_header, section,
                               stat, still_graph)
from components.pure_callback import PURE_LAYOUT, pure_callback
from components.tables import data_table, register_csv_download, table_with_csv
from engine.chain.generator import WEIGHTS
from engine.chain.recovery import PT_LIMITS, phase_transition_cells, phase_transition_rows
from engine.chain.scanner import MODES, VERDICTS, SCAN_PRESETS, vjp_claim

dash.register_page(__name__, path="/scanner", name="Scanner", order=2,
                   description="The same chain run backwards through its transposes: where the "
                               "reverse pass agrees with the forward pass, and where information "
                               "was lost.",
                   pure_layout=PURE_LAYOUT)

PREFIX = "scan"
CUSTOM = "from the URL / my settings"
PT = "scan-pt"  # the phase-transition job
PT_IDS = job_ids(PT)
NOISE_MARKS = {0: "0", 0.1: "0.1", 0.25: "0.25", 0.5: "0.5", 1: "1"}


def _reverse_controls() -> html.Div:
    return controls_row(
        labelled("Mode", dcc.RadioItems(id="scan-mode", options=list(MODES), value="transpose",
                                        inline=True, className="radio-inline"),
                 help="transpose: the deck's adjoint pass; pinv: least squares; tikhonov: ridge; "
                      "omp: sparse recovery knowing the row's number of nonzeros"),
        labelled("lam (tikhonov)", dcc.Input(id="scan-lam", type="number", min=0, value=0.01,
                                             step="any", debounce=True, className="num-input"),
                 help="ridge parameter, used by tikhonov only"),
        html.Div([html.Label("noise (x rms of y)", className="control-label"),
                  dcc.Slider(id="scan-noise", min=0, max=1, step=0.01, value=0, marks=NOISE_MARKS,
                             className="scan-noise"),
                  html.Div("gaussian, seeded by the chain's seed", className="control-help")],
                 className="control scan-noise-box"),
    )


def layout(**query):
    values = params_from_query(query)
    trained = train_from_query(query)
    preset_options = [CUSTOM] + list(SCAN_PRESETS)
    return html.Div([
        page_header(
            "Scanner: the chain run backwards",
            "The generator multiplies by A; the scanner starts from the output and multiplies by "
            "the transposes in reverse order (or by least-squares or ridge inverses), then "
            "compares every column with what the forward pass produced. Green: the reverse pass "
            "agrees; red: information was lost, or the matrices are badly conditioned.",
            seed="the DRT deck's scanner (norayr-m/drt-scanner, April 2026)"),
        section("Chain",
                message("This page takes its chain from the URL query: the Generator's "
                        "\"open it in the Scanner\" link writes it there (so a link reproduces "
                        "the view). You can also pick a preset or set the chain here.", "info"),
                controls_row(
                    labelled("Scanner preset", dcc.RadioItems(
                        id="scan-scenario", options=preset_options, value=CUSTOM, inline=True,
                        className="radio-inline"),
                        help="orthogonal + identity: every column agrees in transpose mode; "
                             "relu + wide W: it diverges, and the page says why"),
                    labelled("Weights", dcc.RadioItems(
                        id="scan-weights", options=list(WEIGHTS), value="gaussian", inline=True,
                        className="radio-inline"),
                        help="orthogonal needs K <= H <= F and P x nnz <= K"),
                ),
                controls_row(*chain_controls(PREFIX, values)),
                html.Div(id="scan-weights-note", className="section-note", role="status"),
                html.Div(id="scan-error")),
        section("Reverse pass", _reverse_controls(), html.Div(id="scan-stats"),
                html.Div(id="scan-vjp", className="section-note")),
        section("Why it agrees or diverges", html.Ul(id="scan-why", className="scan-why"),
                note="Computed from this chain: ranks, Gram matrices, relu losses, clipping."),
        section("The reverse pass, phase by phase", clock_row("scan"),
                html.Div(id="scan-pipeline", className="scan-pipeline", role="img",
                         **{"aria-label": "reverse pass: seven columns, right to left"}),
                note="The same clock as the Generator; at each tick the output enters at the "
                     "right and the transposes carry it leftwards, column by column."),
        section("Graph view: the transpose graph",
                cyto.Cytoscape(id="scan-cyto", elements=[], layout={"name": "preset", "fit": True,
                                                                   "padding": 12},
                               stylesheet=graph_stylesheet(reverse=True), autoungrabify=True,
                               userZoomingEnabled=False, userPanningEnabled=False,
                               boxSelectionEnabled=False,
                               style={"width": "100%", "height": "500px"}),
                dcc.Store(id="scan-cyto-elements"),
                html.P(id="scan-graph-note", className="section-note"),
                note="The Generator's graph with every edge reversed: same nodes, same "
                     "positions, the wires flow right to left. The reverse pass is message "
                     "passing on these edges (equal to the transpose products, tested to "
                     "rounding). Nodes take their column's colour at the clock's phase: green "
                     "within its bound, red beyond it, grey without a finite bound; outlined "
                     "nodes carry a nonzero reverse value."),
        html.Div([
            section("Agreement: phases x columns",
                    still_graph("scan-heat"),
                    note="Colour: the measured relative error over its certified bound. Hover "
                         "a cell for the error, the bound and the cosine; the orange frame is "
                         "the phase on the clock."),
            section("Hallucinated support",
                    still_graph("scan-support"),
                    note="The sparse vector (column four) as the reverse pass rebuilds it: "
                         "entries above 5% of the largest forward value where the forward "
                         "vector was zero are hallucinated; forward entries it drops are missed."),
        ], className="two-col"),
        section("Column summary",
                *table_with_csv("scan-summary", "scan-summary-csv", page_size=7),
                note="Per column: the share of phases within their bound, the measured relative "
                     "errors beside the certified bounds (a blank bound: none is finite)."),
        section("Conditioning",
                html.Div([still_graph("scan-sv"),
                          html.Div(table_with_csv("scan-cond", "scan-cond-csv", page_size=3))],
                         className="two-col")),
        section("Pattern recovery",
                html.Div(id="scan-recovery-stat"),
                *table_with_csv("scan-recovery", "scan-recovery-csv", page_size=8),
                note="The pattern id of each phase is read from the rebuilt sparse vector: the "
                     "nearest routing row (for relu, the nearest row's positive part)."),
        section("Sparse recovery: where OMP succeeds and pinv cannot",
                controls_row(
                    labelled("K entries", dcc.Input(id="scan-pt-k", type="number",
                                                    min=PT_LIMITS["k"][0], max=PT_LIMITS["k"][1],
                                                    step=1, value=24, className="num-input"),
                             help="fixed length of the sparse vector"),
                    labelled("trials per cell", dcc.Input(id="scan-pt-trials", type="number",
                                                          min=PT_LIMITS["trials"][0],
                                                          max=PT_LIMITS["trials"][1], step=1,
                                                          value=10, className="num-input"),
                             help="random gaussian operators and vectors per cell, seeded")),
                job_panel(PT, run_label="Compute the map",
                          note="One row per (nonzeros, outputs) cell: the share of random "
                               "k-sparse vectors that OMP (and pinv) bring back to a relative "
                               "error below 1e-3."),
                still_graph("scan-pt-figure"),
                note="The phase transition of sparse recovery: below the diagonal band OMP "
                     "recovers the vector from fewer outputs than entries; pinv needs as many "
                     "outputs as entries (right of the dashed line). At F = 6, K = 24 with 3 "
                     "nonzeros OMP succeeds only part of the time."),
        section("Agreement table",
                *table_with_csv("scan-table", "scan-csv", "Download agreement CSV", page_size=10),
                note="phase, pattern, column, rel_error, cosine, agree: one row per phase and "
                     "column."),
        dcc.Store(id="scan-frames"),
        dcc.Store(id="scan-trained", data=trained),
        dcc.Store(id="scan-phase", data=0),
    ], className="gen-page")


@pure_callback(*[Output(i, p) for i, p in chain_inputs(PREFIX)], Output("scan-weights", "value"),
          Input("scan-scenario", "value"), prevent_initial_call=True)
def apply_preset(name):
    """A scanner preset fills the chain controls (the custom choice leaves them as they are)."""
    if not isinstance(name, str) or name not in SCAN_PRESETS:
        return [dash.no_update] * (len(CHAIN_DEFAULTS) + 1)
    p = SCAN_PRESETS[name]
    return [p.get(k, CHAIN_DEFAULTS[k]) for k in CHAIN_DEFAULTS] + [p.get("weights", "gaussian")]


def _stats(table, rec) -> html.Div:
    finite = np.isfinite(table["bound"])
    return html.Div([
        stat("(phase, column) pairs within their bound", f"{table['agree'].mean():.0%}",
             id="scan-agree"),
        stat("pairs that exceed it", f"{int((table['verdict'] == VERDICTS[1]).sum())}",
             id="scan-exceed"),
        stat("pairs with no finite bound", f"{int((~finite).sum())}", id="scan-nobound"),
        stat("median relative error", f"{table['rel_error'].median():.2g}", id="scan-err"),
        stat("patterns recovered", f"{rec['correct'].mean():.0%}", id="scan-recovered"),
        stat("hallucinated entries", f"{int(rec['hallucinated'].sum())}", id="scan-halluc"),
        stat("clipped by sigma^-1", f"{int(rec['clipped'].sum())}"),
    ])


def _vjp_view(vjp) -> html.Div:
    """The claim, made only for the columns where it holds, and the numbers behind it."""
    shown = vjp.assign(max_abs_diff=vjp["max_abs_diff"].map(lambda v: f"{v:.2e}"),
                       equals_vjp=vjp["equals_vjp"].map({True: "yes", False: "no"}))
    return html.Div([
        html.P(vjp_claim(vjp), id="scan-vjp-claim"),
        data_table("scan-vjp-table", shown, page_size=7),
        html.P("Checked at every phase, cotangent = the scanner's input y of that phase. VJP: "
               "torch.autograd through sigma'(x); the transpose mode applies what "
               "'scanner_uses' says.",
               className="section-note")])


N_OUT = 20


@pure_callback(
    Output("scan-error", "children"), Output("scan-stats", "children"), Output("scan-vjp", "children"),
    Output("scan-why", "children"), Output("scan-heat", "figure"), Output("scan-summary", "data"),
    Output("scan-summary", "columns"), Output("scan-support", "figure"), Output("scan-sv", "figure"),
    Output("scan-cond", "data"), Output("scan-cond", "columns"), Output("scan-recovery", "data"),
    Output("scan-recovery", "columns"), Output("scan-recovery-stat", "children"),
    Output("scan-table", "data"), Output("scan-table", "columns"), Output("scan-frames", "data"),
    Output("scan-cyto-elements", "data"), Output("scan-graph-note", "children"),
    Output("scan-weights-note", "children"),
    *[Input(i, p) for i, p in chain_inputs(PREFIX)], Input("scan-weights", "value"),
    Input("scan-mode", "value"), Input("scan-lam", "value"), Input("scan-noise", "value"),
    Input("scan-trained", "data"),
)
def compute(*values):
    """Chain + reverse-pass settings -> agreement, recovery, conditioning, figures (one
    round trip; the data come from the pure cache, keyed by the settings)."""
    *chain_values, weights, mode, lam, noise, trained = values
    try:
        v = scanner_views(chain_params(*chain_values), weights, mode, lam, noise, trained)
    except (TypeError, ValueError) as exc:
        return (error_message(exc), *[dash.no_update] * (N_OUT - 1))
    rec = v["rec"]
    return (None, _stats(v["table"], rec), _vjp_view(v["vjp"]), [html.Li(r) for r in v["why"]],
            v["heat"], *v["summary"], v["support"], v["sv"], *v["cond"], *v["rec_frame"],
            stat("pattern recovery accuracy", f"{rec['correct'].mean():.1%} of {v['T']} phases"),
            *v["table_frame"], v["frames"], v["elements"], v["note"], v["weights_note"])


def plan_phase_map(k, trials) -> JobPlan:
    """The phase-transition job: validated here (a bad K or trials shows its message)."""
    from engine.validate import check_int

    k = check_int("K entries", k, *PT_LIMITS["k"])
    trials = check_int("trials per cell", trials, *PT_LIMITS["trials"])
    return JobPlan(rows=phase_transition_rows(k, trials, seed=0),
                   total=len(phase_transition_cells(k)),
                   params={"K": k, "trials": trials, "seed": 0, "solver": "sklearn orthogonal_mp"})


register_job(PT, [State("scan-pt-k", "value"), State("scan-pt-trials", "value")], plan_phase_map,
             kind="scanner-phase-map", filename="scanner_phase_map.csv")


@pure_callback(Output("scan-pt-figure", "figure"), Input(PT_IDS.rows, "data"))
def draw_phase_map(rows):
    """The map fills in as the job's rows arrive."""
    return phase_transition_figure(rows or [])


register_csv_download("scan-csv", ("scan-table", "data"), "scanner_agreement.csv")
register_csv_download("scan-summary-csv", ("scan-summary", "data"), "scanner_column_summary.csv")
register_csv_download("scan-cond-csv", ("scan-cond", "data"), "scanner_conditioning.csv")
register_csv_download("scan-recovery-csv", ("scan-recovery", "data"), "scanner_recovery.csv")

register_clock("scan", "scanner")
# the transpose graph takes its elements when it is on screen (or scrolls into view)
clientside_callback(ClientsideFunction("scanner", "graph"), Output("scan-cyto", "elements"),
                    Input("scan-cyto-elements", "data"))
