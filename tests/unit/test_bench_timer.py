"""The timer against operations of known cost."""
from __future__ import annotations

import time

import pytest

from engine.bench.timer import NOISE_THRESHOLD, Timing, measure, measure_once

# (sleep seconds, repeats)
KNOWN_COSTS = [(0.004, 5), (0.012, 3)]


@pytest.mark.parametrize("seconds,repeats", KNOWN_COSTS)
def test_timer_measures_a_sleep(seconds, repeats):
    t = measure(lambda: time.sleep(seconds), repeats=repeats, warmup=1)
    assert t.runs == repeats and t.number_per_run == 1
    assert seconds <= t.median_s < seconds * 2 + 0.003  # sleep never returns early; allow a loaded CI
    assert 0 <= t.iqr_s < seconds


def test_short_ops_are_batched_and_per_call():
    t = measure(lambda: None, repeats=3)
    assert t.number_per_run > 1 and t.median_s < 1e-4
    assert "torch.utils.benchmark" in t.method


def test_noise_flag_and_bad_repeats():
    assert Timing(1.0, 0.2, 5, 1, "m").noisy and not Timing(1.0, NOISE_THRESHOLD / 2, 5, 1, "m").noisy
    with pytest.raises(ValueError, match="repeats: expected"):
        measure(lambda: None, repeats=0)


def test_measure_once_is_a_median():
    assert 0.005 <= measure_once(lambda: time.sleep(0.005), repeats=3) < 0.02
