"""Issue 22 item 2: the memory guard's estimate (engine.sparse.formats.estimate_bytes, what
memory_refusal checks before a matrix is generated) against the peak memory measured on
whole sweeps of one matrix, each in a fresh process. The guard holds if every measured
peak is at most the estimate; the estimate stays useful if it is at most 2.5x the peak.
About 40 s on 2 cores."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.apphelpers import ROOT

pytestmark = pytest.mark.slow

# (sweep, its config) : paradox sweeps over every default backend at 0.5-100 % density,
# float32 and float16, SpMV and SpMM; a block-pattern and a 2:4 structured sweep.
CASES = [
    ("paradox", dict(sizes=(3072,), sparsities=(0.99,), dtypes=("float32",), ops=("spmv",))),
    ("paradox", dict(sizes=(3072,), sparsities=(0.5,), dtypes=("float32",), ops=("spmm",), k=256)),
    ("paradox", dict(sizes=(3072,), sparsities=(0.0,), dtypes=("float32",), ops=("spmv",))),
    ("paradox", dict(sizes=(3072,), sparsities=(0.5,), dtypes=("float16",), ops=("spmv",))),
    ("structured", dict(size=2048, sparsities=(0.5,), blocks=(16,), nm_sizes=(), k=256)),
    ("structured", dict(size=256, sparsities=(0.5,), blocks=(), nm_sizes=(2048,), k=256)),
]

MEASURE = r"""
import json, os, sys
os.environ["SPARSITY_LAB_FORCE_CPU"] = "1"
import psutil
from engine.bench.sweeps import ParadoxConfig, memory_refusal, paradox_sweep
from engine.bench.pattern_sweep import StructuredSweepConfig, structured_sweep
import engine.bench.sweeps as sweeps
kind, config = json.loads(sys.argv[1])
config = {k: tuple(v) if isinstance(v, list) else v for k, v in config.items()}
estimates = []
real = sweeps.memory_refusal
def spy(spec, available, budget=None):
    from engine.sparse.formats import estimate_bytes
    m, n = spec.shape
    estimates.append(estimate_bytes(m, n, spec.k, 1.0 - spec.sparsity, spec.dtype, spec.format, spec.block))
    return real(spec, available, budget)
sweeps.memory_refusal = spy
import engine.bench.pattern_sweep as ps
ps.memory_refusal = spy
def run(**over):
    if kind == "paradox":
        return list(paradox_sweep(ParadoxConfig(**{**config, **over}, repeats=2, max_seconds_per_spec=2)))
    return list(structured_sweep(StructuredSweepConfig(**{**config, **over}, repeats=2)))
small = {"sizes": (64,)} if kind == "paradox" else (
    {"size": 64, "nm_sizes": ()} if config.get("blocks") else {"nm_sizes": (64,)})
run(**small)  # libraries, thread pools and allocator arenas, loaded before the baseline
estimates.clear()
base = psutil.Process().memory_info().rss
rows = run()
# VmHWM is this process's own high-water mark; ru_maxrss would also carry the pytest
# parent's RSS at the fork (Linux keeps it across execve), inflating "peak" in a full suite.
with open("/proc/self/status") as f:
    peak = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
print(json.dumps({"peak": peak - base, "estimate": max(estimates),
                  "statuses": sorted({r["status"] for r in rows})}))
"""


@pytest.mark.parametrize("kind, config", CASES, ids=[f"{k}-{i}" for i, (k, _) in enumerate(CASES)])
def test_estimate_covers_the_measured_peak(kind, config):
    # A clean environment: variables other tests leave in this process (thread counts, the
    # Triton interpreter, cache folders) must not change what the sweep allocates.
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
           if k in os.environ}
    env.update(PYTHONPATH=str(ROOT), SPARSITY_LAB_FORCE_CPU="1", SPARSITY_LAB_PURE_CACHE_MB="0")
    out = subprocess.run([sys.executable, "-c", MEASURE, json.dumps([kind, config])], cwd=ROOT,
                         capture_output=True, text=True, timeout=300, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert "refused" not in got["statuses"] and "ok" in got["statuses"], got
    peak_mb, est_mb = got["peak"] / 2**20, got["estimate"] / 2**20
    print(f"{kind} {config}: measured {peak_mb:.0f} MB, estimate {est_mb:.0f} MB "
          f"({est_mb / peak_mb:.2f}x)")
    assert peak_mb > 20, got  # the matrix really was allocated in this process
    assert peak_mb <= est_mb, f"{kind} {config}: measured {peak_mb:.0f} MB > estimate {est_mb:.0f} MB"
    assert est_mb <= 2.5 * peak_mb, f"{kind} {config}: estimate {est_mb:.0f} MB, measured {peak_mb:.0f} MB"
