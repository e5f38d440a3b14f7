"""The workbook's OpenAI-compatible server: a small FastAPI app around one `llama_cpp.Llama` and the workbook's
chat handler (helpers.runtimes.llama_chat), so tool calls come back as OpenAI `tool_calls`, streaming included.

Introduced in notebook 01; `python -m helpers serve` runs it and `LlamaCppServerRuntime` starts it. What it
promises (tests/test_faults_server.py tries each):

- one request generates at a time, in arrival order: a new request waits for the running one and never cuts it
  short (llama-cpp-python's stock server interrupts running streams by default); at most `max_queue` wait,
  more get 503 with Retry-After;
- every request is checked at the edge (helpers.runtimes.server_api) before any model work: 400/404/413/422
  with a one-line message, never a path or a traceback; a grammar is checked, then compiled by llama.cpp
  and refused if it does not compile, before it reaches generation;
- a stream checks everything it can (prompt size included) before answering 200, and ends with an explicit
  `error` event if generation fails midway; a client that disconnects frees its turn at once;
- `/health` (503 while the model loads, 200 when ready) is the only route without the API key (from
  `--api-key-file` or the EDGE_SLM_API_KEY environment variable, compared in constant time); `/metrics`
  serves Prometheus text (helpers.runtimes.metrics.ServerMetrics);
- binds 127.0.0.1, checks the Host header (DNS rebinding), refuses a browser page from another origin
  (no CORS unless `--cors-origin`), and names the model that really answered in every response.
"""


import asyncio
import hmac
import json
import os
import socket
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from helpers.runtimes.base import default_threads

HANDLER_NAME = "edge-slm"
API_KEY_ENV = "EDGE_SLM_API_KEY"
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
PROVIDER = "llama_cpp"


@dataclass
class ServerConfig:
    """Everything `serve` needs; `python -m helpers serve --help` lists the same options."""

    model: Path
    host: str = "127.0.0.1"
    port: int = 8765
    n_ctx: int = 2048
    n_threads: int | None = None
    api_key: str | None = None
    cors_origins: tuple[str, ...] = ()
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = 1_000_000
    max_queue: int = 16
    default_max_tokens: int = 256
    alias: str = ""
    extra_hosts: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        self.alias = self.alias or self.model.stem


def read_api_key(key_file: str | Path | None = None) -> str | None:
    """The server's API key: the first line of `key_file`, else EDGE_SLM_API_KEY, else None (no key)."""
    if key_file:
        path = Path(key_file)
        try:
            key = path.read_text(encoding="utf-8").strip().splitlines()[0].strip() if path.stat().st_size else ""
        except (OSError, UnicodeDecodeError, IndexError) as exc:
            raise ValueError(f"cannot read the API key file {path.name} ({type(exc).__name__}): give a text file "
                             "holding the key on its first line") from None
        if len(key) < 8:
            raise ValueError(f"the API key in {path.name} is shorter than 8 characters: use a longer one")
        return key
    key = os.environ.get(API_KEY_ENV, "").strip()
    return key or None


# ---------------------------------------------------------------------------------------------- the engine
class Engine:
    """One llama.cpp model, used by one request at a time through a single-thread executor."""

    def __init__(self, cfg: ServerConfig) -> None:
        from helpers.runtimes.metrics import ServerMetrics

        self.cfg = cfg
        self.llama: Any = None
        self.state = "loading"
        self.error: str | None = None
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self.lock = asyncio.Lock()  # the one generation slot, held for a whole request (stream included)
        self.waiting = 0
        self.metrics = ServerMetrics(PROVIDER)
        self.loaded = threading.Event()

    def load(self) -> None:
        """Load the model (in the executor's thread); state becomes "ready" or "error"."""
        try:
            from llama_cpp import Llama

            threads = self.cfg.n_threads or default_threads()
            self.llama = Llama(model_path=str(self.cfg.model), n_ctx=self.cfg.n_ctx, n_threads=threads,
                               n_threads_batch=threads, verbose=False)
            self.state = "ready"
        except Exception as exc:  # noqa: BLE001 - reported on /health and in the log
            self.state = "error"
            self.error = f"cannot load {self.cfg.model.name}: {type(exc).__name__}: {exc}"
        finally:
            self.loaded.set()

    async def run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.wrap_future(self.executor.submit(fn, *args))

    # --------------------------------------------------------------- work done in the executor's thread
    def prepare(self, req: Any) -> dict[str, Any]:
        """Render and count the prompt, compile the grammar: every check that needs the model, before 200."""
        from helpers.runtimes.llama_chat import ContextOverflow, _tokens, normalize_messages
        from helpers.runtimes.server_api import ApiError

        messages = [m.openai() for m in req.messages]
        offered = req.tools if req.tool_choice != "none" else None
        tools = [t.model_dump(exclude_none=True) for t in offered] if offered else None
        max_tokens = req.max_completion_tokens or req.max_tokens or min(self.cfg.default_max_tokens,
                                                                        self.cfg.n_ctx // 2)
        try:
            messages = normalize_messages(messages)
            n_prompt = len(_tokens(self.llama, messages, tools, max_tokens))
        except ContextOverflow as exc:
            raise ApiError(400, str(exc), param="messages", code="context_length_exceeded") from None
        except ValueError as exc:
            raise ApiError(422, f"invalid messages: {str(exc)[:200]}", param="messages") from None
        grammar = self.compile_grammar(req.grammar) if req.grammar is not None else None
        return {"messages": messages, "tools": tools, "max_tokens": max_tokens, "n_prompt": n_prompt,
                "grammar": grammar, "temperature": req.temperature if req.temperature is not None else 0.0,
                "seed": req.seed if req.seed is not None else 123,
                "one_call": req.parallel_tool_calls is False}

    def compile_grammar(self, text: str) -> Any:
        """A `LlamaGrammar`, after llama.cpp itself compiled the text once (NULL when it does not parse: refused
        here, where the stock server passed it on and crashed in generation)."""
        import llama_cpp
        from llama_cpp import LlamaGrammar

        from helpers.runtimes.server_api import ApiError

        ptr = llama_cpp.llama_sampler_init_grammar(self.llama._model.vocab, text.encode("utf-8"), b"root")
        if not ptr:
            raise ApiError(400, "grammar does not compile (llama.cpp's GBNF parser refused it: a syntax error, an "
                           "undefined rule, or left recursion). Check it with a GBNF validator.",
                           param="grammar", code="invalid_grammar")
        llama_cpp.llama_sampler_free(ptr)
        return LlamaGrammar.from_string(text, verbose=False)

    def complete(self, p: dict[str, Any]) -> tuple[dict[str, Any], float | None]:
        """The answer, and when its first token was ready (start + llama.cpp's prompt-eval time), for TTFT."""
        import llama_cpp

        from helpers.runtimes.llama_chat import chat_completion

        try:
            llama_cpp.llama_perf_context_reset(self.llama._ctx.ctx)
        except (AttributeError, TypeError):  # another llama-cpp-python layout: no TTFT for non-streamed answers
            pass
        t0 = time.perf_counter()
        out = chat_completion(self.llama, p["messages"], p["tools"], temperature=p["temperature"],
                              max_tokens=p["max_tokens"], seed=p["seed"], model=self.cfg.alias, grammar=p["grammar"])
        try:
            first_at: float | None = t0 + llama_cpp.llama_perf_context(self.llama._ctx.ctx).t_p_eval_ms / 1000
        except (AttributeError, TypeError):
            first_at = None
        for k in ("x_raw", "x_error", "x_seconds"):
            out.pop(k, None)
        msg = out["choices"][0]["message"]
        if p["one_call"] and msg.get("tool_calls"):
            msg["tool_calls"] = msg["tool_calls"][:1]
        return out, first_at

    def start_stream(self, p: dict[str, Any]) -> Any:
        from helpers.runtimes.llama_chat import chat_completion_stream

        return chat_completion_stream(self.llama, p["messages"], p["tools"], temperature=p["temperature"],
                                      max_tokens=p["max_tokens"], seed=p["seed"], model=self.cfg.alias,
                                      grammar=p["grammar"])


_END = object()


def _next(it: Any) -> Any:
    return next(it, _END)


def _sse(data: Any) -> bytes:
    return b"data: " + (data if isinstance(data, bytes) else json.dumps(data, ensure_ascii=False).encode()) + b"\n\n"


# ---------------------------------------------------------------------------------------------- the app
def create_app(cfg: ServerConfig, engine: Engine | None = None) -> Any:
    """The FastAPI app; the model loads in the background when the app starts (see `/health`)."""
    from contextlib import asynccontextmanager

    import anyio
    from fastapi import Depends, FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException

    from helpers.runtimes.metrics import RequestRecord
    from helpers.runtimes.server_api import ApiError, parse_chat_request

    allowed = {h.lower() for h in (*LOCAL_HOSTS, cfg.host, *cfg.allowed_hosts)}

    @asynccontextmanager
    async def lifespan(app: Any):
        eng = Engine(cfg) if engine is None else engine
        app.state.engine = eng
        if eng.llama is None and eng.state == "loading":
            eng.executor.submit(eng.load)
            asyncio.get_running_loop().run_in_executor(None, _report_load, eng)
        yield
        eng.executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(title="edge-slm workbook server", lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)

    def error_response(err: ApiError) -> JSONResponse:
        return JSONResponse(err.body(), status_code=err.status, headers=err.headers)

    class Guard:
        """Pure ASGI middleware (streams pass through untouched): Host and Origin checks before any route."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
            if scope["type"] != "http":
                return await self.inner(scope, receive, send)
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
            host = headers.get("host", "").lower()
            name = host if host.endswith("]") else host.rsplit(":", 1)[0]
            origin = headers.get("origin")
            err = None
            if "*" not in allowed and name not in allowed:
                err = ApiError(400, f"Host header not allowed: this server answers to {cfg.host} (start it with "
                               "--allowed-host NAME to answer another name).", code="invalid_host")
            elif origin and origin not in cfg.cors_origins and scope["method"] != "OPTIONS":
                err = ApiError(403, "requests from a web page of another origin are refused (start the server "
                               "with --cors-origin ORIGIN to allow one).", type="forbidden", code="origin_not_allowed")
            if err is not None:
                return await error_response(err)(scope, receive, send)
            await self.inner(scope, receive, send)

    if cfg.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(cfg.cors_origins), allow_credentials=False,
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(Guard)  # added last: outermost, so every request passes it first

    async def require_key(request: Request) -> None:
        if cfg.api_key is None:
            return
        auth = request.headers.get("authorization", "")
        given = auth[7:].strip() if auth[:7].lower() == "bearer " else ""
        if not hmac.compare_digest(given.encode("utf-8", "replace"), cfg.api_key.encode("utf-8")):
            raise ApiError(401, "missing or wrong API key: send `Authorization: Bearer <key>` (the key is in "
                           f"the server's --api-key-file or {API_KEY_ENV}).", type="authentication_error",
                           code="invalid_api_key", headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(ApiError)
    async def on_api_error(request: Request, exc: ApiError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        msg = {404: f"no route {request.method} {request.url.path[:80]}: see /v1/models, /v1/chat/completions, "
                    "/health and /metrics", 405: f"method {request.method} not allowed here"}.get(
            exc.status_code, str(exc.detail)[:200])
        return error_response(ApiError(exc.status_code, msg, code="not_found" if exc.status_code == 404 else None))

    @app.exception_handler(Exception)
    async def on_crash(request: Request, exc: Exception) -> JSONResponse:
        print(f"error: internal error on {request.url.path}: {type(exc).__name__}", file=sys.stderr, flush=True)
        return error_response(ApiError(500, f"internal server error ({type(exc).__name__}); the server keeps "
                                       "running: send the request again or check the server's log.",
                                       type="server_error"))

    @app.get("/health")
    async def health(request: Request) -> JSONResponse:
        eng: Engine = request.app.state.engine
        status = {"ready": 200}.get(eng.state, 503)
        return JSONResponse({"status": "ok" if eng.state == "ready" else eng.state}, status_code=status)

    @app.get("/metrics", dependencies=[Depends(require_key)])
    async def metrics(request: Request) -> Response:
        body, ctype = request.app.state.engine.metrics.exposition()
        return Response(body, media_type=ctype)

    @app.get("/v1/models", dependencies=[Depends(require_key)])
    async def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": cfg.alias, "object": "model", "created": 0,
                                            "owned_by": "edge-slm-workbook"}]}

    @app.get("/v1/models/{model_id:path}", dependencies=[Depends(require_key)])
    async def model_info(model_id: str) -> dict[str, Any]:
        if model_id != cfg.alias:
            raise ApiError(404, f"model {model_id[:64]!r} is not served here; this server serves {cfg.alias!r}.",
                           param="model", code="model_not_found")
        return {"id": cfg.alias, "object": "model", "created": 0, "owned_by": "edge-slm-workbook"}

    async def read_body(request: Request) -> bytes:
        ctype = request.headers.get("content-type", "")
        if ctype.split(";")[0].strip().lower() != "application/json":
            raise ApiError(415, "send the request as JSON with `Content-Type: application/json`.",
                           code="unsupported_media_type")
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > cfg.max_body_bytes:
            raise ApiError(413, f"request body is {int(length):,} bytes; the server takes at most "
                           f"{cfg.max_body_bytes:,}. Send fewer or shorter messages.", code="request_too_large")
        chunks, total = [], 0
        async for chunk in request.stream():
            total += len(chunk)
            if total > cfg.max_body_bytes:
                raise ApiError(413, f"request body is over {cfg.max_body_bytes:,} bytes, the server's bound. Send "
                               "fewer or shorter messages.", code="request_too_large")
            chunks.append(chunk)
        return b"".join(chunks)

    @app.post("/v1/chat/completions", dependencies=[Depends(require_key)])
    async def chat(request: Request) -> Any:
        eng: Engine = request.app.state.engine
        rec = RequestRecord(model=cfg.alias)
        try:
            req, ignored = parse_chat_request(await read_body(request), model=cfg.alias, n_ctx=cfg.n_ctx,
                                              max_body_bytes=cfg.max_body_bytes)
            if eng.state != "ready":
                raise ApiError(503, "the model is still loading: retry in a second (GET /health says when it is "
                               "ready)." if eng.state == "loading" else "the model failed to load; see the "
                               "server's log.", type="server_error", code="model_not_ready",
                               headers={"Retry-After": "1"})
            if eng.waiting >= cfg.max_queue:
                raise ApiError(503, f"server busy: {eng.waiting} requests are waiting for the model; retry later.",
                               type="server_error", code="server_busy", headers={"Retry-After": "2"})
        except ApiError as err:
            rec.error_type = str(err.status)
            eng.metrics.observe(rec)
            raise
        headers = {"x-edge-slm-ignored-fields": ",".join(ignored)[:512]} if ignored else {}
        eng.waiting += 1
        eng.metrics.waiting.inc()
        try:
            await eng.lock.acquire()
        finally:
            eng.waiting -= 1
            eng.metrics.waiting.dec()
        eng.metrics.running.inc()
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                eng.metrics.running.dec()
                eng.metrics.observe(rec)
                eng.lock.release()

        try:
            prep = await eng.run(eng.prepare, req)
            rec.prompt_tokens = prep["n_prompt"]
            if not req.stream:
                out, first_at = await eng.run(eng.complete, prep)
                rec.output_tokens = out["usage"]["completion_tokens"]
                rec.first_token_at = first_at
                release()
                return JSONResponse(out, headers=headers)
        except ApiError as exc:
            rec.error_type = str(exc.status)
            release()
            raise
        except Exception as exc:  # noqa: BLE001 - a 500 that names the kind of fault, never a traceback
            rec.error_type = type(exc).__name__
            release()
            print(f"error: a request failed: {type(exc).__name__}", file=sys.stderr, flush=True)
            raise ApiError(500, f"internal server error ({type(exc).__name__}); the server keeps running: send the "
                           "request again or check the server's log.", type="server_error") from None
        except BaseException:
            rec.error_type = "cancelled"
            release()
            raise

        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        async def events() -> Any:
            it = None
            try:
                it = await eng.run(eng.start_stream, prep)
                last = None
                while True:
                    ch = await eng.run(_next, it)
                    if ch is _END:
                        break
                    d = ch["choices"][0]["delta"]
                    if d.get("content") or d.get("tool_calls"):
                        rec.first_token()
                    if prep["one_call"] and d.get("tool_calls"):
                        d["tool_calls"] = d["tool_calls"][:1]
                    last = ch
                    usage = ch.pop("usage", None)
                    if usage:
                        rec.output_tokens = usage["completion_tokens"]
                    yield _sse(ch)
                    if include_usage and usage:
                        yield _sse({"id": ch["id"], "object": "chat.completion.chunk", "created": ch["created"],
                                    "model": cfg.alias, "choices": [], "usage": usage})
                if last is None or last["choices"][0].get("finish_reason") is None:
                    raise RuntimeError("the generation ended without a finish reason")
                yield _sse(b"[DONE]")
            except (asyncio.CancelledError, GeneratorExit):
                rec.error_type = "client_disconnected"
                raise
            except Exception as exc:  # noqa: BLE001 - midway: the status line is sent, so say it in the stream
                rec.error_type = type(exc).__name__
                print(f"error: a stream failed midway: {type(exc).__name__}", file=sys.stderr, flush=True)
                yield _sse({"error": {"message": f"generation failed midway ({type(exc).__name__}); the answer "
                                                 "above is incomplete: send the request again.",
                                      "type": "server_error", "param": None, "code": "stream_failed"}})
            finally:
                with anyio.CancelScope(shield=True):
                    if it is not None:
                        await eng.run(it.close)  # stops llama.cpp's generation: a disconnect frees the slot
                    release()

        class SlotStream(StreamingResponse):
            async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
                try:
                    await super().__call__(scope, receive, send)
                finally:  # also when the body never started (client gone before the first byte)
                    with anyio.CancelScope(shield=True):
                        await self.body_iterator.aclose()  # the generator's own cleanup first (stops llama.cpp)
                    release()

        return SlotStream(events(), media_type="text/event-stream",
                          headers={**headers, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"})

    return app


def _report_load(eng: Engine) -> None:
    eng.loaded.wait()
    if eng.state == "error":
        print(f"error: {eng.error}. Check the file (python -m helpers doctor) or re-export it "
              "(python -m helpers export).", file=sys.stderr, flush=True)
        os.kill(os.getpid(), __import__("signal").SIGTERM)
    else:
        print("ready: the model is loaded", flush=True)


# ---------------------------------------------------------------------------------------------- serve
def check_port(host: str, port: int) -> None:
    """Raise OSError with what to do when the port cannot be bound."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError as exc:
            raise OSError(f"cannot listen on {host}:{port} ({exc.strerror}): another program uses the port; "
                          "choose another with --port, or stop that program") from None


def serve(model: str | Path, host: str = "127.0.0.1", port: int = 8765, n_threads: int | None = None,
          n_ctx: int = 2048, api_key_file: str | Path | None = None, cors_origins: tuple[str, ...] = (),
          allowed_hosts: tuple[str, ...] = (), max_queue: int = 16, max_body_bytes: int = 1_000_000) -> int:
    """Run the server until interrupted; 0 on a clean stop, 1 when the model failed to load."""
    import uvicorn

    from helpers.runtimes.gguf_check import check_gguf_file

    model = Path(model)
    check_gguf_file(model)  # FileNotFoundError / ValueError with what to do, before anything starts
    if host not in LOCAL_HOSTS:
        print(f"warning: binding {host} exposes the server beyond this machine; set an API key "
              f"({API_KEY_ENV} or --api-key-file)", flush=True)
    cfg = ServerConfig(model=model, host=host, port=port, n_ctx=n_ctx, n_threads=n_threads,
                       api_key=read_api_key(api_key_file), cors_origins=tuple(cors_origins),
                       allowed_hosts=tuple(allowed_hosts) + (("*",) if host in ("0.0.0.0", "::") else ()),
                       max_queue=max_queue, max_body_bytes=max_body_bytes)
    check_port(host, port)
    engine = Engine(cfg)
    print(f"serving {cfg.alias} on http://{host}:{port}/v1 (API key {'required' if cfg.api_key else 'off'}; "
          f"GET /health says when the model is loaded)", flush=True)
    uvicorn.run(create_app(cfg, engine), host=host, port=port, log_level="warning", timeout_graceful_shutdown=3)
    return 1 if engine.state == "error" else 0


# Kept for code that registered the handler with llama-cpp-python's own server (`chat_format="edge-slm"`).
def edge_slm_handler(llama, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                     temperature: float = 0.0, max_tokens: int | None = None, stream: bool = False,
                     seed: int | None = None, model: str | None = None, grammar=None, **_: Any):
    """llama-cpp-python chat handler: the workbook's template in, OpenAI tool calls out."""
    from helpers.runtimes.llama_chat import chat_completion, chat_completion_stream

    kwargs = dict(temperature=temperature if temperature is not None else 0.0, max_tokens=max_tokens or 256,
                  seed=seed if seed is not None else 123, model=model or "edge-slm", grammar=grammar)
    if stream:
        return chat_completion_stream(llama, messages, tools, **kwargs)
    out = chat_completion(llama, messages, tools, **kwargs)
    for k in ("x_raw", "x_error", "x_seconds"):
        out.pop(k, None)
    return out


def register_handler() -> None:
    """Make `chat_format="edge-slm"` known to llama-cpp-python."""
    from llama_cpp import llama_chat_format

    llama_chat_format.LlamaChatCompletionHandlerRegistry().register_chat_completion_handler(
        HANDLER_NAME, edge_slm_handler, overwrite=True)

