"""A fault-injecting OpenAI-compatible upstream: a TEST DOUBLE, not a model (notebook 22, tests/test_gateway*.py).

It answers `/v1/models` and `/v1/chat/completions` (streamed or not) with a deterministic text made from the
prompt, so a client can tell a whole answer from a cut one, and it misbehaves on a script: one fault per
request, in order, then normal answers. Every answer it gives says `"model": "fake-slm"`, so nobody can
mistake it for the workbook's model. The real upstream in notebooks 21-22 is the workbook's own server.

Faults (`FAULTS`): latency before the first byte, HTTP 500 or 429, a hang before the first byte, a connection
dropped mid-stream, a stream that stops midway without `[DONE]`, malformed JSON (whole body or one event),
and a slow drip of tokens. `kill()` aborts every open connection and stops listening, like a killed process.
"""


import asyncio
import json
import threading
import time
from collections import deque
from typing import Any, Self

FAKE_MODEL = "fake-slm"
FAULTS = ("ok", "slow", "status_500", "status_429", "hang", "drop_mid", "stop_mid", "malformed", "malformed_mid",
          "drip")


def fake_answer(messages: list[dict[str, Any]]) -> str:
    """The deterministic answer to a conversation: `echo:` and the last user message's words, reversed."""
    last = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    return "echo: " + " ".join(reversed(str(last).split()))


def fake_tool_call(messages: list[dict[str, Any]]) -> dict[str, Any] | None:
    """A tool call when the last user message asks for the time (so audits have something to record)."""
    last = next((m.get("content") or "" for m in reversed(messages) if m.get("role") == "user"), "")
    if "time" in str(last).lower():
        return {"id": "call_fake0", "type": "function", "function": {"name": "get_current_time", "arguments": "{}"}}
    return None


class _Drop(Exception):
    """Raised inside a streaming body: the ASGI server aborts the connection mid-response."""


class FakeUpstream:
    """The scripted upstream, served by uvicorn on 127.0.0.1 in a background thread.

    `script` lists one fault name per request, consumed in order (later requests are `ok`). `latency_s` is the
    delay before the first byte of a `slow` answer; `token_delay_s` the gap between streamed chunks.
    """

    def __init__(self, script: list[str] | None = None, latency_s: float = 0.5, token_delay_s: float = 0.0,
                 port: int | None = None) -> None:
        for f in script or []:
            if f not in FAULTS:
                raise ValueError(f"unknown fault {f!r}; choose from {FAULTS}")
        self.script: deque[str] = deque(script or [])
        self.latency_s, self.token_delay_s = latency_s, token_delay_s
        self.requests = 0
        self.completed = 0  # answers sent in full
        self.cancelled = 0  # requests whose client (the gateway) went away before the end
        self.faults_served: list[str] = []
        self.active = 0  # chat requests being answered now
        self.models_while_busy = 0  # GET /models that arrived while a chat was being answered
        self.models_asked = 0  # GET /models in all
        self.last_raw, self.last_body = b"", {}  # the last chat request's body
        self._lock = threading.Lock()
        self._server: Any = None
        self.port = port
        self.url = ""

    def set_script(self, script: list[str]) -> None:
        with self._lock:
            self.script = deque(script)

    def _next_fault(self) -> str:
        with self._lock:
            self.requests += 1
            fault = self.script.popleft() if self.script else "ok"
            self.faults_served.append(fault)
            return fault

    def app(self) -> Any:
        """The FastAPI app of the double."""
        from fastapi import FastAPI, Request
        from fastapi.responses import JSONResponse, Response, StreamingResponse

        app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
        me = self

        @app.get("/v1/models")
        async def models() -> dict[str, Any]:
            me.models_asked += 1
            if me.active:
                me.models_while_busy += 1
            return {"object": "list", "data": [{"id": FAKE_MODEL, "object": "model", "owned_by": "test-double"}]}

        @app.post("/v1/chat/completions")
        async def chat(request: Request) -> Response:
            me.last_raw = await request.body()  # what the gateway sent, as bytes and as parsed
            body = me.last_body = json.loads(me.last_raw)
            fault = me._next_fault()
            me.active += 1
            resp = None
            try:
                resp = await answer(request, body, fault)
                return resp
            finally:
                if not isinstance(resp, StreamingResponse):  # a stream counts itself down when it ends
                    me.active -= 1

        async def answer(request: Request, body: dict[str, Any], fault: str) -> Response:
            messages = body.get("messages") or []
            words = fake_answer(messages).split(" ")
            call = fake_tool_call(messages)
            if fault == "status_500":
                return JSONResponse({"error": {"message": "injected 500"}}, status_code=500)
            if fault == "status_429":
                return JSONResponse({"error": {"message": "injected 429"}}, status_code=429,
                                    headers={"Retry-After": "1"})
            if fault in ("slow", "hang"):  # wait, watching for the client leaving (as real servers do)
                t_end = time.monotonic() + (me.latency_s if fault == "slow" else 3600)
                while time.monotonic() < t_end:
                    if await request.is_disconnected():
                        me.cancelled += 1
                        return Response(status_code=499)
                    await asyncio.sleep(min(0.02, max(0.0, t_end - time.monotonic())))
            if not body.get("stream"):
                if fault == "malformed":
                    return Response(b'{"choices": [{"message": {"content": "cut', media_type="application/json")
                msg: dict[str, Any] = {"role": "assistant", "content": "" if call else " ".join(words)}
                if call:
                    msg["tool_calls"] = [call]
                me.completed += 1
                choice = {"index": 0, "message": msg, "finish_reason": "tool_calls" if call else "stop"}
                return JSONResponse({"id": "chatcmpl-fake", "object": "chat.completion", "created": int(time.time()),
                                     "model": FAKE_MODEL, "choices": [choice],
                                     "usage": {"prompt_tokens": 1, "completion_tokens": len(words)}})
            return StreamingResponse(me._stream(fault, words, call), media_type="text/event-stream")

        return app

    async def _stream(self, fault: str, words: list[str], call: dict[str, Any] | None):
        def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
            doc = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0, "model": FAKE_MODEL,
                   "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
            return f"data: {json.dumps(doc)}\n\n".encode()

        try:
            if fault == "malformed":
                yield b"data: {\"choices\": [{\"delta\": \n\n"
                return
            yield chunk({"role": "assistant"})
            pieces: list[dict[str, Any]] = []
            if call:
                pieces.append({"tool_calls": [{"index": 0, **call}]})
            else:
                pieces += [{"content": (w if i == 0 else " " + w)} for i, w in enumerate(words)]
            half = max(1, len(pieces) // 2)
            for i, delta in enumerate(pieces):
                if i == half and fault in ("drop_mid", "stop_mid", "malformed_mid"):
                    if fault == "drop_mid":
                        raise _Drop("injected: connection dropped mid-stream")
                    if fault == "malformed_mid":
                        yield b"data: {\"choices\": oops}\n\n"
                    return  # stop_mid: the body ends cleanly, without a finish chunk or [DONE]
                yield chunk(delta)
                delay = self.token_delay_s if fault != "drip" else max(self.token_delay_s, 0.2)
                if delay:
                    await asyncio.sleep(delay)
            yield chunk({}, "tool_calls" if call else "stop")
            yield b"data: [DONE]\n\n"
            self.completed += 1
        except (asyncio.CancelledError, GeneratorExit):
            self.cancelled += 1
            raise
        finally:
            self.active -= 1

    # --- life -------------------------------------------------------------------------------------------
    def start(self) -> "FakeUpstream":
        from helpers.serving.server import ServerThread

        self._server = ServerThread(self.app(), port=self.port).start()
        self.port = self._server.port
        self.url = f"http://127.0.0.1:{self.port}/v1"
        return self

    def kill(self) -> None:
        """Abort every open connection and stop listening at once, as if the process were killed."""
        if self._server is not None:
            self._server.kill()

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
