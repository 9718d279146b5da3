"""/structured-sparsity in a real browser: sliders, a tiny timing sweep, a tiny accuracy run."""
import pytest

from engine.bench.pattern_sweep import default_block_backends
from tests.browser.layout_checks import assert_tables_fit
from tests.browser.conftest import SHOTS, download_csv, wait_for_text, wait_for_job
from tests.browser.test_chain_helpers import every_download_gives_rows

pytestmark = pytest.mark.browser


def wait_for_content(page, selector: str, text: str, timeout: float = 30_000) -> None:
    """Like wait_for_text, but on textContent (plot titles live in SVG)."""
    page.wait_for_function(
        "([sel, txt]) => { const e = document.querySelector(sel); return e && e.textContent.includes(txt); }",
        arg=[selector, text], timeout=timeout)


def _untick(page, checklist: str, labels: list[str]) -> None:
    for label in labels:
        page.locator(f"{checklist} label").filter(has_text=f" {label} ").first.click()


def _fill(page, selector: str, value: str) -> None:
    page.fill(selector, value)
    page.press(selector, "Enter")


TABS = {"One matrix, three patterns": "patterns", "Timing against dense": "timing",
        "The lab's kernel (lab-bsr)": "kernel", "Accuracy cost": "accuracy"}


def _tab(page, label: str) -> None:
    page.click(f"#ss-tab-{TABS[label]}")
    wait_for_content(page, f"#ss-tab-{TABS[label]}", label)


def test_sliders_update_the_three_patterns(app_server, page):
    page.goto(app_server + "/structured-sparsity")
    page.wait_for_selector("#ss-heatmaps .heatmaplayer")
    wait_for_content(page, "#ss-heatmaps", "block 16x16: 75.0 % zeros")
    wait_for_content(page, "#ss-heatmaps", "2:4: 50.0 % zeros")
    page.focus("#ss-block [role=slider]")
    page.keyboard.press("ArrowRight")
    wait_for_content(page, "#ss-heatmaps", "block 32x32: 75.0 % zeros")
    page.focus("#ss-sparsity [role=slider]")
    page.keyboard.press("End")
    wait_for_content(page, "#ss-heatmaps", "unstructured: 99.0 % zeros")
    wait_for_content(page, "#ss-heatmaps", "block 32x32: 98.4 % zeros")  # 1 tile of 64 kept
    page.locator("#ss-nm label").filter(has_text="1:4").click()
    wait_for_content(page, "#ss-heatmaps", "1:4: 75.0 % zeros")
    wait_for_text(page, "#ss-pattern-table", "block 32x32")
    assert page.locator("#ss-heatmaps .heatmaplayer .hm").count() == 6  # whole + corner, per pattern
    # a large matrix is drawn downsampled, and the figure says so
    page.click("#ss-size")
    page.get_by_role("option", name="2048 x 2048", exact=True).click()
    wait_for_content(page, "#ss-heatmaps", "2048 x 2048 as 128 x 128 cells of 16 x 16", timeout=60_000)
    wait_for_content(page, "#ss-heatmaps", "fraction kept per 16x16 cell")


def test_tabs_keep_the_page_short_at_1280(app_server, page):
    page.goto(app_server + "/structured-sparsity")
    page.wait_for_selector("#ss-heatmaps .heatmaplayer")
    heights = {}
    for label in ("One matrix, three patterns", "Timing against dense", "The lab's kernel (lab-bsr)",
                  "Accuracy cost"):
        _tab(page, label)
        page.wait_for_timeout(800)
        heights[label] = page.evaluate("() => document.documentElement.scrollHeight")
        wide = page.evaluate("() => document.documentElement.scrollWidth")
        assert wide <= 1280, f"{label}: {wide} px wide at 1280"
    assert max(heights.values()) < 3500, heights  # one tab at a time (was ~6,000 px in all)


def test_tiny_timing_sweep_and_accuracy_run_with_csv(app_server, page):
    page.goto(app_server + "/structured-sparsity")
    _tab(page, "Timing against dense")
    page.wait_for_selector("#ss-time-job-run")
    page.click("#ss-t-size")
    page.get_by_role("dialog").get_by_role("option", name="64", exact=True).click()
    _untick(page, "#ss-t-blocks", ["16", "32"])
    _untick(page, "#ss-t-sparsities", ["0.75", "0.95"])
    _fill(page, "#ss-t-repeats", "2")
    page.click("#ss-time-job-run")
    wait_for_job(page, "#ss-time-job-status", timeout=90_000)
    expected = 2 * len(default_block_backends()) + 2
    wait_for_text(page, "#ss-time-job-status", f"{expected} rows")
    page.wait_for_selector("#ss-speedup .scatterlayer .trace")
    wait_for_content(page, "#ss-speedup", "torch-bsr b4")
    wait_for_content(page, "#ss-nm-plot", "needs an NVIDIA GPU (sm80+)")
    frame = download_csv(page, "#ss-time-job-csv")
    assert len(frame) == expected and set(frame["block"]) == {4}
    nm = frame[frame["backend"] == "torch-2:4"]
    assert list(nm["status"]) == ["unsupported"] and nm["median_s"].isna().all()
    ok = frame[frame["status"] == "ok"]
    assert (ok["median_s"] > 0).all() and ok["device_name"].str.startswith("CPU").all()

    _tab(page, "Accuracy cost")
    _untick(page, "#ss-a-models", ["CNN"])
    _untick(page, "#ss-a-patterns", ["block 4x4", "block 16x16"])
    _untick(page, "#ss-a-sparsities", ["75 %", "90 %"])
    _fill(page, "#ss-a-epochs", "2")
    _fill(page, "#ss-a-finetune", "1")
    page.click("#ss-acc-job-run")
    wait_for_job(page, "#ss-acc-job-status", timeout=90_000)
    wait_for_text(page, "#ss-acc-job-status", "3 rows")
    page.wait_for_selector("#ss-acc-plot .barlayer .trace")
    wait_for_text(page, "#ss-acc-table", "unstructured")
    assert "ResNet-50" in page.inner_text("#ss-chapter")
    acc = download_csv(page, "#ss-acc-job-csv")
    assert list(acc["pattern"]) == ["dense", "unstructured", "2:4"]
    assert (acc["acc_dense"] > 0.3).all()


def test_lab_bsr_benchmark_section_switches_timing_and_downloads(app_server, page):
    page.goto(app_server + "/structured-sparsity")
    _tab(page, "The lab's kernel (lab-bsr)")
    page.wait_for_selector("#ss-bsr-plot .scatterlayer .trace")
    wait_for_content(page, "#ss-bsr-plot", "lab goals (64x64 blocks)")
    wait_for_text(page, "#ss-bsr-note", "goals this run measures met at 64 x 64 blocks")
    wait_for_text(page, "#ss-bsr-targets", "GPU time (CUDA-graph replay")
    wait_for_text(page, "#ss-bsr-note", "cuda-graph replay (bsr_bench.csv)")
    assert set(download_csv(page, "#ss-bsr-csv-button")["method"]) == {"dense", "torch-bsr", "lab-bsr"}
    page.locator("#ss-bsr-timing label").filter(has_text="call by call").click()
    wait_for_text(page, "#ss-bsr-targets", "call by call")
    wait_for_content(page, "#ss-bsr-plot", "call by call")
    # the kernel-only run's own per-call timings, named by device, date and method, in note and title
    from engine.bench.bsr_runs import kernel_only_run, per_call_run

    call = per_call_run(like=kernel_only_run())
    wait_for_text(page, "#ss-bsr-note", call.label)
    wait_for_content(page, "#ss-bsr-plot", call.reference.date)
    page.screenshot(path=str(SHOTS / "structured-sparsity-bsr-call-by-call.png"), full_page=True)
    goals = download_csv(page, "#ss-bsr-targets-csv-button")
    assert len(goals) == 4 and goals["timing"].str.startswith("call by call").all()
    rows = download_csv(page, "#ss-bsr-csv-button")
    assert set(rows["timing"]) == {"eager per call"} and set(rows["date"]) == {call.reference.date}
    # the committed per-call run: both timing methods side by side, each named
    wait_for_text(page, "#ss-bsr-percall", "per call: lab-bsr (us)")
    wait_for_text(page, "#ss-bsr-percall", "kernel-only: lab-bsr (us)")
    from engine.bench.bsr_results import KERNEL_ONLY

    wait_for_text(page, "#ss-bsr-percall-note", f"kernel-only = {KERNEL_ONLY}")
    side = download_csv(page, "#ss-bsr-percall-csv-button")
    assert {"kernel-only: lab-bsr (us)", "per call: lab-bsr (us)",
            "kernel-only: x dense", "per call: x dense"} <= set(side.columns)
    assert sorted(side["k"].unique()) == [512, 2048, 8192]
    page.get_by_text("Per call and kernel-only, side by side").scroll_into_view_if_needed()
    page.evaluate("window.scrollBy(0, -120)")  # below the fixed navbar
    page.screenshot(path=str(SHOTS / "structured-sparsity-bsr-percall.png"))


def test_a_cancelled_sweep_is_labelled_not_passed_off_as_complete(app_server, page):
    page.goto(app_server + "/structured-sparsity")
    _tab(page, "Timing against dense")
    page.wait_for_selector("#ss-time-job-run")
    _fill(page, "#ss-t-repeats", "40")
    page.click("#ss-time-job-run")
    page.wait_for_function("() => { const e = document.querySelector('#ss-time-job-status');"
                           " return e && /running: [1-9]/.test(e.innerText); }", timeout=90_000)
    page.click("#ss-time-job-cancel")
    wait_for_text(page, "#ss-time-job-status", "cancelled")
    wait_for_content(page, "#ss-speedup", "(cancelled: ", timeout=30_000)
    text = page.text_content("#ss-speedup")
    import re

    done, total = map(int, re.search(r"cancelled: (\d+) of (\d+) rows", text).groups())
    assert 0 < done < total


def test_no_table_scrolls_sideways_at_1280_and_every_download_gives_rows(app_server, page):
    """At 1280 x 900 every table of every tab fits its column, and every CSV button gives rows
    (the timing tables from the committed reference run, the accuracy ones after a tiny run)."""
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(app_server + "/structured-sparsity")
    page.wait_for_selector("#ss-heatmaps .heatmaplayer")
    wait_for_text(page, "#ss-pattern-table", "unstructured")
    _tab(page, "Timing against dense")
    wait_for_text(page, "#ss-time-table", "reference: H100")
    wait_for_text(page, "#ss-breakeven", "lab-bsr")
    _tab(page, "The lab's kernel (lab-bsr)")
    wait_for_text(page, "#ss-bsr-targets", "GPU time")
    _tab(page, "Accuracy cost")
    _untick(page, "#ss-a-models", ["CNN"])
    _untick(page, "#ss-a-patterns", ["unstructured", "block 4x4", "block 16x16"])
    _fill(page, "#ss-a-epochs", "1")
    _fill(page, "#ss-a-finetune", "0")
    page.click("#ss-acc-job-run")
    wait_for_job(page, "#ss-acc-job-status", timeout=90_000)
    wait_for_text(page, "#ss-acc-table", "2:4")
    for label, tab in TABS.items():
        _tab(page, label)
        page.wait_for_timeout(500)
        assert_tables_fit(page)
        page.screenshot(path=str(SHOTS / f"structured-sparsity-{tab}-1280.png"), full_page=True)
    every_download_gives_rows(page, {"#ss-acc-csv-button": 2, "#ss-acc-job-csv": 2,
                                     "#ss-chapter-csv-button": 4})
    _tab(page, "One matrix, three patterns")
    every_download_gives_rows(page, {"#ss-pattern-csv-button": 3})
    _tab(page, "Timing against dense")
    every_download_gives_rows(page, {"#ss-breakeven-csv-button": 3, "#ss-time-csv-button": 20})
    _tab(page, "The lab's kernel (lab-bsr)")
    every_download_gives_rows(page, {"#ss-bsr-csv-button": 20, "#ss-bsr-targets-csv-button": 4,
                                     "#ss-bsr-percall-csv-button": 6})


def _unlike_runs(folder) -> None:
    """A kernel-only run (32 and 64 blocks, no per-call timings of its own) and a per-call
    run of 64 x 64 blocks only, with one noisy dense per-call time."""
    from engine.bench.bsr_results import KERNEL_ONLY, PER_CALL

    lines = ["device,torch,triton,date,n,k,dtype,block,sparsity,density,nnz_blocks,method,ms,timing,"
             "speedup_vs_dense,speedup_vs_torch_bsr,theory\n"]
    for b in (32, 64):
        for s in (0.5, 0.75, 0.9):
            for method, ms in (("dense", 1.0), ("torch-bsr", 2.0), ("lab-bsr", 2 * (1 - s))):
                lines.append(f'NVIDIA H200,2.11,3.6,2026-11-30 11:02 UTC,8192,512,fp16,{b},{s},{1 - s},10,'
                             f'{method},{ms},"{KERNEL_ONLY}",1,1,{1 / (1 - s)}\n')
    (folder / "bsr_bench.csv").write_text("".join(lines))
    lines = ["device,date,n,k,dtype,block,sparsity,density,method,timing,ms,ms_q25,ms_q75,speedup_vs_dense\n"]
    for s in (0.5, 0.75, 0.9):
        for method, timing, ms, spread in (("lab-bsr", KERNEL_ONLY, 0.02, 0), ("dense", KERNEL_ONLY, 0.08, 0),
                                           ("lab-bsr", PER_CALL, 0.04 * (1 - s) + 0.01, 0),
                                           ("dense", PER_CALL, 0.09, 0.03 if s == 0.75 else 0)):
            lines.append(f'NVIDIA H200,2026-12-02 04:18 UTC,8192,512,float16,64,{s},{1 - s},{method},'
                         f'"{timing}",{ms},{ms - spread / 2},{ms + spread / 2},1.0\n')
    (folder / "bsr_percall").mkdir()
    (folder / "bsr_percall" / "bsr_percall.csv").write_text("".join(lines))


def test_call_by_call_beside_an_unlike_per_call_run_names_the_mismatch(browser, tmp_path):
    """Its own app on a results folder where the only per-call run has other blocks than
    the kernel-only run: note and legend name the mismatch, the noisy point is hollow."""
    from tests.apphelpers import start_app, stop_process

    results = tmp_path / "results"
    results.mkdir()
    _unlike_runs(results)
    proc, url = start_app(tmp_path, extra_env={"SPARSITY_LAB_RESULTS": str(results)})
    try:
        page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
        page.goto(url + "/structured-sparsity")
        _tab(page, "The lab's kernel (lab-bsr)")
        wait_for_content(page, "#ss-bsr-plot", "lab goals")
        page.locator("#ss-bsr-timing label").filter(has_text="call by call").click()
        wait_for_text(page, "#ss-bsr-note", "not like for like")
        note = page.inner_text("#ss-bsr-note")
        assert "blocks 64 (kernel-only: 32, 64)" in note and "bsr_percall/bsr_percall.csv" in note
        assert "noisy (IQR/median > 0.1)" in note
        wait_for_content(page, "#ss-bsr-plot .legendtitletext", "blocks 64 (kernel-only: 32, 64)")
        assert "noisy (IQR/median > 0.1)" in page.text_content("#ss-bsr-plot .legend")
        page.locator("#ss-bsr-plot").scroll_into_view_if_needed()
        page.screenshot(path=str(SHOTS / "structured-sparsity-bsr-unlike-per-call.png"), full_page=True)
    finally:
        stop_process(proc)
