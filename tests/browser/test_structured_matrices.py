"""/structured-matrices in a real browser: target, budget, Pareto, heatmaps, sweep, CSVs."""

import pytest

from tests.browser.conftest import download_csv, wait_for_text, wait_for_job

pytestmark = pytest.mark.browser


def page_module_has_reference() -> bool:
    from engine.structured.sweep import committed_runs

    return bool(committed_runs())


def _pick(page, dropdown_id: str, option_text: str) -> None:
    page.click(f"#{dropdown_id}")
    page.get_by_role("option", name=option_text, exact=True).click()


def _trace_names(page, graph_id: str) -> list[str]:
    return page.evaluate(
        "id => (document.getElementById(id).querySelector('.js-plotly-plot').data || [])"
        ".map(t => t.name)", graph_id)


def test_pick_target_move_budget_run_sweep_and_download(app_server, page):
    page.goto(app_server + "/structured-matrices")
    wait_for_text(page, "#sm-target-label", "Smooth kernel", timeout=60_000)
    page.wait_for_function("() => { const g = document.querySelector('#sm-pareto .js-plotly-plot');"
                           " return g && g.data && g.data.length >= 6; }", timeout=60_000)
    assert "Butterfly" in _trace_names(page, "sm-pareto")
    wait_for_text(page, "#sm-budget-value", "4,096")  # 128^2 / 4

    # the DFT: the butterfly recovers it exactly, low-rank cannot
    _pick(page, "sm-target", "DFT (unitary, complex)")
    wait_for_text(page, "#sm-target-label", "DFT", timeout=60_000)
    pareto = download_csv(page, "#sm-pareto-csv-button")
    bfly = pareto[pareto.family == "butterfly"].iloc[0]
    assert bfly.rel_error < 1e-6
    assert pareto[pareto.family == "lowrank"].rel_error.min() > 0.5
    assert set(pareto.family) == {"lowrank", "monarch", "butterfly", "circulant", "toeplitz", "sparse"}

    # a larger budget: the budget line, the table and the heatmaps follow
    page.focus("#sm-budget [role=slider]")
    page.keyboard.press("Home")  # the smallest exponent: 1/2 of n^2
    wait_for_text(page, "#sm-budget-value", "8,192")
    budget = download_csv(page, "#sm-budget-csv-button")
    assert (budget.params.dropna() <= 8192).all()
    assert "r=32" in set(budget.configuration)
    heat_titles = page.evaluate(
        "() => document.querySelector('#sm-heatmaps .js-plotly-plot').layout.annotations.map(a => a.text)")
    assert any(t.startswith("target") for t in heat_titles) and len(heat_titles) == 8

    # a committed GPU reference, when there is one, is shown before any run
    if page.query_selector("#sm-source") and page_module_has_reference():
        wait_for_text(page, "#sm-timing-msg", "Showing reference")

    # a tiny timing sweep as a background job (the view follows it)
    _pick(page, "sm-sweep-n", "256 x 256")
    page.click("#sm-sweep-job-run")
    wait_for_job(page, "#sm-sweep-job-status", timeout=90_000)
    wait_for_text(page, "#sm-timing-msg", "this session's run")
    page.wait_for_function("() => { const g = document.querySelector('#sm-timing .js-plotly-plot');"
                           " return g && g.data && g.data.length >= 10; }", timeout=30_000)
    rows = download_csv(page, "#sm-sweep-job-csv")
    assert len(rows) == 3 * 8  # 3 batches x 8 operators, float32
    assert set(rows.name) >= {"dense", "lowrank", "monarch", "butterfly", "circulant", "sparse@lowrank"}
    assert (rows[rows.status == "ok"].median_s > 0).all()
    compare = download_csv(page, "#sm-compare-csv-button")
    assert "chapter: hardware efficiency" in compare.columns
    assert compare.loc[compare["matrix type"] == "Low-rank (r=32)", "measured: time (ms)"].iloc[0] > 0
    # the H200 goal at n = 8192 beside a 256 x 256 CPU run: never "ok", always what differs
    goal = download_csv(page, "#sm-reference-csv-button")
    measured = goal[goal["lab speedup"].notna()]
    assert len(measured) and measured.status.str.startswith("not comparable: device H200 vs CPU; n 8192 vs 256").all()
    wait_for_text(page, "#sm-reference-whose", "this session's run")
    # the decision guide links to the lab's pages
    hrefs = page.eval_on_selector_all("#sm-guide a", "els => els.map(e => e.getAttribute('href'))")
    assert {"/structured-sparsity", "/moe", "/attention", "/structured-matrices", "/isomorphism"} <= set(hrefs)


def test_tables_fit_at_1280_and_every_download_gives_rows(app_server, page):
    from tests.browser.layout_checks import assert_tables_fit
    from tests.browser.test_chain_helpers import every_download_gives_rows

    page.goto(app_server + "/structured-matrices")
    wait_for_text(page, "#sm-budget-value", "4,096", timeout=60_000)
    page.wait_for_selector("#sm-budget-data")
    buttons = {"#sm-pareto-csv-button": 20, "#sm-budget-csv-button": 6, "#sm-guide-csv-button": 6,
               "#sm-reference-csv-button": 4}
    if page_module_has_reference():  # a committed run is shown first: its tables fill
        wait_for_text(page, "#sm-timing-msg", "Showing reference")
        page.wait_for_selector("#sm-compare-data")
        buttons.update({"#sm-compare-csv-button": 10, "#sm-pivot-csv-button": 8})
    assert_tables_fit(page)
    every_download_gives_rows(page, buttons)
