"""/moe callbacks called as plain functions."""
from __future__ import annotations

import dash
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
import torch

if not dash.page_registry or "pages.moe" not in dash.page_registry:
    dash.Dash(__name__, use_pages=True, pages_folder="")
from pages import moe as page  # noqa: E402

from engine.moe import params, timing, training  # noqa: E402

# routing widget values: tokens, experts, k, cf, d, temperature, skew, jitter, dropless, seed
DEFAULT = dict(tokens=64, experts=8, k=2, cf=1.25, d=64, temp=1.0, skew=0.0, jitter=0.0,
               dropless=[], seed=0)
BAD_ROUTING = [
    (dict(k=9), "top-k: expected an integer in [1, 8], got 9"),
    (dict(tokens=None), "tokens: expected"),
    (dict(temp=0), "temperature: expected"),
]
BAD_TRAIN = [((8, 9, 0.1, 5), "top-k"), ((1, 1, 0.1, 5), "experts"), ((4, 2, -1, 5), "alpha"),
             ((4, 2, 0.1, 0), "epochs")]
BAD_SWEEP = [((256, 1024, "8-2", "float32", "auto"), "experts/top-k: expected one of 8/1, 8/2"),
             ((256, 0, "8/2", "float32", "auto"), "largest batch"),
             ((256, 64, "8/2", "int8", "auto"), "dtype"),
             ((8192, 16384, "64/8", "float32", "auto"), "memory")]


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors on a shared 2-core machine
    yield
    torch.set_num_threads(before)


def _routing(**change):
    v = {**DEFAULT, **change}
    return page.update_routing(v["tokens"], v["experts"], v["k"], v["cf"], v["d"], v["temp"],
                               v["skew"], v["jitter"], v["dropless"], v["seed"])


def _stat_text(stats, label):
    for box in stats.children:
        if box.children[1].children == label:
            return box.children[0].children
    raise KeyError(label)


def test_routing_callback_returns_figures_stats_and_rows():
    heat, load, util, stats, table, rows, error = _routing()
    assert error is None
    heat, load, util = (go.Figure(f) for f in (heat, load, util))  # cached as JSON-ready dicts
    assert len(rows) == 8 and sum(r["wanted"] for r in rows) == 128
    assert _stat_text(stats, "capacity per expert") == "20"
    agree = _stat_text(stats, "batched vs per-token reference, max |diff| (first 64 tokens, h <= 128)")
    assert all(float(part.split()[1]) < 1e-4 for part in agree.split(" / "))
    # the load figure draws the capacity line at 20
    assert any(s["y0"] == 20 for s in load.layout.shapes)


def test_lower_capacity_drops_more_and_dropless_drops_none():
    def dropped(**c):
        return int(_stat_text(_routing(**c)[3], "dropped assignments").split(" of ")[0])
    assert dropped(cf=0.25) > dropped(cf=1.0) >= dropped(cf=4.0) == 0
    assert dropped(cf=0.25, dropless=["dropless"]) == 0


def test_skew_raises_the_balancing_loss():
    def loss(**c):
        return float(_stat_text(_routing(**c)[3], "balancing loss (alpha=1)"))
    assert loss(skew=5.0) > loss(skew=0.0) + 0.3


@pytest.mark.parametrize("change,words", BAD_ROUTING)
def test_routing_callback_shows_errors_not_tracebacks(change, words):
    out = _routing(**change)
    assert words in str(out[-1].children) and out[-1].className == "msg msg-error"
    assert out[5] == []


MIXTRAL_VALUES = [getattr(params.MIXTRAL_8X7B, f) for f in page.PARAM_FIELDS]


def _params(change=None, gated=("gated",), sliders=(64, 256, 8, 2)):
    values = dict(zip(page.PARAM_FIELDS, MIXTRAL_VALUES), **(change or {}))
    return page.update_params(*[values[f] for f in page.PARAM_FIELDS], list(gated), *sliders)


def test_params_callback_counts_mixtral_and_the_slider_layer():
    fig, table, rows, note, error = _params()
    assert error is None
    df = pd.DataFrame(rows).set_index("config")
    for name in ("your config (counted)", "Mixtral 8x7B (counted)"):
        assert df.loc[name, "total"] / 1e9 == pytest.approx(46.7, abs=0.05)
        assert df.loc[name, "active"] / 1e9 == pytest.approx(12.9, abs=0.05)
    assert "262,656" in note  # 8 * 2 * 64 * 256 + 64 * 8
    assert "not counted" in _params(sliders=(64, 256, 2, 3))[3]


def test_params_calculator_follows_its_inputs_and_presets():
    base = pd.DataFrame(_params()[2]).set_index("config").loc["your config (counted)"]
    more = pd.DataFrame(_params({"experts": 16})[2]).set_index("config").loc["your config (counted)"]
    assert more["total"] > 1.9 * base["total"]
    assert more["active"] == pytest.approx(base["active"], rel=1e-3)  # same k; only the router grows
    ungated = pd.DataFrame(_params(gated=())[2]).set_index("config").loc["your config (counted)"]
    assert ungated["total"] < base["total"]
    assert "top-k: expected" in str(_params({"k": 9})[4].children)
    dense = page.apply_preset("Mistral-7B-like dense (1 expert)")
    assert dense[page.PARAM_FIELDS.index("experts")] == 1


@pytest.mark.parametrize("values,words", BAD_TRAIN)
def test_train_plan_rejects_bad_widgets(values, words):
    with pytest.raises(ValueError, match=words):
        page.plan_training(*values)


@pytest.mark.parametrize("values,words", BAD_SWEEP)
def test_sweep_plan_rejects_bad_widgets(values, words):
    with pytest.raises(ValueError, match=words):
        page.plan_sweep(*values)


def test_plans_count_their_rows():
    assert page.plan_training(4, 2, 0.1, 3).total == 2 * (3 + 4 + 1)
    assert page.plan_sweep(64, 16, "8/2", "float32", "cpu").total == 5 * 5  # 1..16, 5 variants


def test_draw_training_and_sweep_from_rows():
    rows = list(training.train_router_rows(experts=2, k=1, alpha=0.1, epochs=1, batch=512))
    curves, load, spec, summary = page.draw_training(rows)
    assert len(curves.data) == 4 and len(spec.data) == 2
    assert len(summary.children) == 2
    sweep_rows = list(timing.timing_sweep_rows(timing.SweepSpec(d_model=16, experts=2, k=1, batches=(1, 2),
                                                          min_run_time=0.001, device="cpu")))
    time_fig, ratio_fig, text, note = page.draw_sweep(sweep_rows)
    assert any("this run" in t.name for t in time_fig.data)
    assert "one dense FFN" in str(text)
    empty = page.draw_sweep([])
    assert empty[2] is None or "this run" not in str(empty[2])


def test_draw_sweep_shows_a_committed_reference(results_dir):
    tmp_path = results_dir
    (tmp_path / "moe").mkdir()
    pd.DataFrame([{"batch": b, "variant": v, "status": "ok", "time_ms": t, "k": 2,
                   "ratio_vs_dense_1x": t / 1.0, "device": "NVIDIA H100 80GB HBM3",
                   "dtype": "bfloat16", "d_model": 2048, "date_utc": "2026-11-22T07:15:00Z"}
                  for b in (1, 16384) for v, t in (("dense_1x", 1.0), ("moe_grouped", 2.2))]
                 ).to_csv(tmp_path / "moe" / "moe_timing.csv", index=False)
    time_fig, ratio_fig, text, note = page.draw_sweep([])
    # the "ideal: k" label sits at its line's height k = 2 on the log axis (log10 units), not at 10**2
    label = next(a for a in ratio_fig.layout.annotations if a.text.startswith("ideal: k = 2"))
    assert ratio_fig.layout.yaxis.type == "log" and abs(label.y - np.log10(2)) < 1e-9
    assert "NVIDIA H100 80GB HBM3" in str(note.children)
    assert any("NVIDIA H100" in t.name for t in time_fig.data)
    assert "2.20x one dense FFN" in str(text)
