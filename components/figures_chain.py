"""Figures for the generator (and the scanner): pipeline, graph, heatmaps, audio.

The generator's clock runs in the browser: ``generator_frames`` precomputes, once per
parameter change, a static base for every view plus what changes from one phase to
the next (by pattern: the chain's output depends on the phase only through its
pattern), and ``assets/generator.js`` assembles each tick from them without a round
trip. Every function here is plain data in, plain dicts out.
"""
from __future__ import annotations

import base64
import copy
import dataclasses
import functools
import hashlib
from typing import Any

import numpy as np
import plotly.graph_objects as go
from _plotly_utils.utils import convert_to_base64
from plotly.subplots import make_subplots

from engine.chain.generator import (COLUMN_TITLES, COLUMNS, Chain, ChainSpec, graph_forward,
                                    to_wav_bytes, waveform)
from engine.runtime.cache import pure_cache

F0_HZ = 220.0
WAV_RATE = 8000
WAV_SECONDS = 0.35
ACTIVE = "#f08c00"
IDLE = "#c3c9d4"
GRAPH_LAYER_DX = 150.0


def _scale(values: np.ndarray) -> float:
    m = float(np.max(np.abs(values))) if values.size else 0.0
    return m if m > 0 else 1.0


def _r(v: np.ndarray) -> list:
    return [round(float(x), 6) for x in np.asarray(v).ravel()]


# -- pipeline view ---------------------------------------------------------------------------
PIPE_CAPTIONS = ("e_t", "e_p = L e_t", "S e_p = row p of R", "nnz = {nnz} of {k}",
                 "{act} on nonzeros", "h = W a", "y = M h")


def pipeline_spec(chain: Chain, allc: dict[str, np.ndarray]) -> dict:
    """What the browser needs to draw the pipeline as SVG (assets/generator.js: drawPipeline).

    sizes and titles of the seven columns, the routing matrix R (P x K) with its colour
    range, each column's colour range over all phases, and per pattern the values of
    columns four to seven (the only ones that change besides the clock and the pick).
    """
    s = chain.spec
    first_phase: dict[int, int] = {}
    for t, p in enumerate(chain.lut):
        first_phase.setdefault(int(p), t)
    values = {str(p): {c: _r(allc[c][t]) for c in ("sparse", "activation", "propagate", "assemble")}
              for p, t in first_phase.items()}
    captions = [c.format(nnz=s.row_nnz, k=s.k, act=s.activation) for c in PIPE_CAPTIONS]
    return {
        "titles": [COLUMN_TITLES[c] for c in COLUMNS], "captions": captions,
        "sizes": [chain.sizes[c] for c in COLUMNS],
        "R": [_r(row) for row in chain.R], "rmax": _scale(chain.R),
        "scales": {c: _scale(allc[c]) for c in COLUMNS},
        "labels": s.row_nnz <= 6, "values": values,
    }


# -- graph view (dash-cytoscape) --------------------------------------------------------------
EDGE_LIMIT = 300    # a matrix with more edges than this is thinned ...
EDGE_BUDGET = 160   # ... to its EDGE_BUDGET largest |weight|
LABEL_Y = -300.0    # layer labels sit above the tallest layer (dy <= 520 / n per node)


def graph_key(chain: Chain, prefix: str = "g") -> str:
    """A prefix for element ids, unique per chain: cytoscape cannot re-wire an existing edge,
    so a new chain must bring new ids rather than reuse ``e0`` with other endpoints."""
    return prefix + hashlib.sha1(repr(chain.spec).encode()).hexdigest()[:8]


def drawn_edges(chain: Chain, budget: int = EDGE_BUDGET,
                limit: int = EDGE_LIMIT) -> tuple[np.ndarray, list[dict]]:
    """(edge ids to draw, one note row per thinned layer) for a readable graph at any size.

    Layers with more than ``limit`` edges keep the ``budget`` largest |weight|, plus the
    strongest input of every node (so no node looks cut off) and the critical path; the
    others are hidden from the drawing only (message passing and the equality check use
    every edge). Note rows: layer, drawn, total, min_drawn_abs_weight.
    """
    from engine.chain.graph import chain_critical_path

    g = chain.to_graph()
    keep = np.zeros(g.n_edges, dtype=bool)
    path = chain_critical_path(chain)
    on_path = set(zip(path, path[1:]))
    notes = []
    for layer in range(1, len(g.layers)):
        idx = np.flatnonzero(g.edge_layer == layer)
        if idx.size <= limit:
            keep[idx] = True
            continue
        aw = np.abs(g.weight[idx])
        keep[idx[np.argsort(-aw, kind="stable")[:budget]]] = True
        for d in np.unique(g.dst[idx]):  # every node's strongest input
            mine = idx[g.dst[idx] == d]
            keep[mine[np.argmax(np.abs(g.weight[mine]))]] = True
        notes.append({"layer": COLUMN_TITLES[COLUMNS[layer]], "drawn": int(keep[idx].sum()),
                      "total": int(idx.size),
                      "min_drawn_abs_weight": float(np.abs(g.weight[idx[keep[idx]]]).min())})
    for e in range(g.n_edges):
        if (int(g.src[e]), int(g.dst[e])) in on_path:
            keep[e] = True
    return np.flatnonzero(keep), notes


def hidden_note(notes: list[dict], total_edges: int, drawn: int) -> str:
    """What the graph view does not draw, in one sentence ("" when it draws everything)."""
    if not notes:
        return f"All {total_edges} edges are drawn."
    parts = [f"{n['layer']}: {n['drawn']} of {n['total']} (|w| >= {n['min_drawn_abs_weight']:.2g})"
             for n in notes]
    return (f"Drawn: {drawn} of {total_edges} edges. Hidden for readability: the weakest "
            "edges of " + "; ".join(parts) + ". Each node keeps its strongest input; every "
            "edge still computes (the equality check uses all of them).")


def graph_elements(chain: Chain, reverse: bool = False, prefix: str = "g",
                   edges: np.ndarray | None = None) -> list[dict]:
    """Cytoscape nodes (fixed positions, seven layers left to right), the drawn edges and
    one label per layer (name, dependency level, nodes that run in parallel).

    Ids: ``{key}n{node}``, ``{key}e{edge}`` and ``{key}L{layer}`` with
    ``key = graph_key(chain, prefix)``. reverse=True flips every edge (the scanner's
    transpose graph: same nodes, same positions, wires right to left). Edges on the
    critical path carry the class ``crit``.
    """
    from engine.chain.graph import chain_critical_path, chain_levels

    g = chain.to_graph()
    key = graph_key(chain, prefix)
    lv = chain_levels(chain)
    path = chain_critical_path(chain)
    on_path = set(zip(path, path[1:]))
    elements = []
    for li, ((name, n), off) in enumerate(zip(g.layers, g.offsets)):
        dy = min(26.0, 520.0 / max(n, 1))
        for j in range(n):
            elements.append({"data": {"id": f"{key}n{off + j}", "label": f"{name}[{j}]"},
                             "position": {"x": li * GRAPH_LAYER_DX, "y": (j - (n - 1) / 2) * dy},
                             "classes": f"L{li}" + (" off" if lv[off + j] < 0 else "")})
        levels_here = sorted({int(v) for v in lv[off:off + n] if v >= 0})
        parallel = int(np.sum(lv[off:off + n] >= 0))
        level_text = f"level {levels_here[0]}" if len(levels_here) == 1 else "unreached"
        elements.append({"data": {"id": f"{key}L{li}",
                                  "label": f"{COLUMN_TITLES[name]}\n{level_text} \u00b7 {parallel} parallel"},
                         # staggered: neighbouring labels never overlap, however narrow the view
                         "position": {"x": li * GRAPH_LAYER_DX, "y": LABEL_Y - 62 * (li % 2)},
                         "classes": "layer-label", "selectable": False})
    wmax = _scale(g.weight)
    for e in (np.arange(g.n_edges) if edges is None else edges):
        s, d, w = int(g.src[e]), int(g.dst[e]), float(g.weight[e])
        a, b = (d, s) if reverse else (s, d)
        cls = ("pos" if w > 0 else "neg") + (" crit" if (s, d) in on_path else "")
        elements.append({"data": {"id": f"{key}e{e}", "source": f"{key}n{a}", "target": f"{key}n{b}",
                                  "w": round(w, 4), "aw": round(abs(w) / wmax, 4)},
                         "classes": cls})
    return elements


def graph_stylesheet(reverse: bool = False) -> list[dict]:
    """Idle look: grey nodes, edges width and colour by weight (blue +, red -), faded;
    layer labels above the columns; the critical path dashed; the reverse graph has arrows
    pointing right to left and nodes coloured by their column's agreement."""
    sheet = [
        {"selector": "node", "style": {"width": 9, "height": 9, "background-color": IDLE,
                                       "border-width": 0.5, "border-color": "#8a93a3"}},
        {"selector": "node.off", "style": {"opacity": 0.35}},
        {"selector": "node.layer-label", "style": {
            "label": "data(label)", "text-wrap": "wrap", "text-valign": "top", "text-halign": "center",
            "font-size": 21, "font-weight": 600, "color": "#2b3240", "width": 1, "height": 1,
            "background-opacity": 0, "border-width": 0, "text-margin-y": -4, "events": "no"}},
        {"selector": "edge", "style": {"width": "mapData(aw, 0, 1, 0.4, 3.5)", "opacity": 0.22,
                                       "curve-style": "straight"}},
        {"selector": "edge.pos", "style": {"line-color": "#2f6fdb"}},
        {"selector": "edge.neg", "style": {"line-color": "#c53030"}},
        {"selector": "edge.crit", "style": {"line-style": "dashed", "opacity": 0.6}},
        {"selector": "node.lit", "style": {"background-color": ACTIVE, "width": 13, "height": 13}},
        {"selector": "edge.lit", "style": {"opacity": 0.95, "line-color": ACTIVE, "z-index": 5}},
    ]
    if reverse:
        sheet += [
            {"selector": "edge", "style": {"target-arrow-shape": "triangle", "arrow-scale": 0.6,
                                           "target-arrow-color": "#7a8496"}},
            {"selector": "node.within", "style": {"background-color": "#1f8a4c"}},
            {"selector": "node.exceeds", "style": {"background-color": "#c53030"}},
            {"selector": "node.nobound", "style": {"background-color": "#8a93a3"}},
            {"selector": "node.hot", "style": {"width": 13, "height": 13, "border-width": 1.5,
                                               "border-color": "#2b3240"}},
        ]
    return sheet


def active_path(chain: Chain, phase: int, drawn: np.ndarray | None = None) -> dict:
    """Node and edge indices lit at ``phase``: nonzero nodes, drawn edges that sent a message.

    The clock layer is left out (node ``t`` and edge ``t`` are the clock's, added by the
    browser for the current tick), so one entry serves every phase of a pattern.
    """
    g = chain.to_graph()
    T = g.layers[0][1]
    vals = graph_forward(g, phase)
    flat = np.concatenate([vals[c] for c in COLUMNS])
    sent = flat[g.src] != 0
    if drawn is not None:
        mask = np.zeros(g.n_edges, dtype=bool)
        mask[drawn] = True
        sent &= mask
    nodes = np.flatnonzero(flat)
    edges = np.flatnonzero(sent)
    return {"nodes": [int(i) for i in nodes if i >= T], "edges": [int(i) for i in edges if i >= T]}


# -- heatmaps of R, W, M --------------------------------------------------------------------
HEATMAPS = (("R", "p", "k"), ("W", "h", "k"), ("M", "f", "h"))  # (matrix, row index, column index)


@functools.lru_cache(maxsize=1)
def _heatmaps_layout() -> dict:
    """The layout of the three heatmaps, the same for every chain: built once per process
    (make_subplots and plotly's validation cost ~90 ms a figure); copied before use."""
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.13,
                        subplot_titles=("R: routing (P x K)", "W: propagation (H x K)",
                                        "M: mixing (F x H)"))
    for i, (_name, rows, cols) in enumerate(HEATMAPS, start=1):
        fig.update_xaxes(title_text=f"{cols} (column index)", row=1, col=i)
        fig.update_yaxes(title_text=f"{rows} (row index)", autorange="reversed", row=1, col=i)
    fig.update_layout(height=330, margin=dict(l=50, r=20, t=40, b=50), uirevision="heat")
    return fig.to_plotly_json()["layout"]


def heatmaps_base(chain: Chain) -> dict:
    """R (P x K), W (H x K), M (F x H) side by side, each with its own colour range."""
    layout = copy.deepcopy(_heatmaps_layout())
    data = []
    for i, (name, rows, cols) in enumerate(HEATMAPS, start=1):
        mat, axis = getattr(chain, name), "" if i == 1 else str(i)
        m = _scale(mat)
        domain = layout[f"xaxis{axis}"]["domain"]
        data.append(go.Heatmap(
            z=mat, zmid=0, zmin=-m, zmax=m, colorscale="RdBu", xaxis=f"x{axis}", yaxis=f"y{axis}",
            colorbar=dict(x=domain[1] + 0.008, xanchor="left", len=0.9, thickness=10),
            hovertemplate=f"{name}[{rows}=%{{y}}, {cols}=%{{x}}] = %{{z:.3f}}<extra></extra>").to_plotly_json())
    convert_to_base64(data)  # what Figure.to_dict does: arrays go binary ({dtype, bdata, shape})
    return {"data": data, "layout": layout}


def heat_shapes(chain: Chain, p: int) -> list[dict]:
    """The active row of R, and the columns of W that the nonzeros touch (one outline per
    run of neighbouring columns, so a dense row is one shape, not K)."""
    K = chain.R.shape[1]
    H = chain.W.shape[0]
    line = dict(color=ACTIVE, width=2.5)
    shapes = [dict(type="rect", xref="x", yref="y", x0=-0.5, x1=K - 0.5, y0=p - 0.5, y1=p + 0.5,
                   line=line)]
    ks = np.flatnonzero(chain.R[p])
    if ks.size:
        breaks = np.flatnonzero(np.diff(ks) > 1)
        starts = np.concatenate([[ks[0]], ks[breaks + 1]])
        ends = np.concatenate([ks[breaks], [ks[-1]]])
        for a, b in zip(starts, ends):
            shapes.append(dict(type="rect", xref="x2", yref="y2", x0=float(a) - 0.5,
                               x1=float(b) + 0.5, y0=-0.5, y1=H - 0.5,
                               line=dict(color=ACTIVE, width=1.5)))
    return shapes


# -- equality figure ----------------------------------------------------------------------------
def equality_figure(diff: np.ndarray) -> dict:
    """max |pipeline - graph| per phase, with float64's machine epsilon for scale."""
    eps = float(np.finfo(np.float64).eps)
    t = np.arange(diff.size)
    fig = {
        "data": [dict(type="bar", x=t.tolist(), y=[float(v) for v in diff], marker_color="#2f6fdb",
                      hovertemplate="phase %{x}: %{y:.3e}<extra></extra>", name="max |pipeline - graph|")],
        "layout": dict(
            height=260, margin=dict(l=70, r=20, t=30, b=45),
            xaxis=dict(title=dict(text="phase t (tick)")),
            yaxis=dict(title=dict(text="max |pipeline - graph| (abs.)"), exponentformat="e",
                       range=[0, max(float(diff.max()), eps) * 1.8]),
            shapes=[dict(type="line", xref="paper", x0=0, x1=1, y0=eps, y1=eps,
                         line=dict(dash="dash", color="#c53030", width=1))],
            annotations=[dict(xref="paper", x=1, y=eps, yanchor="bottom", xanchor="right",
                              showarrow=False, text="float64 machine epsilon 2.2e-16",
                              font=dict(size=10, color="#c53030"))],
            showlegend=False),
    }
    return fig


# -- the training's loss curve -------------------------------------------------------------------
def loss_figure(rows: list[dict]) -> dict:
    """Loss per Adam step on a log axis, from the training job's rows."""
    if not rows:
        return {"data": [], "layout": dict(
            height=260, xaxis=dict(visible=False), yaxis=dict(visible=False),
            annotations=[dict(text="Press Train: the loss appears here step by step.", x=0.5, y=0.5,
                              xref="paper", yref="paper", showarrow=False,
                              font=dict(size=14, color="#5b6475"))])}
    steps = [int(r["step"]) for r in rows]
    loss = [max(float(r["loss"]), 1e-300) for r in rows]
    return {"data": [dict(type="scatter", mode="lines", x=steps, y=loss, line=dict(color="#2f6fdb"),
                          hovertemplate="step %{x}: loss %{y:.3g}<extra></extra>", name="loss")],
            "layout": dict(height=260, margin=dict(l=70, r=20, t=20, b=50), showlegend=False,
                           xaxis=dict(title=dict(text="Adam step")),
                           yaxis=dict(title=dict(text="loss: mean_p ||y_p - target_p||^2 (a.u.)"),
                                      type="log", exponentformat="e"),
                           uirevision="loss")}


# -- audio and waveform ------------------------------------------------------------------------
def wav_data_uri(amplitudes: np.ndarray) -> str:
    data = to_wav_bytes(amplitudes, F0_HZ, WAV_RATE, WAV_SECONDS)
    return "data:audio/wav;base64," + base64.b64encode(data).decode("ascii")


def wave_layouts(n_harmonics: int, ymax: float, amax: float) -> dict:
    return {
        "wave": dict(height=230, margin=dict(l=60, r=15, t=30, b=45), showlegend=False,
                     title=dict(text="waveform (two periods of f0)", font=dict(size=13)),
                     xaxis=dict(title=dict(text="time (ms)")),
                     yaxis=dict(title=dict(text="amplitude (a.u.)"), range=[-ymax * 1.1, ymax * 1.1])),
        "harm": dict(height=230, margin=dict(l=60, r=15, t=30, b=45), showlegend=False,
                     title=dict(text="harmonic amplitudes y_f", font=dict(size=13)),
                     xaxis=dict(title=dict(text="frequency (Hz)")),
                     yaxis=dict(title=dict(text="amplitude y_f (a.u.)"), range=[-amax * 1.1, amax * 1.1])),
    }


# -- everything the browser needs for the clock --------------------------------------------------
def generator_frames(chain: Chain, drawn: np.ndarray | None = None) -> dict[str, Any]:
    """The payload of the ``gen-frames`` store (see assets/generator.js); ``drawn``: the
    edges ``drawn_edges(chain)`` keeps (computed here when not given)."""
    allc = chain.forward_all()
    s = chain.spec
    P = s.n_patterns
    first_phase = {}
    for t, p in enumerate(chain.lut):
        first_phase.setdefault(int(p), t)
    used = sorted(first_phase)
    scales = {c: _scale(allc[c]) for c in COLUMNS}
    heat, active, wav, wave_y, harm_y = ({} for _ in range(5))
    if drawn is None:
        drawn, _ = drawn_edges(chain)
    period_s = 2.0 / F0_HZ
    t_wave, _ = waveform([1.0], F0_HZ, 20000, period_s)
    ymax = 0.0
    for p in used:
        t = first_phase[p]
        cols_p = {c: allc[c][t] for c in COLUMNS}
        heat[p] = heat_shapes(chain, p)
        active[p] = active_path(chain, t, drawn)
        y = cols_p["assemble"]
        wav[p] = wav_data_uri(y)
        _, sig = waveform(y, F0_HZ, 20000, period_s)
        ymax = max(ymax, float(np.max(np.abs(sig))))
        wave_y[p] = _r(sig)
        harm_y[p] = _r(y)
    return {
        "T": s.n_phases, "P": P, "lut": [int(p) for p in chain.lut], "gkey": graph_key(chain),
        "clock_drawn": [bool(v) for v in np.isin(np.arange(s.n_phases), drawn)],
        "pipe": pipeline_spec(chain, allc),
        "heat_base": heatmaps_base(chain), "heat": {str(p): v for p, v in heat.items()},
        "active": {str(p): v for p, v in active.items()},
        "wav": {str(p): v for p, v in wav.items()},
        "wave_x": _r(t_wave * 1000.0), "wave_y": {str(p): v for p, v in wave_y.items()},
        "harm_x": [round(F0_HZ * (f + 1), 3) for f in range(s.n_harmonics)],
        "harm_y": {str(p): v for p, v in harm_y.items()},
        "layouts": wave_layouts(s.n_harmonics, ymax or 1.0, scales["assemble"]),
    }


PHASE_KEY_COLUMNS = ("phase", "pattern", "nnz", "max_abs_pipeline_minus_graph", "support")
PHASE_OUTPUTS_SHOWN = 6


def phase_columns(phases) -> list[str]:
    """What the per-phase table shows at any size: the phase's keys and its first
    PHASE_OUTPUTS_SHOWN outputs (K activations and F outputs do not fit 1280 px; the
    table's data and its CSV keep every column)."""
    outputs = [c for c in phases.columns if str(c).startswith("y_")][:PHASE_OUTPUTS_SHOWN]
    return [c for c in PHASE_KEY_COLUMNS if c in phases.columns] + outputs


# -- everything /generator shows for one chain, cached --------------------------------------------
@pure_cache
def generator_views(spec: ChainSpec, training: tuple | None = None) -> dict[str, Any]:
    """Every view's data for the chain of ``spec`` (trained with ``training`` = (target,
    steps, lr, custom) when given): plain data, deterministic in its arguments, so it is
    kept in the lab's pure cache and many clients moving the same controls share it."""
    from components.tables import table_columns
    from engine.chain.generator import make_chain, pipeline_graph_difference
    from engine.chain.graph import level_table
    from engine.chain.training import cached_trained_chain

    params = dataclasses.asdict(spec)
    chain = make_chain(**params)
    losses = None
    if training is not None:
        target, steps, lr, custom = training
        chain, losses = cached_trained_chain({k: v for k, v in params.items() if k != "weights"},
                                             target, steps, lr, custom)
    diff = pipeline_graph_difference(chain)
    cost, phases, levels = chain.cost_table(), chain.phase_table(), level_table(chain)
    drawn, notes = drawn_edges(chain)
    g = chain.to_graph()
    return {
        "frames": generator_frames(chain, drawn), "elements": graph_elements(chain, edges=drawn),
        "equality": equality_figure(diff), "max_diff": float(diff.max()),
        "cost": (cost.to_dict("records"), table_columns(cost)),
        "phases": (phases.to_dict("records"), table_columns(phases, only=phase_columns(phases))),
        "levels": (levels.to_dict("records"), table_columns(levels)),
        "critical_path": levels.attrs["critical_path"], "n_levels": len(levels),
        "unreached": levels.attrs["unreached"], "note": hidden_note(notes, g.n_edges, drawn.size),
        "nnz": int(np.count_nonzero(chain.R)), "R_size": int(chain.R.size),
        "nodes": g.n_nodes, "edges": g.n_edges,
        "losses": None if losses is None else (losses[0], losses[-1]),
    }
