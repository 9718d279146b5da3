"""Start and stop the real app as a subprocess (own cache folder, own process group)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free loopback port; within SPARSITY_LAB_PORTS ("8110-8119") when that is set."""
    span = os.environ.get("SPARSITY_LAB_PORTS", "")
    candidates = [0]
    if span:
        lo, _, hi = span.partition("-")
        candidates = list(range(int(lo), int(hi or lo) + 1))
    for port in candidates:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise RuntimeError(f"SPARSITY_LAB_PORTS: expected a free port in {span}, got none")


def wait_for_http(url: str, proc: subprocess.Popen | None, log: Path, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError("process exited early:\n" + log.read_text())
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {seconds} s:\n" + log.read_text())


def start_app(cache: Path, extra_env: dict | None = None,
              command: list[str] | None = None, port: int | None = None) -> tuple[subprocess.Popen, str]:
    """Run ``python app.py --port N`` (or ``command`` with {port}) until it answers 200;
    ``port`` defaults to a free one."""
    port = port or free_port()
    env = dict(os.environ, SPARSITY_LAB_CACHE=str(cache), PYTHONUNBUFFERED="1",
               SPARSITY_LAB_FORCE_CPU="1", **(extra_env or {}))
    log_path = cache / f"server-{port}.log"
    log = open(log_path, "w")
    cmd = [c.format(port=port) for c in command] if command else \
        [sys.executable, "app.py", "--port", str(port)]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for_http(url, proc, log_path)
    except RuntimeError:
        stop_process(proc)
        raise
    return proc, url


def stop_process(proc: subprocess.Popen) -> None:
    """SIGTERM the whole process group (jobs forked by the app die too), then SIGKILL."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=10)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=5)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            pass


stop_app = stop_process


def start_redis(folder: Path) -> tuple[subprocess.Popen, str]:
    """A throwaway redis-server on a free loopback port (no persistence); returns its URL."""
    import redis

    port = free_port()
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                             "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"redis://127.0.0.1:{port}/0"
    for _ in range(200):
        try:
            redis.Redis.from_url(url).ping()
            return proc, url
        except redis.ConnectionError:
            time.sleep(0.05)
    stop_process(proc)
    raise RuntimeError("redis-server did not answer in 10 s")


def start_celery_worker(folder: Path, redis_url: str) -> subprocess.Popen:
    """``celery -A app:celery_app worker --concurrency=1`` on ``redis_url`` (its own
    cache folder and process group, log in ``folder/worker.log``)."""
    folder.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SPARSITY_LAB_REDIS_URL=redis_url, SPARSITY_LAB_CACHE=str(folder),
               SPARSITY_LAB_FORCE_CPU="1", PYTHONUNBUFFERED="1")
    log = open(folder / "worker.log", "w")
    return subprocess.Popen([sys.executable, "-m", "celery", "-A", "app:celery_app", "worker",
                             "--concurrency=1", "--loglevel=INFO", "--without-gossip",
                             "--without-mingle", "--without-heartbeat"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)


def callback_outputs(spec: str) -> list[dict] | dict:
    """The ``outputs`` of a callback request from its ``output`` spec: "a.b", or
    "..a.b...c.d.." for several outputs."""
    if spec.startswith(".."):
        parts = [p for p in spec.strip(".").split("...") if p]
        return [dict(zip(("id", "property"), p.rsplit(".", 1))) for p in parts]
    cid, prop = spec.rsplit(".", 1)
    return {"id": cid, "property": prop}


def layout_values(*layouts) -> dict[tuple[str, str], object]:
    """{(id, prop): value} of every component with a string id in the given Dash layouts
    (what the browser would send as a callback's inputs before any callback ran)."""
    values: dict[tuple[str, str], object] = {}
    for root in layouts:
        for comp in [root, *root._traverse()]:
            props = comp.to_plotly_json().get("props", {}) if hasattr(comp, "to_plotly_json") else {}
            if isinstance(props.get("id"), str):
                for name, value in props.items():
                    values[(props["id"], name)] = value
    return values


def callback_request(output: str, inputs: list[dict], state: list[dict], values: dict,
                     changed: list[str] | None = None) -> dict:
    """The body the browser posts to /_dash-update-component for one callback, its inputs
    and state filled from ``values`` ({(id, prop): value}, None where absent)."""
    def filled(items):
        return [{"id": i["id"], "property": i["property"], "value": values.get((i["id"], i["property"]))}
                for i in items]
    return {"output": output, "outputs": callback_outputs(output), "inputs": filled(inputs),
            "state": filled(state), "changedPropIds": list(changed or [])}
