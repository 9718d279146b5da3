"""The shell's safety settings: headers, error handler, defaults."""
import app as lab


def test_security_headers_on_every_response():
    client = lab.server.test_client()
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in csp and "object-src 'none'" in csp


def test_server_timing_says_how_long_the_app_took(monkeypatch):
    # the hooks' own clock (app.perf_counter, not the time module's: Flask and Dash keep theirs)
    clock = iter([100.0, 100.05])
    monkeypatch.setattr(lab, "perf_counter", lambda: next(clock))
    resp = lab.server.test_client().get("/_dash-layout")
    assert resp.headers["Server-Timing"] == "app;dur=50.0"


def test_callback_error_becomes_a_short_message(monkeypatch):
    shown = {}
    monkeypatch.setattr(lab, "set_props", lambda cid, props: shown.update({cid: props}))
    assert lab.show_callback_error(ValueError("size: expected an integer, got 'x'\nTraceback...")) is None
    props = shown[lab.ERROR_BAR]
    assert props["hidden"] is False
    assert props["children"] == "Could not update the page: size: expected an integer, got 'x'"


def test_binds_loopback_without_debug_by_default(monkeypatch):
    seen = {}
    monkeypatch.setattr(lab.app, "run", lambda **kw: seen.update(kw))
    for var in ("SPARSITY_LAB_HOST", "SPARSITY_LAB_PORT", "SPARSITY_LAB_DEBUG"):
        monkeypatch.delenv(var, raising=False)
    lab.main([])
    assert seen == {"host": "127.0.0.1", "port": 8050, "debug": False}


def test_diskcache_manager_without_redis(monkeypatch):
    monkeypatch.delenv("SPARSITY_LAB_REDIS_URL", raising=False)
    assert lab.make_celery() is None
    from dash import DiskcacheManager

    manager = lab.make_background_manager(None)
    assert isinstance(manager, DiskcacheManager) and type(manager).__name__ == "GatedDiskcacheManager"
    # a job is forked through the gate: it waits while another request is inside
    forked = []
    monkeypatch.setattr(DiskcacheManager, "call_job_fn", lambda self, *a: forked.append(a) or 4242)
    assert manager.call_job_fn("key", None, (), {}) == 4242 and forked
    assert lab.FORK_GATE.inside == 0


MALFORMED = [b"not json", b"{}", b'{"output": "x.y"}',
             b'{"output": "lab-error.hidden", "outputs": {"id": "lab-error", "property": "hidden"},'
             b' "inputs": [], "changedPropIds": []}']


def test_malformed_callback_requests_get_a_400_not_a_traceback():
    client = lab.server.test_client()
    for body in MALFORMED:
        resp = client.post("/_dash-update-component", data=body, content_type="application/json")
        assert resp.status_code == 400, body
        assert b"Traceback" not in resp.data
    assert client.get("/").status_code == 200


# -- web hardening (issue 22, items 5, 13, 14, 15) ----------------------------------
HOSTS = [("localhost", 200), ("localhost:8050", 200), ("127.0.0.1:8150", 200), ("[::1]:8050", 200),
         ("attacker.example", 403), ("attacker.example:8050", 403), ("127.0.0.1.attacker.example", 403),
         ("", 403)]


def test_only_the_labs_host_names_are_answered(monkeypatch):
    """DNS rebinding: a page on attacker.example resolving to 127.0.0.1 sends its own Host."""
    for var in ("SPARSITY_LAB_ALLOWED_HOSTS", "SPARSITY_LAB_HOST"):
        monkeypatch.delenv(var, raising=False)
    client = lab.server.test_client()
    for host, status in HOSTS:
        resp = client.get("/", headers={"Host": host})
        assert resp.status_code == status, host
        if status == 403:
            assert b"expected one of the lab's host names" in resp.data


def test_allowed_hosts_setting_and_bind_address(monkeypatch):
    client = lab.server.test_client()
    monkeypatch.setenv("SPARSITY_LAB_HOST", "10.1.2.3")
    assert client.get("/", headers={"Host": "10.1.2.3:8050"}).status_code == 200
    monkeypatch.setenv("SPARSITY_LAB_ALLOWED_HOSTS", "lab.example, 10.0.0.7")
    assert client.get("/", headers={"Host": "lab.example:443"}).status_code == 200
    assert client.get("/", headers={"Host": "localhost"}).status_code == 403
    monkeypatch.setenv("SPARSITY_LAB_HOST", "0.0.0.0")
    monkeypatch.delenv("SPARSITY_LAB_ALLOWED_HOSTS")
    assert lab.allowed_hosts() == {"localhost", "127.0.0.1", "::1"}  # not "any"


ORIGINS = [({"Origin": "http://localhost"}, 400), ({}, 400),
           ({"Origin": "http://attacker.example"}, 403), ({"Origin": "null"}, 403),
           ({"Origin": "http://localhost:9999"}, 403),
           ({"Origin": "http://localhost", "Sec-Fetch-Site": "cross-site"}, 403)]


def test_posts_from_another_origin_are_refused(monkeypatch):
    monkeypatch.delenv("SPARSITY_LAB_ALLOWED_HOSTS", raising=False)
    client = lab.server.test_client()
    for headers, status in ORIGINS:  # 400: it got through to Dash, which refuses "{}"
        resp = client.post("/_dash-update-component", data=b"{}", content_type="application/json",
                           headers=headers)
        assert resp.status_code == status, headers


def test_unknown_component_suite_paths_are_404_known_ones_200():
    client = lab.server.test_client()
    for path in ("/_dash-component-suites/nope/x.js", "/_dash-component-suites/dash/nope.js",
                 "/_dash-component-suites/plotly/../../app.py"):
        resp = client.get(path)
        assert resp.status_code == 404, path
        assert b"registered paths" not in resp.data
    html = client.get("/").get_data(as_text=True)
    script = html.split('src="/_dash-component-suites/')[1].split('"')[0]
    assert client.get("/_dash-component-suites/" + script).status_code == 200


def test_bodies_over_the_largest_legal_upload_get_413():
    from engine.runtime.store import IMPORT_MAX_BYTES
    from engine.sparse.user_matrix import max_upload_bytes
    from engine.validate import largest_upload_bytes, max_request_bytes

    assert largest_upload_bytes() == max(IMPORT_MAX_BYTES, max_upload_bytes())
    cap = lab.server.config["MAX_CONTENT_LENGTH"]
    assert cap == max_request_bytes() >= largest_upload_bytes() * 4 // 3  # base64 of the largest file
    client = lab.server.test_client()
    legal = b'{"upload": "' + b"A" * (IMPORT_MAX_BYTES * 4 // 3) + b'"}'
    assert client.post("/_dash-update-component", data=legal,
                       content_type="application/json").status_code == 400  # read, then malformed
    # a body one byte over the cap is refused from its Content-Length, before it is read
    resp = client.post("/_dash-update-component", data=b"{}", content_type="application/json",
                       environ_overrides={"CONTENT_LENGTH": str(cap + 1)})
    assert resp.status_code == 413


def test_messages_never_show_the_install_path(monkeypatch, tmp_path):
    from pathlib import Path

    from engine.validate import relative_paths

    root = Path(lab.__file__).resolve().parent
    text = f"reference: expected a file under {root}/benchmarks/results, got {root}/x.csv"
    assert relative_paths(text) == "reference: expected a file under benchmarks/results, got x.csv"
    monkeypatch.setenv("SPARSITY_LAB_CACHE", str(tmp_path))
    assert relative_paths(f"bad {tmp_path}/runs") == "bad $SPARSITY_LAB_CACHE/runs"
    shown = {}
    monkeypatch.setattr(lab, "set_props", lambda cid, props: shown.update({cid: props}))
    lab.show_callback_error(ValueError(text))
    assert str(root) not in shown[lab.ERROR_BAR]["children"]
    with lab.server.test_request_context("/_dash-update-component", method="POST"):
        resp = lab.relative_paths_in_callbacks(lab.server.response_class(
            '{"response": "' + text + '"}', mimetype="application/json"))
    assert str(root) not in resp.get_data(as_text=True) and "benchmarks/results" in resp.get_data(as_text=True)
