"""/structured-matrices callbacks called as plain functions."""
from __future__ import annotations

import dash
import numpy as np
import pandas as pd
import pytest

if not dash.page_registry or "pages.structured_matrices" not in dash.page_registry:
    dash.Dash(__name__, use_pages=True, pages_folder="")
from pages import structured_matrices as page  # noqa: E402

from engine.structured import operators, sweep  # noqa: E402

# (target, size, budget exponent) -> the words of the message shown
BAD_ANALYSIS = [
    ("nope", 6, 3, "target: expected one of"),
    ("kernel", 100, 3, "size (log2 n): expected an integer in [6, 9]"),
    ("kernel", 6, 0, "budget: expected an integer in [1, 8]"),
    ("kernel", 6, "x", "budget: expected"),
    (None, None, None, "target: expected"),
]
GOOD_SWEEP = dict(n=256, batches=[1, 16], dtypes=["float32"], rank=8, blocks=4)
BAD_SWEEP = [
    (dict(n=100), "size n: expected one of"),
    (dict(batches=[]), "batches: expected at least one"),
    (dict(batches=[3]), "batch: expected one of"),
    (dict(dtypes=["int8"]), "dtype: expected one of"),
    (dict(rank=0), "rank: expected"),
    (dict(blocks=3), "nblocks: expected"),
    (dict(blocks="many"), "Monarch blocks: expected"),
]


@pytest.fixture(scope="module")
def sweep_rows():
    spec = sweep.SweepSpec(n=64, batches=(1, 4), dtypes=("float32",), rank=4, monarch_blocks=4,
                        repeats=2, max_total_s=0.05)
    return list(sweep.timing_sweep(spec, "cpu", "test cpu"))


def test_analysis_draws_pareto_table_and_heatmaps(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    import plotly.graph_objects as go

    info, pareto, rows, table, _budget_rows, heat = page.update_analysis("dft", 6, 2)
    pareto, heat = go.Figure(pareto), go.Figure(heat)  # cached as JSON-ready dicts
    assert "DFT" in str(info) and f"{64 * 64 // 4:,}" in str(info)
    names = {t.name for t in pareto.data}
    assert {"Low-rank", "Monarch", "Butterfly", "Sparse (magnitude-pruned)"} <= names
    assert pareto.layout.xaxis.title.text.startswith("parameters")
    assert pareto.layout.yaxis.title.text.startswith("relative error")
    bfly = next(r for r in rows if r["family"] == "butterfly")
    assert bfly["rel_error"] < 1e-9
    assert len(table.data) == len(operators.FAMILIES)
    assert all(pd.isna(r["params"]) or r["params"] <= 64 * 64 // 4 for r in table.data)
    titles = [a.text for a in heat.layout.annotations]
    assert titles[0].startswith("target") and len(titles) == len(operators.FAMILIES) + 2
    raw = page.update_analysis("dft", 6, 2)[5]["data"]
    assert all(t["z"]["dtype"] == "f4" for t in raw if isinstance(t.get("z"), dict))  # binary, small


def test_moving_the_budget_reuses_the_cached_fits(tmp_path, monkeypatch):
    """The butterfly fit and the Pareto rows are computed once per (target, n); each budget's
    fits once per (target, n, budget); a repeat is a cache hit, and keys never collide."""
    from engine.structured import pareto as par

    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    page.update_analysis("kernel", 6, 3)
    a_misses, v_misses = par.analysis.cache_info().misses, par.budget_view.cache_info().misses
    page.update_analysis("kernel", 6, 4)  # new budget: the analysis is reused
    assert par.analysis.cache_info().misses == a_misses and par.budget_view.cache_info().misses == v_misses + 1
    hits = par.budget_view.cache_info().hits
    page.update_analysis("kernel", 6, 4)
    assert par.budget_view.cache_info().hits == hits + 1
    assert par.budget_view("kernel", 6, 3).budget != par.budget_view("kernel", 6, 4).budget
    assert par.budget_view("gaussian", 6, 3).panels[0][0] != par.budget_view("kernel", 6, 3).panels[0][0]


def test_budget_changes_only_what_fits(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    tight = page.update_analysis("kernel", 6, 5)[4]  # 128 parameters (the CSV rows)
    loose = page.update_analysis("kernel", 6, 1)[4]
    t = {r["family"]: r for r in tight}
    lo = {r["family"]: r for r in loose}
    assert pd.isna(t["Monarch"]["params"]) and "over budget" in t["Monarch"]["note"]
    assert lo["Monarch"]["params"] > 0
    assert lo["Low-rank"]["relative error"] <= t["Low-rank"]["relative error"]


@pytest.mark.parametrize("target,size,budget,words", BAD_ANALYSIS)
def test_analysis_shows_bad_input_as_a_message(target, size, budget, words):
    info, pareto, rows, table, _budget_rows, heat = page.update_analysis(target, size, budget)
    assert "msg-error" in info.className and words in str(info.children), info.children
    assert rows == [] and words in heat.layout.annotations[0].text
    assert "msg-error" in info.className


@pytest.mark.parametrize("change,words", BAD_SWEEP)
def test_plan_rejects_bad_widgets(change, words):
    with pytest.raises(ValueError, match=words.replace("[", r"\[")):
        page.plan_sweep(**{**GOOD_SWEEP, **change})


def test_plan_sizes_the_job_and_its_rows_run_on_cpu():
    job = page.plan_sweep(**GOOD_SWEEP)
    assert job.total == 2 * 8 and job.params["n"] == 256
    first = next(iter(job.rows))
    assert first["name"] == "dense" and first["device"] == "cpu" and first["median_s"] > 0


def test_timing_view_from_this_run(sweep_rows):
    fig, rows, msgs, compare, _compare_rows, ref, ref_rows, pivot, _pivot_rows, *_whose = page.update_timing(sweep_rows, page.THIS_RUN, "float32")
    assert len(rows) == len(sweep_rows)
    assert fig.layout.xaxis.title.text.startswith("batch")
    assert any("dense" in (t.name or "").lower() for t in fig.data)
    assert compare.data[0]["matrix type"] == "Dense"
    # compared at the largest (n, batch) measured: the float32 circulant row is, the float16 rows are not
    goal = {r["comparison"]: r for r in ref_rows}
    assert goal["Circulant by FFT vs dense fp32"]["lab speedup"] > 0
    assert goal["Low-rank r=32 vs dense"]["lab speedup"] is None
    assert ref.data[2]["lab (x)"] == goal["Circulant by FFT vs dense fp32"]["lab speedup"]
    assert {r["operator"] for r in pivot.data} == {r["name"] for r in sweep_rows}
    dense = next(r for r in pivot.data if r["operator"] == "dense")
    assert dense["batch 1 (x)"] == pytest.approx(1.0) and dense["batch 4 (x)"] == pytest.approx(1.0)


def test_timing_view_empty_and_bad_source():
    fig, rows, msgs, compare, _compare_rows, ref, ref_rows, pivot, _pivot_rows, *_whose = page.update_timing([], page.THIS_RUN, "float32")
    assert rows == [] and "No sweep rows yet" in str(msgs)
    fig, rows, msgs, *_ = page.update_timing([], "/etc/passwd", "float32")
    assert "msg-error" in msgs.className and "expected a committed structured-matrices run" in str(msgs.children)


def test_reference_csv_is_listed_and_loaded(results_dir, sweep_rows):
    """A committed sweep is found by its columns, whatever its name; another sweep's CSV
    (the structured-sparsity timing) is not offered as this page's reference."""
    tmp_path = results_dir
    (tmp_path / "structured").mkdir()
    path = tmp_path / "structured" / "any_name.csv"
    pd.DataFrame(sweep_rows).to_csv(path, index=False)
    pd.DataFrame([{"pattern": "block", "sparsity": 0.9, "median_s": 1.0}]).to_csv(
        tmp_path / "structured_sparsity_timing.csv", index=False)
    assert sweep.committed_runs() == [path]
    assert "test cpu" in sweep.run_label(path)
    fig, rows, msgs, compare, _compare_rows, ref, ref_rows, pivot, _pivot_rows, *_whose = page.update_timing([], str(path), "float32")
    assert len(rows) == len(sweep_rows) and "test cpu" in str(msgs)


def test_committed_reference_is_the_matrices_sweep():
    runs = sweep.committed_runs()
    assert runs and all("structured_sparsity" not in str(p) for p in runs)
    assert all(len(sweep.load_run(p)) > 0 for p in runs)


def test_budget_params():
    from engine.structured import pareto as par

    assert par.budget_params(256, 3) == 8192
    assert par.budget_params(64, 8) == 16


@pytest.mark.parametrize("junk", [5, {"a": 1}, [1, 2], [{"family": "dense"}]])
def test_timing_view_survives_junk_rows(junk):
    fig, rows, msgs, compare, _compare_rows, ref, ref_rows, pivot, _pivot_rows, *_whose = page.update_timing(junk, page.THIS_RUN, "float32")
    text = str(msgs)
    assert "No sweep rows yet" in text or "expected the columns" in text


def test_view_follows_a_run_once_rows_arrive():
    assert page.follow_run([{"name": "dense"}]) == page.THIS_RUN
    assert page.follow_run([]) is dash.no_update


def test_noisy_timings_are_drawn_hollow_with_a_legend_entry(sweep_rows):
    from components import figures_structured as figs
    from engine.bench.measurement import NOISY_LABEL

    rows = [dict(r, noisy=(r["name"] == "lowrank" and r["batch"] == 4)) for r in sweep_rows]
    fig = figs.timing_figure(rows, "float32")
    low = [t for t in fig.data if t.legendgroup == "lowrank"]
    assert len(low) == 2 and all("circle-open" in list(t.marker.symbol) for t in low)
    assert {t.xaxis or "x" for t in low} == {"x", "x2"}  # time panel and speedup panel
    dense = next(t for t in fig.data if t.legendgroup == "dense")
    assert "circle-open" not in list(dense.marker.symbol)
    assert any(t.name == NOISY_LABEL for t in fig.data)


def test_a_speedup_over_a_noisy_dense_time_is_drawn_noisy(sweep_rows):
    from components import figures_structured as figs

    rows = [dict(r, noisy=(r["name"] == "dense" and r["batch"] == 4)) for r in sweep_rows]
    fig = figs.timing_figure(rows, "float32")
    low_time, low_speedup = (t for t in fig.data if t.legendgroup == "lowrank")
    assert "circle-open" not in list(low_time.marker.symbol)  # its own time is steady
    at4 = list(low_speedup.x).index(4)
    assert list(low_speedup.marker.symbol)[at4] == "circle-open"  # ... but dense at batch 4 is not
    assert sum(s == "circle-open" for s in low_speedup.marker.symbol) == 1


def test_tables_say_whose_numbers_and_grey_their_noisy_cells(sweep_rows):
    rows = [dict(r, noisy=(r["name"] == "lowrank" and r["batch"] == 4)) for r in sweep_rows]
    out = page.update_timing(rows, page.THIS_RUN, "float32")
    compare, goal, pivot, compare_whose, goal_whose, pivot_whose = out[3], out[5], out[7], out[9], out[10], out[11]
    assert "this session's run (test cpu; n = 64)" in str(compare_whose.children)
    assert "NVIDIA H200" in str(goal_whose.children) and "test cpu" in str(goal_whose.children)
    low = next(r for r in pivot.data if r["operator"] == "lowrank")
    dense = next(r for r in pivot.data if r["operator"] == "dense")
    style = next(s for s in pivot.style_data_conditional if s["if"]["column_id"] == "batch 4 (x)")
    field = style["if"]["filter_query"].split("}")[0].strip("{")
    assert low[field] == 1 and dense[field] == 0 and style["fontStyle"] == "italic"
    low_cmp = next(r for r in compare.data if r["matrix type"].startswith("Low-rank"))
    assert low_cmp["status"] == "noisy: not a finding"    # the largest batch, 4, is the noisy one
    # the goal figures are H200 at n = 8192: a 64 x 64 CPU run is never "ok" beside them
    assert all(r["status"].startswith(("not comparable", "no row", "unavailable")) for r in goal.data)
