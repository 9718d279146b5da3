"""Figures of the /structured-matrices page: Pareto plot, heatmaps, timing sweep."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.figures_common import (add_points, colorscale, empty_figure, reference_line, subplot_grid,
                                       unvalidated_figure)
from engine.bench.measurement import ratio_noisy
from engine.runtime.cache import pure_cache
from engine.structured.operators import FAMILY_LABELS

COLORS = {
    "dense": "#1d2330", "lowrank": "#2f6fdb", "monarch": "#1f8a4c", "butterfly": "#b7791f",
    "circulant": "#8e44ad", "toeplitz": "#d35400", "sparse": "#c53030",
}
SYMBOLS = {"lowrank": "circle", "monarch": "square", "butterfly": "diamond", "circulant": "star",
           "toeplitz": "triangle-up", "sparse": "x"}
FONT = dict(family="Inter, Segoe UI, system-ui, sans-serif", size=13)


def _base(fig: go.Figure, height: int) -> go.Figure:
    fig.update_layout(height=height, margin=dict(l=60, r=20, t=40, b=50), font=FONT,
                      plot_bgcolor="#ffffff", paper_bgcolor="#ffffff",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def pareto_figure(rows: Sequence[dict], budget: int | None, n: int) -> go.Figure:
    """Relative error against parameter count, one trace per family; the budget as a line."""
    if not rows:
        return empty_figure("no data")
    fig = go.Figure()
    for fam in ("lowrank", "monarch", "butterfly", "circulant", "toeplitz", "sparse"):
        pts = sorted((r for r in rows if r["family"] == fam), key=lambda r: r["params"])
        if not pts:
            continue
        fig.add_trace(go.Scatter(
            x=[r["params"] for r in pts], y=[r["rel_error"] for r in pts],
            mode="lines+markers" if len(pts) > 1 else "markers", name=FAMILY_LABELS[fam],
            marker=dict(symbol=SYMBOLS[fam], size=9 if fam != "sparse" else 8, color=COLORS[fam]),
            line=dict(color=COLORS[fam], dash="dot" if fam == "sparse" else "solid"),
            customdata=[[r["config"], r["flops_per_vector"]] for r in pts],
            hovertemplate="%{fullData.name} %{customdata[0]}<br>params %{x:,}<br>"
                          "rel. error %{y:.4f}<br>FLOPs/vector %{customdata[1]:,.0f}<extra></extra>"))
    fig.update_xaxes(type="log", dtick=1, title="parameters stored (count, log scale)", gridcolor="#eef0f4")
    fig.update_yaxes(title="relative error ‖A − Â‖F / ‖A‖F", rangemode="tozero", gridcolor="#eef0f4")
    # labels on their lines on the log axis (reference_line), left of the line
    reference_line(fig, "dense n²", x=n * n, color="#dfe3ea", dash="solid", side="bottom", along=0.01)
    if budget:
        _budget_line(fig, budget)
    return _base(fig, 420)


def _budget_line(fig: go.Figure, budget: int) -> go.Figure:
    return reference_line(fig, f"budget {budget:,}", x=budget, side="bottom", log=True)


def heatmap_grid(panels: Sequence[tuple[str, np.ndarray | None]], cols: int = 4, cell: int = 1) -> go.Figure:
    """One heatmap per (title, matrix); matrices share one symmetric colour scale.

    Matrices arrive small and real (engine.structured.pareto.block_means: ``cell`` x ``cell``
    entries averaged per cell, said in the colour bar's title); a panel with no
    matrix (over budget) is left empty with its title saying why. Built as plain dicts on
    a cached subplot grid (figures_common.subplot_grid): the same figure as make_subplots
    and per-panel updates give, without validating every property (tests compare)."""
    if not panels:
        return empty_figure("no data")
    rows = math.ceil(len(panels) / cols)
    layout = subplot_grid(rows, cols, [t for t, _ in panels], horizontal_spacing=0.03, vertical_spacing=0.09)
    mats = [np.asarray(M) for _, M in panels if M is not None]
    lim = max((float(np.max(np.abs(M))) for M in mats), default=1.0) or 1.0
    # the target sets the scale when it is the first panel, so errors are comparable
    if panels[0][1] is not None:
        lim = float(np.max(np.abs(panels[0][1]))) or lim
    traces = []
    for k, (_title, M) in enumerate(panels):
        suffix = str(k + 1) if k else ""
        axes = {"xaxis": f"x{suffix}", "yaxis": f"y{suffix}"}
        if M is None:
            traces.append({"type": "heatmap", "z": [[None]], "showscale": False, **axes})
        else:
            traces.append({"type": "heatmap", "z": np.asarray(M, dtype=np.float32), "zmin": -lim, "zmax": lim,
                           "colorscale": colorscale("RdBu_r"), "showscale": k == 0,
                           "colorbar": {"title": {"text": "value" if cell == 1 else f"value: mean of<br>{cell} x {cell} entries"},
                                        "len": 0.8, "thickness": 12},
                           "hovertemplate": "row %{y}, col %{x}: %{z:.3g}<extra></extra>", **axes})
        layout[f"yaxis{suffix}"].update(autorange="reversed", scaleanchor=f"x{suffix}", showticklabels=False)
        layout[f"xaxis{suffix}"].update(showticklabels=False)
    for note in layout["annotations"]:
        note["font"]["size"] = 12
    layout.update(height=270 * rows + 40, margin=dict(l=20, r=20, t=50, b=20), font=FONT,
                  plot_bgcolor="#ffffff", paper_bgcolor="#ffffff",
                  legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return unvalidated_figure(traces, layout)


def timing_figure(rows: Sequence[dict], dtype: str) -> go.Figure:
    """Apply time and speedup vs dense against batch, one line per operator (log-log). A
    speedup is drawn noisy when its own time or the dense time at that batch is."""
    pts = [r for r in rows if r.get("dtype") == dtype and r.get("median_s") is not None]
    if not pts:
        return empty_figure(f"no measured {dtype} rows yet: run the sweep or pick a reference", 420)
    fig = make_subplots(rows=1, cols=2, subplot_titles=("apply time per call", "speedup vs dense (same dtype)"),
                        horizontal_spacing=0.1)
    names = []
    for r in pts:
        if r["name"] not in names:
            names.append(r["name"])
    dense = [r for r in pts if r["name"] == "dense"]
    for name in names:
        sel = sorted((r for r in pts if r["name"] == name), key=lambda r: r["batch"])
        fam = sel[0]["family"]
        label = FAMILY_LABELS[fam] + (f" {sel[0]['config']}" if fam in ("lowrank", "monarch") else "")
        if name.startswith("sparse@"):
            label = f"Sparse, params of {FAMILY_LABELS[name.split('@')[1]].lower()}"
        style = dict(color=COLORS[fam], dash="dot" if name == "sparse@monarch" else "solid")
        add_points(fig, [r["batch"] for r in sel], [1e3 * r["median_s"] for r in sel], name=label,
                   legendgroup=name, noisy=[r.get("noisy") for r in sel], **style,
                   hovertemplate=label + "<br>batch %{x}<br>%{y:.4g} ms<extra></extra>")
        sp = [r for r in sel if r.get("speedup_vs_dense") is not None]
        add_points(fig, [r["batch"] for r in sp], [r["speedup_vs_dense"] for r in sp], name=label,
                   legendgroup=name, noisy=ratio_noisy(sp, dense, on="batch"), showlegend=False, **style,
                   xaxis="x2", yaxis="y2", hovertemplate=label + "<br>batch %{x}<br>%{y:.3g}x<extra></extra>")
    fig.add_hline(y=1, line=dict(color="#5b6475", dash="dash"), row=1, col=2)
    fig.update_xaxes(type="log", dtick=1, title="batch (vectors per call, log scale)", gridcolor="#eef0f4")
    fig.update_yaxes(type="log", dtick=1, title="median time (ms, log scale)", gridcolor="#eef0f4", row=1, col=1)
    fig.update_yaxes(type="log", dtick=1, title="speedup (dense time / time, log scale)", gridcolor="#eef0f4",
                     row=1, col=2)
    fig = _base(fig, 460)
    fig.update_layout(legend=dict(orientation="h", yanchor="top", y=-0.18, x=0), margin=dict(b=120))
    return fig


@pure_cache
def heatmap_grid_json(panels: tuple[tuple[str, np.ndarray | None], ...], cell: int = 1) -> dict:
    """heatmap_grid(panels, cell=cell) as the JSON-ready dict dcc.Graph takes (arrays
    base64-encoded), built once per distinct panels and kept in the lab's bounded cache."""
    return heatmap_grid(list(panels), cell=cell).to_plotly_json()


def pareto_figure_json(rows: tuple[dict, ...], budget: int, n: int) -> dict:
    """pareto_figure(rows, budget, n) as a JSON-ready dict: the figure without the budget
    line built once per (rows, n) and cached, the budget's line and label added to it (a
    budget change redraws no trace)."""
    fig = _pareto_without_budget_json(rows, n)
    if budget:
        line = _budget_line(go.Figure().update_xaxes(type="log"), budget).to_plotly_json()["layout"]
        for key in ("shapes", "annotations"):
            fig["layout"][key] = [*fig["layout"].get(key, ()), *line[key]]
    return fig


@pure_cache
def _pareto_without_budget_json(rows: tuple[dict, ...], n: int) -> dict:
    return pareto_figure(list(rows), None, n).to_plotly_json()
