"""The gateway's side facing the model servers: which upstream to try, how to read its answer, and what
counts as a failure worth retrying (notebook 21).

Every failure becomes an `UpstreamError` with a `kind`; `retry` says whether another attempt (on the next
upstream) may still help. Nothing here has sent a byte to the client: retries are only ever made here,
before the first byte, which is what keeps them invisible.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

DONE = "[DONE]"


class UpstreamError(Exception):
    """One failed attempt: `kind` (connect, timeout, status, malformed, empty, ended_early), whether a retry may
    help, and the upstream's status when it answered."""

    def __init__(self, kind: str, message: str, upstream: str = "", status: int | None = None,
                 retry: bool = True, body: Any = None) -> None:
        super().__init__(message)
        self.kind, self.upstream, self.status, self.retry, self.body = kind, upstream, status, retry, body


@dataclass
class Upstream:
    """One OpenAI-compatible base URL and when it may be tried again after refusing a connection."""

    url: str
    down_until: float = 0.0
    models: list[str] = field(default_factory=list)

    @property
    def healthy(self) -> bool:
        return time.monotonic() >= self.down_until


class UpstreamPool:
    """The upstreams in their configured order, the models each serves, and one aiohttp session for all."""

    def __init__(self, urls: list[str], client: Any, cooldown_s: float = 2.0, models_ttl_s: float = 30.0,
                 guard: Any = None) -> None:
        self.upstreams = [Upstream(u) for u in urls]
        self.client = client
        self.cooldown_s = cooldown_s
        self.models_ttl_s = models_ttl_s
        # `guard` (the gateway's upstream slots) is held while asking /models: on llama-cpp-python's server even
        # GET /v1/models takes the lock that interrupts a running stream, which then ends with a silent [DONE]
        self.guard = guard
        self._models_at = -1e9
        self._refreshing: Any = None

    def mark_down(self, up: Upstream) -> None:
        """An upstream that refused a connection is tried last for `cooldown_s` seconds."""
        up.down_until = time.monotonic() + self.cooldown_s

    async def _ask_models(self) -> None:
        import aiohttp

        async def ask_all() -> None:
            for up in self.upstreams:
                try:
                    async with self.client.get(up.url + "/models", timeout=aiohttp.ClientTimeout(total=2.0)) as r:
                        r.raise_for_status()
                        up.models = [m["id"] for m in (await r.json(content_type=None)).get("data", [])]
                except (aiohttp.ClientError, TimeoutError, ValueError, KeyError, TypeError, AttributeError):
                    up.models = []

        if self.guard is not None:
            async with self.guard:
                await ask_all()
        else:
            await ask_all()
        self._models_at = time.monotonic()

    async def refresh_models(self, force: bool = False) -> dict[str, list[Upstream]]:
        """model id -> the upstreams serving it (asked from each `/models`). Cached: when the cache is stale but
        not empty it is refreshed in the background, so no request waits for it; `force` waits."""
        import asyncio

        stale = time.monotonic() - self._models_at > self.models_ttl_s
        known = any(up.models for up in self.upstreams)
        in_flight = self._refreshing is not None and not self._refreshing.done()
        if force or (stale and not known):
            # one discovery at a time, awaited by every request that needs it: a burst at a cold gateway asks
            # once (each asking in turn held the upstream slot, and the queue filled with requests that waited
            # for nothing but the model list)
            if not in_flight:
                self._refreshing = asyncio.ensure_future(self._ask_models())
            await asyncio.shield(self._refreshing)
        elif stale and not in_flight:
            self._models_at = time.monotonic()  # one background refresh at a time
            self._refreshing = asyncio.ensure_future(self._ask_models())
        by_model: dict[str, list[Upstream]] = {}
        for up in self.upstreams:
            for m in up.models:
                by_model.setdefault(m, []).append(up)
        return by_model

    async def aclose(self) -> None:
        """Cancel a discovery still running (a background refresh must not outlive the client session it uses)."""
        import asyncio

        if self._refreshing is not None and not self._refreshing.done():
            self._refreshing.cancel()
            try:
                await self._refreshing
            except asyncio.CancelledError:
                if asyncio.current_task().cancelling():  # type: ignore[union-attr]
                    raise  # this task itself is being cancelled: pass it on

    def candidates(self, serving: list[Upstream]) -> list[Upstream]:
        """Healthy upstreams first, each group in the configured order."""
        return sorted(serving, key=lambda u: (not u.healthy, self.upstreams.index(u)))


@contextmanager
def transport_errors(upstream: str, timed_out: str = "timed out") -> Iterator[None]:
    """aiohttp's failures inside the block as UpstreamError: connection refused (`connect`), a timeout
    (`timeout`, said as `timed_out`), any other client error (`broken`)."""
    import aiohttp

    try:
        yield
    except aiohttp.ClientConnectorError as exc:
        raise UpstreamError("connect", f"cannot connect to upstream {upstream} ({exc.os_error})", upstream)
    except TimeoutError as exc:  # before ClientError: aiohttp's own timeouts are both
        raise UpstreamError("timeout", f"upstream {upstream} {timed_out} ({type(exc).__name__})", upstream)
    except aiohttp.ClientError as exc:
        raise UpstreamError("broken", f"upstream {upstream} broke the connection ({type(exc).__name__})", upstream)


def classify_status(status: int, body: bytes, upstream: str) -> UpstreamError:
    """An upstream's non-200 answer as an UpstreamError: 429 and 5xx may be retried elsewhere, 4xx may not."""
    try:
        detail: Any = json.loads(body)
    except ValueError:
        detail = body[:200].decode("utf-8", "replace")
    retry = status == 429 or status >= 500
    return UpstreamError("status", f"upstream answered HTTP {status}", upstream, status=status, retry=retry,
                         body=detail)


def parse_completion(body: bytes, upstream: str) -> dict[str, Any]:
    """A non-streamed chat completion, checked: JSON, an object, with choices[0].message."""
    try:
        doc = json.loads(body)
        doc["choices"][0]["message"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise UpstreamError("malformed", "upstream answer is not a chat completion (malformed JSON)", upstream)
    return doc


async def sse_lines(content: AsyncIterator[bytes], upstream: str) -> AsyncIterator[str]:
    """The lines of a response body (aiohttp's `resp.content`) as text, without their line ends. A line longer
    than the reader's buffer, or not UTF-8, raises UpstreamError (malformed)."""
    try:
        async for raw in content:
            yield raw.decode("utf-8").rstrip("\r\n")
    except (ValueError, UnicodeDecodeError) as exc:  # aiohttp: "Chunk too big"/"Line is too long"
        raise UpstreamError("malformed", f"upstream sent a stream line that cannot be read ({exc})", upstream)


async def sse_events(lines: AsyncIterator[str], upstream: str) -> AsyncIterator[tuple[str, dict[str, Any] | None]]:
    """(raw data text, parsed chunk) for each `data:` line of an SSE stream; (`[DONE]`, None) at the end.

    A data line that is not JSON, or an `error` object the upstream sent in-band, raises UpstreamError.
    Comments (`: ping`), `event:`/`id:` lines and blank lines are skipped.
    """
    async for line in lines:
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == DONE:
            yield DONE, None
            return
        try:
            chunk = json.loads(data)
        except ValueError:
            raise UpstreamError("malformed", "upstream sent a stream event that is not JSON", upstream)
        if not isinstance(chunk, dict):
            raise UpstreamError("malformed", "upstream sent a stream event that is not an object", upstream)
        if chunk.get("error"):
            raise UpstreamError("upstream_error", f"upstream reported an error in its stream: "
                                f"{str(chunk['error'])[:200]}", upstream)
        yield data, chunk


def chunk_output(chunk: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    """The text and tool-call deltas one stream chunk carries."""
    choices = chunk.get("choices") or []
    if not choices:
        return "", []
    delta = choices[0].get("delta") or {}
    return delta.get("content") or "", delta.get("tool_calls") or []


def merge_tool_deltas(acc: dict[int, dict[str, Any]], deltas: list[dict[str, Any]]) -> None:
    """Assemble streamed tool-call deltas (by index) into whole calls, as OpenAI clients do."""
    for tc in deltas:
        slot = acc.setdefault(tc.get("index", 0), {"id": tc.get("id"), "name": "", "arguments": ""})
        slot["id"] = slot["id"] or tc.get("id")
        f = tc.get("function") or {}
        slot["name"] += f.get("name") or ""
        slot["arguments"] += f.get("arguments") or ""
