"""The workbook's OpenAI-compatible server: llama.cpp's own server (llama_cpp.server) with a chat
handler for the workbook model, so tool calls come back as OpenAI `tool_calls`, streaming included.

Introduced in notebook 01; `python -m helpers serve` runs it and `LlamaCppServerRuntime` starts it.
It binds 127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from helpers.runtimes.base import default_threads

HANDLER_NAME = "edge-slm"


def edge_slm_handler(llama, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
                     temperature: float = 0.0, max_tokens: int | None = None, stream: bool = False,
                     seed: int | None = None, model: str | None = None, grammar=None, **_: Any):
    """llama-cpp-python chat handler: the workbook's template in, OpenAI tool calls out."""
    from helpers.runtimes.llama_chat import chat_completion, chat_completion_stream

    kwargs = {"temperature": temperature if temperature is not None else 0.0, "max_tokens": max_tokens or 256,
                  "seed": seed if seed is not None else 123, "model": model or "edge-slm", "grammar": grammar}
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


def serve(model: str | Path, host: str = "127.0.0.1", port: int = 8765, n_threads: int | None = None,
          n_ctx: int = 2048) -> None:
    """Run the server until interrupted."""
    import uvicorn
    from llama_cpp.server.app import create_app
    from llama_cpp.server.settings import ModelSettings, ServerSettings

    model = Path(model)
    if not model.exists():
        raise FileNotFoundError(f"No model file at {model}: run `python -m helpers export`.")
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: binding {host} exposes the server beyond this machine", flush=True)
    register_handler()
    settings = ModelSettings(model=str(model), model_alias=model.stem, chat_format=HANDLER_NAME, n_ctx=n_ctx,
                             n_threads=n_threads or default_threads(),
                             n_threads_batch=n_threads or default_threads(), verbose=False)
    # interrupt_requests=False: llama-cpp-python's default (True) ends a running stream whenever another request
    # arrives, so concurrent clients got answers cut short (notebook 17 measured it); queue them instead
    app = create_app(server_settings=ServerSettings(host=host, port=port, interrupt_requests=False),
                     model_settings=[settings])
    uvicorn.run(app, host=host, port=port, log_level="warning")
