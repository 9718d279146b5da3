"""The shell's safety settings: headers, error handler, defaults."""
import app as lab


def test_security_headers_on_every_response():
    client = lab.server.test_client()
    resp = client.get("/")
    assert resp.status_code == 200
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    csp = resp.headers["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in csp and "object-src 'none'" in csp


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
