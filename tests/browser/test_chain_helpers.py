"""Shared steps of the /generator and /scanner browser tests (no tests here)."""
from tests.browser.conftest import wait_for_job

GD = "id => document.getElementById(id).querySelector('.js-plotly-plot')"


def run_job_and_read(page, prefix: str, fills: dict[str, str], rows: int, figure: str):
    """Fill the inputs, run the job ``prefix``, assert it is done with ``rows`` rows and a
    full progress bar; return the first trace of ``figure`` (its data[0])."""
    for selector, value in fills.items():
        page.fill(selector, value)
    page.click(f"#{prefix}-job-run")
    status = wait_for_job(page, f"#{prefix}-job-status", timeout=60_000)
    assert status.startswith(f"done: {rows} rows"), status
    assert page.get_attribute(f"#{prefix}-job-progress", "value") == str(rows)
    return page.evaluate(f"() => ({GD})('{figure}').data[0]")


def every_download_gives_rows(page, buttons: dict[str, int]) -> None:
    """Click each CSV button; each file must read back with at least the given rows."""
    import pandas as pd

    for selector, min_rows in buttons.items():
        with page.expect_download() as dl:
            page.click(selector)
        frame = pd.read_csv(dl.value.path())
        assert len(frame) >= min_rows and len(frame.columns) > 1, (selector, frame.shape)
