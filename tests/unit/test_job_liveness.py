"""Issue 22 items 10-12: a job's liveness (zombies, reused pids, heartbeats), "died" and
"cancelled" runs, and jobs that let go of the server's listening socket."""
from __future__ import annotations

import os
import shutil
import socket
import time

import psutil
import pytest

from engine.runtime import liveness
from engine.runtime.forkgate import release_listening_sockets
from engine.runtime.liveness import Heartbeat, beat_age, job_identity, process_alive, run_alive
from engine.runtime.store import RunStore, mark_cancelled, mark_dead_runs


def _zombie() -> int:
    """A child that has exited and is not reaped yet."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    for _ in range(100):
        if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
            return pid
        time.sleep(0.02)
    raise AssertionError("the child did not become a zombie")


def test_a_zombie_is_dead_though_kill_0_says_alive():
    pid = _zombie()
    try:
        os.kill(pid, 0)  # the old check: no error, "alive"
        assert process_alive(pid) is False
    finally:
        os.waitpid(pid, 0)
    assert process_alive(pid) is False


def test_a_reused_pid_is_not_the_job_and_this_process_is_alive():
    me = job_identity()
    assert me["pid"] == os.getpid() and me["host"] == liveness.host_name()
    assert process_alive(me["pid"], me["pid_started"]) is True
    assert process_alive(me["pid"], me["pid_started"] - 60) is False  # another process's start
    assert process_alive("not a pid") is False


def test_heartbeat_beats_and_its_age_grows_once_it_stops(tmp_path):
    store = RunStore(tmp_path)
    with Heartbeat(store, ["task:t1"], interval=0.05) as beat:
        beat.add("run:r1")
        time.sleep(0.2)
        assert beat_age(store, "task:t1") < 0.2 and beat_age(store, "run:r1") < 0.2
    time.sleep(0.3)
    assert beat_age(store, "task:t1") >= 0.25
    assert beat_age(store, "never") is None


def _run(store, n_rows, **meta):
    run_id = store.create_run("paradox", meta=meta)
    for i in range(n_rows):
        store.append(run_id, {"i": i})
    return run_id


def test_runs_whose_job_is_gone_show_died_with_their_row_count(tmp_path):
    store = RunStore(tmp_path)
    host = liveness.host_name()
    zombie = _zombie()
    try:
        dead_here = _run(store, 3, pid=zombie, host=host, pid_started=None)
        reused = _run(store, 1, pid=os.getpid(), host=host, pid_started=time.time() - 3600)
        alive = _run(store, 2, **job_identity())
        no_pid = _run(store, 1)  # says too little: left alone
        elsewhere_quiet = _run(store, 4, pid=1, host="gpu-7", heartbeat_s=1.0)
        elsewhere_beating = _run(store, 1, pid=1, host="gpu-8", heartbeat_s=1.0)
        store.beat(f"run:{elsewhere_beating}")
        store.beat(f"run:{elsewhere_quiet}")
        # the quiet one's last beat is a minute old:
        store._cache.set(("beat", f"run:{elsewhere_quiet}"), time.time() - 60)
        marked = mark_dead_runs(store)
    finally:
        os.waitpid(zombie, 0)
    assert sorted(marked) == sorted([dead_here, reused, elsewhere_quiet])
    for run_id, n in ((dead_here, 3), (reused, 1), (elsewhere_quiet, 4)):
        meta = store.meta(run_id)
        assert meta["status"] == "died" and meta["n_rows"] == n
        assert f"{n} finished rows kept" in meta["note"]
    for run_id in (alive, no_pid, elsewhere_beating):
        assert store.meta(run_id)["status"] == "running"


def test_a_young_heartbeat_run_is_not_dead_before_its_first_beat(tmp_path):
    store = RunStore(tmp_path)
    run_id = _run(store, 0, pid=1, host="gpu-7", heartbeat_s=1.0)
    assert run_alive(store, store.meta(run_id)) is True
    assert mark_dead_runs(store) == []


def test_cancel_marks_only_that_jobs_running_run_cancelled(tmp_path):
    store = RunStore(tmp_path)
    host = liveness.host_name()
    mine = _run(store, 2, pid=4242, host=host)
    other = _run(store, 1, pid=4243, host=host)
    done = _run(store, 1, pid=4242, host=host)
    store.finish(done, "done")
    celery = _run(store, 1, pid=7, host="gpu-7", task_id="abc")
    assert mark_cancelled(store, pid=4242) == [mine]
    assert mark_cancelled(store, task_id="abc") == [celery]
    assert store.meta(mine)["status"] == "cancelled" and "2 finished rows kept" in store.meta(mine)["note"]
    assert store.meta(other)["status"] == "running" and store.meta(done)["status"] == "done"


def test_the_diskcache_manager_marks_a_cancelled_job_cancelled(tmp_path, monkeypatch):
    import multiprocess

    import app as lab

    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    monkeypatch.setattr(lab, "_STORE", {})
    child = multiprocess.Process(target=time.sleep, args=(30,))
    child.start()
    try:
        store = RunStore(tmp_path)
        run_id = _run(store, 2, pid=child.pid, host=liveness.host_name())
        manager = lab.make_background_manager(None)
        manager.terminate_job(child.pid)
        assert store.meta(run_id)["status"] == "cancelled"
    finally:
        child.kill()
        child.join()


def test_a_celery_task_whose_heartbeat_stopped_is_lost(tmp_path, monkeypatch):
    import app as lab

    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    monkeypatch.delenv("SPARSITY_LAB_REDIS_URL", raising=False)
    monkeypatch.setattr(lab, "_STORE", {})
    store = lab.run_store()
    store.beat("task:live")
    store._cache.set(("beat", "task:gone"), time.time() - 2 * liveness.STALE_S)
    assert lab.task_lost("STARTED", "live") is False
    assert lab.task_lost("STARTED", "gone") is True
    assert lab.task_lost("PENDING", "gone") is False  # queued: not started anywhere
    assert lab.task_lost("STARTED", "not-a-lab-job") is False  # never beat: Celery decides


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="redis-server not installed")
def test_heartbeats_in_the_redis_store(tmp_path, monkeypatch):
    from tests.apphelpers import start_redis, stop_process

    proc, url = start_redis(tmp_path)
    try:
        monkeypatch.setenv("SPARSITY_LAB_REDIS_URL", url)
        store = RunStore()
        run_id = _run(store, 2, pid=1, host="gpu-9", heartbeat_s=1.0)
        store.beat(f"run:{run_id}")
        assert mark_dead_runs(store) == [] and beat_age(store, f"run:{run_id}") < 1
        store._r.set(store._key("beat", f"run:{run_id}"), repr(time.time() - 60))
        assert mark_dead_runs(store) == [run_id]
        assert store.meta(run_id)["status"] == "died"
    finally:
        stop_process(proc)


def test_a_forked_job_lets_go_of_the_listening_socket_so_a_restart_can_bind(tmp_path):
    """Through the app's real job manager: the server socket is closed in the child, so
    while the job still runs a new server binds the same port."""
    import app as lab

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    report = tmp_path / "fds.txt"

    def job(*_args):
        listening = []
        for conn in psutil.Process().net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port:
                listening.append(conn.fd)
        report.write_text(repr(listening))
        time.sleep(20)

    manager = lab.make_background_manager(None)
    pid = manager.call_job_fn("key", job, (), {})
    try:
        for _ in range(200):
            if report.exists() and report.read_text():
                break
            time.sleep(0.05)
        assert report.read_text() == "[]"
        server.close()  # the server dies; the job lives on
        assert process_alive(pid)
        again = socket.socket()
        again.bind(("127.0.0.1", port))  # "Address already in use" before the fix
        again.listen()
        again.close()
    finally:
        child = psutil.Process(pid)
        child.kill()
        child.wait(10)


def test_release_listening_sockets_leaves_other_sockets_alone():
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    a, b = socket.socketpair()
    pid = os.fork()
    if pid == 0:
        released = release_listening_sockets()
        ok = released == [listener.fileno()]
        try:
            a.sendall(b"x")  # a connected socket still works
        except OSError:
            ok = False
        os._exit(0 if ok else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0 and b.recv(1) == b"x"
    listener.close(), a.close(), b.close()
