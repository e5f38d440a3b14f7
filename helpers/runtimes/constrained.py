"""Grammar-constrained decoding for the embedded runtime (notebook 01): the reply is either plain text
or a tool call whose arguments satisfy the tool's JSON schema (types, enums, patterns).

This is the general mechanism llama.cpp offers (GBNF grammars, built here from JSON schemas with
llama-cpp-python's own converter), the same idea as OpenAI's structured outputs or Foundry Local's
tool-calling grammar. It fixes the form of a call, never which value the model copies.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any


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
    text_rule = 'text ::= [^<\\x00]+'  # plain text never contains a tool-call tag
    if alts:
        lines.append("call-obj ::= " + " | ".join(f"( {a} )" for a in alts))
        lines.append('call ::= "<tool_call>[" call-obj ( "," call-obj )* "]</tool_call>"')
        lines.append("root ::= call | text")
    else:
        lines.append("root ::= text")
    lines.append(text_rule)
    return "\n".join(lines)


@lru_cache(maxsize=16)
def _compiled(text: str):
    from llama_cpp import LlamaGrammar

    return LlamaGrammar.from_string(text, verbose=False)


def reply_grammar(tools: list[dict[str, Any]] | None):
    """A compiled llama.cpp grammar for replies to a chat with these tools (cached per tool set)."""
    return _compiled(grammar_text(tools))
