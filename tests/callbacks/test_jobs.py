"""The job panel's status line (components/jobs.py)."""
from components.jobs import job_ids, status_line

CASES = [
    # progress text, run clicked at, cancel clicked at, rows -> starts with
    ("running: 3 / 9 rows, 1.0 s", 1000, None, 3, "running: 3 / 9"),
    ("running: 4 / 9 rows, 1.2 s", 1000, 1100, 4, "cancelled: 4 finished rows kept"),  # late update
    ("done: 9 rows in 2 s", 2000, 1100, 9, "done: 9 rows"),  # a new run after a cancel
    (None, None, None, 0, "idle"),
]


def test_status_line_table():
    for text, run_ts, cancel_ts, n, expected in CASES:
        assert status_line(text, run_ts, cancel_ts, n).startswith(expected), (text, run_ts, cancel_ts)


def test_ids_are_prefixed_and_distinct():
    ids = vars(job_ids("demo"))
    assert all(v.startswith("demo-job-") for v in ids.values())
    assert len(set(ids.values())) == len(ids)
