"""/runs callbacks called as plain functions."""
from __future__ import annotations

import base64

import dash
import pytest

if not dash.page_registry or "pages.runs" not in dash.page_registry:
    dash.Dash(__name__, use_pages=True, pages_folder="")
from pages import runs  # noqa: E402

from engine.runtime.store import RunStore, to_csv_text  # noqa: E402
from tests.unit.test_bench_store import sample_rows  # noqa: E402


def _upload(text: str) -> str:
    return "data:text/csv;base64," + base64.b64encode(text.encode()).decode()


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    return RunStore(tmp_path)


# (file text, file name, expected words)
BAD_UPLOADS = [
    ("a,b\n1,2\n", "x.csv", "expected a 'sweep' column"),
    (to_csv_text(sample_rows()).replace("paradox,", "other,"), "x.csv", "column sweep: expected"),
    (to_csv_text(sample_rows()), "x.txt", "expected a .csv file"),
    # issue 22 item 8: the kind is checked on every row, not the first 1000
    (to_csv_text(sample_rows() * 251 + [dict(r, sweep="structured") for r in sample_rows()]), "x.csv",
     "column sweep: expected one of paradox, structured"),
    # issue 22 item 9: a repeated column is refused (pandas would rename it op.1)
    (to_csv_text(sample_rows()).replace(",backend,", ",op,", 1), "x.csv", "got 'op' more than once"),
]


def test_import_then_list_open_compare_export(store, monkeypatch):
    monkeypatch.setattr(runs, "_trigger", lambda: "runs-upload")
    msg, version, opened = runs.change_store(_upload(to_csv_text(sample_rows())), None, "h100.csv", None, 0)
    assert runs.list_runs(version, 0, opened, None)[4] == opened
    assert "Imported 4 rows" in str(msg.children) and version == 1 and opened
    data, _cols, opts, _, _v = runs.list_runs(version, 0, None, None)
    assert data[0]["status"] == "imported" and "H100" in data[0]["device"] and opts[0]["value"] == opened
    second = store.create_run("paradox", meta={"device_name": "CPU: test"})
    for r in sample_rows():
        store.append(second, dict(r, device_name="CPU: test", speedup=r["speedup"] / 2))
    store.finish(second, "done")
    facts, fig, rows, _c, xs, ys, ops, dtypes, x, y, _note = runs.show(opened, second, "sparsity", "speedup", None,
                                                                        None, 1)
    assert len(rows) == 4 and "speedup" in ys and ops == ["spmv"] and (x, y) == ("sparsity", "speedup")
    assert len({t.legendgroup for t in fig.data if t.legendgroup}) == 2  # both runs in one plot
    assert fig.layout.yaxis.type == "log"
    payload = runs.export(1, opened)
    assert payload["filename"] == f"run_{opened}.csv" and "torch-csr" in payload["content"]


@pytest.mark.parametrize("text,name,words", BAD_UPLOADS)
def test_bad_upload_rejected_nothing_stored(store, monkeypatch, text, name, words):
    monkeypatch.setattr(runs, "_trigger", lambda: "runs-upload")
    msg, _v, opened = runs.change_store(_upload(text), None, name, None, 0)
    assert "Import rejected" in str(msg.children) and words in str(msg.children)
    assert store.list_runs() == [] and opened is dash.no_update


def test_delete_after_confirm(store, monkeypatch):
    run_id = store.create_run("paradox")
    assert runs.ask_delete(1, run_id) is True and runs.ask_delete(1, None) is False
    monkeypatch.setattr(runs, "_trigger", lambda: "runs-confirm")
    msg, _v, opened = runs.change_store(None, 1, None, run_id, 3)
    assert "Deleted" in str(msg.children) and opened is None and store.list_runs() == []


def test_decode_upload_rejects_garbage():
    with pytest.raises(ValueError, match="expected base64"):
        runs.decode_upload("data:text/csv;base64,@@@")
    with pytest.raises(ValueError, match="expected an uploaded CSV"):
        runs.decode_upload("")


def test_compare_with_committed_reference(store, results_dir):
    ref = results_dir / "paradox_h100.csv"
    ref.write_text(to_csv_text(sample_rows()))
    local = store.create_run("paradox", params={"ops": ["spmv"]}, meta={"device_name": "CPU: test"})
    for r in sample_rows():
        store.append(local, dict(r, device_name="CPU: test"))
    data, _c, opts, compare_opts, _v = runs.list_runs(0, 0, None, None)
    assert data[0]["op"] == "spmv"
    assert compare_opts[0]["value"] == "ref:paradox_h100.csv" and len(opts) == 2
    assert opts[1]["value"] == "ref:paradox_h100.csv"  # a reference opens under "Run" too
    _f, fig, rows, *_ = runs.show(local, compare_opts[0]["value"], "sparsity", "speedup", "spmv", None, 0)
    groups = {t.legendgroup for t in fig.data if t.legendgroup}
    assert any("committed reference" in g for g in groups) and any(g.startswith("CPU (run") for g in groups)
    assert len(rows) == 4
    facts, _fig, ref_rows, *_ = runs.show("ref:paradox_h100.csv", None, "sparsity", "speedup", None, None, 0)
    assert len(ref_rows) == 4 and "committed reference" in str(facts)
    assert runs.export(1, "ref:paradox_h100.csv")["filename"] == "run_paradox_h100.csv"


def test_every_shipped_reference_opens_under_run(store):
    from engine.bench.reference import KINDS, references

    refs = references()
    assert {r.kind for r in refs} == set(KINDS)  # every kind the lab ships a reference of
    opened = {o["value"] for o in runs.list_runs(0, 0, None, None)[2]}
    for ref in refs:
        assert "ref:" + ref.name in opened
        facts, _fig, rows, *_ = runs.show("ref:" + ref.name, None, "sparsity", "speedup", None, None, 0)
        assert len(rows) == ref.rows > 0, ref.name
        assert ref.device_name in str(facts) and ref.kind in str(facts)


def your_matrix_rows(cache, n: int) -> list[dict]:
    """The first ``n`` rows of /your-matrix's measurement job on its example matrix (a quick
    calibration stored first, in ``cache``, so the job does not calibrate for 10 s)."""
    import itertools

    from engine.bench import roofline
    from engine.runtime.device import job_device, runtime_device_name
    from engine.sparse.user_matrix import store_matrix
    from pages import your_matrix

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SPARSITY_LAB_CACHE", str(cache))
        list(roofline.calibrate(roofline.CalibrationPlan.for_device("cpu", quick=True),
                                device_name=runtime_device_name(job_device("cpu"))))
        h = store_matrix(your_matrix.example_matrix())["hash"]
        return list(itertools.islice(your_matrix.plan_measure(h, 4, "float32", 1).rows, n))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Rows of every kind of job the lab runs, from each page's own plan (tiny sizes)."""
    from pages import (attention, generator, isomorphism, moe, paper, paradox, scanner, structured_matrices,
                       structured_sparsity)
    from tests.callbacks.test_attention import params
    from tests.callbacks.test_generator import DEFAULT_VALUES

    plans = {
        "paradox": paradox.plan(paradox.spec(32, 4, "float32", "uniform", 8, "0.5, 0.9",
                                             ["torch-dense", "torch-csr"], ["spmv"], 2), []),
        "structured": structured_sparsity.timing_plan(64, 8, "float32", [8], [0.5], [], 1),
        "structured-accuracy": structured_sparsity.accuracy_plan(["mlp"], ["2:4"], [], 1, 1, 2),
        "attention": attention.plan_sweep([256], ["sliding_window"], [], 64, *params(w=16)),
        "moe-timing": moe.plan_sweep(64, 2, "8/2", "float32", "cpu"),
        "moe-router": moe.plan_training(4, 2, 0.1, 1),
        "isomorphism-timing": isomorphism.plan_sweep([1], [8], [2], 3, 0.2),
        "paper-training": paper.plan_training(["timeseries"], ["tied"], 1, 3e-3, 64, 64, "sunspots", 0, 1, "",
                                              ""),
        "structured-matrices": structured_matrices.plan_sweep(n=256, batches=[1], dtypes=["float32"], rank=8,
                                                              blocks=4),
        "scanner-phase-map": scanner.plan_phase_map(8, 2),
        "generator-training": generator.plan_training(*DEFAULT_VALUES, "major triad", "", 5, 0.05),
    }
    import itertools

    rows = {kind: list(itertools.islice(plan.rows, 6)) for kind, plan in plans.items()}
    return {**rows, "your-matrix": your_matrix_rows(tmp_path_factory.mktemp("matrix-cache"), 6)}


def test_every_kind_the_lab_exports_imports_back(store, exported, monkeypatch):
    """Issue 18 items 9-10: each job's CSV (as its download writes it, /your-matrix's
    measurement sweep included) imports as its own kind, with every value back, and the
    run table shows its device."""
    from components.jobs import csv_payload  # the jobs' Download CSV

    monkeypatch.setattr(runs, "_trigger", lambda: "runs-upload")
    for kind, rows in exported.items():
        text = csv_payload(rows, f"{kind}.csv")["content"]
        msg, _v, run_id = runs.change_store(_upload(text), None, f"{kind}.csv", None, 0)
        assert "Imported" in str(msg.children), (kind, str(msg.children))
        meta = store.meta(run_id)
        assert meta["kind"] == kind and meta["n_rows"] == len(rows)
        back = store.rows(run_id)
        for col in rows[0]:
            want = [r.get(col) for r in rows]
            got = [b.get(col) for b in back]
            assert [_norm(v) for v in got] == [_norm(v) for v in want], (kind, col)
    table = {r["kind"]: r for r in runs.list_runs(0, 0, None, None)[0]}
    for kind in exported:
        assert table[kind]["device"], kind


def _norm(v):
    """A value as a CSV round trip keeps it: numbers as rounded floats, blanks as None."""
    import math

    if v is None or (isinstance(v, float) and math.isnan(v)) or v == "":
        return None
    if isinstance(v, bool):
        return v
    if isinstance(v, (int, float)):
        return round(float(v), 9) if math.isfinite(v) else str(v)
    return str(v)


hostile = __import__("hypothesis.strategies", fromlist=["x"])
_values = hostile.one_of(hostile.none(), hostile.booleans(), hostile.integers(-10**9, 10**9),
                         hostile.floats(allow_nan=True), hostile.text(max_size=12),
                         hostile.sampled_from(["ref:/etc/passwd", "data:,x", "data:a;base64,@@"]),
                         hostile.lists(hostile.integers(), max_size=4))


@__import__("hypothesis").settings(max_examples=30, deadline=None)
@__import__("hypothesis").given(hostile.lists(_values, min_size=7, max_size=7))
def test_callbacks_survive_hostile_values(tmp_path_factory, v):
    import os

    before = os.environ.get("SPARSITY_LAB_CACHE")
    os.environ["SPARSITY_LAB_CACHE"] = str(tmp_path_factory.mktemp("fuzz"))
    try:
        assert len(runs.list_runs(v[0], v[1], v[2], v[3])) == 5
        assert len(runs.show(*v)) == 11
        runs.export(v[0], v[1])
        runs.ask_delete(v[0], v[1])
        runs._trigger, saved = (lambda: "runs-upload"), runs._trigger
        try:
            runs.change_store(v[0], v[1], v[2], v[3], v[4])
        finally:
            runs._trigger = saved
    finally:
        if before is None:
            os.environ.pop("SPARSITY_LAB_CACHE", None)
        else:
            os.environ["SPARSITY_LAB_CACHE"] = before


def test_run_device_comes_from_metadata_else_the_first_row(store):
    named = store.create_run("paradox", meta={"device_name": "NVIDIA H200"})
    from_row = store.create_run("paradox")
    store.append(from_row, {"device": "cpu", "device_name": "AMD EPYC"})
    store.append(from_row, {"device": "cuda", "device_name": "other"})
    bare = store.create_run("paradox")
    devices = {r["run_id"]: r["device"] for r in runs.run_table_rows(store)}
    assert devices == {named: "NVIDIA H200", from_row: "AMD EPYC", bare: runs.NOT_RECORDED}


def _store_rows(store, frame, device_name):
    run_id = store.create_run("paradox", meta={"device_name": device_name})
    for r in frame.to_dict("records"):
        store.append(run_id, r)
    store.finish(run_id, "done")
    return run_id


H100_REF = "ref:paradox/paradox_h100_80gb_hbm3.csv"


def test_compare_names_every_mismatch_in_legend_and_note(store):
    """Walk item 1: the H100 n = 8192 reference beside this CPU's n = 512 float16 run: the
    legend and the note under the plot name the device and the size; a like-for-like pair says so."""
    from tests.unit.test_run_compare import paradox_rows

    cpu = _store_rows(store, paradox_rows("CPU: Xeon", 512, dtypes=("float16",)), "CPU: Xeon")
    out = runs.show(H100_REF, cpu, "sparsity", "speedup", None, None, 0)
    groups = {t.legendgroup for t in out[1].data if t.legendgroup}
    assert any(g.startswith("H100 80GB HBM3, n = 8192 (committed reference") for g in groups), groups
    assert any(g.startswith("CPU, n = 512 (run") for g in groups), groups
    note = " ".join(str(m.children) for m in out[10])
    assert "Not like for like: H100 80GB HBM3, n = 8192 · CPU, n = 512" in note
    # the dtype both have (float16) is drawn; with float32 picked, the CPU run has none: said so
    assert out[1].layout.legend.title.text.endswith("float16 rows")
    f32 = runs.show(H100_REF, cpu, "sparsity", "speedup", "spmv", "float32", 0)
    assert "has no rows of spmv, float32" in " ".join(str(m.children) for m in f32[10])
    twin = _store_rows(store, paradox_rows("CPU: Xeon", 512, dtypes=("float16",)), "CPU: Xeon")
    same = " ".join(str(m.children) for m in runs.show(cpu, twin, "sparsity", "speedup", None, None, 0)[10])
    assert "Like for like: CPU: same device, shape, dtype and method" in same and "Not like" not in same


def test_curves_never_mix_ops_or_dtypes(store):
    """Walk item 2: with the filters on "all", a run of float16 + float32 and SpMV + SpMM
    rows is drawn one op and one dtype per curve, and the legend names which."""
    from tests.unit.test_run_compare import paradox_rows

    rows = paradox_rows("CPU: Xeon", 512)  # float32 speedups are 10x the float16 ones
    run = _store_rows(store, rows, "CPU: Xeon")
    out = runs.show(run, None, "sparsity", "speedup", None, None, 0)
    fig, note = out[1], " ".join(str(m.children) for m in out[10])
    op, dtype = fig.layout.legend.title.text.removesuffix(" rows").split(", ")
    want = rows[(rows["op"] == op) & (rows["dtype"] == dtype)]
    for t in fig.data:
        if t.legendgroup:
            mine = want[want["backend"] == t.name].groupby("sparsity")["speedup"].median()
            assert list(t.y) == pytest.approx(list(mine)), t.name
    assert f"Drawn: the {op}, {dtype} rows only" in note and "Filter op" in note
    assert len([t for t in fig.data if t.legendgroup]) == rows["backend"].nunique()


def test_comparing_with_a_run_that_cannot_be_drawn_says_why(store, tmp_path):
    """Walk item 3: a /your-matrix run has no sparsity column; the note says so."""
    from tests.unit.test_run_compare import paradox_rows

    cpu = _store_rows(store, paradox_rows("CPU: Xeon", 512, dtypes=("float32",), ops=("spmv",)), "CPU: Xeon")
    matrix = store.create_run("your-matrix", meta={"device_name": "CPU: Xeon"})
    store.append(matrix, {"sweep": "your-matrix", "status": "ok", "op": "spmv", "backend": "torch-csr",
                          "dtype": "float32", "median_s": 1e-4, "speedup": 2.0, "matrix_hash": "ab"})
    store.finish(matrix, "done")
    out = runs.show(cpu, matrix, "sparsity", "speedup", None, None, 0)
    note = " ".join(str(m.children) for m in out[10])
    assert "The compared your-matrix run, CPU (run " in note and "adds nothing" in note
    assert "its rows have no sparsity column" in note
    assert {t.legendgroup for t in out[1].data if t.legendgroup} == {"CPU (run " + cpu[-6:] + ", opened)"}


def test_every_shipped_reference_draws_with_a_y_it_has(store):
    """Walk item 4: a reference without "speedup" (the structured-accuracy one) picks a y
    it has; its parameters never show an empty "dtypes="."""
    from engine.bench.reference import references

    for ref in references():
        facts, fig, _rows, _c, _xs, ys, *_r, x, y, _note = runs.show("ref:" + ref.name, None, "sparsity",
                                                                      "speedup", None, None, 0)
        assert y in ys and x in ys and fig.data, (ref.name, x, y)
        assert "dtypes=," not in str(facts) and "dtypes=')" not in str(facts), ref.name
    acc = next(r for r in references("structured-accuracy"))
    facts, fig, *_r, x, y, _note = runs.show("ref:" + acc.name, None, "sparsity", "speedup", None, None, 0)
    assert y == "acc_finetuned" and "dtypes" not in str(facts)
    assert fig.layout.yaxis.title.text == "accuracy after fine-tuning (fraction)"


def test_the_rows_table_shows_only_columns_that_fit(store):
    """Walk item 5: the opened run's table shows the columns that fit 1280 px; the CSV has all."""
    from engine.bench.reference import references

    acc = next(r for r in references("structured-accuracy"))
    _f, _fig, rows, cols, *_ = runs.show("ref:" + acc.name, None, "sparsity", "speedup", None, None, 0)
    assert 0 < len(cols) < len(rows[0])
    assert len(runs.export(1, "ref:" + acc.name)["content"].splitlines()[0].split(",")) == len(rows[0])
