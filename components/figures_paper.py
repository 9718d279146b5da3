"""Figures for the /paper page: training curves of native and sparse-matrix models."""
from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components.figures_common import empty_figure

COLORS = {"native": "#2f6fdb", "tied": "#e8590c", "free": "#2b8a3e"}
DASHES = {"native": "solid", "tied": "dash", "free": "dot"}
METRIC_TITLES = {"accuracy": "test accuracy (%)", "mse": "test MSE (standardised units²)",
                 "perplexity": "test perplexity (per character)"}
LOSS_TITLES = {"vision": "cross-entropy (nats)", "timeseries": "MSE (standardised units²)",
               "text": "cross-entropy (nats / char)"}


def curves_figure(rows: list[dict]) -> go.Figure:
    """Per task: training / test loss, test metric and seconds per epoch, against epoch."""
    frame = pd.DataFrame(rows or [])
    if frame.empty:
        return empty_figure("No epochs yet: start a run; curves grow one epoch at a time.")
    tasks = list(dict.fromkeys(frame["task"]))
    titles = []
    for t in tasks:
        name = frame.loc[frame["task"] == t, "metric_name"].iloc[0]
        titles += [f"{t}: loss (solid train, faint test)", f"{t}: {name}", f"{t}: time per epoch"]
    fig = make_subplots(rows=len(tasks), cols=3, subplot_titles=titles, horizontal_spacing=0.08,
                        vertical_spacing=0.16 if len(tasks) > 1 else 0.1)
    shown = set()
    for r, task in enumerate(tasks, start=1):
        sub = frame[frame["task"] == task]
        for variant, g in sub.groupby("variant", sort=False):
            g = g.sort_values("epoch")
            style = dict(color=COLORS.get(variant, "#555"), dash=DASHES.get(variant, "solid"))
            legend = variant not in shown
            shown.add(variant)
            fig.add_trace(go.Scatter(x=g["epoch"], y=g["train_loss"], mode="lines+markers", line=style,
                                     name=variant, legendgroup=variant, showlegend=legend,
                                     hovertemplate=f"{variant} train loss %{{y:.4g}} epoch %{{x}}<extra></extra>"),
                          r, 1)
            fig.add_trace(go.Scatter(x=g["epoch"], y=g["test_loss"], mode="lines", line=style, opacity=0.45,
                                     name=f"{variant} test", legendgroup=variant, showlegend=False,
                                     hovertemplate=f"{variant} test loss %{{y:.4g}} epoch %{{x}}<extra></extra>"),
                          r, 1)
            fig.add_trace(go.Scatter(x=g["epoch"], y=g["metric"], mode="lines+markers", line=style,
                                     name=variant, legendgroup=variant, showlegend=False,
                                     hovertemplate=f"{variant} %{{y:.4g}} epoch %{{x}}<extra></extra>"), r, 2)
            fig.add_trace(go.Scatter(x=g["epoch"], y=g["epoch_s"], mode="lines+markers", line=style,
                                     name=variant, legendgroup=variant, showlegend=False,
                                     hovertemplate=f"{variant} %{{y:.3g}} s epoch %{{x}}<extra></extra>"), r, 3)
        name = sub["metric_name"].iloc[0]
        fig.update_yaxes(title_text=LOSS_TITLES.get(task, "loss"), row=r, col=1)
        fig.update_yaxes(title_text=METRIC_TITLES.get(name, name), row=r, col=2)
        fig.update_yaxes(title_text="seconds per epoch (s)", rangemode="tozero", row=r, col=3)
        for c in (1, 2, 3):
            fig.update_xaxes(title_text="epoch", row=r, col=c)
    fig.update_layout(height=330 * len(tasks) + 40, margin=dict(l=60, r=110, t=50, b=50),
                      legend=dict(title="model", x=1.01, y=1.0, yanchor="top"))
    fig.update_annotations(font_size=13)
    return fig
