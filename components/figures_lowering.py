"""Figures for the /isomorphism page: spy plots, receptive fields, outputs, timings."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from components.figures_common import add_points, empty_figure, label_log_axis, new_figure, reference_line

MARGIN = dict(l=60, r=20, t=40, b=50)


VALUE_CELLS_MAX = 256 * 256    # one float32 per cell up to here; beyond it one byte per cell (response < 1 MB)
DENSITY_LEVELS = 100           # stored fraction in percent (one byte; not 255, whose base64 "////" JSON escapes 6x)


def spy_figure(grid: dict, shape: tuple[int, int], title: str, row_label: str = "output row",
               col_label: str = "input column", height: int = 440) -> go.Figure:
    """Heatmap of a sparse matrix aggregated by ``engine.layers.lowering.spy_grid``.

    A small matrix (at most 256 x 256 entries) is drawn one cell per entry, coloured by its
    value (blank where nothing is stored). A larger one is drawn from at most 512 x 512
    cells, each coloured by the stored fraction of the block of rows and columns it covers
    (block density, in percent: one byte per cell), and the title says so. Arrays go to
    plotly as numpy (binary encoding), so no response grows past a megabyte.
    """
    z, count = grid["z"], grid["count"]
    re, ce = grid["row_edges"], grid["col_edges"]
    if not grid["aggregated"] and z.size <= VALUE_CELLS_MAX:
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (z / np.where(count > 0, count, 1)).astype(np.float32)
        mean[count == 0] = np.nan
        finite = np.abs(mean[np.isfinite(mean)])
        bound = float(finite.max()) if finite.size else 1.0
        trace = go.Heatmap(z=mean, x=ce[:-1], y=re[:-1], colorscale="RdBu", zmid=0, zmin=-bound, zmax=bound,
                           hovertemplate=f"{row_label} %{{y}}<br>{col_label} %{{x}}<br>value %{{z:.4g}}"
                                         "<extra></extra>", colorbar=dict(title="value", thickness=12))
        note = ""
    else:
        area = np.outer(np.diff(re), np.diff(ce)).astype(np.float64)
        dens = count / np.maximum(area, 1)
        level = np.where(count > 0, np.maximum(np.rint(dens * DENSITY_LEVELS), 1), 0).astype(np.uint8)
        trace = go.Heatmap(z=level, x=ce[:-1], y=re[:-1], zmin=0, zmax=DENSITY_LEVELS,
                           colorscale=[[0, "#ffffff"], [0.01, "#dbe7f6"], [1, "#08306b"]],
                           colorbar=dict(title="stored (%)", thickness=12),
                           hovertemplate=f"{row_label}s from %{{y}}<br>{col_label}s from %{{x}}<br>"
                                         "stored %{z} %<extra></extra>")
        note = (" (downsampled to %dx%d cells by block density)" % z.shape if grid["aggregated"]
                else " (cells: stored fraction)")
    fig = go.Figure(trace)
    fig.update_yaxes(autorange="reversed", title=f"{row_label} (of {shape[0]:,})")
    fig.update_xaxes(title=f"{col_label} (of {shape[1]:,})", side="bottom")
    fig.update_layout(title=dict(text=title + note, font_size=14), height=height, margin=MARGIN,
                      plot_bgcolor="#ffffff")
    return fig


def matrix_spy(view: dict, name: str, row_label: str = "output row", col_label: str = "input column") -> go.Figure:
    """The spy plot of a view from engine.layers.explore, titled with its shape and nonzeros."""
    m = view["matrix"]
    title = f"{name} {m.shape[0]} x {m.shape[1]}, nnz {m.nnz:,}"
    return spy_figure(view["grid"], m.shape, title, row_label=row_label, col_label=col_label)


def pool_reuse_figure(view: dict, digit: int) -> go.Figure:
    """Max pooling of the next digit beside this digit's selection matrix applied to it."""
    side = outputs_figure(view["truth"][0], view["reused"][0], title_left=f"max pool of digit {view['other_digit']}",
                          title_right=f"digit {digit}'s selection matrix applied to it")
    side.update_layout(title=dict(text=f"Not linear: reusing the selection gives max |error| "
                                       f"{view['reuse_error']:.3f}", font_size=14), margin=dict(t=70))
    return side


def tanh_gap_figure(gap: dict) -> go.Figure:
    """Per step: tanh applied once after L vs the tanh RNN, and L alone vs the tanh RNN."""
    return lines_figure(gap["step"], {"tanh(L x) vs tanh RNN": gap["maxdiff_tanh_once"],
                                      "L x vs tanh RNN": gap["maxdiff_linear"]},
                        "time step t", "max |difference| over hidden units (state units)",
                        f"tanh applied once vs at every step: relative error {gap['rel_error_tanh_once']:.3f}")


def field_figure(image: np.ndarray, field: np.ndarray | None, title: str, height: int = 340) -> go.Figure:
    """The input image (grey) with the pixels one output row reads lit in red."""
    n_h, n_w = image.shape
    fig = go.Figure(go.Heatmap(z=image, colorscale="Greys", reversescale=False, showscale=False,
                               hovertemplate="input y %{y}, x %{x}<br>pixel %{z:.3f}<extra></extra>"))
    if field is not None and field.max() > 0:
        lit = np.where(field > 0, field, np.nan)
        fig.add_trace(go.Heatmap(z=lit, colorscale=[[0, "rgba(220,40,40,0.55)"], [1, "rgba(220,40,40,0.85)"]],
                                 showscale=False, name="receptive field",
                                 hovertemplate="read by the row: y %{y}, x %{x}<br>"
                                               "taps %{z}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="input y (pixel)", scaleanchor="x", constrain="domain")
    fig.update_xaxes(title="input x (pixel)", constrain="domain")
    fig.update_layout(title=dict(text=title, font_size=14), height=height, margin=MARGIN)
    return fig


def outputs_figure(native: np.ndarray, matrix: np.ndarray, title_left: str = "native torch layer",
                   title_right: str = "sparse matrix × flattened input", height: int = 340,
                   unit: str = "pixel", x_title: str | None = None, y_title: str | None = None) -> go.Figure:
    """Two (H, W) maps side by side, shared colour scale, and their max |difference| in the title."""
    lo, hi = float(min(native.min(), matrix.min())), float(max(native.max(), matrix.max()))
    gap = 0.12  # between the two panels (one layout built at once: make_subplots costs ~60 ms)
    domains = ([0.0, (1 - gap) / 2], [(1 + gap) / 2, 1.0])
    traces, layout = [], {"height": height, "margin": MARGIN, "annotations": []}
    for i, (arr, title) in enumerate(((native, title_left), (matrix, title_right)), start=1):
        suffix = "" if i == 1 else str(i)
        traces.append(go.Heatmap(z=arr, zmin=lo, zmax=hi, colorscale="Viridis", showscale=(i == 2),
                                 colorbar=dict(title="output", thickness=12), xaxis=f"x{suffix}",
                                 yaxis=f"y{suffix}",
                                 hovertemplate="y %{y}, x %{x}<br>%{z:.5g}<extra></extra>"))
        layout[f"xaxis{suffix}"] = dict(domain=domains[i - 1], anchor=f"y{suffix}",
                                        title=dict(text=x_title or f"output x ({unit})"))
        layout[f"yaxis{suffix}"] = dict(domain=[0.0, 1.0], anchor=f"x{suffix}", autorange="reversed",
                                        title=dict(text=y_title or f"output y ({unit})"))
        layout["annotations"].append(dict(text=title, x=sum(domains[i - 1]) / 2, y=1.0, xref="paper",
                                          yref="paper", xanchor="center", yanchor="bottom",
                                          showarrow=False, font=dict(size=16)))
    return go.Figure(data=traces, layout=layout)


def lines_figure(x: list, series: dict[str, list], x_title: str, y_title: str, title: str,
                 log_y: bool = False, height: int = 320) -> go.Figure:
    fig = go.Figure()
    for name, ys in series.items():
        fig.add_trace(go.Scatter(x=x, y=ys, mode="lines+markers", name=name))
    fig.update_layout(title=dict(text=title, font_size=14), height=height, margin=MARGIN,
                      legend=dict(orientation="h", y=-0.25))
    fig.update_xaxes(title=x_title)
    fig.update_yaxes(title=y_title, type="log" if log_y else "linear")
    return label_log_axis(fig) if log_y else fig


def support_figure(support: np.ndarray, title: str, height: int = 320) -> go.Figure:
    """(T_j, T_k) counts of tensor nonzeros for one output token: which token pairs can interact."""
    fig = go.Figure(go.Heatmap(z=support, colorscale="Blues", colorbar=dict(title="nonzeros"),
                               hovertemplate="token of j %{y}, token of k %{x}<br>"
                                             "nonzeros %{z}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="token of index j", dtick=1)
    fig.update_xaxes(title="token of index k", dtick=1)
    fig.update_layout(title=dict(text=title, font_size=14), height=height, margin=MARGIN)
    return fig


SWEEP_COLORS = ["#2f6fdb", "#e8590c", "#2b8a3e", "#9c36b5", "#c92a2a", "#0b7285", "#5c940d", "#d6336c"]


def timing_figure(frames: dict[str, pd.DataFrame], height: int = 560) -> go.Figure:
    """matrix time / native time against channels, one line per (source, image, batch),
    named "<source>: <image>, batch <b>" (the page's source labels name device and method).

    Rows whose timing stayed noisy (IQR/median > 0.1) are drawn hollow and grey, with a
    legend entry saying so; the reference (a label starting "reference") is dotted. The
    legend sits below the plot; the "equal time" label at the right end, under its line,
    where a matrix would be faster than the native conv at many channels (no point there)."""
    fig = new_figure(height)
    fig.update_xaxes(title="channels (C_in = C_out)", type="log", tickvals=[1, 2, 4, 8, 16, 32, 64, 128])
    fig.update_yaxes(title="time ratio matrix / native (×)", type="log")
    i = 0
    for label, frame in frames.items():
        if frame is None or frame.empty or "matrix_over_native" not in frame:
            continue
        ok = frame[frame["status"] == "ok"] if "status" in frame else frame
        for (image, batch), grp in ok.groupby(["image", "batch"], sort=True):
            grp = grp.sort_values("channels")
            add_points(fig, grp["channels"].to_numpy(), grp["matrix_over_native"].to_numpy(),
                       name=f"{label}: {image}, batch {batch}", color=SWEEP_COLORS[i % len(SWEEP_COLORS)],
                       noisy=grp["noisy"] if "noisy" in grp else None,
                       dash="dot" if label.startswith("reference") else "solid",
                       hovertemplate="%{x} channels: %{y:.3g}x<extra></extra>")
            i += 1
    if not fig.data:
        return empty_figure("no timing rows yet: run the sweep or load the reference CSV", height)
    reference_line(fig, "equal time (ratio 1)", y=1.0, along=0.99, side="bottom")
    fig.update_layout(title=dict(text="Sparse matrix time / native conv time (lower is better for the matrix)",
                                 font_size=14), legend=dict(font_size=11, orientation="h", x=0, xanchor="left",
                                                            y=-0.2, yanchor="top"),
                      margin=dict(l=60, r=20, t=50, b=170))
    return label_log_axis(fig, also=(1.0,))
