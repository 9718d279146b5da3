"""The Redis run store behaves like the diskcache one (needs redis-server on PATH)."""
import shutil

import numpy as np
import pytest

from engine.runtime.store import RunStore
from tests.apphelpers import start_redis, stop_process

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server not installed (apt-get install redis-server)")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    proc, url = start_redis(tmp_path_factory.mktemp("redis"))
    yield url
    stop_process(proc)


def test_runstore_switches_to_redis_and_keeps_rows(redis_url, monkeypatch):
    monkeypatch.setenv("SPARSITY_LAB_REDIS_URL", redis_url)
    store = RunStore()
    assert type(store).__name__ == "RedisRunStore"
    run_id = store.create_run("demo", params={"n": 3})
    for i in range(3):
        store.append(run_id, {"i": np.int64(i), "t": np.float32(0.5) * i})
    other = RunStore()  # another process or host would see the same
    assert other.frame(run_id)["i"].tolist() == [0, 1, 2]
    assert other.meta(run_id)["n_rows"] == 3
    assert other.first_row(run_id) == {"i": 0, "t": 0.0}
    other.finish(run_id, "done")
    assert store.list_runs(kind="demo")[0]["status"] == "done"
    store.delete(run_id)
    with pytest.raises(KeyError, match="expected a stored run"):
        store.rows(run_id)


def test_folder_store_ignores_redis(redis_url, monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSITY_LAB_REDIS_URL", redis_url)
    assert type(RunStore(tmp_path)).__name__ == "RunStore"
