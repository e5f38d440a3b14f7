"""Every lab check can fail: each check runs on the right answer (it passes) and on wrong answers, mutants of the
right one (it fails, with a message that says what to fix). Tiny inputs; where a check consumes a runtime's result,
the test builds that result object instead of loading a model, except lab 09's row check, which runs its cases
again on the shipped Q8_0 file (a 5 M-parameter model: a second or two).

Lab 06's checks are tested by tests/test_guard*.py; labs 11-23 also have tests next to their runtimes
(test_llama_server, test_foundry_local, test_lab13, test_runtimes2_labs, test_labs_monitoring, test_labs_serving).
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers.paths import ROOT


def fails(check, *args, needle: str, **kwargs) -> str:
    """Run `check`; it must raise AssertionError whose message contains `needle` (case-insensitive)."""
    with pytest.raises(AssertionError) as info:
        check(*args, **kwargs)
    msg = str(info.value)
    assert needle.lower() in msg.lower(), f"the failure message lacks {needle!r}: {msg}"
    return msg


def passes(check, *args, capsys=None, **kwargs):
    out = check(*args, **kwargs)
    if capsys is not None:
        assert "PASS" in capsys.readouterr().out
    return out


# ------------------------------------------------------------------------------------------------ lab 01
def _lab01_record(losses=(5.2, 3.1, 2.0), steps=30, **over) -> dict[str, Any]:
    rec = {"params": 1, "steps": steps,
           "shape": {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2},
           "config": {"steps": steps, "init_from": None},
           "history": [{"step": 10 * (i + 1), "loss": v} for i, v in enumerate(losses)]}
    rec.update(over)
    return rec


def test_lab01_training_right(capsys):
    from helpers.labs.lab01 import check_training

    passes(check_training, _lab01_record(), capsys=capsys)


@pytest.mark.parametrize("mutant,needle", [
    ("shipped", "task trains"),  # the shipped model's record passed as the learner's run
    ("continued", "from scratch"),
    ("flat", "train longer"),
    ("one_log", "at least two loss logs"),
    ("edited_steps", "unedited"),
    ("diverged", "finite"),
])
def test_lab01_training_mutants(mutant, needle):
    from helpers.labs.lab01 import check_training

    rec = {"shipped": lambda: json.loads((ROOT / "data/model/train_record.json").read_text()),
           "continued": lambda: _lab01_record(config={"steps": 30, "init_from": "data/model"}),
           "flat": lambda: _lab01_record(losses=(5.2, 5.0, 4.9)),
           "one_log": lambda: _lab01_record(losses=(5.2,)),
           "edited_steps": lambda: _lab01_record(steps=20),
           "diverged": lambda: _lab01_record(losses=(5.2, float("nan"), 1.0))}[mutant]()
    fails(check_training, rec, needle=needle)


def test_lab01_shipped_training_is_the_sum_of_its_runs():
    """The figure lab 01 prints for the shipped model is the one data/README.md states (33,702 steps, not the last
    run's 5,208)."""
    from helpers.labs.lab01 import training_runs

    record = json.loads((ROOT / "data/model/train_record.json").read_text())
    runs = training_runs(record)
    stated = re.search(r"Training in all: ([\d,]+) steps", (ROOT / "data/README.md").read_text())
    assert stated, "data/README.md no longer states the training in all"
    assert sum(r["steps"] for r in runs) == int(stated.group(1).replace(",", ""))
    assert len(runs) > 1 and runs[-1] is record and record["steps"] < sum(r["steps"] for r in runs)
    assert training_runs({"steps": 5, "history": []}) == [{"steps": 5, "history": []}]


class _ScriptedRuntime:
    """Answers the requests check_replies_parse sends (the same seeded generator) with a built ChatResult."""

    name, model = "scripted", "mutant"

    def __init__(self, mutate=None):
        from helpers.data.synth import DialogueGenerator

        self.g = DialogueGenerator(seed=4242)
        self.mutate = mutate or (lambda i, tool, args: (tool, args, None))
        self.i = 0

    def chat(self, messages, tools=None, **kw):
        from helpers.runtimes.base import ChatResult, ToolCall

        tool = self.g._tool()
        text, args = self.g.request(tool)
        assert messages[-1]["content"] == text
        name, args, error = self.mutate(self.i, tool, args)
        self.i += 1
        calls = [ToolCall(f"c{self.i}", name, args)] if name else []
        return ChatResult(runtime=self.name, model=self.model, content="" if calls else "Hello!", tool_calls=calls,
                          error=error)


def test_lab01_replies_parse_right(capsys):
    from helpers.labs.lab01 import check_replies_parse

    assert passes(check_replies_parse, _ScriptedRuntime(), capsys=capsys) == 1.0
    assert passes(check_replies_parse, _ScriptedRuntime(lambda i, t, a: (t, a, None) if i % 2 else (None, {}, None)),
                  min_share=0.5) == 0.5


@pytest.mark.parametrize("mutate,needle", [
    (lambda i, t, a: (None, {}, None), "0/8"),  # text replies only: the old check printed PASS: 0/8
    (lambda i, t, a: ("book_flight", a, None), "not a tool of the catalog"),
    (lambda i, t, a: (t, {"no_such_argument": 1}, None), "break its schema"),
    (lambda i, t, a: (None, {}, {"type": "unterminated_call"}), "did not parse"),
])
def test_lab01_replies_parse_mutants(mutate, needle):
    from helpers.labs.lab01 import check_replies_parse

    fails(check_replies_parse, _ScriptedRuntime(mutate), needle=needle)


def test_lab01_replies_parse_floor_zero_only_measures(capsys):
    from helpers.labs.lab01 import check_replies_parse

    assert check_replies_parse(_ScriptedRuntime(lambda i, t, a: (None, {}, None)), min_share=0.0) == 0.0
    out = capsys.readouterr().out
    assert "PASS" not in out and "MEASURED: 0/8" in out and "no floor set" in out


class _FastTok:
    """The shipped tokenizer.json through the `tokenizers` library, called like a transformers tokenizer (the
    checks use `tok(text, add_special_tokens=False)["input_ids"]` and `len(tok)`): no transformers import."""

    def __init__(self, path):
        from tokenizers import Tokenizer

        self.t = Tokenizer.from_file(str(path))

    def __len__(self):
        return self.t.get_vocab_size()

    def __call__(self, text, add_special_tokens=True):
        return {"input_ids": self.t.encode(text, add_special_tokens=add_special_tokens).ids}


@pytest.fixture(scope="module")
def shipped_tok():
    from helpers.paths import MODEL_DIR

    return _FastTok(MODEL_DIR / "tokenizer.json")


class _SplitMarkers:
    """A tokenizer whose markers are split (as one trained without USER_SYMBOLS)."""

    def __init__(self, tok):
        self.tok = tok

    def __len__(self):
        return len(self.tok)

    def __call__(self, text, **kw):
        out = self.tok(text, **kw)
        if text in ("<tool_call>", "lookup_order") or text.startswith("<|"):
            out = {"input_ids": list(out["input_ids"]) * 2}
        return out


def test_lab01_tokenizer(shipped_tok, capsys):
    from helpers.labs.lab01 import check_tokenizer

    passes(check_tokenizer, shipped_tok, capsys=capsys)
    fails(check_tokenizer, _SplitMarkers(shipped_tok), needle="USER_SYMBOLS")


def test_lab01_labels(shipped_tok, capsys):
    from helpers.domain import render_segments
    from helpers.labs.lab01 import check_labels

    def encode(tok, messages, tools, mask=True, skip_system=False):
        ids, labels = [], []
        for k, (text, mine) in enumerate(render_segments(messages, tools)):
            if skip_system and k == 0:
                continue
            piece = tok(text, add_special_tokens=False)["input_ids"]
            ids += piece
            labels += piece if (mine or not mask) else [-100] * len(piece)
        return ids, labels

    passes(check_labels, encode, shipped_tok, capsys=capsys)
    fails(check_labels, lambda t, m, tl: encode(t, m, tl, mask=False), shipped_tok, needle="-100")
    fails(check_labels, lambda t, m, tl: encode(t, m, tl, skip_system=True), shipped_tok, needle="ids differ")
    fails(check_labels, lambda t, m, tl: (lambda i, lab: (i, lab[1:] + [-100]))(*encode(t, m, tl)), shipped_tok,
          needle="labels differ")


# ------------------------------------------------------------------------------------------------ lab 09
def test_lab09_kl_top1():
    from helpers.labs.lab09 import check_kl_top1
    from helpers.quant import measure

    def naive(b, q):
        p, r = np.exp(b) / np.exp(b).sum(-1, keepdims=True), np.exp(q) / np.exp(q).sum(-1, keepdims=True)
        return float((p * np.log(p / r)).sum(-1).mean()), float(np.mean(b.argmax(-1) == q.argmax(-1)))

    passes(check_kl_top1, measure.kl_and_top1)
    fails(check_kl_top1, lambda b, q: measure.kl_and_top1(q, b), needle="KL(P_base || P_quant)")
    fails(check_kl_top1, lambda b, q: (measure.kl_and_top1(b, q)[0], float(np.sum(b.argmax(-1) == q.argmax(-1)))),
          needle="share")
    with np.errstate(all="ignore"):
        fails(check_kl_top1, naive, needle="stable log-softmax")


def test_lab09_recommend():
    from helpers.labs.lab09 import check_recommend
    from helpers.quant import measure

    def right(rows, budget, floor):
        return measure.recommend(rows, budget, min_exact_match=floor)["type"]

    def no_floor(rows, budget, floor):
        fits = [r for r in rows if r["size_mb"] <= budget]
        if not fits:
            raise ValueError("nothing fits")
        return min(fits, key=lambda r: (-r["exact_match"], r["kld"], r["size_mb"]))["type"]

    def never_raises(rows, budget, floor):
        try:
            return right(rows, budget, floor)
        except ValueError:
            return rows[-1]["type"]

    passes(check_recommend, right)
    fails(check_recommend, no_floor, needle="nothing fits")
    fails(check_recommend, never_raises, needle="raise ValueError")
    fails(check_recommend, lambda rows, b, f: min(rows, key=lambda r: r["size_mb"])["type"], needle="expected")


@pytest.fixture(scope="module")
def lab09_row(tmp_path_factory):
    """A right row for the shipped Q8_0 file: synthetic logits (the check recomputes from them), a real exact match
    on two dev cases, and a Q4_K_M file quantized for the type mutant."""
    from helpers.eval import load_cases
    from helpers.paths import EVAL_DIR, GGUF_DIR
    from helpers.quant import measure
    from helpers.quant.quantize import quantize

    f16, q8 = GGUF_DIR / "edge-slm-f16.gguf", GGUF_DIR / "edge-slm-q8_0.gguf"
    rng = np.random.default_rng(9)
    base = rng.normal(size=(40, 64)).astype(np.float32)
    quant = (base + rng.normal(size=base.shape) * 0.1).astype(np.float32)
    targets = rng.integers(0, 64, 40)
    cases = load_cases(EVAL_DIR / "dev.jsonl")[:2]
    em = measure.tool_exact_match(q8, cases)
    kld, top1 = measure.kl_and_top1(base, quant)
    row = {"type": "Q8_0", "path": str(q8), "size_mb": q8.stat().st_size / 1e6,
           "ratio_vs_f16": f16.stat().st_size / q8.stat().st_size, "ppl": measure.perplexity(quant, targets),
           "kld": kld, "top1": top1, "exact_match": em["exact_match"]}
    q4km = tmp_path_factory.mktemp("lab09") / "edge-slm-q4_k_m.gguf"
    quantize(f16, q4km, "Q4_K_M")
    return {"row": row, "base": base, "quant": quant, "targets": targets, "f16": f16, "cases": cases, "em": em,
            "q4km": q4km}


def _row_args(d, **row_over):
    row = {**d["row"], **row_over}
    return [row, d["base"], d["quant"], d["targets"], d["f16"]]


def test_lab09_measured_row_right(lab09_row, capsys):
    from helpers.labs.lab09 import check_measured_row

    d = lab09_row
    passes(check_measured_row, *_row_args(d), d["cases"], d["em"], capsys=capsys)


def test_lab09_measured_row_mutants(lab09_row):
    from helpers.labs.lab09 import check_measured_row

    d = lab09_row
    cases, em = d["cases"], d["em"]
    q4km = d["q4km"]
    size = q4km.stat().st_size
    # a Q4_K_M file sold as Q4_K_S (the old check looked for Q4_K tensors only)
    fails(check_measured_row, *_row_args(d, type="Q4_K_S", path=str(q4km), size_mb=size / 1e6,
                                         ratio_vs_f16=d["f16"].stat().st_size / size), cases, em,
          needle="quantized to Q4_K_M")
    fails(check_measured_row, *_row_args(d, type="Q4_0"), cases, em, needle="general.file_type")
    # any exact match between 0 and 1 passed before
    other = 0.5 if em["exact_match"] != 0.5 else 0.0
    fails(check_measured_row, *_row_args(d, exact_match=other), cases, em, needle="em['exact_match']")
    fails(check_measured_row, *_row_args(d), needle="tool_exact_match")  # no measurement given
    fails(check_measured_row, *_row_args(d), cases, {**em, "answered_by": "embedded/edge-slm-f16"},
          needle="not on edge-slm-q8_0.gguf")
    fails(check_measured_row, *_row_args(d), cases + cases[:1], em, needle="same cases")
    flipped = [not p for p in em["passed"]]
    forged = {**em, "passed": flipped, "exact_match": sum(flipped) / len(flipped)}
    fails(check_measured_row, *_row_args(d, exact_match=forged["exact_match"]), cases, forged,
          needle="when run again")
    fails(check_measured_row, *_row_args(d, size_mb=d["row"]["size_mb"] * 1.1), cases, em, needle="bytes / 1e6")
    fails(check_measured_row, *_row_args(d, kld=d["row"]["kld"] * 2), cases, em, needle="kld")
    fails(check_measured_row, *_row_args(d, ppl=d["row"]["ppl"] + 1), cases, em, needle="ppl")
    fails(check_measured_row, d["row"], d["base"], d["base"], d["targets"], d["f16"], cases, em,
          needle="score the quantized file")


# ------------------------------------------------------------------------------------------------ lab 02
def test_lab02_reflex_rule(capsys):
    from helpers.labs.lab02 import check_reflex_rule

    passes(check_reflex_rule, lambda t: t < 20.0, capsys=capsys)
    fails(check_reflex_rule, lambda t: t > 20.0, needle="heater should be on")
    fails(check_reflex_rule, lambda t: True, needle="heater should be off")
    fails(check_reflex_rule, lambda t: t < 14.0, needle="of the time between 19 and 22")


def _reference_update(known, percept):
    from helpers.agents import simulations as T

    known[percept.pos] = "dirty" if percept.dirty else "clean"
    r, c = percept.pos
    for d, (dr, dc) in T.MOVES.items():
        cell = (r + dr, c + dc)
        if percept.walls[d]:
            known[cell] = "wall"
        elif cell not in known:
            known[cell] = "free"
    return known


def test_lab02_update_map(capsys):
    from helpers.labs.lab02 import check_update_map

    def no_walls(known, percept):
        known[percept.pos] = "dirty" if percept.dirty else "clean"
        return known

    def forgets(known, percept):  # overwrites known cells with 'free'
        _reference_update(known, percept)
        r, c = percept.pos
        from helpers.agents import simulations as T
        for d, (dr, dc) in T.MOVES.items():
            if not percept.walls[d]:
                known[(r + dr, c + dc)] = "free"
        return known

    passes(check_update_map, _reference_update, seeds=(5,), capsys=capsys)
    fails(check_update_map, no_walls, seeds=(5,), needle="your map differs")
    fails(check_update_map, forgets, seeds=(5,), needle="unless already known")


def test_lab02_planner(capsys):
    from helpers.agents import simulations as T
    from helpers.labs.lab02 import check_planner

    def dfs(grid, start, goal):  # finds a route, not the shortest
        prev, stack = {start: None}, [start]
        while stack:
            cell = stack.pop()
            if cell == goal:
                path = [cell]
                while prev[path[-1]] is not None:
                    path.append(prev[path[-1]])
                return path[::-1]
            for nb in T.neighbours(grid, cell):
                if nb not in prev:
                    prev[nb] = cell
                    stack.append(nb)
        return None

    passes(check_planner, T.bfs_path, n=10, capsys=capsys)  # notebook 02's planner: the right answer
    fails(check_planner, dfs, n=10, needle="FIFO queue")
    fails(check_planner, lambda g, s, e: [s, e], n=10, needle="not a move to a neighbouring cell")
    fails(check_planner, lambda g, s, e: (T.bfs_path(g, s, e) or [s])[:-1] or [s], n=10, needle="end at goal")
    fails(check_planner, lambda g, s, e: T.bfs_path(g, s, e) or [s, e], n=10, needle="return None")


def test_lab02_bandit_update(capsys):
    from helpers.labs.lab02 import check_bandit_update

    def right(q, n, arm, reward):
        n[arm] += 1
        q[arm] += (reward - q[arm]) / n[arm]

    def no_count(q, n, arm, reward):
        q[arm] += (reward - q[arm]) / (n[arm] + 1)

    def last_reward(q, n, arm, reward):
        n[arm] += 1
        q[arm] = reward

    passes(check_bandit_update, right, seeds=(3,), capsys=capsys)
    fails(check_bandit_update, no_count, needle="add 1 per update")
    fails(check_bandit_update, last_reward, needle="q += (reward - q) / n")


# ------------------------------------------------------------------------------------------------ lab 03
def _derive(fn, doc_line=True, required_all=False, plain=False):
    import inspect
    from typing import get_type_hints

    from pydantic import create_model

    hints = get_type_hints(fn, include_extras=not plain)
    fields = {name: (hints[name], ... if (p.default is inspect.Parameter.empty or required_all) else p.default)
              for name, p in inspect.signature(fn).parameters.items()}
    params = create_model(f"{fn.__name__}_args", **fields).model_json_schema()
    doc = inspect.getdoc(fn) or fn.__name__
    return {"type": "function", "function": {"name": fn.__name__, "description": doc.splitlines()[0] if doc_line
                                             else doc, "parameters": params}}


def test_lab03_schema(capsys):
    from helpers.labs.lab03 import check_schema

    passes(check_schema, _derive, capsys=capsys)
    fails(check_schema, lambda fn: _derive(fn, doc_line=False), needle="first line of the docstring")
    fails(check_schema, lambda fn: _derive(fn, required_all=True), needle="without a default")
    fails(check_schema, lambda fn: _derive(fn, plain=True), needle="Annotated")
    fails(check_schema, lambda fn: _derive(fn)["function"], needle="'type': 'function'")


def _validate_then_run(fn, arguments, forbid=True, coerce=True):
    import inspect
    from typing import get_type_hints

    from pydantic import ConfigDict, ValidationError, create_model

    hints = get_type_hints(fn, include_extras=True)
    fields = {n: (hints[n], ... if p.default is inspect.Parameter.empty else p.default)
              for n, p in inspect.signature(fn).parameters.items()}
    model = create_model("args", __config__=ConfigDict(extra="forbid" if forbid else "ignore"), **fields)
    try:
        values = model.model_validate(arguments)
    except ValidationError as exc:
        return {"error": str(exc.errors()[0]["msg"])}
    return fn(**({n: getattr(values, n) for n in fields} if coerce else arguments))


def test_lab03_validate_then_run(capsys):
    from helpers.labs.lab03 import check_validate_then_run

    passes(check_validate_then_run, _validate_then_run, capsys=capsys)
    fails(check_validate_then_run, lambda fn, a: fn(**a) if True else None, needle="should NOT run")
    fails(check_validate_then_run, lambda fn, a: _validate_then_run(fn, a, forbid=False), needle="should NOT run")
    fails(check_validate_then_run, lambda fn, a: _validate_then_run(fn, a, coerce=False), needle="VALIDATED")


class _ShopModel:
    """A runtime standing in for the model in lab 03's loop: it calls the tool the request needs, with the ids in
    the request, then answers from the tool result, as a working model would."""

    name, model = "scripted", "loop"

    def chat(self, messages, tools=None, **kw):
        from helpers.runtimes.base import ChatResult, ToolCall

        last = messages[-1]
        if last["role"] == "tool":
            return ChatResult(self.name, self.model, content=f"Here is what I found: {last['content'][:40]}")
        text = last["content"]
        ids = re.findall(r"\b(C-\d+|\d{4,6}|[A-Za-z]{2,}-\d+)\b", text)
        if ids and ids[0].startswith("C-"):
            call = ToolCall("c1", "lookup_customer", {"customer_id": ids[0]})
        elif ids and ids[0].isdigit():
            call = ToolCall("c1", "lookup_order", {"order_id": ids[0]})
        elif ids:
            call = ToolCall("c1", "run_diagnostics", {"system_id": ids[0]})
        else:
            return ChatResult(self.name, self.model, content="How can I help?")
        return ChatResult(self.name, self.model, tool_calls=[call], finish_reason="tool_calls")


def _loop(runtime, box, user, max_steps=3, answer=None, record=None, feed_back=True):
    messages = [{"role": "user", "content": user}]
    calls = []
    for step in range(1, max_steps + 1):
        res = runtime.chat(messages, box.schemas, max_tokens=128)
        if not res.tool_calls:
            return {"answer": answer(res) if answer else res.content, "steps": step, "calls": calls,
                    "answered_by": res.answered_by}
        if feed_back:
            messages.append(res.message())
        for call in res.tool_calls:
            try:
                result = box.call(call.name, call.arguments)
            except Exception as exc:
                result = {"error": str(exc)}
            calls.append((call.name, call.arguments, record(result) if record else result))
            if feed_back:
                messages.append({"role": "tool", "tool_call_id": call.id, "content": json.dumps(result)})
    return {"answer": None, "steps": max_steps, "calls": calls, "answered_by": res.answered_by}


def test_lab03_loop(capsys):
    import random

    from helpers.labs.lab03 import check_loop

    random.seed(303)  # the check draws fresh requests from `random`

    passes(check_loop, _loop, _ShopModel(), capsys=capsys)
    fails(check_loop, lambda *a, **k: {**_loop(*a, **k), "calls": []}, _ShopModel(), needle="run every tool call")
    fails(check_loop, lambda *a, **k: _loop(*a, **k, record=lambda r: {"status": "shipped"}), _ShopModel(),
          needle="your loop recorded")
    fails(check_loop, lambda *a, **k: _loop(*a, **k, answer=lambda res: "Your order is on its way."), _ShopModel(),
          needle="not the text of the model's last reply")
    fails(check_loop, lambda *a, **k: {**_loop(*a, **k), "answered_by": "embedded/edge-slm"}, _ShopModel(),
          needle="res.answered_by")


# ------------------------------------------------------------------------------------------------ lab 04
def test_lab04_mapping_cost_rule(capsys):
    from helpers.agents.router import NO_TOOL, SPECIALISTS, call_cost
    from helpers.labs.lab04 import check_cost, check_mapping, check_rule

    mapping = {tool: name for name, s in SPECIALISTS.items() for tool in s.tools}
    mapping[NO_TOOL] = "general"
    passes(check_mapping, dict(mapping), capsys=capsys)
    tooled = next(name for name, s in SPECIALISTS.items() if s.tools)
    fails(check_mapping, {**mapping, NO_TOOL: tooled}, needle="general")
    wrong = next(n for n, s in SPECIALISTS.items() if "lookup_order" not in s.tools and s.tools)
    fails(check_mapping, {**mapping, "lookup_order": wrong}, needle="lookup_order")

    passes(check_cost, lambda calls, p: sum(call_cost(c, p) for c in calls), trials=40)
    fails(check_cost, lambda calls, p: sum(call_cost(c, p) for c in calls if c.remote), trials=40,
          needle="seconds x watts")
    hard = {"runtime_error", "schema", "failed", "no_tool"}
    assert check_rule(lambda s: bool(hard & set(s)), trials=50) == {"low_confidence": 0.0, "wrong_tool": 0.0,
                                                                   "not_permitted": 0.0}
    fails(check_rule, lambda s: True, trials=50, needle="must stay local")
    fails(check_rule, lambda s: "failed" in s, trials=50, needle="include a hard failure")


def test_lab04_run(capsys):
    from helpers.agents.router import Call, Handled, Prices, RouteDecision, call_cost
    from helpers.labs.lab04 import check_run

    def cost(calls, p):
        return sum(call_cost(c, p) for c in calls)

    def rule(signals):
        return "failed" in signals

    route = RouteDecision.__new__(RouteDecision)
    local = Call("first", "embedded/m", False, 120, 20, 0.4)
    up = Call("escalated", "embedded/big", False, 150, 30, 1.2)
    ok = Handled("where is 1001?", route, "lightweight", [], False, "ok", True, "embedded/m", [], [local], 0.4)
    esc = Handled("help", route, "lightweight", ["failed"], True, "ok", True, "embedded/big", [], [local, up], 1.6)
    prices = Prices()
    passes(check_run, [ok, esc], cost, prices, rule, capsys=capsys)
    fails(check_run, [], cost, prices, rule, needle="run the workload first")
    fails(check_run, [ok, esc], cost, prices, needle="pass your escalation rule")
    fails(check_run, [ok, esc], lambda c, p: 0.0, prices, rule, needle="differs from summarize")
    fails(check_run, [ok, esc], cost, prices, lambda s: False, needle="your rule says False")
    silent = Handled("help", route, "lightweight", ["failed"], False, "x", False, "embedded/m", [], [local], 0.4)
    fails(check_run, [silent], cost, prices, rule, needle="stayed local")


# ------------------------------------------------------------------------------------------------ lab 05
def _append(db, sid, message, commit=True):
    seq = db.execute("SELECT COALESCE(MAX(seq), -1) + 1 FROM messages WHERE session_id = ?", (sid,)).fetchone()[0]
    db.execute("INSERT INTO messages VALUES (?, ?, ?)", (sid, seq, json.dumps(message)))
    if commit:
        db.commit()


def _load(db, sid, order="seq", empty_ok=False):
    rows = db.execute(f"SELECT message FROM messages WHERE session_id = ? ORDER BY {order}", (sid,)).fetchall()
    if not rows and not empty_ok:
        raise KeyError(f"no session {sid!r}")
    return [json.loads(r[0]) for r in rows]


def test_lab05_store(capsys):
    from helpers.labs.lab05 import check_store

    passes(check_store, _append, _load, capsys=capsys)
    fails(check_store, lambda db, s, m: _append(db, s, m, commit=False), _load, needle="db.commit()")
    fails(check_store, _append, lambda db, s: _load(db, s, order="message"), needle="out of order")
    fails(check_store, _append, lambda db, s: _load(db, s, empty_ok=True), needle="KeyError")


def test_lab05_count_and_fit(capsys):
    from helpers.agents.memory import count_tokens, fit_to_budget
    from helpers.labs.lab05 import check_count, check_fit

    passes(check_count, count_tokens, n=3, capsys=capsys)
    fails(check_count, lambda m, t: count_tokens(m, None), n=3, needle="with tools")
    fails(check_count, lambda m, t: count_tokens(m, t) - 1, n=3, needle="add_special_tokens=False")

    def right(messages, budget, keep_last=4, tools=None):
        return fit_to_budget(messages, budget, keep_last=keep_last, tools=tools)

    def by_message(messages, budget, keep_last=4, tools=None):  # drops single messages, not whole turns
        system, rest = messages[:1], messages[1:]
        while len(rest) > keep_last and count_tokens(system + rest, tools) > budget:
            rest = rest[1:]
        return system + rest

    def drop_system(messages, budget, keep_last=4, tools=None):
        return fit_to_budget(messages, budget, keep_last=keep_last, tools=tools)[1:]

    passes(check_fit, right, n=2, capsys=capsys)
    fails(check_fit, by_message, n=3, needle="drop whole turns")
    fails(check_fit, drop_system, n=2, needle="system message must stay first")
    fails(check_fit, lambda m, b, k=4, t=None: m, n=2, needle="over the budget")


# ------------------------------------------------------------------------------------------------ lab 07
def _maf(answer="Order 10037 has shipped.", result=None, name="lookup_order", order_id=None, shop=None):
    from agent_framework import AgentResponse, Content, Message

    args = {"order_id": order_id}
    result = json.dumps(shop.lookup_order(**args)) if result is None else result
    return AgentResponse(messages=[
        Message("assistant", [Content.from_function_call(call_id="1", name=name, arguments=args)]),
        Message("tool", [Content.from_function_result(call_id="1", result=result)]),
        Message("assistant", [answer] if answer else [])])


def test_lab07_agent(tmp_path, capsys):
    from types import SimpleNamespace

    from agent_framework import Agent

    from helpers.agents.maf import chat_client
    from helpers.domain import Shop
    from helpers.labs.lab07 import check_maf_agent

    shop_path = tmp_path / "shop.sqlite"
    shop = Shop.create(shop_path, seed=7)
    order_id = shop.db.execute("SELECT order_id FROM orders LIMIT 1").fetchone()[0]
    client = chat_client(SimpleNamespace(model="m", base_url="http://127.0.0.1:9/v1", api_key="k"))
    agent = Agent(client=client, name="orders")
    try:
        passes(check_maf_agent, agent, _maf(order_id=order_id, shop=shop), shop_path, capsys=capsys)
        fails(check_maf_agent, object(), _maf(order_id=order_id, shop=shop), shop_path, needle="agent_framework.Agent")
        fails(check_maf_agent, agent, _maf(order_id=order_id, shop=shop, result='{"status": "made up"}'), shop_path,
              needle="the shop holds")
        fails(check_maf_agent, agent, _maf(order_id=order_id, shop=shop, name="book_flight", result="{}"), shop_path,
              needle="not a domain tool")
        fails(check_maf_agent, agent, _maf(order_id=order_id, shop=shop, answer=""), shop_path,
              needle="no final answer")
        fails(check_maf_agent, agent, _maf(order_id=order_id, shop=shop, answer='<tool_call>[{"name":"x"}]'),
              shop_path, needle="raw tool-call markup")
    finally:
        shop.close()


# ------------------------------------------------------------------------------------------------ lab 08
def _roundf(x):
    return np.sign(x) * np.floor(np.abs(x) + np.float32(0.5))


def _q8(x, rounding=_roundf):
    d = np.float32(np.abs(x).max() / 127)
    inv = np.float32(1 / d) if d else np.float32(0)
    return np.float16(d), rounding((x * inv).astype(np.float32)).astype(np.int8)


def _q4(x, offset=np.float32(8.5)):
    m = x[np.argmax(np.abs(x))]
    d = np.float32(m / -8)
    inv = np.float32(1 / d) if d else np.float32(0)
    return np.float16(d), np.minimum(15, np.trunc((x * inv).astype(np.float32) + offset)).astype(np.uint8)


def test_lab08_formats(capsys):
    from helpers.labs.lab08 import check_q4_0, check_q8_0
    from helpers.quant import blocks

    def deq8(d, q):
        return np.float32(d) * q.astype(np.float32)

    def deq4(d, q):
        return np.float32(d) * (q.astype(np.float32) - 8)

    passes(check_q8_0, _q8, deq8, capsys=capsys)
    fails(check_q8_0, lambda x: _q8(x, rounding=np.round), deq8, needle="roundf")
    fails(check_q8_0, lambda x: (np.float16(np.abs(x).max() / 128), _q8(x)[1]), deq8, needle="scale")
    fails(check_q8_0, _q8, lambda d, q: q.astype(np.float32), needle="dequantize")
    passes(check_q4_0, _q4, deq4)
    fails(check_q4_0, lambda x: _q4(x, offset=np.float32(8.0)), deq4, needle="nibble")
    assert blocks  # the reference the check compares with


def test_lab08_errors_and_fallbacks(capsys):
    from helpers.labs.lab08 import check_block_errors, check_fallback_prediction
    from helpers.paths import GGUF_DIR
    from helpers.quant.gguf_file import fallback_tensors

    def rmse(x, x_hat):
        return np.sqrt(np.mean((x_hat - x).reshape(-1, 32) ** 2, axis=1))

    passes(check_block_errors, rmse, capsys=capsys)
    fails(check_block_errors, lambda x, h: np.sqrt(np.mean((h - x) ** 2)).reshape(1), needle="shape")
    fails(check_block_errors, lambda x, h: np.mean(np.abs(h - x).reshape(-1, 32), axis=1), needle="RMS")
    q8 = GGUF_DIR / "edge-slm-q8_0.gguf"
    actual = {f.name for f in fallback_tensors(q8, "Q8_0")}
    passes(check_fallback_prediction, set(actual), q8, "Q8_0", capsys=capsys)
    fails(check_fallback_prediction, set(actual) | {"blk.0.attn_q.weight"}, q8, "Q8_0", needle="predicted wrongly")


# ------------------------------------------------------------------------------------------------ lab 10
def _quantize_folder(src, dst, per_channel=False, copy=True, weights=True, pass_pc=True):
    import shutil

    from onnxruntime.quantization import QuantType, quantize_dynamic

    from helpers.machine import int8_reduce_range

    dst.mkdir(parents=True, exist_ok=True)
    for p in src.iterdir():
        if copy and not p.name.startswith("model.onnx"):
            shutil.copy2(p, dst / p.name)
    if not weights:
        shutil.copy2(src / "model.onnx", dst / "model.onnx")
        return
    quantize_dynamic(str(src / "model.onnx"), str(dst / "model.onnx"), weight_type=QuantType.QInt8,
                     per_channel=per_channel if pass_pc else False, reduce_range=int8_reduce_range())


def test_lab10_quantize_folder(capsys):
    from helpers.labs.lab10 import check_quantize_folder

    passes(check_quantize_folder, _quantize_folder, seed=3, capsys=capsys)
    fails(check_quantize_folder, lambda s, d, per_channel=False: _quantize_folder(s, d, per_channel, copy=False),
          seed=3, needle="was not copied")
    fails(check_quantize_folder, lambda s, d, per_channel=False: _quantize_folder(s, d, per_channel, weights=False),
          seed=3, needle="weight_type=QuantType.QInt8")
    fails(check_quantize_folder, lambda s, d, per_channel=False: _quantize_folder(s, d, per_channel, pass_pc=False),
          seed=3, needle="per_channel=per_channel")


@pytest.fixture(scope="module")
def int4_folder():
    from helpers.paths import ONNX_DIR

    folder = ONNX_DIR / "int4"
    if not (folder / "genai_config.json").exists():
        pytest.skip("no ONNX Runtime GenAI export in data/onnx/int4")
    return folder


def test_lab10_greedy(int4_folder, capsys):
    from helpers.labs.lab10 import check_greedy
    from helpers.quant import onnx as qo

    passes(check_greedy, qo.greedy, int4_folder, n=2, capsys=capsys)
    fails(check_greedy, lambda m, t, ids, n: qo.greedy(m, t, ids, n + 4), int4_folder, n=2, needle="max_length")
    fails(check_greedy, lambda m, t, ids, n: qo.greedy(m, t, ids, n)[:-1] + [int(t.eos_token_ids[0])], int4_folder,
          n=2, needle="end-of-sequence")
    fails(check_greedy, lambda m, t, ids, n: qo.greedy(m, t, ids[:-1], n), int4_folder, n=2, needle="greedy")


def test_lab10_comparison(int4_folder, tmp_path, capsys):
    """The check measures again on the learner's own tokens and prompts: a KLD in bits, a swapped folder, a made-up
    greedy agreement all fail."""
    import onnxruntime_genai as og

    from helpers.labs.lab10 import check_comparison
    from helpers.paths import ONNX_DIR
    from helpers.quant import measure
    from helpers.quant import onnx as qo

    if not (ONNX_DIR / "fp32" / "genai_config.json").exists():
        pytest.skip("no fp32 export")
    folders = {"fp32": ONNX_DIR / "fp32", "int4": int4_folder}
    tokens = measure.tokenize(measure.default_source(), measure.held_out_text(2, seed=5))[:300]
    prompts = ["hello", "where is order 10037?"]
    ref_model = qo.load(folders["fp32"])
    ref = qo.logits(ref_model, tokens, 256)[0]
    ref_tok = og.Tokenizer(ref_model)
    results = {}
    for name, folder in folders.items():
        model = qo.load(folder)
        tok = og.Tokenizer(model)
        kld, top1 = measure.kl_and_top1(ref, qo.logits(model, tokens, 256)[0])
        same = [qo.greedy(model, tok, list(tok.encode(p)), 64) == qo.greedy(ref_model, ref_tok,
                                                                            list(ref_tok.encode(p)), 64)
                for p in prompts]
        results[name] = {"size_mb": qo.model_bytes(folder) / 1e6, "kld": kld, "top1": top1,
                         "greedy_same": sum(same) / len(same)}
    passes(check_comparison, results, folders, tokens, prompts, capsys=capsys)
    r4 = results["int4"]
    fails(check_comparison, results, folders, needle="pass the held-out tokens")
    fails(check_comparison, {**results, "int4": {**r4, "kld": r4["kld"] / np.log(2)}}, folders, tokens, prompts,
          needle="natural log")
    fails(check_comparison, {**results, "int4": {**r4, "top1": r4["top1"] - 0.05}}, folders, tokens, prompts,
          needle="argmax")
    fails(check_comparison, {**results, "int4": {**r4, "greedy_same": (r4["greedy_same"] + 0.5) % 1.0}}, folders,
          tokens, prompts, needle="greedy_same")
    fails(check_comparison, {**results, "int4": {**r4, "size_mb": r4["size_mb"] / 2}}, folders, tokens, prompts,
          needle="model.onnx.data")


# ------------------------------------------------------------------------------------------------ lab 16
def _service(port, host_ip="127.0.0.1", user="65534:65534", ro=True, host=True):
    cmd = ["-m", "/models/edge-slm-q8_0.gguf", "--port", str(port)] + (["--host", "0.0.0.0"] if host else [])
    return {"image": "ghcr.io/ggml-org/llama.cpp:server-b6700", "user": user, "command": cmd,
            "ports": [f"{host_ip}:{port}:{port}"], "volumes": ["../../data/gguf:/models" + (":ro" if ro else "")],
            "healthcheck": {"test": ["CMD", "curl", "-fsS", f"http://127.0.0.1:{port}/health"], "interval": "10s",
                            "timeout": "3s", "retries": 5}}


def test_lab16_service(capsys):
    from helpers.labs.lab16 import check_llama_server_service

    passes(check_llama_server_service, _service, 8081, capsys=capsys)
    fails(check_llama_server_service, lambda p: _service(p, host_ip="0.0.0.0"), 8081, needle="127.0.0.1")
    fails(check_llama_server_service, lambda p: _service(p, user="root"), 8081, needle="root")
    fails(check_llama_server_service, lambda p: _service(p, ro=False), 8081, needle="read-only")
    fails(check_llama_server_service, lambda p: _service(p, host=False), 8081, needle="--host")
    fails(check_llama_server_service, lambda p: _service(8081), 8081, needle="publish exactly")


_DOCKERFILE = """FROM python:3.11.11-slim-bookworm
RUN pip install --no-cache-dir "llama-cpp-python[server]==0.3.36" "fastapi==0.165.0" "uvicorn==0.54.0" \\
    && useradd --create-home --uid 10001 app
WORKDIR /app
COPY helpers/ /app/helpers/
USER app
EXPOSE 8000
HEALTHCHECK --interval=10s --timeout=3s CMD ["python", "-c", "import urllib.request; \\
urllib.request.urlopen('http://127.0.0.1:8000/health', timeout=2)"]
CMD ["python", "-m", "helpers", "serve", "--model", "/models/edge-slm-f16.gguf", "--host", "0.0.0.0", "--port", "8000"]
"""


def test_lab16_dockerfile(capsys):
    from helpers.labs.lab16 import check_dockerfile_text

    passes(check_dockerfile_text, lambda: _DOCKERFILE, capsys=capsys)
    fails(check_dockerfile_text, lambda: _DOCKERFILE.replace("USER app\n", ""), needle="user")
    fails(check_dockerfile_text, lambda: _DOCKERFILE.replace("3.11.11-slim", "3.11-slim"), needle="patch release")
    fails(check_dockerfile_text, lambda: _DOCKERFILE.replace("0.3.36", "0.3.20"), needle="0.3.36")
    fails(check_dockerfile_text, lambda: "", needle="Dockerfile's text")


# ------------------------------------------------------------------------------------------------ lab 17
def _level_rows(n=3):
    return [{"concurrency": c, "completed": n, "failed": 0, "total_output_tokens": 90 * c, "duration_s": 2.0,
             "output_throughput": 45.0 * c, "p50_ttft_ms": 10.0, "p99_ttft_ms": 20.0, "p50_e2el_ms": 300.0,
             "peak_rss_mb": 120.0} for c in (1, 2)]


def test_lab17_level_rows(capsys):
    from helpers.labs.lab17 import check_level_rows

    passes(check_level_rows, _level_rows(), 3, capsys=capsys)
    rows = _level_rows()
    fails(check_level_rows, rows[:1], 3, needle="concurrency 1 and 2")
    fails(check_level_rows, rows[::-1], 3, needle="concurrency 1, then 2")
    fails(check_level_rows, [rows[0], {**rows[1], "output_throughput": 500.0}], 3, needle="total output tokens")
    fails(check_level_rows, [rows[0], {**rows[1], "completed": 2}], 3, needle="all 3 prompts")
    fails(check_level_rows, [rows[0], {**rows[1], "p99_ttft_ms": 1.0}], 3, needle="percentiles out of order")
    fails(check_level_rows, [rows[0], {**rows[1], "completed": 0, "failed": 3}], 3, needle="no request completed")


class _Event:
    def __init__(self, kind, executor_id):
        self.type, self.executor_id = kind, executor_id


class _WorkflowResult(list):
    """The shape of agent_framework's workflow run result: a list of events with get_outputs()."""

    def __init__(self, events, outputs):
        super().__init__(events)
        self._outputs = outputs

    def get_outputs(self):
        return self._outputs


class _Spans:
    def __init__(self, names):
        self.names = names

    def get_finished_spans(self):
        from types import SimpleNamespace

        return [SimpleNamespace(name=n) for n in self.names]


def test_lab07_workflow(capsys):
    from helpers.labs.lab07 import check_maf_workflow

    ran = [_Event("executor_invoked", n) for n in ("orders", "bridge", "callbacks")]
    spans = _Spans(["invoke_agent orders", "chat m", "invoke_agent callbacks"])
    passes(check_maf_workflow, _WorkflowResult(ran, ["done"]), spans, ("orders", "callbacks"), capsys=capsys)
    fails(check_maf_workflow, _WorkflowResult(ran[:2], ["done"]), spans, ("orders", "callbacks"),
          needle="connect it with add_edge")
    fails(check_maf_workflow, _WorkflowResult(ran, []), spans, ("orders", "callbacks"), needle="no output")
    fails(check_maf_workflow, _WorkflowResult(ran, ["done"]), _Spans(["invoke_agent orders"]),
          ("orders", "callbacks"), needle="in_memory_telemetry")
    fails(check_maf_workflow, ["not a result"], spans, ("orders", "callbacks"), needle="workflow.run")


# ------------------------------------------------------------------------------------------------ lab 11
def test_lab11_throughput_division_by_zero_is_a_hint_not_a_traceback():
    from helpers.labs.lab11 import check_throughput
    from helpers.runtimes.llama_server import parse_metrics

    def unguarded(text):
        m = parse_metrics(text)
        return {"prompt_tps": m["llamacpp:prompt_tokens_total"] / m["llamacpp:prompt_seconds_total"],
                "gen_tps": m["llamacpp:tokens_predicted_total"] / m["llamacpp:tokens_predicted_seconds_total"],
                "requests_processing": m["llamacpp:requests_processing"]}

    fails(check_throughput, unguarded, needle="divided by it")


# ------------------------------------------------------------------------------------------------ every lab
def test_every_lab_check_has_a_test_that_makes_it_fail():
    """Each `check_*` of helpers/labs is named in a test file that expects AssertionError from a wrong answer (this
    file, or the tests next to a runtime). Lab 06's checks belong to the guardrails work (tests/test_guard*.py)."""
    import ast

    tests = {p: p.read_text() for p in (ROOT / "tests").glob("test_*.py")}
    failing = {p: t for p, t in tests.items() if "AssertionError" in t or "fails(" in t or "_fails(" in t}
    missing = []
    for mod in sorted((ROOT / "helpers" / "labs").glob("lab[0-9][0-9].py")):
        if mod.stem == "lab06" and not any("lab06" in t for p, t in failing.items() if p.name != Path(__file__).name):
            continue  # until the guardrails branch lands its tests
        names = [n.name for n in ast.parse(mod.read_text()).body
                 if isinstance(n, ast.FunctionDef) and n.name.startswith("check_")]
        assert names, f"{mod.name} has no check"
        for name in names:
            if not any(re.search(rf"\b{name}\b", t) and mod.stem in t for t in failing.values()):
                missing.append(f"{mod.stem}.{name}")
    assert not missing, f"lab checks no test makes fail: {missing}"


# ------------------------------------------------------------------------------------------------ labs 18, 23
def test_lab18_percentile_crash_on_no_values_is_a_hint():
    from helpers.labs.lab18 import check_percentile

    def naive(values, q):  # right on values, IndexError on []
        xs = sorted(values)
        r = q / 100 * (len(xs) - 1)
        lo, hi = int(np.floor(r)), int(np.ceil(r))
        return xs[lo] + (xs[hi] - xs[lo]) * (r - lo)

    fails(check_percentile, naive, needle="raised IndexError")
    fails(check_percentile, lambda v, q: 0.0 if not v else float(np.percentile(v, q)), needle="not 0")


def test_lab23_hpa_on_container_cpu_is_the_wrong_signal():
    from helpers.labs.lab23 import check_hpa

    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "slm"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "slm"},
                    "minReplicas": 1, "maxReplicas": 4,
                    "metrics": [{"type": "ContainerResource", "containerResource": {
                        "name": "cpu", "container": "server",
                        "target": {"type": "Utilization", "averageUtilization": 70}}}]}}
    fails(check_hpa, hpa, "slm", needle="wrong signal")


# ------------------------------------------------------------------------------------------------ lab 06
# (lab 06's checks are the guardrails helper's; its new separation check is tested in tests/test_guard_layers.py,
# the four older ones here, without changing them)
def _input_check(text, nfc=True, use_skeleton=True):
    import unicodedata

    from helpers.agents import skeleton
    from helpers.labs.lab06 import FORBIDDEN

    if len(text) > 300:
        return "too long"
    if nfc and unicodedata.normalize("NFC", text) != text:
        return "not NFC"
    for ch in text:
        if ch not in "\n\r\t" and unicodedata.category(ch) in ("Cc", "Cf"):
            return "control or format character"
    sk = skeleton(text) if use_skeleton else text.lower()
    return next((f"forbidden phrase {p!r}" for p in FORBIDDEN if p in sk), None)


def test_lab06_input_policy(capsys):
    from helpers.labs.lab06 import check_input_policy

    passes(check_input_policy, _input_check, n=40, seed=6, capsys=capsys)
    fails(check_input_policy, lambda t: _input_check(t, use_skeleton=False), n=40, seed=6, needle="skeleton")
    fails(check_input_policy, lambda t: _input_check(t, nfc=False), n=40, seed=6, needle="not in NFC")
    fails(check_input_policy, lambda t: "no", n=40, seed=6, needle="ordinary request was refused")


def _permission(me, name, arguments, compare=True, validate=True):
    from helpers.domain import ToolArgumentError, validate_arguments

    if name not in {"lookup_order", "check_inventory", "get_weather", "get_current_time", "schedule_callback",
                    "escalate_to_human"}:
        return f"a kiosk may not call {name}"
    values = arguments
    if validate:
        try:
            values = validate_arguments(name, arguments)
        except ToolArgumentError as exc:
            return f"arguments fail the schema: {exc}"
    if compare and "customer_id" in values and values["customer_id"] != me:
        return f"{name} may act only for {me}"
    return None


def test_lab06_permission(capsys):
    from helpers.labs.lab06 import check_permission

    passes(check_permission, _permission, n=120, seed=6, capsys=capsys)
    fails(check_permission, lambda *a: _permission(*a, compare=False), n=120, seed=6, needle="customer_id")
    fails(check_permission, lambda *a: _permission(*a, validate=False), n=120, seed=6, needle="validate")
    fails(check_permission, lambda me, name, args: None, n=120, seed=6, needle="tool list")


def _record_hash(seq, event, prev):
    import hashlib

    return hashlib.sha256(json.dumps({"seq": seq, "event": event, "prev": prev}, sort_keys=True).encode()).hexdigest()


def _chain_append(log, event):
    prev = log[-1]["hash"] if log else "0" * 64
    log.append({"seq": len(log) + 1, "event": event, "prev": prev, "hash": _record_hash(len(log) + 1, event, prev)})


def _chain_verify(log, rehash=True):
    prev = "0" * 64
    for i, rec in enumerate(log, 1):
        if rec.get("seq") != i or rec.get("prev") != prev:
            return False
        if rehash and rec.get("hash") != _record_hash(rec["seq"], rec["event"], rec["prev"]):
            return False
        prev = rec["hash"]
    return True


def test_lab06_hash_chain(capsys):
    from helpers.labs.lab06 import check_hash_chain

    passes(check_hash_chain, _chain_append, _chain_verify, n=10, seed=6, capsys=capsys)
    fails(check_hash_chain, _chain_append, lambda log: _chain_verify(log, rehash=False), n=10, seed=6,
          needle="edited a record's event")
    fails(check_hash_chain, _chain_append, lambda log: True, n=10, seed=6, needle="verify() accepted")
    fails(check_hash_chain, lambda log, ev: log.append({"event": ev}), _chain_verify, n=10, seed=6,
          needle="seq, event, prev and hash")


def test_lab06_guarded_run(capsys):
    from types import SimpleNamespace

    from helpers.labs.lab06 import check_guarded_run

    def run(calls, n=2):
        return SimpleNamespace(n_model_calls=n, answered_by="scripted/guard", tool_calls=calls,
                               steps=[SimpleNamespace(kind="guard", detail={"customer_id": "C-2"})])

    mine = [{"name": "schedule_callback", "arguments": {"customer_id": "C-1", "preferred_time": "10:30"}}]
    theirs = [{"name": "escalate_to_human", "arguments": {"customer_id": "C-2", "reason": "refund"}}]
    passes(check_guarded_run, run(mine), "C-1", "C-2", capsys=capsys)
    fails(check_guarded_run, run(mine + theirs), "C-1", "C-2", needle="a tool ran for another customer")
    fails(check_guarded_run, run([], n=0), "C-1", "C-2", needle="never asked the model")
