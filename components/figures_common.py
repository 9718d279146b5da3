"""Figure pieces every page shares: one template, one empty figure, reference lines, noisy points.

    fig = new_figure(height=420)                                    # the lab's template
    fig.update_yaxes(type="log")
    reference_line(fig, y=1.0, text="break-even (speedup 1)")      # label ON the line, log or not
    add_points(fig, x, y, noisy=frame["noisy"], name="torch-csr", color="#1f77b4")
    empty_figure("No measured rows yet: run a sweep.")

Plotly places an annotation on a log axis at 10**y (its y is in log10 units), so
``fig.add_hline(y=1, annotation_text=...)`` labels the line at 10. ``reference_line``
draws the line as a shape and its label as an annotation whose coordinate is log10 of
the value on a log axis; set the axis type BEFORE calling it (or pass ``log=``).
Noisy points (engine.bench.measurement: IQR/median > NOISE_THRESHOLD) are drawn
hollow and grey, with one legend entry NOISY_LABEL per figure.
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio

from engine.bench.measurement import NOISY_LABEL, noisy_flag

FONT = dict(family="Inter, Segoe UI, system-ui, sans-serif", size=13, color="#1d2330")
MUTED = "#5b6475"
NOISY_COLOR = "#a0a7b4"

_base = pio.templates["plotly_white"]
TEMPLATE = go.layout.Template(_base)
TEMPLATE.layout.update(font=FONT, margin=dict(l=60, r=20, t=50, b=55),
                       legend=dict(font=dict(size=11)), hoverlabel=dict(font=dict(size=12)),
                       title=dict(font=dict(size=15), x=0, xanchor="left"))
# The lab's template is plotly's default template: a figure takes it by reference when it
# is made (about 1 ms), where passing template=TEMPLATE to a figure validates and copies
# it each time (10-15 ms a figure, most of a figure-heavy callback's time).
TEMPLATE_NAME = "sparsity_lab"
pio.templates[TEMPLATE_NAME] = TEMPLATE
pio.templates.default = TEMPLATE_NAME


def new_figure(height: int = 400, **layout) -> go.Figure:
    """An empty go.Figure in the lab's template (plotly's default, set above) at ``height`` px."""
    fig = go.Figure()
    fig.update_layout(height=height, **layout)
    return fig


def empty_figure(message: str, height: int = 360) -> go.Figure:
    """A figure that shows only ``message`` (no axes): what to do to see data."""
    fig = new_figure(height)
    fig.add_annotation(text=message, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper",
                       font=dict(size=14, color=MUTED))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _axis_name(letter: str, ref: str | None) -> str:
    """"y" / "y2" (a trace/annotation ref) -> "yaxis" / "yaxis2" (a layout key)."""
    ref = ref or letter
    return f"{letter}axis{ref[1:]}"


def _is_log(fig: go.Figure, letter: str, ref: str | None) -> bool:
    axis = fig.layout[_axis_name(letter, ref)]
    return axis is not None and axis.type == "log"


def axis_coordinate(value: float, log: bool) -> float:
    """Where plotly wants an annotation for ``value`` on an axis: log10(value) on a log axis."""
    if not log:
        return float(value)
    if not value > 0:
        raise ValueError(f"reference line: expected a value > 0 on a log axis, got {value!r}")
    return math.log10(value)


_ANCHORS = {"top": ("bottom", 0), "bottom": ("top", 0)}


def reference_line(fig: go.Figure, text: str, *, y: float | None = None, x: float | None = None,
                   color: str = MUTED, dash: str = "dash", width: float = 1, log: bool | None = None,
                   side: str = "top", along: float = 0.99, xref: str = "x", yref: str = "y",
                   hovertext: str | None = None) -> go.Figure:
    """A horizontal (``y=``) or vertical (``x=``) line with ``text`` sitting on it.

    side: "top" (label just above a horizontal line / right of a vertical one) or "bottom";
    along: where along the line, as a fraction of the plot (0 left/bottom .. 1 right/top);
    above 1 a horizontal line's label sits in the right margin, clear of the data (keep
    the label short and the margin wide enough: ``margin.r``).
    hovertext: shown on hover over the label (the longer story of a short label).
    log: whether the value's axis is log; None reads it from the figure's layout.
    xref / yref: the axes of a subplot ("x2", "y3", ...).
    """
    if (x is None) == (y is None):
        raise ValueError(f"reference line: expected exactly one of x= or y=, got x={x!r}, y={y!r}")
    if side not in _ANCHORS:
        raise ValueError(f"side: expected one of top, bottom, got {side!r}")
    line = dict(color=color, dash=dash, width=width)
    paper_x, paper_y = f"{xref} domain", f"{yref} domain"
    if y is not None:
        log = _is_log(fig, "y", yref) if log is None else log
        fig.add_shape(type="line", xref=paper_x, x0=0, x1=1, yref=yref, y0=y, y1=y, line=line)
        outside = along > 1
        fig.add_annotation(text=text, xref=paper_x, x=1 if outside else along,
                           xanchor="right" if 0.5 < along <= 1 else "left", xshift=4 if outside else None,
                           yref=yref, y=axis_coordinate(y, log),
                           yanchor="middle" if outside else _ANCHORS[side][0], align="left" if outside else None,
                           showarrow=False, font=dict(size=11, color=color), bgcolor="rgba(255,255,255,0.7)",
                           hovertext=hovertext)
    else:
        log = _is_log(fig, "x", xref) if log is None else log
        fig.add_shape(type="line", yref=paper_y, y0=0, y1=1, xref=xref, x0=x, x1=x, line=line)
        fig.add_annotation(text=text, yref=paper_y, y=along, yanchor="top" if along > 0.5 else "bottom",
                           xref=xref, x=axis_coordinate(x, log),
                           xanchor="left" if side == "top" else "right", textangle=-90,
                           showarrow=False, font=dict(size=11, color=color), bgcolor="rgba(255,255,255,0.7)",
                           hovertext=hovertext)
    return fig


def _tick_text(value: float) -> str:
    """A tick label that reads as the whole number it is: 0.002, 0.5, 20, 5000, 20k."""
    if value >= 1e4:
        return f"{value / 1e3:g}k"
    return np.format_float_positional(value, trim="-") if value < 1 else f"{value:g}"


def log_ticks(values, *, steps_within: float = 2.5) -> dict:
    """tickvals / ticktext for a log axis over ``values`` (non-positive and NaN skipped),
    each tick labelled with its full number: 1-2-5 per decade when the values span at most
    ``steps_within`` decades, else one tick per decade (1, 10, 100). Plotly's own log
    ticks label the steps within a decade with a bare "2" and "5", which read as 2 and 5.

        fig.update_yaxes(type="log", **log_ticks(frame["time_ms"]))
    """
    v = np.asarray([x for x in np.asarray(values, dtype=float).ravel() if np.isfinite(x) and x > 0])
    if not v.size:
        return {}
    lo, hi = math.floor(math.log10(v.min())), math.ceil(math.log10(v.max()))
    mantissas = (1, 2, 5) if math.log10(v.max() / v.min()) <= steps_within else (1,)
    ticks = [m * 10.0 ** e for e in range(lo, hi + 1) for m in mantissas]
    step = 2.5 if len(mantissas) > 1 else 10.0  # the widest gap between two ticks
    ticks = [float(f"{t:.6g}") for t in ticks if v.min() / step <= t <= v.max() * step]
    return dict(tickmode="array", tickvals=ticks, ticktext=[_tick_text(t) for t in ticks])


def label_log_axis(fig: go.Figure, letter: str = "y", also: Sequence[float] = ()) -> go.Figure:
    """Give ``fig``'s log ``letter`` axis the ``log_ticks`` of what its traces draw there
    (and of ``also``: a reference line's value, say), so every tick reads as its number.
    Call it once the traces are in: ``return label_log_axis(fig, also=(1.0,))``."""
    values = list(also)
    for trace in fig.data:
        for v in getattr(trace, letter, None) if getattr(trace, letter, None) is not None else ():
            if isinstance(v, (int, float, np.number)) and not isinstance(v, bool):
                values.append(float(v))
    ticks = log_ticks(values)
    if ticks:
        (fig.update_yaxes if letter == "y" else fig.update_xaxes)(**ticks)
    return fig


def legend_below(fig: go.Figure, plot_height: int, *, top: int = 50, axis_px: int = 62,
                 row_px: int = 20, left: int = 60, right: int = 20) -> go.Figure:
    """One legend entry a row below the plot, under the x-axis ticks and title
    (``axis_px`` of them), the figure made tall enough that the plot keeps
    ``plot_height`` px and no entry is cut: the bottom margin grows with the entries (an
    entry of two lines, "<br>", counts twice). Keep each entry narrower than the figure."""
    rows = sum(1 + t.name.count("<br>") for t in fig.data if t.showlegend is not False and t.name)
    legend_px = rows * row_px + 8
    fig.update_layout(height=top + plot_height + axis_px + legend_px,
                      margin=dict(l=left, r=right, t=top, b=axis_px + legend_px),
                      legend=dict(orientation="v", x=0, xanchor="left", y=-axis_px / plot_height,
                                  yanchor="top", yref="paper", tracegroupgap=0, font=dict(size=11)))
    return fig


def noisy_mask(noisy, n: int) -> np.ndarray:
    """``noisy`` (a column of bools, "True"/"False" strings, None) as n booleans
    (engine.bench.measurement.noisy_flag reads each)."""
    if noisy is None:
        return np.zeros(n, dtype=bool)
    values = list(noisy)
    if len(values) != n:
        raise ValueError(f"noisy: expected {n} flags, got {len(values)}")
    return np.array([noisy_flag(v) for v in values], dtype=bool)


def add_points(fig: go.Figure, x: Sequence, y: Sequence, *, name: str, color: str, noisy=None,
               mode: str = "lines+markers", symbol: str = "circle", size: int = 8, dash: str = "solid",
               legendgroup: str | None = None, **trace) -> go.Figure:
    """One series whose noisy points are hollow and grey; the first figure with any
    noisy point also gets a legend entry NOISY_LABEL ("noisy (IQR/median > 0.1)").

    Extra keyword arguments go to go.Scatter (hovertemplate, customdata, xaxis, ...).
    """
    flags = noisy_mask(noisy, len(x))
    fig.add_trace(go.Scatter(x=list(x), y=list(y), mode=mode, name=name, legendgroup=legendgroup or name,
                             line=dict(color=color, dash=dash),
                             marker=point_marker(flags, color, symbol, size), **trace))
    if flags.any():
        add_noisy_legend(fig)
    return fig


def add_noisy_legend(fig: go.Figure) -> go.Figure:
    """The legend entry for noisy points, once per figure (an invisible point)."""
    if any(getattr(t, "name", None) == NOISY_LABEL for t in fig.data):
        return fig
    fig.add_trace(go.Scatter(**{k: v for k, v in noisy_legend_trace().items() if k != "type"}))
    return fig


def point_marker(flags, color: str, symbol: str = "circle", size: int = 8) -> dict:
    """The marker of a series whose points ``flags`` (booleans, one per point) marks noisy:
    those hollow and grey, the others ``symbol`` in ``color``. For figures built as plain
    dicts (add_points uses it too)."""
    symbols = [f"{symbol}-open" if f and not symbol.endswith("-open") else symbol for f in flags]
    colors = [NOISY_COLOR if f else color for f in flags]
    return dict(symbol=symbols, color=colors, size=size, line=dict(color=colors, width=1.5))


def noisy_legend_trace(**extra) -> dict:
    """The NOISY_LABEL legend entry as a plain trace dict (an invisible point), for figures
    built as dicts; add_noisy_legend adds it to a go.Figure."""
    return dict(type="scatter", x=[None], y=[None], mode="markers", name=NOISY_LABEL, hoverinfo="skip",
                marker=dict(symbol="circle-open", color=NOISY_COLOR, size=9,
                            line=dict(color=NOISY_COLOR, width=1.5)), **extra)


def subplot_grid(rows: int, cols: int, titles: Sequence[str], **spacing) -> dict:
    """The layout dict of ``make_subplots(rows, cols, subplot_titles=titles, **spacing)``
    (axes with their domains, one title annotation per subplot), built once per grid:
    fill its axes and add traces as plain dicts, then ``unvalidated_figure``. Subplot k
    (0-based, row by row) draws on axes "x{k+1}" / "y{k+1}" ("x" / "y" for k = 0)."""
    import json

    layout = json.loads(_grid_json(rows, cols, len(titles), json.dumps(spacing, sort_keys=True)))  # a fresh copy
    for note, text in zip(layout.get("annotations", []), titles):
        note["text"] = text
    return layout


@functools.lru_cache(maxsize=32)
def _grid_json(rows: int, cols: int, n_titles: int, spacing: str) -> str:
    import json

    from plotly.subplots import make_subplots

    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[" "] * n_titles, **json.loads(spacing))
    layout = fig.to_plotly_json()["layout"]
    layout.pop("template", None)  # the figure takes the lab's template by reference
    return json.dumps(layout)


def unvalidated_figure(data: list[dict], layout: dict) -> go.Figure:
    """go.Figure of plain trace and layout dicts without plotly's per-property validation
    (most of a large grid's build time); numpy arrays still go out binary-encoded. Only
    for dicts built by the lab's figure functions, whose output tests compare with the
    validated build."""
    return go.Figure({"data": data, "layout": layout}, _validate=False)


@functools.lru_cache(maxsize=32)
def colorscale(name: str) -> tuple:
    """The named plotly colour scale ("RdBu_r", "Blues") as the ((stop, colour), ...) pairs
    a validated figure sends: for traces built as plain dicts."""
    return go.Heatmap(colorscale=name).colorscale
