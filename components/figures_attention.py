"""Figures of the /attention page: mask heatmaps, attention weights, the timing sweep."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from components.figures_common import add_points, empty_figure, legend_below, log_ticks, reference_line
from engine.attention.views import BASELINE_IMPLS, BASELINES
from engine.bench.measurement import ratio_noisy

BLUE = "#2f6fdb"
FONT = dict(size=12)
HEIGHT = 420


def _base(fig: go.Figure, title: str, height: int = HEIGHT) -> go.Figure:
    fig.update_layout(title=dict(text=title, font=dict(size=14)), height=height, font=FONT,
                      margin=dict(l=60, r=20, t=50, b=50), plot_bgcolor="#fff")
    return fig


def _cell_axis(n: int, factor: int) -> np.ndarray:
    """Centre position (in tokens or blocks) of each pooled cell."""
    return np.arange(n) * factor + (factor - 1) / 2


def mask_heatmap(pooled, factor: int, title: str, unit: str = "token") -> go.Figure:
    """Token mask (or its pooled density when factor > 1); query 0 at the top."""
    z = np.asarray(pooled, dtype=np.float32)  # numpy: sent in plotly's binary encoding
    label = "kept" if factor == 1 else f"kept fraction ({factor}x{factor} {unit}s per cell)"
    fig = go.Figure(go.Heatmap(
        z=z, x=_cell_axis(z.shape[1], factor), y=_cell_axis(z.shape[0], factor), zmin=0, zmax=1,
        colorscale=[[0, "#ffffff"], [1, BLUE]], colorbar=dict(title=dict(text=label, side="right"),
                                                               thickness=12),
        hovertemplate=f"query %{{y}}<br>key %{{x}}<br>{'kept' if factor == 1 else 'fraction'} %{{z:.2f}}"
                      "<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title=f"query position ({unit})")
    fig.update_xaxes(title=f"key position ({unit})", side="bottom")
    return _base(fig, title)


BLOCK_COLORS = ["#ffffff", "#9ec5f7", "#1f4fa8"]


def block_heatmap(blocks, block: int, title: str, factor: int = 1) -> go.Figure:
    """Block mask: 0 empty (skipped), 1 partial (mask applied), 2 full (no mask needed).

    When ``factor`` > 1 the grid is pooled and shows the mean state per cell."""
    z = np.asarray(blocks, dtype=np.float32)
    scale = [[0, BLOCK_COLORS[0]], [0.5, BLOCK_COLORS[1]], [1, BLOCK_COLORS[2]]]
    if factor == 1:
        scale = [[0, BLOCK_COLORS[0]], [1 / 3, BLOCK_COLORS[0]], [1 / 3, BLOCK_COLORS[1]],
                 [2 / 3, BLOCK_COLORS[1]], [2 / 3, BLOCK_COLORS[2]], [1, BLOCK_COLORS[2]]]
    fig = go.Figure(go.Heatmap(
        z=z, x=_cell_axis(z.shape[1], factor), y=_cell_axis(z.shape[0], factor), zmin=0, zmax=2,
        colorscale=scale, xgap=1 if z.shape[1] <= 64 else 0, ygap=1 if z.shape[0] <= 64 else 0,
        colorbar=dict(tickvals=[1 / 3, 1, 5 / 3], ticktext=["empty", "partial", "full"],
                      thickness=12),
        hovertemplate="query block %{y}<br>key block %{x}<br>state %{z:.2f}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title=f"query block ({block} tokens)")
    fig.update_xaxes(title=f"key block ({block} tokens)")
    return _base(fig, title)


def _sqrt_scale(name: str = "Viridis", steps: int = 11) -> list:
    """A colour scale whose colours sit at squared positions, so small weights show
    while the hover still reads the true weight."""
    from plotly.colors import get_colorscale, sample_colorscale

    colors = sample_colorscale(get_colorscale(name), [i / (steps - 1) for i in range(steps)])
    return [[(i / (steps - 1)) ** 2, c] for i, c in enumerate(colors)]


def weights_heatmap(weights, factor: int, title: str) -> go.Figure:
    """Attention weights (rows sum to 1) on a square-root colour scale; when ``factor`` > 1
    each cell is the mean weight of factor x factor (query, key) pairs, and says so."""
    z = np.asarray(weights, dtype=np.float32)  # numpy: sent in plotly's binary encoding
    label = "weight" if factor == 1 else f"mean weight ({factor}x{factor} tokens per cell)"
    fig = go.Figure(go.Heatmap(
        z=z, x=_cell_axis(z.shape[1], factor), y=_cell_axis(z.shape[0], factor), zmin=0,
        zmax=float(z.max()) if z.size else 1.0, colorscale=_sqrt_scale(),
        colorbar=dict(title=dict(text=f"{label} (sqrt colour scale)", side="right"), thickness=12),
        hovertemplate=f"query %{{y}}<br>key %{{x}}<br>{label} %{{z:.3g}}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="query position (token)")
    fig.update_xaxes(title="key position (token)")
    return _base(fig, title)


def _ok(rows) -> pd.DataFrame:
    frame = pd.DataFrame(list(rows or []))
    if frame.empty or "status" not in frame:
        return pd.DataFrame()
    frame = frame[frame["status"] == "ok"].copy()
    for col in ("seq_len", "kernel_ms", "speedup_vs_causal", "theory_vs_causal", "mask_build_ms",
                "compile_s", "block_theory_vs_causal"):
        if col in frame:
            frame[col] = pd.to_numeric(frame[col], errors="coerce")
    return frame


IMPL_DASH = {"flex": "solid", "sdpa-masked": "dot"}


def _noisy_flags(part: pd.DataFrame, frame: pd.DataFrame) -> list[bool]:
    """A point is noisy when its own timing is, or a baseline's (SDPA causal or without
    mask) at its length is (engine.bench.measurement.ratio_noisy)."""
    base = frame[frame["impl"].isin(BASELINE_IMPLS)] if "impl" in frame else frame.iloc[:0]
    return ratio_noisy(part.to_dict("records"), base.to_dict("records"), on="seq_len")


def crossover_figure(rows, title: str | None = None, baseline: str = "causal") -> go.Figure:
    """Measured t(baseline) / t(impl) per mask and implementation against sequence
    length, beside the FLOPs theory by whole blocks; above 1 the masked kernel beats
    dense flash attention. baseline: "causal" (SDPA is_causal) or "dense" (SDPA without
    mask, the fair baseline of two-sided masks)."""
    speed_col, theory_col, base_name, base_text = BASELINES.get(baseline, BASELINES["causal"])
    frame = _ok(rows)
    fig = go.Figure()
    if frame.empty or speed_col not in frame:
        fig = empty_figure("no measured rows yet")
    else:
        frame[speed_col] = pd.to_numeric(frame[speed_col], errors="coerce")
        palette = ["#2f6fdb", "#d9480f", "#2b8a3e", "#862e9c", "#c92a2a", "#e67700", "#0b7285",
                   "#5f3dc4", "#495057", "#a61e4d"]
        masks = [m for m in dict.fromkeys(frame["mask"]) if m not in ("causal", "full")]
        for i, mask in enumerate(masks):
            color = palette[i % len(palette)]
            sub = frame[frame["mask"] == mask]
            for impl in ("flex", "sdpa-masked"):
                part = sub[sub["impl"] == impl].sort_values("seq_len")
                if part.empty:
                    continue
                add_points(fig, part["seq_len"], part[speed_col], name=f"{mask} · {impl}", color=color,
                           dash=IMPL_DASH.get(impl, "solid"), noisy=_noisy_flags(part, frame))
            if theory_col in sub:
                theory = sub.drop_duplicates("seq_len").sort_values("seq_len")
                fig.add_trace(go.Scatter(x=theory["seq_len"], y=pd.to_numeric(theory[theory_col], errors="coerce"),
                                         mode="lines", name=f"{mask} · theory (blocks)", opacity=0.5,
                                         line=dict(color=color, dash="dash", width=1)))
        fig.update_xaxes(type="log", dtick=math.log10(2), tickformat="d")
        shown = [frame[speed_col]] + ([pd.to_numeric(frame[theory_col], errors="coerce")]
                                      if theory_col in frame else [])
        fig.update_yaxes(type="log", **log_ticks(pd.concat(shown).tolist() + [1.0]))
        reference_line(fig, f"as fast as {base_text}", y=1.0, color="#868e96", dash="solid", along=0.01)
    fig.update_xaxes(title="sequence length S (tokens)")
    fig.update_yaxes(title=f"speedup vs {base_name} (x)")
    fig = _base(fig, title or f"Speedup over {base_text} attention ({base_name})", height=560)
    # one entry a row under the axis title: the legend never runs into it, nor is it cut
    return legend_below(fig, CROSSOVER_PLOT_HEIGHT) if not frame.empty and speed_col in frame else fig


CROSSOVER_PLOT_HEIGHT = 380  # px of the speedup plot; its legend goes below it
BREAKDOWN_LABEL_PX = 6.4  # about one character of a 12 px tick label, for the bottom margin


def time_breakdown_figure(rows, title: str | None = None) -> go.Figure:
    """Mask build, compile and kernel time of each measured row at the longest sequence
    length, side by side (never summed)."""
    frame = _ok(rows)
    fig = go.Figure()
    if frame.empty:
        return _base(empty_figure("no measured rows yet"), title or "Where the time goes", height=560)
    s = int(frame["seq_len"].max())
    sub = frame[frame["seq_len"] == s]
    # the tick says the mask's kind and the implementation; its parameters are in the hover
    ticks = [f"{str(m).split('(')[0]} · {i}" for m, i in zip(sub["mask"], sub["impl"])]
    full = [f"{m} · {i}" for m, i in zip(sub["mask"], sub["impl"])]
    values = []
    for name, col, scale, color in (("mask build", "mask_build_ms", 1.0, "#adb5bd"),
                                    ("compile", "compile_s", 1e3, "#e67700"),
                                    ("kernel (median)", "kernel_ms", 1.0, BLUE)):
        y = pd.to_numeric(sub[col], errors="coerce") * scale
        values += y.tolist()
        fig.add_trace(go.Bar(x=full, y=y, name=name, marker_color=color,
                             hovertemplate=f"%{{x}}<br>{name}: %{{y:.3g}} ms<extra></extra>"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(type="log", title="time (ms)", **log_ticks(values))
    # rotated ticks take about (longest label) x sin(45 deg); the axis title goes below them
    tick_px = int(max(map(len, ticks)) * BREAKDOWN_LABEL_PX * 0.71) + 16
    fig.update_xaxes(title=dict(text="mask · implementation", standoff=12), tickangle=-45,
                     tickvals=full, ticktext=ticks, automargin=False)
    fig = _base(fig, title or f"Where the time goes at S = {s} (ms, log scale)", height=560)
    fig.update_layout(legend=dict(orientation="h", x=0, y=1.01, yanchor="bottom"),
                      margin=dict(l=60, r=20, t=80, b=tick_px + 40))
    return fig
