"""What the gateway answers when it refuses, and its bounded queue (notebook 21).

`GatewayError` is every refusal a client sees (an OpenAI-style error body, a status, headers such as
`Retry-After`); `Admission` is the bounded queue in front of the upstream slots; `log_request` writes the one
JSON line per request, with a key id instead of the key and no prompt unless opted in.
"""

import asyncio
import hashlib
import logging
import math
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

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


def log_request(request: Any, status: int, outcome: str, **fields: Any) -> None:
    """One JSON log record per request: ids, status, outcome, timings; no key, no prompt (unless opted in)."""
    from asgi_correlation_id import correlation_id

    log.info("request", extra={"request_id": correlation_id.get(), "key_id": getattr(request.state, "key_id", None),
                               "path": request.url.path, "status": status, "outcome": outcome, **fields})
