"""Long work as a Dash background callback: run, progress, cancel, rows, CSV.

A page puts ``job_panel(prefix)`` in its layout and calls ``register_job`` once at
import. The job itself is an engine generator that yields one result row (a dict)
at a time. Every row is stored in the RunStore the moment it arrives (so a cancel
or a crash keeps it) and streamed to the browser through the progress output, so
rows appear as they finish. Pages draw their figures from the ``rows`` store:

    ids = job_ids("paradox")
    @callback(Output("paradox-plot", "figure"), Input(ids.rows, "data"))
    def draw(rows): ...

``plan`` receives the State values and returns a ``JobPlan``; raising ValueError
(for bad input) shows the message and stores nothing. Jobs wait for one of
``SPARSITY_LAB_MAX_JOBS`` slots per host (default 1: timings are not disturbed by a
second job) and show "queued" meanwhile.
"""
from __future__ import annotations

import time
import traceback
from contextlib import closing
from dataclasses import dataclass, field
from typing import Callable, Iterable

from dash import Input, Output, State, callback, ctx, dcc, html, no_update

from components.ids import PageIds, page_ids
from components.tables import csv_payload
from engine.runtime.jobslots import JobSlots, max_jobs_from_env
from engine.runtime.liveness import HEARTBEAT_S, Heartbeat, job_identity
from engine.runtime.store import RunStore, cache_dir


@dataclass
class JobPlan:
    """What a job will do: rows to produce, how many, and what to record."""

    rows: Iterable[dict]
    total: int
    params: dict = field(default_factory=dict)
    meta: dict = field(default_factory=dict)


def job_ids(prefix: str) -> PageIds:
    """The ids of the job panel of ``prefix`` (components.ids): ``job_ids("moe").run == "moe-job-run"``."""
    return page_ids(f"{prefix}-job", "run", "cancel", "progress", "progress_text", "status", "rows",
                    "result", "csv", "csv_download", "panel", "recheck", "run_id")


def job_panel(prefix: str, run_label: str = "Run", note: str | None = None) -> html.Div:
    """Run / Cancel buttons, a progress bar with text, and a CSV download of the rows."""
    ids = job_ids(prefix)
    return html.Div([
        html.Div([
            html.Button(run_label, id=ids.run, className="btn btn-primary", n_clicks=0),
            html.Button("Cancel", id=ids.cancel, className="btn btn-secondary", disabled=True,
                        n_clicks=0),
            html.Button("Download CSV", id=ids.csv, className="btn btn-secondary"),
            dcc.Download(id=ids.csv_download),
        ], className="job-buttons"),
        html.Div([
            html.Progress(id=ids.progress, value="0", max="1", className="job-progress"),
            html.Span("idle", id=ids.status, className="job-status"),
        ], className="job-progress-row"),
        html.P(note, className="section-note") if note else None,
        dcc.Store(id=ids.rows, data=[]),
        dcc.Store(id=ids.result, data=None),
        dcc.Store(id=ids.progress_text, data="idle"),
        dcc.Store(id=ids.run_id, data=None),  # the stored run of the job on show (for the recheck)
        # off unless a job's process looks gone: then it checks once more before saying so
        dcc.Interval(id=ids.recheck, interval=RECHECK_MS, disabled=True),
    ], className="job-panel", id=ids.panel)


UNFINISHED = ("running", "starting", "queued")
DIED = ("error: the job's process ended without a result (killed, out of memory or "
        "crashed); {n} finished rows kept (stored, see Runs)")
RECHECK_MS = 1500  # how long a job may look gone before the status line says it died
ENDED = "{status}: {n} rows stored (run {run_id}, see Runs); the page has not had the job's result"


def looks_lost(progress_text: str | None, running: bool, result_clicks: int | None,
               run_clicks: int | None) -> bool:
    """True when Dash has re-enabled Run (the job's process is gone) while the text
    still says running and no result of this run (``result_clicks == run_clicks``) is
    here. At the normal end of a job the browser may apply Run's re-enabling before
    the result, so this alone is not proof: the status callback checks again after
    ``RECHECK_MS``."""
    return bool(not running and run_clicks and result_clicks != run_clicks
                and (progress_text or "").startswith(UNFINISHED))


def status_line(progress_text: str | None, run_ts: int | None, cancel_ts: int | None,
                n_rows: int, died: bool = False, stored: dict | None = None) -> str:
    """What the status line says: "cancelled" once Cancel was clicked after Run; the
    died error when ``died`` (the job still looked lost at the recheck); when the recheck
    found the run finished in the store (``stored``: its record) but its result has not
    reached the page, what the store says."""
    if cancel_ts and run_ts and cancel_ts > run_ts:
        return f"cancelled: {n_rows} finished rows kept (stored, see Runs)"
    text = progress_text or "idle"
    if stored and text.startswith(UNFINISHED):
        return ENDED.format(status=stored.get("status"), n=stored.get("n_rows", 0), run_id=stored.get("run_id"))
    if died and text.startswith(UNFINISHED):
        return DIED.format(n=n_rows)
    return text


def stored_run(run_id: str | None) -> tuple[dict | None, bool | None]:
    """At the recheck: the job's run record and whether its job is alive (True, False, or
    None when it cannot tell, e.g. no run was stored yet)."""
    from engine.runtime.liveness import run_alive

    if not run_id:
        return None, None
    with closing(RunStore()) as store:  # no handle left open in the server for a forked job
        try:
            record = store.meta(run_id)
        except KeyError:
            return None, None
        if record.get("status") == "died":
            return None, False
        if record.get("status") != "running":
            return record, False
        return None, run_alive(store, record)


def status_class(line: str) -> str:
    """The status span's classes: errors in red, a cancel in amber."""
    for word in ("error", "cancelled"):
        if line.startswith(word):
            return f"job-status job-status-{word}"
    return "job-status"


def _celery_task_id() -> str | None:
    """The Celery task id when this job runs on a Celery worker, else None."""
    import sys

    celery = sys.modules.get("celery")
    task = getattr(celery, "current_task", None) if celery else None
    request = getattr(task, "request", None) if task else None
    return getattr(request, "id", None)


def _status_text(done: int, total: int, started: float) -> str:
    return f"running: {done} / {total} rows, {time.time() - started:.1f} s"


def register_job(prefix: str, states: list[State], plan: Callable[..., JobPlan], kind: str,
                 filename: str | None = None, interval_ms: int = 250) -> None:
    """Wire the panel of ``prefix`` to ``plan`` (called with the State values)."""
    ids = job_ids(prefix)
    filename = filename or f"{kind}.csv"

    @callback(
        Output(ids.result, "data"),
        Input(ids.run, "n_clicks"),
        *states,
        background=True,
        running=[(Output(ids.run, "disabled"), True, False),
                 (Output(ids.cancel, "disabled"), False, True)],
        cancel=[Input(ids.cancel, "n_clicks")],
        progress=[Output(ids.progress, "value"), Output(ids.progress, "max"),
                  Output(ids.progress_text, "data"), Output(ids.rows, "data"), Output(ids.run_id, "data")],
        interval=interval_ms,
        prevent_initial_call=True,
    )
    def _run(set_progress, n_clicks, *values):
        if not n_clicks:
            return no_update
        try:
            job = plan(*values)
        except ValueError as exc:
            return {"status": "error", "error": str(exc), "rows": [], "run_id": None,
                    "clicks": n_clicks}
        except Exception as exc:  # e.g. a GPU that cannot be used: say so, never hang
            traceback.print_exc()
            return {"status": "error", "error": f"{type(exc).__name__}: {exc}", "rows": [],
                    "run_id": None, "clicks": n_clicks}
        total = str(max(job.total, 1))

        def queued(waited: float) -> None:
            set_progress(("0", total, f"queued: waiting for a free job slot ({waited:.0f} s)", [], None))

        rows: list[dict] = []
        store = run_id = None
        task_id = _celery_task_id()
        # Where the job runs and a heartbeat, so a killed job is seen as "died" (same host:
        # its pid; a Celery worker elsewhere: its beats stop) and a cancel as "cancelled".
        meta = {**job.meta, **job_identity(), "heartbeat_s": HEARTBEAT_S, "task_id": task_id}
        try:
            store = RunStore()
            with Heartbeat(store, [f"task:{task_id}"] if task_id else []) as beat, \
                    JobSlots(cache_dir() / "slots", max_jobs_from_env()).hold(on_wait=queued,
                                                                            poll_s=0.5):
                started = time.time()
                set_progress(("0", total, "starting...", [], None))
                run_id = store.create_run(kind, params=job.params, meta=meta)
                beat.add(f"run:{run_id}")
                set_progress(("0", total, _status_text(0, job.total, started), [], run_id))
                for row in job.rows:
                    rows.append(row)
                    store.append(run_id, row)
                    set_progress((str(len(rows)), total,
                                  _status_text(len(rows), job.total, started), rows, run_id))
                store.finish(run_id, "done")
            store.close()
        except Exception as exc:  # a failing job keeps its finished rows
            traceback.print_exc()
            if store is not None and run_id is not None:
                store.finish(run_id, "error", error=str(exc))
            return {"status": "error", "error": f"{type(exc).__name__}: {exc}", "rows": rows,
                    "run_id": run_id, "total": job.total, "clicks": n_clicks}
        return {"status": "done", "rows": rows, "run_id": run_id, "total": job.total,
                "seconds": round(time.time() - started, 2), "clicks": n_clicks}

    # Dash may drop the last progress update; the result sets the final state too.
    @callback(
        Output(ids.progress, "value", allow_duplicate=True),
        Output(ids.progress, "max", allow_duplicate=True),
        Output(ids.progress_text, "data", allow_duplicate=True),
        Output(ids.rows, "data", allow_duplicate=True),
        Input(ids.result, "data"),
        prevent_initial_call=True,
    )
    def _finished(result):
        if not result:
            return no_update, no_update, no_update, no_update
        rows = result.get("rows", [])
        if result["status"] == "error":
            done = len(rows)
            text = f"error: {result['error']}" + (f" ({done} rows kept)" if done else "")
            return str(done), str(max(result.get("total", done), 1)), text, rows
        total = max(result.get("total", len(rows)), 1)
        text = f"done: {len(rows)} rows in {result.get('seconds', 0)} s (run {result['run_id']})"
        return str(total), str(total), text, rows

    # The status line is derived, so a progress update still in flight when Cancel is
    # pressed cannot overwrite "cancelled" (the last click, run or cancel, decides).
    # Dash re-enables Run when the job's process is gone; if no result of this run
    # comes back with it, the process may have died (Dash itself would leave "running"
    # shown). The first time it looks so, the recheck interval is switched on; when it
    # fires, the run store decides: the run finished there (its result is only late: the
    # line says what the store holds), its job is still alive (check again), or it is
    # gone (the line says the job died). A job that stored no run yet counts as gone.
    @callback(  # one line per role: what it writes, what triggers it, what it reads
        Output(ids.status, "children"), Output(ids.status, "className"), Output(ids.recheck, "disabled"),
        Input(ids.progress_text, "data"), Input(ids.cancel, "n_clicks"), Input(ids.run, "disabled"),
        Input(ids.recheck, "n_intervals"),
        State(ids.run, "n_clicks_timestamp"), State(ids.cancel, "n_clicks_timestamp"),
        State(ids.rows, "data"), State(ids.result, "data"), State(ids.run, "n_clicks"),
        State(ids.run_id, "data"),
    )
    def _status(text, _cancels, run_disabled, _rechecks, run_ts, cancel_ts, rows, result,
                run_clicks, run_id):
        result_clicks = result.get("clicks") if isinstance(result, dict) else None
        lost = looks_lost(text, bool(run_disabled), result_clicks, run_clicks)
        stored, alive = stored_run(run_id) if lost and ctx.triggered_id == ids.recheck else (None, True)
        died = lost and not stored and alive is not True
        line = status_line(text, run_ts, cancel_ts, len(rows or []), died=died, stored=stored)
        return line, status_class(line), not (lost and not died and not stored)

    @callback(Output(ids.csv_download, "data"), Input(ids.csv, "n_clicks"),
              State(ids.rows, "data"), prevent_initial_call=True)
    def _csv(_clicks, rows):
        if not rows:
            return no_update
        return csv_payload(rows, filename)


def cancelled_total(status, total) -> int | None:
    """The planned row count when a job's status line says it was cancelled, else None
    (pages label a partial run "cancelled: N of M rows")."""
    if not str(status or "").startswith("cancelled"):
        return None
    try:
        return int(float(total))
    except (TypeError, ValueError):
        return None
