"""Figures for /your-matrix: spy plot, row lengths, bandwidth profile, predicted vs measured.

They only draw what the engine computed (engine.sparse.user_matrix,
engine.bench.roofline, engine.bench.matrix_sweep). The spy plot is a heatmap of at
most 512 x 512 cells whose colour is a log-density level stored as one byte per cell
(plotly sends numpy uint8 arrays as base64), so the figure stays a few hundred kB
whatever the matrix size.
"""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go

from components.figures_common import add_points, empty_figure, label_log_axis, new_figure

LEVELS = 255


def _layout(fig: go.Figure, title: str, height: int = 380) -> go.Figure:
    """The lab's template (components.figures_common) with a title and height."""
    fig.update_layout(template=new_figure().layout.template, title={"text": title},
                      height=height, margin={"l": 70, "r": 20, "t": 50, "b": 60})
    return fig


def density_levels(density: np.ndarray) -> tuple[np.ndarray, float]:
    """uint8 levels: 0 = empty cell, 1..255 = log10(density) from the smallest non-empty
    cell's density (returned) up to 1 (a full cell)."""
    nz = density[density > 0]
    lo = float(np.log10(nz.min())) if nz.size else -1.0
    lo = min(lo, -1e-3)
    out = np.zeros(density.shape, dtype=np.uint8)
    mask = density > 0
    out[mask] = np.clip(1 + np.round((LEVELS - 1) * (np.log10(density[mask]) - lo) / (0 - lo)),
                        1, LEVELS).astype(np.uint8)
    return out, lo


def spy_figure(spy: dict | None, title: str = "Where the non-zeros are") -> go.Figure:
    if not spy:
        return empty_figure("Load a matrix to see its non-zeros")
    levels, lo = density_levels(np.asarray(spy["density"]))
    rows, cols = np.asarray(spy["row_edges"]), np.asarray(spy["col_edges"])
    ticks = [t for t in range(int(math.floor(lo)), 1) if t >= lo - 1e-9] or [0]
    tickvals = [1 + (LEVELS - 1) * (t - lo) / (0 - lo) for t in ticks]
    fig = go.Figure(go.Heatmap(
        z=levels, x=cols[:-1].astype(np.int32), y=rows[:-1].astype(np.int32),
        colorscale=[[0, "#ffffff"], [1 / LEVELS, "#d6e4f5"], [0.5, "#3b78c2"], [1, "#08214a"]],
        zmin=0, zmax=LEVELS,
        colorbar={"title": {"text": "density<br>per cell"}, "tickvals": tickvals,
                  "ticktext": [f"1e{t}" if t else "1" for t in ticks]},
        hovertemplate="rows from %{y}, columns from %{x}<br>density level %{z} of 255<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title_text="row i", scaleanchor="x", constrain="domain")
    fig.update_xaxes(title_text="column j", constrain="domain")
    m, n = int(rows[-1]), int(cols[-1])
    gr, gc = levels.shape
    cell = "one entry per cell" if (gr, gc) == (m, n) else f"cells of about {m / gr:.3g} x {n / gc:.3g} entries"
    return _layout(fig, f"{title} ({gr} x {gc} {cell})", height=520)


def row_length_figure(hist: dict | None) -> go.Figure:
    if not hist:
        return empty_figure("Load a matrix to see its row lengths")
    edges, counts = np.asarray(hist["edges"]), np.asarray(hist["counts"])
    width = int(edges[1] - edges[0]) if len(edges) > 1 else 1
    labels = [f"{a}" if width == 1 else f"{a}-{a + width - 1}" for a in edges[:-1]]
    fig = go.Figure(go.Bar(x=edges[:-1] + width / 2, y=counts, width=width * 0.9,
                           marker_color="#3b78c2", customdata=labels,
                           hovertemplate="%{customdata} non-zeros: %{y} rows<extra></extra>"))
    fig.update_xaxes(title_text="non-zeros in the row (count)")
    fig.update_yaxes(title_text="rows (count)")
    return _layout(fig, "Row lengths")


def bandwidth_figure(profile: dict | None) -> go.Figure:
    if not profile:
        return empty_figure("Load a matrix to see its bandwidth profile")
    x = np.asarray(profile["row_start"])
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=np.asarray(profile["upper"]), mode="lines", name="right of diagonal",
                             line={"color": "#1f77b4", "shape": "hv"}))
    fig.add_trace(go.Scatter(x=x, y=-np.asarray(profile["lower"]), mode="lines", name="left of diagonal",
                             line={"color": "#ff7f0e", "shape": "hv"}))
    if "upper_rcm" in profile:
        fig.add_trace(go.Scatter(x=x, y=np.asarray(profile["upper_rcm"]), mode="lines",
                                 name="after RCM", line={"color": "#2ca02c", "dash": "dot", "shape": "hv"}))
        fig.add_trace(go.Scatter(x=x, y=-np.asarray(profile["lower_rcm"]), mode="lines",
                                 name="after RCM (left)", showlegend=False,
                                 line={"color": "#2ca02c", "dash": "dot", "shape": "hv"}))
    fig.update_xaxes(title_text="row i (groups of rows)")
    fig.update_yaxes(title_text="farthest non-zero: column - row (entries)")
    return _layout(fig, "Bandwidth profile")


def predicted_measured_figure(predictions: list[dict] | None, rows: list[dict] | None,
                              op: str) -> go.Figure:
    """Per backend configuration: the roofline prediction and the measured median (IQR bars)."""
    preds = [p for p in (predictions or []) if p.get("op") == op and not p.get("skipped")]
    meas = [r for r in (rows or []) if r.get("op") == op and r.get("status") in ("ok", "reused")]
    if not preds and not meas:
        return empty_figure("Calibrate, then run the measurement to compare")
    order = [p["candidate"] for p in preds] + [r["candidate"] for r in meas
                                                if r["candidate"] not in {p["candidate"] for p in preds}]
    fig = go.Figure()
    if preds:
        fig.add_trace(go.Scatter(
            x=[p["candidate"] for p in preds], y=[1e6 * p["predicted_s"] for p in preds],
            mode="markers", name="predicted (roofline)",
            marker={"symbol": "diamond-open", "size": 11, "color": "#333", "line": {"width": 2}},
            customdata=[p["bound"] for p in preds],
            hovertemplate="%{x}<br>predicted %{y:.3g} us (%{customdata}-bound)<extra></extra>"))
    if meas:
        add_points(fig, [r["candidate"] for r in meas], [1e6 * r["median_s"] for r in meas],
                   name="measured (median, IQR bar)", color="#1f77b4", mode="markers", size=10,
                   noisy=[r.get("noisy") for r in meas],
                   error_y={"type": "data", "array": [1e6 * (r.get("iqr_s") or 0) / 2 for r in meas],
                            "visible": True, "thickness": 1},
                   customdata=[r.get("efficiency") for r in meas],
                   hovertemplate="%{x}<br>measured %{y:.3g} us<br>efficiency %{customdata:.2f}"
                                 "<extra></extra>")
    fig.update_xaxes(categoryorder="array", categoryarray=order, tickangle=-35,
                     title_text="backend (block size, RCM = after reverse Cuthill-McKee)")
    fig.update_yaxes(type="log", title_text="time per product (us, log)")
    name = {"spmv": "SpMV (A x)", "spmm": "SpMM (A B)"}.get(op, op)
    return _layout(label_log_axis(fig), f"{name}: predicted vs measured", height=460)
