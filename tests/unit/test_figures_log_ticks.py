"""figures_common.log_ticks, legend_below and a reference_line labelled outside the plot."""
import plotly.graph_objects as go
import pytest

from components.figures_common import legend_below, log_ticks, reference_line


def test_log_ticks_label_every_tick_with_its_whole_number():
    ticks = log_ticks([0.06, 0.4, 3.0, 14.0])  # under 2.5 decades: 1-2-5 steps
    assert ticks["tickvals"][:5] == [0.05, 0.1, 0.2, 0.5, 1]
    assert ticks["ticktext"][:5] == ["0.05", "0.1", "0.2", "0.5", "1"]
    assert ticks["ticktext"][-2:] == ["10", "20"]  # one step past the data at most
    assert "2" in ticks["ticktext"] and ticks["ticktext"].count("2") == 1  # no bare "2" per decade
    wide = log_ticks([0.001, 5000.0])  # many decades: one tick each
    assert wide["ticktext"] == ["0.001", "0.01", "0.1", "1", "10", "100", "1000", "10k"]
    assert log_ticks([20_000, 50_000])["ticktext"] == ["10k", "20k", "50k", "100k"]


def test_log_ticks_skip_values_a_log_axis_cannot_show():
    assert log_ticks([0, -1, float("nan")]) == {}
    assert log_ticks([0, 2.0, float("nan"), 30.0])["tickvals"][0] == 1


def test_legend_below_grows_the_bottom_margin_with_its_entries():
    fig = go.Figure([go.Scatter(x=[1], y=[1], name=f"series {i}") for i in range(4)]
                    + [go.Scatter(x=[1], y=[1], name="two<br>lines"), go.Scatter(x=[1], y=[1], showlegend=False)])
    legend_below(fig, 300, top=40, axis_px=60, row_px=20)
    assert fig.layout.margin.b == 60 + 6 * 20 + 8  # 4 entries + one of two lines; the hidden one not
    assert fig.layout.height == 40 + 300 + fig.layout.margin.b
    assert fig.layout.legend.y == pytest.approx(-60 / 300) and fig.layout.legend.yanchor == "top"


def test_a_reference_label_past_the_right_edge_sits_in_the_margin():
    fig = go.Figure()
    fig.update_yaxes(type="log")
    reference_line(fig, "ideal: k = 2", y=2.0, along=1.01, hovertext="the long story")
    note = fig.layout.annotations[0]
    assert (note.x, note.xanchor, note.hovertext) == (1, "left", "the long story")
    assert note.y == pytest.approx(0.30103, abs=1e-5)  # log10(2) on the log axis
    reference_line(fig, "inside", y=2.0, along=0.99)
    assert (fig.layout.annotations[1].x, fig.layout.annotations[1].xanchor) == (0.99, "right")


def test_label_log_axis_reads_the_traces_and_the_extra_values():
    from components.figures_common import label_log_axis

    fig = go.Figure([go.Scatter(x=[1, 2, 3], y=[0.3, None, 4.0]), go.Scatter(x=[1], y=[float("nan")])])
    fig.update_yaxes(type="log")
    label_log_axis(fig, also=(0.12,))
    vals, text = list(fig.layout.yaxis.tickvals), list(fig.layout.yaxis.ticktext)
    assert min(vals) <= 0.12 and max(vals) >= 4.0 and 1.0 in vals
    assert "0.2" in text and "2" in text and "5" in text and not any(t == "" for t in text)
    assert fig.layout.xaxis.tickvals is None  # only the axis asked for
    empty = label_log_axis(go.Figure().update_yaxes(type="log"))
    assert empty.layout.yaxis.tickvals is None  # nothing drawn: plotly's own ticks
