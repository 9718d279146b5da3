"""Sparsity Lab: the Dash shell.

Builds the app (pages from ``pages/``), the navbar from ``dash.page_registry``, and
the background-callback manager, chosen once: DiskcacheManager in the lab's cache
folder (embedded, nothing to start), or CeleryManager on Redis when
``SPARSITY_LAB_REDIS_URL`` is set (then ``celery -A app:celery_app worker`` runs the
jobs, on this host or others). ``server`` is exposed for gunicorn:

    gunicorn app:server -b 127.0.0.1:8050

A callback that raises shows its message in the page's error bar (never a
traceback); responses carry security headers. Requests whose Host is not one of the
lab's names (``SPARSITY_LAB_ALLOWED_HOSTS``), and POSTs from another origin, get a 403
(DNS rebinding and cross-site requests); bodies larger than the largest legal upload
get a 413; callback responses name files relative to the project, never the install path.
Callbacks declared pure (components/pure_callback.py) are answered from the shared cache when
the same request was answered before.

The web process never initialises CUDA (see engine.runtime.device); GPU work happens only
inside background jobs. Requests run torch on one intra-op thread (engine/runtime/threads.py:
their ops are small, and a second thread on a shared machine makes them slower); a job gets
torch's own count back. Jobs are forked only while no other request is running
(engine/runtime/forkgate.py): a torch lock held by another thread at the fork would hang
the job. A forked job lets go of the server's listening socket at once, so a restarted
server can bind while an orphaned job still runs.
"""
from __future__ import annotations

import argparse
import os
from time import perf_counter

import logging

import dash
from dash import ClientsideFunction, Dash, Input, Output, dcc, html, set_props

from components.layout import page_order
from components.pure_callback import CACHE_HEADER, ResponseCache
from engine.runtime.device import describe_device
from engine.runtime.forkgate import ForkGate, release_listening_sockets
from engine.runtime.liveness import STALE_S, beat_age, process_alive
from engine.runtime.store import RunStore, cache_dir, mark_cancelled
from engine.runtime.threads import use_job_threads, use_web_threads
from engine.validate import max_request_bytes, relative_paths


REDIS_ENV = "SPARSITY_LAB_REDIS_URL"
HOST_ENV = "SPARSITY_LAB_HOST"
ALLOWED_HOSTS_ENV = "SPARSITY_LAB_ALLOWED_HOSTS"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
UNSAFE_METHODS = ("POST", "PUT", "PATCH", "DELETE")
ERROR_BAR = "lab-error"
log = logging.getLogger("sparsity_lab")

# Scripts: this origin plus the SHA-256 of each inline script Dash writes into the page
# (its renderer start-up and the inline clientside callbacks, from ``app.csp_hashes()``);
# no 'unsafe-inline', no 'unsafe-eval' (Dash's renderer, plotly.js's default bundle for the
# traces the lab draws, and cytoscape run without them: tests/browser/test_csp.py).
# Styles keep 'unsafe-inline': Dash sets element styles and plotly.js injects its own.
CSP_DIRECTIVES = [
    "default-src 'self'",
    "script-src 'self' {script_hashes}",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "media-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "form-action 'self'",
    "frame-ancestors 'self'",
]
_CSP: dict[str, str] = {}


def content_security_policy() -> str:
    """The CSP header, built once every page has registered its callbacks (the first
    response): inline scripts are allowed by their hashes only."""
    if "header" not in _CSP:
        hashes = " ".join(app.csp_hashes())
        _CSP["header"] = "; ".join(CSP_DIRECTIVES).replace("{script_hashes}", hashes)
    return _CSP["header"]


def make_celery():
    """The Celery app when a Redis URL is configured, else None.

    Delivery is at most once (``task_acks_late=False``, the default, kept on purpose): a
    task whose worker is killed is not redelivered. For a benchmark a re-run should be the
    user's choice (it resumes from the first unfinished spec); Redis would redeliver an
    unacknowledged task only after its visibility timeout (an hour), unasked, and a task
    that killed its worker by running out of memory would kill the next one. The loss is
    not silent: ``task_track_started`` marks a task STARTED, the job beats a heartbeat in
    the run store, and ``LabCeleryManager`` reports a STARTED task whose beats stopped as
    no longer running, so the page says the job died (rows kept) and Run is enabled.
    """
    url = os.environ.get(REDIS_ENV)
    if not url:
        return None
    from celery import Celery

    celery = Celery("sparsity_lab", broker=url, backend=url)
    celery.conf.update(task_track_started=True, task_acks_late=False,
                       worker_prefetch_multiplier=1)
    return celery


FORK_GATE = ForkGate()


def make_background_manager(celery_app=None):
    """CeleryManager on Redis when configured; else DiskcacheManager on ``<cache>/jobs``
    whose job forks wait at FORK_GATE (see engine/runtime/forkgate.py)."""
    from dash import CeleryManager, DiskcacheManager

    if celery_app is not None:
        class LabCeleryManager(CeleryManager):
            """A STARTED task whose heartbeat stopped (worker killed) is not running; a
            cancelled task's run is marked "cancelled"."""

            def job_running(self, job):
                if not super().job_running(job):
                    return False
                return not task_lost(self.get_task(job).status, job)

            def terminate_job(self, job):
                super().terminate_job(job)
                if job is not None:
                    mark_cancelled(run_store(), task_id=str(job))

        return LabCeleryManager(celery_app)
    import diskcache

    class GatedDiskcacheManager(DiskcacheManager):
        """Forks a job only while no other request thread is inside torch: a lock that
        another thread holds at the fork stays locked forever in the child. Cancel marks
        the job's run "cancelled" (a job that had already died stays for "died")."""

        def call_job_fn(self, key, job_fn, args, context):
            def job_without_server_sockets(*job_args):
                release_listening_sockets()  # a restarted server can bind while this runs
                use_job_threads()  # the server's one torch thread is for requests only
                return job_fn(*job_args)

            return FORK_GATE.fork(lambda: super(GatedDiskcacheManager, self).call_job_fn(
                key, job_without_server_sockets, args, context))

        def terminate_job(self, job):
            alive = job is not None and process_alive(job)
            super().terminate_job(job)
            if alive:
                mark_cancelled(run_store(), pid=int(job))

    return GatedDiskcacheManager(diskcache.Cache(str(cache_dir() / "jobs")))


_STORE: dict = {}


def run_store():
    """This process's RunStore (opened once per process; jobs fork)."""
    if _STORE.get("pid") != os.getpid():
        _STORE.update(pid=os.getpid(), store=RunStore())
    return _STORE["store"]


def task_lost(status: str, task_id) -> bool:
    """A Celery task that started and whose heartbeat is older than STALE_S: its worker
    is gone. A task that never beat (not a lab job) is left to Celery's own state."""
    if status != "STARTED":
        return False
    age = beat_age(run_store(), f"task:{task_id}")
    return age is not None and age > STALE_S


def show_callback_error(exc: Exception):
    """Global callback error handler: log it, show a short message, change nothing else."""
    log.exception("callback failed", exc_info=exc)
    from flask import g, has_request_context

    if has_request_context():
        g.callback_failed = True  # this answer is never kept by the response cache
    text = relative_paths(str(exc)).strip()
    text = text.splitlines()[0] if text else type(exc).__name__
    if len(text) > 300:
        text = text[:300] + "..."
    set_props(ERROR_BAR, {"children": f"Could not update the page: {text}", "hidden": False})
    return None


def answer_unexpected_error(exc: Exception):
    """No traceback page: a malformed callback request gets a 400 saying so."""
    from dash.exceptions import DependencyException
    from flask import jsonify, request
    from werkzeug.exceptions import HTTPException

    if isinstance(exc, HTTPException):
        return exc
    if isinstance(exc, DependencyException) or request.path.startswith("/_dash-component-suites/"):
        # an unknown script or map under Dash's component suites: not found, not a fault
        return jsonify(error="not found"), 404
    log.warning("request to %s failed: %s: %s", request.path, type(exc).__name__, exc)
    if request.path.endswith("_dash-update-component"):
        return jsonify(error=relative_paths(
            f"malformed callback request ({type(exc).__name__}: {exc})")[:300]), 400
    return jsonify(error="internal error; the server log has the details"), 500


def allowed_hosts() -> set[str]:
    """Host names the lab answers to: $SPARSITY_LAB_ALLOWED_HOSTS (comma-separated, ``*``
    for any), else localhost, 127.0.0.1, ::1 and the bind address ($SPARSITY_LAB_HOST)."""
    raw = os.environ.get(ALLOWED_HOSTS_ENV, "").strip()
    if raw:
        return {h.strip().lower().strip("[]") for h in raw.split(",") if h.strip()}
    bind = os.environ.get(HOST_ENV, "127.0.0.1").strip().lower().strip("[]")
    return set(LOOPBACK_NAMES) | ({bind} if bind not in ("", "0.0.0.0", "::") else set())


def host_name(host: str) -> str:
    """``Host`` header value without its port: ``[::1]:8050`` -> ``::1``."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


def check_host_and_origin():
    """Refuse (403) a Host the lab does not answer to, and an unsafe method from another
    origin. A browser always sends Origin on a cross-origin POST; clients that send none
    (curl, the load test) are not browsers and carry no one else's cookies."""
    from flask import jsonify, request

    names = allowed_hosts()
    host = request.headers.get("Host", "")
    if "*" not in names and host_name(host) not in names:
        return jsonify(error=f"host: expected one of the lab's host names ({ALLOWED_HOSTS_ENV}), "
                             f"got {host[:100]!r}"), 403
    if request.method in UNSAFE_METHODS:
        origin = request.headers.get("Origin")
        fetch_site = request.headers.get("Sec-Fetch-Site", "")
        same = origin is None or origin.split("://", 1)[-1].lower() == host.lower()
        if not same or fetch_site == "cross-site":
            return jsonify(error=f"origin: expected this lab's own pages ({host[:100]}), "
                                 f"got {str(origin)[:100]!r}"), 403
    return None


def relative_paths_in_callbacks(response):
    """Callback responses and errors name files relative to the project (or the cache
    folder), never the install path."""
    from flask import request

    if (request.path.endswith("_dash-update-component") and not response.direct_passthrough
            and response.status_code != 204 and response.headers.get(CACHE_HEADER) != "hit"):
        body = response.get_data(as_text=True)
        cleaned = relative_paths(body)
        if cleaned != body:
            response.set_data(cleaned)
    return response


def start_server_timing():
    """Stamp the request's start, for ``add_server_timing``."""
    from flask import g

    g.lab_started = perf_counter()


def add_server_timing(response):
    """``Server-Timing: app;dur=<ms>``: how long this process spent on the request (hooks,
    callback, serialisation; not the wait for a worker thread nor the transfer). Shown in the
    browser's network panel; benchmarks/settle_test.py splits a change's time with it."""
    from flask import g

    started = getattr(g, "lab_started", None)
    if started is not None:
        response.headers["Server-Timing"] = f"app;dur={1e3 * (perf_counter() - started):.1f}"
    return response


def add_security_headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", content_security_policy())
    return response


def navbar() -> html.Nav:
    """Links to every registered page, in the pages' ``order``, on one line at 1280 px: a
    page may give a short ``nav_name`` (its full name is the link's tooltip), and the
    device label is cut with an ellipsis (in full in its tooltip)."""
    pages = sorted(dash.page_registry.values(), key=page_order)
    links = [dcc.Link(p.get("nav_name", p["name"]), href=p["relative_path"], className="nav-link",
                      title=p["name"]) for p in pages]
    device = describe_device().label
    return html.Nav([
        dcc.Link("Sparsity Lab", href="/", className="brand"),
        html.Div(links, className="nav-links"),
        html.Span(device, className="nav-device", title=f"device the engine uses: {device}"),
    ], className="navbar")


def create_app(celery_app=None) -> Dash:
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder="pages",
        background_callback_manager=make_background_manager(celery_app),
        suppress_callback_exceptions=True,
        title="Sparsity Lab",
        update_title=None,
        on_error=show_callback_error,
    )
    app.layout = lambda: html.Div([
        navbar(),
        html.Div(id=ERROR_BAR, className="msg msg-error error-bar", hidden=True, role="alert",
                 title="click to dismiss"),
        html.Main(dash.page_container, className="content"),
    ])
    app.server.config["MAX_CONTENT_LENGTH"] = max_request_bytes()
    app.server.before_request(start_server_timing)
    app.server.before_request(check_host_and_origin)
    app.server.before_request(FORK_GATE.enter)
    # small ops: one torch thread (engine/runtime/threads.py); inside the fork gate, so no job
    # is forked while a request thread holds the thread-count lock
    app.server.before_request(use_web_threads)
    app.server.teardown_request(FORK_GATE.leave)
    # Pure callbacks answered from the shared store; its after_request hook is registered
    # first, so it runs last (Flask runs them in reverse) and keeps the cleaned body.
    ResponseCache(app).install(app.server)
    app.server.after_request(relative_paths_in_callbacks)
    app.server.after_request(add_security_headers)
    app.server.after_request(add_server_timing)  # registered last: runs first, measures the callback
    app.server.register_error_handler(Exception, answer_unexpected_error)
    return app


celery_app = make_celery()
app = create_app(celery_app)
server = app.server


# A new page, or a click on the bar, dismisses the last error: in the browser
# (assets/lab.js), since every page change would otherwise ask the server.
dash.clientside_callback(ClientsideFunction("lab", "hideErrorBar"), Output(ERROR_BAR, "hidden"),
                         Input("_pages_location", "pathname"), Input(ERROR_BAR, "n_clicks"),
                         prevent_initial_call=True)


# Dash builds its callback list on a worker's first request and marks that done before it
# has finished, so another thread of the same worker could answer /_dash-dependencies with
# an empty list: a browser served then gets a page on which nothing responds (seen in 5 of
# 6 fresh gunicorn starts). Build it now, once every page and callback is registered.
with server.test_request_context("/"):
    app._setup_server()

# torch imports torch.fx's symbolic shapes (and sympy) on a process's first autograd call:
# half a second here, which the first /scanner or /generator change on each gunicorn worker
# paid (0.6 s against 0.03 s after). A worker pays it at its start instead.
import torch.fx.experimental.symbolic_shapes  # noqa: E402,F401


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the Sparsity Lab dashboard.")
    parser.add_argument("--host", default=os.environ.get("SPARSITY_LAB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SPARSITY_LAB_PORT", "8050")))
    parser.add_argument("--debug", action="store_true",
                        default=os.environ.get("SPARSITY_LAB_DEBUG", "") in ("1", "true", "yes"))
    args = parser.parse_args(argv)
    os.environ[HOST_ENV] = args.host  # the bind address is one of the allowed host names
    app.run(host=args.host, port=args.port, debug=args.debug)


if __name__ == "__main__":
    main()
