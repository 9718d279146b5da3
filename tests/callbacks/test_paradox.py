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
    job = paradox.plan(paradox.spec(*GOOD.values()), [])
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


def _spec(**change):
    return paradox.spec(*{**GOOD, **change}.values())


def test_notes_report_unavailable_backends_and_errors(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    notes = paradox.notes(_spec(dtype="float16", size=64, block=16))
    assert any("torch-csr: unavailable: expected dtype" in str(n.children) for n in notes)
    bad = paradox.notes(_spec(sparsities="nope"))
    assert "expected numbers" in str(bad.children)


def test_one_spec_from_the_widgets_feeds_every_other_callback():
    """Only ``spec`` reads the widgets to build; the notes and the storage model take the
    spec it built, and so does the job (checked again for the device it runs on), which
    also gets the widget values to tell a spec older than them (see the next test)."""
    import app
    from dash._callback import GLOBAL_CALLBACK_LIST

    callbacks = GLOBAL_CALLBACK_LIST + app.app._callback_list  # the app takes them over at import
    widgets = {paradox.ID(w) for w in paradox.FORM}
    readers = {cb["output"] for cb in callbacks
               if widgets & {d["id"] for d in cb["inputs"] + cb["state"]}}
    assert readers == {paradox.ID("spec") + ".data", paradox.IDS.result + ".data"}
    job = [cb for cb in callbacks if cb["output"] == paradox.IDS.result + ".data"][0]
    assert paradox.ID("spec") in {d["id"] for d in job["state"]}
    data = _spec()
    assert data["config"]["sparsities"] == [0.5, 0.9] and "memory_budget_bytes" not in data["config"]
    assert paradox.spec_of(data) == paradox.build_config(*GOOD.values())
    assert _spec(size=8)["error"] == "size: expected an integer in [16, 16384], got 8"


# (what a browser could put in the spec store, expected words): checked again, refused
TAMPERED = [
    ({"config": {"sizes": [10 ** 9]}}, "sweep: expected the fields"),
    ({"config": {}}, "sweep: expected the fields"),
    ({"error": 5}, "sweep: expected the fields"),
    ("nonsense", "sweep: expected the fields"),
    (None, "sweep: expected the fields"),
]


@pytest.mark.parametrize("data,words", TAMPERED)
def test_a_tampered_spec_store_is_refused(data, words):
    with pytest.raises(ValueError, match=words):
        paradox.spec_of(data)
    assert words in str(paradox.notes(data).children) and paradox.storage(data)[:2] == ([], [])


def test_a_spec_store_with_out_of_range_values_is_checked_again():
    config = dict(_spec()["config"], sizes=[10 ** 9])
    with pytest.raises(ValueError, match="size: expected an integer in"):
        paradox.spec_of({"config": config})


def test_per_call_and_kernel_only_side_by_side_each_named_by_its_timing_method():
    """Issue 19 item 6: lab-bsr per call (eager) beside kernel only (CUDA-graph replay),
    from the committed GPU run; the note gives both figures, never one alone, and the
    run's shape read from its rows."""
    from engine.bench.bsr_results import KERNEL_ONLY, PER_CALL
    from engine.bench.bsr_runs import side_by_side

    call, kernel, data, columns, note = paradox.per_call(None)
    assert call.layout.title.text == f"per call: {PER_CALL}"
    assert kernel.layout.title.text == f"kernel only: {KERNEL_ONLY}"
    view = side_by_side()
    table = view.table
    first = table.sort_values(["sparsity", "k"], ascending=[False, True]).iloc[0]
    ninety = next(t for t in call.data if t.name == "90% sparsity")
    assert list(ninety.x) == sorted(table.loc[table["sparsity"] == 0.9, "k"])
    assert ninety.y[0] == pytest.approx(first["per call: x dense"])
    assert next(t for t in kernel.data if t.name == "90% sparsity").y[0] == pytest.approx(first["kernel-only: x dense"])
    assert call.layout.yaxis.range == kernel.layout.yaxis.range  # one scale: the two compare by eye
    text = str(note.children)
    assert f"per call {first['per call: x dense']:.2f}x dense" in text
    assert f"kernel only {first['kernel-only: x dense']:.2f}x" in text
    n, block = int(first["n"]), int(first["block"])
    assert f"A {n} x {n}" in text and f"{block} x {block} blocks" in text and view.reference.name in text
    assert len(data) == len(table) and {"per call: x dense", "kernel-only: x dense"} <= {c["id"] for c in columns}
    assert {"n", "block", "dtype", "per call: noisy"} <= {c["id"] for c in columns}


PERCALL_COLUMNS = "device,date,n,k,dtype,block,sparsity,density,method,timing,ms,ms_q25,ms_q75,speedup_vs_dense\n"


def _side_by_side_csv(path, dense_call_q=(0.09, 0.09)):
    """A gpu_bsr_app.py per-call CSV: lab-bsr and dense, both timings, at k = 512 and 2048."""
    from engine.bench.bsr_results import KERNEL_ONLY, PER_CALL

    lines = [PERCALL_COLUMNS]
    for k in (512, 2048):
        for method, timing, ms, (q25, q75) in (("lab-bsr", KERNEL_ONLY, 0.02, (0.02, 0.02)),
                                               ("dense", KERNEL_ONLY, 0.08, (0.08, 0.08)),
                                               ("lab-bsr", PER_CALL, 0.025, (0.025, 0.025)),
                                               ("dense", PER_CALL, 0.09, dense_call_q if k == 2048 else (0.09, 0.09))):
            lines.append(f'GPU X,2026-12-02 04:18 UTC,4096,{k},float16,32,0.9,0.1,{method},"{timing}",'
                         f"{ms},{q25},{q75},1.0\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))


def test_per_call_reads_the_registry_and_draws_noisy_speedups_hollow(results_dir):
    """Any committed side-by-side run (not a fixed path), its shape in the note; a speedup
    whose dense time is noisy is drawn hollow and grey, with the noisy legend entry."""
    from components.figures_common import NOISY_COLOR
    from engine.bench.measurement import NOISY_LABEL

    _side_by_side_csv(results_dir / "elsewhere" / "percall.csv", dense_call_q=(0.08, 0.11))
    call, kernel, data, _cols, note = paradox.per_call(None)
    text = str(note.children)
    assert "elsewhere/percall.csv" in text and "32 x 32 blocks, n = 4096, float16" in text
    assert "A 4096 x 4096" in text and NOISY_LABEL in text
    ninety = next(t for t in call.data if t.name == "90% sparsity")
    assert list(ninety.x) == [512, 2048]
    assert ninety.marker.color[0] != NOISY_COLOR and ninety.marker.color[1] == NOISY_COLOR
    assert ninety.marker.symbol[1].endswith("-open") and not ninety.marker.symbol[0].endswith("-open")
    assert NOISY_LABEL in {t.name for t in call.data}
    kernel90 = next(t for t in kernel.data if t.name == "90% sparsity")   # kernel-only: not noisy
    assert NOISY_COLOR not in kernel90.marker.color and NOISY_LABEL not in {t.name for t in kernel.data}
    assert [r["per call: noisy"] for r in data] == [False, True]


def test_per_call_without_or_with_a_broken_run_says_so(results_dir):
    call, kernel, data, _cols, note = paradox.per_call(None)
    assert "No per-call run committed" in str(note) and data == [] and "No per-call run" in str(call)
    _side_by_side_csv(results_dir / "percall.csv")
    path = results_dir / "percall.csv"
    path.write_text(path.read_text().replace(",sparsity,", ",sparsty,"))
    call, kernel, data, _cols, note = paradox.per_call(None)
    assert "could not be read: percall.csv" in str(note) and "expected columns" in str(note)
    assert "msg-error" in str(note) and data == []


def test_the_speedup_figure_names_the_timing_method_of_its_rows(rows):
    fig = paradox.draw(rows, "spmv", None)[0]
    assert fig.layout.title.text.endswith("· timing: eager per call")


def test_reference_shown_beside_local(rows, results_dir):
    from engine.runtime.store import to_csv_text

    ref_rows = [dict(r, device_name="NVIDIA H100 80GB HBM3") for r in rows]
    (results_dir / "paradox_h100.csv").write_text(to_csv_text(ref_rows))
    opts, value, _ph = paradox.reference_options(None)
    assert value == "paradox_h100.csv" and opts[0]["label"].startswith("paradox_h100.csv (H100 80GB HBM3")
    out = paradox.draw(rows, "spmv", value)
    names = {t.name for t in out[0].data}
    groups = {t.legendgrouptitle.text for t in out[0].data if t.legendgrouptitle.text}
    assert "torch-csr" in names and groups == {"reference: H100 80GB HBM3", "this CPU"}
    assert "Not like for like: H100 80GB HBM3 · this CPU" in str(out[-1].children)


def test_a_reference_of_another_size_names_the_mismatch(rows, results_dir):
    """A local n = 32 run beside a committed n = 8192 run: legend and note give both n."""
    from engine.runtime.store import to_csv_text

    big = [dict(r, rows=8192, cols=8192, device_name="NVIDIA H100 80GB HBM3") for r in rows]
    (results_dir / "paradox_h100.csv").write_text(to_csv_text(big))
    out = paradox.draw(rows, "spmv", "paradox_h100.csv")
    groups = {t.legendgrouptitle.text for t in out[0].data if t.legendgrouptitle.text}
    assert groups == {"reference: H100 80GB HBM3, n = 8192", "this CPU, n = 32"}
    assert "H100 80GB HBM3, n = 8192 · this CPU, n = 32" in str(out[-1].children)
    with pytest.raises(ValueError, match="expected a committed paradox run"):
        paradox.reference_beside(pd.DataFrame(rows), "spmv", "../../etc/passwd")


def test_the_chapters_speedups_and_break_even_label_on_the_speedup_figure(rows):
    import math

    fig = paradox.draw(rows, "spmv", None)[0]
    chapter = next(t for t in fig.data if t.name.startswith("the chapter's measured speedups"))
    assert list(chapter.y) == [1.1, 1.8, 2.3, 3.5] and list(chapter.x) == pytest.approx([2, 10, 20, 100])
    label = next(a for a in fig.layout.annotations if a.text.startswith("break-even"))
    assert fig.layout.yaxis.type == "log" and label.y == pytest.approx(math.log10(1.0))


def test_noisy_rows_are_drawn_hollow(rows):
    noisy = [dict(r, noisy=True) if r["backend"] == "torch-csr" else r for r in rows]
    fig = paradox.draw(noisy, "spmv", None)[0]
    csr = next(t for t in fig.data if t.name == "torch-csr")
    assert all(s.endswith("-open") for s in csr.marker.symbol)
    assert any(t.name == "noisy (IQR/median > 0.1)" for t in fig.data)


def test_a_speedup_over_a_noisy_dense_time_is_drawn_noisy(rows):
    """Speedup and efficiency divide by the dense time: a point is noisy when its dense row
    is (measurement.ratio_noisy); bandwidth is not a ratio and keeps the row's own flag."""
    from components.figures_common import NOISY_COLOR

    steady = [dict(r, noisy=r["backend"] == "torch-dense" and r["sparsity"] == 0.9) for r in rows]
    speedup, efficiency, bandwidth = paradox.draw(steady, "spmv", None)[:3]
    for fig in (speedup, efficiency):
        csr = next(t for t in fig.data if t.name == "torch-csr")
        assert [c == NOISY_COLOR for c in csr.marker.color] == [s == 0.9 for s in csr.customdata]
    csr = next(t for t in bandwidth.data if t.name == "torch-csr")
    assert NOISY_COLOR not in csr.marker.color
    dense = next(t for t in bandwidth.data if t.name == "torch-dense")
    assert [c == NOISY_COLOR for c in dense.marker.color] == [s == 0.9 for s in dense.customdata]


def test_storage_model_table_comes_from_the_engine():
    from engine.bench.sweeps import storage_table
    from engine.sparse.formats import storage_bytes

    data, columns, note = paradox.storage(_spec(size=1024, block=16, sparsities="0.5, 0.99"))
    assert [r["sparsity"] for r in data] == ["50%", "99%"] and "CSR MB" in {c["id"] for c in columns}
    assert data[0]["dense MB"] == pytest.approx(storage_bytes("dense", 1024, 1024, 0.5, "float32", 16) / 2**20)
    assert data == storage_table(1024, "float32", 16, (0.5, 0.99)).to_dict("records")
    assert "CSR needs fewer bytes than dense only above" in note
    assert "size: expected" in str(paradox.storage(_spec(size=8))[2].children)


_junk = __import__("hypothesis.strategies", fromlist=["x"])
_values = _junk.recursive(_junk.none() | _junk.booleans() | _junk.integers() | _junk.floats() | _junk.text(max_size=5),
                          lambda c: _junk.lists(c, max_size=3) | _junk.dictionaries(_junk.text(max_size=3), c,
                                                                                     max_size=3), max_leaves=6)


@__import__("hypothesis").settings(max_examples=150, deadline=None)
@__import__("hypothesis").given(_junk.sampled_from(sorted(_spec()["config"])), _values)
def test_any_value_in_the_spec_store_is_a_config_or_a_message(key, value):
    """The store's data comes back from the browser: whatever it holds, the config is
    rebuilt through the one check, or refused with "expected ... got ..." (no traceback)."""
    data = {"config": dict(_spec()["config"], **{key: value})}
    try:
        paradox.spec_of(data)
    except ValueError as exc:
        assert "expected" in str(exc)


def test_a_noisy_break_even_is_drawn_noisy_and_named_so():
    """A break-even interpolated from a noisy speedup is a hollow grey cross named "from noisy
    timings" (and its table row says noisy), never a coloured finding."""
    from components.figures_common import NOISY_COLOR

    base = {"status": "ok", "op": "spmv", "dtype": "float32", "device_name": "CPU: test", "rows": 512,
            "cols": 512, "k": 1, "pattern": "uniform", "block": 16, "format": "coo", "method": "eager per call"}
    rows = []
    for s, v in ((0.5, 0.02), (0.9, 0.15), (0.95, 0.1), (0.99, 1.4)):
        common = dict(base, sparsity=s, density=1 - s, theoretical=1 / (1 - s), gbs=1.0, median_s=1e-3)
        rows += [dict(common, backend="torch-dense", speedup=1.0, efficiency=1 - s, noisy=False),
                 dict(common, backend="torch-coo", speedup=v, efficiency=v * (1 - s), noisy=s == 0.95)]
    out = paradox.draw(rows, "spmv", None)
    cross = next(t for t in out[0].data if t.name.startswith("break-even torch-coo"))
    assert cross.name.endswith(", from noisy timings)") and list(cross.marker.color) == [NOISY_COLOR]
    assert list(cross.marker.symbol) == ["x-open"]
    assert out[5][0]["noisy"] is True and "from noisy timings" in out[5][0]["note"]
    steady = paradox.draw([dict(r, noisy=False) for r in rows], "spmv", None)
    cross = next(t for t in steady[0].data if t.name.startswith("break-even torch-coo"))
    assert "noisy" not in cross.name and NOISY_COLOR not in list(cross.marker.color)


def test_unsupported_rows_show_a_blank_noisy_cell(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    rows = list(paradox.plan(_spec(dtype="float16", size=64, block=16,
                                   backends=["torch-dense", "torch-csr", "torch-coo"]), []).rows)
    table = paradox.draw(rows, "spmv", None)[9]
    skipped = [r for r in table if r["status"] == "unsupported"]
    assert skipped and all(r["noisy"] is None for r in skipped)
    assert all(r["noisy"] in (True, False) for r in table if r["status"] == "ok")


def test_no_backend_in_common_with_the_reference_is_said(rows, results_dir):
    """This run drew torch-coo only, the reference torch-csr only: the note says they share
    no backend and names what each ran."""
    from engine.runtime.store import to_csv_text

    ref_rows = [dict(r, device_name="NVIDIA H100 80GB HBM3") for r in rows if r["backend"] != "torch-coo"]
    (results_dir / "paradox_h100.csv").write_text(to_csv_text(ref_rows))
    local = [r for r in rows if r["backend"] != "torch-csr"]
    note = str(paradox.draw(local, "spmv", "paradox_h100.csv")[-1].children)
    assert "No backend in common: this CPU ran torch-coo, the reference (H100 80GB HBM3) torch-csr" in note
    shared = str(paradox.draw(rows, "spmv", "paradox_h100.csv")[-1].children)
    assert "No backend in common" not in shared


def test_the_job_runs_what_the_widgets_show_even_before_the_spec_store_caught_up():
    """A Run click right after an edit reaches the job with the store of the values before
    the edit: the job builds the spec again, with the same ``spec``, from what is shown."""
    stale = _spec(size=64)
    shown = {**GOOD, "size": 128}
    job = paradox.plan(stale, False, *shown.values())
    assert job.params["size"] == 128
    fresh = paradox.plan(_spec(size=128), False, *shown.values())
    assert fresh.params == job.params and fresh.total == job.total
    with pytest.raises(ValueError, match="size: expected an integer"):
        paradox.plan(stale, False, *{**GOOD, "size": 8}.values())
