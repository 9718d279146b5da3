"""torch's CPU thread count: the web server's, and changed for a while by any number of threads.

**The web server runs torch on one intra-op thread** (``use_web_threads``, a before-request
hook of app.py; ``SPARSITY_LAB_WEB_TORCH_THREADS`` changes it). Its requests are many small
ops (a 4096-entry GELU, a 16 x 16 convolution, a CSR product), next to a browser and a
second worker on the same cores. Each op past torch's grain size opens an OpenMP region
whose second thread must be scheduled before the op can finish: measured here, a float32
GELU of 4,096 entries took 15 us on one thread and 1.7 ms of CPU (4 ms wall) on two, and
/moe's routing view, /isomorphism's inline timing and /attention's mask view ran 1.3 to 10
times slower in wall time on two threads on the shared 2-core machine. Work on large
tensors (``threads_for(elements)``, from 4M entries: /attention's 4096 x 4096 masks) gets
torch's own count back for its duration, and so does a job forked from a request thread
(``use_job_threads``); Celery workers never serve requests, so they keep it.

``torch.set_num_threads`` is process-wide. Two request threads of the web server that
each save, set and restore it race: the second saves the first one's value and
restores it last, leaving the server on one thread for good. Here the first caller
to enter saves the count and the last to leave restores it.

    with torch_threads(1):   # many small SVDs: one thread beats an oversubscribed pool
        fit()
"""
from __future__ import annotations

import os
import threading
from contextlib import contextmanager
from typing import Iterator

from engine.validate import check_int

WEB_THREADS_ENV = "SPARSITY_LAB_WEB_TORCH_THREADS"
_web: dict = {}  # pid -> torch's own count before the web setting (a forked child has another pid)


def web_threads() -> int:
    """torch's intra-op threads while a process serves requests: $SPARSITY_LAB_WEB_TORCH_THREADS
    (an integer in [1, 1024]), default 1."""
    raw = os.environ.get(WEB_THREADS_ENV, "").strip()
    return check_int(WEB_THREADS_ENV, raw, lo=1, hi=1024) if raw else 1


def use_web_threads(*_args) -> None:
    """Put this process's torch on ``web_threads()`` threads, once per process (a
    before-request hook: only processes that serve requests pay for it)."""
    if os.getpid() in _web:
        return
    import torch

    n = web_threads()  # a bad setting fails here, every request, before anything is recorded
    with _lock:
        if os.getpid() not in _web:
            own = torch.get_num_threads()
            torch.set_num_threads(n)
            _web[os.getpid()] = own  # recorded last: the fast path above skips only a finished set-up


# Past this many tensor entries an op runs long enough for a second thread to pay for waking it:
# /attention's 4096 x 4096 mask view took ~250 ms on two threads and ~400 ms on one (quiet machine).
LARGE_OP_ELEMENTS = 1 << 22


def own_threads() -> int:
    """torch's own thread count: what it had before ``use_web_threads`` (its count now elsewhere)."""
    import torch

    return next(iter(_web.values()), None) or torch.get_num_threads()


def threads_for(elements: int):
    """A context: torch's own thread count for work on tensors of ``elements`` entries or more
    (``LARGE_OP_ELEMENTS``), the current count (the web server's one) for smaller ones.

        with threads_for(seq_len ** 2):
            view = mask_view(spec)
    """
    import contextlib

    own = own_threads()
    if int(elements) < LARGE_OP_ELEMENTS or own <= 1:
        return contextlib.nullcontext()
    return torch_threads(own)


def use_job_threads() -> None:
    """In a job forked from a request thread: torch's own count again (what the server had
    before ``use_web_threads``); a no-op in a process that never served requests."""
    import torch

    own = next(iter(_web.values()), None)
    if own is not None and torch.get_num_threads() != own:
        torch.set_num_threads(own)

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
