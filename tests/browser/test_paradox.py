"""/paradox in a real browser: a tiny sweep end to end, plots, CSV download; cancel keeps rows."""
import pytest

from tests.browser.conftest import download_csv, wait_for_text, wait_for_job

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
