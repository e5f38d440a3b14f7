"""Auto-checks for the labs: each `check_*` raises AssertionError with a hint, or prints what passed.

Introduced in lab 01. The checks test what a learner built, on fresh inputs, never on hard-coded answers.
"""

from __future__ import annotations

import math
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


# the model task 3 asks for (a run from scratch, not a continued or shipped one)
TASK3_SHAPE = {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2}


def check_training(record: dict[str, Any], max_ratio: float = 0.6) -> None:
    """Lab 01, task 3: a run of the task's model, from scratch, whose loss fell to at most `max_ratio` of its
    first logged value."""
    assert isinstance(record, dict) and "history" in record and "steps" in record, \
        "pass the record that train(...) returned (a dict with 'steps' and 'history')"
    shape = record.get("shape") or {}
    wrong = {k: shape.get(k) for k, v in TASK3_SHAPE.items() if shape.get(k) != v}
    assert not wrong, (f"the record is of a model with {wrong}, the task trains {TASK3_SHAPE}: pass the record of "
                       "YOUR run (ModelShape(hidden_size=256, intermediate_size=512, num_hidden_layers=2))")
    assert not (record.get("config") or {}).get("init_from") and "init_from_record" not in record, \
        "this run continued earlier weights: task 3 trains from scratch (no init_from)"
    logged = [h for h in record["history"] if "loss" in h]
    assert len(logged) >= 2, "train for more steps: at least two loss logs (one every log_every steps) are needed"
    steps = [h["step"] for h in logged]
    assert steps == sorted(steps) and len(set(steps)) == len(steps) and steps[-1] <= record["steps"], (
        f"the loss log's steps {steps[:3]}...{steps[-1:]} do not belong to a run of {record['steps']} steps: "
        "pass the record train(...) returned, unedited")
    losses = [h["loss"] for h in logged]
    assert all(isinstance(v, (int, float)) and math.isfinite(v) for v in losses), \
        "a logged loss is not a finite number: the training diverged; lower the learning rate"
    assert losses[-1] <= max_ratio * losses[0], (f"loss went {losses[0]:.3f} -> {losses[-1]:.3f}, not below "
                                                 f"{max_ratio:.0%} of where it started; train longer or raise the "
                                                 "learning rate")
    _ok(f"loss fell from {losses[0]:.3f} to {losses[-1]:.3f} in {record['steps']} steps")


def training_runs(record: dict[str, Any]) -> list[dict[str, Any]]:
    """The runs behind a training record, oldest first: a run that continued earlier weights keeps their record in
    `init_from_record` (data/README.md). A model's training is the sum over these runs, not its last run."""
    runs = []
    r: dict[str, Any] | None = record
    while r:
        runs.insert(0, r)
        r = r.get("init_from_record")
    return runs


def well_formed(res: Any) -> str | None:
    """Why a reply is not a well-formed tool call of the workbook's catalog (None when it is one)."""
    from helpers.domain.tools import TOOL_NAMES, ToolArgumentError, validate_arguments

    if res.error is not None:
        return f"the reply did not parse ({res.error.get('type', res.error)})"
    if not res.tool_calls:
        return "a text reply, no tool call"
    for c in res.tool_calls:
        if c.name not in TOOL_NAMES:
            return f"a call of {c.name!r}, which is not a tool of the catalog"
        try:
            validate_arguments(c.name, c.arguments)
        except ToolArgumentError as exc:
            return f"{c.name} with arguments that break its schema ({str(exc)[:80]})"
    return None


def _shown(path: Any) -> str:
    """A model folder as the learner knows it: relative to the workbook when inside it."""
    from pathlib import Path

    from helpers.paths import ROOT

    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except (TypeError, ValueError):
        return str(path)


def check_replies_parse(rt, n: int = 8, min_share: float = 0.125) -> float:
    """Lab 01, task 4: share of fresh tool requests whose reply is a well-formed tool call (a known tool, arguments
    valid against its schema); fails below `min_share` (default: not one in `n`, the format was not learnt)."""
    from helpers.data.synth import DialogueGenerator
    from helpers.domain.tools import openai_tools

    g = DialogueGenerator(seed=4242)
    tools = openai_tools()
    ok = right = 0
    why: list[str] = []
    for _ in range(n):
        tool = g._tool()
        text, _ = g.request(tool)
        res = rt.chat([{"role": "user", "content": text}], tools, max_tokens=64)
        problem = well_formed(res)
        if problem is None:
            ok += 1
            right += any(c.name == tool for c in res.tool_calls)
        else:
            why.append(f"{text!r} -> {problem}")
    share = ok / n
    answered = f"{getattr(res, 'answered_by', '?')} ({_shown(getattr(rt, 'model_dir', '?'))})"
    assert share >= min_share, (
        f"{ok}/{n} fresh requests got a well-formed tool call from {answered} (at least {min_share:.0%} expected): "
        f"the model has not learnt the format; train for more steps (STEPS) and check that the runtime loads your "
        f"run's final/ folder. For example: {why[0] if why else ''}")
    floor = f"floor {min_share:.0%}" if min_share > 0 else "no floor set"
    print(f"{'PASS' if min_share > 0 else 'MEASURED'}: {ok}/{n} requests got a well-formed tool call ({right} of "
          f"them the tool asked for; {floor}) from {answered}")
    return share
