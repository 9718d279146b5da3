"""engine.runtime.threads: concurrent callers restore torch's thread count exactly once."""
import threading

import pytest
import torch

from engine.runtime import threads
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


def test_web_threads_setting(monkeypatch):
    monkeypatch.delenv(threads.WEB_THREADS_ENV, raising=False)
    assert threads.web_threads() == 1
    monkeypatch.setenv(threads.WEB_THREADS_ENV, "3")
    assert threads.web_threads() == 3
    monkeypatch.setenv(threads.WEB_THREADS_ENV, "0")
    with pytest.raises(ValueError, match="SPARSITY_LAB_WEB_TORCH_THREADS: expected an integer in \\[1, 1024\\], got '0'"):
        threads.web_threads()


def test_a_bad_web_setting_fails_every_request_and_is_never_recorded_as_done(monkeypatch):
    import os

    monkeypatch.setattr(threads, "_web", {})
    monkeypatch.setenv(threads.WEB_THREADS_ENV, "0")
    for _ in range(2):   # not once and then silently skipped
        with pytest.raises(ValueError, match="expected an integer"):
            threads.use_web_threads()
    assert os.getpid() not in threads._web


def test_a_serving_process_runs_on_the_web_count_and_a_job_gets_its_own_back(monkeypatch):
    import os

    original = torch.get_num_threads()
    web = 1 if original != 1 else 2
    monkeypatch.setenv(threads.WEB_THREADS_ENV, str(web))
    monkeypatch.setattr(threads, "_web", {})
    try:
        threads.use_web_threads()
        assert torch.get_num_threads() == web and threads._web == {os.getpid(): original}
        torch.set_num_threads(original)
        threads.use_web_threads()          # once per process: a second request changes nothing
        assert torch.get_num_threads() == original
        torch.set_num_threads(web)
        threads.use_job_threads()          # what a job forked from a request thread calls
        assert torch.get_num_threads() == original
    finally:
        torch.set_num_threads(original)


def test_large_tensor_work_gets_torch_its_own_count_back(monkeypatch):
    import os

    original = torch.get_num_threads()
    if original < 2:
        pytest.skip("one core: nothing to give back")
    monkeypatch.setattr(threads, "_web", {os.getpid(): original})
    torch.set_num_threads(1)                       # the web server's count
    try:
        with threads.threads_for(threads.LARGE_OP_ELEMENTS - 1):
            assert torch.get_num_threads() == 1
        with threads.threads_for(threads.LARGE_OP_ELEMENTS):
            assert torch.get_num_threads() == original
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(original)
