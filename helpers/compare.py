"""Side-by-side measurement of runtimes on one eval set: exact match, and how often each one's greedy
answer (the same tool calls with the same arguments, or the same text) is identical to the transformers
reference (notebook 01; `python -m helpers
compare-runtimes`)."""

from __future__ import annotations

import json
import statistics
from typing import Any

from helpers.eval import case_passes


def answer_signature(res) -> str:
    """What a reply says, independent of how a runtime reports it: the calls, or else the text."""
    if res.tool_calls:
        return json.dumps([[c.name, c.arguments] for c in res.tool_calls], sort_keys=True, ensure_ascii=False)
    return (res.content or "").strip()


def compare_runtimes(cases: list[dict[str, Any]], names: list[str], reference: str = "transformers",
                     max_tokens: int = 96, progress: bool = False) -> list[dict[str, Any]]:
    """One row per runtime: exact match, agreement with the reference's raw output, median latency."""
    from helpers.domain.tools import openai_tools
    from helpers.runtimes import get_runtime

    tools = openai_tools()
    order = [reference] + [n for n in names if n != reference]
    answers: dict[str, list[str]] = {}
    raws: dict[str, list[str | None]] = {}
    rows = []
    for name in order:
        rt = get_runtime(name)
        passed, outs, raw, secs = 0, [], [], []
        it = cases
        if progress:
            from tqdm.auto import tqdm

            it = tqdm(cases, desc=name, leave=False)
        try:
            for c in it:
                res = rt.chat(c["messages"], tools, temperature=0.0, max_tokens=max_tokens)
                pred = ({"name": res.tool_calls[0].name, "arguments": res.tool_calls[0].arguments}
                        if res.tool_calls else None)
                passed += case_passes(c["expected"], pred)
                outs.append(answer_signature(res))
                raw.append(res.raw)
                secs.append(res.total_s)
        finally:
            model = rt.model
            rt.close()
        answers[name], raws[name] = outs, raw
        same = sum(a == b for a, b in zip(outs, answers[reference]))
        # token for token: the generated text itself, where the runtime exposes it
        same_raw = (sum(a == b for a, b in zip(raw, raws[reference]))
                    if all(r is not None for r in raw + raws[reference]) else None)
        rows.append({"runtime": name, "model": model, "n": len(cases), "exact_match": round(passed / len(cases), 3),
                     "identical_to_reference": same, "identical_tokens": same_raw,
                     "median_ms": round(statistics.median(secs) * 1000, 1)})
    return rows


def format_rows(rows: list[dict[str, Any]], reference: str = "transformers") -> str:
    """The comparison as a text table."""
    lines = [f"{'runtime':<14}{'model':<24}{'n':>5}{'exact match':>13}{'same answer':>13}{'same tokens':>13}"
             f"{'median ms':>11}   (same = as {reference})"]
    for r in rows:
        toks = "n/a" if r["identical_tokens"] is None else f"{r['identical_tokens']}/{r['n']}"
        lines.append(f"{r['runtime']:<14}{r['model']:<24}{r['n']:>5}{r['exact_match']:>13.3f}"
                     f"{str(r['identical_to_reference']) + '/' + str(r['n']):>13}{toks:>13}{r['median_ms']:>11.1f}")
    return "\n".join(lines)
