"""Ollama without an Ollama server: recorded documentation answers parsed by the same code as live ones
(contract tests), the 0.6 client driven through an httpx MockTransport that replays recorded answers (a
test double, never shown as a runtime), the registration config, settings and client schema conversion."""


import inspect
import json
import math
from typing import Literal

import httpx
import ollama
import pytest
from pydantic import ValidationError

from helpers.paths import GGUF_DIR
from helpers.registry import sha256
from helpers.runtimes import RuntimeUnavailable, get_runtime
from helpers.runtimes.ollama import (
    OllamaRuntime,
    decode_tokens_per_s,
    parse_chat_response,
    prefill_tokens_per_s,
    require_capability,
    result_from_ollama,
)
from helpers.runtimes.ollama_admin import (
    OllamaModelConfig,
    check_env,
    client_tool_schema,
    recorded,
    register,
    schema_losses,
)
from helpers.runtimes.openai_compat import free_port

GGUF = GGUF_DIR / "edge-slm-q8_0.gguf"


def _replay(routes: dict[str, tuple[int, object]]):
    """An ollama.Client whose HTTP answers are recorded bodies (a test double for the transport only)."""
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        for prefix, (status, body) in routes.items():
            if request.url.path.startswith(prefix):
                if isinstance(body, list):  # a stream: one JSON object a line
                    return httpx.Response(status, content="\n".join(json.dumps(b) for b in body).encode())
                return httpx.Response(status, json=body)
        return httpx.Response(404, json={"error": f"no route {request.url.path}"})

    return ollama.Client(host="http://127.0.0.1:9", transport=httpx.MockTransport(handler)), seen


def test_recorded_tool_answer_parses_into_a_checked_call():
    req = recorded("chat_tools_request")
    res = result_from_ollama(recorded("chat_tools"), req["tools"])
    assert res.error is None and res.finish_reason == "tool_calls"
    assert [(c.name, c.arguments) for c in res.tool_calls] == [
        ("get_current_weather", {"format": "celsius", "location": "Paris, FR"})]
    assert res.completion_tokens == 33 and res.prompt_tokens == 122
    assert math.isclose(decode_tokens_per_s(recorded("chat_tools")), 33 / 552222000 * 1e9)
    assert math.isclose(prefill_tokens_per_s(recorded("chat_tools")), 122 / 328493000 * 1e9)


def test_recorded_arguments_breaking_the_schema_are_a_structured_error():
    req = recorded("chat_tools_request")
    answer = recorded("chat_tools")
    answer["message"]["tool_calls"][0]["function"]["arguments"]["format"] = "kelvin"
    res = result_from_ollama(answer, req["tools"])
    assert res.tool_calls == [] and res.error["type"] == "bad_arguments" and "kelvin" in res.error["message"]


def test_stream_final_chunk_without_message_still_parses():
    final = parse_chat_response(recorded("chat_stream_final"))
    assert final.done and final.eval_count == 282 and final.message.content == ""


def test_live_path_and_recorded_path_give_the_same_result():
    """OllamaRuntime.chat (the live code) on a replayed answer equals parsing the recorded answer directly."""
    req = recorded("chat_tools_request")
    client, seen = _replay({"/api/chat": (200, recorded("chat_tools"))})
    rt = OllamaRuntime(model="llama3.2")
    rt._client = client
    live = rt.chat(req["messages"], req["tools"])
    direct = result_from_ollama(recorded("chat_tools"), req["tools"], model="llama3.2")
    assert [(c.name, c.arguments) for c in live.tool_calls] == [(c.name, c.arguments) for c in direct.tool_calls]
    sent = json.loads(seen[0].content)
    assert sent["options"]["temperature"] == 0.0 and sent["tools"][0]["function"]["name"] == "get_current_weather"


def test_model_without_tools_capability_is_a_clear_error():
    client, _ = _replay({"/api/chat": (400, {"error": "registry.ollama.ai/library/gemma:2b does not support tools"})})
    rt = OllamaRuntime(model="gemma:2b")
    rt._client = client
    res = rt.chat([{"role": "user", "content": "weather in Paris?"}], recorded("chat_tools_request")["tools"])
    assert res.error["type"] == "no_tools_capability" and "TEMPLATE" in res.error["message"]
    with pytest.raises(ValueError, match="lacks the 'tools' capability"):
        require_capability({"capabilities": ["completion"]}, "tools", "gemma:2b")
    with pytest.raises(ValueError, match="did not report capabilities"):
        require_capability(recorded("show"), "tools", "llama3.2")
    require_capability({"capabilities": ["completion", "tools"]}, "tools", "x")


def test_ollama_named_but_not_running_says_how_to_start_it(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")
    with pytest.raises(RuntimeUnavailable, match="ollama serve"):
        get_runtime("ollama")


def test_registration_config_renders_modelfile_and_client_arguments():
    cfg = OllamaModelConfig(name="edge-slm:q8", gguf=GGUF, parameters={"temperature": 0, "num_thread": 1,
                                                                       "stop": ["<|end|>"]})
    mf = cfg.modelfile(relative_to=GGUF_DIR)
    assert mf.startswith("FROM ./edge-slm-q8_0.gguf\nTEMPLATE \"\"\"") and ".ToolCalls" in mf
    assert 'PARAMETER stop "<|end|>"' in mf and "PARAMETER num_thread 1" in mf
    digest = "sha256:" + sha256(GGUF)
    kw = cfg.create_kwargs(digest)
    assert kw["files"] == {"edge-slm-q8_0.gguf": digest} and "modelfile" not in kw
    assert set(kw) <= set(inspect.signature(ollama.Client.create).parameters)  # the 0.6 client takes them all
    assert "modelfile" not in inspect.signature(ollama.Client.create).parameters
    with pytest.raises(ValueError, match="create_blob"):
        cfg.create_kwargs("abc")


@pytest.mark.parametrize("bad, where", [({"name": "Edge SLM"}, "name"), ({"template": "{{ .Prompt }}"}, "template"),
                                        ({"gguf": GGUF_DIR / "nope.gguf"}, "gguf"),
                                        ({"parameters": {"num_threads": 2}}, "parameters")])
def test_registration_config_refuses_bad_input(bad, where):
    with pytest.raises(ValidationError) as info:
        OllamaModelConfig(**{"name": "edge-slm", "gguf": GGUF, **bad})
    assert info.value.errors()[0]["loc"][0] == where


def test_register_uploads_the_blob_then_creates_with_files():
    client, seen = _replay({"/api/blobs/": (201, {}), "/api/create": (200, recorded("create_status"))})
    statuses = register(client, OllamaModelConfig(name="edge-slm:q8", gguf=GGUF))
    assert statuses[-1] == "success"
    assert seen[0].url.path == "/api/blobs/sha256:" + sha256(GGUF)
    body = json.loads(seen[1].content)
    assert body["files"] == {GGUF.name: "sha256:" + sha256(GGUF)} and ".Tools" in body["template"]


def test_check_env_flags_invented_settings_and_every_interface():
    problems = check_env(recorded_course_env())
    flagged = {p.split(":")[0].split("=")[0] for p in problems}
    assert flagged == {"OLLAMA_HOST", "OLLAMA_NUM_GPU", "OLLAMA_NUM_THREAD", "OLLAMA_GPU_LAYERS", "OLLAMA_MAX_VRAM"}
    assert check_env({"OLLAMA_NUM_PARALLEL": "2", "OLLAMA_HOST": "127.0.0.1:11434", "PATH": "/bin"}) == []


def recorded_course_env() -> dict[str, str]:
    from helpers.paths import DATA

    return json.loads((DATA / "recorded" / "course" / "recipes.json").read_text())["ollama_env"]["vars"]


def test_client_conversion_drops_schema_constraints():
    def f(city: str, unit: Literal["c", "f"] = "c") -> str:
        """Weather.

        Args:
            city: the city
            unit: the unit
        """

    params = client_tool_schema(f)["function"]["parameters"]
    assert "enum" not in params["properties"]["unit"] and params["required"] == ["city", "unit"]
    schema = {"type": "object", "properties": {"n": {"type": "integer", "minimum": 1},
                                               "o": {"type": "object", "properties": {"z": {"type": "string"}}},
                                               "e": {"type": "string", "enum": ["a"]}}}
    after = client_tool_schema({"type": "function", "function": {"name": "g", "parameters": schema}})
    assert schema_losses(schema, after["function"]["parameters"]) == ["properties.n.minimum", "properties.o.properties"]
