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


def _over_seeds(g: pd.DataFrame) -> pd.DataFrame:
    """Per epoch: the mean over seeds of each curve, its standard deviation and the seed count."""
    cols = ["train_loss", "test_loss", "metric", "epoch_s"]
    agg = g.groupby("epoch", sort=True)[cols].agg(["mean", "std"])
    out = pd.DataFrame({"epoch": agg.index.to_numpy()})
    for c in cols:
        out[c] = agg[(c, "mean")].to_numpy()
        out[f"{c}_sd"] = agg[(c, "std")].fillna(0.0).to_numpy()
    out["seeds"] = g.groupby("epoch", sort=True).size().to_numpy()
    return out


def curves_figure(rows: list[dict]) -> go.Figure:
    """Per task: training / test loss, test metric and seconds per epoch, against epoch.

    With several seeds each curve is the mean over seeds, with ± one standard deviation bars."""
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
            g = _over_seeds(g)
            style = dict(color=COLORS.get(variant, "#555"), dash=DASHES.get(variant, "solid"))
            legend = variant not in shown
            shown.add(variant)
            for col, column, kw in ((1, "train_loss", dict(mode="lines+markers")),
                                    (1, "test_loss", dict(mode="lines", opacity=0.45)),
                                    (2, "metric", dict(mode="lines+markers")),
                                    (3, "epoch_s", dict(mode="lines+markers"))):
                unit = " s" if column == "epoch_s" else ""
                fig.add_trace(go.Scatter(
                    x=g["epoch"].to_numpy(), y=g[column].to_numpy(), line=style, name=variant, legendgroup=variant,
                    showlegend=legend and column == "train_loss",
                    error_y=dict(type="data", array=g[f"{column}_sd"].to_numpy(), visible=bool(g["seeds"].max() > 1),
                                 thickness=1),
                    hovertemplate=f"{variant} {column.replace('_', ' ')} %{{y:.4g}}{unit} (mean of %{{customdata}} "
                                  f"seeds) epoch %{{x}}<extra></extra>", customdata=g["seeds"].to_numpy(), **kw),
                    r, col)
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
