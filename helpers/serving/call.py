"""One chat request's way through the gateway: queue, retries before the first byte, forwarding (notebook 21).

Retries happen only here and only before anything reached the client; after the first byte a failure ends
the stream with an explicit error event. A client that leaves cancels the work on its behalf.
"""

import asyncio
import functools
import hashlib
import json
import math
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from helpers.serving.policy import GatewayError, error_body, log, log_request
from helpers.serving.upstream import (
    DONE,
    UpstreamError,
    chunk_output,
    classify_status,
    merge_tool_deltas,
    parse_completion,
    sse_events,
    sse_lines,
    transport_errors,
)


@functools.lru_cache(maxsize=None)
def with_cleanup(base: type) -> type:
    """`base` (a Starlette response class) that awaits its `cleanup` once it is sent, or failed to be sent, or was
    never started: Starlette may cancel a streamed response before its body's first step (the client left in the
    same moment), and the body's own `finally` never runs then."""
    import anyio

    class WithCleanup(base):  # type: ignore[valid-type, misc]
        cleanup: Any = None

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            try:
                await super().__call__(scope, receive, send)
            finally:
                if self.cleanup is not None:
                    with anyio.CancelScope(shield=True):
                        await self.cleanup()

    return WithCleanup


class Call:
    """One chat request's way through admission, retries and (for streams) forwarding."""

    def __init__(self, state: Any, request: Any, payload: dict[str, Any], deadline: float,
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
        """aiohttp's timeouts for one attempt: connect, and the longest wait for the next bytes; all within the
        request's deadline (the whole attempt also runs under it, see `_admitted`)."""
        import aiohttp

        left = max(0.001, self.remaining())
        return aiohttp.ClientTimeout(total=None, sock_connect=min(self.s.connect_timeout_s, left),
                                     sock_read=min(read, left))

    def _pick(self) -> Any:
        cands = self.state.pool.candidates(self.serving)
        fresh = [u for u in cands if u not in self.tried]
        up = (fresh or cands)[0]
        self.tried.append(up)
        self.upstream_index = self.state.pool.upstreams.index(up)
        return up

    async def _attempt(self, attempt_fn: Any) -> Any:
        """One attempt on the next upstream, counted by upstream and outcome."""
        self.n_attempts += 1
        up = self._pick()
        try:
            result = await attempt_fn(up)
        except UpstreamError as exc:
            self.state.attempts.labels(up.url, exc.kind).inc()
            raise
        self.state.attempts.labels(up.url, "ok").inc()
        return result

    async def _with_retries(self, attempt_fn: Any) -> Any:
        """Attempts with exponential backoff and jitter, each on the next upstream, within the deadline.

        The first attempt is made straight away; tenacity takes over only when it fails, with that failure as
        its attempt 1, so it decides whether and when to try again. Most requests never touch the retry
        machinery: measured with an upstream that answers in 28 ms, building and running it for a request
        that succeeds cost the gateway about 0.3 ms (code that is cold after the wait)."""
        from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

        try:
            return await self._attempt(attempt_fn)
        except UpstreamError as exc:
            if not exc.retry or self.s.attempts == 1:
                raise
            failed: UpstreamError | None = exc

        def past_deadline(rs: Any) -> bool:
            return self.remaining() <= (getattr(rs, "upcoming_sleep", 0) or 0) + 0.01

        retrying = AsyncRetrying(
            stop=stop_after_attempt(self.s.attempts) | past_deadline, reraise=True,
            wait=wait_exponential_jitter(initial=self.s.backoff_initial_s, max=self.s.backoff_max_s,
                                         jitter=self.s.backoff_initial_s),
            retry=retry_if_exception(lambda e: isinstance(e, UpstreamError) and e.retry))
        async for attempt in retrying:
            with attempt:
                if failed is not None:  # attempt 1, made above
                    exc, failed = failed, None
                    raise exc
                return await self._attempt(attempt_fn)
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
        # what the gateway checked goes upstream, not the client's bytes: with a key given twice, Python keeps the
        # last and another parser may keep the first (a second `max_tokens` would slip past the cap)
        raw = json.dumps({**self.payload, "stream": stream}).encode()
        try:
            with transport_errors(up.url):
                return await self.state.pool.client.post(
                    up.url + "/chat/completions", data=raw,
                    headers={"Content-Type": "application/json", **self.state.upstream_headers},
                    timeout=self._timeout(self.s.read_gap_s if stream else self.remaining()))
        except UpstreamError as exc:
            if exc.kind == "connect":
                self.state.pool.mark_down(up)
            raise

    async def _attempt_complete(self, up: Any) -> tuple[dict[str, Any], bytes]:
        resp = await self._send(up, stream=False)
        try:
            with transport_errors(up.url):
                content = await resp.read()
        finally:
            resp.release()
        if resp.status != 200:
            raise classify_status(resp.status, content, up.url)
        return parse_completion(content, up.url), content

    async def _attempt_open(self, up: Any) -> tuple[Any, Any, str]:
        resp = await self._send(up, stream=True)
        try:
            with transport_errors(up.url, "sent nothing in time"):
                if resp.status != 200:
                    raise classify_status(resp.status, await resp.read(), up.url)
                events = sse_events(sse_lines(resp.content, up.url), up.url)
                try:
                    raw, chunk = await anext(events)
                except StopAsyncIteration:
                    raise UpstreamError("empty", f"upstream {up.url} closed its stream before any event",
                                        up.url) from None
            if raw == DONE:
                raise UpstreamError("empty", f"upstream {up.url} ended its stream before any output", up.url)
            self._account(chunk)
            return resp, events, raw
        except BaseException:
            resp.close()
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
        """Run `work` (queue wait and upstream attempts) unless the client leaves first; then cancel it.

        `work` runs in this task; a watcher task cancels this one when the client's disconnect arrives (one task
        per request, not two: a second task and `asyncio.wait` cost about 0.1 ms a request)."""
        me = asyncio.current_task()
        assert me is not None
        left = False

        async def watch() -> None:
            nonlocal left
            try:
                await _wait_disconnect(self.request)
            except Exception:  # the connection's own failure: the request's work will meet it
                return
            left = True
            me.cancel()

        watcher = asyncio.ensure_future(watch())
        try:
            return False, await work
        except asyncio.CancelledError:
            if not left or me.uncancel() > 0:  # cancelled from outside (server shutdown): not ours to swallow
                raise
            self.state.disconnects.inc()
            return True, None
        finally:
            watcher.cancel()

    async def complete(self, json_response: Any) -> Any:
        """A non-streamed answer: retried freely (nothing reached the client yet); a disconnect cancels it.
        The upstream's bytes go to the client as they came; the metrics, audit and log record are written
        right after they are sent, so the client does not wait for them."""
        from starlette.responses import Response

        self.state.metrics.running.inc()
        status, outcome = 500, "error"
        try:
            async with AsyncExitStack() as stack:
                gone, answer = await self._unless_disconnected(self._admitted(stack, self._attempt_complete))
                if gone:
                    status, outcome = 499, "client_disconnected"
                    return json_response(error_body("client disconnected", outcome), status_code=499)
            doc, content = answer
            self.rec.first_token()
            usage = doc.get("usage") or {}
            self.rec.prompt_tokens = int(usage.get("prompt_tokens") or 0)
            self.rec.output_tokens = int(usage.get("completion_tokens") or 0)
            for i, tc in enumerate(doc["choices"][0]["message"].get("tool_calls") or []):
                f = tc.get("function") or {}
                self.calls[i] = {"id": tc.get("id"), "name": f.get("name", ""), "arguments": f.get("arguments", "")}
            status, outcome = 200, "ok"

            async def finish() -> None:
                self._finish(200, "ok")

            answer = with_cleanup(Response)(content, media_type="application/json", headers=self._headers())
            answer.cleanup = finish  # after the last byte, or when sending failed: never skipped
            return answer
        except GatewayError as exc:
            status, outcome = exc.status, exc.code
            raise
        finally:
            if outcome != "ok":
                self._finish(status, outcome)

    async def stream(self, streaming_response: Any) -> Any:
        """A streamed answer: retried only until its first event; then forwarded, or ended by an error event."""
        import aiohttp
        import anyio

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
                    except (aiohttp.ClientError, TimeoutError) as exc:  # read errors, or the deadline
                        if not isinstance(exc, aiohttp.ClientError):  # asyncio.timeout's: the request's deadline
                            outcome, msg = "deadline_exceeded", f"deadline of {self.s.deadline_s:g} s passed mid-stream"
                            break
                        stalled = isinstance(exc, aiohttp.ServerTimeoutError)  # silent longer than read_gap_s
                        outcome = "stalled" if stalled else "broken"
                        msg = (f"the upstream {'went silent' if stalled else 'broke the connection'} mid-stream "
                               f"({type(exc).__name__}): the answer is cut")
                        break
                    except UpstreamError as exc:
                        outcome, msg = exc.kind, str(exc)
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
                await close(outcome)

        closed = False

        async def close(outcome: str) -> None:
            """Once: the upstream response and the slot, then metrics and the log record."""
            nonlocal closed
            if closed:
                return
            closed = True
            with anyio.CancelScope(shield=True):
                # a whole stream's connection goes back to the pool; one left midway is closed, which is what
                # tells the upstream to stop generating
                resp.release() if outcome == "ok" else resp.close()
                await stack.aclose()
            self._finish(200, outcome)

        async def never_started() -> None:  # the client left before the body's first step
            if not closed:
                self.state.disconnects.inc()
            await close("client_disconnected")

        answer = with_cleanup(streaming_response)(forward(), media_type="text/event-stream",
                                                  headers={"Cache-Control": "no-cache", **self._headers()})
        answer.cleanup = never_started
        return answer

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
        log_request(self.request, status, outcome, model=self.rec.model, stream=bool(self.payload.get("stream")),
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
