"""A per-host limit on concurrent jobs, with file locks that die with their process.

Each slot is a lock file ``<folder>/slot-<i>.lock`` held with ``fcntl.flock``; the
operating system releases it when the holding process exits, so a killed job never
leaks its slot. Measuring honestly wants one timing job at a time per device, so the
default is one slot (``SPARSITY_LAB_MAX_JOBS`` changes it).

    with JobSlots(folder, 1).hold(on_wait=lambda n: print("queued")):
        run_the_sweep()
"""
from __future__ import annotations

import fcntl
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

MAX_JOBS_ENV = "SPARSITY_LAB_MAX_JOBS"


def max_jobs_from_env(default: int = 1) -> int:
    raw = os.environ.get(MAX_JOBS_ENV, "")
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{MAX_JOBS_ENV}: expected a positive integer, got {raw!r}") from None
    if value < 1:
        raise ValueError(f"{MAX_JOBS_ENV}: expected a positive integer, got {raw!r}")
    return value


class JobSlots:
    def __init__(self, folder: str | Path, slots: int):
        if slots < 1:
            raise ValueError(f"slots: expected at least 1, got {slots!r}")
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)
        self.slots = slots

    def _try_acquire(self) -> int | None:
        for i in range(self.slots):
            fd = os.open(self.folder / f"slot-{i}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return fd
        return None

    def busy(self) -> int:
        """How many slots are held right now (by any process)."""
        held = 0
        for i in range(self.slots):
            fd = os.open(self.folder / f"slot-{i}.lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                fcntl.flock(fd, fcntl.LOCK_UN)
            except BlockingIOError:
                held += 1
            finally:
                os.close(fd)
        return held

    @contextmanager
    def hold(self, on_wait: Callable[[float], None] | None = None, poll_s: float = 0.25,
             timeout_s: float | None = None) -> Iterator[None]:
        """Wait for a free slot (calling ``on_wait(seconds_waited)``), hold it, release it."""
        start = time.monotonic()
        fd = self._try_acquire()
        while fd is None:
            waited = time.monotonic() - start
            if timeout_s is not None and waited > timeout_s:
                raise TimeoutError(f"job slot: expected one free within {timeout_s} s, got none")
            if on_wait is not None:
                on_wait(waited)
            time.sleep(poll_s)
            fd = self._try_acquire()
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
