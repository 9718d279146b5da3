"""A fresh gunicorn worker answers its first requests with every callback.

Dash builds its callback list on a worker's first request and marks that done before it
has finished; without app.py building it at import, other threads of the same worker
answered /_dash-dependencies with [] for their first requests (5 of 6 fresh starts), and
a browser served then got a page on which nothing responded."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

from tests.apphelpers import ROOT, free_port, stop_process


def _wait_for_port(port: int, proc, seconds: float = 90) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        assert proc.poll() is None, "gunicorn exited"
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise AssertionError(f"nothing listens on {port} after {seconds} s")


def _callbacks(url: str) -> int:
    with urllib.request.urlopen(url + "/_dash-dependencies", timeout=60) as resp:
        return len(json.loads(resp.read()))


def test_the_first_concurrent_requests_of_fresh_workers_list_every_callback(tmp_path):
    port = free_port()
    env = dict(os.environ, SPARSITY_LAB_CACHE=str(tmp_path), SPARSITY_LAB_FORCE_CPU="1")
    cmd = [sys.executable, "-m", "gunicorn", "app:server", "-b", f"127.0.0.1:{port}", "-w", "2",
           "--threads", "8"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=open(tmp_path / "gunicorn.log", "w"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(port, proc)
        url = f"http://127.0.0.1:{port}"
        with ThreadPoolExecutor(max_workers=16) as pool:
            counts = list(pool.map(lambda _: _callbacks(url), range(32)))
    finally:
        stop_process(proc)
    assert min(counts) > 100, counts
