"""Calibration, roofline predictions and the measurement sweep on generated matrices."""
from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp

from engine.bench import roofline as rl
from engine.bench.matrix_sweep import (MatrixSweepConfig, efficiency_table, matrix_sweep,
                                       recommendation)
from engine.sparse.user_matrix import bsr_tiles


@pytest.fixture(autouse=True)
def _cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path / "cache"))


def _cal(**kw) -> rl.Calibration:
    base = dict(device_name="test device", device="cpu", copy_gbs=10.0, gather_gbs=2.0,
                floor_s=1e-6, gemm_gflops={"float32": 100.0}, measured_at="now")
    base.update(kw)
    return rl.Calibration(**base)


def test_byte_models_count_what_the_format_stores():
    # CSR SpMV float32: 4 + 8 bytes per nnz, 8 per row pointer, one x read per nnz, y
    assert rl.csr_bytes(10, 30, 1, 4) == 30 * 12 + 11 * 8 + 30 * 4 + 10 * 4
    assert rl.coo_bytes(10, 30, 1, 4) == 30 * 20 + 30 * 4 + 10 * 4
    assert rl.dense_bytes(10, 20, 3, 4) == 10 * 20 * 4 + 20 * 3 * 4 + 10 * 3 * 4
    assert rl.bsr_bytes(32, 32, 2, 16, 1, 4) == 2 * (256 * 4 + 8) + 3 * 8 + 32 * 4 + 32 * 4


def test_prediction_is_the_max_of_memory_compute_and_floor():
    a = sp.csr_array(sp.random(256, 256, density=0.02, format="csr", random_state=0))
    s = rl.Structure.of(a)
    cal = _cal()
    rows = {r["candidate"]: r for r in rl.predict(s, cal, "spmv", 1, "float32")}
    d = rows["torch-dense"]
    assert d["predicted_s"] == pytest.approx(rl.dense_bytes(256, 256, 1, 4) / 10e9)
    assert d["bound"].startswith("memory")
    c = rows["torch-csr"]
    assert c["predicted_s"] == pytest.approx(max(rl.csr_bytes(256, a.nnz, 1, 4) / 2e9, 1e-6))
    b16 = rows["torch-bsr b16"]
    assert b16["bytes_moved"] == rl.bsr_bytes(256, 256, bsr_tiles(a, 16), 16, 1, 4)
    # compute-bound when the GEMM rate is tiny
    slow = {r["candidate"]: r for r in rl.predict(s, _cal(gemm_gflops={"float32": 1e-3}),
                                                  "spmm", 64, "float32")}
    assert slow["torch-dense"]["bound"] == "compute"
    assert slow["torch-dense"]["predicted_s"] == pytest.approx(2 * 256 * 256 * 64 / 1e6)
    # floor-bound when everything is fast
    fast = rl.predict(s, _cal(copy_gbs=1e9, gather_gbs=1e9, gemm_gflops={"float32": 1e9}),
                      "spmv", 1, "float32")
    assert all(r["bound"] == "per-call floor" for r in fast)


def test_reordering_lowers_the_bsr_prediction_of_a_scrambled_band():
    n = 512
    p = np.random.default_rng(0).permutation(n)
    band = sp.diags([1.0] * 7, range(-3, 4), shape=(n, n)).tocsr()
    a = sp.csr_array(band[p][:, p])
    rows = {r["candidate"]: r for r in rl.predict(rl.Structure.of(a), _cal(), "spmv", 1, "float32")}
    assert rows["torch-bsr b16 RCM"]["predicted_s"] < rows["torch-bsr b16"]["predicted_s"] / 4


def test_two_four_detection():
    a = np.zeros((4, 8))
    a[:, [0, 1, 4, 6]] = 1.0
    assert rl.is_two_four(sp.csr_array(a))
    a[0, 2] = 1.0
    assert not rl.is_two_four(sp.csr_array(a))


def test_calibration_is_stored_with_the_device_name():
    plan = rl.CalibrationPlan.for_device("cpu", quick=True)
    rows = list(rl.calibrate(plan, device_name="CPU: unit test"))
    assert [r["step"] for r in rows] == ["copy", "gemm", "gather", "floor"]
    assert len(rows) == plan.total
    cal = rl.load_calibration("CPU: unit test")
    assert cal is not None and cal.device_name == "CPU: unit test"
    assert cal.copy_gbs > 0 and cal.gather_gbs > 0 and cal.gemm_gflops["float32"] > 0
    assert 0 < cal.floor_s < 1e-2
    assert rl.load_calibration("CPU: never calibrated") is None


@pytest.mark.parametrize("kind", ["uniform", "banded"])
def test_predicted_vs_measured_on_generated_matrices(kind):
    """Rows carry both numbers; the roofline is within two orders of magnitude of the
    measurement, and dense (a streamed GEMV) lands near its copy-bandwidth roofline."""
    plan = rl.CalibrationPlan.for_device("cpu", quick=True)
    list(rl.calibrate(plan, device_name="CPU: sweep test"))
    cal = rl.load_calibration("CPU: sweep test")
    n = 512
    if kind == "uniform":
        a = sp.csr_array(sp.random(n, n, density=0.02, format="csr", random_state=0))
    else:
        a = sp.csr_array(sp.diags([1.0] * 5, range(-2, 3), shape=(n, n)).tocsr())
    config = MatrixSweepConfig(ops=("spmv",), repeats=3, blocks=(16, 32),
                               backends=("torch-dense", "torch-csr", "torch-bsr"))
    rows = list(matrix_sweep(config, a, cal, {"name": kind}))
    assert len(rows) == config.total == 1 + 2 + 4
    ok = [r for r in rows if r["status"] == "ok"]
    assert len(ok) == len(rows), [r["message"] for r in rows if r["status"] != "ok"]
    for r in ok:
        assert r["max_rel_err"] < 1e-4 and r["method"] == "eager per call"
        assert r["efficiency"] == pytest.approx(r["predicted_s"] / r["median_s"])
        assert 1e-2 < r["efficiency"] < 1e2, r
    dense = ok[0]
    assert dense["format"] == "dense" and dense["speedup"] == pytest.approx(1.0)
    table = efficiency_table(rows)
    assert len(table) == len(ok) and all(t["measured (us)"] > 0 for t in table)
    text = recommendation(rows)
    assert text.startswith("On this CPU") and "dense for this matrix" in text
    best = min((r for r in ok if r["format"] != "dense"), key=lambda r: r["median_s"])
    assert f"{dense['median_s'] / best['median_s']:.2g}" in text


def test_recommendation_from_rows_names_reordering_and_the_off_roofline_backend():
    def row(cand, fmt, t, block=0, reordered=False, fill=None, eff=0.5):
        return {"op": "spmv", "status": "ok", "candidate": cand, "format": fmt, "backend":
                "torch-" + fmt, "block": block, "reordered": reordered, "median_s": t,
                "fill_in": fill, "efficiency": eff, "device": "cpu", "device_name": "CPU: X"}
    rows = [row("torch-dense", "dense", 1.0), row("torch-csr", "csr", 1 / 2.4),
            row("torch-bsr b32", "bsr", 1 / 0.5, 32, False, 2.1, eff=0.01),
            row("torch-bsr b32 RCM", "bsr", 1 / 3.0, 32, True, 0.3)]
    text = recommendation(rows)
    assert text.startswith("On this CPU (X), BSR 32 SpMV after reordering is 3x dense")
    assert "BSR 32 loses (0.5x, fill-in 2.1 stored zeros per non-zero)" in text
    assert "after reverse Cuthill-McKee reordering 3x (fill-in 0.3)" in text
    assert "Farthest off its roofline: torch-bsr b32 at 1 %" in text
    assert recommendation([]).startswith("No measured rows")


def test_dense_that_does_not_fit_is_refused_before_allocating(monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_MEMORY_BUDGET_MB", "1")
    a = sp.csr_array(sp.eye(2048, format="csr"))
    with pytest.raises(ValueError, match="measuring needs the dense 2048 x 2048"):
        list(matrix_sweep(MatrixSweepConfig(ops=("spmv",)), a, _cal()))
    assert math.isfinite(rl.efficiency(1.0, 2.0)) and rl.efficiency(1.0, 0.0) != rl.efficiency(1.0, 0.0)


def test_cli_matrix_runs_headless_and_writes_rows(tmp_path, capsys):
    import pandas as pd
    import scipy.io

    from engine.bench.__main__ import main
    from engine.runtime.device import job_device, runtime_device_name

    n = 100  # not a multiple of 16: block formats run zero-padded
    p = np.random.default_rng(1).permutation(n)
    band = sp.diags([1.0, 3.0, 1.0], [-1, 0, 1], shape=(n, n)).tocsr()[p][:, p]
    path = tmp_path / "band.mtx"
    scipy.io.mmwrite(str(path), band)
    # a stored (quick) calibration of this CPU, so the CLI reuses it instead of calibrating
    list(rl.calibrate(rl.CalibrationPlan.for_device("cpu", quick=True),
                      device_name=runtime_device_name(job_device("cpu"))))
    out, reordered = tmp_path / "rows.csv", tmp_path / "rcm.mtx"
    code = main(["paradox", "--matrix", str(path), "--device", "cpu", "--ops", "spmv", "--repeats", "2",
                 "--out", str(out), "--reordered-out", str(reordered), "--quiet", "--store"])
    assert code == 0
    text = capsys.readouterr().out
    assert "band.mtx: 100 x 100, 298 non-zeros" in text and "BSR  16: fill-in" in text
    assert "On this CPU" in text and "dense for this matrix" in text
    rows = pd.read_csv(out)
    ok = rows[rows["status"] == "ok"]
    assert len(ok) == len(rows) and set(rows["op"]) == {"spmv"}
    assert ok["message"].fillna("").str.contains("zero-padded to 112 x 112").any()
    back = scipy.io.mmread(str(reordered))
    assert back.nnz == 298
    assert main(["paradox", "--matrix", str(tmp_path / "missing.mtx"), "--out", str(out)]) == 2


def test_cli_matrix_run_records_pid_and_host_so_a_killed_one_shows_died(tmp_path):
    """Issue 22 item 11: ``python -m engine.bench paradox --matrix FILE --store`` records
    its pid and host like every job: "running" while it runs, "died" once it is killed."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import scipy.io

    from engine.runtime.device import job_device, runtime_device_name
    from engine.runtime.liveness import host_name
    from engine.runtime.store import RunStore, mark_dead_runs

    cache = tmp_path / "cache"  # the autouse fixture's folder: the child shares it
    list(rl.calibrate(rl.CalibrationPlan.for_device("cpu", quick=True),
                      device_name=runtime_device_name(job_device("cpu"))))
    path = tmp_path / "band.mtx"
    scipy.io.mmwrite(str(path), sp.diags([1.0, 3.0, 1.0], [-1, 0, 1], shape=(600, 600)).tocsr())
    env = dict(os.environ, SPARSITY_LAB_CACHE=str(cache), SPARSITY_LAB_FORCE_CPU="1")
    cmd = [sys.executable, "-m", "engine.bench", "paradox", "--matrix", str(path), "--device", "cpu",
           "--repeats", "200", "--quiet", "--store", "--out", str(tmp_path / "rows.csv")]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True, stdout=subprocess.DEVNULL)
    store = RunStore(cache)
    try:
        deadline = time.time() + 60
        while time.time() < deadline and not (store.list_runs() and store.list_runs()[0]["n_rows"] >= 1):
            assert proc.poll() is None, "the CLI ended before its first row"
            time.sleep(0.2)
        run = store.list_runs()[0]
        assert run["kind"] == "your-matrix" and run["pid"] == proc.pid and run["host"] == host_name()
        assert run["pid_started"] and run["device_name"].startswith("CPU")
        assert mark_dead_runs(store) == [] and store.meta(run["run_id"])["status"] == "running"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert mark_dead_runs(store) == [run["run_id"]]
    meta = store.meta(run["run_id"])
    assert meta["status"] == "died" and meta["n_rows"] >= 1


def test_efficiency_table_names_rows_below_and_above_the_roofline():
    def row(cand, eff):
        return {"op": "spmv", "status": "ok", "candidate": cand, "predicted_s": 1e-6 * eff,
                "median_s": 1e-6, "efficiency": eff, "speedup": 1.0}
    table = efficiency_table([row("torch-dense", 2.35), row("torch-csr", 0.9),
                              row("torch-bsr b32", 0.01), {"status": "unsupported"}])
    verdicts = {t["candidate"]: t["roofline"] for t in table}
    assert verdicts["torch-dense"].startswith("above") and "cache" in verdicts["torch-dense"]
    assert verdicts["torch-csr"] == "near"
    assert verdicts["torch-bsr b32"].startswith("far below")
    assert len(table) == 3
