"""/paradox in a real browser: a tiny sweep end to end, plots, CSV download; cancel keeps rows."""
import pytest

from tests.browser.conftest import download_csv, wait_for_text, wait_for_job
from tests.browser.layout_checks import assert_tables_fit

pytestmark = pytest.mark.browser


def _fill(page, selector: str, value: str) -> None:
    page.fill(selector, value)
    page.press(selector, "Enter")


def test_tiny_sweep_end_to_end_with_csv(app_server, page):
    page.goto(app_server + "/paradox")
    page.wait_for_selector("#paradox-job-run")
    _fill(page, "#paradox-sparsities", "0.5, lots")
    wait_for_text(page, "#paradox-notes", "expected numbers")  # bad input: a message, no traceback
    _fill(page, "#paradox-size", "64")
    _fill(page, "#paradox-sparsities", "0.5, 0.95")
    _fill(page, "#paradox-repeats", "2")
    page.click("#paradox-job-run")
    wait_for_job(page, "#paradox-job-status", timeout=60_000)
    wait_for_text(page, "#paradox-job-status", "20 rows")
    page.wait_for_selector("#paradox-speedup .scatterlayer .trace")
    legend = page.eval_on_selector("#paradox-speedup .legend", "e => e.textContent")
    assert "torch-csr" in legend and "theoretical" in legend
    assert "chapter" in page.inner_text("#paradox-chapter").lower()
    frame = download_csv(page, "#paradox-job-csv")
    assert len(frame) == 20
    assert set(frame["backend"]) >= {"torch-dense", "torch-csr", "torch-coo", "torch-bsr", "scipy-csr"}
    ok = frame[frame["status"] == "ok"]
    assert (ok["median_s"] > 0).all() and ok["device_name"].str.startswith("CPU").all()
    assert (ok.loc[ok["backend"] == "torch-dense", "speedup"] == 1.0).all()
    # issue 18 item 13: at 1280 px every table (the 40-column rows too) fits its box
    shown = assert_tables_fit(page, at_least=6)
    assert {"paradox-rows-table", "paradox-storage", "paradox-percall-table"} <= set(shown)
    assert frame.shape[1] > len(page.eval_on_selector_all("#paradox-rows-table th.dash-header", "e => e"))


def test_cancel_keeps_finished_rows(app_server, page):
    page.goto(app_server + "/paradox")
    page.wait_for_selector("#paradox-job-run")
    _fill(page, "#paradox-size", "128")
    _fill(page, "#paradox-sparsities", ", ".join(str(0.5 + i / 100) for i in range(30)))
    _fill(page, "#paradox-repeats", "30")
    page.click("#paradox-job-run")
    wait_for_text(page, "#paradox-job-status", "running: 3", timeout=60_000)
    page.click("#paradox-job-cancel")
    wait_for_text(page, "#paradox-job-status", "cancelled")
    page.goto(app_server + "/runs")
    page.wait_for_selector("#runs-table td")
    for _ in range(30):  # the cancel marks the run as it stops the job
        if "cancelled" in page.inner_text("#runs-table"):
            break
        page.click("#runs-refresh")
        page.wait_for_timeout(1000)
    assert "cancelled" in page.inner_text("#runs-table")
    assert "incomplete" not in page.inner_text("#runs-table")
    cells = page.eval_on_selector_all("#runs-table td", "els => els.map(e => e.innerText)")
    i = cells.index("cancelled")
    assert int(cells[i + 1]) >= 3  # the finished rows were kept


def test_local_n512_beside_the_committed_n8192_reference_names_the_mismatch(app_server, page):
    """The committed H100 run (n = 8192) beside a local CPU run at n = 512: the legend and
    the note say so; every download button on the page gives its table."""
    page.goto(app_server + "/paradox")
    page.wait_for_selector("#paradox-job-run")
    page.wait_for_function("() => document.querySelector('#paradox-ref').innerText.includes('paradox_h100')",
                           timeout=60_000)
    _fill(page, "#paradox-size", "512")
    _fill(page, "#paradox-sparsities", "0.5, 0.99")
    _fill(page, "#paradox-repeats", "2")
    page.click("#paradox-ops input[value='spmm']")  # SpMV only
    page.click("#paradox-job-run")
    wait_for_job(page, "#paradox-job-status", timeout=120_000)
    wait_for_text(page, "#paradox-ref-note", "Not like for like", timeout=60_000)
    note = page.inner_text("#paradox-ref-note")
    assert "H100 80GB HBM3, n = 8192 · this CPU, n = 512" in note
    legend = page.eval_on_selector("#paradox-speedup .legend", "e => e.textContent")
    assert "reference: H100 80GB HBM3, n = 8192" in legend and "this CPU, n = 512" in legend
    assert "the chapter's measured speedups" in legend
    shown = page.eval_on_selector_all("#paradox-speedup .annotation-text", "els => els.map(e => e.textContent)")
    assert "break-even (speedup 1)" in shown
    for button, column in (("#paradox-chapter-csv-button", "chapter's actual"),
                           ("#paradox-breakeven-csv-button", "break_even"),
                           ("#paradox-measured-csv-button", "theoretical (1/density)"),
                           ("#paradox-rows-table-csv-button", "median_s"),
                           ("#paradox-storage-csv-button", "CSR MB"),
                           ("#paradox-percall-table-csv-button", "per call: x dense"),
                           ("#paradox-job-csv", "spec_key")):
        frame = download_csv(page, button)
        assert column in frame.columns, (button, list(frame.columns))
    rows = download_csv(page, "#paradox-rows-table-csv-button")
    assert len(rows) == 10 and set(rows["rows"]) == {512}


def test_per_call_and_kernel_only_figures_side_by_side(app_server, page):
    """Issue 19 item 6: lab-bsr per call beside kernel only, each titled with its timing
    method, and the note gives both numbers."""
    page.goto(app_server + "/paradox")
    page.wait_for_selector("#paradox-percall .gtitle")
    call = page.eval_on_selector("#paradox-percall .gtitle", "e => e.textContent")
    kernel = page.eval_on_selector("#paradox-kernel .gtitle", "e => e.textContent")
    assert call.startswith("per call: eager per call") and kernel.startswith("kernel only: cuda-graph replay")
    left = page.eval_on_selector("#paradox-percall", "e => e.getBoundingClientRect().toJSON()")
    right = page.eval_on_selector("#paradox-kernel", "e => e.getBoundingClientRect().toJSON()")
    assert abs(left["top"] - right["top"]) < 2 and left["right"] <= right["left"]  # side by side
    note = page.inner_text("#paradox-percall-note")
    assert "per call" in note and "x dense, kernel only" in note
