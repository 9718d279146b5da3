"""The job panel's status line (components/jobs.py)."""
from components.jobs import job_ids, looks_lost, status_class, status_line

CASES = [
    # progress text, run clicked at, cancel clicked at, rows -> starts with
    ("running: 3 / 9 rows, 1.0 s", 1000, None, 3, "running: 3 / 9"),
    ("running: 4 / 9 rows, 1.2 s", 1000, 1100, 4, "cancelled: 4 finished rows kept"),  # late update
    ("done: 9 rows in 2 s", 2000, 1100, 9, "done: 9 rows"),  # a new run after a cancel
    (None, None, None, 0, "idle"),
]


def test_a_job_whose_process_died_says_so_and_a_finished_one_does_not():
    # Run re-enabled, no result of this run (clicks 2), text still running: looks lost
    assert looks_lost("running: 2 / 9 rows, 1.0 s", False, 1, 2)
    assert looks_lost("starting...", False, None, 1)
    # the result of this run came back with the end of the job: _finished sets "done" next
    assert not looks_lost("running: 9 / 9 rows, 2.0 s", False, 2, 2)
    # still running, never run, or already finished
    assert not looks_lost("running: 2 / 9 rows", True, None, 2)
    assert not looks_lost("idle", False, None, 0)
    assert not looks_lost("done: 9 rows in 2 s", False, 1, 2)
    died = status_line("running: 2 / 9 rows, 1.0 s", 1000, None, 2, died=True)
    assert died.startswith("error: the job's process ended without a result") and "2 finished" in died
    # until the recheck confirms it, the line keeps what the job said last
    assert status_line("running: 2 / 9 rows", 1000, None, 2).startswith("running")
    assert status_line("running: 2 / 9", 1000, 1100, 2, died=True).startswith("cancelled")
    assert status_line("done: 9 rows in 2 s", 1000, None, 9, died=True).startswith("done")


def test_status_waits_for_the_recheck_before_saying_a_job_died(monkeypatch):
    from components import jobs

    register = {}
    monkeypatch.setattr(jobs, "callback",  # keep the functions instead of registering them
                        lambda *a, **k: (lambda f: register.setdefault(f.__name__, f)))
    jobs.register_job("demo", [], plan=lambda: None, kind="demo")
    status = register["_status"]
    ids = job_ids("demo")
    args = ("running: 2 / 9 rows", 0, False, 0, 1000, None, [{}, {}], None, 1, None)

    class Ctx:  # what dash.ctx.triggered_id says
        triggered_id = ids.run

    monkeypatch.setattr(jobs, "ctx", Ctx)
    line, _cls, recheck_off = status(*args)
    assert line.startswith("running") and recheck_off is False  # looks lost: check again
    Ctx.triggered_id = ids.recheck
    line, cls, recheck_off = status(*args)
    assert line.startswith("error: the job's process ended") and recheck_off
    assert cls.endswith("error")
    # the result arrived before the recheck fired: the run finished, no error
    line, _cls, recheck_off = status("running: 9 / 9 rows", 0, False, 1, 1000, None, [{}] * 9,
                                     {"clicks": 1}, 1, None)
    assert line.startswith("running") and recheck_off


def test_the_recheck_asks_the_run_store_before_saying_a_job_died(monkeypatch, tmp_path):
    """A result that is only late (the run finished in the store) or a job still alive is
    not called dead; a run whose job is gone is."""
    from components import jobs
    from engine.runtime.liveness import job_identity
    from engine.runtime.store import RunStore

    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    register = {}
    monkeypatch.setattr(jobs, "callback", lambda *a, **k: (lambda f: register.setdefault(f.__name__, f)))
    jobs.register_job("demo", [], plan=lambda: None, kind="demo")
    ids = job_ids("demo")

    class Ctx:
        triggered_id = ids.recheck

    monkeypatch.setattr(jobs, "ctx", Ctx)
    store = RunStore()
    finished = store.create_run("demo")
    for i in range(3):
        store.append(finished, {"i": i})
    store.finish(finished, "done")
    alive = store.create_run("demo", meta=job_identity())           # this very process: alive
    gone = store.create_run("demo", meta={**job_identity(), "pid": 2 ** 22 + 7})   # no such process

    def status(run_id):
        return register["_status"]("running: 2 / 9 rows", 0, False, 3, 1000, None, [{}, {}], None, 1, run_id)

    line, cls, recheck_off = status(finished)
    assert line == f"done: 3 rows stored (run {finished}, see Runs); the page has not had the job's result"
    assert recheck_off and not cls.endswith("error")
    line, _cls, recheck_off = status(alive)
    assert line.startswith("running") and recheck_off is False      # still running: check again
    line, cls, recheck_off = status(gone)
    assert line.startswith("error: the job's process ended") and recheck_off and cls.endswith("error")
    line, _cls, _off = status("20990101-000000-abcdef")             # no such run stored: gone
    assert line.startswith("error: the job's process ended")


def test_status_line_table():
    for text, run_ts, cancel_ts, n, expected in CASES:
        assert status_line(text, run_ts, cancel_ts, n).startswith(expected), (text, run_ts, cancel_ts)


def test_ids_are_prefixed_and_distinct():
    ids = vars(job_ids("demo"))
    assert all(v.startswith("demo-job-") for v in ids.values())
    assert len(set(ids.values())) == len(ids)


def test_status_class_marks_errors_and_cancels():
    assert status_class("error: x") == "job-status job-status-error"
    assert status_class("cancelled: 3 finished rows kept") == "job-status job-status-cancelled"
    assert status_class("done: 3 rows") == status_class("running: 1 / 3") == "job-status"
