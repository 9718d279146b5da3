"""Tables that always come with a CSV download."""
from __future__ import annotations

from typing import Any, Iterable

import pandas as pd
from dash import Input, Output, State, callback, dash_table, dcc, html

from engine.runtime.store import to_csv_text


def _frame(rows: Any) -> pd.DataFrame:
    if isinstance(rows, pd.DataFrame):
        return rows
    return pd.DataFrame(list(rows or []))


def data_table(id: str, rows: Any = None, page_size: int = 12, **kwargs: Any) -> dash_table.DataTable:
    """A sortable DataTable; numbers shown with 4 significant digits."""
    frame = _frame(rows)
    return dash_table.DataTable(
        id=id,
        columns=table_columns(frame),
        data=frame.to_dict("records"),
        page_size=page_size,
        sort_action="native",
        style_table={"overflowX": "auto"},
        style_cell={"fontFamily": "inherit", "fontSize": "13px", "padding": "4px 8px",
                    "textAlign": "right", "maxWidth": "240px", "overflow": "hidden",
                    "textOverflow": "ellipsis"},
        style_header={"fontWeight": "600", "backgroundColor": "#f1f3f6"},
        **kwargs,
    )


def _is_float_column(values: pd.Series) -> bool:
    """Float columns, and object columns (None beside numbers) whose values are all floats."""
    if pd.api.types.is_float_dtype(values):
        return True
    if values.dtype != object:
        return False
    present = [v for v in values if v is not None and v == v]
    return bool(present) and all(isinstance(v, float) for v in present)


def table_columns(frame: pd.DataFrame, units: dict[str, str] | None = None) -> list[dict]:
    """DataTable columns: numbers shown with 4 significant digits; ``units`` adds a unit
    to a column's header ("median_ms" -> "median_ms (ms)") without changing its id."""
    cols = []
    for name in frame.columns:
        unit = (units or {}).get(str(name))
        col = {"name": f"{name} ({unit})" if unit else str(name), "id": str(name)}
        if _is_float_column(frame[name]):
            col.update(type="numeric", format={"specifier": ".4~g"})
        cols.append(col)
    return cols


def csv_download(id: str, label: str = "Download CSV") -> html.Div:
    """A button and its dcc.Download; wire it with ``register_csv_download``."""
    return html.Div([
        html.Button(label, id=f"{id}-button", className="btn btn-secondary"),
        dcc.Download(id=f"{id}-download"),
    ], className="csv-download")


def register_csv_download(id: str, source: tuple[str, str], filename: str) -> None:
    """On click of ``{id}-button`` send ``source`` (component id, prop) as CSV.

    The prop must hold rows: a list of dicts, or a DataTable's ``data``.
    """

    @callback(Output(f"{id}-download", "data"), Input(f"{id}-button", "n_clicks"),
              State(*source), prevent_initial_call=True)
    def _send(_clicks: int, rows: Iterable[dict] | None):
        return csv_payload(rows, filename)


def csv_payload(rows: Any, filename: str) -> dict:
    """What a dcc.Download needs to save ``rows`` as a CSV file."""
    return dcc.send_string(to_csv_text(_frame(rows)), filename)
