"""Sparsity Lab: the Dash shell.

Builds the app (pages from ``pages/``), the navbar from ``dash.page_registry``, and
the background-callback manager, chosen once: DiskcacheManager in the lab's cache
folder (embedded, nothing to start), or CeleryManager on Redis when
``SPARSITY_LAB_REDIS_URL`` is set (then ``celery -A app:celery_app worker`` runs the
jobs, on this host or others). ``server`` is exposed for gunicorn:

    gunicorn app:server -b 127.0.0.1:8050

A callback that raises shows its message in the page's error bar (never a
traceback); responses carry security headers.

The web process never initialises CUDA (see engine.runtime.device); GPU work happens only
inside background jobs. Jobs are forked only while no other request is running
(engine/runtime/forkgate.py): a torch lock held by another thread at the fork would hang
the job.
"""
from __future__ import annotations

import argparse
import os

import logging

import dash
from dash import Dash, Input, Output, dcc, html, set_props

from components.layout import page_order
from engine.runtime.device import describe_device
from engine.runtime.forkgate import ForkGate
from engine.runtime.store import cache_dir


REDIS_ENV = "SPARSITY_LAB_REDIS_URL"
ERROR_BAR = "lab-error"
log = logging.getLogger("sparsity_lab")

# Dash needs inline scripts (its config and renderer start-up, clientside callbacks)
# and plotly builds some functions at run time; everything else stays on this origin.
CONTENT_SECURITY_POLICY = "; ".join([
    "default-src 'self'",
    "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
    "style-src 'self' 'unsafe-inline'",
    "img-src 'self' data: blob:",
    "media-src 'self' data: blob:",
    "font-src 'self' data:",
    "connect-src 'self'",
    "worker-src 'self' blob:",
    "object-src 'none'",
    "base-uri 'self'",
    "frame-ancestors 'self'",
])


def make_celery():
    """The Celery app when a Redis URL is configured, else None."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        return None
    from celery import Celery

    return Celery("sparsity_lab", broker=url, backend=url)


FORK_GATE = ForkGate()


def make_background_manager(celery_app=None):
    """CeleryManager on Redis when configured; else DiskcacheManager on ``<cache>/jobs``
    whose job forks wait at FORK_GATE (see engine/runtime/forkgate.py)."""
    from dash import CeleryManager, DiskcacheManager

    if celery_app is not None:
        return CeleryManager(celery_app)
    import diskcache

    class GatedDiskcacheManager(DiskcacheManager):
        """Forks a job only while no other request thread is inside torch: a lock that
        another thread holds at the fork stays locked forever in the child."""

        def call_job_fn(self, key, job_fn, args, context):
            return FORK_GATE.fork(lambda: super(GatedDiskcacheManager, self).call_job_fn(
                key, job_fn, args, context))

    return GatedDiskcacheManager(diskcache.Cache(str(cache_dir() / "jobs")))


def show_callback_error(exc: Exception):
    """Global callback error handler: log it, show a short message, change nothing else."""
    log.exception("callback failed", exc_info=exc)
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if len(text) > 300:
        text = text[:300] + "..."
    set_props(ERROR_BAR, {"children": f"Could not update the page: {text}", "hidden": False})
    return None


def answer_unexpected_error(exc: Exception):
    """No traceback page: a malformed callback request gets a 400 saying so."""
    from flask import jsonify, request
    from werkzeug.exceptions import HTTPException

    if isinstance(exc, HTTPException):
        return exc
    log.warning("request to %s failed: %s: %s", request.path, type(exc).__name__, exc)
    if request.path.endswith("_dash-update-component"):
        return jsonify(error=f"malformed callback request ({type(exc).__name__}: {exc})"[:300]), 400
    return jsonify(error="internal error; the server log has the details"), 500


def add_security_headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    return response


def navbar() -> html.Nav:
    """Links to every registered page, in the pages' ``order``."""
    pages = sorted(dash.page_registry.values(), key=page_order)
    links = [dcc.Link(p["name"], href=p["relative_path"], className="nav-link") for p in pages]
    return html.Nav([
        dcc.Link("Sparsity Lab", href="/", className="brand"),
        html.Div(links, className="nav-links"),
        html.Span(describe_device().label, className="nav-device", title="device the engine uses"),
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
    app.server.after_request(add_security_headers)
    app.server.before_request(FORK_GATE.enter)
    app.server.teardown_request(FORK_GATE.leave)
    app.server.register_error_handler(Exception, answer_unexpected_error)
    return app


celery_app = make_celery()
app = create_app(celery_app)
server = app.server


@dash.callback(Output(ERROR_BAR, "hidden"), Input("_pages_location", "pathname"),
               Input(ERROR_BAR, "n_clicks"), prevent_initial_call=True)
def hide_error_bar(_path, _clicks):
    """A new page, or a click on the bar, dismisses the last error."""
    return True


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the Sparsity Lab dashboard.")
    parser.add_argument("--host", default=os.environ.get("SPARSITY_LAB_HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("SPARSITY_LAB_PORT", "8050")))
    parser.add_argument("--debug", action="store_true",
                        default=os.environ.get("SPARSITY_LAB_DEBUG", "") in ("1", "true", "yes"))
    args = parser.parse_args(argv)
    app.run(host=args.host, port=args.port, debug=args.debug)


if __name__ == "__main__":
    main()
