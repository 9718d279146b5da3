"""/paper in a real browser: start a training run, watch curves grow, cancel, download."""
import re

import pytest

from tests.browser.conftest import download_csv, wait_for_text

pytestmark = pytest.mark.browser


def _rows_in_status(text: str) -> int:
    """Rows counted in 'cancelled: N finished rows ...' or 'running: N / M rows ...'."""
    return int(re.search(r"(?:cancelled|running): (\d+)", text).group(1))


def test_paper_start_watch_cancel_download(app_server, page):
    page.goto(app_server + "/paper")
    page.wait_for_selector("#paper-train-job-run")
    assert "lost in extraction" in page.inner_text("#paper-theirs")
    page.fill("#paper-max-train", "32")
    page.focus("#paper-epochs [role=slider]")
    page.keyboard.press("End")                                   # 60 epochs: it will not finish
    page.click("#paper-train-job-run")
    # rows stream in and the curves grow: native and both sparse variants (4 traces each)
    page.wait_for_function(
        "() => { const p = document.querySelector('#paper-curves .js-plotly-plot');"
        " return p && p.data && p.data.length >= 12; }", timeout=40_000)
    wait_for_text(page, "#paper-verdict", "weight-tied sparse model")
    assert "running:" in page.inner_text("#paper-train-job-status")
    page.click("#paper-train-job-cancel")
    wait_for_text(page, "#paper-train-job-status", "cancelled")
    # a progress poll already in flight may still land just after the cancel (Dash), so
    # let it settle, then check that no more rows arrive
    page.wait_for_timeout(1500)
    kept = _rows_in_status(page.inner_text("#paper-train-job-status"))
    page.wait_for_timeout(3000)
    assert _rows_in_status(page.inner_text("#paper-train-job-status")) == kept
    assert not page.is_disabled("#paper-train-job-run")
    rows = download_csv(page, "#paper-train-job-csv")
    assert set(rows["variant"]) == {"native", "tied", "free"}
    assert rows["epoch"].max() >= 1 and (rows["task"] == "vision").all()
    tied = rows[rows["variant"] == "tied"]
    assert tied["max_abs_diff_vs_native"].max() < 1e-2
    table = page.inner_text("#paper-final")
    assert "native epoch" in table and "tied epoch" in table
    # the page's three tables download too (the run's final table, its cost, the paper's own)
    from tests.browser.test_chain_helpers import every_download_gives_rows

    every_download_gives_rows(page, {"#paper-final-csv-button": 1, "#paper-cost-csv-button": 1,
                                     "#paper-theirs-csv-button": 1})


def test_run_form_fields_line_up_at_1280(app_server, page):
    """Fields with a help line under them ("Max training examples", "Seeds per task") sit at
    the same height as their neighbours: label tops and input tops agree within a row."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(app_server + "/paper")
    for sel in ("#paper-lr", "#paper-batch", "#paper-max-train", "#paper-series", "#paper-seed", "#paper-seeds"):
        page.wait_for_selector(sel)
    tops = page.evaluate("""() => ['#paper-lr', '#paper-batch', '#paper-max-train', '#paper-series',
                                    '#paper-seed', '#paper-seeds'].map(s => {
        const box = document.querySelector(s).closest('.control');
        return {id: s, label: box.querySelector('.control-label').getBoundingClientRect().top,
                field: document.querySelector(s).getBoundingClientRect().top}; })""")
    lefts = [page.eval_on_selector(t["id"], "e => e.getBoundingClientRect().left") for t in tops]
    assert lefts == sorted(lefts)        # at 1280 px the six fields share one line
    labels = [t["label"] for t in tops]
    fields = [t["field"] for t in tops]
    assert max(labels) - min(labels) <= 2, tops
    assert max(fields) - min(fields) <= 4, tops
