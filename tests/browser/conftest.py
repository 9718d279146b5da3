"""Real-browser fixtures: the app as a subprocess, headless Chromium via Playwright.

One app server for the whole session (own cache folder, own process group, killed
at teardown with everything it forked); a fresh browser context per test that
collects console errors. Chromium comes from Debian (/usr/bin/chromium); see
shared/TESTING.md for the flags.
"""
from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pytest

from tests.apphelpers import start_app, stop_app  # noqa: F401  (tests import them from here)

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SPARSITY_LAB_CHROMIUM", "/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--no-first-run", "--disable-quic"]
SHOTS = Path(os.environ.get("SPARSITY_LAB_SHOTS", ROOT / ".cache" / "screenshots"))


SERVER_LOGS: list[Path] = []  # the session server's log, quoted when a job does not finish


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    cache = tmp_path_factory.mktemp("lab-cache")
    proc, url = start_app(cache)
    SERVER_LOGS.extend(cache.glob("server-*.log"))
    yield url
    stop_app(proc)


def _log_tail(lines: int = 40) -> str:
    tails = []
    for log in SERVER_LOGS:
        try:
            tails.append(f"--- {log.name} ---\n" + "\n".join(log.read_text().splitlines()[-lines:]))
        except OSError:
            pass
    return "\n".join(tails)


def wait_for_job(page, selector: str, timeout: float = 90_000) -> str:
    """Wait until a job's status line ends (done, error or cancelled); assert it is done.

    On a timeout or an error the assertion quotes the status line and the server log.
    """
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    try:
        page.wait_for_function(
            "(sel) => { const e = document.querySelector(sel); return e && "
            "/^(done|error|cancelled)/.test(e.innerText.trim()); }",
            arg=selector, timeout=timeout)
    except PlaywrightTimeout:
        text = page.inner_text(selector)
        raise AssertionError(f"{selector} still says {text!r} after {timeout / 1e3:.0f} s\n"
                             + _log_tail()) from None
    text = page.inner_text(selector).strip()
    assert text.startswith("done"), f"{selector} says {text!r}\n" + _log_tail()
    return text


@pytest.fixture(scope="session")
def browser():
    if not Path(CHROMIUM).exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium chromium-driver)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


@pytest.fixture
def page(browser, request):
    """A page at 1280 x 900 that fails the test on console errors."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    errors: list[str] = []
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.console_errors = errors
    yield pg
    SHOTS.mkdir(parents=True, exist_ok=True)
    try:
        pg.screenshot(path=str(SHOTS / f"{request.node.name}.png"), full_page=True)
    except Exception:
        pass
    context.close()
    assert not errors, f"browser console errors: {errors}"


def wait_for_text(page, selector: str, text: str, timeout: float = 30_000) -> None:
    """Wait until the element's text contains ``text``."""
    page.wait_for_function(
        "([sel, txt]) => { const e = document.querySelector(sel); return e && e.innerText.includes(txt); }",
        arg=[selector, text], timeout=timeout)


def download_csv(page, selector: str) -> pd.DataFrame:
    """Click the download button ``selector`` and read the file the browser got as CSV."""
    with page.expect_download() as dl:
        page.click(selector)
    return pd.read_csv(dl.value.path())


@pytest.fixture
def redis_url(tmp_path):
    """A throwaway redis-server for one test (skipped without redis-server on PATH)."""
    import shutil

    from tests.apphelpers import start_redis

    if shutil.which("redis-server") is None:
        pytest.skip("redis-server not installed (apt-get install redis-server)")
    proc, url = start_redis(tmp_path)
    yield url
    stop_app(proc)

