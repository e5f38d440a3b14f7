"""The `foundry` runtime: Foundry Local in-process (foundry-local-sdk), serving the workbook model.

Introduced in notebook 00; the Foundry Local notebook goes deeper. The workbook model is registered as
a bring-your-own model (the ONNX Runtime GenAI folder in data/onnx/int4) in Foundry Local's LOCAL
catalog, with the metadata Foundry needs for tool calling. Foundry Local's web service looks models up
in its online catalog only, so offline it cannot serve a bring-your-own model: use the in-process API
(this runtime) or the workbook's OpenAI-compatible server.
"""

from __future__ import annotations

import json
import threading
import uuid
from pathlib import Path
from typing import Any

from helpers.paths import BUILD
from helpers.registry import artefact_path
from helpers.runtimes.base import Availability, ChatResult, Runtime, RuntimeUnavailable, Timer
from helpers.runtimes.wire import normalize_messages
from helpers.runtimes.wire import decode_calls

MODEL_ID = "edge-slm-generic-cpu:1"
_LOCK = threading.Lock()
_MANAGER = None


def _manager():
    """The process-wide FoundryLocalManager (the SDK allows one), initialised with telemetry off."""
    global _MANAGER
    with _LOCK:
        if _MANAGER is None:
            from foundry_local_sdk import Configuration, FoundryLocalManager

            app_dir = BUILD / "foundry"
            app_dir.mkdir(parents=True, exist_ok=True)
            cfg = Configuration(app_name="edge-slm-workbook", app_data_dir=str(app_dir),
                                model_cache_dir=str(app_dir / "models"), logs_dir=str(app_dir / "logs"),
                                disable_nonessential_telemetry=True)
            FoundryLocalManager.initialize(cfg)
            _MANAGER = FoundryLocalManager.instance
        return _MANAGER


class FoundryRuntime(Runtime):
    """Foundry Local, in-process, with the workbook model registered as bring-your-own."""

    name = "foundry"

    def __init__(self, model_dir: str | Path | None = None, model_id: str = MODEL_ID) -> None:
        self.model_dir = Path(model_dir) if model_dir else artefact_path("onnx-int4").parent
        self.model_id = model_id
        self._model = None

    @property
    def model(self) -> str:
        return self.model_id

    def availability(self) -> Availability:
        try:
            import foundry_local_sdk  # noqa: F401
        except ImportError:
            return Availability(self.name, False, "foundry-local-sdk is not installed",
                                "install the workbook (`pip install -e .`); it brings foundry-local-sdk")
        if not (self.model_dir / "genai_config.json").exists():
            return Availability(self.name, False, f"no ONNX Runtime GenAI model in {self.model_dir}",
                                "run `python -m helpers export`")
        return Availability(self.name, True, "Foundry Local in-process SDK (bring-your-own model)",
                            models=[self.model_id])

    def load(self):
        """Register (again) and load the model; returns the SDK's model handle."""
        if self._model is not None:
            return self._model
        av = self.availability()
        if not av.ok:
            raise RuntimeUnavailable(f"foundry: {av.detail}; {av.fix}")
        from foundry_local_sdk import CatalogType, ModelInfoBuilder

        mgr = _manager()
        catalog = mgr.get_catalog(CatalogType.LOCAL)
        try:  # registration persists in the app data folder: registering the same id twice fails
            catalog.unregister_model(self.model_id)
        except Exception:
            pass
        with ModelInfoBuilder() as meta:
            meta.set_string_property("task", "chat-completion")
            meta.set_string_property("display_name", "Edge SLM (workbook model)")
            meta.set_int_property("supports_tool_calling", 1)
            meta.set_string_property("tool_call_start", "<tool_call>")
            meta.set_string_property("tool_call_end", "</tool_call>")
            model = catalog.register_model(model_path=str(self.model_dir.resolve()), model_id=self.model_id,
                                           metadata=meta)
        model.load()
        self._model = model
        return model

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
             temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> ChatResult:
        from foundry_local_sdk import (ChatSession, MessageItem, Request, RequestOptions, SearchOptions,
                                       ToolCallItem, ToolResultItem)

        model = self.load()
        timer = Timer()
        content, raw_calls, finish, usage = "", [], "stop", None
        with ChatSession(model) as session:
            session.set_options(RequestOptions(search=SearchOptions(temperature=temperature,
                                                                    max_output_tokens=max_tokens, seed=seed)))
            for t in tools or []:
                f = t.get("function", t)
                session.add_tool_definition(name=f["name"], description=f.get("description", ""),
                                            json_schema=json.dumps(f.get("parameters") or {"type": "object"}))
            with Request() as req:
                for m in normalize_messages(messages):
                    role, text = m["role"], m["content"]
                    if role == "system":
                        req.add_item(MessageItem.system(text))
                    elif role == "user":
                        req.add_item(MessageItem.user(text))
                    elif role == "assistant":
                        if text:
                            req.add_item(MessageItem.assistant(text))
                        for tc in m.get("tool_calls") or []:
                            f = tc.get("function", tc)
                            req.add_item(ToolCallItem(call_id=tc.get("id") or uuid.uuid4().hex[:8], name=f["name"],
                                                      arguments=f["arguments"]))
                    elif role == "tool":
                        req.add_item(ToolResultItem(call_id=m.get("tool_call_id", ""), result=text))
                try:
                    resp_cm = session.process_request(req)
                except Exception as exc:  # the SDK raises when the model breaks its tool-call grammar
                    return ChatResult(runtime=self.name, model=self.model_id, error={
                        "type": "runtime_error", "message": f"Foundry Local: {exc}"}, total_s=timer.elapsed)
                with resp_cm as resp:
                    for item in resp:
                        if isinstance(item, ToolCallItem):
                            raw_calls.append({"id": item.call_id, "function": {"name": item.name,
                                                                               "arguments": item.arguments}})
                        elif isinstance(item, MessageItem):
                            content += item.get_simple_text()
                        elif hasattr(item, "text"):
                            content += item.text
                    finish = str(getattr(resp.finish_reason, "name", resp.finish_reason) or "STOP").lower()
                    usage = resp.get_usage()
        calls, err = decode_calls(raw_calls, tools)
        return ChatResult(runtime=self.name, model=self.model_id, content=content, tool_calls=calls, error=err,
                          finish_reason="tool_calls" if calls else finish,
                          prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                          completion_tokens=getattr(usage, "completion_tokens", 0) or 0, total_s=timer.elapsed)

    def close(self) -> None:
        if self._model is not None:
            try:
                self._model.unload()
            except Exception:
                pass
            self._model = None
