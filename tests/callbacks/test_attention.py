"""/attention callbacks called as plain functions."""
from __future__ import annotations

import dash
import pandas as pd
import pytest

if not dash.page_registry or "pages.attention" not in dash.page_registry:
    dash.Dash(__name__, use_pages=True, pages_folder="")
from pages import attention  # noqa: E402

from engine.attention import masks as M  # noqa: E402
from engine.attention import views as V  # noqa: E402
from engine.attention.attend import SweepConfig, attention_sweep  # noqa: E402

PARAMS = [M.DEFAULT_PARAMS[n] for n in V.PARAM_NAMES]  # w, d, g, r, seed, p, docs
# (widget change, words of the error shown)
BAD = [
    ({"w": 0}, "window w (tokens): expected an integer in [1, 4096], got 0"),
    ({"w": None}, "window w (tokens): expected an integer"),
    ({"docs": 9999}, "documents: expected an integer in [1, 256]"),
    ({"g": 2.5}, "global tokens g: expected an integer"),
]


def params(**change):
    return [change.get(n, v) for n, v in zip(V.PARAM_NAMES, PARAMS)]


@pytest.fixture(scope="module")
def sweep_rows():
    config = SweepConfig(seq_lens=(64, 128), masks=("sliding_window",), params=(("w", 16),),
                         block=16, heads=1, head_dim=16, repeats=2)
    return list(attention_sweep(config, "cpu"))


def test_layout_is_cheap_and_has_the_controls():
    text = str(attention.layout())
    for cid in ("attention-mask", "attention-seq", "attention-block", "attention-w",
                "attention-token-map", "attention-block-map", "attention-job-run"):
        assert cid in text


@pytest.mark.parametrize("kind", ["sliding_window", "bigbird", "document"])
def test_show_params_shows_only_the_masks_parameters(kind):
    out = attention.show_params(kind)
    shown = {n for n, style in zip(V.PARAM_NAMES, out[:-1]) if style.get("display") != "none"}
    assert shown == set(M.MASK_KINDS[kind].params)
    assert M.MASK_KINDS[kind].label in out[-1]


def test_draw_mask_updates_heatmaps_and_stats():
    token, blocks, stats, err = attention.draw_mask("sliding_window", 256, 32, *params(w=32))
    assert err is None
    z = token["data"][0]["z"]
    assert len(z) == 256 and sum(map(sum, z)) == sum(min(i + 1, 32) for i in range(256))
    assert len(blocks["data"][0]["z"]) == 256 // 32
    assert "key position (token)" in token["layout"]["xaxis"]["title"]["text"]
    assert "query block (32 tokens)" in blocks["layout"]["yaxis"]["title"]["text"]
    assert "token density" in str(stats)
    # a wider window keeps more
    token2, *_ = attention.draw_mask("sliding_window", 256, 32, *params(w=64))
    assert sum(map(sum, token2["data"][0]["z"])) > sum(map(sum, z))


def test_long_sequences_are_pooled():
    token, blocks, _stats, err = attention.draw_mask("causal", 4096, 8, *params())
    assert err is None
    assert len(token["data"][0]["z"]) == 256  # 16 x 16 tokens per cell
    assert "kept fraction" in token["data"][0]["colorbar"]["title"]["text"]
    assert len(blocks["data"][0]["z"]) <= 128


@pytest.mark.parametrize("change,words", BAD)
def test_bad_parameters_show_a_message(change, words):
    out = attention.draw_mask("longformer", 256, 32, *params(**change))
    assert out[0] is dash.no_update and "msg-error" in str(out[3]) and words in str(out[3])
    weights = attention.draw_weights("longformer", 256, 32, *params(**change))
    assert weights[0] is dash.no_update and words in str(weights[1])


def test_draw_weights_gives_both_heatmaps_and_the_zoo_table():
    masked, table, rows, note = attention.draw_weights("longformer", 128, 16, *params(w=8))
    without_seed = [v for n, v in zip(V.PARAM_NAMES, params(w=8)) if n != "seed"]
    base = attention.draw_base_weights(128, 0, "longformer", 16, *without_seed)
    assert len(base["data"][0]["z"]) == 128 and "longformer(w=8, g=4)" in masked["layout"]["title"]["text"]
    assert "Dense causal" in base["layout"]["title"]["text"]
    # the causal weights do not depend on the chosen mask or its parameters
    other_params = [v for n, v in zip(V.PARAM_NAMES, params(w=4, g=2)) if n != "seed"]
    other = attention.draw_base_weights(128, 0, "bigbird", 32, *other_params)
    assert other.to_plotly_json()["data"][0]["z"]["bdata"] == base.to_plotly_json()["data"][0]["z"]["bdata"]
    # ... so a mask parameter being edited (empty: refused) does not keep the base at an old length
    being_edited = [None if n == "w" else v for n, v in zip([n for n in V.PARAM_NAMES if n != "seed"], without_seed)]
    edited = attention.draw_base_weights(256, 0, "longformer", 16, *being_edited)
    assert edited is not dash.no_update and len(edited["data"][0]["z"]) == 256
    frame = pd.DataFrame(rows)
    assert list(frame["mask"])[:2] == ["full", "causal"] and len(frame) == len(M.MASK_KINDS)
    assert frame.loc[frame["mask"] == "causal", "mass_kept"].item() == pytest.approx(1.0)
    assert (frame["mass_kept"] <= 1 + 1e-6).all() and "128 tokens" in note


def test_plan_sweep_on_cpu(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    plan = attention.plan_sweep([512, 256], ["sliding_window", "bigbird"], [], 32, *params(w=16))
    assert plan.total == 2 * (2 + 2 * 2) and plan.params["seq_lens"] == [256, 512]
    first = next(iter(plan.rows))
    assert first["seq_len"] == 256 and first["impl"] == "sdpa-causal" and first["device"] == "cpu"
    # only what the widgets offer (engine.attention.views.SWEEP_SEQS, SWEEP_MASKS)
    with pytest.raises(ValueError, match="sequence length: expected one of 256, 512"):
        attention.plan_sweep([64], ["bigbird"], [], 32, *params())
    with pytest.raises(ValueError, match="mask: expected one of"):
        attention.plan_sweep([256], ["causal"], [], 32, *params())
    with pytest.raises(ValueError, match="sequence lengths: expected at least one"):
        attention.plan_sweep([], ["bigbird"], [], 32, *params())
    with pytest.raises(ValueError, match="masks: expected at least one"):
        attention.plan_sweep([64], [], [], 32, *params())


def test_plan_refuses_sweeps_over_the_memory_budget(monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_MEMORY_BUDGET_MB", "64")
    with pytest.raises(ValueError, match="expected at most 64 MB"):
        attention.plan_sweep([4096], ["bigbird"], [], 32, *params())


def test_draw_sweep(sweep_rows):
    cross, breakdown, table, text = attention.draw_sweep(sweep_rows)
    names = [t["name"] for t in cross["data"]]
    assert "sliding_window(w=16) · sdpa-masked" in names
    assert not any("· flex" in n and "theory" not in n for n in names)  # unavailable: never drawn
    assert cross["layout"]["xaxis"]["title"]["text"] == "sequence length S (tokens)"
    assert {t["name"] for t in breakdown["data"]} == {"mask build", "compile", "kernel (median)"}
    assert "unavailable" in str(text)
    assert "vs causal (x)" in str(table)  # short headers with units; the CSV keeps speedup_vs_causal
    empty = attention.draw_sweep([])
    assert empty[2] is None and "no measured rows" in str(empty[0])
    assert attention.draw_sweep("junk")[2] is None and attention.draw_sweep([1, "a"])[2] is None
    dense, *_rest = attention.draw_sweep(sweep_rows, "dense")
    assert dense["layout"]["yaxis"]["title"]["text"] == "speedup vs SDPA without mask (x)"
    masked = next(t for t in dense["data"] if t["name"] == "sliding_window(w=16) · sdpa-masked")
    rows = [r for r in sweep_rows if r["impl"] == "sdpa-masked"]
    assert list(masked["y"]) == pytest.approx([r["speedup_vs_dense"] for r in rows])


def test_reference_csv_is_listed_and_drawn(results_dir, sweep_rows):
    tmp_path = results_dir
    assert attention.list_reference(None) == ([], None)
    assert "No reference CSV" in str(attention.draw_reference(None)[1])
    rows = [dict(r, device_name="NVIDIA H100 80GB HBM3") for r in sweep_rows]
    pd.DataFrame(rows).to_csv(tmp_path / "attention_h100.csv", index=False)
    (tmp_path / "moe_h100.csv").write_text("a\n1\n")
    (tmp_path / "attention_other.csv").write_text("a,b\n1,2\n")  # not a sweep: not listed
    (tmp_path / "attention").mkdir()
    pd.DataFrame(rows).to_csv(tmp_path / "attention" / "attention_sweep.csv", index=False)
    options, value = attention.list_reference(None)
    assert [o["value"] for o in options] == ["attention/attention_sweep.csv", "attention_h100.csv"]
    # the newest measurement is shown first, whatever its file name
    newer = [dict(r, measured_at="2030-01-01T00:00:00+00:00") for r in rows]
    pd.DataFrame(newer).to_csv(tmp_path / "attention" / "attention_sweep.csv", index=False)
    assert attention.list_reference(None)[1] == "attention/attention_sweep.csv"
    value = "attention_h100.csv"
    fig, note, data, breakdown, table, bare = attention.draw_reference(value)
    assert "NVIDIA H100" in str(note) and "NVIDIA H100" in fig["layout"]["title"]["text"]
    assert "unavailable" in str(note)  # flex rows of this CPU run
    assert len(data) == len(rows) and "kernel (median)" in str(breakdown)
    assert "attention-ref-rows-table" in str(table)


def test_bare_check_table(results_dir, sweep_rows):
    tmp_path = results_dir
    pd.DataFrame(sweep_rows).to_csv(tmp_path / "attention_sweep.csv", index=False)
    assert attention.draw_reference("attention_sweep.csv")[5] is None  # no bare check beside it
    assert attention.draw_reference("../../etc/passwd")[5] is None and attention.draw_reference(["x"])[5] is None
    pd.DataFrame([{"seq_len": 4096, "window": 256, "status": "ok", "bare_sdpa_causal_ms": 2.0,
                   "bare_flex_ms": 1.8, "bare_speedup": 2.0 / 1.8, "lab_speedup": 1.1,
                   "speedup_lab_over_bare": 0.99, "within_10pct": True,
                   "device_name": "NVIDIA H100"}]).to_csv(tmp_path / V.BARE_FILE, index=False)
    out = str(attention.draw_reference("attention_sweep.csv")[5])
    assert "attention-bare-table" in out and "speedup_lab_over_bare" in out and "NVIDIA H100" in out


def test_verdict_names_what_it_left_out_as_noisy():
    rows = [{"impl": "flex", "status": "ok", "mask": "sliding_window(w=4)", "seq_len": s,
             "speedup_vs_causal": sp, "noisy": s == 1024} for s, sp in ((512, 0.8), (1024, 0.6), (2048, 1.5))]
    text = str(attention.crossover_text(rows))
    assert "sliding_window(w=4) from S = 2048" in text
    assert "Left out as noisy" in text and "S = 1024" in text
    only_noisy = [dict(r, noisy=True) for r in rows]
    assert "No settled FlexAttention timing" in str(attention.crossover_text(only_noisy))


def test_noisy_points_are_hollow_and_the_reference_label_sits_on_its_line():
    from components import figures_attention as figs
    from engine.bench.measurement import NOISY_LABEL

    rows = [{"impl": impl, "status": "ok", "mask": m, "seq_len": s, "speedup_vs_causal": sp,
             "kernel_ms": 1.0, "noisy": noisy}
            for impl, m, s, sp, noisy in (("sdpa-causal", "causal", 512, 1.0, False),
                                          ("sdpa-causal", "causal", 1024, 1.0, True),
                                          ("flex", "w", 512, 0.8, False), ("flex", "w", 1024, 1.3, False))]
    fig = figs.crossover_figure(rows)
    flex = next(t for t in fig.data if t.name == "w · flex")
    assert list(flex.marker.symbol) == ["circle", "circle-open"]  # 1024: its baseline was noisy
    assert any(t.name == NOISY_LABEL for t in fig.data)
    label = next(a for a in fig.layout.annotations if a.text.startswith("as fast as"))
    assert fig.layout.yaxis.type == "log" and label.y == 0.0  # log10(1): on the line, not at 10


def test_the_sweep_table_keeps_a_long_status_to_one_line_and_says_it_once_below():
    reason = ("unavailable: on CPU, FlexAttention without torch.compile is an unfused reference that "
              "materialises every score")
    rows = [{"seq_len": s, "mask": "sliding_window(w=256)", "impl": impl, "status": st, "kernel_ms": k}
            for s in (256, 512) for impl, st, k in (("sdpa-masked", "ok", 1.0), ("flex", reason, None))]
    out = attention.sweep_table(rows)
    table, note = out.children
    assert table.id == attention.ID.sweep_rows
    one_line = {s["if"]["column_id"] for s in table.style_data_conditional if s.get("whiteSpace") == "nowrap"}
    assert "status" in one_line
    widths = {s["if"]["column_id"]: s for s in table.style_cell_conditional if "minWidth" in s}
    assert widths["mask"]["minWidth"] == attention.MASK_WIDTH
    assert str(note).count(reason) == 1 and "(2 rows)" in str(note)
    # the cell's whole text is still on hover
    assert any(cell.get("status", {}).get("value") == reason for cell in table.tooltip_data)
    # all ok: just the table
    assert attention.sweep_table([dict(r, status="ok") for r in rows]).id == attention.ID.sweep_rows


def test_figures_legend_below_the_axis_title_and_short_bar_labels():
    from components import figures_attention as figs

    rows = [{"impl": impl, "status": "ok", "mask": m, "seq_len": s, "speedup_vs_causal": sp,
             "block_theory_vs_causal": 2.0, "kernel_ms": 1.0, "mask_build_ms": 0.5, "compile_s": 2.0}
            for s in (512, 1024) for impl, m, sp in (("sdpa-causal", "causal", 1.0),
                                                      ("flex", "bigbird(w=256, g=16, r=2, seed=0, block=128)", 0.8),
                                                      ("sdpa-masked", "bigbird(w=256, g=16, r=2, seed=0, block=128)", 0.5))]
    fig = figs.crossover_figure(rows)
    entries = [t for t in fig.data if t.showlegend is not False and t.name]
    assert fig.layout.legend.orientation == "v" and fig.layout.legend.y < 0
    assert fig.layout.margin.b >= 62 + 20 * len(entries)
    assert "2" not in fig.layout.yaxis.ticktext[1:] or fig.layout.yaxis.ticktext.count("2") == 1
    bars = figs.time_breakdown_figure(rows)
    assert list(bars.layout.xaxis.ticktext) == ["causal · sdpa-causal", "bigbird · flex", "bigbird · sdpa-masked"]
    assert bars.layout.xaxis.tickvals[1] == "bigbird(w=256, g=16, r=2, seed=0, block=128) · flex"  # hover: in full
    assert bars.layout.margin.b > 0.71 * 6.4 * len("bigbird · sdpa-masked")
