"""benchmarks/gpu_app_smoke.py against the CPU app at small sizes, so the protocol code
(page-load token, layout through the pages callback, signed background handles,
polling, cancel, a job whose input is made first) cannot rot: a paradox job, the
generator's training (on the CPU by design), a /your-matrix measurement of the example
matrix and one cancel with DiskcacheManager,
and the same with Celery + Redis when SPARSITY_LAB_SMOKE_CELERY=auto and a
redis-server is installed."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PORT = os.environ.get("SPARSITY_LAB_SMOKE_PORT", "8142")
# Celery + Redis doubles the time; CI keeps to DiskcacheManager unless asked (the GPU
# host's report under benchmarks/results/gpu_app/ covers Celery)
CELERY = os.environ.get("SPARSITY_LAB_SMOKE_CELERY", "off")


def test_smoke_script_drives_a_job_and_a_cancel_over_http(tmp_path):
    cmd = [sys.executable, "benchmarks/gpu_app_smoke.py", "--out", str(tmp_path), "--jobs", "paradox,gen-train,matrix",
           "--cpu", "--celery", CELERY, "--job-timeout", "60", "--port", PORT]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=240,
                          env=dict(os.environ, PYTHONUNBUFFERED="1"))
    report_path = tmp_path / "smoke_report.json"
    assert report_path.exists(), proc.stdout[-2000:] + proc.stderr[-2000:]
    report = json.loads(report_path.read_text())
    modes = {m["mode"]: m for m in report["modes"]}
    assert "diskcache" in modes
    if CELERY != "off" and shutil.which("redis-server"):
        assert "celery" in modes
    for mode in modes.values():
        jobs = {j["job"]: j for j in mode["jobs"]}
        run = jobs["paradox"]
        assert run["ok"], run
        assert run["rows"] > 0 and run["devices"], run  # rows name the device they ran on
        assert "dense" in run["backends"]
        # a job whose input is made first (/your-matrix's example matrix), and a CPU-by-design job
        assert jobs["matrix"]["ok"] and jobs["matrix"]["rows"] > 0, jobs["matrix"]
        assert jobs["gen-train"]["ok"] and jobs["gen-train"]["devices"][0].startswith("CPU"), jobs["gen-train"]
        assert "by design" in jobs["gen-train"]["note"]
        cancel = jobs["paradox (cancel)"]
        assert cancel["ok"], cancel
        assert cancel["rows_before_cancel"] >= 1 and cancel["rows_kept"] >= cancel["rows_before_cancel"]
    assert proc.returncode == 0, proc.stdout[-3000:]
    text = (tmp_path / "smoke_report.md").read_text()
    assert "| paradox | /paradox | yes |" in text and "Result: every check passed." in text
