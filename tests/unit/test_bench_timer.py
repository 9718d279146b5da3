"""The timer against operations of known cost; it returns a Measurement."""
from __future__ import annotations

import time

import pytest

from engine.bench.measurement import EAGER, Measurement, Task
from engine.bench.timer import measure, measure_once, repeat_until_settled

# (sleep seconds, repeats)
KNOWN_COSTS = [(0.004, 5), (0.012, 3)]
SLEEP = Task(op="sleep", backend="time.sleep", dims={"n": 1})


@pytest.mark.parametrize("seconds,repeats", KNOWN_COSTS)
def test_timer_measures_a_sleep(seconds, repeats):
    t = measure(lambda: time.sleep(seconds), repeats=repeats, warmup=1, task=SLEEP)
    assert isinstance(t, Measurement) and t.task is SLEEP
    assert t.runs == repeats and t.number_per_run == 1 and t.repeats == repeats
    assert seconds <= t.median_s < seconds * 2 + 0.003  # sleep never returns early; allow a loaded CI
    assert 0 <= t.iqr_s < seconds


def test_short_ops_are_batched_and_per_call():
    t = measure(lambda: None, repeats=3, task=SLEEP)
    assert t.number_per_run > 1 and t.median_s < 1e-4
    assert t.method == EAGER
    assert t.row()["number_per_run"] == t.number_per_run


def test_bad_repeats_and_mismatched_device():
    with pytest.raises(ValueError, match="repeats: expected"):
        measure(lambda: None, repeats=0)
    with pytest.raises(ValueError, match="device: expected the task's device cpu, got cuda"):
        measure(lambda: None, repeats=1, device="cuda", task=SLEEP)


def test_repeat_until_settled_stops_when_settled():
    t = repeat_until_settled(lambda: time.sleep(0.002), task=SLEEP, budget_s=5.0, min_runs=5)
    assert t.settled is True and not t.noisy
    assert 5 <= t.runs < 200  # a steady sleep settles quickly, long before the budget


def test_repeat_until_settled_stops_at_the_budget():
    delays = iter([0.001, 0.02] * 1000)  # alternating 1 ms / 20 ms: IQR/median never falls to 0.1
    started = time.perf_counter()
    t = repeat_until_settled(lambda: time.sleep(next(delays)), task=SLEEP, budget_s=0.4,
                             min_runs=5, warmup=1, target_run_s=0.0)
    assert t.settled is False and t.noisy
    assert time.perf_counter() - started < 2.0
    with pytest.raises(ValueError, match="min_runs: expected"):
        repeat_until_settled(lambda: None, task=SLEEP, min_runs=1)


def test_repeat_until_settled_takes_min_runs_even_past_the_budget():
    """A warm-up longer than the budget still leaves min_runs timed runs (callers promise
    "at least repeats runs"); then the budget stops it."""
    calls = []

    def fn():
        time.sleep(0.03 if len(calls) < 4 else 0.001)  # a slow first call, as a cold path is
        calls.append(1)

    t = repeat_until_settled(fn, task=SLEEP, budget_s=0.01, min_runs=5, warmup=1, target_run_s=0.0)
    assert t.runs == 5


def test_measure_once_is_a_median():
    assert 0.005 <= measure_once(lambda: time.sleep(0.005), repeats=3) < 0.02
