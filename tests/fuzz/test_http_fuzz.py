"""Every server-side callback, fuzzed through the real HTTP endpoint.

The app runs as a subprocess; the list of callbacks comes from its own
``/_dash-dependencies`` (what the browser gets). Hypothesis sends out-of-range
numbers, wrong types, huge lists and missing fields. Every answer must be a normal
update (200/204) or a 400 with a message: never a 500, never a traceback page, never
a hang; and the server must still serve pages afterwards.

Background callbacks are left out here: a request to one starts a real job in a
forked process (their input checks run in the pages' callback tests instead).
"""
from __future__ import annotations

import json
import urllib.error
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.apphelpers import callback_outputs, start_app, stop_app

pytestmark = pytest.mark.slow

EXAMPLES_PER_CALLBACK = 6
REQUEST_TIMEOUT_S = 30

values = st.one_of(
    st.none(), st.booleans(),
    st.integers(min_value=-10**12, max_value=10**12),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["=1+1", "-1", "1e308", "", "null", "<script>alert(1)</script>"]),
    st.lists(st.integers(min_value=-10**6, max_value=10**6), max_size=50),
    st.just(list(range(20000))),  # a huge list
    st.dictionaries(st.text(max_size=5), st.integers(), max_size=3),
)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    proc, url = start_app(tmp_path_factory.mktemp("fuzz-cache"))
    yield url
    stop_app(proc)


def _post(url: str, payload: dict) -> tuple[int, bytes]:
    req = urllib.request.Request(url + "/_dash-update-component", data=json.dumps(payload).encode(),
                                 headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=REQUEST_TIMEOUT_S) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _callbacks(url: str) -> list[dict]:
    with urllib.request.urlopen(url + "/_dash-dependencies", timeout=30) as resp:
        deps = json.loads(resp.read())
    out = []
    for dep in deps:
        if dep.get("clientside_function") or dep.get("background"):
            continue
        ids = [i["id"] for i in dep["inputs"] + dep["state"]]
        if any(i.startswith("{") for i in ids) or "{" in dep["output"]:
            continue  # pattern-matching ids: fuzzed values would not address a component
        out.append(dep)
    return out


def test_every_callback_survives_hostile_input(server):
    callbacks = _callbacks(server)
    assert callbacks, "no callbacks found"
    failures: list[str] = []

    for dep in callbacks:
        args = dep["inputs"] + dep["state"]

        @settings(max_examples=EXAMPLES_PER_CALLBACK, deadline=None, derandomize=True,
                  suppress_health_check=list(HealthCheck))
        @given(st.lists(values, min_size=len(args), max_size=len(args)),
               st.lists(st.booleans(), min_size=len(args), max_size=len(args)))
        def one(vals, drop):
            items = []
            for arg, value, missing in zip(args, vals, drop):
                item = {"id": arg["id"], "property": arg["property"]}
                if not missing:
                    item["value"] = value
                items.append(item)
            n_in = len(dep["inputs"])
            payload = {"output": dep["output"], "outputs": callback_outputs(dep["output"]),
                       "inputs": items[:n_in], "state": items[n_in:],
                       "changedPropIds": [f"{i['id']}.{i['property']}" for i in items[:n_in]]}
            status, body = _post(server, payload)
            if status not in (200, 204, 400) or b"Traceback" in body:
                failures.append(f"{dep['output']} <- {json.dumps(vals)[:200]}: HTTP {status} "
                                f"{body[:200]!r}")

        one()

    print(f"fuzzed {len(callbacks)} callbacks x {EXAMPLES_PER_CALLBACK} examples")
    with urllib.request.urlopen(server + "/", timeout=10) as resp:
        assert resp.status == 200, "server stopped serving pages"
    assert not failures, f"{len(failures)} bad answers:\n" + "\n".join(failures[:20])
