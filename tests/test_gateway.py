"""The gateway's front door: every route guarded but liveness, bad input refused clearly, logs without secrets,
metrics under the monitoring track's names, tool calls audited. Faults are in test_gateway_faults.py."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
from gateway_util import HEADERS, KEY, ask, body, fake_and_gateway, gateway, lost
from pydantic import SecretStr, ValidationError

from helpers.serving import app as gw_app
from helpers.serving.app import UNGUARDED, create_app, unguarded_routes
from helpers.serving.server import configure_logging
from helpers.serving.settings import GatewaySettings, read_key_file, write_key_file


def _settings(**kw):
    return GatewaySettings(upstreams=["http://127.0.0.1:9/v1"], api_keys=[SecretStr(KEY)], **kw)


def test_every_route_but_liveness_needs_the_key():
    app = create_app(_settings())
    assert unguarded_routes(app) == sorted(UNGUARDED) == ["/healthz"], (
        "a route without the key check: add it to the guarded router in helpers/serving/app.py")
    paths = {r.path for r in app.routes}
    assert {"/v1/chat/completions", "/v1/models", "/metrics", "/readyz"} <= paths
    assert not {"/docs", "/redoc", "/openapi.json"} & paths, "API docs are off (they would be unguarded)"
    with fake_and_gateway() as (_, url):
        for route in app.routes:
            if route.path in UNGUARDED:
                continue
            for method in route.methods:
                r = httpx.request(method, url + route.path, json={}, trust_env=False)
                assert r.status_code == 401, f"{method} {route.path} answered {r.status_code} without a key"
                assert r.headers["www-authenticate"] == "Bearer"
        assert httpx.get(url + "/healthz", trust_env=False).json() == {"status": "ok"}


def test_a_new_unguarded_route_is_caught():
    app = create_app(_settings())

    @app.get("/debug")
    async def debug() -> dict:
        return {}

    assert unguarded_routes(app) == ["/healthz", "/debug"]


def test_keys_are_compared_in_constant_time_against_every_key(monkeypatch):
    calls = []
    real = gw_app.hmac.compare_digest
    monkeypatch.setattr(gw_app.hmac, "compare_digest", lambda a, b: calls.append(1) or real(a, b))
    state = gw_app.GatewayState(GatewaySettings(upstreams=["http://127.0.0.1:9/v1"],
                                                api_keys=[SecretStr(KEY), SecretStr("x" * 20), SecretStr("y" * 20)]))
    assert state.check_key(KEY) and len(calls) == 3, "no early exit: every key is compared"
    assert not state.check_key(KEY[:-1] + "X")


def test_no_key_wrong_key_and_bad_bodies_get_clear_errors():
    with fake_and_gateway(max_body_bytes=2048) as (up, url):
        c = httpx.Client(base_url=url, trust_env=False)
        r = c.post("/v1/chat/completions", json=body())
        assert (r.status_code, r.json()["error"]["code"]) == (401, "missing_api_key")
        assert "Authorization: Bearer" in r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json=body(), headers={"Authorization": "Bearer " + "z" * 24})
        assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_api_key")
        r = c.post("/v1/chat/completions", json=body("x" * 5000), headers=HEADERS)
        assert (r.status_code, r.json()["error"]["code"]) == (413, "body_too_large")

        def chunks():  # no Content-Length: the limit holds while reading
            for _ in range(10):
                yield b" " * 1000

        r = c.post("/v1/chat/completions", content=chunks(), headers=HEADERS)
        assert r.status_code == 413
        r = c.post("/v1/chat/completions", content=b"{not json", headers=HEADERS)
        assert (r.status_code, r.json()["error"]["code"]) == (400, "invalid_json")
        r = c.post("/v1/chat/completions", json={"model": "fake-slm", "messages": []}, headers=HEADERS)
        assert r.status_code == 400 and "messages" in r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json=body(max_tokens=10**6), headers=HEADERS)
        assert r.status_code == 400 and "max_tokens" in r.json()["error"]["message"]
        r = c.post("/v1/chat/completions", json={**body(), "stream": "false"}, headers=HEADERS)
        assert r.status_code == 400 and "'stream' must be true or false" in r.json()["error"]["message"]
        # a key given twice: what goes upstream is what the gateway checked (Python keeps the last), never the
        # client's bytes, which a parser that keeps the first would read as max_tokens=1000000
        twice = (b'{"model": "fake-slm", "max_tokens": 1000000, "max_tokens": 8, '
                 b'"messages": [{"role": "user", "content": "hi"}]}')
        r = c.post("/v1/chat/completions", content=twice, headers={**HEADERS, "Content-Type": "application/json"})
        assert r.status_code == 200 and up.last_body["max_tokens"] == 8 and b"1000000" not in up.last_raw
        r = c.post("/v1/chat/completions", json={**body(), "model": "gpt-9"}, headers=HEADERS)
        assert (r.status_code, r.json()["error"]["code"]) == (404, "model_not_found")
        assert "fake-slm" in r.json()["error"]["message"]
        assert up.requests == 1, "nothing refused reached the upstream (the one request is the key given twice)"
        assert not lost(ask(url)), "and a good request still gets its whole answer"


def test_every_upstream_down_is_503_with_retry_after():
    with gateway(["http://127.0.0.1:9/v1", "http://127.0.0.1:7/v1"]) as url:
        for path, method in (("/v1/models", "GET"), ("/v1/chat/completions", "POST")):
            r = httpx.request(method, url + path, json=body(), headers=HEADERS, trust_env=False)
            assert (r.status_code, r.json()["error"]["code"]) == (503, "no_upstream")
            assert int(r.headers["retry-after"]) >= 1
        assert httpx.get(url + "/readyz", headers=HEADERS, trust_env=False).status_code == 503
        assert httpx.get(url + "/healthz", trust_env=False).status_code == 200, "liveness is not readiness"


def test_logs_carry_a_request_id_and_no_key_or_prompt_unless_opted_in(tmp_path):
    secret_prompt = "my card number is 4111 1111 1111 1111"
    for opt_in in (False, True):
        buf = io.StringIO()
        configure_logging(buf)
        try:
            with fake_and_gateway(log_content=opt_in, audit_path=tmp_path / f"audit-{opt_in}.jsonl") as (_, url):
                seen = ask(url, secret_prompt)
                ask(url, "what time is it", stream=True)
                httpx.post(url + "/v1/chat/completions", json=body(),
                           headers={"Authorization": "Bearer wrong-key-1234"}, trust_env=False)
        finally:
            logging.getLogger("edge_slm.gateway").handlers.clear()
        text = buf.getvalue()
        records = [json.loads(line) for line in text.splitlines()]
        assert KEY not in text and "wrong-key-1234" not in text, "keys never reach the logs"
        assert (secret_prompt in text) is opt_in, "prompts reach the logs only when log_content is on"
        req = [r for r in records if r["message"] == "request"]
        assert req[0]["request_id"] == seen["headers"]["x-request-id"] and req[0]["status"] == 200
        assert {r["status"] for r in req} == {200, 401}
        audit = [r for r in records if r["message"] == "tool_call"]
        assert len(audit) == 1 and audit[0]["tool"] == "get_current_time" and len(audit[0]["arguments_sha256"]) == 64
        assert ("arguments" in audit[0]) is opt_in
        assert json.loads((tmp_path / f"audit-{opt_in}.jsonl").read_text())["tool"] == "get_current_time"


def test_metrics_use_the_monitoring_names_and_need_the_key():
    with fake_and_gateway(["status_500"]) as (_, url):
        ask(url)
        ask(url, stream=True)
        assert httpx.get(url + "/metrics", trust_env=False).status_code == 401
        text = httpx.get(url + "/metrics", headers=HEADERS, trust_env=False).text
    assert 'gen_ai_server_request_duration_seconds_count{error_type="",gen_ai_operation_name="chat",' \
           'gen_ai_provider_name="edge_slm_gateway",gen_ai_request_model="fake-slm"} 2.0' in text
    assert "gen_ai_server_time_to_first_token_seconds_bucket" in text
    assert 'edge_slm_requests_total{gen_ai_operation_name="chat",gen_ai_provider_name="edge_slm_gateway",' \
           'gen_ai_request_model="fake-slm",outcome="ok"} 2.0' in text
    assert 'edge_slm_gateway_upstream_attempts_total{outcome="status"' in text
    assert "edge_slm_requests_waiting 0.0" in text


def test_settings_default_to_loopback_and_refuse_weak_or_missing_keys(tmp_path):
    assert _settings().host == "127.0.0.1"
    with pytest.raises(ValidationError, match="at least 16"):
        GatewaySettings(upstreams=["http://127.0.0.1:9/v1"], api_keys=[SecretStr("short")])
    with pytest.raises(ValidationError, match="not a URL"):
        GatewaySettings(upstreams=["127.0.0.1:9"], api_keys=[SecretStr(KEY)])
    with pytest.raises(FileNotFoundError, match="token_urlsafe"):
        read_key_file(tmp_path / "nope")
    key = write_key_file(tmp_path / "key")
    assert read_key_file(tmp_path / "key").get_secret_value() == key.get_secret_value()
    assert (tmp_path / "key").stat().st_mode & 0o077 == 0, "the key file is private to its owner"


def test_gateway_command_refuses_bad_arguments_in_one_line(tmp_path, capsys):
    from helpers.cli import main

    assert main(["gateway", "--upstream", "http://127.0.0.1:9/v1", "--api-key-file", str(tmp_path / "k")]) == 2
    assert "No API key file" in capsys.readouterr().err
    (tmp_path / "k").write_text("short\n")
    assert main(["gateway", "--upstream", "http://127.0.0.1:9/v1", "--api-key-file", str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: api_keys") and len(err.strip().splitlines()) == 1


def test_the_passthrough_forwards_as_it_came_and_only_with_the_key(tmp_path):
    """`gateway --passthrough`, as notebook 21 starts it: a real process, the key checked, the answer unchanged."""
    from helpers.serving import GatewayProcess
    from helpers.serving.fake_upstream import FakeUpstream, fake_answer

    key_file = tmp_path / "key"
    key = write_key_file(key_file).get_secret_value()
    with FakeUpstream() as up, GatewayProcess([up.url], key_file, log_path=tmp_path / "log",
                                              args=["--passthrough"]) as bare:
        sent = body("measure the hop")
        direct = httpx.post(up.url + "/chat/completions", json=sent, trust_env=False, timeout=10)
        through = httpx.post(bare.url + "/v1/chat/completions", json=sent, trust_env=False, timeout=10,
                             headers={"Authorization": f"Bearer {key}"})
        refused = httpx.post(bare.url + "/v1/chat/completions", json=sent, trust_env=False, timeout=10,
                             headers={"Authorization": "Bearer not-the-key"})
    assert through.status_code == 200 and through.json()["choices"] == direct.json()["choices"]
    assert through.json()["choices"][0]["message"]["content"] == fake_answer(sent["messages"])
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "invalid_api_key"
    assert "passthrough" in (tmp_path / "log").read_text(), "the process says it is not a gateway"
