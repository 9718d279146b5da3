"""/runs in a real browser: import a CSV, open it, plot it; a bad file is rejected."""
import pandas as pd
import pytest

from tests.browser.conftest import download_csv, wait_for_text
from tests.browser.layout_checks import assert_tables_fit

pytestmark = pytest.mark.browser


def _rows(n_sparsities=2):
    from tests.unit.test_bench_store import sample_rows

    return sample_rows(n_sparsities)


def import_sample_run(app_server, page, path) -> str:
    """Upload 4 paradox rows in /runs; returns the new run's id."""
    from engine.runtime.store import to_csv_text

    path.write_text(to_csv_text(_rows()))
    page.goto(app_server + "/runs")
    page.wait_for_selector("#runs-table")
    page.set_input_files("#runs-upload input[type=file]", str(path))
    wait_for_text(page, "#runs-msg", "Imported 4 rows")
    return page.inner_text("#runs-msg").split(" as run ")[1].rstrip(". \n")


def test_import_csv_open_and_plot(app_server, page, tmp_path):
    import_sample_run(app_server, page, tmp_path / "h100_paradox.csv")
    wait_for_text(page, "#runs-table", "imported")
    page.wait_for_selector("#runs-plot .scatterlayer .trace")
    assert "speedup" in page.eval_on_selector("#runs-plot", "e => e.textContent")
    back = download_csv(page, "#runs-export")
    assert len(back) == 4 and set(back["backend"]) == {"torch-dense", "torch-csr"}
    # issue 18 item 13: the run table and the opened run's rows (a paradox run has 40
    # columns: the main ones are shown, the export has all) fit at 1280 px
    page.wait_for_selector("#runs-rows td")
    assert {"runs-table", "runs-rows"} <= set(assert_tables_fit(page, at_least=2))
    assert len(page.eval_on_selector_all("#runs-rows th.dash-header", "e => e")) < back.shape[1]


def test_bad_csv_rejected_and_nothing_stored(app_server, page, tmp_path):
    bad = tmp_path / "bad.csv"
    frame = pd.DataFrame(_rows())
    frame["median_s"] = frame["median_s"].astype(object)
    frame.loc[1, "median_s"] = "fast"
    frame.to_csv(bad, index=False)
    # a run imported first, so the table has drawn its rows before "before" is read (it
    # fills after the page loads; read at once, it was sometimes still empty)
    import_sample_run(app_server, page, tmp_path / "good.csv")
    wait_for_text(page, "#runs-table", "imported")
    before = page.inner_text("#runs-table")
    page.set_input_files("#runs-upload input[type=file]", str(bad))
    wait_for_text(page, "#runs-msg", "Import rejected")
    assert "median_s" in page.inner_text("#runs-msg")
    assert "bad.csv" not in page.inner_text("#runs-table")
    assert page.inner_text("#runs-table").count("imported") == before.count("imported")
