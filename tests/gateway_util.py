"""Shared pieces of the gateway tests: a fake upstream plus a gateway on free loopback ports, and a client
that reports what it saw (status, assembled answer, error code, whether the stream ended with [DONE])."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
from pydantic import SecretStr

from helpers.serving.app import create_app
from helpers.serving.fake_upstream import FAKE_MODEL, FakeUpstream, fake_answer
from helpers.serving.server import ServerThread
from helpers.serving.settings import GatewaySettings

KEY = "test-key-0123456789abcdef"
HEADERS = {"Authorization": f"Bearer {KEY}"}


@contextmanager
def gateway(upstreams: list[str], extra_keys: tuple[str, ...] = (), **settings: Any) -> Iterator[str]:
    """A gateway in a thread on a free port (it takes KEY and `extra_keys`); yields its base URL."""
    cfg = GatewaySettings(upstreams=upstreams, api_keys=[SecretStr(k) for k in (KEY, *extra_keys)], **settings)
    srv = ServerThread(create_app(cfg)).start()
    try:
        yield f"http://127.0.0.1:{srv.port}"
    finally:
        srv.stop()


@contextmanager
def fake_and_gateway(script: list[str] | None = None, fake: dict | None = None, **settings: Any):
    with FakeUpstream(script, **(fake or {})) as up, gateway([up.url], **settings) as url:
        yield up, url


def body(text: str = "hello small world", stream: bool = False, **extra: Any) -> dict[str, Any]:
    return {"model": FAKE_MODEL, "messages": [{"role": "user", "content": text}], "stream": stream, **extra}


def ask(url: str, text: str = "hello small world", stream: bool = False, timeout: float = 10.0,
        headers: dict | None = None) -> dict[str, Any]:
    """One request as a client sees it: status, answer text, error code, [DONE] seen, and response headers."""
    seen: dict[str, Any] = {"status": None, "answer": None, "error": None, "done": False, "headers": {}}
    with httpx.Client(timeout=timeout, trust_env=False) as c, \
            c.stream("POST", url + "/v1/chat/completions", json=body(text, stream),
                     headers=HEADERS if headers is None else headers) as r:
            seen["status"], seen["headers"] = r.status_code, dict(r.headers)
            if r.status_code != 200:
                r.read()
                seen["error"] = r.json()["error"]["code"]
                return seen
            if not stream:
                r.read()
                seen["answer"], seen["done"] = r.json()["choices"][0]["message"]["content"], True
                return seen
            text_out = ""
            for line in r.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    seen["done"] = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    seen["error"] = chunk["error"]["code"]
                    break
                for ch in chunk.get("choices") or []:
                    text_out += (ch.get("delta") or {}).get("content") or ""
            seen["answer"] = text_out
    return seen


def lost(seen: dict[str, Any], text: str = "hello small world") -> bool:
    """An accepted answer (200, no error) that is missing, cut or wrong: what must never happen."""
    return seen["status"] == 200 and not seen["error"] and (not seen["done"] or seen["answer"] != fake_answer(
        [{"role": "user", "content": text}]))
