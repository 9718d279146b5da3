"""A job's process in a real browser: a normal run never flashes an error on its way
to "done"; a job process killed half way says so (Dash alone would keep "running")."""
import os
import time
import signal

import psutil
import pytest

from tests.browser.conftest import wait_for_job, wait_for_text

pytestmark = pytest.mark.browser

RECORD = """(sel) => { window.__statuses = []; const e = document.querySelector(sel);
  new MutationObserver(() => window.__statuses.push(e.innerText))
    .observe(e, {childList: true, characterData: true, subtree: true}); }"""


def _fill(page, selector: str, value: str) -> None:
    page.fill(selector, value)
    page.press(selector, "Enter")


def _job_processes() -> list[psutil.Process]:
    """Forked job processes: an app.py process whose parent is an app.py process."""
    found = []
    for proc in psutil.Process().children(recursive=True):
        try:
            parent = proc.parent()
            if parent and any("app.py" in c for c in proc.cmdline()) and \
                    any("app.py" in c for c in parent.cmdline()):
                found.append(proc)
        except psutil.Error:
            pass
    return found


def test_finished_job_never_shows_an_error_and_a_killed_one_says_it_died(app_server, page):
    page.goto(app_server + "/paradox")
    page.wait_for_selector("#paradox-job-run")
    page.evaluate(RECORD, "#paradox-job-status")
    _fill(page, "#paradox-size", "64")
    _fill(page, "#paradox-sparsities", "0.5, 0.9")
    _fill(page, "#paradox-repeats", "2")
    page.click("#paradox-job-run")
    wait_for_job(page, "#paradox-job-status", timeout=90_000)
    seen = page.evaluate("window.__statuses")
    assert seen and not [s for s in seen if s.startswith("error")], seen

    _fill(page, "#paradox-size", "128")
    _fill(page, "#paradox-sparsities", ", ".join(str(0.5 + i / 100) for i in range(30)))
    _fill(page, "#paradox-repeats", "30")
    page.click("#paradox-job-run")
    wait_for_text(page, "#paradox-job-status", "running: 2", timeout=60_000)
    jobs, deadline = _job_processes(), time.monotonic() + 10
    while len(jobs) != 1 and time.monotonic() < deadline:  # a busy machine lists it late
        time.sleep(0.2)
        jobs = _job_processes()
    assert len(jobs) == 1, (jobs, page.inner_text("#paradox-job-status"))
    os.kill(jobs[0].pid, signal.SIGKILL)
    wait_for_text(page, "#paradox-job-status", "error: the job's process ended without a result",
                  timeout=30_000)
    assert page.is_enabled("#paradox-job-run") and page.is_disabled("#paradox-job-cancel")
    assert "job-status-error" in page.get_attribute("#paradox-job-status", "class")
