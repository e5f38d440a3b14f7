"""Tool-call evaluation: the scoring rule of `python -m helpers eval-toolcalls` (notebook 01).

A case passes when the predicted tool name equals the expected one and every argument listed in
`expected.arguments` equals the predicted value after trimming and case-folding (numbers compared as
numbers; arguments not listed are not compared). `expected: null` passes when no tool is called.
When cases carry a `kind` (data/eval/realistic.jsonl), the table also has one row per kind.
"""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from helpers.data.jsonl import iter_jsonl  # noqa: F401 (the JSONL reader's home is helpers.data.jsonl)


def _as_number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        try:
            f = float(v.strip())
        except ValueError:
            return None
        return f if math.isfinite(f) else None
    return None


def values_equal(expected: Any, predicted: Any) -> bool:
    """Compare one argument: numbers as numbers, strings trimmed and case-folded."""
    en, pn = _as_number(expected), _as_number(predicted)
    if en is not None and pn is not None:
        return math.isclose(en, pn, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(expected, str) and isinstance(predicted, str):
        return expected.strip().casefold() == predicted.strip().casefold()
    return expected == predicted


def case_passes(expected: dict[str, Any] | None, predicted: dict[str, Any] | None) -> bool:
    """Whether a predicted call (or None) matches the expected one (or None)."""
    if expected is None:
        return predicted is None
    if predicted is None or predicted.get("name") != expected.get("name"):
        return False
    pargs = predicted.get("arguments") or {}
    return all(k in pargs and values_equal(v, pargs[k]) for k, v in (expected.get("arguments") or {}).items())


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson's score interval for a proportion `successes / n` (95 % for z=1.96) (notebook 10).

    The textbook standard error sqrt(p(1-p)/n) is 0 at p=0 or p=1, which would claim certainty from 8 cases;
    Wilson's interval stays honest there (8/8 gives 0.68-1.00)."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes}/{n}")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * ((p * (1 - p) + z * z / (4 * n)) / n) ** 0.5 / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def load_cases(path: str | Path) -> list[dict[str, Any]]:
    """Read an eval file; raise a clear error naming the line that is not a valid case."""
    cases = []
    for n, case in iter_jsonl(path, f"No eval file at {path}. The workbook's dev set is data/eval/dev.jsonl."):
        if not isinstance(case, dict) or not isinstance(case.get("messages"), list) or "expected" not in case:
            raise ValueError(f"{path}:{n}: a case needs 'messages' (a list) and 'expected' (an object or null).")
        exp = case["expected"]
        if exp is not None and (not isinstance(exp, dict) or not isinstance(exp.get("name"), str)):
            raise ValueError(f"{path}:{n}: 'expected' must be null or {{\"name\": ..., \"arguments\": {{...}}}}.")
        case.setdefault("id", f"line-{n}")
        cases.append(case)
    if not cases:
        raise ValueError(f"{path} holds no cases.")
    return cases


def summarize(cases: list[dict[str, Any]], predictions: list[dict[str, Any] | None]) -> dict[str, Any]:
    """Per-tool pass counts, per-kind pass counts (when cases carry a `kind`) and the overall exact match."""
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    kinds: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    passed = 0
    for c, p in zip(cases, predictions):
        key = c["expected"]["name"] if c["expected"] else "(no tool)"
        ok = case_passes(c["expected"], p)
        per[key][0] += ok
        per[key][1] += 1
        if c.get("kind"):
            kinds[str(c["kind"])][0] += ok
            kinds[str(c["kind"])][1] += 1
        passed += ok
    out = {"exact_match": passed / max(1, len(cases)), "n": len(cases),
           "per_tool": {k: {"passed": v[0], "n": v[1]} for k, v in sorted(per.items())}}
    if kinds:
        out["per_kind"] = {k: {"passed": v[0], "n": v[1]} for k, v in kinds.items()}  # in the file's order
    return out


def format_table(summary: dict[str, Any]) -> str:
    """The per-tool table, the per-kind table (when there is one) and the final `exact_match=0.XXX n=N` line."""
    lines = []
    for head, rows in (("tool", summary["per_tool"]), ("kind", summary.get("per_kind") or {})):
        if rows:
            lines.append(f"{head:<24}{'passed':>8}{'n':>6}{'rate':>8}")
        for name, s in rows.items():
            lines.append(f"{name:<24}{s['passed']:>8}{s['n']:>6}{s['passed'] / s['n']:>8.3f}")
    lines.append(f"exact_match={summary['exact_match']:.3f} n={summary['n']}")
    return "\n".join(lines)


def predict(runtime, cases: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None,
            progress: bool = False, max_tokens: int = 96) -> list[dict[str, Any] | None]:
    """Greedy predictions of `runtime` on `cases`: the first tool call of each reply, or None."""
    from helpers.domain.tools import openai_tools

    tools = tools if tools is not None else openai_tools()
    preds: list[dict[str, Any] | None] = []
    it = cases
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(cases, desc=f"eval on {runtime.name}", leave=False)
    for c in it:
        res = runtime.chat(c["messages"], tools, temperature=0.0, max_tokens=max_tokens)
        preds.append({"name": res.tool_calls[0].name, "arguments": res.tool_calls[0].arguments}
                     if res.tool_calls else None)
    return preds


def transformers_exact_match(model, tok, cases: list[dict[str, Any]], max_new_tokens: int = 64) -> float:
    """Exact match of greedy tool calls of a loaded transformers model on `cases` (notebook 01): the same prompt
    rendering, reply parsing and scoring as `python -m helpers eval-toolcalls`; training's `evaluate`."""
    import torch

    from helpers.runtimes.reference import TransformersRuntime

    rng_state = torch.get_rng_state()  # the runtime seeds torch per request: training's random state stays
    model.eval()
    try:
        preds = predict(TransformersRuntime.from_loaded(model, tok), cases, max_tokens=max_new_tokens)
    finally:
        model.train()
        torch.set_rng_state(rng_state)
    return summarize(cases, preds)["exact_match"]
