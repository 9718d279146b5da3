"""/attention in a real browser: pick masks, move window and block size, run a tiny sweep."""
import re

import pytest

from tests.browser.conftest import download_csv, wait_for_text, wait_for_job

pytestmark = pytest.mark.browser


def wait_for_content(page, selector: str, text: str, timeout: float = 30_000) -> None:
    """Like wait_for_text, but on textContent (plot titles live in SVG)."""
    page.wait_for_function(
        "([sel, txt]) => { const e = document.querySelector(sel); return e && e.textContent.includes(txt); }",
        arg=[selector, text], timeout=timeout)


def _pick(page, dropdown: str, option: str) -> None:
    page.click(dropdown)
    page.get_by_role("dialog").get_by_role("option", name=option, exact=True).click()


def _fill(page, selector: str, value: str) -> None:
    page.fill(selector, value)
    page.press(selector, "Enter")


def _untick(page, checklist: str, labels: list[str]) -> None:
    for label in labels:
        page.locator(f"{checklist} label").filter(has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")).click()


def test_masks_heatmaps_and_a_tiny_sweep_with_csv(app_server, page):
    page.goto(app_server + "/attention")
    page.wait_for_selector("#attention-token-map .heatmaplayer")
    wait_for_content(page, "#attention-token-map", "Token mask: longformer(w=64, g=4)")
    wait_for_content(page, "#attention-block-map", "Block mask at block 32")

    _pick(page, "#attention-mask", "Sliding window")
    wait_for_content(page, "#attention-token-map", "sliding_window(w=64)")
    assert page.is_hidden("#attention-g-wrap") and page.is_visible("#attention-w-wrap")
    _fill(page, "#attention-w", "16")
    wait_for_content(page, "#attention-token-map", "sliding_window(w=16)")
    # 512 tokens, window 16: kept = sum(min(i + 1, 16)) = 8072 of 262144 pairs
    wait_for_text(page, "#attention-density", "3.1%")
    _pick(page, "#attention-block", "64")
    wait_for_content(page, "#attention-block-map", "Block mask at block 64")
    wait_for_text(page, "#attention-stats", "block density (64)")
    wait_for_content(page, "#attention-weights-mask", "Weights under sliding_window(w=16)")
    wait_for_text(page, "#attention-zoo-table", "bigbird(")
    zoo = download_csv(page, "#attention-zoo-csv-button")
    assert len(zoo) == 10 and "sliding_window(w=16)" in set(zoo["mask"])
    assert zoo.loc[zoo["mask"] == "causal", "mass_kept"].item() == pytest.approx(1.0)

    # a tiny sweep: one length, one mask
    _untick(page, "#attention-sweep-seqs", ["512", "1024"])
    _untick(page, "#attention-sweep-masks", ["BigBird"])
    page.click("#attention-job-run")
    wait_for_job(page, "#attention-job-status", timeout=180_000)
    wait_for_text(page, "#attention-job-status", "4 rows")
    page.wait_for_selector("#attention-crossover .scatterlayer .trace")
    wait_for_content(page, "#attention-crossover", "sliding_window(w=16) · sdpa-masked")
    wait_for_text(page, "#attention-crossover-text", "unavailable")
    frame = download_csv(page, "#attention-job-csv")
    assert len(frame) == 4 and set(frame["seq_len"]) == {256}
    assert list(frame["impl"]) == ["sdpa-causal", "sdpa-dense", "sdpa-masked", "flex"]
    flex = frame[frame["impl"] == "flex"]
    assert flex["status"].str.startswith("unavailable").all() and flex["kernel_ms"].isna().all()
    ok = frame[frame["status"] == "ok"]
    assert len(ok) == 3 and (ok["kernel_ms"] > 0).all() and (ok["device"] == "cpu").all()


def test_tables_fit_at_1280_and_every_download_gives_rows(app_server, page):
    from tests.browser.layout_checks import assert_tables_fit
    from tests.browser.test_chain_helpers import every_download_gives_rows

    page.goto(app_server + "/attention")
    wait_for_text(page, "#attention-zoo-table", "bigbird(")
    buttons = {"#attention-zoo-csv-button": 10}
    if page.locator("#attention-ref-file").count() and _has_reference():
        page.wait_for_selector("#attention-ref-rows-table")
        buttons["#attention-ref-csv-button"] = 1
        if page.locator("#attention-bare-csv-button").count():
            buttons["#attention-bare-csv-button"] = 1
    assert_tables_fit(page)  # the zoo, and the reference run's rows and bare check
    every_download_gives_rows(page, buttons)
    # the job's own CSV: a tiny sweep
    _untick(page, "#attention-sweep-seqs", ["512", "1024"])
    _untick(page, "#attention-sweep-masks", ["BigBird"])
    page.click("#attention-job-run")
    wait_for_job(page, "#attention-job-status", timeout=180_000)
    page.wait_for_selector("#attention-sweep-rows")
    assert_tables_fit(page)
    every_download_gives_rows(page, {"#attention-job-csv": 4})


def _has_reference() -> bool:
    from engine.bench.reference import references

    return bool(references("attention"))


def test_reference_figures_legends_and_titles_fit_and_do_not_overlap(app_server, page):
    """The committed reference run's speedup figure: its legend (one entry a row, below the
    axis title) and titles are whole and clear of each other; the time breakdown's rotated
    mask labels stay clear of its axis title; log ticks read as whole numbers."""
    from tests.browser.figure_layout import assert_figure_fits, figure_boxes

    if not _has_reference():
        pytest.skip("no committed attention reference to draw")
    page.goto(app_server + "/attention")
    page.wait_for_selector("#attention-ref-plot g.legend")
    boxes = assert_figure_fits(page, "#attention-ref-plot", min_legend=3)
    ys = [float(t) for t, b in boxes["ticks"] if b[0] < boxes["plot"][0][0]]
    assert len(ys) >= 3 and all(b > a for a, b in zip(ys, ys[1:])), ys
    page.wait_for_selector("#attention-ref-breakdown g.xtick")
    bars = figure_boxes(page, "#attention-ref-breakdown")
    title = next(b for t, b in bars["titles"] if t.startswith("mask"))
    for text, b in bars["ticks"]:
        assert not any(b[0] < title[2] and title[0] < b[2] and b[1] < title[3] and title[1] < b[3]
                       for _ in [0]), f"tick {text!r} {b} runs into the axis title {title}"
    assert all(b[3] <= bars["figure"][3] for _, b in bars["ticks"])
