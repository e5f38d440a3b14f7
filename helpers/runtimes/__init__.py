"""Runtimes: one interface over embedded, llamacpp, foundry, ollama, vllm and openai (notebook 00), plus
two reference runtimes for comparing exports: transformers and ortgenai.

`get_runtime()` reads `EDGEAI_RUNTIME` (auto or a name) and `EDGEAI_MODEL`. `auto` takes the first
server a learner runs (Ollama, vLLM, an OpenAI-compatible URL) and otherwise the embedded runtime, which
always works. A runtime named explicitly but not reachable is an error that says how to start it.
"""

from __future__ import annotations

import os
from typing import Any, Callable

from helpers.runtimes.base import (CAPABILITIES, Availability, CapabilityUnavailable, ChatResult, Runtime,
                                   RuntimeUnavailable, StreamEvent, ToolCall, validate_call)

AUTO_ORDER = ("ollama", "vllm", "openai", "embedded")  # openai only when its URL is on this machine


# name -> (module, class, the constructor argument that takes EDGEAI_MODEL); imported only when used
_CLASSES: dict[str, tuple[str, str, str]] = {
    "embedded": ("helpers.runtimes.embedded", "EmbeddedRuntime", "model_path"),
    "llamacpp": ("helpers.runtimes.openai_compat", "LlamaCppServerRuntime", "model_path"),
    "foundry": ("helpers.runtimes.foundry", "FoundryRuntime", "model_dir"),
    "ollama": ("helpers.runtimes.ollama", "OllamaRuntime", "model"),
    "vllm": ("helpers.runtimes.openai_compat", "VLLMRuntime", "model"),
    "openai": ("helpers.runtimes.openai_compat", "OpenAICompatRuntime", "model"),
    "transformers": ("helpers.runtimes.reference", "TransformersRuntime", "model_dir"),
    "ortgenai": ("helpers.runtimes.reference", "OrtGenAIRuntime", "model_dir"),
}


def _factory(name: str) -> Callable[..., Runtime]:
    import importlib

    module, cls_name, model_arg = _CLASSES[check_runtime_name(name)]
    cls = getattr(importlib.import_module(module), cls_name)
    return lambda model=None, **kw: cls(**{model_arg: model}, **kw)


RUNTIME_NAMES = tuple(_CLASSES)


def check_runtime_name(name: str) -> str:
    """Normalise and check a runtime name; raise ValueError naming the valid ones."""
    key = (name or "auto").strip().lower()
    if key != "auto" and key not in RUNTIME_NAMES:
        raise ValueError(f"Unknown runtime {name!r}. Choose one of: auto, {', '.join(RUNTIME_NAMES)} "
                         "(set EDGEAI_RUNTIME, or pass runtime=...).")
    return key


def get_runtime(name: str | None = None, model: str | None = None, *, check: bool = True, **kwargs: Any) -> Runtime:
    """The runtime to use: `name` or EDGEAI_RUNTIME (default auto), with `model` or EDGEAI_MODEL.

    A runtime named explicitly is checked (`availability()`) unless `check=False`, which only builds it (for a
    remote endpoint that should not be contacted before the first request)."""
    key = check_runtime_name(name if name is not None else os.environ.get("EDGEAI_RUNTIME", "auto"))
    model = model if model is not None else (os.environ.get("EDGEAI_MODEL") or None)
    if key == "auto":
        for cand in AUTO_ORDER:
            if _looks_like_path(model) and cand != "embedded":
                continue  # a GGUF path is for the embedded runtime
            rt = _factory(cand)(model=model if cand != "embedded" or _looks_like_path(model) else None,
                                **(kwargs if cand == "embedded" else {}))
            if cand == "openai" and not _is_loopback(getattr(rt, "base_url", "")):
                continue  # auto never sends prompts off this machine; name `openai` explicitly for that
            if rt.availability().ok:
                return rt
        raise RuntimeUnavailable("No runtime is available, not even the embedded one: run `python -m helpers "
                                 "doctor` to see what is missing.")
    if key == "llamacpp":  # starts a server: only when asked for by name
        return _factory(key)(model=model, **kwargs)
    rt = _factory(key)(model=model, **kwargs)
    if not check:
        return rt
    av = rt.availability()
    if not av.ok:
        raise RuntimeUnavailable(f"Runtime {key!r} is not available: {av.detail}. To use it: {av.fix}. "
                                 "Or set EDGEAI_RUNTIME=embedded to use the workbook's own model.")
    return rt


def _is_loopback(url: str) -> bool:
    from urllib.parse import urlparse

    host = urlparse(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def _looks_like_path(model: str | None) -> bool:
    return bool(model) and (model.endswith(".gguf") or os.sep in model)


def survey() -> list[Availability]:
    """Availability of every runtime, without starting anything (for `doctor` and notebook 00)."""
    rows = []
    for name in RUNTIME_NAMES:
        if name == "llamacpp":
            from helpers.runtimes.openai_compat import llamacpp_startable

            rows.append(llamacpp_startable())
            continue
        try:
            rows.append(_factory(name)().availability())
        except Exception as exc:  # a broken install must not break the survey
            rows.append(Availability(name, False, f"check failed: {exc}", "run `python -m helpers doctor`"))
    return rows


__all__ = ["Availability", "CAPABILITIES", "CapabilityUnavailable", "ChatResult", "Runtime", "RuntimeUnavailable",
           "StreamEvent", "ToolCall",
           "RUNTIME_NAMES", "get_runtime", "survey", "check_runtime_name", "validate_call"]


# The concrete runtimes and their helpers, for notebooks (`from helpers.runtimes import EmbeddedRuntime`); each
# loads its module on first use. Agents, quant, serving and monitoring use get_runtime() instead.
from helpers.face import lazy_face  # noqa: E402

__getattr__, _face_dir, _FACE = lazy_face(__name__, {
    "embedded": ["EmbeddedRuntime", "time_to_first_token"],
    "openai_compat": ["OpenAICompatRuntime", "LlamaCppServerRuntime", "VLLMRuntime", "llamacpp_startable"],
    "foundry": ["FoundryRuntime"],
    "ollama": ["OllamaRuntime"],
    "reference": ["TransformersRuntime", "OrtGenAIRuntime"],
    "constrained": ["extractive_tools"],
})
__all__ += _FACE
