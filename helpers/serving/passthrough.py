"""A bare forwarder, to measure what one more HTTP hop costs with none of the gateway's policy (notebook 21).

`create_passthrough_app(upstream, key)` is built on the gateway's own stack (FastAPI and uvicorn facing the
client, aiohttp facing the upstream) with one route: `POST /v1/chat/completions` checks the key and forwards the
body as it came, and the upstream's answer goes back as it came; `/healthz` answers for the process. No rate
limit, queue, deadline, retries, failover, metrics or logs, and non-streamed requests only (a stream would be
buffered whole). It exists to be measured beside the gateway, so that the gateway's cost splits into the hop
and the policy; `python -m helpers gateway --passthrough` runs it. It is not a gateway: serve no one with it.
"""

import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


def create_passthrough_app(upstream: str, key: str) -> Any:
    """The bare forwarder to `upstream` (an OpenAI-compatible `/v1` base) for clients that send `key`."""
    import aiohttp
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response

    held: dict[str, Any] = {}
    expected = f"Bearer {key}".encode()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        held["session"] = aiohttp.ClientSession(trust_env=False)
        yield
        await held["session"].close()

    app = FastAPI(title="edge-slm passthrough", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/v1/chat/completions")
    async def chat(request: Request) -> Response:
        if not hmac.compare_digest(request.headers.get("authorization", "").encode(), expected):
            return JSONResponse({"error": {"message": "wrong or missing API key", "code": "invalid_api_key"}},
                                status_code=401)
        async with held["session"].post(upstream + "/chat/completions", data=await request.body(),
                                        headers={"Content-Type": "application/json"}) as answer:
            return Response(await answer.read(), status_code=answer.status, media_type=answer.content_type)

    return app
