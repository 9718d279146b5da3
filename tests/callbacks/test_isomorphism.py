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
    ("digit", 0, 28, 1, 1, 3, 1, 1, 1, "neither"),
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
    spy, facts, cols, msg = iso.update_conv(*args)
    timing, tcols, stats = iso.time_conv(*args)
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
    assert facts == [] and iso.time_conv("random", 0, 64, 16, 16, 7, 1, 3, 1) == ([], [], [])
    assert "expected at most" in _text(msg) and "Cannot compute this" in _text(msg)


def test_default_is_the_papers_zero_padding_and_its_verdict_fails():
    """The paper assumes zero padding: the default; at 28x28 the matrix has 2,970 entries below the diagonal."""
    assert iso.ex.ConvSpec().padding == iso.ex.PAPER_PADDING == 1
    layout = str(iso.layout())
    assert "'id': 'iso-conv-padding'" in layout or "iso-conv-padding" in layout
    *_rest, msg = iso.update_conv("digit", 0, 28, 1, 1, 3, 1, 1, 1)
    text = _text(msg)
    assert "it is neither: 2,970 stored entries below the diagonal" in text
    assert "In the paper's own setting the claim fails" in text
    assert "special case where the claim holds" in text and "upper-triangular: the special case" in text
    assert msg.className.endswith("warn")
    *_rest, msg0 = iso.update_conv("digit", 0, 28, 1, 1, 3, 1, 0, 1)
    assert "No padding is the special case: here the claim holds" in _text(msg0)
    assert msg0.className.endswith("ok")


def test_sliders_show_their_values_and_take_their_range_from_the_engine():
    from dash import dcc

    def walk(node):
        yield node
        for child in getattr(node, "children", None) or []:
            if hasattr(child, "children") or hasattr(child, "id"):
                yield from walk(child)
        kids = getattr(node, "children", None)
        if kids is not None and not isinstance(kids, (list, tuple, str)) and hasattr(kids, "to_plotly_json"):
            yield from walk(kids)

    sliders = [n for n in walk(iso.layout()) if isinstance(n, dcc.Slider)]
    assert len(sliders) >= 18
    for s in sliders:
        assert s.tooltip.get("always_visible") is True, s.id
    by_id = {s.id: s for s in sliders}
    for tab, limits in iso.ex.LIMITS.items():
        for field, (lo, hi) in limits.items():
            if iso.wid(tab, field) in by_id:
                assert (by_id[iso.wid(tab, field)].min, by_id[iso.wid(tab, field)].max) == (lo, hi)


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
            return iso.pick_conv_row(spy, out, row, "digit", 0, 8, 1, 1, 3, 1, 0, 1)
        finally:
            context_value.reset(token)

    assert call("iso-conv-spy.clickData", {"points": [{"x": 3, "y": 17}]}, None, 0) == 17
    # 6x6 output; row 40 is channel 1, so a click on output pixel (y 2, x 4) picks 36 + 2*6 + 4
    assert call("iso-conv-out.clickData", None, {"points": [{"x": 4, "y": 2}]}, 40) == 52


@pytest.mark.parametrize("mode", ["avg", "max"])
def test_update_pool_equal_to_torch(mode):
    spy, side, outs, facts, _c, msg = iso.update_pool(mode, 16, 2, 2, 2, 3)
    timing, _tc, stats = iso.time_pool(mode, 16, 2, 2, 2, 3)
    assert float(stats[0].children[0].children) == 0.0 or float(stats[0].children[0].children) < 1e-12
    text = _text(msg)
    assert ("not linear" in text) if mode == "max" else ("is linear" in text)
    if mode == "max":
        err = float(stats[-1].children[0].children)
        assert err > 0  # the selection of one digit does not max-pool another


def test_update_rnn_and_tanh_gap():
    spy, side, outs, facts, _c, msg = iso.update_rnn(10, 3, 2, 0.9, 2.0)
    timing, _tc, stats = iso.time_rnn(10, 3, 2, 0.9, 2.0)
    f = _facts(facts)
    assert f["block_lower_triangular"] == "True"
    assert float(stats[0].children[0].children) < 1e-10
    assert float(stats[-1].children[0].children) > 1e-3      # the tanh gap is real
    assert "block lower-triangular" in _text(msg)
    assert len(side.data) == 2 and len(side.data[0].y) == 10


@pytest.mark.parametrize("causal", [[], ["causal"]])
def test_update_attn_tensor_equals_layer(causal):
    spy, side, outs, facts, _c, msg = iso.update_attn(4, 2, 3, 2, causal)
    timing, _tc, stats = iso.time_attn(4, 2, 3, 2, causal)
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
        m = iso.ex.matrix_for(iso.ex.spec_from_widgets(tab, vals))
        assert m.shape == shapes[tab], tab


@pytest.mark.parametrize("values, match", [
    ([999999, 4, 2, 0.9, 1.0], "sequence length: expected an integer in \\[1, 64\\], got 999999"),
    ([256, 64, 64, 0.9, 1.0], "sequence length: expected an integer in \\[1, 64\\], got 256"),
    ([12, 4, 999999, 0.9, 1.0], "input size: expected an integer in \\[1, 8\\], got 999999"),
])
def test_rnn_callbacks_refuse_before_building(values, match):
    """The crafted requests that once took 36-42 s and 8-14 GB are refused from the spec alone."""
    import re
    import time

    started = time.process_time()
    out = iso.update_rnn(*values)
    assert re.search(match, _text(out[-1]))
    mtx = iso.ex.spec_from_widgets
    with pytest.raises(ValueError, match=match):
        iso.ex.mtx_text(mtx("rnn", values), "rnn")
    assert time.process_time() - started < 1.0


def test_download_is_refused_against_the_memory_budget(monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_MEMORY_BUDGET_MB", "1")
    spec = iso.ex.spec_from_widgets("conv", ["digit", 0, 64, 4, 4, 3, 1, 1, 1])
    with pytest.raises(ValueError, match="expected at most 1 MB of memory .* got an estimated"):
        iso.ex.mtx_text(spec, "conv")


def test_plan_sweep_rows_and_validation(tmp_path, monkeypatch):
    with pytest.raises(ValueError, match="expected at least one"):
        iso.plan_sweep([], [16], [8], 3)
    with pytest.raises(ValueError, match="runs: expected an integer in \\[3, 50\\]"):
        iso.plan_sweep([1], [8], [2], 1)
    plan = iso.plan_sweep([2, 1], [8], [2], 3, 0.2)
    assert plan.total == 2 and plan.params["channels"] == [1, 2] and plan.params["budget_s"] == 0.2
    rows = list(plan.rows)
    assert [r["channels"] for r in rows] == [1, 2]
    assert all(r["max_abs_diff"] < 1e-4 and r["status"] == "ok" and r["method"] == "eager per call" for r in rows)
    # a spent budget may stop a side before its 3 runs (a loaded machine): then it is noisy by rule
    assert all(isinstance(r["settled"], bool) and (r["runs"] >= 3 or r["noisy"]) for r in rows)
    fig, note, summary = iso.draw_sweep(rows, [])
    assert note is None
    assert [t.name for t in fig.data if "this run" in (t.name or "")] == ["this run (CPU): 8x8, batch 2"]


def test_noisy_sweep_rows_are_drawn_hollow_and_never_quoted():
    rows = [{"channels": c, "image": "16x16", "batch": 8, "status": "ok", "matrix_over_native": r, "noisy": n}
            for c, r, n in ((1, 1.5, False), (4, 0.7, True), (16, 9.0, False))]
    fig, _note, summary = iso.draw_sweep(rows, [])
    trace = next(t for t in fig.data if t.name == "this run: 16x16, batch 8")
    assert list(trace.marker.symbol) == ["circle", "circle-open", "circle"]
    assert any(t.name == "noisy (IQR/median > 0.1)" for t in fig.data)
    text = " ".join(_text(m) for m in summary)
    assert "1.5x" in text and "9x" in text and "0.7x" not in text
    assert "1 of 3 timed rows stayed noisy" in text
    label = next(a for a in fig.layout.annotations if "equal time" in a.text)
    assert label.y == 0.0                                            # log10(1): on the line, not at 10


def test_reference_csv_is_drawn_beside_a_run(results_dir):
    results = results_dir
    pd.DataFrame({"channels": [1, 16], "image": ["32x32"] * 2, "batch": [32] * 2,
                  "matrix_over_native": [0.5, 4.0], "status": ["ok"] * 2,
                  "device_name": ["NVIDIA H100 80GB HBM3"] * 2}).to_csv(results / "gpu_isomorphism.csv",
                                                                          index=False)
    pd.DataFrame({"channels": [1], "matrix_over_native_32x32": [0.5]}).to_csv(
        results / "gpu_isomorphism_summary.csv", index=False)          # a summary is not the rows
    fig, note, _summary = iso.draw_sweep([], ["ref"])
    assert "NVIDIA H100" in _text(note)
    assert fig.data[0].name == "reference (H100 80GB HBM3): 32x32, batch 32"
    assert list(fig.data[0].y) == [0.5, 4.0]


def test_layout_is_cheap_and_has_the_tabs():
    lay = iso.layout()
    text = str(lay)
    for tab in ("iso-tab-conv", "iso-tab-pool", "iso-tab-rnn", "iso-tab-attn", "iso-sweep-job-run"):
        assert tab in text
    assert isinstance(lay, html.Div)


def test_lowering_parts_are_cached_by_spec_and_timings_are_not(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    a = iso.ex.ConvSpec(size=12, padding=1)
    b = iso.ex.ConvSpec(size=12, padding=0)
    assert iso.ex.conv_parts.cache_key(a) != iso.ex.conv_parts.cache_key(b)
    before = iso.ex.conv_parts.cache_info()
    first = iso.ex.conv_view(a)
    second = iso.ex.conv_view(a)
    after = iso.ex.conv_parts.cache_info()
    assert after.hits - before.hits >= 1
    assert (first["matrix"] != second["matrix"]).nnz == 0
    assert first["times"] is not second["times"]                      # each request times afresh
    assert iso.ex.conv_view(b)["facts"]["triangularity"] == "upper-triangular"


@pytest.mark.parametrize("call, values", [
    ("update_conv", ("digit", 0, 64, 4, 4, 3, 1, 1, 1)), ("update_conv", ("digit", 0, 16, 1, 1, 3, 1, 1, 1)),
    ("update_conv", ("digit", 0, 64, 2, 2, 7, 1, 3, 1)), ("update_conv_row", (0, "digit", 0, 64, 4, 4, 3, 1, 1, 1)),
    ("update_pool", ("max", 64, 8, 1, 1, 0)), ("update_pool", ("avg", 64, 8, 1, 1, 0)),
    ("update_rnn", (64, 16, 8, 1.5, 3.0)), ("update_attn", (8, 6, 6, 7, ["causal"])),
])
def test_no_response_passes_one_megabyte_and_heatmaps_hold_at_most_512_cells(call, values):
    from dash._utils import to_json

    out = getattr(iso, call)(*values)
    assert len(to_json(out)) < 2**20, call
    for fig in (o for o in out if hasattr(o, "data")):
        for trace in fig.data:
            if trace.type == "heatmap":
                assert max(np.shape(trace.z)) <= 512
                assert isinstance(trace.z, np.ndarray)                 # binary-encoded, not a JSON list


def test_no_page_module_imports_torch():
    """Pages stay thin: torch lives in the engine (and is imported lazily there)."""
    import ast
    from pathlib import Path

    found = []
    for path in sorted((Path(__file__).resolve().parents[2] / "pages").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            found += [f"{path.name}: {n}" for n in names if n == "torch" or n.startswith("torch.")]
    assert found == []


def test_inline_timing_is_bounded_for_the_request_path(monkeypatch):
    """Each tab's small timing runs under the inline budget (the page calls it in the request
    path); the budget is what keeps every callback near 100 ms at defaults."""
    seen = []
    real = iso.ex.low.time_callables

    def spy(fns, *args, **kwargs):
        out = real(fns, *args, **kwargs)
        seen.append(sum(m.runs * m.number_per_run * m.median_s for m in out.values()))
        return out

    monkeypatch.setattr(iso.ex.low, "time_callables", spy)
    iso.time_pool("avg", 16, 1, 2, 2, 0)
    assert iso.ex.low.INLINE_BUDGET_S <= 0.05
    # timed calls stop once the budget is spent: at most the budget plus one run per path
    assert len(seen) == 1 and seen[0] <= 2 * (iso.ex.low.INLINE_BUDGET_S + 0.05)


def test_a_reference_unlike_the_run_names_the_device_and_every_mismatch(results_dir):
    """Beside a CPU run at 16x16, batch 8, an H100 reference at 32x32 / 64x64, batch 32-256
    timed by wall clock: the note names all of it, the legend names both devices and the methods."""
    pd.DataFrame({"channels": [1, 16, 1], "image": ["32x32", "32x32", "64x64"], "batch": [32, 32, 256],
                  "matrix_over_native": [0.5, 4.0, 0.9], "status": ["ok"] * 3, "dtype": ["float32"] * 3,
                  "method": ["median of repeats after 2 warm-ups, synchronised"] * 3,
                  "device_name": ["NVIDIA H100 80GB HBM3"] * 3}).to_csv(results_dir / "gpu_isomorphism.csv",
                                                                         index=False)
    rows = [{"channels": c, "image": "16x16", "batch": 8, "status": "ok", "matrix_over_native": r,
             "noisy": False, "device_name": "CPU: Test Xeon", "method": "eager per call", "dtype": "float32"}
            for c, r in ((1, 0.2), (16, 5.0))]
    fig, note, _summary = iso.draw_sweep(rows, ["ref"])
    text = _text(note)
    assert text.startswith("Not like for like") and "msg-warn" in note.className
    for part in ("H100 80GB HBM3", "this CPU", "batch = 32, 256", "batch = 8", "image = 32x32, 64x64",
                 "image = 16x16", "wall clock", "eager per call"):
        assert part in text
    names = [t.name for t in fig.data]
    assert "this run (CPU, eager per call): 16x16, batch 8" in names
    assert "reference (H100 80GB HBM3, wall clock): 64x64, batch 256" in names
    # the ratio-1 label sits at the right end under its line, away from the points at 1 channel
    label = next(a for a in fig.layout.annotations if "equal time" in a.text)
    assert label.x > 0.9 and label.yanchor == "top" and label.y == 0.0
    assert fig.layout.legend.orientation == "h" and fig.layout.margin.b >= 150


def test_a_noisy_headline_ratio_is_small_grey_and_not_a_finding():
    from engine.bench.measurement import Measurement, Task

    def m(times):
        return Measurement(task=Task(op="conv", device="cpu"), times_s=tuple(times), method="eager per call",
                           repeats=len(times))

    steady, noisy = m([1e-3] * 9), m([1e-3, 3e-3, 1e-3, 4e-3, 1e-3, 5e-3, 1e-3, 2e-3, 6e-3])
    assert noisy.noisy and not steady.noisy
    view = {"times": {"native": steady, "matrix": noisy}, "diff": 1e-7, "ratio": 0.21, "noisy": True}
    text = str(iso._stats(view))
    assert "matrix / native time (noisy: not a finding)" in text and "stat-noisy" in text
    quiet = {"times": {"native": steady, "matrix": steady}, "diff": 1e-7, "ratio": 1.0, "noisy": False}
    assert "not a finding" not in str(iso._stats(quiet)) and "stat-noisy" not in str(iso._stats(quiet))
