"""Is a job still alive? Process checks that see zombies and reused pids, and heartbeats.

A job records where it runs (``job_identity()``: pid, host, the process's start time)
in its run's metadata. On the same host ``process_alive`` answers from psutil: a zombie
(exited, not yet reaped) is dead, and a pid now used by another process (a different
start time) is dead too, where ``os.kill(pid, 0)`` says "alive" to both. A job on another
host (a Celery worker) is judged by its heartbeat: a ``Heartbeat`` thread in the job
stamps the run store every ``HEARTBEAT_S`` seconds, and a beat older than ``STALE_S``
means the process is gone (killed, out of memory, its host down).

    with Heartbeat(store, [f"run:{run_id}"]):
        for row in rows: store.append(run_id, row)
    beat_age(store, f"run:{run_id}")   # seconds since the last beat, None if never
"""
from __future__ import annotations

import os
import threading
import time
from typing import Any, Iterable

HEARTBEAT_S = 1.0
STALE_S = 5.0  # several missed beats: a busy machine may delay one or two
BEAT_KEEP_S = 3600.0  # a beat is kept this long, so "beat once, then stopped" stays visible


def host_name() -> str:
    return os.uname().nodename


def job_identity() -> dict:
    """What a job records about its own process: pid, host and start time."""
    import psutil

    pid = os.getpid()
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        started = None
    return {"pid": pid, "host": host_name(), "pid_started": started}


def process_alive(pid: Any, started: float | None = None) -> bool:
    """True if ``pid`` runs on this host, is not a zombie, and (when ``started`` is
    given) is the same process that recorded it (start times within 1 s)."""
    import psutil

    try:
        proc = psutil.Process(int(pid))
        if proc.status() in (psutil.STATUS_ZOMBIE, psutil.STATUS_DEAD):
            return False
        if started is not None and abs(proc.create_time() - float(started)) > 1.0:
            return False  # the pid was reused by another process
        return True
    except (psutil.NoSuchProcess, ValueError, TypeError):
        return False
    except psutil.AccessDenied:
        return True  # it exists; someone else's


class Heartbeat:
    """A daemon thread stamping ``store.beat(name)`` for each name every ``interval`` s."""

    def __init__(self, store, names: Iterable[str], interval: float = HEARTBEAT_S):
        self.store = store
        self.names = list(names)
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="job-heartbeat", daemon=True)

    def add(self, name: str) -> None:
        self.names.append(name)
        self._beat_once()

    def _beat_once(self) -> None:
        for name in list(self.names):
            try:
                self.store.beat(name, ttl=BEAT_KEEP_S)
            except Exception:  # noqa: BLE001 - a missed beat must never fail the job
                pass

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._beat_once()

    def __enter__(self) -> "Heartbeat":
        self._beat_once()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=2 * self.interval)


def beat_age(store, name: str) -> float | None:
    """Seconds since ``name``'s last beat, or None if it never beat (or expired)."""
    stamp = store.last_beat(name)
    return None if stamp is None else max(0.0, time.time() - stamp)


def run_alive(store, record: dict, host: str | None = None) -> bool | None:
    """Is the job of a "running" run record alive? True / False, or None when the record
    says too little to tell (no pid and no heartbeat: an old run)."""
    age = beat_age(store, f"run:{record['run_id']}")
    host = host or host_name()
    if record.get("host") == host and "pid" in record:
        return process_alive(record["pid"], record.get("pid_started"))
    if age is not None:
        return age <= STALE_S
    if record.get("heartbeat_s"):  # it beats: none yet is a young run, else long gone
        return time.time() - created_s(record) < STALE_S
    if "pid" in record and "host" not in record:
        return process_alive(record["pid"])  # recorded before hosts were: assume this one
    return None


def created_s(record: dict) -> float:
    """A run record's "created" stamp (local time, as the stores write it) in epoch s."""
    try:
        return time.mktime(time.strptime(record["created"], "%Y-%m-%d %H:%M:%S"))
    except (KeyError, ValueError, TypeError):
        return 0.0
