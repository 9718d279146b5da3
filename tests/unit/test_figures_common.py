"""Shared figure pieces: labels on their lines on log axes, noisy points drawn apart."""
from __future__ import annotations

import math

import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

from components.figures_common import (NOISY_COLOR, TEMPLATE, add_points, empty_figure, new_figure,
                                       reference_line)
from engine.bench.measurement import NOISY_LABEL


@pytest.mark.parametrize("value", [1.0, 2.0, 3350.0])
def test_reference_label_sits_on_the_line_on_a_log_axis(value):
    fig = new_figure()
    fig.add_trace(go.Scatter(x=[1, 100], y=[0.1, 5000]))
    fig.update_yaxes(type="log")
    reference_line(fig, "break-even", y=value)
    (shape,), (note,) = fig.layout.shapes, fig.layout.annotations
    assert shape.y0 == shape.y1 == value
    assert note.y == pytest.approx(math.log10(value))  # plotly reads annotation y in log10 units
    assert note.text == "break-even" and note.yref == "y"


def test_reference_label_on_a_linear_axis_and_a_log_x_subplot():
    fig = make_subplots(rows=1, cols=2)
    fig.update_xaxes(type="log", row=1, col=2)
    reference_line(fig, "1 x", y=1.0)
    reference_line(fig, "10 %", x=10.0, xref="x2", yref="y2")
    first, second = fig.layout.annotations
    assert first.y == 1.0 and second.x == pytest.approx(1.0) and second.xref == "x2"
    with pytest.raises(ValueError, match="expected a value > 0 on a log axis"):
        reference_line(fig, "zero", x=0.0, xref="x2", yref="y2")
    with pytest.raises(ValueError, match="expected exactly one of x= or y="):
        reference_line(fig, "both", x=1.0, y=1.0)


def test_noisy_points_are_hollow_and_grey_with_one_legend_entry():
    fig = new_figure()
    add_points(fig, [1, 2, 3], [1.0, 2.0, 3.0], name="a", color="#1f77b4", noisy=[False, True, "True"])
    add_points(fig, [1, 2], [1.0, 2.0], name="b", color="#ff7f0e", noisy=[True, False])
    a = fig.data[0]
    assert list(a.marker.symbol) == ["circle", "circle-open", "circle-open"]
    assert list(a.marker.color) == ["#1f77b4", NOISY_COLOR, NOISY_COLOR]
    names = [t.name for t in fig.data]
    assert names.count(NOISY_LABEL) == 1 and NOISY_LABEL == "noisy (IQR/median > 0.1)"


def test_steady_points_add_no_noisy_entry():
    fig = add_points(new_figure(), [1, 2], [1.0, 2.0], name="a", color="#000", noisy=[False, None])
    assert [t.name for t in fig.data] == ["a"] and list(fig.data[0].marker.symbol) == ["circle", "circle"]


def test_empty_figure_shows_the_message_in_the_template():
    fig = empty_figure("No measured rows yet.", height=300)
    assert fig.layout.annotations[0].text == "No measured rows yet." and fig.layout.height == 300
    assert fig.layout.xaxis.visible is False and fig.layout.template.layout.font.family == TEMPLATE.layout.font.family
