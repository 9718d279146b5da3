import pytest

pytestmark = pytest.mark.browser


def test_home_shows_device_and_a_card_per_page(app_server, page):
    page.goto(app_server + "/")
    page.wait_for_selector("#home-device")
    assert "CPU" in page.inner_text("#home-device")
    nav = page.inner_text(".nav-links")
    assert "Home" in nav
    # every registered page (but home) has a card that links to it
    links = page.eval_on_selector_all("#home-cards a", "els => els.map(e => e.getAttribute('href'))")
    navlinks = page.eval_on_selector_all(".nav-links a", "els => els.map(e => e.getAttribute('href'))")
    assert sorted(links) == sorted(h for h in navlinks if h != "/")


def test_recent_runs_open_in_runs(app_server, page, tmp_path):
    """Issue 18 item 10: a run listed under "Recent runs" opens in /runs."""
    from tests.browser.conftest import wait_for_text
    from tests.unit.test_bench_store import sample_rows
    from engine.runtime.store import to_csv_text

    csv = tmp_path / "recent.csv"
    csv.write_text(to_csv_text(sample_rows()))
    page.goto(app_server + "/runs")
    page.wait_for_selector("#runs-table")
    page.set_input_files("#runs-upload input[type=file]", str(csv))
    wait_for_text(page, "#runs-msg", "Imported 4 rows")
    run_id = page.inner_text("#runs-msg").split(" as run ")[1].rstrip(". \n")
    page.goto(app_server + "/")
    page.wait_for_selector("#home-runs a")
    href = page.get_attribute("#home-runs a", "href")
    assert href == f"/runs?run={run_id}"
    page.click("#home-runs a")
    wait_for_text(page, "#runs-facts", run_id)
    assert "H100" in page.inner_text("#runs-facts")
    page.wait_for_selector("#runs-plot .scatterlayer .trace")
