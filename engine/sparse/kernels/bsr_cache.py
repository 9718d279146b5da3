"""lab-bsr's caches: per matrix, or one bounded, named cache per process.

Everything that depends on one matrix (launch order, split / persistent / union plans,
launchers with their descriptors, the per-call fast path) is kept on the matrix
(``BsrMatrix._plans``) and dies with it. What outlives a matrix lives in ONE bounded,
least-recently-used cache, ``KERNEL_CACHE``, under keys that say what they hold:

* ``("sm_count", device)``: streaming multiprocessors of a GPU;
* ``("tma", device)``: whether it has the tensor-memory accelerator (sm_90+);
* ``("tuned", shape key)``: the configuration the tuner chose for that key;
* ``("stages", stage key)``: the pipeline depth that fits in shared memory;
* ``("interpreted", kernel name)``: a kernel's interpreted twin (CPU interpreter).

``TUNE_LOG`` (what the tuner timed, one dict per configuration) is bounded too, and
``clear_caches()`` forgets all of it (an entry dropped is only recomputed). The op's
matrices (``bsr_op``) use the same ``BoundedCache``.
"""
from __future__ import annotations

import threading
from collections import OrderedDict, deque
from typing import Any, Callable, Hashable

KERNEL_CACHE_SIZE = 1024
TUNE_LOG_SIZE = 10_000


class BoundedCache:
    """A named dict of at most ``maxsize`` entries; the least recently used goes first."""

    def __init__(self, name: str, maxsize: int) -> None:
        if isinstance(maxsize, bool) or not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"maxsize: expected a positive integer, got {maxsize!r}")
        self.name, self.maxsize = name, maxsize
        self._items: OrderedDict[Hashable, Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            if key not in self._items:
                return default
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key: Hashable, value: Any) -> Any:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.maxsize:
                self._items.popitem(last=False)
        return value

    def get_or_make(self, key: Hashable, make: Callable[[], Any]) -> Any:
        """The entry under ``key``, made (outside the lock) and kept when missing."""
        missing = object()
        found = self.get(key, missing)
        return self.put(key, make()) if found is missing else found

    def pop(self, key: Hashable, default: Any = None) -> Any:
        with self._lock:
            return self._items.pop(key, default)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()

    def keys(self) -> list:
        with self._lock:
            return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def __repr__(self) -> str:
        return f"BoundedCache({self.name!r}, {len(self)} of {self.maxsize} entries)"


KERNEL_CACHE = BoundedCache("lab-bsr kernel cache", KERNEL_CACHE_SIZE)
TUNE_LOG: deque = deque(maxlen=TUNE_LOG_SIZE)  # one dict per (key, config) the tuner timed


def clear_caches() -> None:
    """Forget the GPU facts, tuned configurations, stage fits, interpreted kernels and
    the tuner's log (per-matrix plans die with their matrices)."""
    KERNEL_CACHE.clear()
    TUNE_LOG.clear()
