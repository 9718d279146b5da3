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
    from tests.browser.test_runs import import_sample_run

    run_id = import_sample_run(app_server, page, tmp_path / "recent.csv")
    page.goto(app_server + "/")
    page.wait_for_selector("#home-runs a")
    href = page.get_attribute("#home-runs a", "href")
    assert href == f"/runs?run={run_id}"
    page.click("#home-runs a")
    wait_for_text(page, "#runs-facts", run_id)
    assert "H100" in page.inner_text("#runs-facts")
    page.wait_for_selector("#runs-plot .scatterlayer .trace")
