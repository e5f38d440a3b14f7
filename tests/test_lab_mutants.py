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


@pytest.fixture(scope="module")
def shipped_tok(hf_tokenizer):  # conftest's session fixture: the shipped model's tokenizer
    return hf_tokenizer


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
