"""/your-matrix callbacks called as plain functions."""
from __future__ import annotations

import base64
import io

import dash
import numpy as np
import pytest
import scipy.sparse as sp

if not dash.page_registry or "pages.your_matrix" not in dash.page_registry:
    dash.Dash(__name__, use_pages=True, pages_folder="")
from pages import your_matrix as ym  # noqa: E402

from dash._utils import to_json  # noqa: E402  (how Dash serialises a response)
from engine.bench import roofline as rl  # noqa: E402
from engine.sparse import user_matrix as um  # noqa: E402

MTX = b"""%%MatrixMarket matrix coordinate real symmetric
4 4 4
1 1 2.0
2 1 -1.0
3 3 4.0
4 2 1.5
"""
MAX_RESPONSE = 1_000_000


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("SPARSITY_LAB_PURE_CACHE_MB", "0")


def _url(data: bytes) -> str:
    return "data:application/octet-stream;base64," + base64.b64encode(data).decode()


def _stored():
    return sorted(p.name for p in um.matrix_dir().iterdir())


def test_upload_stores_and_reports_facts():
    h, msg, options, box = ym.load_action(False, _url(MTX), None, "small.mtx")
    assert len(h) == 64 and "4 x 4, 6 non-zeros" in str(msg) and box == {"display": "none"}
    assert len(_stored()) == 2
    spy, rows, prof, fill, fill_cols, facts, _ = ym.structure(h, "stored")
    assert spy.data[0].type == "heatmap" and spy.layout.yaxis.autorange == "reversed"
    assert [r["block"] for r in fill] == [16, 32, 64, 128]
    values = {r["fact"]: r["value"] for r in facts}
    assert values["non-zeros"] == "6" and values["symmetric (A = A^T exactly)"] == "True"
    assert rows.layout.xaxis.title.text.startswith("non-zeros in the row")


@pytest.mark.parametrize("name, data, words", [
    ("huge.mtx", b"%%MatrixMarket matrix coordinate real general\n1000000000 1000000000 1000000000\n",
     "expected at most"),
    ("bad.mtx", b"%%MatrixMarket matrix coordinate real general\n3 3\n", "size line"),
    ("w.pkl", b"\x80\x04K\x01.", "expected one of .mtx"),
])
def test_refusals_show_a_message_and_store_nothing(name, data, words):
    h, msg, _, _ = ym.load_action(False, _url(data), None, name)
    assert h is None and words in str(msg) and "Cannot compute this" in str(msg)
    assert not um.matrix_dir().exists() or _stored() == []


def test_upload_size_is_checked_before_decoding(monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_MEMORY_BUDGET_MB", "1")
    decoded = []
    monkeypatch.setattr(ym.base64, "b64decode", lambda *a, **k: decoded.append(1))
    big = "data:x;base64," + "A" * (2 * 2**20)
    with pytest.raises(ValueError, match="expected a file of at most 1 MB"):
        ym.decode_upload(big, "big.npy")
    assert decoded == []


def test_safetensors_tensor_list_and_choice():
    import torch
    from safetensors.torch import save

    data = save({"a.weight": torch.eye(8), "a.bias": torch.ones(8), "b.weight": torch.ones(4, 6)})
    h1, _, options, box = ym.load_action(False, _url(data), None, "m.safetensors")
    assert box == {"display": "block"}
    by = {o["value"]: o for o in options}
    assert by["a.bias"]["disabled"] and not by["b.weight"]["disabled"]
    h2, msg, _, _ = ym.load_action(False, _url(data), "b.weight", "m.safetensors")
    assert h1 != h2 and "4 x 6" in str(msg) and "b.weight" in str(msg)


def test_example_and_predictions_need_a_calibration():
    h, msg, _, _ = ym.load_action(True, None, None, None)
    assert "1024 x 1024" in str(msg)
    data, cols, store, note = ym.predictions(h, "spmv", 64, "float32", None, None)
    assert data == [] and "No calibration stored" in str(note)
    list(rl.calibrate(rl.CalibrationPlan.for_device("cpu", quick=True), device_name=ym._device_name()))
    data, cols, store, note = ym.predictions(h, "spmv", 64, "float32", None, None)
    names = [r["candidate"] for r in data]
    assert {"torch-dense", "torch-csr", "torch-bsr b16", "torch-bsr b16 RCM"} <= set(names)
    assert all(r["predicted (us)"] > 0 for r in data) and "Calibration of" in str(note)
    assert {r["op"] for r in store} == {"spmv", "spmm"}
    by = {r["candidate"]: r for r in data}
    assert by["torch-bsr b16 RCM"]["predicted (us)"] < by["torch-bsr b16"]["predicted (us)"]
    _, _, _, bad = ym.predictions(h, "spmv", 0, "float32", None, None)
    assert "k: expected" in str(bad)


def test_measure_job_rows_draw_and_recommend():
    a = sp.csr_array(sp.random(128, 128, density=0.05, format="csr", random_state=0))
    info = um.store_matrix(um.LoadedMatrix("r.npz", "npz", um._canonical(a, "t"), "float64"))
    list(rl.calibrate(rl.CalibrationPlan.for_device("cpu", quick=True), device_name=ym._device_name()))
    job = ym.plan_measure(info["hash"], 8, "float32", 2)
    rows = list(job.rows)
    assert len(rows) == job.total and {r["op"] for r in rows} == {"spmv", "spmm"}
    ok = [r for r in rows if r["status"] == "ok"]
    assert {r["backend"] for r in ok} >= {"torch-dense", "torch-csr", "torch-coo", "torch-bsr", "scipy-csr"}
    _, _, store, _ = ym.predictions(info["hash"], "spmv", 8, "float32", None, None)
    fig, advice, eff, _ = ym.draw(rows, store, "spmv", info["hash"])
    assert {t.name for t in fig.data} >= {"predicted (roofline)"}
    assert "On this CPU" in str(advice) and "dense for this matrix" in str(advice)
    assert len(eff) == sum(r["op"] == "spmv" for r in ok)
    # rows of another matrix are not drawn
    _, advice2, eff2, _ = ym.draw(rows, store, "spmv", "0" * 64)
    assert eff2 == [] and "Run the measurement" in str(advice2)
    with pytest.raises(ValueError, match="expected a loaded matrix"):
        ym.plan_measure(None, 8, "float32", 2)


def test_reordered_download_is_a_matrix_market_file():
    h, *_ = ym.load_action(True, None, None, None)
    out = ym.download_reordered(1, h)
    assert out["filename"].endswith("-rcm.mtx")
    text = base64.b64decode(out["content"]) if out.get("base64") else out["content"].encode()
    back = um.load_matrix_bytes("r.mtx", text)
    assert um.facts(back.matrix)["bandwidth"] < um.facts(um.load_stored(h))["bandwidth"] / 4


def test_largest_response_stays_under_one_megabyte():
    """A 4000 x 4000 matrix with 160k non-zeros: the spy plot (512 x 512 cells) and every
    other output of the structure callback serialise to well under 1 MB."""
    rng = np.random.default_rng(0)
    a = sp.random(4000, 4000, density=0.01, format="csr", random_state=rng)
    buf = io.BytesIO()
    sp.save_npz(buf, a)
    h, *_ = ym.load_action(False, _url(buf.getvalue()), None, "big.npz")
    for view in ("stored", "rcm"):
        out = ym.structure(h, view)
        size = len(to_json(list(out)))
        assert size < MAX_RESPONSE, size
    list(rl.calibrate(rl.CalibrationPlan.for_device("cpu", quick=True), device_name=ym._device_name()))
    assert len(to_json(list(ym.predictions(h, "spmm", 64, "float32", None, None)))) < MAX_RESPONSE


@pytest.mark.parametrize("rows, preds, op, h", [
    (5, "x", None, [1]), ([1, "a", {"op": "spmv"}], [{"op": "spmv"}], "spmv", "0" * 64),
    (None, None, "spmm", None)])
def test_draw_survives_what_a_browser_may_send(rows, preds, op, h):
    fig, advice, eff, _ = ym.draw(rows, preds, op, h)
    assert eff == [] and "Run the measurement" in str(advice)
