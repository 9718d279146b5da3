"""Callbacks whose response is a pure function of their request, answered from a shared cache.

Most of a callback's time is building plotly figures and pandas tables, after the engine's
own ``pure_cache`` has answered. For a callback whose answer depends on nothing but its
inputs, its state, which input changed and the settings below, the whole HTTP response can
be kept: declare it at its definition with ``pure_callback`` (a drop-in for dash's
``callback``), and ``ResponseCache`` (installed by ``app.create_app``) answers a
``/_dash-update-component`` request for it from the store when the same request was
answered before.

    @pure_callback(Output(ID.heatmap, "figure"), Input(ID.seed, "value"))
    def draw(seed): ...

    @pure_reference_callback(Output(ID.ref_plot, "figure"), Input(ID.ref, "value"))
    def draw_reference(name): ...      # reads benchmarks/results/: its signature is in the key

A page whose ``layout(**query)`` depends only on its query string and the keyed settings says so
at its registration, and its page-routing answer (dash's ``_pages_content``) is kept the same way:

    dash.register_page(__name__, path="/moe", ..., pure_layout=PURE_LAYOUT)
    dash.register_page(__name__, path="/structured-matrices", ..., pure_layout=PURE_LAYOUT_READING_REFERENCES)

Never declare pure a callback that times anything (a measurement is a measurement), reads
the run store or job results, runs a background job, or takes an upload.

Key: SHA-256 of the output id, the canonical JSON of the request's outputs, inputs, state
and changedPropIds, the lab's code fingerprint (``engine.runtime.cache.code_fingerprint``),
the settings that change answers (``KEYED_SETTINGS``, the device label), the versions of
the libraries that write the answers (``KEYED_LIBRARIES``: the store outlives an upgrade)
and, for ``reads_references=True``, the committed results folder's signature
(``engine.bench.reference.folder_signature``, read again at most every
``REFERENCES_RECHECK_S``: walking the folder was a twentieth of the busy workers' time under
50 clients). Entries live in the pure cache's store (``<SPARSITY_LAB_CACHE>/pure`` or Redis;
bound ``SPARSITY_LAB_PURE_CACHE_MB``, the oldest stored go first (in Redis the least
recently used), an entry over an eighth of the bound is not kept), so every
gunicorn worker and host on the same store shares them. Only 200 answers are kept, after
the lab's own after-request processing (relative paths); 204s, errors and answers of a
callback that raised are not. Every response says ``X-Sparsity-Lab-Cache: hit`` or ``miss``
when its callback is declared pure; security headers are added to hits as to any response.
"""
from __future__ import annotations

import hashlib
import json
import os
import pickle
import threading
import time
from pathlib import Path

import dash

from engine.runtime.cache import (INFLIGHT, KEYED_LIBRARIES, MAX_ENTRY_SHARE, code_fingerprint,  # noqa: F401
                                  default_store, library_versions)

PURE_ATTR = "_sparsity_lab_pure"
CACHE_HEADER = "X-Sparsity-Lab-Cache"
UPDATE_PATH = "_dash-update-component"
# Settings that change what a callback answers (read at each request).
KEYED_SETTINGS = ("SPARSITY_LAB_MEMORY_BUDGET_MB", "SPARSITY_LAB_RESULTS", "SPARSITY_LAB_DATA_DIR",
                  "SPARSITY_LAB_FORCE_CPU", "SPARSITY_LAB_BSR_GRAPHS")
REQUEST_FIELDS = ("outputs", "inputs", "state", "changedPropIds")
# ``register_page(..., pure_layout=...)``: the page's layout is a pure function of its query.
PURE_LAYOUT = {"reads_references": False}
PURE_LAYOUT_READING_REFERENCES = {"reads_references": True}
PAGES_OUTPUT_ID = "_pages_content"
PAGES_LOCATION_ID = "_pages_location"
# A CSV committed while the server runs joins the keys of reference-reading callbacks within this.
REFERENCES_RECHECK_S = 1.0
_signature: dict = {}
_signature_lock = threading.Lock()


def pure_callback(*args, reads_references: bool = False, **kwargs):
    """``dash.callback(*args, **kwargs)`` whose response may be cached (see the module)."""
    if kwargs.get("background"):
        raise TypeError("pure_callback: expected a callback answered in the request, got a background job")

    def decorate(fn):
        # dash wraps ``fn`` with functools.wraps, which carries this mark into its callback map
        setattr(fn, PURE_ATTR, {"reads_references": bool(reads_references)})
        return dash.callback(*args, **kwargs)(fn)
    return decorate


def pure_reference_callback(*args, **kwargs):
    """``pure_callback`` for a callback that also reads the committed runs under
    benchmarks/results/ (``$SPARSITY_LAB_RESULTS``): that folder's signature joins its key."""
    return pure_callback(*args, reads_references=True, **kwargs)


def purity(callback_map: dict, output: str) -> dict | None:
    """The ``pure_callback`` options of the callback answering ``output``, or None."""
    entry = callback_map.get(output) if isinstance(output, str) else None
    return getattr(entry.get("callback"), PURE_ATTR, None) if entry else None


def page_purity(app: dash.Dash, body: dict) -> dict | None:
    """The ``pure_layout`` of the page a page-routing request asks for, or None."""
    output = body.get("output")
    if not isinstance(output, str) or f"..{PAGES_OUTPUT_ID}.children..." not in output:
        return None
    inputs = body.get("inputs")
    paths = [i.get("value") for i in inputs if isinstance(i, dict) and i.get("id") == PAGES_LOCATION_ID
             and i.get("property") == "pathname"] if isinstance(inputs, list) else []
    if len(paths) != 1 or not isinstance(paths[0], str):
        return None
    path = (app.strip_relative_path(paths[0]) or "").strip("/")
    for page in dash.page_registry.values():
        if page.get("path_template") is None and page["path"].strip("/") == path:
            return page.get("pure_layout")
    return None


def references_signature() -> list:
    """[results folder, its ``folder_signature``], read again after ``REFERENCES_RECHECK_S``."""
    from engine.bench.reference import folder_signature, results_dir

    folder, now = str(results_dir()), time.monotonic()
    with _signature_lock:
        if _signature.get("folder") != folder or now - _signature.get("at", -1e9) > REFERENCES_RECHECK_S:
            _signature.update(folder=folder, at=now, value=[folder, folder_signature(Path(folder))])
        return _signature["value"]


def response_key(body: dict, reads_references: bool) -> str:
    """The hex key of one callback request (a dict as the browser posts it)."""
    from engine.runtime.device import describe_device

    request = {name: body.get(name) for name in REQUEST_FIELDS}
    settings = {name: os.environ.get(name) for name in KEYED_SETTINGS}
    settings["device"] = describe_device().label
    settings["libraries"] = library_versions()
    if reads_references:
        settings["references"] = references_signature()
    digest = hashlib.sha256(b"dash-response\0")
    for part in (body["output"], json.dumps(request, sort_keys=True, separators=(",", ":")),
                 code_fingerprint(), json.dumps(settings, sort_keys=True, separators=(",", ":"))):
        digest.update(part.encode("utf-8", "surrogatepass"))
        digest.update(b"\0")
    return digest.hexdigest()


class ResponseCache:
    """The Flask hooks: ``lookup`` (before_request), ``keep`` (after_request, registered
    before the lab's other after-request hooks so it runs after them) and ``release``
    (teardown_request). Threads asking for the same cold key wait for the first one."""

    def __init__(self, app: dash.Dash, store=default_store):
        self.app = app
        self.store = store

    def _target(self):
        return self.store() if callable(self.store) else self.store

    def lookup(self):
        from flask import g, request

        g.pure_response = None
        if request.method != "POST" or not request.path.endswith(UPDATE_PATH):
            return None
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return None
        options = purity(self.app.callback_map, body.get("output")) or page_purity(self.app, body)
        target = self._target()
        if options is None or target is None:
            return None
        key = response_key(body, options["reads_references"])
        g.pure_response = {"key": key, "held": False, "hit": False}
        blob = target.get(key)
        if blob is None:
            g.pure_response["held"] = INFLIGHT.acquire(key)
            blob = target.get(key)  # the thread that held the key may have stored it
        if blob is None:
            return None
        try:
            data, mimetype = pickle.loads(blob)
        except Exception:  # an entry that does not load: answered afresh, and stored again
            return None
        g.pure_response["hit"] = True
        response = self.app.server.response_class(data, status=200, mimetype=mimetype)
        response.headers[CACHE_HEADER] = "hit"
        return response

    def keep(self, response):
        from flask import g

        state = getattr(g, "pure_response", None)
        if not state or state["hit"]:
            return response
        response.headers[CACHE_HEADER] = "miss"
        target = self._target()
        if (response.status_code != 200 or response.direct_passthrough or target is None
                or getattr(g, "callback_failed", False)):
            return response
        blob = pickle.dumps((response.get_data(), response.mimetype), protocol=pickle.HIGHEST_PROTOCOL)
        if len(blob) <= target.limit // MAX_ENTRY_SHARE:
            target.set(state["key"], blob)
        return response

    def release(self, *_args) -> None:
        from flask import g

        state = getattr(g, "pure_response", None)
        if state and state["held"]:
            state["held"] = False
            INFLIGHT.release(state["key"])

    def install(self, server) -> None:
        """Register the hooks on the Flask ``server``; call before the other after_request
        hooks are registered (Flask runs after_request hooks last-registered first)."""
        server.before_request(self.lookup)
        server.after_request(self.keep)
        server.teardown_request(self.release)
