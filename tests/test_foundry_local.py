"""Foundry Local in-process (the `foundry` runtime), the Agent Framework client over a runtime, and lab 12's
checks. Bad input gets a clear error: a missing or corrupt model folder, an unknown model alias, an invalid
tool definition. Tests that need the SDK skip with a message when Foundry Local cannot start here."""

from __future__ import annotations

import asyncio
import json
import shutil
from types import SimpleNamespace

import pytest

from helpers.paths import ONNX_DIR
from helpers.runtimes import RuntimeUnavailable, get_runtime
from helpers.runtimes.base import ChatResult, Runtime

ORDER_TOOL = {"type": "function", "function": {
    "name": "lookup_order", "description": "Look up an order by its number.",
    "parameters": {"type": "object", "properties": {"order_id": {"type": "string"}}, "required": ["order_id"]}}}


@pytest.fixture(scope="module")
def foundry():
    """The `foundry` runtime with the shipped int4 model loaded, or a skip saying why it cannot start."""
    pytest.importorskip("foundry_local_sdk", reason="foundry-local-sdk is not installed")
    from helpers.runtimes.foundry import FoundryRuntime

    rt = FoundryRuntime()
    try:
        rt.load()
    except Exception as exc:  # noqa: BLE001 - any failure to start (no native runtime, a broken install)
        pytest.skip(f"Foundry Local cannot start here: {exc}")
    yield rt
    rt.close()


def test_missing_folder_is_unavailable_with_a_fix(tmp_path):
    from helpers.runtimes.foundry import FoundryRuntime

    rt = FoundryRuntime(tmp_path / "nope")
    av = rt.availability()
    assert not av.ok and "no model folder" in av.detail and "python -m helpers export" in av.fix
    with pytest.raises(RuntimeUnavailable, match="no model folder.*python -m helpers export"):
        get_runtime("foundry", model=str(tmp_path / "nope"))


@pytest.mark.parametrize("damage, message", [
    ("no_config", "has no genai_config.json"),
    ("bad_json", "genai_config.json is corrupt"),
    ("no_onnx", "lacks model.onnx"),
])
def test_corrupt_folder_is_refused_before_the_sdk_sees_it(tmp_path, damage, message):
    from helpers.runtimes.foundry import FoundryRuntime, check_model_folder

    folder = tmp_path / "int4"
    folder.mkdir()
    if damage != "no_config":
        shutil.copy(ONNX_DIR / "int4" / "genai_config.json", folder)
    if damage == "bad_json":
        (folder / "genai_config.json").write_text('{"model": {"decoder": ', encoding="utf-8")
    with pytest.raises(RuntimeUnavailable, match=message):
        check_model_folder(folder)
    av = FoundryRuntime(folder).availability()
    assert not av.ok and message.split()[-1] in av.detail and "export" in av.fix


def test_corrupt_onnx_file_fails_to_load_with_a_clear_error(foundry, tmp_path):
    from helpers.runtimes.foundry import FoundryRuntime

    folder = tmp_path / "int4"
    shutil.copytree(ONNX_DIR / "int4", folder)
    (folder / "model.onnx").write_bytes(b"this is not an ONNX graph")
    rt = FoundryRuntime(folder, model_id="edge-slm-corrupt-test:1")
    try:
        with pytest.raises(RuntimeUnavailable,
                           match="could not load edge-slm-corrupt-test:1.*python -m helpers export"):
            rt.load()
    finally:
        from foundry_local_sdk import CatalogType

        from helpers.runtimes.foundry import _manager

        _manager().get_catalog(CatalogType.LOCAL).unregister_model("edge-slm-corrupt-test:1")


def test_unknown_alias_names_what_is_registered(foundry):
    rt = get_runtime("foundry", model="no-such-model")
    assert rt.alias == "no-such-model"
    with pytest.raises(RuntimeUnavailable, match="knows no model 'no-such-model'.*edge-slm-generic-cpu:1"):
        rt.chat([{"role": "user", "content": "hi"}])


def test_a_registered_id_is_found_by_alias_lookup(foundry):
    rt = get_runtime("foundry", model=foundry.model_id)
    assert rt.load() is not None and rt.model == foundry.model_id


@pytest.mark.parametrize("tool, message", [
    ({"type": "function", "function": {"name": "", "parameters": {"type": "object"}}}, "invalid tool definition"),
    ({"type": "function", "function": {"name": "f", "parameters": "not a schema"}}, "invalid tool definition"),
    ("lookup_order", "invalid tool definition"),
])
def test_invalid_tool_definition_is_a_clear_error(foundry, tool, message):
    with pytest.raises(ValueError, match=message):
        foundry.chat([{"role": "user", "content": "where is my order 48213?"}], [tool])


def test_a_tool_foundry_refuses_is_a_clear_error(foundry):
    with pytest.raises(ValueError,
                       match="Foundry Local refused the tool definition 'lookup_order'.*already registered"):
        foundry.chat([{"role": "user", "content": "where is my order 48213?"}], [ORDER_TOOL, ORDER_TOOL])


def test_tool_call_and_result_round_trip(foundry):
    msgs = [{"role": "user", "content": "where is my order 48213?"}]
    res = foundry.chat(msgs, [ORDER_TOOL], max_tokens=96)
    assert res.error is None and [(c.name, c.arguments) for c in res.tool_calls] == [("lookup_order",
                                                                                    {"order_id": "48213"})]
    assert res.answered_by == "foundry/edge-slm-generic-cpu:1" and res.finish_reason == "tool_calls"
    msgs += [res.message(), {"role": "tool", "tool_call_id": res.tool_calls[0].id,
                             "content": json.dumps({"order_id": "48213", "status": "shipped"})}]
    final = foundry.chat(msgs, [ORDER_TOOL], max_tokens=96)
    assert final.error is None and "shipped" in final.content and "<tool_call>" not in final.content


def test_stream_adds_up_to_chat(foundry):
    msgs = [{"role": "user", "content": "hello"}]
    events = list(foundry.stream(msgs, max_tokens=64))
    deltas = [e.delta for e in events if e.delta]
    result = events[-1].result
    assert len(deltas) > 1 and "".join(deltas) == result.content == foundry.chat(msgs, max_tokens=64).content
    assert result.ttft_s is not None and result.ttft_s <= result.total_s
    calls = list(foundry.stream([{"role": "user", "content": "where is my order 48213?"}], [ORDER_TOOL]))
    assert not any(e.delta for e in calls) and calls[-1].result.tool_calls[0].name == "lookup_order"


# --- the Agent Framework client over a runtime -------------------------------------------------------------


def test_openai_tool_checks_names_and_schemas():
    from helpers.agents.maf_runtime import openai_tool

    assert openai_tool(ORDER_TOOL)["function"]["name"] == "lookup_order"
    assert openai_tool(ORDER_TOOL["function"])["function"]["parameters"]["required"] == ["order_id"]
    with pytest.raises(ValueError, match="tool name 'bad name!' is invalid"):
        openai_tool({"name": "bad name!", "parameters": {"type": "object"}})
    with pytest.raises(ValueError, match="parameters must be a JSON-schema object"):
        openai_tool({"name": "f", "parameters": {"type": "array"}})
    with pytest.raises(ValueError, match="not a function tool"):
        openai_tool(42)


def test_framework_messages_become_openai_messages():
    from agent_framework import Content, Message

    from helpers.agents.maf_runtime import to_openai_messages

    msgs = [Message("user", ["where is 48213?"]),
            Message("assistant", [Content.from_function_call(call_id="c1", name="lookup_order",
                                                             arguments={"order_id": "48213"})]),
            Message("tool", [Content.from_function_result(call_id="c1", result={"status": "shipped"})])]
    assert to_openai_messages(msgs) == [
        {"role": "user", "content": "where is 48213?"},
        {"role": "assistant", "content": "", "tool_calls": [{"id": "c1", "type": "function", "function": {
            "name": "lookup_order", "arguments": '{"order_id": "48213"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "content": '{"status": "shipped"}'}]


class _BrokenModelRuntime(Runtime):
    """A runtime whose model breaks the tool-call format: how the client reports it (unit test double)."""

    name = "broken"

    def availability(self):
        raise NotImplementedError

    @property
    def model(self) -> str:
        return "broken-model"

    def chat(self, messages, tools=None, **kw):
        return ChatResult(runtime=self.name, model=self.model, error={"type": "runtime_error",
                                                                      "message": "Model emitted an invalid tool call"})


def test_a_model_error_becomes_a_framework_error_naming_the_runtime():
    from agent_framework import Message
    from agent_framework.exceptions import ChatClientInvalidResponseException

    from helpers.agents.maf import runtime_chat_client

    client = runtime_chat_client(_BrokenModelRuntime())
    with pytest.raises(ChatClientInvalidResponseException, match="broken/broken-model: runtime_error: Model emitted"):
        asyncio.run(client.get_response([Message("user", ["hi"])]))
    with pytest.raises(TypeError, match="not a workbook runtime"):
        runtime_chat_client(object())


def test_framework_agent_runs_a_shop_tool_on_foundry(foundry, tmp_path):
    from agent_framework import Agent

    from helpers.agents.maf import runtime_chat_client, shop_functions
    from helpers.domain.tools import Shop

    shop = Shop.create(tmp_path / "shop.sqlite", seed=123)
    order_id = shop.db.execute("SELECT order_id FROM orders ORDER BY order_id LIMIT 1").fetchone()[0]
    want = shop.lookup_order(order_id)
    shop.close()
    agent = Agent(client=runtime_chat_client(foundry), name="kiosk", tools=shop_functions(tmp_path / "shop.sqlite"))

    async def run():
        response = await agent.run(f"Where is my order {order_id}?")
        streamed = [u async for u in agent.run(f"Where is my order {order_id}?", stream=True)]
        return response, streamed

    response, streamed = asyncio.run(run())
    results = [c.result for m in response.messages for c in m.contents if c.type == "function_result"]
    assert [json.loads(r) for r in results] == [want]
    assert want["status"] in response.text
    assert "".join(u.text or "" for u in streamed) == response.text


def test_framework_rejects_an_invalid_tool_before_the_model_runs(foundry):
    from agent_framework import Message

    from helpers.agents.maf import runtime_chat_client

    client = runtime_chat_client(foundry)
    with pytest.raises(ValueError, match="parameters must be a JSON-schema object"):
        asyncio.run(client.get_response([Message("user", ["hi"])], options={
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "string"}}}]}))


# --- lab 12's checks fail on wrong answers with a hint -----------------------------------------------------


def _model(**kw):
    base = {"id": "lab12-edge-slm:1", "get_path": lambda: str(ONNX_DIR / "int4"), "supports_tool_calling": True,
            "is_loaded": True, "info": SimpleNamespace(task="chat-completion")}
    base.update(kw)
    return SimpleNamespace(**base)


def test_lab12_registration_check_fails_on_wrong_answers(capsys):
    from helpers.labs.lab12 import check_registration

    folder = ONNX_DIR / "int4"
    check_registration(_model(), folder, "lab12-edge-slm:1")
    assert "PASS" in capsys.readouterr().out
    for model, model_id, hint in [
        (_model(is_loaded=False), "lab12-edge-slm:1", "call model.load"),
        (_model(info=SimpleNamespace(task="")), "lab12-edge-slm:1", "chat-completion"),
        (_model(supports_tool_calling=False), "lab12-edge-slm:1", "supports_tool_calling"),
        (_model(get_path=lambda: "/tmp"), "lab12-edge-slm:1", "int4 folder"),
        (_model(id="lab12"), "lab12", "<name>:<version>"),
        (None, "lab12-edge-slm:1", "register_model"),
    ]:
        with pytest.raises(AssertionError, match=hint):
            check_registration(model, folder, model_id)


def test_lab12_tool_round_trip_check_fails_on_wrong_answers(tmp_path):
    from helpers.domain.tools import Shop
    from helpers.labs.lab12 import check_tool_round_trip

    shop = Shop.create(tmp_path / "shop.sqlite", seed=123)
    oid = shop.db.execute("SELECT order_id FROM orders ORDER BY order_id LIMIT 1").fetchone()[0]
    want = shop.lookup_order(oid)
    shop.close()
    call = SimpleNamespace(call_id="c1", name="lookup_order", arguments=json.dumps({"order_id": oid}))
    good = f"Order {oid} is {want['status']}."
    check_tool_round_trip(call, want, good, tmp_path / "shop.sqlite")
    other = "shipped" if want["status"] != "shipped" else "in transit"
    for args, hint in [
        ((None, want, good), "ToolCallItem"),
        ((SimpleNamespace(call_id="c", name="rm_rf", arguments="{}"), want, good), "not a domain tool"),
        ((call, {**want, "status": other}, good), "run the tool"),
        ((call, want, ""), "SAME session"),
        ((call, want, '<tool_call>[{"name":"lookup_order"}]</tool_call>'), "markup"),
        ((call, want, "Hello! What can I do for you?"), "uses nothing of the tool result"),
        ((call, want, f"Order {oid} is {other}."), "compact JSON"),
    ]:
        with pytest.raises(AssertionError, match=hint):
            check_tool_round_trip(*args, tmp_path / "shop.sqlite")


def test_lab12_streaming_and_web_checks_fail_on_wrong_answers():
    from helpers.labs.lab12 import check_streaming, check_web_service

    check_streaming(["Hel", "lo"], "Hello")
    for pieces, hint in [([], "empty"), (["Hello"], "one piece"), (["Hel", "p"], "join to"), ([1, 2], "item.text")]:
        with pytest.raises(AssertionError, match=hint):
            check_streaming(pieces, "Hello")
    stopped, running = SimpleNamespace(urls=None), SimpleNamespace(urls=["http://127.0.0.1:5"])
    check_web_service("http://127.0.0.1:5", 404, 404, stopped)
    for args, hint in [
        (("http://0.0.0.0:5", 404, 404, stopped), "loopback"),
        (("http://127.0.0.1:5", 200, 404, stopped), "not 404"),
        (("http://127.0.0.1:5", 404, 200, stopped), "/health"),
        (("http://127.0.0.1:5", 404, 404, running), "still running"),
    ]:
        with pytest.raises(AssertionError, match=hint):
            check_web_service(*args)


def test_lab12_framework_agent_check_fails_on_wrong_answers(tmp_path):
    from agent_framework import Agent, AgentResponse, Content, Message

    from helpers.agents.maf import runtime_chat_client
    from helpers.domain.tools import Shop
    from helpers.labs.lab12 import check_framework_agent

    shop = Shop.create(tmp_path / "shop.sqlite", seed=123)
    oid = shop.db.execute("SELECT order_id FROM orders ORDER BY order_id LIMIT 1").fetchone()[0]
    want = shop.lookup_order(oid)
    shop.close()
    fake_foundry = SimpleNamespace(name="foundry", model="m", chat=lambda *a, **k: None)
    agent = Agent(client=runtime_chat_client(fake_foundry), name="orders")

    def response(result, text="Order is fine."):
        return AgentResponse(messages=[
            Message("assistant", [Content.from_function_call(call_id="c1", name="lookup_order",
                                                             arguments={"order_id": oid})]),
            Message("tool", [Content.from_function_result(call_id="c1", result=json.dumps(result))]),
            Message("assistant", [text])])

    check_framework_agent(agent, response(want), tmp_path / "shop.sqlite")
    other = Agent(client=runtime_chat_client(_BrokenModelRuntime()), name="orders")
    for args, hint in [
        (("not an agent", response(want)), "build an agent_framework.Agent"),
        ((other, response(want)), "runs on 'broken'"),
        ((agent, None), "save `response"),
        ((agent, AgentResponse(messages=[Message("assistant", ["hi"])])), "ran no tool"),
        ((agent, response({**want, "status": "lost"})), "the shop holds"),
        ((agent, response(want, text="")), "no final answer"),
    ]:
        with pytest.raises(AssertionError, match=hint):
            check_framework_agent(*args, tmp_path / "shop.sqlite")
