"""Every callback declared pure (components.pure_callback), and every page whose layout is
declared pure, answers the same request with the same bytes: a timing or an unseeded random
draw hidden in a "pure" callback fails here.

Each is called twice through the app's own request path (Flask test client, response cache
off), with the values its page's layout starts with; outputs answered earlier fill the
inputs of later callbacks, as in the browser. The second call runs on a cache folder whose
run store holds runs (the first on an empty one): an answer that changes reads the run
store and cannot be pure. One declared pure without reading references is also called the
second time with an empty committed-results folder: an answer that changes reads them, and
must be declared ``pure_reference_callback`` / ``PURE_LAYOUT_READING_REFERENCES`` so that
their signature joins its key."""
from __future__ import annotations

import json

import dash
import pytest

from components.pure_callback import CACHE_HEADER, page_purity, purity
from engine.bench.reference import RESULTS_ENV
from engine.runtime.store import RunStore
from tests.apphelpers import callback_request, layout_values

HOST = {"Host": "127.0.0.1"}


@pytest.fixture(scope="module")
def lab():
    mp = pytest.MonkeyPatch()
    mp.setenv("SPARSITY_LAB_PURE_CACHE_MB", "0")  # every answer computed, none replayed
    import app as lab

    yield lab
    mp.undo()


@pytest.fixture
def folders(tmp_path, monkeypatch):
    """(empty cache folder, one whose run store holds a finished run of every page's kind,
    an empty results folder); the first is the cache the app starts on."""
    empty, busy = tmp_path / "empty", tmp_path / "busy"
    store = RunStore(busy)
    for kind in ("paradox", "attention", "moe-timing", "structured", "structured-matrices",
                 "isomorphism-timing", "paper", "generator-training", "your-matrix", "calibration"):
        run = store.create_run(kind, {"n": 8}, {"device": "cpu"})
        store.append(run, {"op": "spmv", "backend": "torch-csr", "status": "ok", "median_s": 1e-3})
        store.finish(run)
    store.close()
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(empty))
    return empty, busy, tmp_path / "no-results"


def _answers_twice(client, body, options, folders, monkeypatch):
    """The same request answered twice: the second time on a run store that holds runs,
    and without committed runs when the callback (or layout) is declared not to read them."""
    _, busy, empty_results = folders
    first = client.post("/_dash-update-component", json=body, headers=HOST)
    with monkeypatch.context() as m:
        m.setenv("SPARSITY_LAB_CACHE", str(busy))
        if not options["reads_references"]:
            m.setenv(RESULTS_ENV, str(empty_results))
        second = client.post("/_dash-update-component", json=body, headers=HOST)
    assert CACHE_HEADER not in second.headers  # the cache is off: both were computed
    return first, second


def _pure_callbacks(lab) -> list[tuple[str, dict]]:
    return [(out, cb) for out, cb in lab.app.callback_map.items() if purity(lab.app.callback_map, out)
            and all(isinstance(i["id"], str) and not i["id"].startswith("{") for i in cb["inputs"] + cb["state"])]


# Callbacks that time something or read the run store (outputs they contain): never declared.
NEVER_PURE = ["iso-conv-timing.data", "iso-pool-timing.data", "iso-rnn-timing.data", "iso-attn-timing.data",
              "paradox-notes.children", "runs-table.data", "runs-facts.children", "gen-trained.data",
              "matrix-pred.data"]


def test_every_page_declares_some_callbacks_pure_and_none_that_measure(lab):
    pages = {out.strip(".").split("-", 1)[0] for out, _ in _pure_callbacks(lab)}
    assert {"attention", "paradox", "moe", "scan", "gen", "sm", "ss", "iso", "paper"} <= pages
    for name in NEVER_PURE:
        (output,) = [o for o in lab.app.callback_map if f".{name}." in f".{o.strip('.')}."]
        assert purity(lab.app.callback_map, output) is None, output


def test_declared_pure_callbacks_answer_equal_requests_equally(lab, folders, monkeypatch):
    values = layout_values(*[p["layout"]() if callable(p["layout"]) else p["layout"]
                             for p in dash.page_registry.values()])
    client = lab.server.test_client()
    answered, differ = [], []
    for output, cb in _pure_callbacks(lab):
        body = callback_request(output, cb["inputs"], cb["state"], values)
        first, second = _answers_twice(client, body, purity(lab.app.callback_map, output), folders,
                                       monkeypatch)
        if (first.status_code, first.data) != (second.status_code, second.data):
            differ.append(output)
        if first.status_code == 200:
            answered.append(output)
            for cid, props in json.loads(first.data).get("response", {}).items():
                values.update({(cid, prop): value for prop, value in props.items()})
    assert differ == [], f"not deterministic, reading the run store, or committed runs undeclared: {differ}"
    assert len(answered) >= 0.75 * len(_pure_callbacks(lab)), "most callbacks should answer their defaults"


def test_declared_pure_layouts_answer_equal_requests_equally(lab, folders, monkeypatch):
    (output,) = [o for o in lab.app.callback_map if "_pages_content.children" in o]
    cb = lab.app.callback_map[output]
    client = lab.server.test_client()
    declared = []
    for page in dash.page_registry.values():
        values = {("_pages_location", "pathname"): page["relative_path"], ("_pages_location", "search"): ""}
        body = callback_request(output, cb["inputs"], cb["state"], values)
        options = page_purity(lab.app, body)
        if options is None:
            if page["path"] == "/":  # the check sees the run store: the home page lists its runs
                plain, busy = _answers_twice(client, body, {"reads_references": True}, folders, monkeypatch)
                assert plain.data != busy.data
            continue
        declared.append(page["path"])
        first, second = _answers_twice(client, body, options, folders, monkeypatch)
        assert first.status_code == 200 and first.data == second.data, page["path"]
    assert "/paradox" in declared and "/" not in declared and "/runs" not in declared  # those read the run store
