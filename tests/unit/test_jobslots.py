import multiprocessing as mp
import time

import pytest

from engine.runtime.jobslots import JobSlots, max_jobs_from_env


def _hold(folder, seconds, started):
    with JobSlots(folder, 1).hold():
        started.set()
        time.sleep(seconds)


def test_second_job_waits_until_the_first_releases(tmp_path):
    started = mp.get_context("fork").Event()
    proc = mp.get_context("fork").Process(target=_hold, args=(tmp_path, 1.0, started))
    proc.start()
    assert started.wait(10)
    slots = JobSlots(tmp_path, 1)
    assert slots.busy() == 1
    waits = []
    t0 = time.monotonic()
    with slots.hold(on_wait=waits.append, poll_s=0.05):
        waited = time.monotonic() - t0
    proc.join()
    assert waits, "the second job was never told it is queued"
    assert waited >= 0.5


def test_killed_holder_frees_its_slot(tmp_path):
    started = mp.get_context("fork").Event()
    proc = mp.get_context("fork").Process(target=_hold, args=(tmp_path, 60, started))
    proc.start()
    assert started.wait(10)
    proc.kill()
    proc.join()
    with JobSlots(tmp_path, 1).hold(timeout_s=2):
        pass


def test_two_slots_run_two_jobs(tmp_path):
    slots = JobSlots(tmp_path, 2)
    with slots.hold(timeout_s=1):
        with slots.hold(timeout_s=1):
            assert slots.busy() == 2
            with pytest.raises(TimeoutError, match="expected one free"):
                with slots.hold(timeout_s=0.2, poll_s=0.05):
                    pass


def test_env_limit_is_validated(monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_MAX_JOBS", "zero")
    with pytest.raises(ValueError, match="expected a positive integer"):
        max_jobs_from_env()
    monkeypatch.setenv("SPARSITY_LAB_MAX_JOBS", "3")
    assert max_jobs_from_env() == 3
