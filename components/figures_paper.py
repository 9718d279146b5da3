"""Figures for the /paper page: training curves of native and sparse-matrix models."""
from __future__ import annotations

import functools
import json

import pandas as pd
from plotly.subplots import make_subplots

from components.figures_common import empty_figure, noisy_legend_trace, point_marker

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


@functools.lru_cache(maxsize=8)
def _grid_layout(titles: tuple[str, ...]) -> str:
    """The subplot grid's layout for these titles (make_subplots is slow: built once per grid), as JSON."""
    n = len(titles) // 3
    fig = make_subplots(rows=n, cols=3, subplot_titles=list(titles), horizontal_spacing=0.08,
                        vertical_spacing=0.16 if n > 1 else 0.1)
    fig.update_layout(height=330 * n + 40, margin=dict(l=60, r=110, t=50, b=50),
                      legend=dict(title="model", x=1.01, y=1.0, yanchor="top"))
    fig.update_annotations(font_size=13)
    return json.dumps(fig.to_dict()["layout"])


def _noisy_seeds(summary: list[dict] | None) -> dict[tuple[str, str], tuple[int, int]]:
    """(task, variant) -> (seeds whose epoch times are noisy, seeds), from engine.layers.paper.summarise."""
    out = {}
    for rec in summary or []:
        for key, value in rec.items():
            if key.endswith("_noisy_seeds"):
                v = key.removesuffix("_noisy_seeds")
                out[(rec["task"], v)] = (int(value), int(rec.get(f"{v}_seeds", 0)))
    return out


def curves_figure(rows: list[dict], summary: list[dict] | None = None):
    """Per task: training / test loss, test metric and seconds per epoch, against epoch.

    With several seeds each curve is the mean over seeds, with ± one standard deviation bars.
    ``summary`` (engine.layers.paper.summarise(rows)) says whose epoch times are noisy: a
    model's time-per-epoch points are drawn hollow and grey (the lab's noisy style, one
    legend entry) when its epoch times were noisy in any seed.
    Returned as a plain figure dict (data, layout): it is redrawn on every streamed row, and
    plotly's object validation would cost more than the job's progress interval."""
    frame = pd.DataFrame(rows or [])
    if frame.empty:
        return empty_figure("No epochs yet: start a run; curves grow one epoch at a time.")
    tasks = list(dict.fromkeys(frame["task"]))
    titles = []
    for t in tasks:
        name = frame.loc[frame["task"] == t, "metric_name"].iloc[0]
        titles += [f"{t}: loss (solid train, faint test)", f"{t}: {name}", f"{t}: time per epoch"]
    layout = json.loads(_grid_layout(tuple(titles)))
    data, shown, noisy = [], set(), _noisy_seeds(summary)
    any_noisy = False
    for r, task in enumerate(tasks):
        sub = frame[frame["task"] == task]
        for variant, g in sub.groupby("variant", sort=False):
            g = _over_seeds(g)
            style = dict(color=COLORS.get(variant, "#555"), dash=DASHES.get(variant, "solid"))
            legend = variant not in shown
            shown.add(variant)
            many = bool(g["seeds"].max() > 1)
            for col, column, kw in ((1, "train_loss", dict(mode="lines+markers")),
                                    (1, "test_loss", dict(mode="lines", opacity=0.45)),
                                    (2, "metric", dict(mode="lines+markers")),
                                    (3, "epoch_s", dict(mode="lines+markers"))):
                axis = 3 * r + col
                unit = " s" if column == "epoch_s" else ""
                trace = dict(type="scatter", x=g["epoch"].to_numpy(), y=g[column].to_numpy(), line=style,
                             name=variant, legendgroup=variant, showlegend=legend and column == "train_loss",
                             xaxis=f"x{axis if axis > 1 else ''}", yaxis=f"y{axis if axis > 1 else ''}",
                             customdata=g["seeds"].to_numpy(),
                             hovertemplate=f"{variant} {column.replace('_', ' ')} %{{y:.4g}}{unit} (mean of "
                                           f"%{{customdata}} seeds) epoch %{{x}}<extra></extra>", **kw)
                if many:
                    trace["error_y"] = dict(type="data", array=g[f"{column}_sd"].to_numpy(), thickness=1)
                if column == "epoch_s":
                    bad, seeds = noisy.get((task, variant), (0, 0))
                    if bad:
                        any_noisy = True
                        trace["marker"] = point_marker([True] * len(g), style["color"])
                        trace["hovertemplate"] = (f"{variant} epoch s %{{y:.4g}} s (mean of %{{customdata}} seeds) "
                                                  f"epoch %{{x}}<br>noisy: epoch times noisy in {bad} of {seeds} "
                                                  f"seeds<extra></extra>")
                data.append(trace)
        name = sub["metric_name"].iloc[0]
        for col, title in ((1, LOSS_TITLES.get(task, "loss")), (2, METRIC_TITLES.get(name, name)),
                           (3, "seconds per epoch (s)")):
            axis = 3 * r + col
            suffix = axis if axis > 1 else ""
            layout[f"yaxis{suffix}"] = {**layout.get(f"yaxis{suffix}", {}), "title": {"text": title},
                                        **({"rangemode": "tozero"} if col == 3 else {})}
            layout[f"xaxis{suffix}"] = {**layout.get(f"xaxis{suffix}", {}), "title": {"text": "epoch"}}
    if any_noisy:
        data.append(noisy_legend_trace())
    layout["template"] = "plotly_white"
    return {"data": data, "layout": layout}
