"""The gateway: an OpenAI-compatible front door for one or more model servers (notebook 21).

`create_app(settings)` returns a FastAPI app. Its policy, in the order a request meets it:

1. `/healthz` is the only route without a key (a bare liveness probe that says nothing about upstreams).
2. Every other route needs `Authorization: Bearer KEY`, compared in constant time (`hmac.compare_digest`).
3. Per key, a moving-window rate limit (`limits`): past it, 429 with `Retry-After`.
4. The body: at most `max_body_bytes` (413), JSON (400), a known model (404).
5. A bounded queue in front of `concurrency` upstream slots: when it is full, 503 with `Retry-After`.
6. A deadline per request: past it, 504 (before the first byte) or an error event (after).
7. Retries with backoff (`tenacity`), each to the next upstream, only before the first byte reaches the client.
8. Streams are forwarded chunk by chunk; a stream that breaks ends with an explicit error event, never `[DONE]`.
9. A client that disconnects cancels its upstream request.
"""


import asyncio
import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

from helpers.serving.settings import GatewaySettings
from helpers.serving.upstream import (
    DONE,
    UpstreamError,
    UpstreamPool,
    chunk_output,
    classify_status,
    merge_tool_deltas,
    parse_completion,
    sse_events,
)

log = logging.getLogger("edge_slm.gateway")
PROVIDER = "edge_slm_gateway"
UNGUARDED = frozenset({"/healthz"})  # the only route a request without a key may reach


class GatewayError(Exception):
    """A refusal the client sees as an OpenAI-style error body with this status and headers."""

    def __init__(self, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.headers = status, code, headers or {}


def error_body(message: str, code: str) -> dict[str, Any]:
    """The error shape OpenAI clients understand (`openai.APIStatusError.body`)."""
    return {"error": {"message": message, "type": "gateway_error", "code": code}}


def key_id(key: str) -> str:
    """A short, non-reversible name for a key: what logs and rate limits use instead of the key."""
    return hashlib.sha256(key.encode()).hexdigest()[:10]


class Admission:
    """`concurrency` slots to the upstreams and at most `max_queue` requests waiting for one."""

    def __init__(self, concurrency: int, max_queue: int, metrics: Any) -> None:
        self.sem = asyncio.Semaphore(concurrency)
        self.concurrency, self.max_queue, self.waiting = concurrency, max_queue, 0
        self.metrics = metrics
        self.service_s = 0.5  # a running estimate of one request's time, for Retry-After

    def retry_after(self) -> int:
        return max(1, math.ceil((self.waiting + 1) * self.service_s / self.concurrency))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self.sem.locked() and self.waiting >= self.max_queue:
            raise GatewayError(503, f"the gateway is at capacity ({self.waiting} requests waiting): retry after "
                               "the Retry-After seconds", "queue_full", {"Retry-After": str(self.retry_after())})
        self.waiting += 1
        self.metrics.waiting.set(self.waiting)
        try:
            await self.sem.acquire()
        finally:
            self.waiting -= 1
            self.metrics.waiting.set(self.waiting)
        t0 = time.monotonic()
        try:
            yield
        finally:
            self.sem.release()
            self.service_s = 0.8 * self.service_s + 0.2 * (time.monotonic() - t0)


class GatewayState:
    """What one gateway process holds: settings, upstream pool, admission, rate limiter, metrics."""

    def __init__(self, settings: GatewaySettings) -> None:
        # the synchronous in-memory limiter: microseconds per check (the asyncio variant hands its expiry work to
        # a thread on every hit, which costs more than the check itself)
        from limits import parse
        from limits.storage import MemoryStorage
        from limits.strategies import MovingWindowRateLimiter
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
        self.limiter = MovingWindowRateLimiter(MemoryStorage())
        self.pool: UpstreamPool | None = None
        self.upstream_headers = ({"Authorization": f"Bearer {settings.upstream_api_key.get_secret_value()}"}
                                 if settings.upstream_api_key else {})

    def check_key(self, token: str) -> bool:
        """Constant-time comparison against every configured key (no early exit on the first match)."""
        ok = False
        for k in self.keys:
            ok |= hmac.compare_digest(token.encode(), k)
        return ok


def create_app(settings: GatewaySettings) -> Any:
    """The gateway as a FastAPI app (serve it with uvicorn; `python -m helpers gateway` does)."""
    import httpx
    from asgi_correlation_id import CorrelationIdMiddleware
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse

    state = GatewayState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        n = settings.concurrency * len(settings.upstreams) + 4
        client = httpx.AsyncClient(
            timeout=httpx.Timeout(settings.deadline_s, connect=settings.connect_timeout_s),
            limits=httpx.Limits(max_connections=n, max_keepalive_connections=n), trust_env=False)
        state.pool = UpstreamPool(settings.upstreams, client, cooldown_s=settings.upstream_cooldown_s)
        yield
        await client.aclose()

    app = FastAPI(title="edge-slm gateway", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.add_middleware(CorrelationIdMiddleware, header_name="X-Request-ID")
    app.state.gateway = state

    @app.exception_handler(GatewayError)
    async def _refused(request: Request, exc: GatewayError) -> JSONResponse:
        if not getattr(request.state, "logged", False):  # refused before a _Call logged it
            state.rejected.labels(exc.code).inc()
            _log_request(request, exc.status, exc.code)
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
        if not state.limiter.hit(state.limit, kid):
            reset, _ = state.limiter.get_window_stats(state.limit, kid)
            wait = max(1, math.ceil(reset - time.time()))
            raise GatewayError(429, f"rate limit of {settings.rate_limit} per key reached: retry in {wait} s",
                               "rate_limited", {"Retry-After": str(wait)})
        return kid

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        """Liveness only: the process answers. Says nothing about upstreams or keys."""
        return {"status": "ok"}

    # every other route carries the key check itself (not through a router: `app.routes` then lists each route
    # with its dependencies, and `unguarded_routes` can prove that none was forgotten)
    guard = [Depends(require_key)]
    limited = [*guard, Depends(rate_limited)]

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
        by_model = await state.pool.refresh_models()
        if model not in by_model:
            by_model = await state.pool.refresh_models(force=True)
        if not by_model:
            raise _all_down()
        if model not in by_model:
            raise GatewayError(404, f"unknown model {model!r}: this gateway serves {sorted(by_model)} "
                               "(GET /v1/models lists them)", "model_not_found")
        call = _Call(state, request, payload, deadline, by_model[model])
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
    mt = payload.get("max_tokens")
    if mt is not None and (not isinstance(mt, int) or isinstance(mt, bool) or not 0 < mt <= settings.max_tokens_cap):
        raise GatewayError(400, f"'max_tokens' must be an integer from 1 to {settings.max_tokens_cap}",
                           "invalid_request")
    return payload


def _log_request(request: Any, status: int, outcome: str, **fields: Any) -> None:
    """One JSON log record per request: ids, status, outcome, timings; no key, no prompt (unless opted in)."""
    from asgi_correlation_id import correlation_id

    log.info("request", extra={"request_id": correlation_id.get(), "key_id": getattr(request.state, "key_id", None),
                               "path": request.url.path, "status": status, "outcome": outcome, **fields})


class _Call:
    """One chat request's way through admission, retries and (for streams) forwarding."""

    def __init__(self, state: GatewayState, request: Any, payload: dict[str, Any], deadline: float,
                 serving: list[Any]) -> None:
        from helpers.runtimes.metrics import RequestRecord

        self.state, self.s, self.request, self.payload = state, state.settings, request, payload
        self.deadline, self.serving = deadline, serving
        self.rec = RequestRecord(model=payload["model"])
        self.tried: list[Any] = []
        self.n_attempts = 0
        self.upstream_index: int | None = None
        self.calls: dict[int, dict[str, Any]] = {}

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def _timeout(self, read: float) -> Any:
        import httpx

        left = max(0.001, self.remaining())
        return httpx.Timeout(connect=min(self.s.connect_timeout_s, left), read=min(read, left), write=min(5.0, left),
                             pool=left)

    def _pick(self) -> Any:
        cands = self.state.pool.candidates(self.serving)
        fresh = [u for u in cands if u not in self.tried]
        up = (fresh or cands)[0]
        self.tried.append(up)
        self.upstream_index = self.state.pool.upstreams.index(up)
        return up

    async def _with_retries(self, attempt_fn: Any) -> Any:
        """Attempts with exponential backoff and jitter, each on the next upstream, within the deadline."""
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

        def past_deadline(rs: Any) -> bool:
            return self.remaining() <= (getattr(rs, "upcoming_sleep", 0) or 0) + 0.01

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.s.attempts) | past_deadline, reraise=True,
            wait=wait_exponential_jitter(initial=self.s.backoff_initial_s, max=self.s.backoff_max_s,
                                         jitter=self.s.backoff_initial_s),
            retry=retry_if_exception(lambda e: isinstance(e, UpstreamError) and e.retry))
        async for attempt in retrying:
            with attempt:
                self.n_attempts += 1
                up = self._pick()
                try:
                    result = await attempt_fn(up)
                except UpstreamError as exc:
                    self.state.attempts.labels(up.url, exc.kind).inc()
                    raise
                self.state.attempts.labels(up.url, "ok").inc()
                return result
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _refusal(self, exc: BaseException) -> GatewayError:
        """What the client sees when every attempt failed before its first byte."""
        if isinstance(exc, TimeoutError):
            return GatewayError(504, f"deadline of {self.s.deadline_s:g} s passed before an upstream answered "
                                f"({self.n_attempts} attempts)", "deadline_exceeded")
        assert isinstance(exc, UpstreamError)
        if exc.kind == "status" and exc.status is not None and exc.status < 500 and exc.status != 429:
            return GatewayError(exc.status, f"upstream refused the request: {exc.body}", "upstream_refused")
        if exc.kind == "status" and exc.status == 429:
            return GatewayError(503, f"every upstream is busy (429 on {self.n_attempts} attempts)", "upstream_busy",
                                {"Retry-After": "1"})
        if exc.kind == "connect":
            return GatewayError(503, f"every upstream is down ({self.n_attempts} attempts refused)", "no_upstream",
                                {"Retry-After": str(max(1, math.ceil(self.s.upstream_cooldown_s)))})
        if exc.kind == "timeout":
            return GatewayError(504, f"upstream did not answer in time ({self.n_attempts} attempts): {exc}",
                                "upstream_timeout")
        return GatewayError(502, f"no upstream gave a valid answer in {self.n_attempts} attempts; last: {exc}",
                            "bad_upstream")

    async def _send(self, up: Any, stream: bool) -> Any:
        import httpx

        body = {**self.payload, "stream": stream}
        req = self.state.pool.client.build_request(
            "POST", up.url + "/chat/completions", json=body, headers=self.state.upstream_headers,
            timeout=self._timeout(self.s.read_gap_s if stream else self.remaining()))
        try:
            resp = await self.state.pool.client.send(req, stream=True)
        except httpx.ConnectError as exc:
            self.state.pool.mark_down(up)
            raise UpstreamError("connect", f"cannot connect to upstream {up.url} ({exc})", up.url)
        except httpx.TimeoutException as exc:
            raise UpstreamError("timeout", f"upstream {up.url} timed out ({type(exc).__name__})", up.url)
        except httpx.HTTPError as exc:
            raise UpstreamError("broken", f"upstream {up.url} broke the connection ({type(exc).__name__})", up.url)
        return resp

    async def _attempt_complete(self, up: Any) -> dict[str, Any]:
        import httpx

        resp = await self._send(up, stream=False)
        try:
            content = await resp.aread()
        except httpx.TimeoutException as exc:
            raise UpstreamError("timeout", f"upstream {up.url} timed out ({type(exc).__name__})", up.url)
        except httpx.HTTPError as exc:
            raise UpstreamError("broken", f"upstream {up.url} broke the connection ({type(exc).__name__})", up.url)
        finally:
            await resp.aclose()
        if resp.status_code != 200:
            raise classify_status(resp.status_code, content, up.url)
        return parse_completion(content, up.url)

    async def _attempt_open(self, up: Any) -> tuple[Any, Any, str]:
        import httpx

        resp = await self._send(up, stream=True)
        try:
            if resp.status_code != 200:
                raise classify_status(resp.status_code, await resp.aread(), up.url)
            events = sse_events(resp.aiter_lines(), up.url)
            raw, chunk = await anext(events)
            if raw == DONE:
                raise UpstreamError("empty", f"upstream {up.url} ended its stream before any output", up.url)
            self._account(chunk)
            return resp, events, raw
        except StopAsyncIteration:
            await resp.aclose()
            raise UpstreamError("empty", f"upstream {up.url} closed its stream before any event", up.url)
        except httpx.TimeoutException as exc:
            await resp.aclose()
            raise UpstreamError("timeout", f"upstream {up.url} sent nothing in time ({type(exc).__name__})", up.url)
        except httpx.HTTPError as exc:
            await resp.aclose()
            raise UpstreamError("broken", f"upstream {up.url} broke the connection ({type(exc).__name__})", up.url)
        except BaseException:
            await resp.aclose()
            raise

    def _account(self, chunk: dict[str, Any] | None) -> None:
        if not chunk:
            return
        text, tools = chunk_output(chunk)
        if text or tools:
            self.rec.first_token()
            self.rec.output_tokens += 1
        merge_tool_deltas(self.calls, tools)

    async def _admitted(self, stack: AsyncExitStack, work: Any) -> Any:
        """Wait for a slot (bounded queue), then run `work` with retries; all within the deadline."""
        try:
            async with asyncio.timeout(max(0.0, self.remaining())):
                await stack.enter_async_context(self.state.admission.slot())
                return await self._with_retries(work)
        except (TimeoutError, UpstreamError) as exc:
            raise self._refusal(exc) from None

    async def _unless_disconnected(self, work: Any) -> tuple[bool, Any]:
        """Run `work` (queue wait and upstream attempts) unless the client leaves first; then cancel it."""
        task = asyncio.ensure_future(work)
        watch = asyncio.ensure_future(_wait_disconnect(self.request))
        try:
            done, _ = await asyncio.wait({task, watch}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            task.cancel()
            raise
        finally:
            watch.cancel()
        if task not in done:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            self.state.disconnects.inc()
            return True, None
        return False, task.result()

    async def complete(self, json_response: Any) -> Any:
        """A non-streamed answer: retried freely (nothing reached the client yet); a disconnect cancels it."""
        self.state.metrics.running.inc()
        status, outcome = 500, "error"
        try:
            async with AsyncExitStack() as stack:
                gone, doc = await self._unless_disconnected(self._admitted(stack, self._attempt_complete))
                if gone:
                    status, outcome = 499, "client_disconnected"
                    return json_response(error_body("client disconnected", outcome), status_code=499)
            self.rec.first_token()
            usage = doc.get("usage") or {}
            self.rec.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.rec.output_tokens = int(usage.get("completion_tokens") or 0)
            for i, tc in enumerate(doc["choices"][0]["message"].get("tool_calls") or []):
                f = tc.get("function") or {}
                self.calls[i] = {"id": tc.get("id"), "name": f.get("name", ""), "arguments": f.get("arguments", "")}
            status, outcome = 200, "ok"
            return json_response(doc, headers=self._headers())
        except GatewayError as exc:
            status, outcome = exc.status, exc.code
            raise
        finally:
            self._finish(status, outcome)

    async def stream(self, streaming_response: Any) -> Any:
        """A streamed answer: retried only until its first event; then forwarded, or ended by an error event."""
        import anyio
        import httpx

        self.state.metrics.running.inc()
        stack = AsyncExitStack()
        try:
            gone, opened = await self._unless_disconnected(self._admitted(stack, self._attempt_open))
            if gone:  # the client left while queued or before the first event: nothing to forward
                await stack.aclose()
                self._finish(499, "client_disconnected")
                from fastapi.responses import Response

                return Response(status_code=499)
            resp, events, first = opened
        except GatewayError as exc:
            await stack.aclose()
            self._finish(exc.status, exc.code)
            raise
        except BaseException:
            await stack.aclose()
            self._finish(499, "client_disconnected")
            raise

        async def forward() -> AsyncIterator[bytes]:
            outcome = "ok"
            try:
                yield f"data: {first}\n\n".encode()
                while True:
                    try:
                        async with asyncio.timeout(max(0.0, self.remaining())):
                            raw, chunk = await anext(events)
                    except StopAsyncIteration:
                        outcome, msg = "ended_early", "the upstream's stream ended before [DONE]: the answer is cut"
                        break
                    except TimeoutError:
                        outcome, msg = "deadline_exceeded", f"deadline of {self.s.deadline_s:g} s passed mid-stream"
                        break
                    except UpstreamError as exc:
                        outcome, msg = exc.kind, str(exc)
                        break
                    except httpx.HTTPError as exc:  # read errors: the upstream stalled or broke the connection
                        stalled = "Timeout" in type(exc).__name__
                        outcome = "stalled" if stalled else "broken"
                        msg = (f"the upstream {'went silent' if stalled else 'broke the connection'} mid-stream "
                               f"({type(exc).__name__}): the answer is cut")
                        break
                    if raw == DONE:
                        yield b"data: [DONE]\n\n"
                        return
                    self._account(chunk)
                    yield f"data: {raw}\n\n".encode()
                self.state.stream_errors.labels(outcome).inc()
                yield f"data: {json.dumps(error_body(msg, outcome))}\n\n".encode()
            except BaseException:
                outcome = "client_disconnected"
                self.state.disconnects.inc()
                raise
            finally:
                with anyio.CancelScope(shield=True):
                    await resp.aclose()
                    await stack.aclose()
                self._finish(200, outcome)

        return streaming_response(forward(), media_type="text/event-stream",
                                  headers={"Cache-Control": "no-cache", **self._headers()})

    def _headers(self) -> dict[str, str]:
        return {"x-edge-slm-upstream": str(self.upstream_index), "x-edge-slm-attempts": str(self.n_attempts)}

    def _finish(self, status: int, outcome: str) -> None:
        """Metrics, the audit of tool calls, and the request's log record."""
        self.state.metrics.running.dec()
        self.request.state.logged = True
        if outcome != "ok":
            self.rec.error_type = outcome
        self.state.metrics.observe(self.rec)
        self._audit()
        extra: dict[str, Any] = {}
        if self.s.log_content:
            extra["messages"] = self.payload.get("messages")
        _log_request(self.request, status, outcome, model=self.rec.model, stream=bool(self.payload.get("stream")),
                     upstream=self.upstream_index, attempts=self.n_attempts, output_tokens=self.rec.output_tokens,
                     duration_ms=round((time.perf_counter() - self.rec.started) * 1000, 1),
                     ttft_ms=(round((self.rec.first_token_at - self.rec.started) * 1000, 1)
                              if self.rec.first_token_at else None), **extra)

    def _audit(self) -> None:
        """One audit record per tool call: which tool, a hash of its arguments (the arguments only if opted in)."""
        from asgi_correlation_id import correlation_id

        for call in self.calls.values():
            rec = {"event": "tool_call", "request_id": correlation_id.get(),
                   "key_id": getattr(self.request.state, "key_id", None), "model": self.rec.model,
                   "tool": call["name"], "arguments_sha256": hashlib.sha256(call["arguments"].encode()).hexdigest()}
            if self.s.log_content:
                rec["arguments"] = call["arguments"]
            self.state.tool_calls.labels(call["name"]).inc()
            log.info("tool_call", extra=rec)
            if self.s.audit_path:
                with open(self.s.audit_path, "a", encoding="utf-8") as f:
                    f.write(json.dumps({"ts": time.time(), **rec}) + "\n")


async def _wait_disconnect(request: Any) -> None:
    """Return when the client has gone (the ASGI server sends `http.disconnect`)."""
    while True:
        msg = await request.receive()
        if msg["type"] == "http.disconnect":
            return
