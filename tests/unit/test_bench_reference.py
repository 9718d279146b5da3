"""Committed reference CSVs and the page's list parser (engine/bench/reference.py)."""
from __future__ import annotations

import pytest

from engine.bench.reference import load_reference, parse_float_list, reference_files, reference_label
from engine.runtime.store import to_csv_text
from tests.unit.test_bench_store import sample_rows

# (text, parsed)
GOOD_LISTS = [("0.5, 0.9 0.99", (0.5, 0.9, 0.99)), ("90%; 50%", (0.5, 0.9)), ("0.9,0.9", (0.9,))]
BAD_LISTS = [("", "expected a list"), ("0.5, abc", "expected numbers"), ("1.5", "expected a number in")]


@pytest.mark.parametrize("text,expected", GOOD_LISTS)
def test_parse_float_list(text, expected):
    assert parse_float_list("sparsities", text, 0.0, 0.9999) == expected


@pytest.mark.parametrize("text,words", BAD_LISTS)
def test_parse_float_list_rejects(text, words):
    with pytest.raises(ValueError, match=words):
        parse_float_list("sparsities", text, 0.0, 0.9999)


def test_reference_files_pick_row_csvs_only(tmp_path):
    (tmp_path / "gpu").mkdir()
    rows = tmp_path / "gpu" / "paradox_h100.csv"
    rows.write_text(to_csv_text(sample_rows()))
    (tmp_path / "gpu" / "paradox_break_even.csv").write_text("backend,op,break_even\nx,spmv,0.9\n")
    (tmp_path / "other.csv").write_text("a,b\n1,2\n")
    assert reference_files(tmp_path) == [rows]
    frame = load_reference(rows, root=tmp_path)
    assert len(frame) == 4 and reference_label(frame, rows) == "H100 80GB HBM3"
    with pytest.raises(ValueError, match="expected a file under"):
        load_reference(tmp_path / "other.csv", root=tmp_path / "gpu")
