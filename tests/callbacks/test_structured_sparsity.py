"""/structured-sparsity callbacks called as plain functions."""
import dash
import numpy as np
import pandas as pd
import pytest

if not dash.page_registry or "pages.structured_sparsity" not in dash.page_registry:
    dash.Dash(__name__, use_pages=True, pages_folder="")

import pages.structured_sparsity as ss  # noqa: E402
from engine.bench import pattern_sweep  # noqa: E402

# (sparsity, block slider index, nm, size): what the sliders send
PATTERN_CASES = [(0.75, 3, "2:4", 256), (0.5, 0, "1:4", 64), (0.9, 6, "4:8", 128),
                 (0.0, 2, "2:4", 2048)]
BAD_SWEEPS = [
    ((100, 8, "float32", [8], [0.5], ["on"], 2), "matrix size: expected one of"),
    ((64, 8, "float32", [], [0.5], [], 2), "expected at least one block size or 2:4"),
    ((64, 8, "float32", [128], [0.5], [], 2), "expected a block size at most the matrix size 64"),
    ((64, 8, "float32", [8], [], [], 2), "sparsities: expected at least one"),
]


@pytest.mark.parametrize("sparsity,block_index,nm,size", PATTERN_CASES)
def test_patterns_update_with_the_sliders(sparsity, block_index, nm, size):
    fig, data, columns, msg = ss.draw_patterns(sparsity, block_index, nm, size)
    block = ss.BLOCK_SIZES[block_index]
    assert (msg is None) == (block < size) and len(fig.data) == 6  # whole matrix + corner, per pattern
    by = {r["pattern"]: r for r in data}
    assert set(by) == {"unstructured", f"block {block}x{block}", nm}
    assert by["unstructured"]["sparsity"] == pytest.approx(sparsity, abs=1e-4)
    n, m = map(int, nm.split(":"))
    assert by[nm]["sparsity"] == pytest.approx(1 - n / m)
    assert all(r["violations"] == 0 for r in data)
    assert max(max(len(row) for row in trace.z) for trace in fig.data) <= 128  # aggregated
    assert all(trace.z.dtype == np.float32 for trace in fig.data)  # sent as binary, 4 bytes a cell
    whole = [t for t in fig.data if t.xgap is None]
    if size > 128:  # downsampled by block density, and the figure says so
        f = size // 128
        assert f"cells of {f} x {f}" in " ".join(a.text for a in fig.layout.annotations)
        assert whole[0].colorbar.title.text == f"fraction kept per {f}x{f} cell"
        assert all(0 <= t.z.min() and t.z.max() <= 1 for t in whole)
    assert {c["id"] for c in columns} >= {"pattern", "sparsity", "energy_kept"}


@pytest.mark.parametrize("size", [256, 2048])
def test_pattern_response_is_small(size):
    """The heatmaps' callback answers in well under 1 MB at every size the page offers."""
    import json

    from plotly.utils import PlotlyJSONEncoder

    out = ss.draw_patterns(0.9, 6, "2:4", size)
    assert len(json.dumps([out[0].to_plotly_json(), out[1]], cls=PlotlyJSONEncoder)) < 400_000


def test_pattern_view_is_cached_per_input_and_keys_differ(tmp_path, monkeypatch):
    from engine.sparse import pruning

    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    first = pruning.pattern_view(64, 0.5, 4, "2:4")
    hits = pruning._pattern_view.cache_info().hits
    again = pruning.pattern_view(64, 0.5, 4, "2:4")
    assert pruning._pattern_view.cache_info().hits == hits + 1
    assert np.array_equal(first.overview[0], again.overview[0]) and first.rows == again.rows
    other = pruning.pattern_view(64, 0.6, 4, "2:4")  # another sparsity: another entry
    assert other.rows[0]["sparsity"] != first.rows[0]["sparsity"]


def test_pattern_error_is_a_message_not_a_traceback():
    fig, data, _cols, msg = ss.draw_patterns(0.5, 3, "3:4", 64)
    assert data == [] and "expected one of" in str(msg)


@pytest.mark.parametrize("args,message", BAD_SWEEPS)
def test_bad_sweep_inputs_say_expected_got(args, message):
    with pytest.raises(ValueError, match=message):
        ss.sweep_config(*args)


def test_timing_rows_draw_figures_and_tables():
    plan = ss.timing_plan(64, 8, "float32", [8, 16], [0.5, 0.9], ["on"], 2)
    rows = list(plan.rows)
    assert len(rows) == plan.total
    figs_and_tables = ss.draw_timing(rows, None)
    speedup, eff, be_fig, nm_fig, be_rows, _be_cols, table, _cols, note = figs_and_tables
    assert note is None
    assert speedup.data and eff.data and not nm_fig.data  # 2:4 is not drawn on a CPU
    assert "needs an NVIDIA GPU (sm80+)" in nm_fig.layout.annotations[0].text
    assert speedup.layout.xaxis.title.text and speedup.layout.yaxis.title.text
    assert {r["block"] for r in be_rows} == {8, 16}
    nm = [r for r in table if r["backend"] == "torch-2:4"]
    assert nm and nm[0]["status"] == "unsupported" and "needs an NVIDIA GPU (sm80+)" in nm[0]["message"]
    assert nm[0]["median_ms"] is None  # never drawn as a number
    ok = [r for r in table if r["status"] == "ok"]
    by_spec = {(r["backend"], r["block"], r["sparsity"]): r for r in rows if r["status"] == "ok"}
    assert all(r["median_ms"] == pytest.approx(1e3 * by_spec[(r["backend"], r["block"], r["sparsity"])]["median_s"])
               for r in ok if (r["backend"], r["block"], r["sparsity"]) in by_spec)
    headers = {c["id"]: c["name"] for c in _cols}
    assert headers["median_ms"] == "median_ms (ms)" and headers["speedup"] == "speedup (x dense)"
    assert all(c.get("format") for c in _cols if c["id"] in ("median_ms", "speedup", "efficiency"))


def test_a_cancelled_run_is_labelled_as_cancelled_in_every_legend():
    plan = ss.timing_plan(64, 8, "float32", [8], [0.5, 0.9], [], 2)
    rows = list(plan.rows)[:3]
    status = f"cancelled: {len(rows)} finished rows kept (stored, see Runs)"
    speedup, *_rest, table, _cols, note = ss.draw_timing(rows, None, status, str(plan.total))
    label = f"(cancelled: 3 of {plan.total} rows)"
    assert all(label in r["source"] for r in table)
    assert label in " ".join(a.text for a in speedup.layout.annotations)  # the panel title
    # cancelled right after the dense row, beside the committed reference: still drawn
    opts, ref = ss.reference_options(None)
    speedup, *_rest, table, _cols, note = ss.draw_timing(rows[:1], ref, "cancelled: 1 finished", "74")
    assert speedup.data and any("(cancelled: 1 of 74 rows)" in r["source"] for r in table)
    done = ss.draw_timing(rows, None, f"done: {len(rows)} rows in 1 s (run 1)", str(plan.total))
    assert all("cancelled" not in r["source"] for r in done[6])


def test_reference_csv_is_drawn_beside_the_local_run(results_dir):
    plan = ss.timing_plan(64, 8, "float32", [8], [0.5, 0.9], [], 1)
    rows = list(plan.rows)
    ref = pd.DataFrame(rows).assign(device_name="NVIDIA H100 80GB HBM3")
    ref.to_csv(results_dir / "gpu_structured_sparsity.csv", index=False)
    options, value = ss.reference_options(None)
    assert value == "gpu_structured_sparsity.csv"
    assert options[0]["label"].startswith("gpu_structured_sparsity.csv (H100 80GB HBM3")
    speedup, *_rest, note = ss.draw_timing(rows, value)
    titles = [a.text for a in speedup.layout.annotations]
    assert any("reference: H100" in t for t in titles) and any("this run" in t for t in titles)
    assert "H100" in str(note)


def test_reference_outside_results_is_refused(tmp_path):
    bad = tmp_path / "x.csv"
    bad.write_text("a\n1\n")
    *_rest, note = ss.draw_timing([], str(bad))
    assert "expected a committed structured run" in str(note)


def test_accuracy_plan_and_drawing():
    plan = ss.accuracy_plan(["mlp"], ["unstructured", "2:4"], [0.75], 2, 1)
    assert plan.total == 3
    rows = list(plan.rows)
    fig, data, columns, chapter, _ = ss.draw_accuracy(rows)
    assert any(r["ours MLP"] != "not run" for r in chapter)
    assert [r["pattern"] for r in data] == ["dense", "unstructured", "2:4"]
    assert fig.layout.yaxis.title.text.startswith("accuracy drop")
    assert len(fig.data) == 1 and list(fig.data[0].x) == ["unstructured @ 75 %", "2:4 @ 50 %"]
    assert list(fig.data[0].y) == [r["drop_pts"] for r in rows[1:]]
    before = ss.draw_accuracy(rows, "pruned")[0]
    assert list(before.data[0].y) == pytest.approx([100 * (r["acc_dense"] - r["acc_pruned"])
                                                    for r in rows[1:]])


@pytest.mark.parametrize("args,message", [
    (([], ["2:4"], [0.5], 2, 1), "models: expected"),
    ((["mlp"], [], [0.5], 2, 1), "patterns: expected"),
    ((["mlp"], ["unstructured"], [], 2, 1), "sparsities: expected"),
    ((["mlp"], ["2:4"], [], 0, 1), r"epochs: expected an integer in \[1, 100\]"),
])
def test_accuracy_inputs_rejected(args, message):
    with pytest.raises(ValueError, match=message):
        ss.accuracy_plan(*args)


def test_timing_notes_list_what_this_cpu_cannot_run():
    note = str(ss.timing_notes(64, 8, "float16", [8], [0.5], ["on"], 2))
    assert "torch-2:4: unavailable: needs an NVIDIA GPU (sm80+)" in note
    assert "torch-bsr: unsupported: expected dtype" in note
    assert "expected a block size at most" in str(ss.timing_notes(64, 8, "float32", [128], [0.5], [], 2))


def test_timing_notes_check_every_ticked_block(monkeypatch):
    """A reason that holds for the second block only is reported, with that block named."""
    def fake(name, spec):
        return "unsupported: expected block 8, got 16" if name == "torch-csr" and spec.block == 16 else None

    monkeypatch.setattr(pattern_sweep, "unsupported_reason", fake)
    note = str(ss.timing_notes(64, 8, "float32", [8, 16], [0.5], [], 2))
    assert "torch-csr (block 16): unsupported: expected block 8, got 16" in note


def test_block_larger_than_the_matrix_is_explained():
    _fig, data, _cols, msg = ss.draw_patterns(0.5, 6, "2:4", 64)  # block 128 on 64 x 64
    assert "covers the whole 64 x 64 matrix" in str(msg)
    assert {r["pattern"] for r in data} >= {"block 128x128"}


def test_committed_gpu_reference_draws_24_and_block_speedups():
    options, value = ss.reference_options(None)
    if not value:
        pytest.skip("no committed reference CSV under benchmarks/results/")
    speedup, eff, be_fig, nm_fig, be_rows, _c, table, _c2, note = ss.draw_timing([], value)
    assert "H100" in str(note) or "reference" in str(note)
    assert nm_fig.data and all(y > 0 for trace in nm_fig.data for y in trace.y)
    assert {r["block"] for r in be_rows} >= {16, 32, 64}
    assert any(t.name.startswith("torch-bsr b64") for t in speedup.data)


def test_square_24_products_are_planned():
    config = ss.sweep_config(64, 8, "float16", [], [0.5], ["on", "square"], 1)
    assert config.nm_shapes == [(64, 8), (64, 64)] and config.total == 4


def test_several_seeds_give_mean_and_whiskers():
    plan = ss.accuracy_plan(["mlp"], ["2:4"], [], 1, 1, 2)
    assert plan.total == 4
    rows = list(plan.rows)
    assert [r["seed"] for r in rows] == [0, 0, 1, 1]
    fig, data, _cols, chapter, _ = ss.draw_accuracy(rows)
    drops = [r["drop_pts"] for r in rows if r["pattern"] == "2:4"]
    assert fig.data[0].y[0] == pytest.approx(sum(drops) / 2)
    assert fig.data[0].error_y.visible
    two_four = [r for r in chapter if r["pattern"] == "2:4"][0]["ours MLP"]
    assert " to " in str(two_four)


def test_lab_bsr_benchmark_section_draws_the_committed_run_and_its_targets():
    fig, note, goals, goal_cols, rows, cols = ss.draw_bsr_bench("graph")
    names = {t.name for t in fig.data}
    assert {"lab-bsr, 64x64", "torch-bsr, 64x64", "lab goals (64x64 blocks)"} <= names
    assert "goals this run measures met at 64 x 64 blocks" in str(note) and "of the lab's 4 not measured" in str(note)
    assert "As fast as dense" in str(note)
    assert [g["target"] for g in goals][0] == "lab-bsr vs dense at 90 % sparsity" and len(goals) == 4
    assert rows and {r["method"] for r in rows} == {"dense", "torch-bsr", "lab-bsr"}
    assert "speedup_vs_dense" in {c["id"] for c in cols}
    events = ss.draw_bsr_bench("events")
    assert events[2][0]["timing"].startswith("call by call") and events[2] != goals


def test_lab_bsr_benchmark_section_missing_or_broken_file(results_dir):
    fig, note, *tables = ss.draw_bsr_bench("graph")
    assert note is None and tables == [[], [], [], []] and "No lab-bsr benchmark" in str(fig)
    (results_dir / "bsr_bench.csv").write_text("method,ms,nnz_blocks,speedup_vs_torch_bsr,timing\nlab-bsr,1,2,1,x\n")
    fig, note, *tables = ss.draw_bsr_bench("graph")
    assert "bsr_bench.csv" in str(note) and "expected columns" in str(note) and tables == [[], [], [], []]
    assert "expected one of" in str(ss.draw_bsr_bench("wall")[1])


def test_call_by_call_shows_the_kernel_only_runs_own_per_call_timings_and_names_them():
    """The per-call view takes the kernel-only run's own per-call timings (same run, same
    matrices, same blocks) over a newer per-call run of other blocks and another timing
    method, and its note and title say which (device, date, method)."""
    kernel = ss.draw_bsr_bench("graph")
    events = ss.draw_bsr_bench("events")
    from engine.bench.bsr_runs import kernel_only_run, per_call_run

    k, c = kernel_only_run(), per_call_run(like=kernel_only_run())
    assert c.reference == k.reference and c.mismatch == "" and c.blocks == k.blocks
    assert c.label in str(events[1]) and c.label in events[0].layout.title.text
    assert "eager per call" in c.label and "cuda-graph replay" in str(kernel[1])
    assert k.label in str(events[1]) and "same run's per-call timings" in str(events[1])
    assert c.timing_text in str(events[1])  # how the per-call rows were timed, in the CSV's words
    assert {r["timing"] for r in events[4]} == {"eager per call"}


def test_noisy_lab_bsr_points_are_drawn_hollow_and_grey():
    """The committed run's noisy per-call rows (IQR/median > 0.1 from their quartiles) are
    hollow grey points with the noisy legend entry; its kernel-only rows are not noisy."""
    from components.figures_common import NOISY_COLOR
    from engine.bench.bsr_runs import kernel_only_run, per_call_run
    from engine.bench.measurement import NOISY_LABEL

    call = per_call_run(like=kernel_only_run())
    fig, note = ss.draw_bsr_bench("events")[:2]
    noisy = call.frame[call.frame["speedup_noisy"] & call.frame["method"].isin(["lab-bsr", "torch-bsr"])]
    assert len(noisy) and NOISY_LABEL in {t.name for t in fig.data} and NOISY_LABEL in str(note)
    drawn = {(t.name, round(x, 4)) for t in fig.data if t.marker.color is not None
             and not isinstance(t.marker.color, str) for x, c in zip(t.x, t.marker.color) if c == NOISY_COLOR}
    assert drawn == {(f"{r.method}, {r.block}x{r.block}", round(r.sparsity, 4)) for r in noisy.itertuples()}
    kernel_fig = ss.draw_bsr_bench("graph")[0]
    assert not kernel_only_run().frame["speedup_noisy"].any() and NOISY_LABEL not in {t.name for t in kernel_fig.data}


def _kernel_only_csv(path, blocks=(32, 64)):
    """bsr_bench.py's older one-row-per-point CSV without per-call columns: dense at 1 ms,
    torch BSR at 2 ms, lab-bsr at 1 / (1 / density) * 2 ms."""
    head = "device,torch,triton,date,n,k,dtype,block,sparsity,density,nnz_blocks,method,ms,timing," \
           "speedup_vs_dense,speedup_vs_torch_bsr,theory\n"
    lines = [head]
    for b in blocks:
        for s in (0.5, 0.75, 0.9):
            for method, ms in (("dense", 1.0), ("torch-bsr", 2.0), ("lab-bsr", 2 * (1 - s))):
                lines.append(f'NVIDIA H200,2.11,3.6,2026-11-30 11:02 UTC,8192,512,fp16,{b},{s},{1 - s},10,'
                             f'{method},{ms},"cuda-graph replay, L2 evicted before each call",1,1,{1 / (1 - s)}\n')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))


def _percall_only_csv(path):
    """gpu_bsr_app.py's CSV at 64 x 64 blocks only, timed over rotating input sets."""
    from engine.bench.bsr_results import KERNEL_ONLY, PER_CALL

    lines = ["device,date,n,k,dtype,block,sparsity,density,method,timing,ms,ms_q25,ms_q75,noisy,speedup_vs_dense\n"]
    for s in (0.5, 0.9):
        for method, timing, ms in (("lab-bsr", KERNEL_ONLY, 0.02), ("dense", KERNEL_ONLY, 0.08),
                                   ("lab-bsr", PER_CALL, 0.025), ("dense", PER_CALL, 0.09)):
            lines.append(f'NVIDIA H200,2026-12-02 04:18 UTC,8192,512,float16,64,{s},{1 - s},{method},"{timing}",'
                         f"{ms},{ms},{ms},False,1.0\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(lines))


def test_a_per_call_run_of_other_blocks_and_method_names_each_mismatch(results_dir):
    """Beside a kernel-only run with no per-call timings of its own, the per-call run of
    64 x 64 blocks only, timed another way, is named unlike in the note and the legend."""
    _kernel_only_csv(results_dir / "bsr_bench.csv")
    _percall_only_csv(results_dir / "bsr_percall" / "bsr_percall.csv")
    fig, note = ss.draw_bsr_bench("events")[:2]
    text = str(note)
    assert "not like for like" in text and "blocks 64 (kernel-only: 32, 64)" in text
    assert "same device and shape" not in text and "bsr_percall/bsr_percall.csv" in text
    assert "blocks 64 (kernel-only: 32, 64)" in fig.layout.legend.title.text
    fig, note = ss.draw_bsr_bench("graph")[:2]
    assert "bsr_bench.csv" in str(note) and not fig.layout.legend.title.text


def test_kernel_section_heading_comes_from_the_run_and_a_broken_run_is_a_note(results_dir):
    def texts():
        return str(ss._kernel_section())

    assert "side by side (" not in texts() and "No per-call run committed" in texts()
    _percall_only_csv(results_dir / "bsr_percall" / "bsr_percall.csv")
    assert "Per call and kernel-only, side by side (64 x 64 blocks, n = 8192, float16)" in texts()
    path = results_dir / "bsr_percall" / "bsr_percall.csv"
    path.write_text(path.read_text().replace(",dtype,", ",dtyp,"))
    assert "could not be read: bsr_percall/bsr_percall.csv" in texts() and "expected columns" in texts()
    assert "5x of 10x" in texts()  # the goals, written from engine.bench.bsr_results' constants
    # the layout reads the committed runs, so its cached response is keyed by them too
    assert dash.page_registry["pages.structured_sparsity"]["pure_layout"] == {"reads_references": True}


def test_accuracy_job_runs_on_the_job_device_and_every_row_names_it(monkeypatch):
    """Off a GPU the job trains on the CPU; its meta and every row say which device."""
    monkeypatch.setenv("SPARSITY_LAB_FORCE_CPU", "1")
    plan = ss.accuracy_plan(["mlp"], ["2:4"], [], 1, 0)
    assert plan.meta["device_name"].startswith("CPU: ")
    rows = list(plan.rows)
    assert len(rows) == plan.total == 2
    assert {(r["device"], r["device_name"]) for r in rows} == {("cpu", plan.meta["device_name"])}
    _fig, table, columns, *_ = ss.draw_accuracy(rows)
    assert "device" in {c["id"] for c in columns} and table[0]["device_name"] == plan.meta["device_name"]
