"""/paradox callbacks called as plain functions."""
from __future__ import annotations

import dash
import pandas as pd
import pytest

if not dash.page_registry or "pages.paradox" not in dash.page_registry:
    dash.Dash(__name__, use_pages=True, pages_folder="")
from pages import paradox  # noqa: E402

from engine.bench.sweeps import ParadoxConfig, paradox_sweep  # noqa: E402

# (widget values, expected words of the error) for build_config
BAD_INPUTS = [
    (dict(size=8), "size: expected"),
    (dict(sparsities="0.5, x"), "sparsities: expected numbers"),
    (dict(sparsities=""), "sparsities: expected a list"),
    (dict(backends=[]), "backends: expected at least one"),
    (dict(ops=[]), "ops: expected"),
    (dict(k=0), "k: expected"),
]
GOOD = dict(size=32, k=4, dtype="float32", pattern="uniform", block=8, sparsities="0.5, 0.9",
            backends=["torch-dense", "torch-csr"], ops=["spmv"], repeats=2)


@pytest.fixture(scope="module")
def rows():
    return list(paradox_sweep(ParadoxConfig(sizes=(32,), sparsities=(0.5, 0.9), ops=("spmv",), k=4,
                                            backends=("torch-dense", "torch-csr", "torch-coo"), repeats=2)))


@pytest.mark.parametrize("change,words", BAD_INPUTS)
def test_build_config_rejects_bad_widgets(change, words):
    with pytest.raises(ValueError, match=words):
        paradox.build_config(**{**GOOD, **change})


def test_plan_builds_a_job_of_the_right_size(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    job = paradox.plan(*GOOD.values(), [])
    assert job.total == 4 and job.meta["pid"] > 0
    rows = list(job.rows)
    assert [r["backend"] for r in rows] == ["torch-dense", "torch-csr"] * 2


def test_draw_makes_figures_and_tables(rows):
    out = paradox.draw(rows, "spmv", None)
    speed, eff, bw = out[:3]
    names = {t.name for t in speed.data}
    assert "theoretical 1/density" in names and "torch-csr" in names and "torch-dense" not in names
    assert speed.layout.xaxis.type == "log" and speed.layout.yaxis.type == "log"
    assert "sparsity" in speed.layout.xaxis.title.text and "speedup" in speed.layout.yaxis.title.text
    chapter = pd.DataFrame(out[3])
    assert chapter["chapter's actual"].tolist() == [1.1, 1.8, 2.3, 3.5]
    assert "measured torch-csr" in chapter.columns
    assert len(out[9]) == len(rows)  # all rows table
    assert {t.name for t in bw.data} >= {"torch-dense", "torch-csr"}


def test_draw_with_no_rows_is_empty_not_broken():
    out = paradox.draw([], "spmv", None)
    assert out[0].layout.annotations[0].text.startswith("No measured rows")
    assert out[9] == []


def test_notes_report_unavailable_backends_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    notes = paradox.notes("float16", ["torch-dense", "torch-csr"], ["spmv"], 64, 16, "0.5", 4, "uniform", 2)
    assert any("torch-csr: unavailable: expected dtype" in str(n.children) for n in notes)
    bad = paradox.notes("float32", ["torch-csr"], ["spmv"], 64, 16, "nope", 4, "uniform", 2)
    assert "expected numbers" in str(bad.children)


def test_reference_shown_beside_local(rows, tmp_path, monkeypatch):
    from engine.bench import reference
    from engine.runtime.store import to_csv_text

    ref_rows = [dict(r, device_name="NVIDIA H100 80GB HBM3") for r in rows]
    folder = tmp_path / "results"
    folder.mkdir()
    path = folder / "paradox_h100.csv"
    path.write_text(to_csv_text(ref_rows))
    monkeypatch.setattr(reference, "RESULTS", folder)
    monkeypatch.setattr(paradox, "RESULTS", folder)
    monkeypatch.setattr(paradox, "reference_files", lambda: reference.reference_files(folder))
    monkeypatch.setattr(paradox, "load_reference", lambda p: reference.load_reference(p, folder))
    opts, value, _ph = paradox.reference_options(None)
    assert value == str(path) and opts[0]["label"] == "paradox_h100.csv"
    out = paradox.draw(rows, "spmv", value)
    names = {t.name for t in out[0].data}
    assert any(n.startswith("H100 80GB HBM3: torch-csr") for n in names)
    assert "H100" in str(out[-1].children)


def test_storage_model_table():
    data, cols, note = paradox.storage(1000, "float32", 16, "0.9, 0.99")
    assert [r["sparsity"] for r in data] == ["90%", "99%"]
    assert data[0]["bytes dense / CSR"] == pytest.approx(4 / (0.1 * 12), rel=0.01)
    assert "67%" in note and "80%" in note
    _d, _c, bad = paradox.storage(1000, "float32", 16, "zero")
    assert "expected numbers" in str(bad.children)


hostile = __import__("hypothesis.strategies", fromlist=["x"])
_values = hostile.one_of(hostile.none(), hostile.booleans(), hostile.integers(-10**9, 10**9),
                         hostile.floats(allow_nan=True, allow_infinity=True), hostile.text(max_size=12),
                         hostile.lists(hostile.integers(), max_size=4),
                         hostile.dictionaries(hostile.text(max_size=3), hostile.integers(), max_size=2))


@__import__("hypothesis").settings(max_examples=40, deadline=None)
@__import__("hypothesis").given(hostile.lists(_values, min_size=12, max_size=12))
def test_callbacks_survive_hostile_values(v):
    """Whatever the browser sends, the callbacks answer (a message), never raise."""
    notes = paradox.notes(*v[:9])
    assert notes is not None
    data, _cols, _note = paradox.storage(*v[:4])
    assert isinstance(data, list)
    out = paradox.draw(v[0], v[1], v[2])
    assert len(out) == 12
