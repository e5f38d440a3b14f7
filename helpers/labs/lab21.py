"""Auto-checks for lab 21 (the gateway): each check tries the learner's code on cases that catch the usual
mistakes, and says what is wrong. Every check raises AssertionError with a hint, or prints `PASS: ...`.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

# situation -> (status, whether the answer carries Retry-After); the gateway's answers (notebook 21)
STATUS_TABLE: dict[str, tuple[int, bool]] = {
    "no_key": (401, False),
    "wrong_key": (401, False),
    "rate_limited": (429, True),
    "queue_full": (503, True),
    "every_upstream_down": (503, True),
    "deadline_passed": (504, False),
    "body_too_large": (413, False),
    "not_json": (400, False),
    "unknown_model": (404, False),
    "upstreams_answered_garbage": (502, False),
}
_HINTS = {
    408: "408 means the CLIENT was too slow to send its request; when the upstream is too slow, a gateway says 504",
    500: "500 says the gateway itself is broken; name what happened (401, 429, 503, 504 ...)",
    403: "403 is for a known caller without permission; a missing or wrong key is 401 with WWW-Authenticate",
    422: "422 is FastAPI's default for a body that fails a schema; a body that is not JSON at all is 400",
    200: "never answer 200 to a request that did not get its answer (the course's placeholder did)",
}


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def check_key_check(fn: Callable[[str, list[str]], bool], seed: int = 123) -> None:
    """Lab 21, task 1: right keys pass, near misses fail, and every key is compared with hmac.compare_digest."""
    import hmac
    import secrets

    rng = random.Random(seed)
    keys = [secrets.token_urlsafe(24) for _ in range(3)]
    calls: list[int] = []
    real = hmac.compare_digest

    def counting(a: Any, b: Any) -> bool:
        calls.append(1)
        return real(a, b)

    hmac.compare_digest, secrets.compare_digest = counting, counting
    try:
        for k in keys:
            calls.clear()
            assert fn(k, keys) is True, "a configured key was refused"
            assert len(calls) == len(keys), (
                f"{len(calls)} calls to hmac.compare_digest for {len(keys)} keys: compare the token with EVERY key "
                "(no `==`, no early return on the first match), so the time taken does not tell which key matched")
        near = [keys[0][:-1], keys[0] + "x", "", " " + keys[1], keys[2].upper() if keys[2] != keys[2].upper() else "z",
                "".join(rng.sample(keys[1], len(keys[1])))]
        for bad in near:
            if bad in keys:
                continue
            assert fn(bad, keys) is False, f"{bad!r} was accepted but is not a key"
        assert fn("anything", []) is False, "with no keys configured, nothing may pass"
    finally:
        hmac.compare_digest = secrets.compare_digest = real
    _ok("right keys pass, near misses fail, every key compared in constant time")


def check_status_for(fn: Callable[[str], tuple[int, bool]]) -> None:
    """Lab 21, task 2: the status (and Retry-After) a client gets in each situation."""
    for situation, (status, retry) in STATUS_TABLE.items():
        got = fn(situation)
        assert isinstance(got, tuple) and len(got) == 2, f"return (status, retry_after) for {situation!r}, got {got!r}"
        assert got[0] == status, (f"{situation}: answered {got[0]}, expected {status}. "
                                  + _HINTS.get(got[0], "see the table in notebook 21, section 'What a client sees'"))
        assert bool(got[1]) == retry, (f"{situation}: Retry-After {'missing' if retry else 'not expected'}: "
                                       "send it when waiting and asking again can succeed (429, 503)")
    _ok(f"{len(STATUS_TABLE)} situations, each with the right status and Retry-After")


def check_unguarded(fn: Callable[[Any], list[str]]) -> None:
    """Lab 21, task 3: find every route of an app that does not depend on the key check."""
    from fastapi import APIRouter, Depends, FastAPI
    from fastapi.routing import APIRoute  # noqa: F401 (the learner's code may use it)

    async def require_key() -> str:
        return "k"

    async def via_key(k: str = Depends(require_key)) -> str:
        return k

    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> dict:
        return {}

    @app.get("/v1/models", dependencies=[Depends(require_key)])
    async def models() -> dict:
        return {}

    @app.post("/v1/chat/completions")
    async def chat(k: str = Depends(via_key)) -> dict:  # guarded one level down
        return {}

    @app.get("/debug/config")
    async def debug() -> dict:  # forgotten
        return {}

    @app.get("/metrics", dependencies=[Depends(lambda: None)])
    async def metrics() -> dict:  # depends on something, but not the key
        return {}

    expected = ["/healthz", "/debug/config", "/metrics"]
    got = fn(app)
    assert sorted(got) == sorted(expected), (
        f"found {sorted(got)}, expected {sorted(expected)}. Look at each route's `dependant.dependencies`, "
        "recursively (a dependency can itself depend on the key check), and match the key check by its function")
    router = APIRouter()

    @router.get("/admin")
    async def admin() -> dict:
        return {}

    app.include_router(router)
    got = fn(app)
    assert "/admin" in got or any("admin" in str(x) for x in got) or len(got) > len(expected), (
        "a route added through include_router went unseen: a route you cannot inspect must count as unguarded")
    _ok("every unguarded route found, including one added later")
