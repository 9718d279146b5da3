"""engine.runtime.cache: hits, no two specs sharing an entry, a bounded size, no timings."""
import dataclasses
import enum
import os
import shutil
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from engine.runtime import cache as pure
from engine.runtime.cache import DiskStore, cache_key, pure_cache


@dataclasses.dataclass(frozen=True)
class SpecA:
    n: int
    sparsity: float
    dtype: str = "float32"


@dataclasses.dataclass(frozen=True)
class SpecB:  # same fields as SpecA, another spec
    n: int
    sparsity: float
    dtype: str = "float32"


class Colour(enum.Enum):
    RED = 1
    ONE = "1"


class Measurement:  # stands for engine.bench.measurement.Measurement (core's record)
    pass


Measurement.__module__ = "engine.bench.measurement"

# Calls of the functions under test (a closure's captured values are part of its key,
# so the counters live at module level).
calls = []


@pytest.fixture(autouse=True)
def _no_calls():
    calls.clear()


def identity(x):
    return x


def other_identity(x):
    return x


# Pairs of arguments that must never share an entry.
DISTINCT = [
    (1, 1.0), (1, True), (0, False), (1, "1"), (None, 0), (None, "None"),
    (0.0, -0.0), (0.1, 0.1 + 1e-17 * 16), ((1, 2), [1, 2]), ((1, 2), (2, 1)),
    ((1, (2, 3)), ((1, 2), 3)), ("ab", ("a", "b")), (b"1", "1"), ({1, 2}, (1, 2)),
    ({"a": 1}, {"a": 1.0}), ({"a": 1, "b": 2}, {"a": 2, "b": 1}), ({1: "a"}, {"1": "a"}),
    (SpecA(8, 0.5), SpecB(8, 0.5)), (SpecA(8, 0.5), SpecA(8, 0.9)),
    (SpecA(8, 0.5), SpecA(8, 0.5, "float16")), (SpecA(8, 0.5), (8, 0.5, "float32")),
    (Colour.RED, 1), (Colour.ONE, "1"),
    (np.zeros(4, np.float32), np.zeros(4, np.float64)), (np.zeros(4), np.zeros((2, 2))),
    (np.arange(4), np.arange(4)[::-1].copy()), (np.float32(1), np.float64(1)),
    (np.int64(1), 1), (Path("a/b"), "a/b"), (identity, other_identity),
    ("", ()), ((), []), (1 + 0j, 1.0),
]
# Equal arguments spelled differently share one entry.
SAME = [
    (SpecA(8, 0.5), SpecA(8, 0.5, "float32")), ({"a": 1, "b": 2}, {"b": 2, "a": 1}),
    ({3, 1, 2}, {1, 2, 3}), (np.arange(6).reshape(2, 3).T, np.arange(6).reshape(2, 3).T.copy()),
]


@pytest.fixture
def disk(tmp_path):
    return DiskStore(tmp_path / "pure", limit=4 * 2**20)


@pytest.mark.parametrize("a, b", DISTINCT, ids=[f"{i}" for i in range(len(DISTINCT))])
def test_distinct_arguments_never_share_a_key(a, b):
    assert cache_key(identity, (a,)) != cache_key(identity, (b,))


@pytest.mark.parametrize("a, b", SAME, ids=[f"{i}" for i in range(len(SAME))])
def test_equal_arguments_share_a_key(a, b):
    assert cache_key(identity, (a,)) == cache_key(identity, (b,))


def test_two_functions_with_the_same_arguments_never_share(disk):
    f, g = pure_cache(store=disk)(identity), pure_cache(store=disk)(other_identity)
    assert f.cache_key(SpecA(8, 0.5)) != g.cache_key(SpecA(8, 0.5))


def test_positional_keyword_and_default_arguments_share_one_entry():
    def f(n, sparsity=0.5):
        return n, sparsity
    assert cache_key(f, (8,)) == cache_key(f, (), {"n": 8}) == cache_key(f, (8, 0.5))
    assert cache_key(f, (8,)) != cache_key(f, (8, 0.9))


def test_closures_of_one_factory_never_share():
    def make(k):
        def scaled(x):
            return x * k
        return scaled
    assert cache_key(make(2), (3,)) != cache_key(make(3), (3,))


@pytest.mark.parametrize("bad", [object(), np.array([1, "a"], dtype=object), lambda x: x,
                                 iter([1])])
def test_unkeyable_arguments_are_refused_not_guessed(bad):
    with pytest.raises(TypeError, match="pure cache key: expected"):
        cache_key(identity, (bad,))


def test_a_hit_returns_an_equal_fresh_copy_without_recomputing(disk):

    @pure_cache(store=disk)
    def mask(spec: SpecA) -> np.ndarray:
        calls.append(spec)
        rng = np.random.default_rng(spec.n)
        return rng.random((spec.n, spec.n)) >= spec.sparsity

    first = mask(SpecA(64, 0.9))
    second = mask(SpecA(64, 0.9))
    assert len(calls) == 1 and mask.cache_info() == (1, 1, 0)
    np.testing.assert_array_equal(first, second)
    second[0, 0] = not second[0, 0]  # a caller's edit never reaches the stored entry
    np.testing.assert_array_equal(mask(SpecA(64, 0.9)), first)
    mask(SpecA(64, 0.5))
    assert len(calls) == 2 and mask.cache_info().misses == 2


def test_exceptions_are_not_cached(disk):

    @pure_cache(store=disk)
    def fails(n):
        calls.append(n)
        raise ValueError(f"n: expected at most 4, got {n}")

    for _ in range(2):
        with pytest.raises(ValueError):
            fails(9)
    assert len(calls) == 2


def test_a_second_process_store_sees_the_entry(tmp_path):
    """Two workers opening the same folder share entries (gunicorn -w 2)."""
    one, two = DiskStore(tmp_path / "p", 2**20), DiskStore(tmp_path / "p", 2**20)

    def square(x):
        calls.append(x)
        return x * x
    assert pure_cache(store=one)(square)(7) == 49
    assert pure_cache(store=two)(square)(7) == 49
    assert calls == [7]


def test_size_stays_bounded_and_old_entries_go_first(tmp_path):
    limit = 2**20
    store = DiskStore(tmp_path / "pure", limit)

    @pure_cache(store=store)
    def block(i):
        return np.full(8 * 1024, i, dtype=np.float64)  # 64 KiB each: 100 of them = 6.4 MB

    for i in range(100):
        block(i)
    # diskcache culls after each set, so it may sit one entry (plus its index) above the bound.
    assert store.volume() <= limit + limit // pure.MAX_ENTRY_SHARE
    before = block.cache_info().misses
    block(99)
    assert block.cache_info().misses == before  # the newest is still there
    block(0)
    assert block.cache_info().misses == before + 1  # the oldest went


def test_an_entry_over_an_eighth_of_the_bound_is_computed_not_stored(tmp_path):
    store = DiskStore(tmp_path / "pure", 2**20)

    @pure_cache(store=store)
    def big(n):
        return np.ones(n, dtype=np.uint8)

    assert big(2**20 // 4).sum() == 2**20 // 4
    assert big(2**20 // 4).sum() == 2**20 // 4
    assert big.cache_info() == (0, 2, 2)


def test_timings_are_never_cached(disk):
    import engine.bench.timer as timer

    @pure_cache(store=disk)
    def sweep(n):
        return [Measurement() for _ in range(n)]

    with pytest.raises(TypeError, match="timings are never cached"):
        sweep(2)
    with pytest.raises(TypeError, match="timings are never cached"):
        pure_cache(store=disk)(timer.measure)


@pytest.mark.parametrize("raw, expected", [("", 256 * 2**20), ("0", 0), ("1.5", int(1.5 * 2**20)),
                                           ("64", 64 * 2**20)])
def test_setting(raw, expected, monkeypatch):
    monkeypatch.setenv(pure.PURE_CACHE_MB_ENV, raw)
    assert pure.pure_cache_limit_bytes() == expected


@pytest.mark.parametrize("raw", ["-1", "lots", "nan", "inf"])
def test_bad_setting_says_expected_got(raw, monkeypatch):
    monkeypatch.setenv(pure.PURE_CACHE_MB_ENV, raw)
    with pytest.raises(ValueError, match=f"expected a number of MB >= 0, got '{raw}'"):
        pure.pure_cache_limit_bytes()


def test_default_store_lives_in_the_cache_folder_and_can_be_turned_off(tmp_path, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    monkeypatch.delenv("SPARSITY_LAB_REDIS_URL", raising=False)
    monkeypatch.setenv(pure.PURE_CACHE_MB_ENV, "8")
    store = pure.default_store()
    assert isinstance(store, DiskStore) and store.path == tmp_path / "pure"
    assert store.limit == 8 * 2**20

    @pure_cache
    def double(x):
        calls.append(x)
        return 2 * x
    assert double(4) == double(4) == 8 and calls == [4]
    monkeypatch.setenv(pure.PURE_CACHE_MB_ENV, "0")
    assert pure.default_store() is None
    assert double(4) == 8 and calls == [4, 4] and double.cache_info().skipped == 1


@pytest.mark.skipif(shutil.which("redis-server") is None,
                    reason="redis-server not installed (apt-get install redis-server)")
def test_redis_store_hits_and_stays_bounded(tmp_path, monkeypatch):
    from tests.apphelpers import start_redis, stop_process

    proc, url = start_redis(tmp_path)
    try:
        monkeypatch.setenv("SPARSITY_LAB_REDIS_URL", url)
        monkeypatch.setenv(pure.PURE_CACHE_MB_ENV, "1")
        store = pure.default_store()
        assert isinstance(store, pure.RedisStore)
    
        @pure_cache
        def block(i):
            calls.append(i)
            return np.full(8 * 1024, i, dtype=np.float64)

        np.testing.assert_array_equal(block(1), block(1))
        assert calls == [1]
        for i in range(100):
            block(i)
        assert store.volume() <= 2**20
        assert len(store._r.zrange(store._meta[1], 0, -1)) < 100
        block(99)
        assert calls[-1] == 99 and calls.count(99) == 1  # newest kept
        block(2)
        assert calls.count(2) == 2  # oldest evicted
    finally:
        stop_process(proc)


FIT_EVENTS = (threading.Event(), threading.Event())  # (started, release); module level: not a key


def test_two_threads_missing_one_key_compute_it_once(disk):
    """Seen: /structured-matrices' butterfly fit ran by two callbacks at once. The second
    thread waits on the key's in-flight lock and reads what the first stored."""
    started, release = FIT_EVENTS
    started.clear()
    release.clear()

    @pure_cache(store=disk)
    def fit(n):
        calls.append(n)
        if n == 16:
            FIT_EVENTS[0].set()
            FIT_EVENTS[1].wait(5)
        return np.arange(n)

    results = []
    threads = [threading.Thread(target=lambda: results.append(fit(16))) for _ in range(4)]
    threads[0].start()
    assert started.wait(5)
    for t in threads[1:]:
        t.start()
    other = threading.Thread(target=lambda: results.append(fit(8)))  # another key is not held up
    other.start()
    other.join(5)
    assert not other.is_alive() and calls == [16, 8]  # done while 16 is still computing
    release.set()
    for t in threads:
        t.join(5)
    assert sorted(calls) == [8, 16] and len(results) == 5
    assert fit.cache_info().misses == 2 and fit.cache_info().hits == 3
    assert len(pure.INFLIGHT) == 0  # no lock outlives its waiters


def test_a_lock_held_too_long_lets_the_waiter_go():
    locks = pure.KeyLocks(timeout_s=0.05)
    assert locks.acquire("k")
    got = []
    waiter = threading.Thread(target=lambda: got.append(locks.acquire("k")))
    waiter.start()
    waiter.join(2)
    assert got == [False] and len(locks) == 1
    locks.release("k")
    assert len(locks) == 0
    with locks.hold("k") as held:
        assert held and len(locks) == 1
    assert len(locks) == 0


def test_a_forked_job_starts_with_no_key_held():
    """A job forked while a request thread computes a key must not wait for that thread,
    which does not exist in the child."""
    locks = pure.KeyLocks(timeout_s=30)
    assert locks.acquire("k")
    pid = os.fork()
    if pid == 0:  # the child: the key is free at once
        ok = locks.acquire("k") and len(locks) == 1
        os._exit(0 if ok else 1)
    t0 = time.monotonic()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and time.monotonic() - t0 < 10
    locks.release("k")


def test_a_store_that_fails_is_a_miss_not_a_failed_call(disk, caplog):
    import diskcache

    class Locked:
        def get(self, *_a, **_k):
            raise diskcache.Timeout("database is locked")
        set = get

    disk._cache = Locked()

    @pure_cache(store=disk)
    def square(x):
        calls.append(x)
        return x * x

    assert square(3) == 9 and square(3) == 9
    assert calls == [3, 3] and "unavailable" in caplog.text


def test_library_versions_join_every_key(monkeypatch):
    before = cache_key(identity, (1,))
    versions = dict(pure.library_versions())
    monkeypatch.setattr(pure, "library_versions", lambda: {**versions, "numpy": "99.0"})
    assert cache_key(identity, (1,)) != before     # an upgrade never reads the old entries


def test_an_entry_that_does_not_load_is_a_miss_and_is_stored_again(disk, caplog):
    @pure_cache(store=disk)
    def double(x: int) -> int:   # no closure: captured values would be part of its key
        return 2 * x

    assert double(3) == 6
    disk.set(double.cache_key(3), b"not a pickle")
    assert double(3) == 6 and double.cache_info().misses == 2 and "does not load" in caplog.text
    assert double(3) == 6 and double.cache_info() == (1, 2, 0)   # stored again, read back
