"""engine.runtime.threads: concurrent callers restore torch's thread count exactly once."""
import threading

import pytest
import torch

from engine.runtime.threads import torch_threads


def test_concurrent_callers_leave_the_original_count():
    original = torch.get_num_threads()
    target = 1 if original != 1 else 2
    a_in, b_in, a_out = threading.Event(), threading.Event(), threading.Event()
    seen = {}

    def a():
        with torch_threads(target):
            a_in.set()
            b_in.wait(5)
        a_out.set()

    def b():
        a_in.wait(5)
        with torch_threads(target):  # saved naively, this would be ``target``
            b_in.set()
            a_out.wait(5)
            seen["b_inside_after_a_left"] = torch.get_num_threads()

    ta, tb = threading.Thread(target=a), threading.Thread(target=b)
    ta.start(), tb.start()
    ta.join(10), tb.join(10)
    assert seen["b_inside_after_a_left"] == target  # a's exit did not restore under b
    assert torch.get_num_threads() == original       # b, the last one out, restored it


def test_nested_and_bad_counts():
    original = torch.get_num_threads()
    with torch_threads(1):
        with torch_threads(1):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == original
    with pytest.raises(ValueError, match="threads: expected an integer in \\[1, 1024\\], got 0"):
        with torch_threads(0):
            pass
    assert torch.get_num_threads() == original
