"""Conversation store, facts, token counting and budgeting of notebook 05."""

import sqlite3
import subprocess
import sys

import pytest

from helpers.agents import memory as M
from helpers.domain.tools import openai_tools
from helpers.labs.lab05 import fresh_conversations, long_conversation
from helpers.paths import ROOT


def test_store_round_trip_across_processes(tmp_path):
    path = tmp_path / "m.sqlite"
    store = M.ConversationStore(path)
    sid = store.new_session("ana")
    conv = fresh_conversations(seed=1, n=1)[0]
    store.extend(sid, conv)
    store.facts.set("ana", "customer_id", "C-1234", source=sid)
    store.close()
    code = ("import sys; from helpers.agents.memory import ConversationStore as S; s = S(sys.argv[1]); "
            "print(len(s.load(sys.argv[2])), s.facts.get('ana', 'customer_id'), s.user_of(sys.argv[2]))")
    out = subprocess.run([sys.executable, "-c", code, str(path), sid], capture_output=True, text=True, cwd=str(ROOT))
    assert out.stdout.split() == [str(len(conv)), "C-1234", "ana"], out.stderr
    store = M.ConversationStore(path)
    assert store.load(sid) == conv and store.sessions()[0]["messages"] == len(conv)
    assert store.new_session("ana") == "ana-002"


def test_store_errors_are_clear_and_leave_the_session_unchanged(tmp_path):
    store = M.ConversationStore(tmp_path / "m.sqlite")
    sid = store.new_session("bo")
    store.append(sid, {"role": "user", "content": "hi"})
    with pytest.raises(M.UnknownSessionError, match="bo-001"):
        store.load("nope")
    with pytest.raises(ValueError, match="role"):
        store.extend(sid, [{"role": "assistant", "content": "ok"}, {"role": "robot", "content": "x"}])
    with pytest.raises(ValueError, match="content must be text"):
        store.append(sid, {"role": "user", "content": 42})
    assert store.load(sid) == [{"role": "user", "content": "hi"}]  # all-or-nothing
    with pytest.raises(ValueError, match="exists already"):
        store.new_session("bo", session_id=sid)
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"garbage" * 300)
    with pytest.raises(M.StoreCorrupt, match="move it aside"):
        M.ConversationStore(bad)
    other = tmp_path / "other.sqlite"
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE orders (x)")
    db.commit()
    db.close()
    with pytest.raises(M.StoreError, match="not a conversation store"):
        M.ConversationStore(other)


def test_facts_and_extraction(tmp_path):
    store = M.ConversationStore(tmp_path / "m.sqlite")
    store.facts.set("ana", "city", "Tartu")
    store.facts.set("ana", "city", "Oslo")
    assert store.facts.all("ana") == {"city": "Oslo"} and store.facts.get("bo", "city", "-") == "-"
    assert store.facts.delete("ana") == 1
    with pytest.raises(ValueError):
        store.facts.set("ana", "", "x")
    msgs = [{"role": "user", "content": "I'm c-12345"},
            {"role": "assistant", "content": "", "tool_calls": [{"id": "1", "type": "function", "function": {
                "name": "lookup_order", "arguments": '{"order_id":"777"}'}}]}]
    facts = M.extract_facts(msgs)
    assert facts == {"customer_id": "C-12345", "order_id": "777"}
    assert M.with_customer_id("call me at 3pm", facts) == "call me at 3pm, I'm C-12345"
    assert M.with_customer_id("I'm C-999999", facts) == "I'm C-999999"


def test_fast_tokenizer_matches_autotokenizer_and_runtime_counts(hf_tokenizer, embedded):
    from helpers.domain.chat_format import render

    tools = openai_tools()
    fast = M.load_tokenizer()
    for conv in fresh_conversations(seed=2, n=200):
        text = render(conv, tools)
        assert fast(text)["input_ids"] == hf_tokenizer(text, add_special_tokens=False)["input_ids"]
    conv = fresh_conversations(seed=3, n=1)[0] + [{"role": "user", "content": "is SKU-AB12 in stock?"}]
    assert M.count_tokens(conv, tools) == embedded.chat(conv, tools, max_tokens=1).prompt_tokens


def test_fit_to_budget_keeps_system_tail_and_call_result_pairs():
    tools = openai_tools()
    chat = long_conversation(seed=11, turns=12)
    full = M.count_tokens(chat, tools)
    assert M.fit_to_budget(chat, full, tools=tools) == chat  # fits already
    summaries = 0
    for budget in (full // 2, full // 3):
        got = M.fit_to_budget(chat, budget, keep_last=3, tools=tools, reserve=20)
        assert M.count_tokens(got, tools) + 20 <= budget
        assert got[0] == chat[0] and got[-3:] == chat[-3:] and got[1]["role"] == "user"
        assert got[1:] == chat[len(chat) - len(got) + 1:]
        for a, b in zip(got, got[1:]):
            if b["role"] == "tool":
                assert a["role"] in ("assistant", "tool")
        summed = M.fit_to_budget(chat, budget, keep_last=3, tools=tools, reserve=20, summarise=M.brief_summary)
        assert M.count_tokens(summed, tools) + 20 <= budget and summed[0] == chat[0]
        if summed[1]["content"].startswith("Summary of the earlier conversation"):
            summaries += 1
            assert summed[2:] == chat[len(chat) - len(summed) + 2:]
        else:  # no summary of the dropped turns fits beside the kept ones: the plain trimmed chat
            assert summed == got
    assert summaries >= 1  # at half the size the summary fits (at a third, with this chat, it does not)
    with pytest.raises(M.ContextBudgetError, match="raise max_tokens"):
        M.fit_to_budget(chat, M.count_tokens(chat[:1]) + 3)
    with pytest.raises(ValueError):
        M.fit_to_budget(chat, 100, keep_last=0)
    with pytest.raises(ValueError):
        M.fit_to_budget(chat, 0)


def test_split_turns_and_message_tokens():
    chat = long_conversation(seed=12, turns=3)
    system, turns = M.split_turns(chat)
    assert [m for t in turns for m in t] == chat[len(system):] and all(t[0]["role"] == "user" for t in turns)
    per = M.message_tokens(chat)
    assert len(per) == len(chat) and all(n > 0 for n in per)
    assert sum(per) < M.count_tokens(chat) <= sum(per) + 3  # BOS and the generation prompt
    assert len(M.brief_summary(chat, max_chars=120)) <= 120
