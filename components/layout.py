"""Page furniture shared by every page: headers, cards, messages, controls."""
from __future__ import annotations

from typing import Any

from dash import dcc, html


def page_header(title: str, lead: str, seed: str | None = None) -> html.Div:
    """Title, one-paragraph lead, and (optionally) which source document it follows."""
    children: list[Any] = [html.H1(title), html.P(lead, className="lead")]
    if seed:
        children.append(html.P(["Source: ", html.Em(seed)], className="seed-note"))
    return html.Div(children, className="page-header")


def section(title: str, *children: Any, note: str | None = None, id: str | None = None) -> html.Section:
    body: list[Any] = [html.H2(title)]
    if note:
        body.append(html.P(note, className="section-note"))
    body.extend(children)
    kwargs = {"id": id} if id else {}
    return html.Section(body, className="section", **kwargs)


def card(title: str, body: Any, href: str | None = None, footer: Any = None) -> html.Div:
    head = dcc.Link(title, href=href) if href else title
    parts = [html.H3(head), html.Div(body, className="card-body")]
    if footer is not None:
        parts.append(html.Div(footer, className="card-footer"))
    return html.Div(parts, className="card")


def message(text: Any, kind: str = "info", id: str | None = None) -> html.Div:
    """A visible message box; kind is info, ok, warn or error."""
    kwargs = {"id": id} if id else {}
    return html.Div(text, className=f"msg msg-{kind}", role="status", **kwargs)


def error_message(exc: BaseException) -> html.Div:
    """A user-facing message for a rejected input (no traceback)."""
    return message(f"Cannot compute this: {exc}", "error")


def labelled(label: str, control: Any, help: str | None = None) -> html.Div:
    """A control with its label above (and an optional help line below)."""
    parts = [html.Label(label, className="control-label"), control]
    if help:
        parts.append(html.Div(help, className="control-help"))
    return html.Div(parts, className="control")


def controls_row(*controls: Any) -> html.Div:
    return html.Div(list(controls), className="controls-row")


def stat(label: str, value: Any, id: str | None = None, noisy: bool = False) -> html.Div:
    """A big number with a small label (``id`` goes on the value); a ``noisy`` one (a timing
    with IQR/median over the threshold, or a number resting on one) small and grey, its
    label saying "noisy: not a finding", never a headline."""
    kwargs = {"id": id} if id else {}
    return html.Div([html.Div(value, className="stat-value stat-noisy" if noisy else "stat-value", **kwargs),
                     html.Div(f"{label} (noisy: not a finding)" if noisy else label, className="stat-label")],
                    className="stat")


def still_graph(id: str) -> dcc.Graph:
    """A figure without plotly's mode bar (nothing on it to zoom or save)."""
    return dcc.Graph(id=id, config={"displayModeBar": False})


def graph_pair(left: str, right: str) -> html.Div:
    """Two figures side by side (the "two-col" grid; stacked when the window is narrow),
    without plotly's logo."""
    return html.Div([dcc.Graph(id=left, config={"displaylogo": False}),
                     dcc.Graph(id=right, config={"displaylogo": False})], className="two-col")


def page_order(page: dict) -> tuple:
    """Sort key for dash.page_registry entries: ``order`` (unset last), then path."""
    order = page.get("order")
    return (99 if order is None else order, page["path"])
