"""/paper callbacks called as plain functions."""
import pandas as pd
import pytest

import app  # noqa: F401  (registers the pages)
from components.figures_common import NOISY_COLOR
from engine.bench.measurement import NOISY_LABEL
from engine.layers import paper as pp
from pages import paper as page

# rows of a fake finished run: (variant, epoch, metric, max_abs_diff_vs_native)
FAKE = [("native", 1, 50.0, 0.0), ("tied", 1, 50.0, 1e-7), ("free", 1, 60.0, 0.4),
        ("native", 2, 70.0, 0.0), ("tied", 2, 70.0, 2e-7), ("free", 2, 65.0, 0.9)]


def _rows():
    return [{"task": "vision", "dataset": "digits", "variant": v, "epoch": e, "train_loss": 1.0 / e,
             "test_loss": 1.1 / e, "metric_name": "accuracy", "metric": m, "epoch_s": 0.1,
             "params": {"native": 100, "tied": 100, "free": 900}[v], "max_abs_diff_vs_native": d}
            for v, e, m, d in FAKE]


def test_draw_run_gives_curves_paper_table_cost_and_verdict():
    fig, table, cols, cost, cost_cols, verdict = page.draw_run(_rows())
    # 3 models x 4 traces, and the noisy legend entry: 2 epochs are too few runs to call steady
    assert len(fig["data"]) == 13 and fig["data"][-1]["name"] == NOISY_LABEL
    row = table[0]
    assert (row["dataset"], row["metric"], row["seeds"]) == ("digits", "accuracy (%)", 1)
    assert (row["native"], row["native epoch"], row["tied"], row["free"]) == (70.0, 2, 70.0, 65.0)
    assert {c["id"] for c in cols} >= {"native", "native sd", "tied epoch"}
    assert next(c for c in cols if c["id"] == "native")["format"]["specifier"] == ".4~g"
    assert [r["params"] for r in cost] == [100, 100, 900]
    text = " ".join(str(v.children) for v in verdict)
    assert "weight-tied sparse model equals the native model" in text
    assert "not better; difference -5" in text and "9.0x" in text
    assert "(over 1 seed)" in text or "(over 1 seed;" in text
def test_draw_run_empty():
    fig, table, cols, cost, cost_cols, verdict = page.draw_run([])
    assert table == [] and cost == [] and "No run yet" in str(verdict[0].children)


def test_plan_training_validates_and_counts_rows():
    plan = page.plan_training(["vision", "text"], ["tied"], 3, 3e-3, 64, None, "co2", 0, 3, "", "")
    assert plan.total == 36 and plan.params["tasks"] == ["vision", "text"] and plan.params["seeds"] == 3
    with pytest.raises(ValueError, match="tasks: expected at least one"):
        page.plan_training([], ["tied"], 3, 3e-3, 64, None, "co2", 0, 3, "", "")
    with pytest.raises(ValueError, match="text file: expected a path inside the data folder"):
        page.plan_training(["text"], [], 3, 3e-3, 64, None, "co2", 0, 3, "", "/etc/passwd")
    with pytest.raises(ValueError, match="text file: expected an existing file inside the data folder"):
        page.plan_training(["text"], [], 3, 3e-3, 64, None, "co2", 0, 3, "", "no/such.txt")


def test_plan_training_rows_stream_from_a_tiny_run():
    plan = page.plan_training(["timeseries"], ["tied"], 1, 3e-3, 64, 64, "sunspots", 0, 1, "", "")
    rows = list(plan.rows)
    assert [r["variant"] for r in rows] == ["native", "tied"]
    assert rows[1]["max_abs_diff_vs_native"] < 1e-4 and "sunspots" in rows[0]["dataset"]


def test_reference_csv_shown_with_its_device(results_dir):
    results = results_dir
    frame = pd.DataFrame(_rows())
    frame["device"] = "NVIDIA H100 80GB HBM3"
    frame.to_csv(results / "gpu_paper.csv", index=False)
    data, cols, note = page.show_reference(["ref"])
    assert data[0]["native"] == 70.0
    assert "NVIDIA H100" in str(note[0].children)
    assert page.show_reference([]) == ([], [], None)


def test_their_table_is_labelled_and_complete():
    rows = page._paper_table_rows()
    assert len(rows) == len(pp.PAPER_RESULTS) == 9
    assert rows[0]["original"] == 90.6 and rows[1]["original"] == "lost in extraction"


def _timed_rows(times: dict) -> list[dict]:
    """Rows of a 3-seed vision run: epoch times per variant (the same for each seed)."""
    return [{"task": "vision", "dataset": "digits", "variant": v, "seed": sd, "epoch": e, "train_loss": 1.0 / e,
             "test_loss": 1.1 / e, "metric_name": "accuracy", "metric": 50.0 + e, "epoch_s": t,
             "params": 100, "max_abs_diff_vs_native": 0.0}
            for v, ts in times.items() for sd in range(3) for e, t in enumerate(ts, start=1)]


def test_time_per_epoch_points_are_drawn_noisy_when_the_epoch_times_are():
    steady, jumpy = [1.0, 1.01, 0.99, 1.0, 1.02], [0.5, 3.0, 0.5, 3.0, 0.5]
    fig = page.draw_run(_timed_rows({"native": steady, "free": jumpy}))[0]
    time_traces = {t["name"]: t for t in fig["data"] if t.get("yaxis") == "y3"}
    free, native = time_traces["free"], time_traces["native"]
    assert set(free["marker"]["color"]) == {NOISY_COLOR}
    assert all(s.endswith("-open") for s in free["marker"]["symbol"])
    assert "noisy in 3 of 3 seeds" in free["hovertemplate"]
    assert "marker" not in native or NOISY_COLOR not in native["marker"].get("color", [])
    assert [t["name"] for t in fig["data"]].count(NOISY_LABEL) == 1
    # all steady: no point drawn noisy, no noisy legend entry
    fig = page.draw_run(_timed_rows({"native": steady, "free": [2 * t for t in steady]}))[0]
    assert NOISY_LABEL not in [t["name"] for t in fig["data"]]
