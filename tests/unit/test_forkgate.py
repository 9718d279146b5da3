"""The fork gate: forks wait for threads inside, and a child forked behind it while
other threads draw random numbers never hangs (without it most such children do)."""
from __future__ import annotations

import threading
import time

import multiprocess
import pytest
import torch

from engine.runtime.forkgate import ForkGate


def test_fork_waits_until_other_threads_leave_and_blocks_new_ones():
    gate = ForkGate(timeout_s=10)
    entered, release = threading.Event(), threading.Event()
    events: list[str] = []

    def worker():
        gate.enter()
        entered.set()
        release.wait(5)
        events.append("worker left")
        gate.leave()

    t = threading.Thread(target=worker)
    t.start()
    entered.wait(5)
    forker = threading.Thread(target=lambda: gate.fork(lambda: events.append("forked")))
    forker.start()
    time.sleep(0.2)
    assert events == [] and gate.inside == 1  # the fork waits for the worker
    release.set()
    forker.join(5)
    t.join(5)
    assert events == ["worker left", "forked"] and gate.inside == 0


def test_a_forking_request_does_not_wait_for_itself_nor_for_another_forker():
    gate = ForkGate(timeout_s=10)
    results = []

    def request():
        gate.enter()
        results.append(gate.fork(lambda: threading.get_ident()))
        gate.leave()

    threads = [threading.Thread(target=request) for _ in range(2)]
    t0 = time.perf_counter()
    [t.start() for t in threads]
    [t.join(5) for t in threads]
    assert len(results) == 2 and time.perf_counter() - t0 < 2 and gate.inside == 0


def test_fork_goes_ahead_after_the_timeout_and_leave_without_enter_is_harmless():
    gate = ForkGate(timeout_s=0.3)
    gate.leave()
    hold = threading.Event()
    t = threading.Thread(target=lambda: (gate.enter(), hold.wait(5), gate.leave()))
    t.start()
    time.sleep(0.1)
    t0 = time.perf_counter()
    assert gate.fork(lambda: "went") == "went"
    assert 0.25 < time.perf_counter() - t0 < 3
    hold.set()
    t.join(5)
    assert gate.inside == 0
    with pytest.raises(ValueError, match="expected a positive number of seconds, got 0"):
        ForkGate(timeout_s=0)


def _draw():
    for _ in range(3):
        torch.randn(200_000).sum()


def test_children_forked_behind_the_gate_never_hang_while_threads_use_torch_rng():
    gate = ForkGate(timeout_s=20)
    stop = threading.Event()

    def request_loop():
        while not stop.is_set():
            gate.enter()
            try:
                torch.randn(1_000_000)
            finally:
                gate.leave()

    workers = [threading.Thread(target=request_loop, daemon=True) for _ in range(2)]
    [w.start() for w in workers]
    hung = 0
    try:
        for _ in range(10):
            def start():
                p = multiprocess.Process(target=_draw)
                p.start()
                return p

            holder = []
            t = threading.Thread(target=lambda: holder.append(gate.fork(start)))
            t.start()
            t.join(30)
            proc = holder[0]
            proc.join(20)
            if proc.is_alive():
                hung += 1
                proc.kill()
            else:
                assert proc.exitcode == 0
    finally:
        stop.set()
        [w.join(5) for w in workers]
    assert hung == 0
