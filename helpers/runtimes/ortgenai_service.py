"""The ONNX Runtime GenAI service: an OpenAI-compatible FastAPI app around `GenAIEngine` (notebook 13).

What the course's "ONNX Runtime engine" lacked, done here: the generation loop (one forward pass per token,
with a key/value cache), tool calls constrained by `GeneratorParams.set_guidance`, typed requests whose errors
are one clear line (400 body not JSON, 404 unknown model, 413 too large, 422 fields of the wrong shape), `/health`
that answers 503 until the model is loaded, Prometheus `/metrics` (`ServerMetrics`), a bounded number of
generations at once with a bounded wait queue (503 + Retry-After when full), a deadline per request, streaming
as server-sent events that end with an explicit error event when generation fails midway, and an optional API
key checked in constant time on every route but the bare liveness probe `/live`. It binds 127.0.0.1 unless
told otherwise and sends no CORS headers. `python -m helpers serve-ortgenai` runs it.
"""


import asyncio
import json
import math
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from helpers.runtimes.metrics import RequestRecord, ServerMetrics
from helpers.runtimes.ortgenai_api import (UNSUPPORTED, ChatRequest, NamedToolChoice, ServiceError, schema_problem,
                                           validation_message)

PROVIDER = "onnxruntime_genai"


@dataclass
class ServiceSettings:
    """How the service runs; the CLI flags of `serve-ortgenai` set them."""

    model_dir: Path
    api_key: str | None = None
    max_concurrency: int = 1  # generations at once (2 cores: more only splits them)
    max_queue: int = 8  # requests allowed to wait for a slot; beyond that, 503 + Retry-After
    request_timeout_s: float = 60.0  # from arrival to the last token, waiting included
    max_body_bytes: int = 256 * 1024
    default_max_tokens: int = 256
    threads: int | None = None  # ONNX Runtime threads per generation (default EDGEAI_THREADS, 1)


class Limiter:
    """At most `slots` generations at once and `queue` waiting; more is refused at once (QueueFull)."""

    def __init__(self, slots: int, queue: int, metrics: ServerMetrics) -> None:
        self.slots, self.queue, self.metrics = slots, queue, metrics
        self.running = self.waiting = 0
        self._sem: asyncio.Semaphore | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.mean_seconds = 0.5  # running mean of generation time, for Retry-After

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (a test client) gets fresh state
            self._sem, self._loop, self.running, self.waiting = asyncio.Semaphore(self.slots), loop, 0, 0
        return self._sem

    def retry_after(self) -> str:
        return str(max(1, math.ceil(self.mean_seconds * (self.waiting + 1) / self.slots)))

    async def acquire(self, timeout: float) -> None:
        sem = self._semaphore()
        if self.running + self.waiting >= self.slots + self.queue:
            raise ServiceError(503, f"the server is busy ({self.running} generating, {self.waiting} waiting): retry "
                               "after the number of seconds in Retry-After", "queue_full",
                               {"Retry-After": self.retry_after()})
        self.waiting += 1
        self.metrics.waiting.inc()
        try:
            await asyncio.wait_for(sem.acquire(), timeout)
        except TimeoutError:
            raise ServiceError(503, f"no generation slot freed within {timeout:.1f} s: retry later", "queue_timeout",
                               {"Retry-After": self.retry_after()}) from None
        finally:
            self.waiting -= 1
            self.metrics.waiting.dec()
        self.running += 1

    def release(self, seconds: float) -> None:
        self.running -= 1
        self.mean_seconds = 0.8 * self.mean_seconds + 0.2 * seconds
        if self._sem is not None:
            self._sem.release()


class Service:
    """The loaded engine, its limiter and metrics: what the routes share."""

    def __init__(self, settings: ServiceSettings) -> None:
        from helpers.runtimes.ortgenai_engine import GenAIEngine

        self.settings = settings
        self.engine = GenAIEngine(settings.model_dir, settings.threads)
        self.metrics = ServerMetrics(PROVIDER)
        self.limiter = Limiter(settings.max_concurrency, settings.max_queue, self.metrics)
        # as many long-lived generation threads as slots (the limiter never lets more run): a thread of its own
        # per request would start cold every time
        self.workers = ThreadPoolExecutor(settings.max_concurrency, thread_name_prefix="ortgenai-generate")
        self.load_error: str | None = None
        self.ready = False  # the model is loaded and the request path is warm: /health answers 200
        self.created = int(time.time())

    def load(self) -> None:
        """Load the model; a failure is kept for /health to report.

        jsonschema is imported here too, while /health still says `loading`: with the optional format checkers
        installed (rfc3987-syntax builds a parser when imported) its import took 3-12 s on the 2-core machine, and
        the first request with tools would otherwise pay it."""
        try:
            self.engine.load()
            schema_problem(json.dumps({"type": "object"}))
            self.ready = True
        except Exception as exc:
            self.load_error = str(exc)

    def check_key(self, authorization: str | None) -> None:
        key = self.settings.api_key
        if not key:
            return
        given = (authorization or "").removeprefix("Bearer ").strip()
        if not secrets.compare_digest(given.encode(), key.encode()):
            raise ServiceError(401, "missing or wrong API key: send the header `Authorization: Bearer <key>`",
                               "invalid_api_key", {"WWW-Authenticate": "Bearer"})

    def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.engine.model_id, "object": "model", "created": self.created,
                                            "owned_by": "edge-slm-workbook"}]}

    async def read_request(self, request) -> ChatRequest:
        """The body, read up to the size limit, parsed as JSON, then typed."""
        limit = self.settings.max_body_bytes
        if int(request.headers.get("content-length") or 0) > limit:
            raise ServiceError(413, f"request body over {limit} bytes: send fewer or shorter messages", "too_large")
        body = bytearray()
        async for part in request.stream():
            body += part
            if len(body) > limit:
                raise ServiceError(413, f"request body over {limit} bytes: send fewer or shorter messages",
                                   "too_large")
        try:
            data = json.loads(bytes(body))
        except (ValueError, UnicodeDecodeError) as exc:
            msg = getattr(exc, "msg", "not UTF-8 text")
            raise ServiceError(400, f"request body is not JSON ({msg}): send a JSON object with `model` and "
                               "`messages`", "invalid_json") from None
        if not isinstance(data, dict):
            raise ServiceError(400, "request body must be a JSON object with `model` and `messages`", "invalid_json")
        try:
            req = ChatRequest.model_validate(data)
        except ValidationError as exc:
            raise ServiceError(422, validation_message(exc), "invalid_fields") from None
        if req.model != self.engine.model_id:
            raise ServiceError(404, f"model {req.model[:80]!r} is not served here; this server serves "
                               f"{self.engine.model_id!r} (GET /v1/models)", "model_not_found")
        unsupported = [f for f in UNSUPPORTED if data.get(f) not in (None, False, [], "")]
        if unsupported:  # refused, never silently ignored: the answer would not be what was asked for
            raise ServiceError(400, f"{', '.join(unsupported)} is not supported by this service: leave it out",
                               "unsupported_parameter")
        return req

    def start(self, req: ChatRequest, produce, deadline: float, arrived: float,
              offered: list[dict[str, Any]] | None) -> asyncio.Queue:
        """Generate for `req` in a worker thread that holds the slot taken by the caller and frees it when done.

        On the returned queue arrive ("started", prompt tokens), then ("item", x) for each x of
        `produce(pieces, tools, record)` (pieces: the engine's (text, finish) pairs), then ("end", output tokens),
        or ("error", exception) at any point. `queue.cancel` (an Event) stops the generation at the next token.
        `arrived` (`time.perf_counter()`) starts the request's metrics, so they include the wait for a slot;
        `offered` is `req.tools` as plain dicts (dumped once per request by the caller)."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()
        queue.cancel = cancel  # type: ignore[attr-defined]
        rec = RequestRecord(model=self.engine.model_id, started=arrived)
        messages = [m.plain() for m in req.messages]
        choice = req.tool_choice.model_dump() if isinstance(req.tool_choice, NamedToolChoice) else req.tool_choice
        tools = offered if choice != "none" else None
        max_tokens = req.max_completion_tokens or req.max_tokens or self.settings.default_max_tokens

        pending: list[tuple[str, Any]] = []  # items handed over together with the slot, in one wake-up

        def put(item, now: bool = True) -> None:
            if not (now and req.stream):  # a plain request waits for its whole answer anyway
                pending.append(item)
                return
            try:
                loop.call_soon_threadsafe(queue.put_nowait, item)
            except RuntimeError:  # the event loop is gone (server shutting down)
                pass

        def work() -> None:
            from helpers.runtimes.ortgenai_engine import GenerationCancelled, tool_guidance

            t0 = time.perf_counter()
            self.metrics.running.inc()
            try:
                ids = self.engine.prompt_ids(messages, tools, max_tokens)
                rec.prompt_tokens = len(ids)
                gen = self.engine.begin(ids, max_tokens=max_tokens, temperature=req.temperature, top_p=req.top_p,
                                        seed=req.seed if req.seed is not None else 123,
                                        guidance=tool_guidance(tools, choice or "auto"))
                put(("started", len(ids)))
                pieces = self.engine.run(gen, cancel=cancel, deadline=deadline, record=rec)
                for item in produce(pieces, tools, rec):
                    put(("item", item))
                put(("end", rec.output_tokens), now=False)
            except BaseException as exc:  # reported to the client; the server carries on
                rec.error_type = "cancelled" if isinstance(exc, GenerationCancelled) else as_service_error(exc).code
                put(("error", exc), now=False)
            finally:
                self.metrics.running.dec()
                seconds = time.perf_counter() - t0

                def finish() -> None:  # on the event loop: metrics, free the slot, then deliver what is left
                    # the metrics here, not in this worker before the hand-off: the event loop, woken by the
                    # hand-off, no longer waits for this thread to finish them (and to let go of the GIL)
                    self.metrics.observe(rec)
                    self.limiter.release(seconds)
                    for item in pending:
                        queue.put_nowait(item)

                try:
                    loop.call_soon_threadsafe(finish)
                except RuntimeError:
                    pass

        self.workers.submit(work)
        return queue


def as_service_error(exc: BaseException) -> ServiceError:
    """The HTTP error for an exception raised before or while generating."""
    from helpers.runtimes.llama_chat import ContextOverflow
    from helpers.runtimes.ortgenai_engine import GenerationTimeout, GuidanceError

    if isinstance(exc, ServiceError):
        return exc
    if isinstance(exc, ContextOverflow):
        return ServiceError(413, str(exc), "context_length_exceeded")
    if isinstance(exc, GuidanceError):
        return ServiceError(400, str(exc), "invalid_tools")
    if isinstance(exc, ValueError):
        return ServiceError(400, str(exc), "invalid_request")
    if isinstance(exc, GenerationTimeout):
        return ServiceError(504, f"the request ran past its deadline ({exc}): ask for fewer tokens, or start the "
                            "server with a longer --timeout", "timeout")
    return ServiceError(500, f"generation failed ({type(exc).__name__}): see the server log", "generation_failed")


def create_app(settings: ServiceSettings, autoload: bool = True, on_load_failure=None):
    """The FastAPI app. With `autoload`, the model loads in a thread at start-up while /health answers 503."""
    from contextlib import asynccontextmanager

    from fastapi import APIRouter, Depends, FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse

    from helpers.runtimes.llama_chat import reply_message, stream_chunks

    service = Service(settings)

    def load_in_background() -> None:
        service.load()
        if service.load_error and on_load_failure is not None:
            on_load_failure(service.load_error)

    @asynccontextmanager
    async def lifespan(app):
        if autoload:
            threading.Thread(target=load_in_background, name="ortgenai-load", daemon=True).start()
        yield

    app = FastAPI(title="edge-slm ONNX Runtime GenAI service", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.state.service = service

    @app.exception_handler(ServiceError)
    async def _service_error(request, exc: ServiceError):
        return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(Exception)
    async def _unexpected(request, exc: Exception):
        return JSONResponse(as_service_error(exc).body(), status_code=500)

    async def require_key(request: Request) -> None:  # async: a plain def would cost a thread hop per request
        service.check_key(request.headers.get("authorization"))

    @app.get("/live")
    async def live():
        """Liveness: the process answers. Open without a key and says nothing else."""
        return {"status": "alive"}

    guarded = APIRouter(dependencies=[Depends(require_key)])

    @guarded.get("/health")
    async def health():
        if service.ready:
            return {"status": "ok", "model": service.engine.model_id, "load_seconds": service.engine.load_seconds}
        if service.load_error:
            return JSONResponse({"status": "failed", "error": service.load_error}, status_code=503)
        return JSONResponse({"status": "loading"}, status_code=503, headers={"Retry-After": "1"})

    @guarded.get("/metrics")
    async def metrics():
        body, content_type = service.metrics.exposition()
        return Response(body, media_type=content_type)

    @guarded.get("/v1/models")
    async def models():
        return service.models()

    @guarded.get("/v1/models/{model_id}")
    async def model(model_id: str):
        if model_id != service.engine.model_id:
            raise ServiceError(404, f"model {model_id[:80]!r} is not served here (GET /v1/models)", "model_not_found")
        return service.models()["data"][0]

    @guarded.post("/v1/chat/completions")
    async def chat(request: Request):
        arrived, arrived_perf = time.monotonic(), time.perf_counter()
        deadline = arrived + settings.request_timeout_s
        req = await service.read_request(request)
        if not service.ready:
            raise ServiceError(503, "the model is still loading" if not service.load_error else
                               f"the model failed to load: {service.load_error}", "not_ready", {"Retry-After": "1"})
        try:
            await service.limiter.acquire(max(0.0, deadline - time.monotonic()))
        except ServiceError as exc:  # refused: counted, so /metrics shows how often the queue was full
            service.metrics.observe(RequestRecord(model=service.engine.model_id, started=arrived_perf,
                                                  error_type=exc.code))
            raise
        model_id = service.engine.model_id
        if req.stream:
            def produce(pieces, tools, rec):
                return stream_chunks(pieces, tools, model=model_id)
        else:
            def produce(pieces, tools, rec):
                text, finish = "", "stop"
                for piece, fin in pieces:
                    text += piece
                    finish = fin or finish
                yield text, finish
        offered = [t.model_dump() for t in req.tools] if req.tools else None
        queue = service.start(req, produce, deadline, arrived_perf, offered)
        kind, value = await queue.get()
        if kind == "error":  # before any token: a proper status code
            raise as_service_error(value)
        prompt_tokens = value
        if not req.stream:
            kind, value = await queue.get()
            if kind == "error":
                raise as_service_error(value)
            raw, finish = value
            kind, n_out = await queue.get()
            if kind == "error":
                raise as_service_error(n_out)
            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": n_out, "total_tokens": prompt_tokens + n_out}
            msg, finish, _ = reply_message(raw, offered, finish)
            return JSONResponse({"id": "chatcmpl-" + uuid.uuid4().hex[:12], "object": "chat.completion",  # as is:
                                 "created": int(time.time()), "model": model_id,  # no response-model pass
                                 "choices": [{"index": 0, "message": msg, "finish_reason": finish, "logprobs": None}],
                                 "usage": usage})

        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        async def events():
            try:
                while True:
                    kind, value = await queue.get()
                    if kind == "item":
                        yield f"data: {json.dumps(value, ensure_ascii=False)}\n\n"
                    elif kind == "error":
                        err = as_service_error(value)
                        yield f"event: error\ndata: {json.dumps(err.body())}\n\n"
                        return  # no [DONE]: the stream failed, and the client is told so
                    elif kind == "end":
                        if include_usage:
                            usage = {"prompt_tokens": prompt_tokens, "completion_tokens": value,
                                     "total_tokens": prompt_tokens + value}
                            yield "data: " + json.dumps({"id": "chatcmpl-usage", "object": "chat.completion.chunk",
                                                         "created": int(time.time()), "model": model_id,
                                                         "choices": [], "usage": usage}) + "\n\n"
                        yield "data: [DONE]\n\n"
                        return
            finally:
                queue.cancel.set()  # a client that went away stops the generation at the next token

        return StreamingResponse(events(), media_type="text/event-stream",
                                 headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    app.include_router(guarded)
    return app



def serve(settings: ServiceSettings, host: str = "127.0.0.1", port: int = 8766, exit_with_parent: bool = False) -> None:
    """Run the service until interrupted (`python -m helpers serve-ortgenai`); errors are one line.

    `exit_with_parent`: stop when the process that started this one is gone (a notebook kernel that died), so
    no orphan keeps the port and a core."""
    import uvicorn

    from helpers.runtimes.ortgenai_engine import check_folder
    from helpers.runtimes.server import check_port  # the workbook server's check: one wording for both

    check_folder(settings.model_dir)
    check_port(host, port)

    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {host} exposes the service beyond this machine", flush=True)
    failure: list[str] = []
    server = uvicorn.Server(uvicorn.Config(None, host=host, port=port, log_level="warning",
                                           timeout_graceful_shutdown=5))

    def stop(error: str) -> None:
        failure.append(error)
        server.should_exit = True

    server.config.app = create_app(settings, on_load_failure=stop)
    if exit_with_parent:
        import os

        def watch_parent(parent: int = os.getppid()) -> None:
            while not server.should_exit:
                time.sleep(0.5)
                if os.getppid() != parent:
                    server.should_exit = True

        threading.Thread(target=watch_parent, name="ortgenai-parent-watch", daemon=True).start()
    print(f"serving {settings.model_dir} on http://{host}:{port}/v1 (loading; GET /health says when ready)",
          flush=True)
    server.run()
    if failure:
        raise ValueError(failure[0])


@contextmanager
def serve_in_thread(settings: ServiceSettings, timeout: float = 30.0) -> Iterator[tuple[str, Service]]:
    """The service under uvicorn in a thread of this process, on a free port of 127.0.0.1, until the block ends:
    (base URL without /v1, the Service). For tests and lab checks; notebooks use the `ortgenai-service` runtime."""
    import httpx
    import uvicorn

    from helpers.runtimes.wire import free_port

    app = create_app(settings)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="ortgenai-uvicorn", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {settings.api_key}"} if settings.api_key else {}
    service: Service = app.state.service
    deadline = time.monotonic() + timeout
    try:
        while True:
            if service.load_error:
                raise ValueError(service.load_error)
            try:
                if httpx.get(url + "/health", headers=headers, timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError(f"the service did not become ready on {url} within {timeout:.0f} s")
            time.sleep(0.02)
        yield url, service
    finally:
        server.should_exit = True
        thread.join(15)
