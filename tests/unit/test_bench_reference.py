"""The reference registry (engine/bench/reference.py) and the page's list parser."""
from __future__ import annotations

import pytest

from engine.bench.reference import (KINDS, comparable, compare, find, parse_float_list, references, run_date)
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


def _write(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_csv_text(rows))
    return path


def test_runs_are_listed_by_their_header_and_dated_by_their_own_column(results_dir):
    old = _write(results_dir / "b" / "zz_old.csv", [dict(r, measured_at="2026-01-01 10:00:00") for r in sample_rows()])
    new = _write(results_dir / "a" / "new.csv", [dict(r, measured_at="2026-03-01T09:00:00Z") for r in sample_rows()])
    _write(results_dir / "a" / "paradox_break_even.csv", [{"backend": "x", "op": "spmv", "break_even": 0.9}])
    (results_dir / "notes.csv").write_text("a,b\n1,2\n")
    new.touch()
    old.touch()  # a newer file time must not matter
    refs = references("paradox")
    assert [r.name for r in refs] == ["a/new.csv", "b/zz_old.csv"]
    assert refs[0].date == "2026-03-01 09:00" and refs[0].device_name == "NVIDIA H100 80GB HBM3"
    assert refs[0].shape["rows"] == (64,) and refs[0].dtypes == ("float32",) and len(refs[0].frame()) == 4
    assert references("structured") == [] and find("a/new.csv").path == new


def test_structured_rows_are_their_own_kind(results_dir):
    _write(results_dir / "s.csv", [dict(r, sweep="structured", part="block") for r in sample_rows()])
    assert [r.kind for r in references()] == ["structured"]


def test_find_refuses_what_is_not_listed(results_dir):
    _write(results_dir / "p.csv", sample_rows())
    with pytest.raises(ValueError, match="expected a committed paradox run under"):
        find("../p.csv", "paradox")
    with pytest.raises(ValueError, match="kind: expected one of paradox"):
        references("nope")


def test_comparable_names_every_mismatch(results_dir):
    _write(results_dir / "p.csv", [dict(r, rows=8192, cols=8192, method="eager per call") for r in sample_rows()])
    (match,) = comparable("paradox", device_name="CPU: Xeon", dims={"rows": 512, "k": 1}, dtype="float16",
                          method="eager per call")
    assert match.mismatches == ("device", "rows", "dtype")
    assert match.label == "H100 80GB HBM3, n = 8192, float32 · this CPU, n = 512, float16"
    same = compare(match.reference, device_name="NVIDIA H100 80GB HBM3", dims={"rows": [8192]},
                   dtype="float32", method="torch.utils.benchmark.Timer.timeit (number=3)")
    assert same.same and "same device, shape, dtype and method" in same.label


def test_device_txt_gives_the_date_when_the_csv_has_none(results_dir):
    rows = [{k: v for k, v in r.items() if k != "measured_at"} for r in sample_rows()]
    _write(results_dir / "gpu" / "p.csv", rows)
    (results_dir / "gpu" / "device.txt").write_text("2026-11-22T06:34Z\nNVIDIA H100 80GB HBM3, 81559 MiB\n")
    assert references("paradox")[0].date == "2026-11-22 06:34"
    # an edited device.txt is a new state of the folder: read again, never a stale label
    (results_dir / "gpu" / "device.txt").write_text("2026-11-23T07:00Z\nNVIDIA H200, 143771 MiB\n")
    assert references("paradox")[0].date == "2026-11-23 07:00"
    assert run_date("2026-11-30 12:46 UTC") == "2026-11-30 12:46" and run_date("soon") == ""


def test_every_committed_kind_is_listed_with_device_shape_and_date():
    refs = references()
    assert {r.kind for r in refs} == set(KINDS)
    for r in refs:
        assert r.device_name and r.date and r.rows > 0 and r.dims, r.name
    paradox = references("paradox")[0]
    assert paradox.shape["rows"] == (8192,) and paradox.methods == ("eager per call",)


def test_newest_is_the_latest_run_by_its_own_date_and_describes_itself():
    from engine.bench.reference import newest, references

    for kind in ("paradox", "isomorphism", "paper", "moe"):
        ref = newest(kind)
        assert ref is not None and ref == references(kind)[0]
        assert ref.description.startswith(f"benchmarks/results/{ref.name}, measured on ")
    with pytest.raises(ValueError, match="kind: expected one of"):
        newest("no-such-kind")
