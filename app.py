"""Sparsity Lab: the Dash shell.

Builds the app (pages from ``pages/``), the navbar from ``dash.page_registry``, and
the background-callback manager, chosen once: DiskcacheManager in the lab's cache
folder (embedded, nothing to start). ``server`` is exposed for gunicorn:

    gunicorn app:server -b 127.0.0.1:8050

The web process never initialises CUDA (see engine.device); GPU work happens only
inside background jobs.
"""
from __future__ import annotations

import argparse
import os

import dash
from dash import Dash, dcc, html

from components.layout import page_order
from engine.device import describe_device
from engine.store import cache_dir


def make_background_manager():
    """DiskcacheManager on ``<cache>/jobs``: embedded, nothing else to start."""
    import diskcache
    from dash import DiskcacheManager

    return DiskcacheManager(diskcache.Cache(str(cache_dir() / "jobs")))


def navbar() -> html.Nav:
    """Links to every registered page, in the pages' ``order``."""
    pages = sorted(dash.page_registry.values(), key=page_order)
    links = [dcc.Link(p["name"], href=p["relative_path"], className="nav-link") for p in pages]
    return html.Nav([
        dcc.Link("Sparsity Lab", href="/", className="brand"),
        html.Div(links, className="nav-links"),
        html.Span(describe_device().label, className="nav-device", title="device the engine uses"),
    ], className="navbar")


def create_app() -> Dash:
    app = Dash(
        __name__,
        use_pages=True,
        pages_folder="pages",
        background_callback_manager=make_background_manager(),
        suppress_callback_exceptions=True,
        title="Sparsity Lab",
        update_title=None,
    )
    app.layout = lambda: html.Div([navbar(), html.Main(dash.page_container, className="content")])
    return app


app = create_app()
server = app.server


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
