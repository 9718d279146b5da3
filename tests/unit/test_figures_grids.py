"""The heatmap grids built as plain dicts on a cached subplot grid (fast) send the same
figure as the same grid built through make_subplots and validated updates (reference)."""
from __future__ import annotations

import json
import math

import numpy as np
import plotly.graph_objects as go
import plotly.io as pio
import pytest
from plotly.subplots import make_subplots

from components import figures_sparsity, figures_structured
from components.figures_common import subplot_grid
from engine.sparse.pruning import pattern_view
from engine.structured import pareto

# (target, n, budget exponent): all panels drawn, some over budget, a complex target
STRUCTURED_VIEWS = [("kernel", 64, 8), ("kernel", 64, 1), ("dft", 128, 2), ("kernel", 256, 3)]
# (size, sparsity, block, N:M): the matrix drawn entry by entry, and as block densities
PATTERN_VIEWS = [(64, 0.75, 16, "2:4"), (256, 0.9, 4, "1:4"), (512, 0.5, 64, "4:8")]


def sent(fig: go.Figure) -> dict:
    """What the browser receives (Dash serialises figures with plotly's JSON encoder)."""
    return json.loads(pio.to_json(fig))


def heatmap_grid_reference(panels, cols: int = 4, cell: int = 1) -> go.Figure:
    rows = math.ceil(len(panels) / cols)
    fig = make_subplots(rows=rows, cols=cols, subplot_titles=[t for t, _ in panels],
                        horizontal_spacing=0.03, vertical_spacing=0.09)
    lim = float(np.max(np.abs(panels[0][1]))) or 1.0
    for k, (_title, M) in enumerate(panels):
        r, c = divmod(k, cols)
        trace = (go.Heatmap(z=[[None]], showscale=False) if M is None else
                 go.Heatmap(z=np.asarray(M, dtype=np.float32), zmin=-lim, zmax=lim, colorscale="RdBu_r",
                            showscale=(k == 0), colorbar=dict(title="value" if cell == 1 else f"value: mean of<br>{cell} x {cell} entries",
                                          len=0.8, thickness=12),
                            hovertemplate="row %{y}, col %{x}: %{z:.3g}<extra></extra>"))
        fig.add_trace(trace, row=r + 1, col=c + 1)
        fig.update_yaxes(autorange="reversed", scaleanchor="x" if k == 0 else f"x{k + 1}", showticklabels=False,
                         row=r + 1, col=c + 1)
        fig.update_xaxes(showticklabels=False, row=r + 1, col=c + 1)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=270 * rows + 40, margin=dict(l=20, r=20, t=50, b=20), font=figures_structured.FONT,
                      plot_bgcolor="#ffffff", paper_bgcolor="#ffffff",
                      legend=dict(orientation="h", yanchor="bottom", y=1.02, x=0))
    return fig


def pattern_heatmaps_reference(view) -> go.Figure:
    labels, f = list(view.labels), view.factor
    fig = make_subplots(rows=2, cols=len(labels), subplot_titles=figures_sparsity.pattern_titles(view),
                        horizontal_spacing=0.05,
                        vertical_spacing=0.14, row_heights=[0.5, 0.5])
    wmax = view.w_max or 1.0
    for i, lab in enumerate(labels, start=1):
        over_bar = "|w| kept" if f == 1 else f"fraction kept per {f}x{f} cell"
        fig.add_trace(go.Heatmap(
            z=view.overview[i - 1], zmin=0, zmax=wmax if f == 1 else 1.0, colorscale="Blues",
            showscale=(i == len(labels)), colorbar=dict(title=dict(text=over_bar, side="right"),
                                                       thickness=12, len=0.42, y=0.79),
            hovertemplate=("row %{y}, col %{x}: |w| %{z:.3g}" if f == 1 else
                           f"rows %{{y}}x{f}.., cols %{{x}}x{f}..: %{{z:.0%}} kept") + f"<extra>{lab}</extra>"),
            row=1, col=i)
        fig.add_trace(go.Heatmap(
            z=view.zoom[i - 1], zmin=0, zmax=wmax, colorscale="Blues", showscale=(i == len(labels)),
            colorbar=dict(title=dict(text="|w| kept", side="right"), thickness=12, len=0.42, y=0.21),
            xgap=1, ygap=1, hovertemplate="row %{y}, col %{x}: |w| %{z:.3g}<extra>" + lab + "</extra>"),
            row=2, col=i)
        for r, unit in ((1, "" if f == 1 else f" / {f}"), (2, "")):
            k = (r - 1) * len(labels) + i
            fig.update_xaxes(title_text="column" + unit, showgrid=False, row=r, col=i)
            fig.update_yaxes(autorange="reversed", showgrid=False, scaleanchor="x" if k == 1 else f"x{k}",
                             title_text=("row" + unit) if i == 1 else None, row=r, col=i)
    fig.update_annotations(font_size=12)
    fig.update_layout(height=780, font=figures_sparsity.FONT, margin=dict(l=50, r=30, t=70, b=40),
                      plot_bgcolor="white")
    return fig


@pytest.mark.parametrize("target,n,k", STRUCTURED_VIEWS)
def test_structured_heatmaps_equal_the_validated_build(tmp_path, monkeypatch, target, n, k):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    view = pareto.budget_view(target, n, k)
    panels = list(view.panels)
    assert view.cell == max(1, n // pareto.HEATMAP_PIXELS)
    fast = sent(figures_structured.heatmap_grid(panels, cell=view.cell))
    assert fast == sent(heatmap_grid_reference(panels, cell=view.cell))
    bar = fast["data"][0]["colorbar"]["title"]["text"]  # the drawing says when cells are means
    assert bar == "value" if view.cell == 1 else f"mean of<br>{view.cell} x {view.cell} entries" in bar
    assert all(t["z"]["dtype"] == "f4" for t in fast["data"] if isinstance(t["z"], dict))  # binary


@pytest.mark.parametrize("size,sparsity,block,nm", PATTERN_VIEWS)
def test_pattern_heatmaps_equal_the_validated_build(tmp_path, monkeypatch, size, sparsity, block, nm):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    view = pattern_view(size, sparsity, block, nm)
    fast = sent(figures_sparsity.pattern_heatmaps(view))
    assert fast == sent(pattern_heatmaps_reference(view))
    assert all(t["z"]["dtype"] == "f4" for t in fast["data"])


def test_subplot_grid_is_a_fresh_copy_with_its_titles():
    a = subplot_grid(1, 2, ["left", "right"], horizontal_spacing=0.1)
    a["xaxis"]["title"] = "changed"
    b = subplot_grid(1, 2, ["one", "two"], horizontal_spacing=0.1)
    assert [n["text"] for n in b["annotations"]] == ["one", "two"] and "title" not in b["xaxis"]
    ref = sent(make_subplots(rows=1, cols=2, subplot_titles=["one", "two"], horizontal_spacing=0.1))["layout"]
    ref.pop("template")  # a figure takes the lab's template when it is made
    assert b == ref


@pytest.mark.parametrize("budget", [None, 16, 1024])
def test_pareto_json_with_its_budget_line_equals_the_whole_build(tmp_path, monkeypatch, budget):
    """The cached figure without the budget line plus the budget's line == pareto_figure
    built whole; both labels sit on their lines on the log axis (x = log10 of the value)."""
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    rows = pareto.analysis("kernel", 64).rows
    whole = figures_structured.pareto_figure(list(rows), budget, 64)
    assert sent(go.Figure(figures_structured.pareto_figure_json(rows, budget, 64))) == sent(whole)
    labels = {a.text: a.x for a in whole.layout.annotations}
    assert labels.pop("dense n²") == pytest.approx(math.log10(64 * 64))
    assert labels == ({} if budget is None else {f"budget {budget:,}": pytest.approx(math.log10(budget))})
