"""/your-matrix in a real browser: upload, spy plot, calibrate, measure, advice, every download."""
import numpy as np
import pytest
import scipy.io
import scipy.sparse as sp

from tests.browser.conftest import SHOTS, download_csv, wait_for_job, wait_for_text
from tests.browser.layout_checks import assert_tables_fit

pytestmark = pytest.mark.browser


def _scrambled_band(path, n=256):
    band = sp.diags([1.0, -2.0, 5.0, -2.0, 1.0], range(-2, 3), shape=(n, n)).tocsr()
    p = np.random.default_rng(0).permutation(n)
    scipy.io.mmwrite(str(path), band[p][:, p], field="real", symmetry="general")
    return path


def test_upload_spy_measure_advice_and_downloads(app_server, page, tmp_path):
    page.goto(app_server + "/your-matrix")
    page.wait_for_selector("#matrix-upload")
    # a refused file: message, nothing loaded
    bad = tmp_path / "huge.mtx"
    bad.write_text("%%MatrixMarket matrix coordinate real general\n1000000000 1000000000 1000000000\n")
    page.set_input_files("#matrix-upload input[type=file]", str(bad))
    wait_for_text(page, "#matrix-load-msg", "expected at most")
    # a good one
    page.set_input_files("#matrix-upload input[type=file]", str(_scrambled_band(tmp_path / "band.mtx")))
    wait_for_text(page, "#matrix-load-msg", "256 x 256, 1274 non-zeros")
    page.wait_for_selector("#matrix-spy .hm image")
    assert "256 x 256 one entry per cell" in page.inner_text("#matrix-spy")
    wait_for_text(page, "#matrix-fill", "128")
    facts = download_csv(page, "#matrix-facts-csv-button")
    assert dict(zip(facts["fact"], facts["value"]))["non-zeros"] == "1274"
    fill = download_csv(page, "#matrix-fill-csv-button")
    assert list(fill["block"]) == [16, 32, 64, 128]
    assert (fill["fill-in after RCM"] <= fill["fill-in (zeros per nnz)"]).all()
    assert fill["fill-in after RCM"][0] < fill["fill-in (zeros per nnz)"][0] / 4
    with page.expect_download() as dl:
        page.click("#matrix-rcm-mtx")
    reordered = scipy.io.mmread(dl.value.path())
    assert reordered.shape == (256, 256) and reordered.nnz == 1274
    page.click("#matrix-spy-view input[value=rcm]")
    wait_for_text(page, "#matrix-spy", "After reverse Cuthill-McKee")
    # calibrate, then predictions appear
    page.click("#matrix-cal-job-run")
    wait_for_job(page, "#matrix-cal-job-status", timeout=120_000)
    wait_for_text(page, "#matrix-cal-note", "Calibration of")
    wait_for_text(page, "#matrix-pred", "torch-bsr b16 RCM")
    pred = download_csv(page, "#matrix-pred-csv-button")
    assert (pred["predicted (us)"] > 0).all()
    cal = download_csv(page, "#matrix-cal-job-csv")
    assert list(cal["step"]) == ["copy", "gemm", "gemm", "gemm", "gemm", "gather", "floor"]
    # measure every backend
    page.fill("#matrix-repeats", "2")
    page.press("#matrix-repeats", "Enter")
    page.fill("#matrix-k", "16")
    page.press("#matrix-k", "Enter")
    page.click("#matrix-job-run")
    wait_for_job(page, "#matrix-job-status", timeout=240_000)
    wait_for_text(page, "#matrix-advice", "dense for this matrix")
    page.wait_for_selector("#matrix-pvm .scatterlayer .trace")
    legend = page.eval_on_selector("#matrix-pvm .legend", "e => e.textContent")
    assert "predicted (roofline)" in legend
    rows = download_csv(page, "#matrix-job-csv")
    assert set(rows["op"]) == {"spmv", "spmm"} and (rows["k"][rows["op"] == "spmm"] == 16).all()
    ok = rows[rows["status"] == "ok"]
    assert {"torch-dense", "torch-csr", "torch-coo", "torch-bsr", "scipy-csr"} <= set(ok["backend"])
    assert (ok["median_s"] > 0).all() and (ok["predicted_s"] > 0).all()
    eff = download_csv(page, "#matrix-eff-csv-button")
    assert len(eff) == int((ok["op"] == "spmv").sum())
    page.screenshot(path=str(SHOTS / "your-matrix-full.png"), full_page=True)
    height = page.evaluate("document.documentElement.scrollHeight")
    for i, top in enumerate(range(0, height, 900)):  # full resolution, 900 px at a time
        page.screenshot(path=str(SHOTS / f"your-matrix-part{i}.png"), full_page=True,
                        clip={"x": 0, "y": top, "width": 1280, "height": min(900, height - top)})
    # the layout holds at 1280 px: nothing wider than the viewport, every table fits its box
    shown = assert_tables_fit(page, at_least=4)
    assert {"matrix-facts", "matrix-fill", "matrix-pred", "matrix-eff"} <= set(shown)


def test_safetensors_choice_and_cancel_keeps_rows(app_server, page, tmp_path):
    import torch
    from safetensors.torch import save_file

    w = torch.zeros(512, 512)
    w[::3, ::5] = 1.5
    save_file({"layer.bias": torch.ones(512), "layer.weight": w, "head.weight": torch.eye(64)},
              str(tmp_path / "model.safetensors"))
    page.goto(app_server + "/your-matrix")
    page.wait_for_selector("#matrix-upload")
    page.set_input_files("#matrix-upload input[type=file]", str(tmp_path / "model.safetensors"))
    # the first 2-D tensor in the file's (sorted) header is loaded and shown as chosen
    wait_for_text(page, "#matrix-load-msg", "(tensor 'head.weight'): 64 x 64")
    wait_for_text(page, "#matrix-tensor", "head.weight")
    page.click("#matrix-tensor")
    assert page.get_by_text("expected 2 dimensions, got 1").count() == 1  # the bias is listed, disabled
    page.get_by_text("layer.weight").click()
    wait_for_text(page, "#matrix-load-msg", "(tensor 'layer.weight'): 512 x 512")
    page.fill("#matrix-repeats", "200")
    page.press("#matrix-repeats", "Enter")
    page.click("#matrix-job-run")
    wait_for_text(page, "#matrix-job-status", "running: 2", timeout=120_000)
    page.click("#matrix-job-cancel")
    wait_for_text(page, "#matrix-job-status", "cancelled")
    kept = page.inner_text("#matrix-job-status")
    page.wait_for_timeout(3000)
    assert page.inner_text("#matrix-job-status") == kept  # progress stays put after a cancel
    assert not page.is_disabled("#matrix-job-run")
