"""The job panel's status line (components/jobs.py)."""
from components.jobs import job_ids, status_class, status_line

CASES = [
    # progress text, run clicked at, cancel clicked at, rows -> starts with
    ("running: 3 / 9 rows, 1.0 s", 1000, None, 3, "running: 3 / 9"),
    ("running: 4 / 9 rows, 1.2 s", 1000, 1100, 4, "cancelled: 4 finished rows kept"),  # late update
    ("done: 9 rows in 2 s", 2000, 1100, 9, "done: 9 rows"),  # a new run after a cancel
    (None, None, None, 0, "idle"),
]


def test_a_job_whose_process_died_says_so_and_a_finished_one_does_not():
    died = status_line("running: 2 / 9 rows, 1.0 s", 1000, None, 2, running=False,
                       result_clicks=1, run_clicks=2)
    assert died.startswith("error: the job's process ended without a result") and "2 finished" in died
    assert status_line("starting...", 1000, None, 0, running=False, result_clicks=None,
                       run_clicks=1).startswith("error: the job's process ended")
    # the result of this run came back with the end of the job: _finished sets "done" next
    assert status_line("running: 9 / 9 rows, 2.0 s", 1000, None, 9, running=False,
                       result_clicks=2, run_clicks=2).startswith("running")
    # still running, never run, or cancelled: no error
    assert status_line("running: 2 / 9 rows", 1000, None, 2, running=True, run_clicks=2).startswith("running")
    assert status_line("idle", None, None, 0, running=False, run_clicks=0) == "idle"
    assert status_line("running: 2 / 9", 1000, 1100, 2, running=False, run_clicks=1).startswith("cancelled")


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
