"""The Redis run store behaves like the diskcache one (needs redis-server on PATH)."""
import shutil
import socket
import subprocess
import time

import numpy as np
import pytest

from engine.store import RunStore

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None,
                                reason="redis-server not installed (apt-get install redis-server)")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path_factory.mktemp("redis")
    proc = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                             "--save", "", "--appendonly", "no", "--dir", str(folder)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    import redis

    for _ in range(100):
        try:
            redis.Redis.from_url(url).ping()
            break
        except redis.ConnectionError:
            time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(5)


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
    other.finish(run_id, "done")
    assert store.list_runs(kind="demo")[0]["status"] == "done"
    store.delete(run_id)
    with pytest.raises(KeyError, match="expected a stored run"):
        store.rows(run_id)


def test_folder_store_ignores_redis(redis_url, monkeypatch, tmp_path):
    monkeypatch.setenv("SPARSITY_LAB_REDIS_URL", redis_url)
    assert type(RunStore(tmp_path)).__name__ == "RunStore"
