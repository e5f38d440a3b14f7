"""Grammar-constrained decoding for the embedded runtime (notebook 01).

Two grammars, both llama.cpp GBNF built from the offered tools' JSON schemas with llama-cpp-python's
own schema converter:
- `schema`: the reply is plain text or a tool call whose arguments satisfy the tool's JSON schema
  (types, enums, patterns). The same idea as OpenAI's structured outputs or Foundry Local's
  tool-calling grammar. It fixes the form of a call, never which value the model picks.
- `extractive`: as `schema`, and in addition an argument the user states word for word (an order
  number, a customer id, a city: the domain's VERBATIM_ARGUMENTS) must be a span of the user's own words
  that fits its schema. The spans become an enum in the schema, so this is still a JSON-schema
  constraint, rebuilt for every request. Arguments the model must transform (a time "3pm" -> "15:00", a
  priority inferred from "urgent") keep the plain schema.
"""

from __future__ import annotations

import copy
import json
import re
from functools import lru_cache
from typing import Any

MODES = ("schema", "extractive")


def grammar_text(tools: list[dict[str, Any]] | None) -> str:
    """The GBNF text: `root ::= call | text`, one alternative per offered tool."""
    from llama_cpp.llama_grammar import SchemaConverter

    conv = SchemaConverter(prop_order={}, allow_fetch=False, dotall=False, raw_pattern=False)
    alts = []
    for i, t in enumerate(tools or []):
        f = t.get("function", t)
        schema = conv.resolve_refs(f.get("parameters") or {"type": "object"}, f"tool{i}")
        args_rule = conv.visit(schema, f"tool{i}-args")
        head = json.dumps('{"name":"%s","parameters":' % f["name"])
        alts.append(f"{head} {args_rule} \"}}\"")
    lines = [conv.format_grammar().replace("root ::=", "unused-root ::=")]
    if alts:
        lines.append("call-obj ::= " + " | ".join(f"( {a} )" for a in alts))
        lines.append('call ::= "<tool_call>[" call-obj ( "," call-obj )* "]</tool_call>"')
        lines.append("root ::= call | text")
    else:
        lines.append("root ::= text")
    lines.append("text ::= [^<\\x00]+")  # plain text never contains a tool-call tag
    return "\n".join(lines)


def candidate_spans(texts: list[str], schema: dict[str, Any]) -> list[Any]:
    """Spans of the user's words that fit a string or number schema (longest first)."""
    words = re.findall(r"[^\s]+", " ".join(texts))
    words = [w.strip(".,;:!?()[]{}\"'") for w in words]
    spans: set[str] = set()
    for i in range(len(words)):
        for j in range(i + 1, min(len(words), i + 12) + 1):
            span = " ".join(w for w in words[i:j] if w)
            if span:
                spans.add(span)
    pattern = schema.get("pattern")
    if schema.get("type") == "number" or schema.get("type") == "integer":
        nums = {m.group(0) for t in texts for m in re.finditer(r"(?<![\w.])\d+(?:\.\d+)?(?![\w])", t)}
        out: list[Any] = []
        for n in nums:
            v = float(n)
            out.append(int(v) if v.is_integer() and "." not in n else v)
        return sorted(set(out), key=str)
    if schema.get("type") != "string" or "enum" in schema:
        return []
    if pattern:
        body = pattern.strip("^$")
        found = {m.group(0) for t in texts for m in re.finditer(body, t, flags=re.I)}
        # a found id as the user wrote it, and in its canonical case if that fits the pattern
        return sorted({s for f in found for s in (f, f.upper(), f.lower()) if re.fullmatch(pattern, s)},
                      key=lambda s: (-len(s), s))
    lo, hi = schema.get("minLength", 1), schema.get("maxLength", 10_000)
    return sorted((s for s in spans if lo <= len(s) <= hi), key=lambda s: (-len(s), s))


def extractive_tools(tools: list[dict[str, Any]], messages: list[dict[str, Any]],
                     verbatim: frozenset[str] | set[str] | None = None) -> list[dict[str, Any]]:
    """The tools with each verbatim argument narrowed to an enum of fitting spans of the user's words.

    `verbatim` names the arguments a user states word for word (default: the domain's
    VERBATIM_ARGUMENTS); the others (a time to convert, a priority to infer) keep their schema."""
    from helpers.domain.tools import VERBATIM_ARGUMENTS

    verbatim = VERBATIM_ARGUMENTS if verbatim is None else verbatim
    texts = [m.get("content") or "" for m in messages if m.get("role") == "user"]
    out = []
    for t in tools:
        t = copy.deepcopy(t)
        f = t.get("function", t)
        for name, prop in (f.get("parameters") or {}).get("properties", {}).items():
            if name not in verbatim:
                continue
            cands = candidate_spans(texts, prop)
            if cands:
                for key in ("pattern", "minLength", "maxLength", "minimum", "maximum"):
                    prop.pop(key, None)
                prop["enum"] = cands
        out.append(t)
    return out


@lru_cache(maxsize=32)
def _compiled(text: str):
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


def reply_grammar(tools: list[dict[str, Any]] | None, messages: list[dict[str, Any]] | None = None,
                  mode: str = "schema"):
    """A compiled llama.cpp grammar for the reply to `messages` with these tools."""
    if mode not in MODES:
        raise ValueError(f"constrained decoding mode must be one of {MODES}, not {mode!r}")
    if mode == "extractive" and tools:
        tools = extractive_tools(tools, messages or [])
    return _compiled(grammar_text(tools))
