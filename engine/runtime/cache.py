"""A bounded cache for PURE computations, keyed by the engine spec.

Many clients moving the same sliders ask for the same lowering matrix, pruning mask or
Pareto front again and again. ``pure_cache`` stores such results once, in a store every
gunicorn worker and Celery host shares: a ``diskcache.Cache`` under
``<SPARSITY_LAB_CACHE>/pure`` by default, or Redis when ``SPARSITY_LAB_REDIS_URL`` is set.

    from engine.runtime.cache import pure_cache

    @pure_cache
    def conv_lowering(spec: ConvSpec) -> scipy.sparse.csr_matrix:
        ...                                # deterministic in ``spec`` alone

    conv_lowering(ConvSpec(h=32, w=32, k=3))   # computed, stored
    conv_lowering(ConvSpec(h=32, w=32, k=3))   # read back (a fresh copy)
    conv_lowering.cache_info()                 # CacheInfo(hits=1, misses=1, skipped=0)

Keys: a SHA-256 of the function's module and qualified name, the versions of the
libraries whose objects it holds (``KEYED_LIBRARIES``: the store outlives an upgrade), a
fingerprint of the lab's code (every ``.py`` under ``engine/``, ``components/`` and ``pages/``, and ``app.py``, so an
edit never serves a stale result) and a canonical, type-tagged encoding of the bound arguments: ``1``, ``1.0``,
``True`` and ``"1"`` differ, a tuple is not a list, a frozen dataclass spec is its class
plus its fields, a numpy array is its dtype, shape and bytes. An argument of any other
type raises ``TypeError`` rather than risk two specs sharing an entry.

Bound: ``SPARSITY_LAB_PURE_CACHE_MB`` (default 256; ``0`` turns the cache off). In the
folder the oldest stored entries go first (so a read takes no write lock: with least recently
used, every read, hit or miss, was a write transaction that queued every thread of every
worker behind one SQLite lock, 13 times fewer reads a second); in Redis the least recently
used go first. One entry larger than an eighth of the bound is computed but not stored. Values are pickled by this module and only ever read back from the lab's
own store (the cache folder, or the team's Redis, which the lab already trusts with jobs);
an entry that does not load is a miss, computed and stored again.

Two threads that ask for the same cold key at once compute it once: the second waits on
the key's in-flight lock (``KeyLocks``, one per process) and reads what the first stored.

Timings are never cached: a measurement is a measurement. A function under
``engine.bench.timer`` cannot be decorated, and a result that is (or holds at its top
level) an ``engine.bench.measurement`` record raises ``TypeError`` instead of being stored.
"""
from __future__ import annotations

import dataclasses
import enum
import functools
import hashlib
import inspect
import logging
import math
import os
import pickle
import sqlite3
import struct
import threading
import time
from contextlib import contextmanager
from pathlib import Path, PurePath
from typing import Any, Callable, NamedTuple

PURE_CACHE_MB_ENV = "SPARSITY_LAB_PURE_CACHE_MB"
DEFAULT_PURE_CACHE_MB = 256
REDIS_URL_ENV = "SPARSITY_LAB_REDIS_URL"
REDIS_PREFIX = "sparsity-lab:pure"
# One entry may take at most this share of the bound, so the cache holds several.
MAX_ENTRY_SHARE = 8
_ROOT = Path(__file__).resolve().parents[2]
_FINGERPRINT_FOLDERS = ("engine", "components", "pages")
_FINGERPRINT_FILES = ("app.py",)
# A computation that holds its key's lock longer than this lets a waiting thread compute too.
INFLIGHT_WAIT_S = 120.0
_TIMING_MODULES = ("engine.bench.timer", "engine.bench.measurement")
log = logging.getLogger(__name__)


class CacheInfo(NamedTuple):
    hits: int
    misses: int
    skipped: int  # computed but not stored: too large, or the cache is off


# -- settings ------------------------------------------------------------------------
def pure_cache_limit_bytes() -> int:
    """The bound from $SPARSITY_LAB_PURE_CACHE_MB (MB, 0 = off), in bytes."""
    raw = os.environ.get(PURE_CACHE_MB_ENV, "").strip()
    if not raw:
        return DEFAULT_PURE_CACHE_MB * 2**20
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{PURE_CACHE_MB_ENV}: expected a number of MB >= 0, got {raw!r}")
    return int(value * 2**20)


# The libraries whose objects and outputs the entries hold: the store outlives an upgrade.
KEYED_LIBRARIES = ("dash", "plotly", "pandas", "numpy", "scipy", "torch")


@functools.lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    """The installed versions of ``KEYED_LIBRARIES`` (read once per process); part of every key."""
    from engine.runtime.device import package_version

    return {name: package_version(name) for name in KEYED_LIBRARIES}


@functools.lru_cache(maxsize=1)
def code_fingerprint() -> str:
    """SHA-256 of every .py file under engine/, components/ and pages/, and of app.py
    (paths and contents)."""
    digest = hashlib.sha256()
    paths = [p for folder in _FINGERPRINT_FOLDERS for p in sorted((_ROOT / folder).rglob("*.py"))]
    for path in paths + [_ROOT / name for name in _FINGERPRINT_FILES if (_ROOT / name).is_file()]:
        digest.update(str(path.relative_to(_ROOT)).encode())
        digest.update(b"\0")
        digest.update(path.read_bytes())
        digest.update(b"\0")
    return digest.hexdigest()


# -- canonical encoding --------------------------------------------------------------
def _encode(value: Any, out: list[bytes]) -> None:
    """Append a type-tagged, unambiguous encoding of ``value`` to ``out``."""
    def tagged(tag: bytes, payload: bytes) -> None:
        out.append(tag + struct.pack(">Q", len(payload)) + payload)

    def seq(tag: bytes, items) -> None:
        items = list(items)
        out.append(tag + struct.pack(">Q", len(items)))
        for item in items:
            _encode(item, out)

    if value is None:
        out.append(b"N")
    elif isinstance(value, bool):  # before int: True is an int
        out.append(b"T" if value else b"F")
    elif isinstance(value, enum.Enum):
        tagged(b"E", _class_name(type(value)).encode())
        _encode(value.value, out)
    elif isinstance(value, int):
        tagged(b"i", str(value).encode())
    elif isinstance(value, float):
        tagged(b"f", float(value).hex().encode())
    elif isinstance(value, complex):
        tagged(b"c", f"{value.real.hex()},{value.imag.hex()}".encode())
    elif isinstance(value, str):
        tagged(b"s", value.encode("utf-8", "surrogatepass"))
    elif isinstance(value, (bytes, bytearray)):
        tagged(b"b", bytes(value))
    elif isinstance(value, PurePath):
        tagged(b"p", str(value).encode("utf-8", "surrogatepass"))
    elif dataclasses.is_dataclass(value) and not isinstance(value, type):
        tagged(b"D", _class_name(type(value)).encode())
        seq(b"(", ((f.name, getattr(value, f.name)) for f in dataclasses.fields(value)))
    elif isinstance(value, tuple) and hasattr(value, "_fields"):  # NamedTuple
        tagged(b"n", _class_name(type(value)).encode())
        seq(b"(", zip(value._fields, value))
    elif isinstance(value, tuple):
        seq(b"(", value)
    elif isinstance(value, list):
        seq(b"[", value)
    elif isinstance(value, (set, frozenset)):
        parts = sorted(_encoded(v) for v in value)
        seq(b"{", parts)
    elif isinstance(value, dict):
        pairs = sorted((_encoded(k), _encoded(v)) for k, v in value.items())
        seq(b"d", pairs)
    elif _is_numpy(value):
        _encode_numpy(value, out, tagged)
    elif isinstance(value, type) or inspect.isfunction(value) or inspect.isbuiltin(value):
        name = _class_name(value)
        if "<" in name:  # a lambda or a local function: its name does not say what it does
            raise TypeError(f"pure cache key: expected a module-level function or class, got {name}")
        tagged(b"q", name.encode())
    else:
        raise TypeError(
            f"pure cache key: expected None, bool, int, float, complex, str, bytes, Path, "
            f"Enum, tuple, list, set, dict, dataclass or numpy value, got {type(value).__name__}")


def _encoded(value: Any) -> bytes:
    out: list[bytes] = []
    _encode(value, out)
    return b"".join(out)


def _class_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def _is_numpy(value: Any) -> bool:
    return type(value).__module__ == "numpy"


def _encode_numpy(value: Any, out: list[bytes], tagged) -> None:
    import numpy as np

    if isinstance(value, np.generic):
        if value.dtype.hasobject:
            raise TypeError(f"pure cache key: expected a numeric numpy scalar, got {value.dtype}")
        tagged(b"g", value.dtype.str.encode() + b":" + value.tobytes())
    elif isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise TypeError("pure cache key: expected a numeric numpy array, got dtype object")
        header = f"{value.dtype.str}:{value.shape}".encode()
        body = hashlib.sha256(np.ascontiguousarray(value).tobytes()).digest()
        tagged(b"a", header + b":" + body)
    else:
        raise TypeError(f"pure cache key: expected a numpy array or scalar, got {type(value).__name__}")


def cache_key(fn: Callable, args: tuple = (), kwargs: dict | None = None) -> str:
    """The hex key of ``fn(*args, **kwargs)``: arguments bound to the signature with
    defaults applied, so ``f(1)`` and ``f(x=1)`` share an entry and nothing else does."""
    try:
        bound = inspect.signature(fn).bind(*args, **(kwargs or {}))
    except TypeError as exc:
        raise TypeError(f"{fn.__qualname__}: {exc}") from None
    bound.apply_defaults()
    digest = hashlib.sha256()
    digest.update(f"{fn.__module__}.{fn.__qualname__}\0{code_fingerprint()}\0".encode())
    digest.update(_encoded(tuple(sorted(library_versions().items()))))
    digest.update(_encoded(tuple(bound.arguments.items())))
    # A closure's captured values are inputs too: two closures of one factory never share.
    cells = tuple(c.cell_contents for c in (getattr(fn, "__closure__", None) or ()))
    if cells:
        digest.update(_encoded(cells))
    return digest.hexdigest()


# -- stores --------------------------------------------------------------------------
@contextmanager
def _unavailable_is_a_miss(where: str, errors: tuple):
    """A store that fails (locked past its timeout, disk full, Redis gone) is a miss, never
    a failed request: the caller computes and carries on."""
    try:
        yield
    except errors as exc:
        log.warning("pure cache at %s unavailable (%s: %s); computing without it", where,
                    type(exc).__name__, exc)


class DiskStore:
    """``diskcache.Cache`` in a folder, the oldest stored evicted first at ``limit`` bytes
    (reads are lock-free; see the module docstring)."""

    def __init__(self, folder: str | Path, limit: int):
        import diskcache

        self.limit = limit
        self.path = Path(folder)
        self._cache = diskcache.Cache(str(self.path), size_limit=limit,
                                      eviction_policy="least-recently-stored", cull_limit=64)
        self._errors = (diskcache.Timeout, sqlite3.Error, OSError)

    def get(self, key: str) -> bytes | None:
        with _unavailable_is_a_miss(str(self.path), self._errors):
            return self._cache.get(key)
        return None

    def set(self, key: str, blob: bytes) -> None:
        with _unavailable_is_a_miss(str(self.path), self._errors):
            self._cache.set(key, blob)

    def volume(self) -> int:
        """Bytes on disk, including the index (what the bound applies to)."""
        return int(self._cache.volume())

    def clear(self) -> None:
        self._cache.clear()


# Set one entry, then drop least-recently-used entries until the total is under the bound.
_REDIS_SET = """
local old = tonumber(redis.call('HGET', KEYS[2], KEYS[1]) or '0')
redis.call('SET', KEYS[1], ARGV[1])
local size = string.len(ARGV[1])
redis.call('HSET', KEYS[2], KEYS[1], size)
redis.call('ZADD', KEYS[3], ARGV[2], KEYS[1])
local total = redis.call('INCRBY', KEYS[4], size - old)
local limit = tonumber(ARGV[3])
while total > limit do
  local oldest = redis.call('ZRANGE', KEYS[3], 0, 0)
  if #oldest == 0 then break end
  local k = oldest[1]
  local s = tonumber(redis.call('HGET', KEYS[2], k) or '0')
  redis.call('ZREM', KEYS[3], k)
  redis.call('HDEL', KEYS[2], k)
  redis.call('DEL', k)
  total = redis.call('INCRBY', KEYS[4], -s)
end
return total
"""


class RedisStore:
    """Entries under ``sparsity-lab:pure:<key>`` with a size table and an LRU order, so
    the total stays under ``limit`` bytes across every worker and host."""

    def __init__(self, url: str, limit: int, prefix: str = REDIS_PREFIX):
        import redis

        self.limit = limit
        self.path = url
        self.prefix = prefix
        self._r = redis.Redis.from_url(url)
        self._set = self._r.register_script(_REDIS_SET)
        self._meta = [f"{prefix}:sizes", f"{prefix}:lru", f"{prefix}:bytes"]
        self._errors = (redis.RedisError,)

    def get(self, key: str) -> bytes | None:
        name = f"{self.prefix}:{key}"
        with _unavailable_is_a_miss("Redis", self._errors):
            blob = self._r.get(name)
            if blob is not None:
                self._r.zadd(self._meta[1], {name: time.time()}, xx=True)
            return blob
        return None

    def set(self, key: str, blob: bytes) -> None:
        with _unavailable_is_a_miss("Redis", self._errors):
            self._set(keys=[f"{self.prefix}:{key}", *self._meta], args=[blob, time.time(), self.limit])

    def volume(self) -> int:
        return int(self._r.get(self._meta[2]) or 0)

    def clear(self) -> None:
        names = self._r.zrange(self._meta[1], 0, -1)
        if names:
            self._r.delete(*names)
        self._r.delete(*self._meta)


_default: dict[str, Any] = {}
_default_lock = threading.Lock()


def default_store() -> DiskStore | RedisStore | None:
    """The store the settings choose (None when the cache is off), one per process."""
    limit = pure_cache_limit_bytes()
    url = os.environ.get(REDIS_URL_ENV, "")
    from engine.runtime.store import CACHE_ENV, cache_dir

    # what decides the store, read without touching the disk (this runs on every lookup)
    ident = (os.getpid(), url, os.environ.get(CACHE_ENV), limit)
    with _default_lock:
        if _default.get("ident") != ident:
            store = None
            if limit > 0:
                store = RedisStore(url, limit) if url else DiskStore(cache_dir() / "pure", limit)
            _default.update(ident=ident, store=store)
        return _default["store"]


# -- in-flight locks ----------------------------------------------------------------
class KeyLocks:
    """One lock per key, held while that key is being computed, so threads of one process
    that miss the same key at once compute it once (the others wait, then read the store).

    A lock lives only while some thread holds or waits for it; a wait longer than
    ``timeout_s`` gives up (``acquire`` returns False) rather than hang a request. A forked
    child (a background job) starts with none held: the threads that held them are not in it.
    """

    def __init__(self, timeout_s: float = INFLIGHT_WAIT_S):
        self.timeout_s = timeout_s
        self._forget_all()
        if hasattr(os, "register_at_fork"):
            os.register_at_fork(after_in_child=self._forget_all)

    def _forget_all(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, list] = {}  # key -> [lock, threads holding or waiting]

    def acquire(self, key: str) -> bool:
        with self._guard:
            entry = self._locks.setdefault(key, [threading.Lock(), 0])
            entry[1] += 1
        if entry[0].acquire(timeout=self.timeout_s):
            return True
        self._forget(key)
        return False

    def release(self, key: str) -> None:
        """Let go of ``key`` (acquired by this thread)."""
        with self._guard:
            entry = self._locks[key]
        entry[0].release()
        self._forget(key)

    def _forget(self, key: str) -> None:
        with self._guard:
            entry = self._locks[key]
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[key]

    @contextmanager
    def hold(self, key: str):
        """``with locks.hold(key):`` the body runs alone for ``key`` (or after a timeout)."""
        got = self.acquire(key)
        try:
            yield got
        finally:
            if got:
                self.release(key)

    def __len__(self) -> int:
        with self._guard:
            return len(self._locks)


INFLIGHT = KeyLocks()


# -- the decorator -------------------------------------------------------------------
def _refuse_timing(fn_name: str, result: Any) -> None:
    items = [result]
    if isinstance(result, (list, tuple)):
        items += list(result)
    elif isinstance(result, dict):
        items += list(result.values())
    for item in items:
        if type(item).__module__ in _TIMING_MODULES:
            raise TypeError(f"{fn_name}: expected a pure result, got a timing "
                            f"({type(item).__name__}); timings are never cached")


def pure_cache(fn: Callable | None = None, *, store: Callable[[], Any] | Any = default_store):
    """Memoize a pure function of its arguments in the shared, bounded store.

    ``store`` is the store (or a zero-argument callable returning it; None = off); the
    default reads the settings at each call, so tests and forked jobs pick up theirs.
    The wrapper has ``cache_info()``, ``cache_key(*args, **kw)``, ``put(result, *args, **kw)``
    (store a result computed elsewhere) and ``uncached``.
    """
    if fn is None:
        return functools.partial(pure_cache, store=store)
    if fn.__module__ in _TIMING_MODULES:
        raise TypeError(f"{fn.__qualname__}: expected a pure computation, got a timing "
                        f"function ({fn.__module__}); timings are never cached")
    counts = {"hits": 0, "misses": 0, "skipped": 0}
    lock = threading.Lock()

    def count(name: str) -> None:
        with lock:
            counts[name] += 1

    def keep(target, key: str, result) -> None:
        _refuse_timing(fn.__qualname__, result)
        if target is None:
            count("skipped")
            return
        blob = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
        if len(blob) > target.limit // MAX_ENTRY_SHARE:
            count("skipped")
        else:
            target.set(key, blob)

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        key = cache_key(fn, args, kwargs)
        target = store() if callable(store) else store
        if target is None:
            return compute(None, key, args, kwargs)
        blob = target.get(key)
        if blob is None:
            with INFLIGHT.hold(key):
                blob = target.get(key)  # a thread that held the key may have stored it
                if blob is None:
                    return compute(target, key, args, kwargs)
        try:
            value = pickle.loads(blob)
        except Exception as exc:  # e.g. written by other library versions: a miss, recomputed
            log.warning("pure cache: %s: an entry that does not load (%s); computing it again",
                        fn.__qualname__, type(exc).__name__)
            return compute(target, key, args, kwargs)
        count("hits")
        return value

    def compute(target, key: str, args: tuple, kwargs: dict):
        result = fn(*args, **kwargs)
        count("misses")
        keep(target, key, result)
        return result

    def put(result, *args, **kwargs) -> None:
        """Store ``result`` as what ``fn(*args, **kwargs)`` returns, computed elsewhere (a
        job that ran the same pure computation step by step), so it is not done twice."""
        keep(store() if callable(store) else store, cache_key(fn, args, kwargs), result)

    wrapper.cache_info = lambda: CacheInfo(**counts)
    wrapper.cache_key = lambda *a, **kw: cache_key(fn, a, kw)
    wrapper.uncached = fn
    wrapper.put = put
    return wrapper
