"""The agent loop's control flow (notebook 03): tools from typed functions, validation before running,
structured errors fed back with a bounded retry, the step limit, and bad input of every kind.

`ScriptedRuntime` below is a TEST DOUBLE that replays scripted replies so the loop's branches can be
tested exactly; it is used only in this file. The last tests run the real embedded runtime.
"""

import json
from typing import Annotated, Any, Literal

import pytest
from pydantic import Field

from helpers.agents.evaluate import agent_cases, load_agent_cases, score_turn, write_cases
from helpers.agents.loop import Agent, AgentResult
from helpers.agents.toolbox import ToolArgumentError, ToolBox, ToolExecutionError, build_shop_db, shop_copy
from helpers.domain.tools import Shop, openai_tools
from helpers.runtimes.base import ChatResult, Runtime, RuntimeUnavailable, ToolCall, validate_call


class ScriptedRuntime(Runtime):
    """Test double: replays scripted replies (a ChatResult, or an exception to raise) and records requests."""

    name = "scripted"

    def __init__(self, replies: list[Any]) -> None:
        self.replies = list(replies)
        self.requests: list[list[dict[str, Any]]] = []

    @property
    def model(self) -> str:
        return "script"

    def availability(self):  # pragma: no cover - not used
        raise NotImplementedError

    def chat(self, messages, tools=None, *, temperature=0.0, max_tokens=256, seed=123) -> ChatResult:
        self.requests.append([dict(m) for m in messages])
        reply = self.replies.pop(0)
        if isinstance(reply, BaseException):
            raise reply
        return reply


def text(content: str) -> ChatResult:
    return ChatResult("scripted", "script", content=content, prompt_tokens=10, completion_tokens=5)


def call(name: str, **arguments: Any) -> ChatResult:
    """A reply with one call, checked against the catalog like a real runtime does."""
    c = ToolCall("call_1", name, arguments)
    err = validate_call(c, openai_tools())
    return ChatResult("scripted", "script", tool_calls=[] if err else [c], error=err,
                      finish_reason="tool_calls", prompt_tokens=10, completion_tokens=5)


def broken(kind: str = "invalid_json") -> ChatResult:
    return ChatResult("scripted", "script", content='<tool_call>[{"name": "lookup_order", "parameters": {',
                      error={"type": kind, "message": "tool call is not valid JSON"})


class SpyBox(ToolBox):
    """A toolbox that records which calls actually reached a function."""

    ran: list[tuple[str, dict]]


@pytest.fixture()
def shop(tmp_path):
    s = Shop.create(tmp_path / "shop.sqlite", seed=123)
    yield s
    s.close()


def spy_box(shop: Shop) -> tuple[ToolBox, list]:
    ran: list = []

    def wrap(fn):
        def inner(**kw):
            ran.append((fn.__name__, kw))
            return fn(**kw)
        return inner

    box = ToolBox.from_shop(shop)
    for t in box._tools.values():
        t.fn = wrap(t.fn)
    return box, ran


# ------------------------------------------------------------------------------------------ the toolbox
def test_schema_is_derived_from_signature_and_docstring():
    def book_room(room: Annotated[str, Field(pattern=r"^R[0-9]{3}$")], hours: int = 1,
                  kind: Literal["quiet", "video"] = "quiet") -> dict:
        """Book a meeting room for some hours.

        More text that is not part of the description."""
        return {"room": room, "hours": hours, "kind": kind}

    box = ToolBox.from_functions([book_room])
    fn = box.schemas[0]["function"]
    assert fn["name"] == "book_room" and fn["description"] == "Book a meeting room for some hours."
    params = fn["parameters"]
    assert params["required"] == ["room"] and params["additionalProperties"] is False
    assert params["properties"]["hours"]["type"] == "integer"
    assert params["properties"]["kind"]["enum"] == ["quiet", "video"]
    assert box.call("book_room", {"room": "R101", "hours": "2"}) == {"room": "R101", "hours": 2, "kind": "quiet"}
    with pytest.raises(ToolArgumentError, match="room"):
        box.call("book_room", {"room": "101"})
    with pytest.raises(ToolArgumentError, match="not an argument"):
        box.call("book_room", {"room": "R101", "floor": 2})
    with pytest.raises(KeyError, match="Unknown tool"):
        box.call("cancel_room", {})


def test_untyped_function_is_refused_with_a_clear_message():
    def f(x):  # noqa: ANN001
        """No types."""

    with pytest.raises(TypeError, match="annotation"):
        ToolBox.from_functions([f])


def test_shop_toolbox_matches_catalog_and_does_real_lookups(shop):
    box = ToolBox.from_shop(shop)
    assert box.schemas == openai_tools()
    order = shop.db.execute("SELECT order_id, status FROM orders LIMIT 1").fetchone()
    assert box.call("lookup_order", {"order_id": order[0]})["status"] == order[1]
    assert box.call("lookup_customer", {"customer_id": "c-1007"})["customer_id"] == "C-1007"  # normalised
    assert box.subset(["get_weather"]).names == ["get_weather"]
    with pytest.raises(KeyError):
        ToolBox.from_shop(shop, ["drop_tables"])


def test_tool_that_raises_and_tool_with_invalid_utf8():
    def explode(n: int) -> dict:
        """Always fails."""
        raise RuntimeError("disk on fire")

    def bad_bytes(n: int) -> bytes:
        """Returns bytes that are not UTF-8."""
        return b"ok \xff\xfe \xc3"

    box = ToolBox.from_functions([explode, bad_bytes])
    with pytest.raises(ToolExecutionError, match="disk on fire"):
        box.call("explode", {"n": 1})
    out = box.call("bad_bytes", {"n": 1})
    assert out["result"].startswith("ok ") and "\ufffd" in out["result"]
    json.dumps(out).encode("utf-8")  # safe to send


def test_shop_copy_leaves_data_untouched(tmp_path):
    src = build_shop_db(tmp_path / "shop.sqlite")
    before = src.read_bytes()
    s = shop_copy("test-loop", source=src)
    s.create_ticket("printer jammed")
    s.close()
    assert src.read_bytes() == before
    with pytest.raises(ValueError):
        shop_copy("../escape", source=src)


# ------------------------------------------------------------------------------------------ the loop
def test_call_result_answer(shop):
    box, ran = spy_box(shop)
    rt = ScriptedRuntime([call("lookup_order", order_id="10037"), text("Order 10037 is processing.")])
    res = Agent(rt, box).run("where is order 10037?")
    assert res.ok and res.answer == "Order 10037 is processing." and res.error is None
    assert [s.kind for s in res.steps] == ["model", "tool", "model"]
    assert res.tool_calls[0]["result"]["order_id"] == "10037" and ran == [("lookup_order", {"order_id": "10037"})]
    tool_msg = rt.requests[1][-1]
    assert tool_msg["role"] == "tool" and json.loads(tool_msg["content"])["order_id"] == "10037"
    assert res.answered_by == "scripted/script" and res.prompt_tokens == 20


def test_broken_json_is_fed_back_then_retry_succeeds(shop):
    box, ran = spy_box(shop)
    rt = ScriptedRuntime([broken(), call("lookup_order", order_id="10037"), text("It is processing.")])
    res = Agent(rt, box, max_retries=1).run("where is order 10037?")
    assert res.ok and res.answer == "It is processing."
    fed = rt.requests[1][-1]
    assert fed["role"] == "tool" and "invalid tool call" in json.loads(fed["content"])["error"]
    assert any(s.kind == "error" and s.detail["type"] == "invalid_json" for s in res.steps)


def test_broken_json_twice_is_a_clear_failure_and_messages_are_intact(shop):
    box, ran = spy_box(shop)
    agent = Agent(ScriptedRuntime([broken(), broken()]), box, max_retries=1)
    res = agent.run("where is order 10037?")
    assert not res.ok and "invalid tool call" in res.error and "gave up after 1 retry" in res.error
    assert agent.messages == [] and ran == []
    assert len(res.transcript) == 5  # user, bad reply, error, bad reply, error: kept for inspection


def test_invalid_arguments_never_reach_the_tool(shop):
    box, ran = spy_box(shop)
    # the runtime-level check (JSON schema) and the toolbox check (pydantic) both stop it
    rt = ScriptedRuntime([call("lookup_order", order_id="#12"), call("lookup_order", order_id=12)])
    res = Agent(rt, box, max_retries=1).run("where is order 12?")
    assert not res.ok and ran == []
    # a call that a runtime let through but that fails the toolbox's schema
    bad = ChatResult("scripted", "script", tool_calls=[ToolCall("c1", "lookup_order", {"order_id": "12 34"})])
    unknown = ChatResult("scripted", "script", tool_calls=[ToolCall("c2", "drop_tables", {})])
    res = Agent(ScriptedRuntime([bad, unknown]), box, max_retries=1).run("where is order 1234?")
    assert not res.ok and ran == [] and "unknown" in res.error
    assert all(not s.detail.get("ran") for s in res.steps if s.kind == "tool")


def test_step_limit_stops_an_agent_that_keeps_calling(shop):
    box, ran = spy_box(shop)
    rt = ScriptedRuntime([call("get_weather", city="Oslo")] * 3)
    agent = Agent(rt, box, max_steps=3)
    res = agent.run("weather in Oslo?")
    assert not res.ok and "step limit" in res.error and len(ran) == 3 and res.n_model_calls == 3
    assert agent.messages == []


def test_tool_that_raises_is_reported_to_the_model(shop):
    def explode(n: int) -> dict:
        """Always fails."""
        raise RuntimeError("disk on fire")

    box = ToolBox.from_functions([explode])
    rt = ScriptedRuntime([ChatResult("scripted", "script", tool_calls=[ToolCall("c1", "explode", {"n": 1})]),
                          text("Sorry, the tool failed.")])
    res = Agent(rt, box).run("go")
    assert "disk on fire" in json.loads(rt.requests[1][-1]["content"])["error"]
    assert res.steps[1].detail["error_type"] == "tool_failed"
    # the model answered, but without the tool's result: not a success (issue 15)
    assert not res.ok and res.answer == "Sorry, the tool failed." and "explode" in res.error


def test_invalid_utf8_from_a_tool_reaches_the_model_as_valid_text():
    def bad_bytes(n: int) -> bytes:
        """Returns bytes that are not UTF-8."""
        return b"caf\xe9 \xff"

    box = ToolBox.from_functions([bad_bytes])
    rt = ScriptedRuntime([ChatResult("scripted", "script", tool_calls=[ToolCall("c1", "bad_bytes", {"n": 1})]),
                          text("done")])
    res = Agent(rt, box).run("go")
    fed = rt.requests[1][-1]["content"]
    assert res.ok and "\ufffd" in fed
    fed.encode("utf-8")


def test_runtime_that_goes_away_mid_request(shop):
    box, ran = spy_box(shop)
    agent = Agent(ScriptedRuntime([call("lookup_order", order_id="10037"), text("Order 10037 is processing.")]), box)
    assert agent.run("where is order 10037?").ok
    before = [dict(m) for m in agent.messages]
    agent.runtime = ScriptedRuntime([call("get_weather", city="Oslo"),
                                     RuntimeUnavailable("lost the server at http://127.0.0.1:9/v1")])
    res = agent.run("and the weather in Oslo?")
    assert not res.ok and "lost the server" in res.error and "unchanged" in res.error
    assert agent.messages == before
    agent.runtime = ScriptedRuntime([ConnectionError("connection reset")])
    res = agent.run("again?")
    assert not res.ok and "ConnectionError" in res.error and agent.messages == before


@pytest.mark.parametrize("message,needle", [("", "empty"), ("   \n", "empty"), ("x" * 100_000, "100,000"),
                                            (None, "must be text")])
def test_bad_user_input_is_rejected_before_the_model(shop, message, needle):
    rt = ScriptedRuntime([])
    agent = Agent(rt, ToolBox.from_shop(shop), messages=[{"role": "user", "content": "hi"},
                                                         {"role": "assistant", "content": "Hello!"}])
    res = agent.run(message)
    assert not res.ok and needle in res.error and rt.requests == []
    assert len(agent.messages) == 2


class RecordingGuard:
    def check_input(self, text):
        return "no passwords" if "password" in text else None

    def check_call(self, name, arguments):
        return "customers are private" if name == "lookup_customer" else None

    def check_tool_result(self, name, result):
        return result

    def check_output(self, text):
        return None


class ListAudit:
    def __init__(self):
        self.events = []

    def record(self, event):
        self.events.append(event)


def test_guard_refusal_is_fed_back_and_audited(shop):
    box, ran = spy_box(shop)
    audit = ListAudit()
    rt = ScriptedRuntime([call("lookup_customer", customer_id="C-1007"), text("I can't share that.")])
    res = Agent(rt, box, guard=RecordingGuard(), audit=audit).run("who is C-1007?")
    assert res.ok and ran == [] and audit.events[0]["decision"] == "refused"
    assert "not allowed" in json.loads(rt.requests[1][-1]["content"])["error"]
    res = Agent(ScriptedRuntime([]), box, guard=RecordingGuard()).run("my password is hunter2")
    assert not res.ok and "no passwords" in res.error


def test_stream_yields_events_and_the_same_result(shop):
    rt = ScriptedRuntime([call("lookup_order", order_id="10037"), text("Order 10037 is processing.")])
    events = list(Agent(rt, ToolBox.from_shop(shop)).stream("where is order 10037?"))
    kinds = [e.kind for e in events]
    assert kinds[-1] == "result" and "tool" in kinds and "delta" in kinds
    assert "".join(e.text for e in events if e.kind == "delta") == "Order 10037 is processing."
    assert isinstance(events[-1].result, AgentResult) and events[-1].result.ok


# ------------------------------------------------------------------------------------------ the eval
def test_agent_cases_use_real_ids_and_dev_phrasings(tmp_path):
    from helpers.data.synth import T

    cases = agent_cases(12, seed=7)
    assert cases == agent_cases(12, seed=7)
    path = write_cases(cases, tmp_path / "a.jsonl")
    assert load_agent_cases(path) == cases
    shop = shop_copy("test-cases")
    for c in cases:
        for t in c["turns"]:
            args = t["expected_arguments"]
            if "order_id" in args and "not found" not in t["expected_facts"]:
                assert shop.lookup_order(args["order_id"])["status"] in t["expected_facts"]
            assert t["expected_tool"] in T
    shop.close()
    with pytest.raises(ValueError, match="turns"):
        (tmp_path / "bad.jsonl").write_text('{"id": 1}\n')
        load_agent_cases(tmp_path / "bad.jsonl")


def test_score_turn_needs_tool_arguments_and_facts():
    turn = {"user": "x", "expected_tool": "lookup_order", "expected_arguments": {"order_id": "10037"},
            "expected_facts": ["processing", "2026-08-28"]}

    def result(answer, args):
        from helpers.agents.loop import Step

        return AgentResult(answer, True, None, [Step("tool", {"name": "lookup_order", "arguments": args, "ran": True,
                                                              "result": {}})], "r", "m")

    assert score_turn(turn, result("Order 10037 is Processing, eta 2026-08-28.", {"order_id": "10037"}))["passed"]
    assert score_turn(turn, result("Order is processing.", {"order_id": "10037"}))["why"] == "facts"
    assert score_turn(turn, result("processing 2026-08-28", {"order_id": "10038"}))["why"] == "arguments"


# ------------------------------------------------------------------------------------------ real runtime
def test_agent_on_the_embedded_runtime(embedded, shop):
    agent = Agent(embedded, ToolBox.from_shop(shop))
    res = agent.run("")
    assert not res.ok and agent.messages == []
    res = agent.run("where is my order 10037?")
    assert res.answered_by.startswith("embedded/")
    assert res.n_model_calls >= 1 and res.prompt_tokens > 0
    for c in res.tool_calls:  # whatever the model proposed, only schema-valid calls ran
        box = ToolBox.from_shop(shop)
        box.validate(c["name"], c["arguments"])
    if res.ok:
        assert agent.messages[-1] == {"role": "assistant", "content": res.answer}
    else:
        assert agent.messages == [] and res.error


def test_eval_agent_main_prints_the_figure(embedded, tmp_path, capsys, monkeypatch):
    path = write_cases(agent_cases(2, seed=5), tmp_path / "two.jsonl")
    out = tmp_path / "pred.jsonl"
    from helpers.cli import main

    assert main(["eval-agent", str(path), "--runtime", "embedded", "--out", str(out)]) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("task_completion=") and last.endswith(" n=2")
    assert len(out.read_text().splitlines()) == 2
    assert main(["eval-agent", str(tmp_path / "missing.jsonl")]) == 2
    assert "No agent eval file" in capsys.readouterr().err


def test_message_with_invalid_utf8_is_cleaned_not_fatal(shop):
    rt = ScriptedRuntime([text("Hello!")])
    res = Agent(rt, ToolBox.from_shop(shop)).run("hi \udcff there")
    assert res.ok and rt.requests[0][-1]["content"] == "hi ? there"
    assert res.steps[0].detail["type"] == "bad_text"


def test_context_overflow_says_what_to_do(shop):
    from helpers.runtimes.llama_chat import ContextOverflow

    agent = Agent(ScriptedRuntime([ContextOverflow("the conversation is 2100 tokens")]), ToolBox.from_shop(shop))
    res = agent.run("where is order 10037?")
    assert not res.ok and "agent.reset()" in res.error and agent.messages == []
