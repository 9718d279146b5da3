"""/isomorphism callbacks called as plain functions."""
import numpy as np
import pandas as pd
import pytest
from dash import html

import app  # noqa: F401  (registers the pages)
from pages import isomorphism as iso

# (source, digit, size, cin, cout, kernel, stride, padding, dilation, expected triangularity)
CONV_CASES = [
    ("digit", 0, 8, 1, 1, 3, 1, 0, 1, "upper-triangular"),
    ("digit", 5, 12, 1, 1, 3, 1, 1, 1, "neither"),
    ("random", 0, 10, 2, 3, 3, 2, 1, 2, "neither"),
]


def _text(component) -> str:
    return str(component.children if hasattr(component, "children") else component)


def _facts(rows) -> dict:
    return {r["fact"]: r["value"] for r in rows}


@pytest.mark.parametrize("case", CONV_CASES)
def test_update_conv_checks_equality_and_states_the_truth(case):
    *args, tri = case
    spy, facts, cols, timing, tcols, stats, msg = iso.update_conv(*args)
    f = _facts(facts)
    assert f["triangularity"] == tri
    assert f"it is {tri}" in _text(msg)
    diff = float(stats[0].children[0].children)
    assert diff < 1e-12
    assert {r["path"] for r in timing} == {"native F.conv2d", "CSR matrix @ X"}
    assert all(r["median_ms"] > 0 for r in timing)
    assert spy.data[0].type == "heatmap"
    assert max(np.shape(spy.data[0].z)) <= 512


def test_update_conv_rejects_a_too_large_matrix_without_traceback():
    spy, facts, *_rest, msg = iso.update_conv("random", 0, 64, 16, 16, 7, 1, 3, 1)
    assert facts == []
    assert "expected at most" in _text(msg) and "Cannot compute this" in _text(msg)


def test_row_click_lights_the_receptive_field():
    side, out = iso.update_conv_row(9, "digit", 0, 8, 1, 1, 3, 1, 0, 1)   # 6x6 output: row 9 = (1, 3)
    assert "Row 9: output channel 0, y 1, x 3 reads 9 pixels" in side.layout.title.text
    lit = np.array(side.data[1].z, dtype=float)
    assert np.argwhere(np.isfinite(lit)).min(axis=0).tolist() == [1, 3]
    assert len(out.data) == 2
    np.testing.assert_allclose(np.array(out.data[0].z), np.array(out.data[1].z), atol=1e-12)


def test_pick_row_from_spy_and_output_clicks():
    iso.ctx  # the callback reads ctx.triggered_id; emulate with the context manager of dash
    from dash._callback_context import context_value
    from dash._utils import AttributeDict

    def call(prop_id, spy, out, row):
        token = context_value.set(AttributeDict(triggered_inputs=[{"prop_id": prop_id, "value": 1}]))
        try:
            return iso.pick_conv_row(spy, out, row, 8, 3, 1, 0, 1)
        finally:
            context_value.reset(token)

    assert call("iso-conv-spy.clickData", {"points": [{"x": 3, "y": 17}]}, None, 0) == 17
    # 6x6 output; row 40 is channel 1, so a click on output pixel (y 2, x 4) picks 36 + 2*6 + 4
    assert call("iso-conv-out.clickData", None, {"points": [{"x": 4, "y": 2}]}, 40) == 52


@pytest.mark.parametrize("mode", ["avg", "max"])
def test_update_pool_equal_to_torch(mode):
    spy, side, outs, facts, _c, timing, _tc, stats, msg = iso.update_pool(mode, 16, 2, 2, 2, 3)
    assert float(stats[0].children[0].children) == 0.0 or float(stats[0].children[0].children) < 1e-12
    text = _text(msg)
    assert ("not linear" in text) if mode == "max" else ("is linear" in text)
    if mode == "max":
        err = float(stats[-1].children[0].children)
        assert err > 0  # the selection of one digit does not max-pool another


def test_update_rnn_and_tanh_gap():
    spy, side, outs, facts, _c, timing, _tc, stats, msg = iso.update_rnn(10, 3, 2, 0.9, 2.0)
    f = _facts(facts)
    assert f["block_lower_triangular"] == "True"
    assert float(stats[0].children[0].children) < 1e-10
    assert float(stats[-1].children[0].children) > 1e-3      # the tanh gap is real
    assert "block lower-triangular" in _text(msg)
    assert len(side.data) == 2 and len(side.data[0].y) == 10


@pytest.mark.parametrize("causal", [[], ["causal"]])
def test_update_attn_tensor_equals_layer(causal):
    spy, side, outs, facts, _c, timing, _tc, stats, msg = iso.update_attn(4, 2, 3, 2, causal)
    f = _facts(facts)
    assert f["tensor shape"] == "(12, 8, 8, 8)"
    assert float(stats[0].children[0].children) < 1e-10
    support = np.array(side.data[0].z)
    assert (np.count_nonzero(support, axis=1) <= 1).all()      # j and k share a token
    if causal:
        assert support[3:, 3:].sum() == 0                      # token 2 reads tokens 0..2 only


def test_bad_attention_input_is_a_message():
    out = iso.update_attn(0, 2, 2, 0, [])
    assert "expected an integer" in _text(out[-1])


def test_mtx_payload_for_each_tab():
    values = {"conv": ["digit", 0, 8, 1, 1, 3, 1, 0, 1], "pool": ["avg", 8, 1, 2, 2, 0],
              "rnn": [4, 2, 2, 0.9, 1.0], "attn": [2, 2, 2, 0, []]}
    shapes = {"conv": (36, 64), "pool": (16, 64), "rnn": (8, 8), "attn": (4, 64)}
    for tab, vals in values.items():
        m = iso._matrix_for(tab, vals)
        assert m.shape == shapes[tab], tab


def test_plan_sweep_rows_and_validation(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="expected at least one"):
        iso.plan_sweep([], [16], [8], 3)
    plan = iso.plan_sweep([2, 1], [8], [2], 1)
    assert plan.total == 2 and plan.params["channels"] == [1, 2]
    rows = list(plan.rows)
    assert [r["channels"] for r in rows] == [1, 2]
    assert all(r["max_abs_diff"] < 1e-4 and r["status"] == "ok" for r in rows)
    fig, note = iso.draw_sweep(rows, [])
    assert len(fig.data) == 1 and note is None


def test_reference_csv_is_drawn_beside_a_run(tmp_path, monkeypatch):
    results = tmp_path / "benchmarks" / "results"
    results.mkdir(parents=True)
    pd.DataFrame({"channels": [1, 16], "image": ["32x32"] * 2, "batch": [32] * 2,
                  "matrix_over_native": [0.5, 4.0], "status": ["ok"] * 2,
                  "device_name": ["NVIDIA H100 80GB HBM3"] * 2}).to_csv(results / "gpu_isomorphism.csv",
                                                                          index=False)
    pd.DataFrame({"channels": [1], "matrix_over_native_32x32": [0.5]}).to_csv(
        results / "gpu_isomorphism_summary.csv", index=False)          # a summary is not the rows
    monkeypatch.setattr(iso, "ROOT", tmp_path)
    fig, note = iso.draw_sweep([], ["ref"])
    assert "NVIDIA H100" in _text(note)
    assert "reference (NVIDIA H100 80GB HBM3)" in fig.data[0].name
    assert list(fig.data[0].y) == [0.5, 4.0]


def test_layout_is_cheap_and_has_the_tabs():
    lay = iso.layout()
    text = str(lay)
    for tab in ("iso-tab-conv", "iso-tab-pool", "iso-tab-rnn", "iso-tab-attn", "iso-sweep-job-run"):
        assert tab in text
    assert isinstance(lay, html.Div)
