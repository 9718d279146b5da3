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


# The units of the lab's row columns, shown in table headers ("median_s (s)"); the CSV keeps
# the plain names. One table for every page's tables.
COLUMN_UNITS = {"median_s": "s", "iqr_s": "s", "prepare_s": "s", "dense_median_s": "s", "predicted_s": "s",
                "gbs": "GB/s", "peak_gbs": "GB/s", "gflops": "GFLOP/s", "flops": "FLOP", "bytes_moved": "B",
                "pct_peak_bw": "%", "kernel_ms": "ms", "time_ms": "ms", "epoch_s": "s", "speedup": "x dense",
                "theoretical": "x, 1/density", "efficiency": "speedup / theoretical",
                "sparsity": "fraction of zeros", "density": "fraction", "median_ms": "ms", "iqr_ms": "ms",
                "block": "b x b", "energy_kept": "share of sum w²", "kept": "entries", "drop_pts": "points",
                "seconds": "s", "ms": "ms", "ms_events": "ms", "speedup_vs_dense": "x",
                "speedup_vs_dense_events": "x", "speedup_vs_torch_bsr": "x"}
# What a short header means, shown when the pointer rests on it.
COLUMN_HELP = {
    "speedup": "t_dense / t_backend, same device, same run", "theoretical": "1 / density",
    "theoretical (1/density)": "the theoretical speedup: 1 / density",
    "efficiency": "measured speedup / theoretical speedup", "noisy": "IQR / median > 0.1, or fewer than 3 runs",
    "iqr_s": "interquartile range of the timed runs", "median_s": "median time of one call",
    "gbs": "bytes of A as stored plus x and y, over the median time (minimum-traffic model)",
    "method": "how it was timed: eager per call, cuda-graph replay or wall clock",
    "prepare_s": "time to convert the dense matrix to this format, once",
    "bytes dense / CSR": "bytes of the dense matrix over bytes of CSR: a memory-bound SpMV's best speedup",
    "fill_in": "stored zeros per non-zero in BSR", "spec_key": "hash of what was measured (the cache key)",
    "per call / kernel-only": "time of one eager call over the kernel's own time (1 = no host overhead)",
}
# The columns a wide table of benchmark rows shows first; the CSV download has them all.
KEY_COLUMNS = ("status", "backend", "candidate", "op", "format", "block", "sparsity", "rows", "cols", "k",
               "dtype", "median_s", "iqr_s", "noisy", "speedup", "theoretical", "efficiency", "gbs",
               "method", "message")
MAX_SHOWN = 14  # more columns than this do not fit 1280 px: the rest are in the CSV


def data_table(id: str, rows: Any = None, page_size: int = 12, **kwargs: Any) -> dash_table.DataTable:
    """A sortable DataTable; numbers shown with 4 significant digits; headers wrap and
    explain themselves on hover (``COLUMN_HELP``), so a table fits its container."""
    frame = _frame(rows)
    styles = {"style_table": {"overflowX": "auto"},
              "style_cell": {"fontFamily": "inherit", "fontSize": "13px", "padding": "4px 8px",
                             "textAlign": "right", "maxWidth": "240px", "overflow": "hidden",
                             "textOverflow": "ellipsis"},
              "style_header": {"fontWeight": "600", "backgroundColor": "#f1f3f6", "whiteSpace": "normal",
                               "height": "auto"},
              "style_data": {"whiteSpace": "normal", "height": "auto"}}
    for name, default in styles.items():  # a caller's style adds to (or overrides) the defaults
        styles[name] = {**default, **kwargs.pop(name, {})}
    return dash_table.DataTable(
        id=id,
        columns=table_columns(frame),
        data=frame.to_dict("records"),
        page_size=page_size,
        sort_action="native",
        tooltip_header=kwargs.pop("tooltip_header", COLUMN_HELP),
        tooltip_delay=300,
        tooltip_duration=None,
        **styles,
        **kwargs,
    )


def shown_columns(frame: pd.DataFrame, first=KEY_COLUMNS, limit: int | None = MAX_SHOWN,
                  others: bool = True) -> list[str]:
    """The columns a table of ``frame`` shows: ``first`` (those present, in that order),
    then, with ``others``, the columns whose values differ between rows and the rest, at
    most ``limit`` in all (None: no limit). The CSV keeps every column.

    ``shown_columns(frame, ["block", "ms"], others=False)``: just the chosen ones present."""
    names = [c for c in first if c in frame.columns]
    if others:
        rest = [c for c in frame.columns if c not in names]
        varying = [c for c in rest if frame[c].astype(str).nunique(dropna=False) > 1]
        names += varying + [c for c in rest if c not in varying]
    return names[:limit]


def _is_float_column(values: pd.Series) -> bool:
    """Float columns, and object columns (None beside numbers) whose values are all floats."""
    if pd.api.types.is_float_dtype(values):
        return True
    if values.dtype != object:
        return False
    present = [v for v in values if v is not None and v == v]
    return bool(present) and all(isinstance(v, float) for v in present)


def table_columns(frame: pd.DataFrame, units: dict[str, str] | None = None,
                  only: list[str] | None = None) -> list[dict]:
    """DataTable columns: numbers shown with 4 significant digits; ``units`` adds a unit
    to a column's header ("median_s" -> "median_s (s)") without changing its id; ``only``
    shows those columns (``shown_columns``), while the table's data keeps them all."""
    cols = []
    for name in (only if only is not None else frame.columns):
        unit = (units or {}).get(str(name))
        col = {"name": f"{name} ({unit})" if unit else str(name), "id": str(name)}
        if _is_float_column(frame[name]):
            col.update(type="numeric", format={"specifier": ".4~g"})
        cols.append(col)
    return cols


def table_records(frame: pd.DataFrame) -> list[dict]:
    """A DataTable's ``data``: the frame's rows with NaN / inf as empty cells (JSON has neither)."""
    if not len(frame):
        return []
    clean = frame.replace([float("inf"), float("-inf")], None).astype(object)
    return clean.where(clean.notna(), None).to_dict("records")


def csv_download(id: str, label: str = "Download CSV") -> html.Div:
    """A button and its dcc.Download; wire it with ``register_csv_download``."""
    return html.Div([
        html.Button(label, id=f"{id}-button", className="btn btn-secondary"),
        dcc.Download(id=f"{id}-download"),
    ], className="csv-download")


def table_with_csv(id: str, csv_id: str, label: str = "Download CSV", page_size: int = 12,
                   rows: Any = None) -> list:
    """A data_table (of ``rows``, if any yet) and its CSV button beneath it, to splice into a
    section: ``section("Cost", *table_with_csv("gen-cost-table", "gen-cost-csv"), note=...)``;
    wire the button with ``register_csv_download(csv_id, (id, "data"), filename)``."""
    return [data_table(id, rows, page_size=page_size), csv_download(csv_id, label)]


def table_slot(id: str, csv_id: str, rows_id: str, label: str = "Download CSV") -> list:
    """Where a callback draws a table (an empty Div), its CSV button and the Store of the
    rows the CSV sends, so the CSV keeps every column the table leaves out; wire it with
    ``register_csv_download(csv_id, (rows_id, "data"), filename)``."""
    return [html.Div(id=id), csv_download(csv_id, label), dcc.Store(id=rows_id)]


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


ROWS_TABLE_PX = 1150  # a full-width table's box at a 1280 px wide window
CHAR_PX, CELL_PX = 8, 18  # a character of a 13 px cell and a cell's padding (sort arrow on headers)


def fitting_columns(frame: pd.DataFrame, names: list[str], budget: int = ROWS_TABLE_PX) -> list[str]:
    """The first of ``names`` that fit ``budget`` px side by side (headers and text wrap at
    spaces, numbers show 4 significant digits); the CSV keeps every column."""
    out, total = [], 0
    for name in names:
        header = f"{name} ({COLUMN_UNITS[name]})" if name in COLUMN_UNITS else str(name)
        values = frame[name].dropna().head(200)
        numeric = pd.to_numeric(values, errors="coerce").notna().all()
        words = [len(w) for v in values.astype(str) for w in v.split()] or [0]
        width = CELL_PX + CHAR_PX * max(max(len(w) for w in header.split()) + 2,
                                        min(max(words), 10 if numeric else 30))
        if out and total + width > budget:
            break
        out.append(name)
        total += width
    return out
