"""Sweeps, specs, break-even, memory guard, OOM rows, cancel, and the CLI."""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
import torch

from engine.bench import sweeps
from engine.bench.__main__ import main as cli_main
from engine.bench.schema import PARADOX_COLUMNS, read_rows_csv
from engine.bench.spec import BenchmarkSpec
from engine.bench.sweeps import ParadoxConfig, break_even, memory_refusal, paradox_sweep
from engine.runtime.store import RunStore, mark_dead_runs

TINY = dict(sizes=(32,), sparsities=(0.5, 0.9), repeats=2, k=4)
# (speedups at sparsities 0.5, 0.9, 0.99) -> expected break-even (None: NaN)
BREAK_EVEN_CASES = [
    ((0.5, 2.0, 4.0), (0.5, 0.9)),
    ((0.2, 0.5, 2.0), (0.9, 0.99)),
    ((1.5, 3.0, 9.0), (0.5, 0.5)),
    ((0.1, 0.2, 0.5), None),
]


def test_spec_is_hashable_key_and_validates():
    a = BenchmarkSpec.make("spmm", "torch-csr", 128, 0.9, k=8)
    b = BenchmarkSpec.make("spmm", "torch-csr", 128, 0.9, k=8)
    assert a == b and hash(a) == hash(b) and a.key == b.key and {a: 1}[b] == 1
    assert a.key != a.with_backend("torch-coo").key
    with pytest.raises(ValueError, match="k: expected 1 for spmv"):
        BenchmarkSpec("spmv", "csr", "torch-csr", (8, 8), 4, 0.5, "uniform", 4, "float32", "cpu", 3)
    with pytest.raises(ValueError, match="format: expected 'csr'"):
        BenchmarkSpec("spmv", "coo", "torch-csr", (8, 8), 1, 0.5, "uniform", 4, "float32", "cpu", 3)
    with pytest.raises(ValueError, match="sparsity: expected"):
        BenchmarkSpec.make("spmv", "torch-csr", 8, 1.5)


def test_tiny_sweep_rows_are_complete_and_honest():
    config = ParadoxConfig(**TINY, dtypes=("float32", "float16"), ops=("spmv", "spmm"),
                           backends=("torch-dense", "torch-csr", "scipy-csr"))
    rows = list(paradox_sweep(config))
    assert len(rows) == config.total == 2 * 2 * 2 * 3
    assert all(set(PARADOX_COLUMNS) <= set(r) for r in rows)
    frame = pd.DataFrame(rows)
    ok = frame[frame["status"] == "ok"]
    assert (ok.loc[ok["backend"] == "torch-dense", "speedup"] == 1.0).all()
    assert (ok["median_s"] > 0).all() and ok["iqr_s"].ge(0).all()
    assert ok["theoretical"].round(6).equals((1 / ok["density"]).round(6))
    assert ((ok["efficiency"] - ok["speedup"] / ok["theoretical"]).abs() < 1e-12).all()
    half = frame[(frame["dtype"] == "float16") & (frame["backend"] == "torch-csr")]
    assert (half["status"] == "unsupported").all() and half["median_s"].isna().all()
    assert half["message"].str.startswith("unsupported: expected").all()


def test_memory_guard_refuses_before_allocating(monkeypatch):
    def boom(*a, **k):
        raise AssertionError("allocated despite the guard")
    monkeypatch.setattr(sweeps, "generate_matrix", boom)
    config = ParadoxConfig(sizes=(4096,), sparsities=(0.5,), ops=("spmv",), repeats=1,
                           backends=("torch-dense", "torch-csr"))
    rows = list(paradox_sweep(config, free_memory=lambda dev: 10 * 2**20))
    assert [r["status"] for r in rows] == ["refused", "refused"]
    assert rows[0]["message"].startswith("memory: expected at most 8 MB")
    spec = BenchmarkSpec.make("spmm", "torch-coo", 65536, 0.5, k=512)
    assert "memory: expected" in memory_refusal(spec, available=64 * 2**30)
    assert memory_refusal(BenchmarkSpec.make("spmv", "torch-csr", 64, 0.9), available=2**30) is None


def test_oom_becomes_error_row_and_sweep_continues(monkeypatch):
    from engine.sparse import formats

    csr = formats.get_backend("torch-csr")

    def oom(_a, _x):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2 GiB")
    monkeypatch.setitem(formats.BACKENDS, "torch-csr", formats.Backend(**{**csr.__dict__, "matmul": oom}))
    rows = list(paradox_sweep(ParadoxConfig(**TINY, ops=("spmv",), backends=("torch-dense", "torch-csr", "torch-coo"))))
    status = [(r["backend"], r["status"]) for r in rows]
    assert status.count(("torch-csr", "error")) == 2 and status.count(("torch-coo", "ok")) == 2
    assert all("out of memory" in r["message"] for r in rows if r["status"] == "error")


def test_reuse_yields_stored_rows_without_measuring():
    config = ParadoxConfig(**TINY, ops=("spmv",), backends=("torch-dense", "torch-csr"))
    first = list(paradox_sweep(config))
    stored = {r["spec_key"]: r for r in first}
    again = list(paradox_sweep(config, reuse=lambda s: stored.get(s.key)))
    assert [r["status"] for r in again] == ["reused"] * len(first)
    assert [r["median_s"] for r in again] == [r["median_s"] for r in first]


@pytest.mark.parametrize("speedups,expected", BREAK_EVEN_CASES)
def test_break_even_interpolates(speedups, expected):
    rows = [{"status": "ok", "backend": "torch-csr", "op": "spmv", "dtype": "float32", "device_name": "d",
             "rows": 64, "k": 1, "sparsity": s, "speedup": v} for s, v in zip((0.5, 0.9, 0.99), speedups)]
    got = break_even(pd.DataFrame(rows))["break_even"].iloc[0]
    if expected is None:
        assert math.isnan(got)
    else:
        assert expected[0] <= got <= expected[1]


def test_cli_writes_csv_and_rejects_bad_input(tmp_path, capsys):
    out = tmp_path / "r.csv"
    assert cli_main(["paradox", "--device", "cpu", "--sizes", "32", "--sparsities", "0.5,0.9",
                     "--ops", "spmv", "--repeats", "2", "--backends", "torch-dense,torch-coo",
                     "--out", str(out)]) == 0
    frame = read_rows_csv(out.read_text())
    assert len(frame) == 4 and (frame["status"] == "ok").all()
    assert "]" in capsys.readouterr().err  # the progress bar
    assert cli_main(["paradox", "--sizes", "32", "--sparsities", "1.5", "--out", str(out)]) == 2


def test_cancelled_sweep_keeps_finished_rows(tmp_path):
    """Kill a CLI sweep mid-way: stored rows stay, the run is marked died (with its rows)."""
    env = dict(os.environ, SPARSITY_LAB_CACHE=str(tmp_path), SPARSITY_LAB_FORCE_CPU="1")
    cmd = [sys.executable, "-m", "engine.bench", "paradox", "--device", "cpu", "--sizes", "48",
           "--sparsities", " ".join(str(0.5 + i / 100) for i in range(30)), "--ops", "spmv",
           "--repeats", "50", "--backends", "torch-dense,torch-coo", "--quiet",
           "--store", "--out", str(tmp_path / "r.csv")]
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    store = RunStore(tmp_path)
    deadline = time.time() + 40
    try:
        while time.time() < deadline:
            runs = store.list_runs()
            if runs and runs[0]["n_rows"] >= 3:
                break
            time.sleep(0.2)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    run = store.list_runs()[0]
    kept = store.rows(run["run_id"])
    assert 3 <= len(kept) < 60 and all(r["status"] == "ok" for r in kept)
    assert mark_dead_runs(store) == [run["run_id"]]
    assert store.meta(run["run_id"])["status"] == "died"


def test_partly_stored_matrix_is_measured_again():
    config = ParadoxConfig(**TINY, ops=("spmv",), backends=("torch-dense", "torch-csr"))
    first = list(paradox_sweep(config))
    dense_only = {r["spec_key"]: r for r in first if r["backend"] == "torch-dense"}
    again = list(paradox_sweep(config, reuse=lambda s: dense_only.get(s.key)))
    assert [r["status"] for r in again] == ["ok"] * len(first)
    assert all(math.isfinite(r["speedup"]) for r in again)


def test_unsupported_and_refused_rows_have_no_noise_verdict(monkeypatch):
    """No timing, no noise verdict: the noisy cell is blank, never False, on a row that was
    not measured; a measured row has a real True/False."""
    config = ParadoxConfig(**TINY, dtypes=("float16",), ops=("spmv",), backends=("torch-dense", "torch-csr"))
    rows = list(paradox_sweep(config))
    skipped = [r for r in rows if r["status"] == "unsupported"]
    assert skipped and all(r["noisy"] is None and r["median_s"] is None for r in skipped)
    assert all(isinstance(r["noisy"], bool) for r in rows if r["status"] == "ok")
    refused = list(paradox_sweep(ParadoxConfig(sizes=(4096,), sparsities=(0.5,), ops=("spmv",), repeats=1,
                                               backends=("torch-dense", "torch-csr")),
                                 free_memory=lambda dev: 10 * 2**20))
    assert [r["noisy"] for r in refused] == [None, None]


def _be_rows(speedups, noisy=(), dense_noisy=()):
    """A torch-coo sweep at 0.5, 0.9, 0.95, 0.99 with its dense rows; ``noisy`` / ``dense_noisy``:
    the sparsities whose coo / dense time is noisy."""
    rows = []
    for s, v in zip((0.5, 0.9, 0.95, 0.99), speedups):
        base = {"status": "ok", "op": "spmv", "dtype": "float32", "device_name": "d", "rows": 64, "cols": 64,
                "k": 1, "pattern": "uniform", "block": 16, "sparsity": s}
        rows += [dict(base, backend="torch-dense", speedup=1.0, noisy=s in dense_noisy),
                 dict(base, backend="torch-coo", speedup=v, noisy=s in noisy)]
    return pd.DataFrame(rows)


def test_a_break_even_read_off_a_noisy_speedup_is_marked_noisy():
    """The walk's case: crossing between 0.95 (noisy) and 0.99 gave 'torch-coo (98.8%)' as a
    finding. A noisy time on either side of the crossing, the backend's or dense's, makes
    the break-even noisy and its note says so; a noisy point away from it does not."""
    speedups = (0.02, 0.15, 0.1, 1.4)
    steady = break_even(_be_rows(speedups)).iloc[0]
    assert 0.95 < steady["break_even"] < 0.99 and not steady["noisy"] and "noisy" not in steady["note"]
    for kw in (dict(noisy=(0.95,)), dict(dense_noisy=(0.99,))):
        got = break_even(_be_rows(speedups, **kw)).iloc[0]
        assert got["break_even"] == pytest.approx(steady["break_even"]) and got["noisy"]
        assert got["note"] == "between 0.95 and 0.99, from noisy timings (IQR/median > 0.1)"
    away = break_even(_be_rows(speedups, noisy=(0.5,))).iloc[0]
    assert not away["noisy"]
    never = break_even(_be_rows((0.1, 0.2, 0.3, 0.4), noisy=(0.9,))).iloc[0]
    assert math.isnan(never["break_even"]) and never["noisy"] and "from noisy timings" in never["note"]
