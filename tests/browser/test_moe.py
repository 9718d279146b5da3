"""The /moe page in a real browser: sliders move load, drops and loss; tiny jobs run."""
import pytest

from tests.browser.conftest import download_csv, wait_for_text, wait_for_job

pytestmark = pytest.mark.browser


def _stat(page, name: str) -> str:
    return page.inner_text(f"#moe-stat-{name}")


def _slider_key(page, slider_id: str, key: str) -> None:
    page.focus(f"#{slider_id} [role=slider]")
    page.keyboard.press(key)


def test_moe_sliders_change_capacity_drops_and_loss(app_server, page):
    page.goto(app_server + "/moe")
    page.wait_for_selector("#moe-stat-dropped")
    wait_for_text(page, "#moe-stat-dropped", "of 128")  # 64 tokens x top-2
    assert _stat(page, "capacity") == "20"  # ceil(64 / 8 * 1.25) * 2
    balance_before = float(_stat(page, "balance"))

    # smallest capacity factor: capacity ceil(64 / 8 * 0.25) * 2 = 4, most assignments drop
    _slider_key(page, "moe-cf", "Home")
    wait_for_text(page, "#moe-stat-capacity", "4")
    dropped = int(_stat(page, "dropped").split(" of ")[0])
    assert dropped >= 128 - 8 * 4  # at most E * capacity assignments are kept

    # dropless: nothing dropped, capacity none
    page.click("#moe-dropless input")
    wait_for_text(page, "#moe-stat-capacity", "none")
    assert _stat(page, "dropped").startswith("0 of 128")

    # full skew toward expert 0: the balancing loss rises above its unskewed value
    _slider_key(page, "moe-skew", "End")
    page.wait_for_function(
        "b => parseFloat(document.querySelector('#moe-stat-balance').innerText) > b + 0.3",
        arg=balance_before, timeout=20_000)

    # the per-expert table downloads as CSV, one row per expert
    frame = download_csv(page, "#moe-experts-csv-button")
    assert len(frame) == 8
    assert {"expert", "load", "dropped", "utilisation"} <= set(frame.columns)
    assert frame["dropped"].sum() == 0


def test_moe_tiny_training_and_timing_jobs(app_server, page):
    page.goto(app_server + "/moe")
    page.wait_for_selector("#moe-sweep-job-run")
    # both jobs start at once (the second waits for a free job slot; overheads overlap)
    page.fill("#moe-train-experts", "4")
    page.fill("#moe-train-epochs", "1")
    page.fill("#moe-sweep-d", "32")
    page.fill("#moe-sweep-max", "4")
    page.click("#moe-train-job-run")
    page.click("#moe-sweep-job-run")

    wait_for_job(page, "#moe-train-job-status", timeout=90_000)
    wait_for_text(page, "#moe-train-summary", "balancing alpha=0.1")
    assert page.locator("#moe-train-summary-list li").count() == 2
    frame = download_csv(page, "#moe-train-job-csv")
    assert set(frame["kind"]) == {"epoch", "specialisation", "summary"}
    assert len(frame) == 2 * (1 + 4 + 1)
    assert page.locator("#moe-train-spec .heatmaplayer").count() >= 1

    wait_for_job(page, "#moe-sweep-job-status", timeout=90_000)
    wait_for_text(page, "#moe-sweep-summary", "one dense FFN")
    # 3 batches (1, 2, 4) x 5 variants, drawn as lines
    assert page.locator("#moe-sweep-time .scatterlayer .trace").count() >= 3
    frame = download_csv(page, "#moe-sweep-job-csv")
    assert len(frame) == 15
    assert sorted(frame["batch"].unique()) == [1, 2, 4]
    ok = frame[frame["status"] == "ok"]
    assert (ok["time_ms"] > 0).all()


def test_tables_fit_at_1280_and_every_download_gives_rows(app_server, page):
    from tests.browser.layout_checks import assert_tables_fit
    from tests.browser.test_chain_helpers import every_download_gives_rows

    page.goto(app_server + "/moe")
    page.wait_for_selector("#moe-experts-table")
    page.wait_for_selector("#moe-params-dt")
    assert_tables_fit(page)
    every_download_gives_rows(page, {"#moe-experts-csv-button": 8, "#moe-params-csv-button": 5})
    # both jobs' CSVs, at tiny sizes
    page.fill("#moe-train-experts", "2")
    page.fill("#moe-train-k", "1")
    page.fill("#moe-train-epochs", "1")
    page.fill("#moe-sweep-d", "16")
    page.fill("#moe-sweep-max", "2")
    page.click("#moe-train-job-run")
    page.click("#moe-sweep-job-run")
    wait_for_job(page, "#moe-train-job-status", timeout=90_000)
    wait_for_job(page, "#moe-sweep-job-status", timeout=90_000)
    every_download_gives_rows(page, {"#moe-train-job-csv": 2 * (1 + 2 + 1), "#moe-sweep-job-csv": 10})
    frame = download_csv(page, "#moe-train-job-csv")
    assert (frame["device"] == "cpu").all() and frame["device_name"].str.startswith("CPU").all()
    wait_for_text(page, "#moe-train-summary", "trained on CPU")


def test_sweep_figures_legends_and_titles_fit_and_do_not_overlap(app_server, page):
    """The committed reference is drawn on load: every legend entry, axis title and tick of
    both sweep figures is whole and clear of the others; the ideal-k label sits right of the
    plot, off the data; log ticks read as whole numbers (no bare "2" / "5" inside a decade)."""
    from engine.moe import timing
    from tests.browser.figure_layout import assert_figure_fits

    if not timing.load_reference_sweep():
        pytest.skip("no committed MoE reference to draw")
    page.goto(app_server + "/moe")
    page.wait_for_selector("#moe-sweep-ratio g.legend")
    for sel in ("#moe-sweep-time", "#moe-sweep-ratio"):
        boxes = assert_figure_fits(page, sel, min_legend=5)
        assert any("committed reference" in name for name, _ in boxes["legend"])
        ys = [float(t.replace("k", "e3")) for t, b in boxes["ticks"] if b[0] < boxes["plot"][0][0]]
        assert len(ys) >= 3 and all(b > a for a, b in zip(ys, ys[1:])), ys  # increasing: no repeated "2"
    boxes = assert_figure_fits(page, "#moe-sweep-ratio")
    ideal = [b for text, b in boxes["notes"] if text.startswith("ideal")]
    assert ideal and all(b[0] >= boxes["plot"][0][2] for b in ideal), (ideal, boxes["plot"])
