"""Auto-checks for the labs: each `check_*` raises AssertionError with a hint, or prints what passed.

Introduced in lab 01. The checks test what a learner built, on fresh inputs, never on hard-coded answers.
"""

from __future__ import annotations

from typing import Any, Callable


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def check_tokenizer(tok) -> None:
    """Lab 01, task 1: the tokenizer keeps markers whole and tokenizes values the same everywhere."""
    from helpers.domain.chat_format import CALL_START, EOS, USER

    for marker in (USER, CALL_START, EOS, "lookup_order"):
        ids = tok(marker, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1, f"{marker!r} should be one token, got {len(ids)}: pass USER_SYMBOLS to the trainer"
    for value in ("Reykjavík", "C-4821", "SKU-QX42"):
        alone = tok(value, add_special_tokens=False)["input_ids"]
        ctx = tok(f'in {value} {{"city":"{value}"}}', add_special_tokens=False)["input_ids"]
        hits = sum(ctx[i:i + len(alone)] == alone for i in range(len(ctx)))
        assert hits == 2, f"{value!r} tokenizes differently in text and in JSON: keep '▁' out of the merges"
    _ok(f"tokenizer with {len(tok)} tokens keeps markers whole and values identical in text and JSON")


def check_labels(fn: Callable[[Any, list, list | None], tuple[list[int], list[int]]], tok) -> None:
    """Lab 01, task 2: the learner's (ids, labels) for a dialogue mask everything but the assistant's output."""
    from helpers.data.synth import DialogueGenerator
    from helpers.model.train import encode_dialogue

    g = DialogueGenerator(seed=777)
    for _ in range(25):
        d = g.dialogue()
        got = fn(tok, d.messages, d.tools)
        want = encode_dialogue(tok, d.messages, d.tools)
        assert len(got[0]) == len(want[0]), "ids differ: tokenize each rendered segment and concatenate them"
        assert got[0] == want[0], "ids differ from the rendered dialogue's tokens"
        assert got[1] == want[1], "labels differ: -100 for every token the assistant did not write"
    _ok("loss mask matches the reference on 25 fresh dialogues")


def check_training(record: dict[str, Any], max_ratio: float = 0.6) -> None:
    """Lab 01, task 3: the loss fell to at most `max_ratio` of its first logged value."""
    losses = [h["loss"] for h in record["history"] if "loss" in h]
    assert len(losses) >= 2, "train for more steps: at least two loss logs (one every log_every steps) are needed"
    assert losses[-1] <= max_ratio * losses[0], (f"loss went {losses[0]:.3f} -> {losses[-1]:.3f}; train longer or "
                                                 "raise the learning rate")
    _ok(f"loss fell from {losses[0]:.3f} to {losses[-1]:.3f} in {record['steps']} steps")


def check_replies_parse(rt, n: int = 8) -> float:
    """Lab 01, task 4: share of tool-call replies that parse (format learnt) on fresh requests."""
    from helpers.data.synth import DialogueGenerator
    from helpers.domain.tools import openai_tools

    g = DialogueGenerator(seed=4242)
    tools = openai_tools()
    ok = 0
    for _ in range(n):
        text, _ = g.request(g._tool())
        res = rt.chat([{"role": "user", "content": text}], tools, max_tokens=64)
        ok += bool(res.tool_calls) and res.error is None
    share = ok / n
    _ok(f"{ok}/{n} requests got a well-formed tool call")
    return share
