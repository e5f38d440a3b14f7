"""The `foundry` runtime: Foundry Local in-process (foundry-local-sdk), serving the workbook model.

Introduced in notebook 00; notebook 12 goes deeper (the SDK in its cells). The workbook model is registered as
a bring-your-own model (the ONNX Runtime GenAI folder in data/onnx/int4) in Foundry Local's LOCAL
catalog, with the metadata Foundry needs for tool calling. Foundry Local's web service looks models up
in its online catalog only, so offline it cannot serve a bring-your-own model: use the in-process API
(this runtime) or the workbook's OpenAI-compatible server.
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from helpers.paths import BUILD
from helpers.registry import artefact_path
from helpers.runtimes.base import Availability, ChatResult, Runtime, RuntimeUnavailable, StreamEvent, Timer
from helpers.runtimes.wire import decode_calls, normalize_messages

MODEL_ID = "edge-slm-generic-cpu:1"
_LOCK = threading.Lock()
_MANAGER = None


def _manager():
    """The process-wide FoundryLocalManager (the SDK allows one): the one a notebook already initialised, or a
    new one with telemetry off and its data under build/foundry."""
    global _MANAGER
    with _LOCK:
        from foundry_local_sdk import Configuration, FoundryLocalManager

        if FoundryLocalManager.instance is not None:  # a notebook set it up (notebook 12): share it
            _MANAGER = FoundryLocalManager.instance
            return _MANAGER
        app_dir = BUILD / "foundry"
        app_dir.mkdir(parents=True, exist_ok=True)
        cfg = Configuration(app_name="edge-slm-workbook", app_data_dir=str(app_dir),
                            model_cache_dir=str(app_dir / "models"), logs_dir=str(app_dir / "logs"),
                            disable_nonessential_telemetry=True)
        FoundryLocalManager.initialize(cfg)
        _MANAGER = FoundryLocalManager.instance
        return _MANAGER


def check_model_folder(folder: str | Path) -> Path:
    """An ONNX Runtime GenAI folder Foundry Local can register: it exists and holds a readable
    `genai_config.json` naming model files that are there; otherwise a RuntimeUnavailable saying what to do."""
    folder = Path(folder)
    fix = "run `python -m helpers export` to rebuild data/onnx/int4, or pass the folder of an ONNX Runtime GenAI export"
    if not folder.is_dir():
        raise RuntimeUnavailable(f"foundry: no model folder at {folder}; {fix}.")
    cfg_path = folder / "genai_config.json"
    if not cfg_path.exists():
        raise RuntimeUnavailable(f"foundry: {folder} has no genai_config.json, so it is not an ONNX Runtime GenAI "
                                 f"model folder; {fix}.")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
        onnx_name = cfg["model"]["decoder"]["filename"]
    except (ValueError, KeyError, TypeError) as exc:
        raise RuntimeUnavailable(f"foundry: {cfg_path} is corrupt ({type(exc).__name__}: {exc}); {fix}.") from None
    if not (folder / onnx_name).exists():
        raise RuntimeUnavailable(f"foundry: {folder} lacks {onnx_name}, the model file its genai_config.json "
                                 f"names; {fix}.")
    return folder


def _looks_like_folder(model: str | Path) -> bool:
    text = str(model)
    return isinstance(model, Path) or os.sep in text or text.startswith(".") or Path(text).exists()


class FoundryRuntime(Runtime):
    """Foundry Local, in-process, with the workbook model registered as bring-your-own.

    `model_dir` is an ONNX Runtime GenAI folder (default data/onnx/int4), registered as `model_id` in the LOCAL
    catalog; or the alias or id of a model Foundry Local already knows (registered, or downloaded from its
    online catalog), which is looked up instead.
    """

    name = "foundry"

    def __init__(self, model_dir: str | Path | None = None, model_id: str = MODEL_ID) -> None:
        self.alias: str | None = None
        if model_dir is not None and not _looks_like_folder(model_dir):
            self.alias, model_id = str(model_dir), str(model_dir)
            model_dir = None
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
        if self.alias is not None:
            return Availability(self.name, True, f"Foundry Local in-process SDK (model {self.alias!r}, looked up "
                                "when loaded)", models=[self.alias])
        try:
            check_model_folder(self.model_dir)
        except RuntimeUnavailable as exc:
            detail, _, fix = str(exc).removeprefix("foundry: ").partition("; ")
            return Availability(self.name, False, detail, fix)
        return Availability(self.name, True, "Foundry Local in-process SDK (bring-your-own model)",
                            models=[self.model_id])

    def _lookup(self, mgr: Any):
        """The model `self.alias` names, from the LOCAL catalog, then the public one; or a clear error."""
        from foundry_local_sdk import CatalogType

        local = mgr.get_catalog(CatalogType.LOCAL)
        model = local.get_model_variant(self.alias) or local.get_model(self.alias)
        if model is None:
            public = mgr.get_catalog(CatalogType.PUBLIC)
            model = public.get_model_variant(self.alias) or public.get_model(self.alias)
            if model is not None and not model.is_cached:
                raise RuntimeUnavailable(f"foundry: model {self.alias!r} is in Foundry Local's online catalog but "
                                         "not downloaded; online, call model.download() once (notebook 12).")
        if model is None:
            known = sorted(m.id for m in local.list_models())
            raise RuntimeUnavailable(
                f"foundry: Foundry Local knows no model {self.alias!r} (registered here: {known or 'none'}); pass "
                "the folder of an ONNX Runtime GenAI export (e.g. data/onnx/int4) to register it, or the id of a "
                "registered model.")
        return model

    def load(self):
        """Register (again, if its folder changed) and load the model; returns the SDK's model handle."""
        if self._model is not None and self._model.is_loaded:  # another runtime object may have unloaded it
            return self._model
        try:
            import foundry_local_sdk  # noqa: F401
        except ImportError:
            raise RuntimeUnavailable("foundry: foundry-local-sdk is not installed; install the workbook "
                                     "(`pip install -e .`)") from None
        from foundry_local_sdk import CatalogType, FoundryLocalException, ModelInfoBuilder

        mgr = _manager()
        if self.alias is not None:
            model = self._lookup(mgr)
        else:
            folder = check_model_folder(self.model_dir).resolve()
            catalog = mgr.get_catalog(CatalogType.LOCAL)
            model = catalog.get_model_variant(self.model_id)
            if model is not None and Path(model.get_path()).resolve() != folder:
                if model.is_loaded:
                    model.unload()
                catalog.unregister_model(self.model_id)  # registering the same id twice fails: replace it
                model = None
            if model is None:
                with ModelInfoBuilder() as meta:
                    meta.set_string_property("task", "chat-completion")
                    meta.set_string_property("display_name", "Edge SLM (workbook model)")
                    meta.set_int_property("supports_tool_calling", 1)
                    meta.set_string_property("tool_call_start", "<tool_call>")
                    meta.set_string_property("tool_call_end", "</tool_call>")
                    model = catalog.register_model(model_path=str(folder), model_id=self.model_id, metadata=meta)
        if not model.is_loaded:
            try:
                model.load()
            except FoundryLocalException as exc:  # its message names the file ONNX Runtime could not read
                raise RuntimeUnavailable(f"foundry: Foundry Local could not load {self.model_id} from "
                                         f"{model.get_path()}: {exc}; rebuild it with `python -m helpers export`."
                                         ) from None
        self._model = model
        return model

    def _session(self, model: Any, tools: list[dict[str, Any]] | None, temperature: float, max_tokens: int,
                 seed: int):
        """A fresh ChatSession (a session keeps its turns: one per request keeps requests independent)."""
        from foundry_local_sdk import ChatSession, FoundryLocalException, RequestOptions, SearchOptions

        session = ChatSession(model)
        session.set_options(RequestOptions(search=SearchOptions(temperature=temperature, max_output_tokens=max_tokens,
                                                                seed=seed)))
        for t in tools or []:
            f = t.get("function", t) if isinstance(t, dict) else None
            name = f.get("name") if isinstance(f, dict) else None
            params = f.get("parameters", {"type": "object"}) if isinstance(f, dict) else None
            if not isinstance(name, str) or not name or not isinstance(params, dict):
                session._close()
                raise ValueError(f"invalid tool definition {t!r:.80}: a tool needs a name and a JSON-schema object "
                                 "as parameters, e.g. {'type': 'function', 'function': {'name': 'f', 'parameters': "
                                 "{'type': 'object', 'properties': {}}}}.")
            try:
                session.add_tool_definition(name=name, description=f.get("description", ""),
                                            json_schema=json.dumps(params))
            except (FoundryLocalException, ValueError, TypeError) as exc:
                session._close()
                raise ValueError(f"Foundry Local refused the tool definition {name!r}: {exc}. Check its name "
                                 "and that its parameters are a JSON-schema object.") from None
        return session

    def _request(self, messages: list[dict[str, Any]]):
        from foundry_local_sdk import MessageItem, Request, ToolCallItem, ToolResultItem

        req = Request()
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
        return req

    @staticmethod
    def _collect(item: Any, raw_calls: list[dict[str, Any]]) -> str:
        """Add a response item to the calls; return its text (empty for a call)."""
        from foundry_local_sdk import MessageItem, ToolCallItem

        if isinstance(item, ToolCallItem):
            raw_calls.append({"id": item.call_id, "function": {"name": item.name, "arguments": item.arguments}})
            return ""
        if isinstance(item, MessageItem):
            return item.get_simple_text()
        return getattr(item, "text", "") or ""

    def _result(self, content: str, raw_calls: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                finish: str, usage: Any, timer: Timer) -> ChatResult:
        calls, err = decode_calls(raw_calls, tools)
        return ChatResult(runtime=self.name, model=self.model_id, content=content, tool_calls=calls, error=err,
                          finish_reason="tool_calls" if calls else finish,
                          prompt_tokens=getattr(usage, "prompt_tokens", 0) or 0,
                          completion_tokens=getattr(usage, "completion_tokens", 0) or 0, ttft_s=timer.first,
                          total_s=timer.elapsed)

    def chat(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
             temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> ChatResult:
        from foundry_local_sdk import FoundryLocalException

        model = self.load()
        timer = Timer()
        content, raw_calls = "", []
        with self._session(model, tools, temperature, max_tokens, seed) as session, self._request(messages) as req:
            try:
                resp_cm = session.process_request(req)
            except FoundryLocalException as exc:  # the SDK raises when the model breaks its tool-call grammar
                return ChatResult(runtime=self.name, model=self.model_id, error={
                    "type": "runtime_error", "message": f"Foundry Local: {exc}"}, total_s=timer.elapsed)
            with resp_cm as resp:
                for item in resp:
                    content += self._collect(item, raw_calls)
                finish = str(getattr(resp.finish_reason, "name", resp.finish_reason) or "STOP").lower()
                usage = resp.get_usage()
        return self._result(content, raw_calls, tools, finish, usage, timer)

    def stream(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
               temperature: float = 0.0, max_tokens: int = 256, seed: int = 123) -> Iterator[StreamEvent]:
        """Streamed chat through the SDK's streaming session: text pieces as Foundry Local produces them."""
        from foundry_local_sdk import FoundryLocalException

        model = self.load()
        timer = Timer()
        content, raw_calls = "", []
        with self._session(model, tools, temperature, max_tokens, seed) as session, self._request(messages) as req:
            session.set_streaming(True)
            try:
                with session.process_streaming_request(req) as stream:
                    for item in stream:
                        piece = self._collect(item, raw_calls)
                        if piece:
                            timer.mark_first()
                            content += piece
                            yield StreamEvent(delta=piece)
                    with stream.final_response as final:
                        finish = str(getattr(final.finish_reason, "name", final.finish_reason) or "STOP").lower()
                        usage = final.get_usage()
            except FoundryLocalException as exc:  # the SDK raises when the model breaks its tool-call grammar
                yield StreamEvent(result=ChatResult(runtime=self.name, model=self.model_id, content=content, error={
                    "type": "runtime_error", "message": f"Foundry Local: {exc}"}, total_s=timer.elapsed))
                return
        yield StreamEvent(result=self._result(content, raw_calls, tools, finish, usage, timer))

    def close(self) -> None:
        if self._model is not None:
            with contextlib.suppress(Exception):
                self._model.unload()
            self._model = None
