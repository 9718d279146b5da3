"""A table that fits its column at 1280 px: chosen columns, short headers with units,
the long name as a tooltip (components.tables.data_table wraps headers and cells and
shows numbers at 4 significant digits).

    COLUMNS = (Col("seq_len", "S (tokens)", "sequence length"),
               Col("kernel_ms", "kernel (ms)", "median kernel time"))
    compact_table("attention-sweep-rows", rows, COLUMNS)

A long list of columns reads best as a text table: ``columns("key | header | tooltip" lines)``.

The CSV download keeps every column of the rows (it reads the rows' store, not the table).
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import pandas as pd

from components.tables import data_table, shown_columns


class Col(NamedTuple):
    key: str        # the row's field
    header: str     # what the table shows, with its unit: "kernel (ms)"
    tooltip: str    # the longer explanation, on hover over the header


def columns(table: str) -> tuple[Col, ...]:
    """Cols from a text table, one column a line: ``key | header | tooltip`` (blank lines
    skipped; the tooltip may hold '|'), e.g. ``"kernel_ms | kernel (ms) | median kernel time"``."""
    out = []
    for line in filter(str.strip, table.splitlines()):
        parts = [p.strip() for p in line.split("|", 2)]
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"columns: expected 'key | header | tooltip' on each line, got {line.strip()!r}")
        out.append(Col(*parts))
    return tuple(out)


def compact_frame(rows, columns: Sequence[Col]) -> pd.DataFrame:
    """The rows' chosen columns (those present), renamed to their headers; no columns:
    every column as it is."""
    frame = rows if isinstance(rows, pd.DataFrame) else pd.DataFrame(list(rows or []))
    if not columns:
        return frame
    keys = shown_columns(frame, [c.key for c in columns], limit=None, others=False)
    return frame[keys].rename(columns={c.key: c.header for c in columns})


TEXT_WIDTH = "170px"  # a text cell wraps at this width; a long one also shows on hover


def compact_table(id: str, rows, columns: Sequence[Col], page_size: int = 12):
    """A data_table of ``compact_frame(rows, columns)``: headers with tooltips, text
    columns left-aligned and at most TEXT_WIDTH wide (long text also on hover)."""
    frame = compact_frame(rows, columns)
    tips = {c.header: c.tooltip for c in columns if c.header in frame}
    text = [h for h in frame.columns if not pd.api.types.is_numeric_dtype(frame[h])]
    cells = [{h: {"value": str(r[h]), "type": "text"} for h in text
              if isinstance(r[h], str) and len(r[h]) > 20} for r in frame.to_dict("records")]
    return data_table(id, frame, page_size=page_size, tooltip_header=tips, tooltip_data=cells,
                      style_cell_conditional=[{"if": {"column_id": h}, "textAlign": "left",
                                               "maxWidth": TEXT_WIDTH} for h in text])
