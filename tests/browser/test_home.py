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
