"""Figures for the generator (and the scanner): pipeline, graph, heatmaps, audio.

The generator's clock runs in the browser: ``generator_frames`` precomputes, once per
parameter change, a static base for every view plus what changes from one phase to
the next (by pattern: the chain's output depends on the phase only through its
pattern), and ``assets/generator.js`` assembles each tick from them without a round
trip. Every function here is plain data in, plain dicts out.
"""
from __future__ import annotations

import base64
import hashlib
from typing import Any

import numpy as np
from plotly.subplots import make_subplots

from engine.chain.generator import COLUMN_TITLES, COLUMNS, Chain, graph_forward, to_wav_bytes, waveform

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
def graph_key(chain: Chain) -> str:
    """A prefix for element ids, unique per chain: cytoscape cannot re-wire an existing edge,
    so a new chain must bring new ids rather than reuse ``e0`` with other endpoints."""
    return "g" + hashlib.sha1(repr(chain.spec).encode()).hexdigest()[:8]


def graph_elements(chain: Chain) -> list[dict]:
    """Cytoscape nodes (fixed positions, seven layers left to right) and nonzero edges.

    Ids: ``{key}n{node}`` and ``{key}e{edge}`` with ``key = graph_key(chain)``.
    """
    g = chain.to_graph()
    key = graph_key(chain)
    elements = []
    for li, ((name, n), off) in enumerate(zip(g.layers, g.offsets)):
        dy = min(26.0, 520.0 / max(n, 1))
        for j in range(n):
            elements.append({"data": {"id": f"{key}n{off + j}", "label": f"{name}[{j}]"},
                             "position": {"x": li * GRAPH_LAYER_DX, "y": (j - (n - 1) / 2) * dy},
                             "classes": f"L{li}"})
    wmax = _scale(g.weight)
    for e, (s, d, w) in enumerate(zip(g.src, g.dst, g.weight)):
        elements.append({"data": {"id": f"{key}e{e}", "source": f"{key}n{s}", "target": f"{key}n{d}",
                                  "w": round(float(w), 4), "aw": round(abs(float(w)) / wmax, 4)},
                         "classes": "pos" if w > 0 else "neg"})
    return elements


def graph_stylesheet() -> list[dict]:
    """Idle look: grey nodes, edges width and colour by weight (blue +, red -), faded."""
    return [
        {"selector": "node", "style": {"width": 9, "height": 9, "background-color": IDLE,
                                       "border-width": 0.5, "border-color": "#8a93a3"}},
        {"selector": "edge", "style": {"width": "mapData(aw, 0, 1, 0.4, 3.5)", "opacity": 0.22,
                                       "curve-style": "straight"}},
        {"selector": "edge.pos", "style": {"line-color": "#2f6fdb"}},
        {"selector": "edge.neg", "style": {"line-color": "#c53030"}},
        {"selector": "node.lit", "style": {"background-color": ACTIVE, "width": 13, "height": 13}},
        {"selector": "edge.lit", "style": {"opacity": 0.95, "line-color": ACTIVE, "z-index": 5}},
    ]


def active_path(chain: Chain, phase: int) -> dict:
    """Node and edge selectors lit at ``phase``: nonzero nodes, edges that sent a message.

    The clock layer is left out (node ``n{t}`` and edge ``e{t}`` are the clock's, added by
    the browser for the current tick), so one entry serves every phase of a pattern.
    """
    g = chain.to_graph()
    key = graph_key(chain)
    T = g.layers[0][1]
    vals = graph_forward(g, phase)
    flat = np.concatenate([vals[c] for c in COLUMNS])
    nodes = np.flatnonzero(flat)
    edges = np.flatnonzero(flat[g.src] != 0)
    return {"nodes": [f"#{key}n{i}" for i in nodes if i >= T],
            "edges": [f"#{key}e{i}" for i in edges if i >= T]}


# -- heatmaps of R, W, M --------------------------------------------------------------------
def heatmaps_base(chain: Chain) -> dict:
    """R (P x K), W (H x K), M (F x H) side by side, each with its own colour range."""
    fig = make_subplots(rows=1, cols=3, horizontal_spacing=0.13,
                        subplot_titles=("R: routing (P x K)", "W: propagation (H x K)",
                                        "M: mixing (F x H)"))
    for i, (name, mat, rows, cols) in enumerate([("R", chain.R, "p", "k"), ("W", chain.W, "h", "k"),
                                                 ("M", chain.M, "f", "h")], start=1):
        m = _scale(mat)
        domain = fig.layout[f"xaxis{i if i > 1 else ''}"].domain
        fig.add_heatmap(z=mat, zmid=0, zmin=-m, zmax=m, colorscale="RdBu", row=1, col=i,
                        colorbar=dict(x=domain[1] + 0.008, xanchor="left", len=0.9, thickness=10),
                        hovertemplate=f"{name}[{rows}=%{{y}}, {cols}=%{{x}}] = %{{z:.3f}}<extra></extra>")
        fig.update_xaxes(title_text=f"{cols} (column index)", row=1, col=i)
        fig.update_yaxes(title_text=f"{rows} (row index)", autorange="reversed", row=1, col=i)
    fig.update_layout(height=330, margin=dict(l=50, r=20, t=40, b=50), uirevision="heat")
    return fig.to_plotly_json()


def heat_shapes(chain: Chain, p: int) -> list[dict]:
    """The active row of R, and the columns of W that the nonzeros touch."""
    K = chain.R.shape[1]
    H = chain.W.shape[0]
    line = dict(color=ACTIVE, width=2.5)
    shapes = [dict(type="rect", xref="x", yref="y", x0=-0.5, x1=K - 0.5, y0=p - 0.5, y1=p + 0.5,
                   line=line)]
    for k in np.flatnonzero(chain.R[p]):
        shapes.append(dict(type="rect", xref="x2", yref="y2", x0=k - 0.5, x1=k + 0.5, y0=-0.5,
                           y1=H - 0.5, line=dict(color=ACTIVE, width=1.5)))
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
def generator_frames(chain: Chain) -> dict[str, Any]:
    """The payload of the ``gen-frames`` store (see assets/generator.js)."""
    allc = chain.forward_all()
    s = chain.spec
    P = s.n_patterns
    first_phase = {}
    for t, p in enumerate(chain.lut):
        first_phase.setdefault(int(p), t)
    used = sorted(first_phase)
    scales = {c: _scale(allc[c]) for c in COLUMNS}
    heat, active, wav, wave_y, harm_y = ({} for _ in range(5))
    period_s = 2.0 / F0_HZ
    t_wave, _ = waveform([1.0], F0_HZ, 20000, period_s)
    ymax = 0.0
    for p in used:
        t = first_phase[p]
        cols_p = {c: allc[c][t] for c in COLUMNS}
        heat[p] = heat_shapes(chain, p)
        active[p] = active_path(chain, t)
        y = cols_p["assemble"]
        wav[p] = wav_data_uri(y)
        _, sig = waveform(y, F0_HZ, 20000, period_s)
        ymax = max(ymax, float(np.max(np.abs(sig))))
        wave_y[p] = _r(sig)
        harm_y[p] = _r(y)
    return {
        "T": s.n_phases, "P": P, "lut": [int(p) for p in chain.lut], "gkey": graph_key(chain),
        "pipe": pipeline_spec(chain, allc),
        "heat_base": heatmaps_base(chain), "heat": {str(p): v for p, v in heat.items()},
        "active": {str(p): v for p, v in active.items()},
        "wav": {str(p): v for p, v in wav.items()},
        "wave_x": _r(t_wave * 1000.0), "wave_y": {str(p): v for p, v in wave_y.items()},
        "harm_x": [round(F0_HZ * (f + 1), 3) for f in range(s.n_harmonics)],
        "harm_y": {str(p): v for p, v in harm_y.items()},
        "layouts": wave_layouts(s.n_harmonics, ymax or 1.0, scales["assemble"]),
    }
