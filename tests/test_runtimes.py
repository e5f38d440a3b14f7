"""Runtime layer tests. Ollama and vLLM cannot run on these machines: their tests check that they are
reported absent with a way to start them, and a contract test replays a response shaped like Ollama's
documented /api/chat tool-call answer (labelled as such)."""

import json

import pytest

from helpers.domain.chat_format import dump_json
from helpers.runtimes import RuntimeUnavailable, get_runtime, survey
from helpers.runtimes.base import ToolCall, validate_call
from helpers.runtimes.wire import decode_calls


def test_unknown_runtime_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("EDGEAI_RUNTIME", "quantum")
    with pytest.raises(ValueError, match="Unknown runtime 'quantum'. Choose one of: auto, embedded"):
        get_runtime()


@pytest.mark.parametrize("name,env,hint", [
    ("ollama", {"OLLAMA_HOST": "127.0.0.1:9"}, "ollama serve"),
    ("vllm", {"VLLM_BASE_URL": "http://127.0.0.1:9/v1"}, "vllm serve"),
    ("openai", {"OPENAI_BASE_URL": ""}, "OPENAI_BASE_URL"),
])
def test_named_but_unreachable_runtime_says_how_to_start_it(monkeypatch, name, env, hint):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(RuntimeUnavailable, match=hint):
        get_runtime(name)


def test_auto_falls_back_to_embedded(monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", "127.0.0.1:9")
    monkeypatch.setenv("VLLM_BASE_URL", "http://127.0.0.1:9/v1")
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("EDGEAI_MODEL", raising=False)
    rt = get_runtime("auto")
    assert rt.name == "embedded"
    names = {r.name: r for r in survey()}
    assert set(names) == {"embedded", "llamacpp", "foundry", "ollama", "vllm", "openai", "transformers", "ortgenai"}
    assert names["embedded"].ok and not names["ollama"].ok and names["ollama"].fix


def test_embedded_calls_a_tool_and_says_who_answered(embedded, tools):
    res = embedded.chat([{"role": "user", "content": "What's the weather in Paris?"}], tools)
    assert res.answered_by == "embedded/edge-slm-f16"
    assert res.error is None and res.finish_reason == "tool_calls"
    assert [c.name for c in res.tool_calls] == ["get_weather"]
    assert res.tool_calls[0].arguments == {"city": "Paris"}
    assert res.prompt_tokens > 20 and res.completion_tokens > 5


def test_embedded_answers_text_and_streams(embedded, tools):
    res = embedded.chat([{"role": "user", "content": "hello"}], tools)
    assert res.content and not res.tool_calls and res.finish_reason == "stop"
    events = list(embedded.stream([{"role": "user", "content": "hello"}], tools))
    assert "".join(e.delta for e in events) == res.content
    assert events[-1].result.content == res.content


def test_embedded_multi_turn_uses_the_tool_result(embedded, tools):
    msgs = [{"role": "user", "content": "where is order 48213?"}]
    first = embedded.chat(msgs, tools)
    assert first.tool_calls and first.tool_calls[0].name == "lookup_order"
    # the result as the workbook's agent loop sends it: compact JSON, the form the model was trained on
    msgs += [first.message(), {"role": "tool", "tool_call_id": first.tool_calls[0].id,
                               "content": dump_json({"order_id": "48213", "status": "shipped", "eta": "2026-12-01",
                                                     "total": 19.99})}]
    final = embedded.chat(msgs, tools)
    assert not final.tool_calls and "shipped" in final.content and "2026-12-01" in final.content


def test_a_spaced_json_tool_result_reads_as_the_compact_one(embedded, tools):
    """A client that sends `json.dumps(result)` (spaces after `:` and `,`) gets the same prompt, so the same answer."""
    from helpers.runtimes.llama_chat import normalize_messages

    result = {"order_id": "48213", "status": "delayed", "eta": "2026-12-03", "total": 7.5}
    call = {"id": "c1", "type": "function",
            "function": {"name": "lookup_order", "arguments": json.dumps({"order_id": "48213"})}}
    chat = [{"role": "user", "content": "where is order 48213?"}, {"role": "assistant", "content": None,
                                                                    "tool_calls": [call]}]
    spaced = chat + [{"role": "tool", "tool_call_id": "c1", "content": json.dumps(result)}]
    compact = chat + [{"role": "tool", "tool_call_id": "c1", "content": dump_json(result)}]
    norm = normalize_messages(spaced)
    assert norm[2]["content"] == dump_json(result) and norm[1]["tool_calls"][0]["function"]["arguments"] == \
        '{"order_id":"48213"}'
    assert spaced[2]["content"] == json.dumps(result)  # the caller's messages are not modified
    a, b = embedded.chat(spaced, tools), embedded.chat(compact, tools)
    assert a.content == b.content and "delayed" in a.content
    # text that is not JSON, or is broken JSON, is passed on as it is
    for text in ("order shipped", "{oops", "[1, 2"):
        assert normalize_messages([{"role": "tool", "content": text}])[0]["content"] == text


def test_bad_messages_are_rejected_clearly(embedded, tools):
    with pytest.raises(ValueError, match="non-empty list"):
        embedded.chat([], tools)
    with pytest.raises(ValueError, match="needs a role"):
        embedded.chat([{"role": "wizard", "content": "hi"}], tools)
    from helpers.runtimes.llama_chat import ContextOverflow

    with pytest.raises(ContextOverflow, match="over the model's 2048-token context"):
        embedded.chat([{"role": "user", "content": "order " * 3000}], tools)


def test_wrong_argument_types_become_structured_errors(tools):
    err = validate_call(ToolCall("1", "calculate_circle_area", {"radius": "big"}), tools)
    assert err["type"] == "bad_arguments" and "radius" in err["message"]
    err = validate_call(ToolCall("1", "lookup_order", {"order_id": "#12"}), tools)
    assert err["type"] == "bad_arguments"
    assert validate_call(ToolCall("1", "launch", {}), tools)["type"] == "unknown_tool"
    calls, err = decode_calls([{"id": "1", "function": {"name": "get_weather", "arguments": "{oops"}}], tools)
    assert calls == [] and err["type"] == "invalid_json"


def test_openai_compatible_server_answers_a_tool_call(tools):
    """The workbook's llama.cpp server on 127.0.0.1, through the official openai client."""
    from openai import OpenAI

    rt = get_runtime("llamacpp")
    try:
        assert rt.base_url.startswith("http://127.0.0.1:")
        client = OpenAI(base_url=rt.base_url, api_key="local")
        resp = client.chat.completions.create(model=rt.model, temperature=0, tools=tools,
                                              messages=[{"role": "user", "content": "check stock of SKU-QX42"}])
        choice = resp.choices[0]
        assert choice.finish_reason == "tool_calls"
        call = choice.message.tool_calls[0]
        assert call.function.name == "check_inventory"
        assert json.loads(call.function.arguments) == {"product_sku": "SKU-QX42"}
        stream = client.chat.completions.create(model=rt.model, temperature=0, tools=tools, stream=True,
                                                messages=[{"role": "user", "content": "check stock of SKU-QX42"}])
        chunks = list(stream)
        assert chunks[-1].choices[0].finish_reason == "tool_calls"
        deltas = [c.choices[0].delta.tool_calls for c in chunks if c.choices[0].delta.tool_calls]
        assert deltas[0][0].function.name == "check_inventory"
        res = rt.chat([{"role": "user", "content": "hi"}], tools)
        assert res.answered_by.startswith("llamacpp/") and res.content
    finally:
        rt.close()
    assert rt.proc is None


def test_foundry_local_in_process_calls_a_tool(tools):
    pytest.importorskip("foundry_local_sdk")
    rt = get_runtime("foundry")
    try:
        res = rt.chat([{"role": "user", "content": "What's the weather in Paris?"}], tools)
        assert res.answered_by == "foundry/edge-slm-generic-cpu:1"
        assert res.error is None and [c.name for c in res.tool_calls] == ["get_weather"]
        assert res.tool_calls[0].arguments == {"city": "Paris"}
        text = rt.chat([{"role": "user", "content": "hello"}], tools)
        assert text.content and not text.tool_calls and not text.content.startswith("MESSAGE")
    finally:
        rt.close()


def test_ollama_contract_with_a_documented_response_shape(tools):
    """Contract test, not a real Ollama (none can run here): a loopback HTTP stub answers /api/tags and
    /api/chat with the response shapes of the Ollama API documentation; the real `ollama` client and the
    workbook's OllamaRuntime must turn its tool call into a ToolCall and say who answered."""
    import http.server
    import threading

    from helpers.runtimes.ollama import OllamaRuntime

    documented_chat = {"model": "llama3.2:1b", "created_at": "2025-07-07T20:22:19.184789Z", "done": True,
                       "done_reason": "stop", "prompt_eval_count": 171, "eval_count": 21,
                       "message": {"role": "assistant", "content": "",
                                   "tool_calls": [{"function": {"name": "get_weather",
                                                                "arguments": {"city": "Tokyo"}}}]}}
    documented_tags = {"models": [{"name": "llama3.2:1b", "model": "llama3.2:1b", "size": 1321098329}]}
    seen = {}

    class Stub(http.server.BaseHTTPRequestHandler):
        def _send(self, doc):
            body = json.dumps(doc).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            self._send(documented_tags)

        def do_POST(self):
            seen["request"] = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self._send(documented_chat)

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Stub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        rt = OllamaRuntime(host=f"http://127.0.0.1:{server.server_port}")
        assert rt.availability().ok and rt.model == "llama3.2:1b"
        res = rt.chat([{"role": "user", "content": "weather in Tokyo?"}], tools)
    finally:
        server.shutdown()
    # the ollama client sends the tools (its Tool model drops JSON-schema keys such as `pattern`)
    sent = seen["request"]["tools"]
    assert [t["function"]["name"] for t in sent] == [t["function"]["name"] for t in tools]
    assert sent[0]["function"]["parameters"]["required"] == ["order_id"]
    assert seen["request"]["options"]["temperature"] == 0.0
    assert res.answered_by == "ollama/llama3.2:1b" and res.tool_calls[0].arguments == {"city": "Tokyo"}
    assert res.prompt_tokens == 171 and res.finish_reason == "tool_calls"


def test_extractive_constraint_offers_the_users_spans(tools):
    from helpers.runtimes.constrained import extractive_tools, grammar_text, reply_grammar

    msgs = [{"role": "user", "content": "Where is order #48213? I'm c-4821, call me at 3pm. Weather in São Paulo?"}]
    props = {t["function"]["name"]: t["function"]["parameters"]["properties"] for t in extractive_tools(tools, msgs)}
    assert props["lookup_order"]["order_id"]["enum"] == ["48213", "4821"]
    assert "C-4821" in props["lookup_customer"]["customer_id"]["enum"]
    assert "São Paulo" in props["get_weather"]["city"]["enum"]
    assert "enum" not in props["schedule_callback"]["preferred_time"]  # 3pm must become 15:00: not verbatim
    assert props["create_ticket"]["priority"]["enum"] == ["low", "medium", "high"]
    assert "48213" in grammar_text(extractive_tools(tools, msgs))
    assert reply_grammar(tools, msgs, mode="extractive") is not None
    with pytest.raises(ValueError, match="mode must be one of"):
        reply_grammar(tools, msgs, mode="magic")


def test_call_text_that_is_not_a_call_is_reported():
    from helpers.runtimes.wire import call_text_error

    err = call_text_error('<tool_call>[{"name":"get_weather","parameters":{"city":"Paris"', [])
    assert err["type"] == "unterminated_call"
    assert call_text_error("Hello!", []) is None
