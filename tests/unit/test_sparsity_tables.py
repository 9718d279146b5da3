"""engine.sparse.tables (the tables of /structured-sparsity) and engine.bench.bsr_runs
(which committed lab-bsr run is shown per timing method)."""
import pandas as pd
import pytest

from engine.bench import bsr_runs
from engine.bench.measurement import CUDA_GRAPH, EAGER
from engine.sparse import tables

PERCALL_HEADER = ("device,torch,triton,date,n,k,dtype,block,sparsity,density,method,timing,ms,"
                  "ms_q25,ms_q75,noisy,speedup_vs_dense,config,rel_err\n")
KERNEL = "cuda-graph replay, L2 evicted before each call"
CALL = "eager per call, back-to-back over 4 rotating input sets"
# (date, k, lab-bsr per-call ms): three committed per-call runs; dense per call is 0.08 ms
PERCALL_RUNS = [("2026-12-01 10:00 UTC", 512, 0.04), ("2026-12-03 10:00 UTC", 512, 0.02),
                ("2026-12-05 10:00 UTC", 2048, 0.01)]


def _percall_csv(path, date, k, lab_ms):
    lines = [PERCALL_HEADER]
    for s in (0.5, 0.9):
        for method, timing, ms in (("lab-bsr", KERNEL, 0.018), ("dense", KERNEL, 0.081),
                                   ("lab-bsr", CALL, lab_ms), ("dense", CALL, 0.08)):
            lines.append(f"NVIDIA H200,2.11,3.6,{date},8192,{k},fp16,64,{s},{1 - s},{method},"
                         f'"{timing}",{ms},{ms},{ms},False,1.0,,\n')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))


def test_chapter_table_is_labelled_as_the_chapters():
    assert {r["pattern"] for r in tables.CHAPTER_ACCURACY} >= {"unstructured", "block 16x16", "2:4"}
    facts = {(r["pattern"], r["sparsity"]): r["chapter (ResNet-50)"] for r in tables.CHAPTER_ACCURACY}
    assert facts[("unstructured", "90 %")] == "1-2 %" and facts[("2:4", "50 %")] == "< 1 %"
    assert facts[("block 16x16", "75 %")] == "1-2 %"


def test_chapter_table_gets_our_drop_beside_it():
    rows = [{"model": "mlp", "pattern": "2:4", "target_sparsity": 0.5, "drop_pts": 0.44},
            {"model": "cnn", "pattern": "unstructured", "target_sparsity": 0.9, "drop_pts": 1.11},
            {"model": "cnn", "pattern": "unstructured", "target_sparsity": 0.9, "drop_pts": 2.11}]
    table = {r["pattern"]: r for r in tables.chapter_beside_ours(rows).to_dict("records")}
    assert table["2:4"]["ours MLP"] == 0.44 and table["2:4"]["ours CNN"] == "not run"
    assert table["unstructured"]["ours CNN"] == "1.61 (1.11 to 2.11)"
    assert table["block 64x64"]["chapter (ResNet-50)"] == "1-2 %"


def test_timing_frame_names_whose_rows_and_a_cancel():
    rows = [{"device_name": "CPU: Xeon", "median_s": 0.002, "iqr_s": 0.0001}] * 3
    frame = tables.timing_frame(rows, None, cancelled_total=20)
    assert set(frame["source"]) == {"this run: CPU (cancelled: 3 of 20 rows)"}
    assert tables.in_ms(frame)["median_ms"].tolist() == pytest.approx([2.0] * 3)
    assert tables.timing_frame([], None).empty


def test_goals_table_says_not_measured_for_missing_rows():
    goals = [{"target": "a", "goal": ">= 5x", "reached": 3.9156, "unit": "x", "met": False, "block": 64,
              "timing": "t"},
             {"target": "b", "goal": ">= 15x", "reached": float("nan"), "unit": "x", "met": False,
              "block": 64, "timing": "t"},
             {"target": "c", "goal": "<= 40 %", "reached": 0.375, "unit": "sparsity", "met": True,
              "block": 64, "timing": "t"}]
    assert tables.goals_table(goals)["reached"].tolist() == ["3.92x", "not measured", "37.5 %"]


def test_per_call_view_takes_the_newest_comparable_run_by_its_own_date(results_dir):
    for i, (date, k, ms) in enumerate(PERCALL_RUNS):
        _percall_csv(results_dir / f"run{i}" / "bsr_percall.csv", date, k, ms)
    # file times say the opposite of the dates: they must not count
    import os
    for i in range(3):
        os.utime(results_dir / f"run{i}" / "bsr_percall.csv", (1e9 - i * 1e6, 1e9 - i * 1e6))
    like = bsr_runs.runs(CUDA_GRAPH)[0]
    assert like.reference.date == "2026-12-05 10:00"       # the newest kernel-only rows
    pick = bsr_runs.per_call_run(like=like)
    assert pick.reference.name == "run2/bsr_percall.csv" and pick.mismatch == ""
    # beside a k = 512 run, the newest k = 512 run is more alike than the newer k = 2048 one
    like512 = next(r for r in bsr_runs.runs(CUDA_GRAPH) if r.reference.name == "run1/bsr_percall.csv")
    pick = bsr_runs.per_call_run(like=like512)
    assert pick.reference.name == "run1/bsr_percall.csv"
    assert "2026-12-03 10:00" in pick.label and EAGER in pick.label
    lab = pick.frame[(pick.frame["method"] == "lab-bsr")]
    assert lab["speedup_vs_dense"].tolist() == pytest.approx([4.0, 4.0])  # 0.08 / 0.02, same method
    assert set(pick.frame["timing"]) == {EAGER}
    # a later run on another device is newer but unlike: picked only when nothing is alike
    _percall_csv(results_dir / "h100" / "bsr_percall.csv", "2026-12-09 10:00 UTC", 512, 0.05)
    (results_dir / "h100" / "bsr_percall.csv").write_text(
        (results_dir / "h100" / "bsr_percall.csv").read_text().replace("NVIDIA H200", "NVIDIA H100"))
    assert bsr_runs.per_call_run(like=like512).reference.name == "run1/bsr_percall.csv"
    assert bsr_runs.latest_side_by_side().name == "h100/bsr_percall.csv"


def test_no_kernel_only_run_without_the_goal_rows(results_dir):
    _percall_csv(results_dir / "bsr_percall.csv", *PERCALL_RUNS[0])
    assert bsr_runs.kernel_only_run() is None          # no torch BSR rows, two sparsities only
    assert bsr_runs.per_call_run() is not None and bsr_runs.unreadable_runs() == []


def test_the_committed_runs_are_read():
    kernel = bsr_runs.kernel_only_run()
    if kernel is None:
        pytest.skip("no committed lab-bsr run")
    call = bsr_runs.per_call_run(like=kernel)
    assert kernel.method == CUDA_GRAPH and call.method == EAGER
    assert call.reference.date >= kernel.reference.date or call.mismatch
    assert set(kernel.frame["method"]) == {"dense", "torch-bsr", "lab-bsr"}
    assert isinstance(call.frame, pd.DataFrame) and (call.frame["ms"] > 0).all()


def test_a_break_even_below_the_lowest_sparsity_measured_is_not_measured(results_dir):
    """Already faster than dense at the lowest sparsity measured (50 %): the break-even is at
    most 50 %, so the "<= 40 %" goal is not measured, neither met nor missed."""
    _percall_csv(results_dir / "bsr_percall.csv", *PERCALL_RUNS[0])
    run = bsr_runs.per_call_run()
    assert bsr_runs.break_evens(run, "events")["lab-bsr"] == (0.5, True)
    goal = [g for g in bsr_runs.goals(run, "events") if g["unit"] == "sparsity"][0]
    assert goal["reached"] != goal["reached"] and goal["met"] is None   # not measured: no hit, no miss
    assert tables.goals_table([goal])["reached"].tolist() == ["not measured"]
