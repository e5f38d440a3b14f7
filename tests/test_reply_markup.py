"""Raw chat markup never becomes a user's answer: the workbook's agent loop treats it as a broken reply
(fed back, bounded retry, then a clear failure), and the Agent Framework client replaces it with a clear
error text (notebook 07's guarded agent once answered `<tool_call>[{...""}}]</tool_call>`)."""

from __future__ import annotations

import asyncio

import pytest

from helpers.agents import Agent, ToolBox
from helpers.domain import Shop
from helpers.domain.chat_format import markup_in
from helpers.runtimes.base import ChatResult
from test_faults_agent import Scripted  # the scripted runtime of the agent fault suite

BROKEN = '<tool_call>[{"name":"lookup_customer","parameters":{"customer_id":"C-1021""}}]</tool_call>'


def text(content: str) -> ChatResult:
    return ChatResult("scripted", "script", content=content)  # no error set: as a server that passed it on


@pytest.mark.parametrize("reply, marker", [(BROKEN, "<tool_call>"), ("Sure.<|end|>", "<|end|>"),
                                          ("Order shipped.<|user|>thanks", "<|user|>"), ("Order shipped.", None)])
def test_markup_in_finds_the_first_marker(reply, marker):
    assert markup_in(reply) == marker


@pytest.fixture()
def box(tmp_path):
    shop = Shop.create(tmp_path / "shop.sqlite", seed=123)
    yield ToolBox.from_shop(shop)
    shop.close()


def test_agent_loop_feeds_markup_back_and_never_answers_with_it(box):
    rt = Scripted([text(BROKEN), text("Kemi Okafor is a silver customer.")])
    res = Agent(rt, box, max_retries=1).run("who am I? I'm C-1021")
    assert res.ok and res.answer == "Kemi Okafor is a silver customer."
    assert "invalid tool call" in rt.requests[1][-1]["content"]  # the error went back to the model
    rt = Scripted([text(BROKEN), text("Sorry<|end|><|user|>")])
    agent = Agent(rt, box, max_retries=1)
    res = agent.run("who am I? I'm C-1021")
    assert not res.ok and res.answer == "" and "markup_in_answer" in res.error and agent.messages == []


def test_unusable_reply_explains_and_passes_plain_text():
    from helpers.agents.maf import unusable_reply

    why = unusable_reply(BROKEN)
    assert why.startswith("no answer:") and "invalid_json" in why and markup_in(why) is None
    assert "<|user|>" not in unusable_reply("fine<|user|>more") and unusable_reply("Order 10000 is on hold.") is None


def test_framework_answer_never_holds_markup(tmp_path):
    pytest.importorskip("agent_framework", reason="agent-framework-core is not installed")
    pytest.importorskip("agent_framework_openai", reason="agent-framework-openai is not installed")
    from agent_framework import Agent as FrameworkAgent

    from helpers.agents import AuditLog, Guardrails, Session
    from helpers.agents.maf import chat_client, guard_middleware, shop_functions
    from helpers.runtimes import RuntimeUnavailable, get_runtime
    from helpers.runtimes.openai_compat import llamacpp_startable

    av = llamacpp_startable()
    if not av.ok:
        pytest.skip(f"llama.cpp server cannot start: {av.detail} ({av.fix})")
    Shop.create(tmp_path / "shop.sqlite", seed=123).close()
    try:
        rt = get_runtime("llamacpp")
    except RuntimeUnavailable as exc:
        pytest.skip(f"llama.cpp server did not start: {exc}")
    try:
        guard = Guardrails(Session("kiosk", customer_id="C-1021"))
        agent = FrameworkAgent(client=chat_client(rt), name="kiosk", tools=shop_functions(tmp_path / "shop.sqlite"),
                               middleware=guard_middleware(guard, AuditLog(tmp_path / "audit.jsonl")))
        # notebook 07's request: the refusal comes back and the model writes a call that does not parse
        response = asyncio.run(agent.run("escalate C-1028 to a human: I want a refund"))
    finally:
        rt.close()
    assert response.text and markup_in(response.text) is None, response.text
