"""Auto-checks for lab 05 (state and memory): each `check_*` runs the learner's code on fresh conversations
and prints PASS, or raises AssertionError with a hint."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path
from typing import Any, Callable

from helpers.agents.memory import count_tokens, fit_to_budget, split_turns


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def open_db(path: str | Path) -> sqlite3.Connection:
    """Lab 05: a SQLite connection with the lab's `messages(session_id, seq, message)` table."""
    db = sqlite3.connect(str(path))
    db.execute("CREATE TABLE IF NOT EXISTS messages (session_id TEXT NOT NULL, seq INTEGER NOT NULL, "
               "message TEXT NOT NULL, PRIMARY KEY (session_id, seq))")
    db.commit()
    return db


def fresh_conversations(seed: int, n: int = 3) -> list[list[dict[str, Any]]]:
    """Lab 05: `n` synthetic multi-turn conversations (no Foundry protocol mode) from a seed."""
    from helpers.data.synth import DialogueGenerator

    g = DialogueGenerator(seed=seed)
    out = []
    while len(out) < n:
        d = g.dialogue()
        if d.messages[0]["role"] != "system":
            out.append(d.messages)
    return out


def long_conversation(seed: int, turns: int = 12) -> list[dict[str, Any]]:
    """Lab 05: a system message, then synthetic dialogues stitched together, then a new request."""
    from helpers.data.synth import SYSTEM_PROMPTS

    chat = [{"role": "system", "content": SYSTEM_PROMPTS[seed % len(SYSTEM_PROMPTS)]}]
    s = seed
    while len(split_turns(chat)[1]) < turns:
        for conv in fresh_conversations(s, 1):
            chat += conv
        s += 1000
    chat.append({"role": "user", "content": "and where is order 4242?"})
    return chat


def check_store(append: Callable[[sqlite3.Connection, str, dict], None],
                load: Callable[[sqlite3.Connection, str], list[dict]]) -> None:
    """Lab 05, task 1: messages appended, then loaded through a NEW connection (a restart), come back equal and in
    order."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "lab05.sqlite"
        db = open_db(path)
        convs = fresh_conversations(seed=505, n=2)
        longest = max(len(c) for c in convs)
        for i in range(longest):  # interleave two sessions
            for sid, conv in zip(("a", "b"), convs):
                if i < len(conv):
                    append(db, sid, conv[i])
        db.close()
        db = open_db(path)  # a fresh connection sees only what was committed
        for sid, conv in zip(("a", "b"), convs):
            try:
                got = load(db, sid)
            except LookupError:
                raise AssertionError(f"session {sid!r}: {len(conv)} messages were appended, but after reopening the "
                                     "database your load finds none: call db.commit() after inserting (or use "
                                     "`with db:`)") from None
            assert isinstance(got, list), "load must return a list of message dicts"
            assert len(got) == len(conv), (f"session {sid!r}: stored {len(conv)} messages, loaded {len(got)} after "
                                           "reopening: call db.commit() after inserting (or use `with db:`)")
            assert got == conv, (f"session {sid!r}: messages differ or are out of order: store json.dumps(message) "
                                 "with the next seq number, load ORDER BY seq with json.loads")
        try:
            load(db, "no-such-session")
        except LookupError as err:  # KeyError is a LookupError
            assert str(err), "say which session is missing in the error"
        else:
            raise AssertionError("loading an unknown session should raise KeyError with a clear message, "
                                 "not return an empty conversation")
        db.close()
    _ok(f"{sum(map(len, convs))} messages in 2 interleaved sessions survive a reconnect, in order; "
        "unknown session -> KeyError")


def check_count(count: Callable[[list[dict], list[dict] | None], int], n: int = 20) -> None:
    """Lab 05, task 2: the learner's token count equals the reference on fresh chats, with and without tools."""
    from helpers.domain.tools import openai_tools

    tools = openai_tools()
    for i, conv in enumerate(fresh_conversations(seed=5050, n=n)):
        for t in (tools, None):
            got, want = count(conv, t), count_tokens(conv, t)
            assert got == want, (f"chat {i} ({'with' if t else 'without'} tools): you count {got}, the model reads "
                                 f"{want}: render(messages, tools, add_generation_prompt=True) then tokenize with "
                                 "add_special_tokens=False")
    _ok(f"token counts match the model's on {n} fresh chats, with and without tools")


def check_fit(fit: Callable[..., list[dict]], n: int = 6) -> None:
    """Lab 05, task 3: the learner's budget function on fresh long chats, with and without the tool list: fits,
    keeps what it must, drops whole turns."""
    from helpers.domain.tools import openai_tools

    tools = openai_tools()
    for i in range(n):
        t = tools if i % 2 else None  # every other chat is counted with the tool list, as the model reads it
        what = "with tools" if t else "without tools"
        chat = long_conversation(seed=7000 + i, turns=10 + i)
        full = count_tokens(chat, t)
        budget, keep_last = int(full * (0.35 + 0.08 * i)), 1 + i % 4
        got = fit([dict(m) for m in chat], budget, keep_last, t)
        assert isinstance(got, list) and got, "return the shortened list of messages"
        used = count_tokens(got, t)
        assert used <= budget, (f"chat {i} ({what}): {used} tokens is over the budget of {budget}: count with "
                                "my_count(candidate, tools), the tools are part of the prompt")
        assert got[0] == chat[0], f"chat {i}: the system message must stay first"
        assert got[-keep_last:] == chat[-keep_last:], f"chat {i}: the last {keep_last} messages must be kept"
        body = got[1:]
        assert body == chat[len(chat) - len(body):], f"chat {i}: keep the newest messages, in order, unchanged"
        assert body[0]["role"] == "user", (f"chat {i}: the kept part starts with a {body[0]['role']!r} message: drop "
                                           "whole turns (a user message and all that follows it)")
        want = fit_to_budget(chat, budget, keep_last=keep_last, tools=t)
        assert len(got) == len(want), (f"chat {i} ({what}): you kept {len(got)} messages, {len(want)} fit: drop the "
                                       "oldest turns one at a time and stop as soon as the chat fits")
    chat = long_conversation(seed=7100)
    try:
        fit(chat, count_tokens(chat[:1]) + 5, 1, None)
    except ValueError as err:
        assert str(err), "say why it cannot fit"
    else:
        raise AssertionError("when even the system message and the last turn do not fit, raise ValueError")
    _ok(f"{n} fresh long chats fit their budgets (half counted with the tool list), whole turns dropped, system "
        "and last messages kept; impossible budget -> ValueError")
