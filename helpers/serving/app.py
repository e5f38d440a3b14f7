"""The gateway: an OpenAI-compatible front door for one or more model servers (notebook 21).

`create_app(settings)` returns a FastAPI app. Its policy, in the order a request meets it:

1. `/healthz` is the only route without a key (a bare liveness probe that says nothing about upstreams).
2. Every other route needs `Authorization: Bearer KEY`, compared in constant time (`hmac.compare_digest`).
3. Per key, a leaky-bucket rate limit (`aiolimiter`; the notation of `limits`, "20/second"): past it, 429 with
   `Retry-After`.
4. The body: at most `max_body_bytes` (413), JSON (400), a known model (404).
5. A bounded queue in front of `concurrency` upstream slots: when it is full, 503 with `Retry-After`.
6. A deadline per request: past it, 504 (before the first byte) or an error event (after).
7. Retries with backoff (`tenacity`), each to the next upstream, only before the first byte reaches the client.
8. Streams are forwarded chunk by chunk; a stream that breaks ends with an explicit error event, never `[DONE]`.
9. A client that disconnects cancels its upstream request.
"""


import asyncio
import hmac
import json
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from helpers.serving.call import Call
from helpers.serving.policy import PROVIDER, UNGUARDED, Admission, GatewayError, error_body, key_id, log_request
from helpers.serving.settings import GatewaySettings
from helpers.serving.upstream import UpstreamPool

__all__ = ["PROVIDER", "UNGUARDED", "GatewayError", "GatewayState", "create_app", "unguarded_routes"]


class GatewayState:
    """What one gateway process holds: settings, upstream pool, admission, rate limiter, metrics."""

    def __init__(self, settings: GatewaySettings) -> None:
        # a leaky bucket per key, all on the event loop. (`limits`' own asyncio storage hands every expiry to a
        # worker thread, and its synchronous one starts a timer thread: each a thread hop per request, measured
        # at 0.2 to 0.5 ms of a 2-core machine's time)
        from limits import parse
        from prometheus_client import Counter

        from helpers.runtimes.metrics import ServerMetrics

        self.settings = settings
        self.keys = [k.get_secret_value().encode() for k in settings.api_keys]
        self.metrics = ServerMetrics(PROVIDER)
        reg = self.metrics.registry
        self.rejected = Counter("edge_slm_gateway_rejected", "Requests refused before reaching an upstream, by reason.",
                                ["reason"], registry=reg)
        self.attempts = Counter("edge_slm_gateway_upstream_attempts",
                                "Attempts sent upstream, by upstream and outcome.", ["upstream", "outcome"],
                                registry=reg)
        self.stream_errors = Counter("edge_slm_gateway_stream_errors",
                                     "Streams ended with an error event after the first byte, by kind.", ["kind"],
                                     registry=reg)
        self.tool_calls = Counter("edge_slm_gateway_tool_calls", "Tool calls in answers (audited).", ["tool"],
                                  registry=reg)
        self.disconnects = Counter("edge_slm_gateway_client_disconnects",
                                   "Requests whose client left before the answer; their upstream was cancelled.",
                                   registry=reg)
        self.admission = Admission(settings.concurrency, settings.max_queue, self.metrics)
        self.limit = parse(settings.rate_limit)
        self.buckets: dict[str, Any] = {}
        self.pool: UpstreamPool | None = None
        self.upstream_headers = ({"Authorization": f"Bearer {settings.upstream_api_key.get_secret_value()}"}
                                 if settings.upstream_api_key else {})

    def bucket(self, kid: str) -> Any:
        """The key's bucket: `amount` requests at once, refilled at `amount` per period."""
        from aiolimiter import AsyncLimiter

        if kid not in self.buckets:
            self.buckets[kid] = AsyncLimiter(self.limit.amount, self.limit.get_expiry())
        return self.buckets[kid]

    def check_key(self, token: str) -> bool:
        """Constant-time comparison against every configured key (no early exit on the first match)."""
        ok = False
        for k in self.keys:
            ok |= hmac.compare_digest(token.encode(), k)
        return ok


def create_app(settings: GatewaySettings) -> Any:
    """The gateway as a FastAPI app (serve it with uvicorn; `python -m helpers gateway` does)."""
    from asgi_correlation_id import CorrelationIdMiddleware
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse

    state = GatewayState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        import aiohttp

        # aiohttp, not httpx, speaks to the upstreams: with its C parser a request cost about 0.3-0.4 ms less
        # CPU than with httpx's AsyncClient, measured side by side against a zero-latency double
        n = settings.concurrency * len(settings.upstreams) + 4
        client = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=n), trust_env=False,
                                       read_bufsize=2**18,  # stream lines (events) up to 512 KiB
                                       timeout=aiohttp.ClientTimeout(total=settings.deadline_s,
                                                                     sock_connect=settings.connect_timeout_s))
        state.pool = UpstreamPool(settings.upstreams, client, cooldown_s=settings.upstream_cooldown_s,
                                  models_ttl_s=settings.models_ttl_s, guard=state.admission.sem)
        try:
            yield
        finally:
            try:
                await state.pool.aclose()
            finally:
                await client.close()

    app = FastAPI(title="edge-slm gateway", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    app.state.gateway = state

    @app.exception_handler(GatewayError)
    async def _refused(request: Request, exc: GatewayError) -> JSONResponse:
        if not getattr(request.state, "logged", False):  # refused before a Call logged it
            state.rejected.labels(exc.code).inc()
            log_request(request, exc.status, exc.code)
        return JSONResponse(error_body(str(exc), exc.code), status_code=exc.status, headers=exc.headers)

    async def require_key(request: Request) -> str:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise GatewayError(401, "no API key: send `Authorization: Bearer <key>` (the key is in the gateway's "
                               "--api-key-file)", "missing_api_key", {"WWW-Authenticate": "Bearer"})
        if not state.check_key(token.strip()):
            raise GatewayError(401, "wrong API key: use the key in the gateway's --api-key-file", "invalid_api_key",
                               {"WWW-Authenticate": "Bearer"})
        request.state.key_id = key_id(token.strip())
        return request.state.key_id

    async def rate_limited(request: Request, kid: str = Depends(require_key)) -> str:
        bucket = state.bucket(kid)
        if not bucket.has_capacity():  # full: one request's room drains in period / amount seconds
            wait = max(1, math.ceil(bucket.time_period / bucket.max_rate))
            raise GatewayError(429, f"rate limit of {settings.rate_limit} per key reached: retry in {wait} s",
                               "rate_limited", {"Retry-After": str(wait)})
        await bucket.acquire()  # returns at once: there is room, and nothing ran since the check
        return kid

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness only: the process answers. Says nothing about upstreams or keys."""
        return {"status": "ok"}

    # every other route carries the key check itself (not through a router: `app.routes` then lists each route
    # with its dependencies, and `unguarded_routes` can prove that none was forgotten)
    guard = [Depends(require_key)]
    limited = [Depends(rate_limited)]  # rate_limited depends on require_key: the key is checked first, once

    @app.get("/readyz", dependencies=guard)
    async def readyz() -> JSONResponse:
        by_model = await state.pool.refresh_models(force=True)
        ok = bool(by_model)
        return JSONResponse({"ready": ok, "models": sorted(by_model)}, status_code=200 if ok else 503)

    @app.get("/metrics", dependencies=guard)
    async def metrics() -> Response:
        body, ctype = state.metrics.exposition()
        return Response(body, media_type=ctype)

    @app.get("/v1/models", dependencies=limited)
    async def models() -> dict[str, Any]:
        by_model = await state.pool.refresh_models()
        if not by_model:
            raise _all_down()
        return {"object": "list",
                "data": [{"id": m, "object": "model", "owned_by": PROVIDER} for m in sorted(by_model)]}

    @app.post("/v1/chat/completions", dependencies=limited)
    async def chat_completions(request: Request) -> Response:
        deadline = time.monotonic() + settings.deadline_s
        payload = _check_payload(await _read_body(request, settings.max_body_bytes), settings)
        model, stream = payload["model"], bool(payload.get("stream"))
        try:  # asking the upstreams for their models waits for a free slot: within the request's deadline
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                by_model = await state.pool.refresh_models()
                if model not in by_model:
                    by_model = await state.pool.refresh_models(force=True)
        except TimeoutError:
            raise GatewayError(504, f"deadline of {settings.deadline_s:g} s passed while the upstreams were asked "
                               "for their models (every slot was busy)", "deadline_exceeded") from None
        if not by_model:
            raise _all_down()
        if model not in by_model:
            raise GatewayError(404, f"unknown model {model!r}: this gateway serves {sorted(by_model)} "
                               "(GET /v1/models lists them)", "model_not_found")
        call = Call(state, request, payload, deadline, by_model[model])
        if stream:
            return await call.stream(StreamingResponse)
        return await call.complete(JSONResponse)

    return app


def unguarded_routes(app: Any, dependency_name: str = "require_key") -> list[str]:
    """Paths of the app's routes that do not depend on the key check (should be exactly UNGUARDED). A route
    of any other kind (a mounted app, an included router) counts as unguarded: the check fails closed."""
    from fastapi.routing import APIRoute

    def needs(dep: Any) -> bool:
        return any(getattr(d.call, "__name__", "") == dependency_name or needs(d) for d in dep.dependencies)

    out = []
    for route in app.routes:
        if not isinstance(route, APIRoute) or not needs(route.dependant):
            out.append(getattr(route, "path", repr(route)))
    return out


def _all_down() -> GatewayError:
    return GatewayError(503, "every upstream is down: none answered /models; start one or check --upstream",
                        "no_upstream", {"Retry-After": "2"})


async def _read_body(request: Any, limit: int) -> bytes:
    """The body, refused with 413 past `limit` bytes (checked on Content-Length and while reading)."""
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise GatewayError(413, f"request body of {declared} bytes is over the limit of {limit} bytes: "
                           "send fewer or shorter messages", "body_too_large")
    body = bytearray()
    async for part in request.stream():
        body += part
        if len(body) > limit:
            raise GatewayError(413, f"request body is over the limit of {limit} bytes: send fewer or shorter "
                               "messages", "body_too_large")
    return bytes(body)


def _check_payload(body: bytes, settings: GatewaySettings) -> dict[str, Any]:
    """A chat request, checked enough to refuse clearly: JSON object, model, messages, max_tokens."""
    try:
        payload = json.loads(body)
    except ValueError as exc:
        raise GatewayError(400, f"request body is not JSON ({exc.__class__.__name__}: {exc}); send "
                           "Content-Type: application/json with an OpenAI chat request", "invalid_json")
    if not isinstance(payload, dict):
        raise GatewayError(400, "request body must be a JSON object with 'model' and 'messages'", "invalid_request")
    if not isinstance(payload.get("model"), str) or not payload["model"]:
        raise GatewayError(400, "'model' is required: GET /v1/models lists the models", "invalid_request")
    msgs = payload.get("messages")
    if not isinstance(msgs, list) or not msgs or not all(isinstance(m, dict) and "role" in m for m in msgs):
        raise GatewayError(400, "'messages' must be a non-empty list of {role, content} objects", "invalid_request")
    if "stream" in payload and not isinstance(payload["stream"], bool):
        raise GatewayError(400, "'stream' must be true or false", "invalid_request")
    mt = payload.get("max_tokens")
    if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or not 0 < mt <= settings.max_tokens_cap):
        raise GatewayError(400, f"'max_tokens' must be an integer from 1 to {settings.max_tokens_cap}",
                           "invalid_request")
    return payload


