"""Task completion of a single agent on scripted multi-step requests: `python -m helpers eval-agent PATH.jsonl`.

Introduced in notebook 03. A case is one chat of one or two user requests. Each request passes when the
agent's turn ends well (`ok`), the expected tool RAN with the expected key arguments (compared as in
`helpers.eval.values_equal`: trimmed, case-folded, numbers as numbers), and the final answer contains
every expected fact (case-insensitive). A case passes when all its requests pass; the figure is
`task_completion = passed cases / cases`.

The requests use the held-out dev phrasings (`helpers.data.synth.T[tool]["dev"]`) with ids that exist in
data/shop.sqlite, so every tool result is a real lookup; the facts come from that database. Key
arguments are the ids, city, time, radius and priority; free text (a ticket's issue, an escalation's
reason) must pass the schema but is not compared word for word (the summary reports its exact-copy rate
separately). Each case runs on a fresh copy of the shop, so ticket and callback numbers are reproducible.
"""

from __future__ import annotations

import json
import random
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from helpers.domain.tools import Shop

FREE_TEXT = ("issue", "reason")
DEFAULT_PATH = "data/eval/agent_dev.jsonl"
TOOL_WEIGHTS = {"lookup_order": 3, "lookup_customer": 2, "check_inventory": 2, "get_weather": 2,
                "schedule_callback": 1.5, "run_diagnostics": 2, "create_ticket": 1.5,
                "calculate_circle_area": 1, "get_current_time": 0.7, "escalate_to_human": 1.3}


# ------------------------------------------------------------------------------------------ the cases
def _facts(tool: str, result: dict[str, Any]) -> list[str]:
    """The strings an answer must contain to state the result's facts."""
    if "error" in result:
        return ["not found"]
    r = result
    facts = {
        "lookup_order": lambda: [r["status"], r["eta"]],
        "lookup_customer": lambda: [r["name"], r["tier"]],
        "check_inventory": lambda: [str(r["in_stock"]), r["warehouse"]],
        "get_weather": lambda: [r["condition"], f"{r['temp_c']}°C"],
        "schedule_callback": lambda: [r["callback_id"], r["preferred_time"]],
        "run_diagnostics": lambda: [r["status"], f"{r['cpu_pct']}%"],
        "create_ticket": lambda: [r["ticket_id"], r["priority"]],
        "calculate_circle_area": lambda: [str(r["area"])],
        "get_current_time": lambda: [],  # the real clock: checked against the live result (result_facts)
        "escalate_to_human": lambda: [r["case_id"]],
    }
    return facts[tool]()


RESULT_FACTS = {"get_current_time": ["time"]}  # keys of the LIVE result whose values the answer must state


def _swap(text: str, old: str, new: str) -> str:
    """Replace the slot value `old` (as the user wrote it) with `new`, keeping the user's case."""
    i = text.find(old)
    if i < 0:
        i = text.lower().find(old.lower())
        if i < 0:
            raise ValueError(f"value {old!r} not in {text!r}")
    said = text[i:i + len(old)]
    new = new.lower() if said == said.lower() and said != said.upper() else new
    return text[:i] + new + text[i + len(old):]


class _CaseMaker:
    def __init__(self, seed: int, shop: Shop) -> None:
        from helpers.data.synth import DialogueSampler

        self.g = DialogueSampler(split="dev", seed=seed)
        self.rng = random.Random(seed)
        self.shop = shop
        db = shop.db
        self.orders = [r[0] for r in db.execute("SELECT order_id FROM orders ORDER BY order_id")]
        self.customers = [r[0] for r in db.execute("SELECT customer_id FROM customers ORDER BY customer_id")]
        self.skus = [r[0] for r in db.execute("SELECT product_sku FROM products ORDER BY product_sku")]
        self.systems = [r[0] for r in db.execute("SELECT system_id FROM systems ORDER BY system_id")]

    def tool(self) -> str:
        names = list(TOOL_WEIGHTS)
        return self.rng.choices(names, weights=[TOOL_WEIGHTS[n] for n in names])[0]

    def request(self, tool: str, missing: bool = False) -> tuple[str, dict[str, Any]]:
        """A dev-phrased request whose ids exist in the shop (or, if `missing`, do not)."""
        text, args = self.g.request(tool)
        args = dict(args)
        for key, pool, absent in (("order_id", self.orders, "9999999"), ("customer_id", self.customers, "C-99999"),
                                  ("product_sku", self.skus, "SKU-ZZZ9"), ("system_id", self.systems, "srv-9999")):
            if key in args:
                new = absent if missing else self.rng.choice(pool)
                text = _swap(text, str(args[key]), new)
                args[key] = new
        return text, args

    def turn(self, tool: str, shop: Shop, missing: bool = False) -> dict[str, Any]:
        text, args = self.request(tool, missing)
        result = getattr(shop, tool)(**{k: v for k, v in args.items()})
        expected = {k: v for k, v in args.items() if k not in FREE_TEXT}
        turn = {"user": text, "expected_tool": tool, "expected_arguments": expected,
                "expected_facts": _facts(tool, result)}
        free = {k: v for k, v in args.items() if k in FREE_TEXT}
        if free:
            turn["free_text"] = free
        if tool in RESULT_FACTS:
            turn["result_facts"] = RESULT_FACTS[tool]
        return turn


def agent_cases(n: int = 100, seed: int = 123, two_request_share: float = 0.2,
                not_found_share: float = 0.05) -> list[dict[str, Any]]:
    """`n` scripted cases from held-out phrasings with real shop ids; some chats hold two requests."""
    import tempfile

    from helpers.agents.toolbox import shop_db_path

    cases = []
    with tempfile.TemporaryDirectory() as tmp:
        import shutil

        src = shop_db_path()
        if not src.exists():
            from helpers.agents.toolbox import build_shop_db

            build_shop_db(src)
        ref = Shop(src)
        maker = _CaseMaker(seed, ref)
        for i in range(n):
            work = Path(tmp) / f"case{i}.sqlite"
            shutil.copyfile(src, work)
            shop = Shop(work)  # write tools number their rows from a fresh copy, as the runner does
            n_turns = 2 if maker.rng.random() < two_request_share else 1
            turns = []
            for _ in range(n_turns):
                tool = maker.tool()
                missing = tool in ("lookup_order", "lookup_customer", "check_inventory", "run_diagnostics") \
                    and maker.rng.random() < not_found_share
                turns.append(maker.turn(tool, shop, missing))
            shop.close()
            cases.append({"id": f"agent-dev-{i:04d}", "turns": turns})
        ref.close()
    return cases


def write_cases(cases: list[dict[str, Any]], path: str | Path) -> Path:
    """Write cases as JSON lines."""
    from helpers.data.jsonl import write_jsonl

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_jsonl(cases, str(path))
    return path


def load_agent_cases(path: str | Path) -> list[dict[str, Any]]:
    """Read an agent eval file; a clear error names the line that is not a valid case."""
    from helpers.data.jsonl import iter_jsonl

    path = Path(path)
    cases = []
    for n, case in iter_jsonl(path, f"No agent eval file at {path}. The workbook's set is {DEFAULT_PATH} "
                                    "(rebuild it with `python -m helpers eval-agent --write`)."):
        turns = case.get("turns") if isinstance(case, dict) else None
        if not isinstance(turns, list) or not turns or not all(
                isinstance(t, dict) and isinstance(t.get("user"), str) and isinstance(t.get("expected_tool"), str)
                for t in turns):
            raise ValueError(f"{path}:{n}: a case needs 'turns': a list of {{'user': ..., 'expected_tool': ..., "
                             "'expected_arguments': {...}, 'expected_facts': [...]}}.")
        for i, t in enumerate(turns):  # every field the scoring reads, checked before any model runs
            for key, kind, what in (("expected_arguments", dict, "an object"), ("free_text", dict, "an object"),
                                    ("expected_facts", list, "a list of strings"),
                                    ("result_facts", list, "a list of strings")):
                value = t.get(key, kind())
                if not isinstance(value, kind) or (kind is list and not all(isinstance(x, str) for x in value)):
                    raise ValueError(f"{path}:{n}: turn {i + 1}: '{key}' must be {what}, got "
                                     f"{type(value).__name__}; fix the line or rebuild the file with "
                                     "`python -m helpers eval-agent --write`.")
        case.setdefault("id", f"line-{n}")
        cases.append(case)
    if not cases:
        raise ValueError(f"{path} holds no cases.")
    return cases


# ------------------------------------------------------------------------------------------ scoring
def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", str(text)).strip().casefold()


def score_turn(turn: dict[str, Any], result: Any) -> dict[str, Any]:
    """Whether one agent turn (an AgentResult) did what the turn expects, and why not."""
    from helpers.eval import values_equal

    row: dict[str, Any] = {"tool": turn["expected_tool"], "ok": result.ok, "answer": result.answer,
                           "error": result.error, "calls": result.tool_calls}
    call = next((c for c in result.tool_calls if c["name"] == turn["expected_tool"]), None)
    row["tool_ok"] = call is not None
    row["args_ok"] = call is not None and all(
        k in call["arguments"] and values_equal(v, call["arguments"][k])
        for k, v in (turn.get("expected_arguments") or {}).items())
    facts = list(turn.get("expected_facts") or [])
    if call is not None and isinstance(call.get("result"), dict):
        facts += [str(call["result"].get(k, "")) for k in turn.get("result_facts") or []]
    row["missing_facts"] = [f for f in facts if _norm(f) not in _norm(result.answer)]
    row["facts_ok"] = not row["missing_facts"]
    if call is not None and turn.get("free_text"):
        row["free_text_exact"] = all(values_equal(v, call["arguments"].get(k)) for k, v in turn["free_text"].items())
    row["passed"] = bool(result.ok and row["tool_ok"] and row["args_ok"] and row["facts_ok"])
    if not row["passed"]:
        row["why"] = ("error" if not result.ok else "tool" if not row["tool_ok"] else
                      "arguments" if not row["args_ok"] else "facts")
    return row


def run_agent_eval(runtime: Any, cases: list[dict[str, Any]], *, progress: bool = False,
                   **agent_kwargs: Any) -> dict[str, Any]:
    """Run every case through a fresh `Agent` on a fresh shop copy; task completion and per-tool counts."""
    from helpers.agents.loop import Agent
    from helpers.agents.toolbox import ToolBox, shop_copy

    rows = []
    it: Any = cases
    if progress:
        from tqdm.auto import tqdm

        it = tqdm(cases, desc="eval-agent", leave=False)
    from helpers.domain.tools import ToolArgumentError, validate_arguments

    blocked = ran_invalid = 0
    for case in it:
        shop = shop_copy("eval-agent")
        try:
            agent = Agent(runtime, ToolBox.from_shop(shop), **agent_kwargs)
            turns = []
            for turn in case["turns"]:
                res = agent.run(turn["user"])
                blocked += sum(1 for s in res.steps if s.kind == "error" and s.detail.get("type") != "runtime")
                blocked += sum(1 for s in res.steps if s.kind == "tool" and not s.detail.get("ran"))
                turns.append(score_turn(turn, res))
                for c in res.tool_calls:  # every call that ran must pass the catalog's schema
                    try:
                        validate_arguments(c["name"], c["arguments"])
                    except ToolArgumentError:
                        ran_invalid += 1
        finally:
            shop.close()
        rows.append({"id": case["id"], "passed": all(t["passed"] for t in turns), "turns": turns,
                     "answered_by": res.answered_by})
    return summarize_agent(rows, blocked=blocked, ran_invalid=ran_invalid)


def summarize_agent(rows: list[dict[str, Any]], blocked: int = 0, ran_invalid: int = 0) -> dict[str, Any]:
    """Task completion over cases, pass counts per tool over requests, and the failure reasons."""
    per: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    why: dict[str, int] = defaultdict(int)
    free = [0, 0]
    for r in rows:
        for t in r["turns"]:
            per[t["tool"]][0] += t["passed"]
            per[t["tool"]][1] += 1
            if not t["passed"]:
                why[t["why"]] += 1
            if "free_text_exact" in t:
                free[0] += t["free_text_exact"]
                free[1] += 1
    multi = [r for r in rows if len(r["turns"]) > 1]
    return {"task_completion": sum(r["passed"] for r in rows) / max(1, len(rows)), "n": len(rows),
            "per_tool": {k: {"passed": v[0], "n": v[1]} for k, v in sorted(per.items())},
            "two_request": {"passed": sum(r["passed"] for r in multi), "n": len(multi)},
            "failures": dict(sorted(why.items())), "free_text_exact": {"exact": free[0], "n": free[1]},
            "invalid_calls_blocked": blocked, "ran_with_invalid_arguments": ran_invalid,
            "answered_by": rows[-1]["answered_by"] if rows else "", "rows": rows}


def format_agent_table(summary: dict[str, Any]) -> str:
    """The per-tool table, failure reasons, and the final `task_completion=0.XXX n=N` line."""
    lines = [f"{'tool':<24}{'passed':>8}{'n':>6}{'rate':>8}"]
    for name, s in summary["per_tool"].items():
        lines.append(f"{name:<24}{s['passed']:>8}{s['n']:>6}{s['passed'] / s['n']:>8.3f}")
    tr = summary["two_request"]
    lines.append(f"two-request chats: {tr['passed']}/{tr['n']} passed")
    if summary["failures"]:
        lines.append("failed requests by reason: " + ", ".join(f"{k} {v}" for k, v in summary["failures"].items()))
    ft = summary["free_text_exact"]
    if ft["n"]:
        lines.append(f"free text copied exactly (not scored): {ft['exact']}/{ft['n']}")
    lines.append(f"invalid calls blocked before running: {summary['invalid_calls_blocked']}; tools run with "
                 f"arguments that fail the schema: {summary.get('ran_with_invalid_arguments', 0)}")
    lines.append(f"task_completion={summary['task_completion']:.3f} n={summary['n']}")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ command line
def eval_agent(args: Any) -> int:
    """Run `eval-agent` from parsed arguments (the CLI subcommand calls this)."""
    from helpers.runtimes import check_runtime_name, get_runtime

    if getattr(args, "write", False):
        path = write_cases(agent_cases(args.n, args.seed), args.path)
        print(f"wrote {args.n} cases to {path}")
        return 0
    if args.runtime is not None:
        check_runtime_name(args.runtime)
    if args.limit is not None and args.limit < 0:
        raise ValueError("--limit must be 0 (all cases) or a positive number.")
    cases = load_agent_cases(args.path)[: args.limit or None]
    constrained = getattr(args, "constrained", None)
    if constrained and (args.runtime or "").lower() != "embedded":
        raise ValueError("--constrained applies to the embedded runtime only: add --runtime embedded")
    rt = get_runtime(args.runtime, args.model, **({"constrained": constrained} if constrained else {}))
    try:
        summary = run_agent_eval(rt, cases, progress=sys.stderr.isatty(), max_steps=getattr(args, "max_steps", 4),
                                 max_retries=getattr(args, "max_retries", 1))
        name, model = rt.name, rt.model
    finally:
        rt.close()
    print(f"runtime={name} model={model} decoding=greedy" + (f", {constrained}-constrained" if constrained else
                                                              ", unconstrained") + f" cases={args.path}")
    print(format_agent_table(summary))
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            for row in summary["rows"]:
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
    return 0
