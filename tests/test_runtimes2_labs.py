"""The checks of labs 14-17 fail on wrong answers, with a message that says what to fix."""

from __future__ import annotations

import itertools
import json
import math

import pytest

from helpers.labs import lab14, lab15


def _fails(check, fn, needle: str) -> None:
    with pytest.raises(AssertionError) as info:
        check(fn)
    assert needle in str(info.value), str(info.value)


def test_lab14_decode_rate_wrong_unit_and_wrong_field():
    def ms(r):
        get = r.get if isinstance(r, dict) else lambda k: getattr(r, k)
        return get("eval_count") / get("eval_duration") * 1e6

    def prompt(r):
        return r.prompt_eval_count / r.prompt_eval_duration * 1e9

    _fails(lab14.check_decode_rate, ms, "nanoseconds")
    _fails(lab14.check_decode_rate, prompt, "eval_count")


def test_lab14_tool_result_message_wrong_shapes():
    _fails(lab14.check_tool_result_message, lambda c, r: {"role": "tool", "content": json.dumps(r)}, "tool_name")
    _fails(lab14.check_tool_result_message,
           lambda c, r: {"role": "tool", "tool_name": c.function.name, "content": r}, "json.dumps")


def test_lab14_invented_settings_wrong_answer():
    _fails(lab14.check_invented_settings, lambda env: sorted(k for k in env if "THREAD" in k), "expected")


def test_lab15_repaired_recipe_still_broken():
    from helpers.runtimes.vllm_config import VLLMServeConfig

    _fails(lab15.check_repaired_recipe, lambda: VLLMServeConfig(
        model="microsoft/Phi-4-mini-instruct", device="cuda", image="vllm/vllm-openai:latest",
        enable_auto_tool_choice=True), "auto-tool-choice-needs-parser")


def test_lab15_histogram_mean_of_one_label_only():
    from helpers.runtimes.vllm_config import parse_metrics

    def first_label(text, name):
        fam = parse_metrics(text)[name]
        s = next(x.value for x in fam.samples if x.name == name + "_sum")
        c = next(x.value for x in fam.samples if x.name == name + "_count")
        return s / c

    with pytest.raises(AssertionError, match="add up every"):
        lab15.check_histogram_mean(first_label)


def test_lab15_capacity_without_ceil_or_errors():
    _fails(lab15.check_capacity, lambda t, m, h: round(t / (m * h)), "ceil")
    _fails(lab15.check_capacity, lambda t, m, h: max(1, math.ceil(t / (m * h))) if m > 0 else 1, "ValueError")


def test_lab17_tpot_over_pieces_and_goodput_in_wrong_units():
    from helpers.labs import lab17

    def per_piece(times, n):
        return {"ttft": times[0], "e2el": times[-1], "itl": [b - a for a, b in itertools.pairwise(times)],
                "tpot": (times[-1] - times[0]) / max(len(times) - 1, 1) if n >= 2 else None}

    _fails(lab17.check_request_metrics, per_piece, "TOKENS after the first")

    def seconds_vs_ms(reqs, wall, slo_ttft, slo_tpot):
        return sum(r["ok"] and (slo_ttft is None or r["ttft"] <= slo_ttft) for r in reqs) / wall

    _fails(lab17.check_goodput, seconds_vs_ms, "milliseconds")
    with pytest.raises(AssertionError, match="concurrency 1 and 2"):
        lab17.check_level_rows([{"concurrency": 1}], 3)
