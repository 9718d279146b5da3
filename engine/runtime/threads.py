"""torch's CPU thread count, changed for a while by any number of threads at once.

``torch.set_num_threads`` is process-wide. Two request threads of the web server that
each save, set and restore it race: the second saves the first one's value and
restores it last, leaving the server on one thread for good. Here the first caller
to enter saves the count and the last to leave restores it.

    with torch_threads(1):   # many small SVDs: one thread beats an oversubscribed pool
        fit()
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

from engine.validate import check_int

_lock = threading.Lock()
_inside = 0
_saved: int | None = None


@contextmanager
def torch_threads(k: int) -> Iterator[None]:
    """torch (and, when threadpoolctl is there, BLAS) on ``k`` threads while inside."""
    import torch

    global _inside, _saved
    k = check_int("threads", k, lo=1, hi=1024)
    with _lock:
        if _inside == 0:
            _saved = torch.get_num_threads()
        _inside += 1
        torch.set_num_threads(k)
    try:
        try:
            from threadpoolctl import threadpool_limits
        except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
            yield
        else:
            with threadpool_limits(limits=k):
                yield
    finally:
        with _lock:
            _inside -= 1
            if _inside == 0 and _saved is not None:
                torch.set_num_threads(_saved)
                _saved = None
