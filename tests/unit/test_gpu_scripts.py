"""The headless GPU scripts (benchmarks/*.py): they import here, their row-building paths
run on the CPU with tiny fake timings, and what they write is Measurement rows in the
"gpu-script" schema that the readers of committed runs (and /runs) read, like the
older CSVs under benchmarks/results/."""
from __future__ import annotations

import importlib.util
import math
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from engine.bench.bsr_results import load_bsr_bench, percall_table, sweep_rows, targets
from engine.bench.measurement import CUDA_GRAPH, EAGER, WALL_CLOCK, Measurement
from engine.bench.schema import SCRIPT_COLUMNS, kind_of_columns
from engine.bench.script_rows import (GRAPH_TIMING, ROTATING_TIMING, SMOKE_TIMING, ScriptRun,
                                      write_rows)

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
RESULTS = BENCH / "results"
# the lead's scripts (tested by tests/integration and the load-test results) stay out
SCRIPTS = sorted(p.name for p in BENCH.glob("*.py") if p.name not in ("load_test.py", "gpu_app_smoke.py"))
GPU = ScriptRun("test", "cuda", "GPU X", (("torch_version", "2.x"), ("triton_version", "3.x")),
                "2026-12-02 10:00 UTC")


def _script(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name[:-3]}", BENCH / name)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # (dataclasses look their module up)
    spec.loader.exec_module(mod)  # every script runs only under __main__
    return mod


def _fake(task, seconds: float, method: str = CUDA_GRAPH) -> Measurement:
    """Five runs around ``seconds`` (2 % spread: not noisy)."""
    return Measurement.from_times(task, [seconds * f for f in (0.98, 0.99, 1.0, 1.01, 1.02)], method=method)


@pytest.mark.parametrize("name", SCRIPTS)
def test_every_script_imports_without_running(name):
    assert hasattr(_script(name), "main") or name == "bsr_explore_kernels.py"


@pytest.mark.parametrize("name", ["bsr_bench.py", "gpu_bsr_app.py"])
def test_help_works(name):
    done = subprocess.run([sys.executable, str(BENCH / name), "--help"], capture_output=True, text=True,
                          timeout=120, cwd=ROOT)
    assert done.returncode == 0 and "--out" in done.stdout, done.stderr[-2000:]


def test_bsr_bench_rows_are_measurements_that_the_readers_read(tmp_path):
    bench = _script("bsr_bench.py")
    rows = []
    for s, (lab_ms, bsr_ms) in {0.5: (0.5, 4.0), 0.9: (0.2, 3.0)}.items():
        point = bench.Point(n=256, k=64, block=64, sparsity=s, density=1 - s, nnz_blocks=int(16 * (1 - s)))
        measured = {b: {"kernel-only": _fake(point.task(GPU, b), ms * 1e-3),
                        "per call": _fake(point.task(GPU, b), 2 * ms * 1e-3, EAGER)}
                    for b, ms in (("dense", 1.0), ("torch-bsr", bsr_ms), ("lab-bsr", lab_ms))}
        status = {b: "ok" for b in bench.BACKENDS}
        rows += bench.point_rows(GPU, point, measured, status, {"lab-bsr": "pers n256"}, {"lab-bsr": 1e-4})
    failed = bench.point_rows(GPU, bench.Point(256, 64, 64, 0.7, 0.3, 4), {}, {"torch-bsr": "unavailable: x"},
                              {}, {})
    assert {r["status"] for r in failed if r["backend"] == "torch-bsr"} == {"unavailable: x"}
    assert all(math.isnan(r["median_s"]) for r in failed)
    path = tmp_path / "bsr_bench.csv"
    write_rows(path, rows + failed, SCRIPT_COLUMNS)
    raw = pd.read_csv(path)
    assert set(raw.dropna(subset=["median_s"])["method"]) == {CUDA_GRAPH, EAGER}  # how each row was timed, from its Measurement
    assert kind_of_columns(list(raw.columns)) == "gpu-script"
    frame = load_bsr_bench(path)
    lab90 = frame[(frame["method"] == "lab-bsr") & (frame["sparsity"] == 0.9)].iloc[0]
    assert lab90["ms"] == pytest.approx(0.2) and lab90["ms_events"] == pytest.approx(0.4)
    assert lab90["speedup_vs_dense"] == pytest.approx(5.0)
    assert lab90["speedup_vs_dense_events"] == pytest.approx(5.0)  # within one figure
    assert lab90["speedup_vs_torch_bsr"] == pytest.approx(15.0) and lab90["device"] == "GPU X"
    assert len(sweep_rows(frame)) == 9
    got = {t["target"]: t["reached"] for t in targets(frame)}
    assert got["lab-bsr vs dense at 90 % sparsity"] == pytest.approx(5.0)
    assert got["lab-bsr vs dense at 50 % sparsity"] == pytest.approx(2.0)
    from engine.bench import bsr_runs, reference

    ref = reference.read_reference(path, tmp_path)
    assert ref.kind == "lab-bsr" and ref.device_name == "GPU X"
    # lab-bsr's per-call rows name the CUDA-graph replay of its launch (in their timing
    # column), and the page reads that text and each row's noisy flag back
    timed = raw.dropna(subset=["median_s"])
    lab_call = timed[(timed["backend"] == "lab-bsr") & (timed["figure"] == "per call")]
    assert lab_call["timing"].str.endswith(bench.LAB_BSR_PER_CALL).all()
    assert not timed[(timed["backend"] != "lab-bsr")]["timing"].str.contains("replayed").any()
    events = bsr_runs.run_frame(ref, EAGER)
    assert set(events.loc[events["method"] == "lab-bsr", "timing_text"]) == set(lab_call["timing"])
    assert events["noisy"].dtype == bool and not events["noisy"].any()
    for method in (CUDA_GRAPH, EAGER):  # the page's picker, either figure
        run = bsr_runs.run_frame(ref, method)
        lab = run[(run["method"] == "lab-bsr") & (run["sparsity"] == 0.9)].iloc[0]
        assert lab["speedup_vs_dense"] == pytest.approx(5.0)


def test_gpu_bsr_app_rows_are_measurements_that_the_readers_read(tmp_path):
    app = _script("gpu_bsr_app.py")

    def task(backend, **dims):
        return GPU.task("spmm", backend, dims or {"n": 8192, "k": 512}, dtype="float16", block=64, sparsity=0.9)

    res = {("lab-bsr", GRAPH_TIMING): _fake(task("lab-bsr"), 20e-6),
           ("dense", GRAPH_TIMING): _fake(task("dense"), 80e-6),
           ("lab-bsr", ROTATING_TIMING): _fake(task("lab-bsr"), 25e-6, EAGER),
           ("dense", ROTATING_TIMING): _fake(task("dense"), 90e-6, EAGER)}
    path = tmp_path / "bsr_percall.csv"
    write_rows(path, app.percall_rows(GPU, 8192, 512, 0.9, 0.1, res, "pers n256", 1e-4), SCRIPT_COLUMNS)
    table = percall_table(path)
    assert len(table) == 1 and table.attrs["device"] == "GPU X"
    assert table.iloc[0]["per call: x dense"] == pytest.approx(3.6)
    assert table.iloc[0]["kernel-only: x dense"] == pytest.approx(4.0)
    peers = app.peer_rows(GPU, 0.1, {app.CEILING: _fake(task(app.CEILING), 15e-6),
                                     "dense torch.matmul": _fake(task("dense torch.matmul"), 80e-6),
                                     "lab-bsr": _fake(task("lab-bsr"), 20e-6)}, {}, {})
    assert {r["backend"]: round(r["fraction_of_ceiling"], 3) for r in peers}["lab-bsr"] == 0.75
    host = app.host_rows(GPU, {"torch.empty(n, k)": _fake(task("torch.empty(n, k)"), 5e-6, WALL_CLOCK)}, 128, "x")
    assert host[0]["host_us_per_call"] == pytest.approx(5.0) and host[0]["method"] == WALL_CLOCK
    mlp_task = task("dense nn.Linear", d=4096, hidden=16384, tokens=8192)
    mlp = app.mlp_rows(GPU, {("dense nn.Linear", "eager"): _fake(mlp_task, 3.5e-3, EAGER),
                             ("BlockSparseLinear b64 90 %", "eager"): _fake(mlp_task, 1e-3, EAGER)},
                       1e12, {}, {("dense nn.Linear", "eager"): 0.1, ("BlockSparseLinear b64 90 %", "eager"): 0.2})
    assert [round(r["speedup_vs_dense"], 2) for r in mlp] == [1.0, 3.5]
    # the page's picker of committed runs reads the new per-call rows too
    from engine.bench import bsr_runs, reference

    ref = reference.read_reference(path, tmp_path)
    assert ref.kind == "lab-bsr-percall" and ref.device_name == "GPU X"
    call = bsr_runs.run_frame(ref, EAGER)
    assert set(call["method"]) == {"lab-bsr", "dense"}
    assert call.loc[call["method"] == "lab-bsr", "speedup_vs_dense"].iloc[0] == pytest.approx(3.6)
    for name, rows in (("peers", peers), ("host", host), ("mlp", mlp)):
        write_rows(tmp_path / f"{name}.csv", rows, SCRIPT_COLUMNS)  # every column in the schema
    with pytest.raises(ValueError, match="expected those of the schema .* got surprise besides"):
        write_rows(tmp_path / "x.csv", [{**mlp[0], "surprise": 1}], SCRIPT_COLUMNS)


def test_cpu_smoke_timing_is_real_and_says_what_it_is():
    run = ScriptRun.here("test", cuda=False)
    calls = []
    task = run.task("spmm", "dense", {"n": 4, "k": 2})
    for timer in (run.graph, run.events, run.host):
        m = timer(lambda: calls.append(1), task)
        assert m.method == WALL_CLOCK and m.runs == 2 and m.noisy  # two runs say nothing
    m = run.rotating([lambda: calls.append(1)] * 4, task)
    assert len(calls) == 3 * 2 + 4 * 2 and m.method == WALL_CLOCK
    assert run.row(m, timing=GRAPH_TIMING)["timing"] == SMOKE_TIMING  # never a GPU label on a CPU time


def test_committed_runs_still_load():
    frame = load_bsr_bench(RESULTS / "bsr_bench.csv")
    assert len(sweep_rows(frame)) and frame["ms"].notna().any()
    assert len(percall_table(RESULTS / "bsr_percall" / "bsr_percall.csv"))


def test_bsr_bench_quick_runs_end_to_end_on_the_cpu_interpreter(tmp_path, monkeypatch):
    """The whole script on the CPU (Triton interpreter, wall-clock smoke timings), read back
    by the page's reader and listed by the reference registry under its device's name."""
    from engine.bench import reference

    env = {**__import__("os").environ, "TRITON_INTERPRET": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, str(BENCH / "bsr_bench.py"), "--out", str(tmp_path), "--quick",
                           "--skip-check", "--blocks", "64", "--sparsities", "0.9", "--low", ""],
                          capture_output=True, text=True, timeout=300, cwd=ROOT, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    frame = load_bsr_bench(tmp_path / "bsr_bench.csv")
    lab = frame[frame["method"] == "lab-bsr"].iloc[0]
    assert lab["status"] == "ok" and lab["rel_err"] < 3e-3 and lab["ms"] > 0 and lab["ms_events"] > 0
    assert lab["timing"] == SMOKE_TIMING and lab["timing_method"] == WALL_CLOCK
    ref = reference.read_reference(tmp_path / "bsr_bench.csv", tmp_path)
    assert ref.kind == "lab-bsr" and ref.device_name.startswith("CPU")


def test_gpu_attention_bare_timings_come_from_measurements(monkeypatch):
    """The bare SDPA / FlexAttention check times through a Measurement (on the CPU: the
    lab's timer) and reports its median in ms."""
    att = _script("gpu_attention.py")
    run = ScriptRun.here("test", cuda=False)
    task = run.task("attention", "sdpa-causal", {"seq_len": 8, "batch": 1, "heads": 1, "head_dim": 4})
    seen = []
    real = att.measure
    monkeypatch.setattr(att, "measure", lambda fn, **kw: seen.append(kw["task"]) or real(fn, **kw))
    ms = att.bare_bench(run, lambda: sum(range(100)), task)
    assert ms > 0 and seen == [task]
    assert att.bare_events(run, lambda: sum(range(100)), task) > 0 and len(seen) == 2


def test_bsr_bench_quotes_no_speedup_across_timing_methods():
    """A kernel-only time that fell back to per-call events is not divided into a graph one."""
    bench = _script("bsr_bench.py")
    point = bench.Point(n=256, k=64, block=64, sparsity=0.9, density=0.1, nnz_blocks=2)
    measured = {"dense": {"kernel-only": _fake(point.task(GPU, "dense"), 1e-3)},
                "torch-bsr": {"kernel-only": _fake(point.task(GPU, "torch-bsr"), 3e-4)},
                "lab-bsr": {"kernel-only": _fake(point.task(GPU, "lab-bsr"), 2e-4, EAGER)}}
    rows = bench.point_rows(GPU, point, measured, {b: "ok" for b in bench.BACKENDS}, {}, {})
    lab = next(r for r in rows if r["backend"] == "lab-bsr" and r["figure"] == "kernel-only")
    assert math.isnan(lab["speedup_vs_dense"]) and math.isnan(lab["speedup_vs_torch_bsr"])
    torch_bsr = next(r for r in rows if r["backend"] == "torch-bsr" and r["figure"] == "kernel-only")
    assert torch_bsr["speedup_vs_dense"] == pytest.approx(1e-3 / 3e-4)   # same method: quoted
