"""The response cache of pure callbacks (components.pure_callback) against the live app:
the same request is answered from the store, requests differing in one input value or in
changedPropIds get their own entries and bodies, refusals and failed callbacks are never kept,
hits carry the security headers, and the store stays within its bound."""
from __future__ import annotations

import json
import shutil
import urllib.error
import urllib.request

import pytest

from components.pure_callback import CACHE_HEADER
from engine.runtime.cache import MAX_ENTRY_SHARE, DiskStore
from tests.apphelpers import callback_request, start_app, start_redis, stop_app, stop_process

BOUND_MB = 0.25


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    cache = tmp_path_factory.mktemp("response-cache")
    proc, url = start_app(cache, extra_env={"SPARSITY_LAB_PURE_CACHE_MB": str(BOUND_MB)})
    with urllib.request.urlopen(url + "/_dash-dependencies", timeout=60) as resp:
        deps = {d["output"]: d for d in json.loads(resp.read())}
    yield url, deps, cache
    stop_app(proc)


def post(url: str, body: dict) -> tuple[int, bytes, dict]:
    req = urllib.request.Request(url + "/_dash-update-component", data=json.dumps(body).encode(),
                                 method="POST", headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read(), dict(resp.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), dict(exc.headers)


def request_for(deps: dict, contains: str, values: dict, changed=None) -> dict:
    """The request of the one callback whose output spec contains ``contains``."""
    (output,) = [o for o in deps if contains in o]
    return callback_request(output, deps[output]["inputs"], deps[output]["state"], values, changed)


def page_values(url: str, deps: dict, path: str) -> dict:
    """{(id, prop): value} of the layout the app sends for ``path``."""
    body = request_for(deps, "_pages_content.children", {("_pages_location", "pathname"): path})
    status, data, _ = post(url, body)
    assert status == 200
    values: dict = {}

    def walk(node):
        if isinstance(node, dict):
            props = node.get("props")
            if isinstance(props, dict) and isinstance(props.get("id"), str):
                values.update({(props["id"], k): v for k, v in props.items()})
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(json.loads(data))
    return values


def test_the_same_request_is_answered_from_the_cache(live):
    url, deps, _ = live
    causal = request_for(deps, "attention-mask-help.children", {("attention-mask", "value"): "causal"},
                         ["attention-mask.value"])
    first, second = post(url, causal), post(url, causal)
    assert first[0] == second[0] == 200
    assert (first[2][CACHE_HEADER], second[2][CACHE_HEADER]) == ("miss", "hit")
    assert second[1] == first[1]
    for name in ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options"):
        assert second[2][name] == first[2][name]  # security headers on hits too
    other = request_for(deps, "attention-mask-help.children", {("attention-mask", "value"): "sliding_window"},
                        ["attention-mask.value"])
    third = post(url, other)
    assert third[0] == 200 and third[2][CACHE_HEADER] == "miss" and third[1] != first[1]
    assert post(url, other)[2][CACHE_HEADER] == "hit"


def test_changed_prop_ids_are_part_of_the_key(live):
    """/isomorphism picks a row from whichever plot was clicked (dash's triggered id)."""
    url, deps, _ = live
    values = page_values(url, deps, "/isomorphism")
    values[("iso-conv-spy", "clickData")] = {"points": [{"x": 3, "y": 5}]}
    values[("iso-conv-out", "clickData")] = {"points": [{"x": 1, "y": 2}]}
    spy = request_for(deps, "iso-conv-row.value", values, ["iso-conv-spy.clickData"])
    out = request_for(deps, "iso-conv-row.value", values, ["iso-conv-out.clickData"])
    a, b = post(url, spy), post(url, out)
    assert a[0] == b[0] == 200 and a[2][CACHE_HEADER] == b[2][CACHE_HEADER] == "miss"
    assert json.loads(a[1])["response"]["iso-conv-row"]["value"] == 5
    assert a[1] != b[1]
    assert post(url, spy)[1] == a[1] and post(url, out)[1] == b[1]


def test_refused_and_failed_callbacks_are_never_kept(live):
    url, deps, _ = live
    malformed = {**request_for(deps, "iso-conv-row.value", {}), "inputs": "not a list"}
    first, second = post(url, malformed), post(url, malformed)
    assert first[0] == second[0] == 400 and second[2][CACHE_HEADER] == "miss"
    bad = request_for(deps, "ss-acc-plot.figure", {("ss-a-stage", "value"): "no such stage"},
                      ["ss-a-stage.value"])
    first, second = post(url, bad), post(url, bad)
    assert b"lab-error" in first[1]  # the error bar says what failed
    assert (first[2][CACHE_HEADER], second[2][CACHE_HEADER]) == ("miss", "miss")


def test_undeclared_callbacks_are_not_cached(live):
    url, deps, _ = live
    body = request_for(deps, "runs-table.data", {})
    assert CACHE_HEADER not in post(url, body)[2]


def test_a_pure_page_layout_is_kept_and_the_home_page_is_not(live):
    url, deps, _ = live
    moe = request_for(deps, "_pages_content.children", {("_pages_location", "pathname"): "/moe"})
    first, second = post(url, moe), post(url, moe)
    assert (first[2][CACHE_HEADER], second[2][CACHE_HEADER]) == ("miss", "hit") and first[1] == second[1]
    with_query = request_for(deps, "_pages_content.children", {("_pages_location", "pathname"): "/moe",
                                                                ("_pages_location", "search"): "?x=1"})
    assert post(url, with_query)[2][CACHE_HEADER] == "miss"
    home = request_for(deps, "_pages_content.children", {("_pages_location", "pathname"): "/"})
    post(url, home)
    assert CACHE_HEADER not in post(url, home)[2]  # it lists the recent runs


def test_the_store_stays_within_its_bound(live):
    url, deps, cache = live
    limit = int(BOUND_MB * 2**20)

    def loss_request(i: int) -> dict:
        rows = [{"step": s, "loss": 1.0 / (s + i + 1)} for s in range(600)]  # about 15 kB answered
        return request_for(deps, "gen-loss.figure", {("gen-train-job-rows", "data"): rows})

    sizes = []
    for i in range(80):
        status, data, headers = post(url, loss_request(i))
        assert status == 200 and headers[CACHE_HEADER] == "miss"
        sizes.append(len(data))
    assert sum(sizes) > 2 * limit and max(sizes) < limit // MAX_ENTRY_SHARE
    store = DiskStore(cache / "pure", limit)
    assert store.volume() <= limit + limit // MAX_ENTRY_SHARE
    assert post(url, loss_request(79))[2][CACHE_HEADER] == "hit"    # the newest is kept
    assert post(url, loss_request(0))[2][CACHE_HEADER] == "miss"    # the oldest went


@pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")
def test_two_hosts_on_one_redis_share_answers(tmp_path):
    """Two lab processes with their own cache folders (two hosts) and one Redis: what one
    answered, the other serves from the shared store."""
    redis_proc, redis_url = start_redis(tmp_path)
    apps = []
    try:
        for name in ("host-a", "host-b"):
            (tmp_path / name).mkdir()
            apps.append(start_app(tmp_path / name, extra_env={"SPARSITY_LAB_REDIS_URL": redis_url}))
        (url_a, url_b) = (url for _, url in apps)
        with urllib.request.urlopen(url_a + "/_dash-dependencies", timeout=60) as resp:
            deps = {d["output"]: d for d in json.loads(resp.read())}
        body = request_for(deps, "attention-mask-help.children", {("attention-mask", "value"): "bigbird"},
                           ["attention-mask.value"])
        first, second = post(url_a, body), post(url_b, body)
        assert (first[2][CACHE_HEADER], second[2][CACHE_HEADER]) == ("miss", "hit")
        assert first[1] == second[1]
    finally:
        for proc, _ in apps:
            stop_app(proc)
        stop_process(redis_proc)
