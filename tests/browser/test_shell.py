"""The app shell in Chromium at 1280 x 900: every page runs under the strict CSP (no
'unsafe-inline' / 'unsafe-eval' scripts: a blocked script is a console error, which the
page fixture fails on), and the navbar stays on one line (issue 18.13, issue 22.16)."""
import pytest

from tests.browser.conftest import SHOTS

pytestmark = pytest.mark.browser


def _nav_paths(page, url):
    page.goto(url + "/")
    page.wait_for_selector(".nav-links a")
    return page.eval_on_selector_all(".nav-links a", "els => els.map(e => e.getAttribute('href'))")


def test_every_page_runs_under_the_strict_csp(app_server, page):
    resp = page.goto(app_server + "/")
    csp = resp.headers["content-security-policy"]
    script_src = next(d for d in csp.split("; ") if d.startswith("script-src"))
    assert "'unsafe-inline'" not in script_src and "'unsafe-eval'" not in script_src
    assert "'sha256-" in script_src
    violations = []
    page.on("console", lambda m: violations.append(m.text)
            if "Content Security Policy" in m.text or "unsafe-eval" in m.text else None)
    for path in _nav_paths(page, app_server):
        page.goto(app_server + path)
        page.wait_for_load_state("networkidle")
        page.wait_for_selector("#_pages_content > *")
        # the page rendered: Dash's renderer and its inline start-up ran
        assert page.evaluate("() => !!window.dash_clientside && !!document.querySelector('.navbar')")
        graphs = page.locator(".js-plotly-plot")
        if graphs.count():
            graphs.first.wait_for(timeout=30_000)  # plotly.js drew without eval
    assert not violations, violations
    assert not page.console_errors, page.console_errors


def test_navbar_is_one_line_at_1280_px(app_server, page):
    page.goto(app_server + "/")
    page.wait_for_selector(".nav-links a")
    boxes = page.eval_on_selector_all(
        ".navbar .brand, .nav-links a, .nav-device",
        "els => els.map(e => { const r = e.getBoundingClientRect();"
        " return {top: r.top, bottom: r.bottom, right: r.right, text: e.innerText}; })")
    tops = {round(b["top"] + (b["bottom"] - b["top"]) / 2) for b in boxes}
    assert max(tops) - min(tops) <= 4, boxes  # one row: every item centred on one line
    assert all(b["right"] <= 1280 for b in boxes), boxes  # nothing past the window's edge
    # no link hidden in the (scrollable) link row, none under the device label
    fits = page.eval_on_selector(".nav-links", "e => e.scrollWidth <= e.clientWidth")
    assert fits, boxes
    device_left = page.eval_on_selector(".nav-device", "e => e.getBoundingClientRect().left")
    assert max(b["right"] for b in boxes[:-1]) <= device_left, boxes
    height = page.eval_on_selector(".navbar", "e => e.getBoundingClientRect().height")
    assert height < 56, height
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.locator(".navbar").screenshot(path=str(SHOTS / "navbar-1280.png"))


def test_every_page_fits_1280_px_at_its_defaults(app_server, page):
    """A walk of every page at 1280 x 900, as a newcomer first sees it: no table to scroll
    sideways or cut off, nothing wider than the window (a screenshot of each page)."""
    from tests.browser.layout_checks import assert_tables_fit

    page.set_viewport_size({"width": 1280, "height": 900})
    SHOTS.mkdir(parents=True, exist_ok=True)
    checked = {}
    for path in _nav_paths(page, app_server):
        page.goto(app_server + path)
        page.wait_for_load_state("networkidle")
        page.wait_for_selector("#_pages_content > *")
        page.wait_for_function("() => !document.querySelector('[data-dash-is-loading=\"true\"]')",
                               timeout=60_000)
        page.wait_for_timeout(300)
        checked[path] = assert_tables_fit(page, at_least=0)
        name = path.strip("/") or "home"
        page.screenshot(path=str(SHOTS / f"walk-{name}-1280.png"), full_page=True)
    assert len(checked) >= 12, checked
    assert sum(len(t) for t in checked.values()) >= 20, checked  # the tables were there
    assert not page.console_errors, page.console_errors


def test_the_error_bar_is_dismissed_in_the_browser_by_a_click_or_a_new_page(app_server, page):
    """No server round trip: a click on the bar, or another page, hides it (assets/lab.js)."""
    sent = []
    page.on("request", lambda r: sent.append(r.post_data or "")
            if "_dash-update-component" in r.url else None)
    page.goto(app_server + "/")
    page.wait_for_selector(".nav-links a")
    bar = page.locator("#lab-error")

    def show():
        page.evaluate("() => window.dash_clientside.set_props('lab-error', {hidden: false, children: 'boom'})")
        page.wait_for_function("() => !document.getElementById('lab-error').hidden")

    show()
    bar.click()
    page.wait_for_function("() => document.getElementById('lab-error').hidden", timeout=5_000)
    show()
    page.click(".nav-links a[href='/runs']")
    page.wait_for_function("() => document.getElementById('lab-error').hidden", timeout=10_000)
    assert not [s for s in sent if "lab-error" in s], "the bar was dismissed through the server"
