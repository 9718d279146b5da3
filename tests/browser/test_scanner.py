"""/scanner in a real browser: heatmap, presets, noise, modes, clock, CSV."""
import pytest

from tests.browser.conftest import download_csv, wait_for_text
from tests.browser.test_chain_helpers import every_download_gives_rows, run_job_and_read

pytestmark = pytest.mark.browser

GD = "id => document.getElementById(id).querySelector('.js-plotly-plot')"


def _set_noise(page, keys: list[str]) -> None:
    """Move the noise slider with the keyboard, as a person can (Home, PageUp = +0.1, End)."""
    thumb = page.locator("#scan-noise [role='slider']")
    thumb.focus()
    for key in keys:
        thumb.press(key)


def test_scanner_heatmap_noise_modes_clock_and_csv(app_server, page):
    # the chain arrives from the generator's link (URL query)
    page.goto(app_server + "/scanner?preset=dense&n_phases=12&k=16&activation=identity")
    page.wait_for_selector("#scan-agree")
    assert page.input_value("#scan-n-phases") == "12"
    page.wait_for_function(f"() => ({GD})('scan-heat') && ({GD})('scan-heat').data[0].z.length === 12")

    # the orthogonal preset agrees everywhere in transpose mode, certified
    page.click("#scan-scenario >> text='orthogonal + identity'")
    wait_for_text(page, "#scan-agree", "100%")
    wait_for_text(page, "#scan-recovered", "100%")
    assert "Nothing is lost" in page.inner_text("#scan-why")
    z = page.evaluate(f"() => ({GD})('scan-heat').data[0].z.flat()")
    assert len(z) == 8 * 7 and max(z) < 0  # every cell on the green side
    assert "It does not" not in page.inner_text("#scan-vjp-claim")

    # noise: the measured error grows, and the bound with it
    err0 = float(page.inner_text("#scan-err"))
    _set_noise(page, ["Home", "PageUp"])  # 0.1
    page.wait_for_function(f"() => parseFloat(document.getElementById('scan-err').innerText) > {err0}")
    _set_noise(page, ["Home"])
    wait_for_text(page, "#scan-agree", "100%")

    # relu + wide W diverges and the page says why; the VJP claim stops at the activation
    page.click("#scan-scenario >> text='relu + wide W'")
    wait_for_text(page, "#scan-why", "relu set")
    assert "rank 8 < 24" in page.inner_text("#scan-why")
    assert "It does not for sparse" in page.inner_text("#scan-vjp-claim")

    # switch modes: pinv, then tikhonov
    page.click("#scan-mode >> text='pinv'")
    wait_for_text(page, "#scan-why", "phases share")
    page.click("#scan-mode >> text='tikhonov'")
    page.wait_for_function(f"() => ({GD})('scan-heat') !== null")
    assert "Cannot compute" not in page.inner_text("#scan-error")

    # sparse recovery: omp brings the 2-sparse vector back from 12 outputs of 24 entries
    page.click("#scan-scenario >> text='sparse recovery (F < K)'")
    page.click("#scan-mode >> text='omp'")
    wait_for_text(page, "#scan-recovered", "100%")
    page.click("#scan-scenario >> text='relu + wide W'")
    page.click("#scan-mode >> text='transpose'")
    wait_for_text(page, "#scan-phase-text", "/ 16")

    # the reverse pass animates with the clock, in the pipeline and on the transpose graph
    # (which takes its elements once it is on screen)
    page.locator("#scan-cyto").scroll_into_view_if_needed()
    page.wait_for_function("() => { const c = document.getElementById('scan-cyto')._cyreg;"
                           " return c && c.cy.nodes('.L6.within').length === 6; }")
    page.click("#scan-fwd")
    wait_for_text(page, "#scan-phase-text", "phase 1 / 16")
    assert page.evaluate("() => document.querySelector('#scan-pipeline svg').dataset.phase") == "1"
    # the graph's highlight is drawn by the clock's next animation frame, after the phase text
    page.wait_for_function("() => document.getElementById('scan-cyto')._cyreg.cy.nodes('.hot').length > 0")
    graph = page.evaluate("""() => { const cy = document.getElementById('scan-cyto')._cyreg.cy;
        const e = cy.edges()[0];
        return {labels: cy.nodes('.layer-label').map(n => n.data('label').split('\\n')[0]),
                back: e.source().position('x') > e.target().position('x'),
                hot: cy.nodes('.hot').length}; }""")
    assert graph["labels"][0] == "1 clock" and graph["labels"][6] == "7 assemble (M)"
    assert graph["back"] and graph["hot"] > 0
    page.click("#scan-play")
    page.wait_for_function("() => !document.getElementById('scan-phase-text').innerText.startsWith('phase 1 ')")
    page.click("#scan-play")

    # agreement CSV
    frame = download_csv(page, "#scan-csv-button")
    assert list(frame.columns) == ["phase", "pattern", "column", "rel_error", "bound", "verdict",
                                   "agree", "cosine"]
    assert (frame["verdict"] == "agrees within its bound").all()
    assert len(frame) == 16 * 7
    assert set(frame["column"]) == {"clock", "lookup", "select", "sparse", "activation",
                                    "propagate", "assemble"}

    # the phase-transition map runs as a job with progress, and fills the heatmap
    z = run_job_and_read(page, "scan-pt", {"#scan-pt-k": "8", "#scan-pt-trials": "2"}, 32,
                         "scan-pt-figure")["z"]
    assert len(z) == 4 and len(z[0]) == 8
    rows = download_csv(page, "#scan-pt-job-csv")
    assert len(rows) == 32 and {"omp_success_rate", "pinv_success_rate"} <= set(rows.columns)


def test_every_download_button_of_the_scanner(app_server, page):
    page.goto(app_server + "/scanner")
    page.wait_for_selector("#scan-recovery .dash-cell")
    every_download_gives_rows(page, {"#scan-csv-button": 16 * 7, "#scan-summary-csv-button": 7,
                                     "#scan-cond-csv-button": 3, "#scan-recovery-csv-button": 16})


def test_transpose_graph_takes_new_elements_when_it_is_on_screen(app_server, page):
    """Off screen, the graph keeps its elements while the chain changes (laying them out was
    a third of the browser's work per change); scrolled into view, it shows the new chain."""
    count = ("const e = document.getElementById('scan-cyto'), c = e && e._cyreg;"
             " const n = c ? c.cy.nodes().length : -1;")
    page.goto(app_server + "/scanner?k=16")
    page.wait_for_function("() => { " + count + " return n > 0; }")
    page.wait_for_timeout(500)  # the observer has seen the graph below the fold
    before = page.evaluate("() => { " + count + " return n; }")
    why = page.inner_text("#scan-why")
    page.fill("#scan-k", "20")
    page.keyboard.press("Enter")
    # the page above shows the chain of K = 20
    page.wait_for_function("w => document.getElementById('scan-why').innerText !== w", arg=why)
    page.wait_for_timeout(500)
    assert page.evaluate("() => { " + count + " return n; }") == before
    page.locator("#scan-cyto").scroll_into_view_if_needed()
    page.wait_for_function("b => { " + count + " return n > b; }", arg=before)  # K = 20: more nodes
