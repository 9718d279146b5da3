"""/isomorphism in a real browser: sliders, spy plot click, equality, downloads."""
import pytest

from tests.browser.conftest import download_csv, wait_for_text

pytestmark = pytest.mark.browser


def test_isomorphism_sliders_click_and_downloads(app_server, page):
    page.goto(app_server + "/isomorphism")
    page.wait_for_selector("#iso-conv-msg .msg")
    # default settings are the paper's case: one channel, no padding -> upper-triangular
    wait_for_text(page, "#iso-conv-msg", "For these settings it is upper-triangular")
    assert "0.00e+00" in page.inner_text("#iso-conv-stats") or "e-1" in page.inner_text("#iso-conv-stats")

    # move the padding slider one step: the matrix is no longer upper-triangular
    page.focus("#iso-conv-padding [role=slider]")
    page.keyboard.press("ArrowRight")
    wait_for_text(page, "#iso-conv-msg", "For these settings it is neither")
    wait_for_text(page, "#iso-conv-spy", "Convolution matrix 256 x 256")
    stats = page.inner_text("#iso-conv-stats")
    diff = float(stats.split("\n")[0])
    assert diff < 1e-10

    # click a row of the spy plot (lower part): its receptive field is lit on the digit
    box = page.locator("#iso-conv-spy .nsewdrag").first.bounding_box()
    page.mouse.click(box["x"] + box["width"] * 0.6, box["y"] + box["height"] * 0.6)
    page.wait_for_function(
        "() => { const t = document.querySelector('#iso-conv-side .gtitle');"
        " return t && /Row (\\d+)/.test(t.textContent) && !t.textContent.startsWith('Row 0:'); }",
        timeout=20_000)
    row = int(page.input_value("#iso-conv-row"))
    assert 100 < row < 256

    # downloads: facts as CSV, the matrix as Matrix Market
    facts = download_csv(page, "#iso-conv-facts-csv-button")
    values = dict(zip(facts["fact"], facts["value"]))
    assert values["triangularity"] == "neither" and int(values["rows"]) == 256
    with page.expect_download() as info:
        page.click("#iso-conv-mtx-button")
    text = open(info.value.path()).read()
    first = text.splitlines()
    assert first[0].startswith("%%MatrixMarket matrix coordinate")
    size_line = next(line for line in first if not line.startswith("%"))
    assert size_line.split()[:2] == ["256", "256"]
    assert int(size_line.split()[2]) == int(values["nnz"])

    # the RNN tab: a block lower-triangular matrix equal to the loop
    page.click("#iso-tab-rnn")
    wait_for_text(page, "#iso-rnn-msg", "block lower-triangular")
    assert float(page.inner_text("#iso-rnn-stats").split("\n")[0]) < 1e-9
