"""/generator: one sparse chain drawn as a pipeline and as a graph, driven by a clock.

Parameters -> ``engine.chain.generator.make_chain`` -> every phase precomputed into the
``gen-frames`` store (one server round trip per parameter change, its data from the lab's
pure cache: ``components.figures_chain.generator_views``); the clock, both
views, the heatmap marks, the waveform and the audio then advance in the browser
(``assets/generator.js``), so 10 ticks/s never waits on the server.
"""
from __future__ import annotations

import dash
import dash_cytoscape as cyto
from dash import ClientsideFunction, Input, Output, State, callback, clientside_callback, dcc, html

from components.chain_controls import (chain_controls, chain_inputs, chain_params, chain_query,
                                       clock_row, maybe_trained, params_from_query, register_clock,
                                       train_query)
from components.figures_chain import generator_views, graph_stylesheet, loss_figure
from components.jobs import JobPlan, job_ids, job_panel, register_job
from components.layout import (controls_row, error_message, labelled, page_header, section, stat,
                               still_graph)
from components.pure_callback import PURE_LAYOUT, pure_callback
from components.tables import register_csv_download, table_with_csv
from engine.chain.generator import make_chain
from engine.chain.training import TARGETS, TRAIN_LIMITS, TrainRun, remember_trained, targets_for
from engine.runtime.device import cpu_device_name

dash.register_page(__name__, path="/generator", name="Generator", order=1,
                   description="One sparse chain drawn as a rule-based pipeline and as a "
                               "seven-layer graph, driven by a clock, with sound.",
                   pure_layout=PURE_LAYOUT)

PREFIX = "gen"
TRAIN = "gen-train"
TRAIN_IDS = job_ids(TRAIN)
VIEW_OPTIONS = [{"label": "side by side", "value": "both"},
                {"label": "pipeline only", "value": "pipeline"},
                {"label": "graph only", "value": "graph"}]


def _clock_controls() -> html.Div:
    return clock_row(
        "gen",
        html.Button("Unmute", id="gen-mute", className="btn", n_clicks=0,
                    title="audio stays off until you unmute"),
        dcc.RadioItems(id="gen-view", options=VIEW_OPTIONS, value="both", inline=True,
                       className="radio-inline gen-view"))


def _views() -> html.Div:
    pipeline = html.Div([
        html.H3("Pipeline view"),
        html.Div(id="gen-pipeline", className="gen-pipeline", role="img",
                 **{"aria-label": "pipeline view: seven columns at the current phase"}),
        html.P("dice: the sparse vector's nonzeros (blue positive, red negative, size by "
               "magnitude); hover any entry for its value", className="section-note"),
    ], id="gen-pipe-box", className="gen-view-box")
    graph = html.Div([
        html.H3("Graph view"),
        cyto.Cytoscape(id="gen-cyto", elements=[], layout={"name": "preset", "fit": True,
                                                          "padding": 12},
                       stylesheet=graph_stylesheet(), autoungrabify=True,
                       userZoomingEnabled=False, userPanningEnabled=False,
                       boxSelectionEnabled=False, style={"width": "100%", "height": "470px"}),
        html.P("seven layers, one node per entry, labelled with its dependency level and the "
               "nodes that run in parallel; edges are the nonzero matrix entries (blue "
               "positive, red negative, width by |weight|); the current phase's path is lit, "
               "one critical path is dashed, faded nodes never receive input",
               className="section-note"),
        html.P(id="gen-graph-note", className="section-note"),
    ], id="gen-graph-box", className="gen-view-box")
    return html.Div([pipeline, graph], id="gen-views", className="two-col")


def layout(**query):
    values = params_from_query(query)
    return html.Div([
        page_header(
            "Generator: one chain, two drawings",
            "A clock tick becomes a harmonic tone through seven columns: a lookup, a one-hot "
            "row pick from a sparse routing matrix, a sparse vector (the dice), an activation, "
            "a dense propagation W and an output mixing M. The same matrices are drawn as a "
            "seven-layer graph whose forward pass is message passing over its edges; the page "
            "computes the difference between the two at every phase instead of assuming it.",
            seed="the DRT generator deck (norayr-m/drt-generator, April 2026)"),
        section("Chain", controls_row(*chain_controls(PREFIX, values)),
                html.Div(id="gen-error"),
                html.Div(id="gen-stats"),
                html.P(["The scanner runs this chain backwards: ",
                        dcc.Link("open it in the Scanner", id="gen-scan-link", href="/scanner"),
                        " (the chain travels in the link's URL query)."],
                       className="section-note")),
        section("Clock", _clock_controls(), _views(),
                note="Press play: both views advance together in the browser, from data the "
                     "server computed once for all phases."),
        html.Audio(id="gen-audio", muted=True, preload="auto"),
        html.Div([
            section("Sound of the current phase",
                    html.Div([still_graph("gen-wave"),
                              still_graph("gen-harm")],
                             className="two-col"),
                    note="y_f are the output column; the tone is sum_f y_f sin(2 pi (f+1) f0 t) "
                         "with f0 = 220 Hz, made as a WAV by the engine. Audio is muted until "
                         "you unmute it."),
            section("Pipeline = graph, computed",
                    still_graph("gen-equality"),
                    note="For each phase, the largest |pipeline - graph| over all seven columns. "
                         "The pipeline multiplies matrices; the graph passes messages along its "
                         "edge list; nothing is shared but the weights."),
        ], className="two-col"),
        section("Matrices",
                still_graph("gen-heat"),
                note="The orange outline marks the routing row picked at this phase, and the "
                     "columns of W its nonzeros touch; M always uses all of h (h is dense)."),
        _training_section(),
        section("Parallelism: dependency levels",
                html.Div(id="gen-levels-stat"),
                *table_with_csv("gen-levels-table", "gen-levels-csv", page_size=7),
                note="Computed from the graph, not assumed: a node's level is the longest path "
                     "from the clock to it. Nodes of one level never feed each other, so each "
                     "level runs in parallel; the number of levels fixes the critical path, "
                     "whatever the size. Work per level: multiply-adds of the dense matrix, of "
                     "the nonzero weights (edges), and of the messages actually sent when zero "
                     "nodes send nothing (mean over the phases)."),
        section("Cost per column",
                *table_with_csv("gen-cost-table", "gen-cost-csv", page_size=7),
                note="Multiply-adds of the dense matrix-vector product vs the work done when "
                     "zeros are skipped. The deck's point: a sparse mat-vec costs O(nnz), and "
                     "the one-hot pick is O(1), a row pointer rather than a product."),
        section("Per-phase table",
                *table_with_csv("gen-phase-table", "gen-phase-csv", "Download per-phase CSV", page_size=8),
                note="phase, pattern, nonzeros, the computed max |pipeline - graph| of that "
                     "phase, the support and the first six outputs; the CSV has every "
                     "activation and every output too."),
        section("What the deck says",
                html.Ul([
                    html.Li("The deck presents the pipeline and the graph as two drawings of "
                            "the same arithmetic; toggling between them changes the picture, "
                            "not the computation."),
                    html.Li("It notes that the two views suggest different optimisations: the "
                            "pipeline shows the sparsity structure (one-hot pick, known "
                            "support, a small dense block), the graph shows which layers can "
                            "run in parallel."),
                    html.Li("Its three illustrative patterns are concentrated (one or two "
                            "heavy entries), balanced (roughly uniform) and dense (many small "
                            "entries); they are the presets here, plus seeded random."),
                ])),
        dcc.Store(id="gen-frames"),
        dcc.Store(id="gen-trained", data=None),
        dcc.Store(id="gen-phase", data=0),
        dcc.Store(id="gen-muted", data=True),
    ], className="gen-page")


def _training_section() -> html.Div:
    return section(
        "A trained chain: learn R, W and M so each pattern plays a chord",
        controls_row(
            labelled("Target", dcc.RadioItems(
                id="gen-target", value="major triad", inline=True, className="radio-inline",
                options=[{"label": k, "value": k, "title": v} for k, v in TARGETS.items()]),
                help="major triad: harmonics 4, 5, 6 of 220 Hz (A, C#, E)"),
            labelled("custom amplitudes", dcc.Input(
                id="gen-custom", type="text", value="0 0 0 1 1 1; 1 0 1 0 0 0", debounce=True,
                className="num-input"), help="F numbers per pattern, rows split by ';'"),
            labelled("steps", dcc.Input(id="gen-steps", type="number", value=300, step=1,
                                        min=TRAIN_LIMITS["steps"][0], max=TRAIN_LIMITS["steps"][1],
                                        className="num-input"), help="Adam steps"),
            labelled("learning rate", dcc.Input(id="gen-lr", type="number", value=0.05, step="any",
                                                min=TRAIN_LIMITS["lr"][0], max=TRAIN_LIMITS["lr"][1],
                                                className="num-input"), help="Adam's step size"),
        ),
        job_panel(TRAIN, run_label="Train",
                  note="Autograd (torch, float64) on mean_p ||M W sigma(R_p) - target_p||^2; R's "
                       "gradient is masked to its nonzeros, so the trained chain keeps its dice. "
                       "When it is done, every view above draws the learned weights."),
        html.Button("Back to the seeded weights", id="gen-untrain", className="btn", n_clicks=0),
        html.Div(id="gen-weights-note", className="section-note", role="status"),
        still_graph("gen-loss"),
        note="The deck's point from the other side: a network trained from data is the rule "
             "pipeline. The equality check still holds for the learned weights.")


def _stats(v: dict) -> html.Div:
    return html.Div([
        stat("nonzeros in R", f"{v['nnz']} of {v['R_size']}"),
        stat("density of R", f"{v['nnz'] / v['R_size']:.3f}"),
        stat("graph nodes / edges", f"{v['nodes']} / {v['edges']}"),
        stat("max |pipeline - graph|, all phases", f"{v['max_diff']:.2e}", id="gen-maxdiff"),
    ])


@pure_callback(
    Output("gen-frames", "data"), Output("gen-error", "children"), Output("gen-cyto", "elements"),
    Output("gen-equality", "figure"), Output("gen-cost-table", "data"),
    Output("gen-cost-table", "columns"), Output("gen-phase-table", "data"),
    Output("gen-phase-table", "columns"), Output("gen-stats", "children"),
    Output("gen-scan-link", "href"), Output("gen-graph-note", "children"),
    Output("gen-levels-table", "data"), Output("gen-levels-table", "columns"),
    Output("gen-levels-stat", "children"), Output("gen-weights-note", "children"),
    *[Input(i, p) for i, p in chain_inputs(PREFIX)], Input("gen-trained", "data"),
)
def compute(*values):
    """Widget values (and a finished training) -> chain -> every view's data for all phases
    (one round trip; the data come from the pure cache, keyed by the chain's spec)."""
    *values, trained = values
    try:
        params = chain_params(*values)
        chain = make_chain(**params)
        _, weights_note, trained = maybe_trained(chain, params, trained)
        training = None if trained is None else (
            trained["target"], int(trained["steps"]), float(trained["lr"]),
            trained.get("custom", "") if trained["target"] == "custom" else "")
        v = generator_views(chain.spec, training)
    except (TypeError, ValueError) as exc:
        return (dash.no_update, error_message(exc), *[dash.no_update] * 13)
    crit = stat("critical path", f"{v['critical_path']} steps ({v['n_levels']} levels)",
                id="gen-critical")
    unreached = stat("nodes that never receive input", str(v["unreached"]))
    return (v["frames"], None, v["elements"], v["equality"], *v["cost"], *v["phases"],
            _stats(v), "/scanner" + chain_query(params) + train_query(trained), v["note"],
            *v["levels"], html.Div([crit, unreached]), weights_note)


def plan_training(*values) -> JobPlan:
    """The training job: the chain of the controls, its targets, then Adam step by step; at
    the end the result goes to the shared pure cache so the page can draw it at once."""
    *chain_values, target, custom, steps, lr = values
    params = chain_params(*chain_values)
    start = make_chain(**params)
    run = TrainRun(start, targets_for(start, target, custom), steps, lr)
    device = cpu_device_name()  # TrainRun's tensors are float64 on the CPU, also on a GPU host

    def rows():
        for row in run.rows():
            yield {"step": row["step"], "loss": row["loss"], "device": device}
        remember_trained(run, params, target, custom)

    return JobPlan(rows=rows(), total=run.steps + 1,
                   params={**params, "target": target, "steps": run.steps, "lr": run.lr,
                           "custom": custom if target == "custom" else ""})


register_job(TRAIN, [State(i, p) for i, p in chain_inputs(PREFIX)]
             + [State("gen-target", "value"), State("gen-custom", "value"),
                State("gen-steps", "value"), State("gen-lr", "value")],
             plan_training, kind="generator-training", filename="generator_training_loss.csv")


@pure_callback(Output("gen-loss", "figure"), Input(TRAIN_IDS.rows, "data"))
def draw_loss(rows):
    """The loss curve, step by step as the job runs."""
    return loss_figure(rows or [])


@callback(Output("gen-trained", "data"), Input(TRAIN_IDS.result, "data"),
          Input("gen-untrain", "n_clicks"), State(TRAIN_IDS.run, "n_clicks"),
          prevent_initial_call=True)
def use_training(result, _untrain, _runs):
    """A finished training switches the views to its weights; the button switches back."""
    if dash.ctx.triggered_id == "gen-untrain" or not result or result.get("status") != "done":
        return None
    from engine.runtime.store import RunStore

    try:
        p = dict(RunStore().meta(result["run_id"])["params"]) if result.get("run_id") else {}
    except KeyError:  # the run was deleted meanwhile
        p = {}
    train = {k: p.pop(k) for k in ("target", "steps", "lr", "custom") if k in p}
    if set(train) != {"target", "steps", "lr", "custom"}:
        return None
    return {"params": p, **train}


register_csv_download("gen-cost-csv", ("gen-cost-table", "data"), "generator_cost.csv")
register_csv_download("gen-phase-csv", ("gen-phase-table", "data"), "generator_phases.csv")
register_csv_download("gen-levels-csv", ("gen-levels-table", "data"), "generator_levels.csv")

register_clock("gen", "generator", State("gen-muted", "data"))
clientside_callback(ClientsideFunction("generator", "setup"),
                    Output("gen-heat", "figure"),
                    Output("gen-wave", "figure"), Output("gen-harm", "figure"),
                    Input("gen-frames", "data"), State("gen-phase", "data"))
clientside_callback(ClientsideFunction("generator", "mute"),
                    Output("gen-muted", "data"), Output("gen-mute", "children"),
                    Input("gen-mute", "n_clicks"), State("gen-muted", "data"),
                    State("gen-phase", "data"), State("gen-frames", "data"),
                    prevent_initial_call=True)
clientside_callback(ClientsideFunction("generator", "view"),
                    Output("gen-views", "className"), Output("gen-pipe-box", "hidden"),
                    Output("gen-graph-box", "hidden"), Input("gen-view", "value"))
