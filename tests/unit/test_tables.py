"""components.tables: which columns a table shows, and the one table of column units."""
from __future__ import annotations

import pandas as pd

from components.compact_table import Col, compact_frame
from components.sparsity_panels import table_output
from components.tables import COLUMN_UNITS, KEY_COLUMNS, shown_columns

FRAME = pd.DataFrame({"zeta": [1, 1], "median_ms": [1.0, 2.0], "block": [16, 16], "backend": ["a", "b"],
                      "speedup": [1.5, float("nan")]})


def test_shown_columns_puts_the_key_columns_first_then_the_varying_ones():
    assert shown_columns(FRAME) == ["backend", "block", "speedup", "median_ms", "zeta"]
    assert shown_columns(FRAME, limit=2) == ["backend", "block"]
    assert set(KEY_COLUMNS) >= {"backend", "block", "speedup"}


def test_shown_columns_can_give_just_the_chosen_columns_present():
    assert shown_columns(FRAME, ["speedup", "missing", "block"], limit=None, others=False) == ["speedup", "block"]


def test_compact_and_sparsity_tables_choose_columns_the_same_way():
    cols = (Col("speedup", "x", "speedup"), Col("missing", "m", "absent"), Col("block", "b", "block"))
    assert list(compact_frame(FRAME, cols).columns) == ["x", "b"]
    data, columns = table_output(FRAME, COLUMN_UNITS, shown=["speedup", "missing", "block"])
    assert [c["id"] for c in columns] == ["speedup", "block"]
    assert [c["name"] for c in columns] == ["speedup (x dense)", "block (b x b)"]
    assert len(data[0]) == 5 and data[1]["speedup"] is None  # every column kept, NaN as an empty cell
