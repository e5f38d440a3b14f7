"""The workbook model's chat format: markers, the Jinja chat template, tool-call text and its parser.

Introduced in notebook 01 (meet the workbook's SLM). The same format is rendered by the Jinja template
shipped in `tokenizer_config.json` (read by transformers, llama.cpp, ONNX Runtime GenAI and Foundry Local)
and by `render_segments` here (used to build training data; a test checks the two agree).

A tool call is written the way Foundry Local's tool-calling grammar expects it:
`<tool_call>[{"name":"lookup_order","parameters":{"order_id":"48213"}}]</tool_call>`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from helpers.domain.tools import TOOL_NAMES

BOS = "<s>"
EOS = "<|end|>"
SYSTEM, USER, ASSISTANT, TOOL, TOOLS = "<|system|>", "<|user|>", "<|assistant|>", "<|tool|>", "<|tools|>"
CALL_START, CALL_END = "<tool_call>", "</tool_call>"
FOUNDRY_PROTOCOL_PREFIX = "Tool calling protocol for this conversation:"
FOUNDRY_MARKER = "protocol:foundry"
MESSAGE_FRAME = "MESSAGE\n"

# Symbols the tokenizer keeps whole (never split, never merged with neighbours).
USER_SYMBOLS: tuple[str, ...] = (SYSTEM, USER, ASSISTANT, TOOL, TOOLS, CALL_START, CALL_END) + TOOL_NAMES

# The chat template. It avoids `x['y']` subscripts and the `in` operator on strings because the template
# engine of ONNX Runtime GenAI (used by Foundry Local) treats them differently from Jinja.
CHAT_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- if tools -%}<|tools|>{%- for t in tools -%}{%- if not loop.first -%},{%- endif -%}"
    "{%- if t.function -%}{{- t.function.name -}}{%- else -%}{{- t.name -}}{%- endif -%}"
    "{%- endfor -%}<|end|>{%- endif -%}"
    "{%- for m in messages -%}"
    "{%- if m.role == 'system' -%}"
    "{%- if m.content.startswith('" + FOUNDRY_PROTOCOL_PREFIX + "') -%}<|system|>" + FOUNDRY_MARKER + "<|end|>"
    "{%- else -%}<|system|>{{- m.content -}}<|end|>{%- endif -%}"
    "{%- elif m.role == 'user' -%}<|user|>{{- m.content -}}<|end|>"
    "{%- elif m.role == 'assistant' -%}<|assistant|>{%- if m.content -%}{{- m.content -}}{%- endif -%}"
    "{%- if m.tool_calls -%}<tool_call>[{%- for tc in m.tool_calls -%}{%- if not loop.first -%},{%- endif -%}"
    "{%- if tc.function -%}{%- set f = tc.function -%}{%- else -%}{%- set f = tc -%}{%- endif -%}"
    "{\"name\":\"{{- f.name -}}\",\"parameters\":"
    "{%- if f.arguments is string -%}{{- f.arguments -}}{%- else -%}{{- f.arguments | tojson -}}{%- endif -%}}"
    "{%- endfor -%}]</tool_call>{%- endif -%}<|end|>"
    "{%- elif m.role == 'tool' -%}<|tool|>{{- m.content -}}<|end|>"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


def dump_json(value: Any) -> str:
    """Compact JSON with non-ASCII kept as is: the form the model reads and writes."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def compact_json_text(text: str) -> str:
    """JSON text re-written compactly (`dump_json`), the only form the model saw in training; other text as is.

    A hand-written client often sends `json.dumps(result)` with spaces after `:` and `,`; in a one-off check
    before this normalisation, the 5.2 M model copied an order status from such a result 21 times in 30,
    from the compact form 30 in 30."""
    if not text.lstrip().startswith(("{", "[")):
        return text
    try:
        return dump_json(json.loads(text))
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        return text


def format_tool_calls(calls: list[dict[str, Any]]) -> str:
    """Write calls `[{"name": ..., "arguments": {...}}]` as the model's tool-call text."""
    body = ",".join('{"name":"%s","parameters":%s}' % (c["name"], dump_json(c["arguments"])) for c in calls)
    return f"{CALL_START}[{body}]{CALL_END}"


def _arguments_text(arguments: Any) -> str:
    return arguments if isinstance(arguments, str) else dump_json(arguments)


def render_segments(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                    add_generation_prompt: bool = False) -> list[tuple[str, bool]]:
    """Render a chat as (text, is_assistant_output) segments; joined, they equal the Jinja template."""
    segs: list[tuple[str, bool]] = [(BOS, False)]
    if tools:
        names = [t["function"]["name"] if "function" in t else t["name"] for t in tools]
        segs.append((TOOLS + ",".join(names) + EOS, False))
    for m in messages:
        role = m["role"]
        if role == "system":
            content = m["content"]
            if content.startswith(FOUNDRY_PROTOCOL_PREFIX):
                segs.append((SYSTEM + FOUNDRY_MARKER + EOS, False))
            else:
                segs.append((SYSTEM + content + EOS, False))
        elif role == "user":
            segs.append((USER + m["content"] + EOS, False))
        elif role == "assistant":
            segs.append((ASSISTANT, False))
            text = m.get("content") or ""
            if m.get("tool_calls"):
                parts = []
                for tc in m["tool_calls"]:
                    f = tc.get("function", tc)
                    parts.append('{"name":"%s","parameters":%s}' % (f["name"], _arguments_text(f["arguments"])))
                text += CALL_START + "[" + ",".join(parts) + "]" + CALL_END
            segs.append((text + EOS, True))
        elif role == "tool":
            segs.append((TOOL + m["content"] + EOS, False))
    if add_generation_prompt:
        segs.append((ASSISTANT, False))
    return segs


def render(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
           add_generation_prompt: bool = True) -> str:
    """Render a chat to the prompt text the model sees."""
    return "".join(s for s, _ in render_segments(messages, tools, add_generation_prompt))


MARKERS: tuple[str, ...] = (CALL_START, CALL_END, EOS, SYSTEM, USER, ASSISTANT, TOOL, TOOLS)


def markup_in(text: str) -> str | None:
    """The first chat marker (`<tool_call>`, `<|end|>`, `<|user|>` ...) in `text`, or None.

    A reply shown to a user must hold none: a call that did not parse, or a model writing the next turn, is
    an error to handle (the agent loop of notebook 03 feeds it back), never an answer."""
    found = [(text.find(m), m) for m in MARKERS if m in text]
    return min(found)[1] if found else None


@dataclass
class ParsedReply:
    """A model reply split into text and tool calls, with a structured error if the call text is malformed."""

    content: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, str] | None = None


def parse_reply(text: str, known_tools: tuple[str, ...] | list[str] = TOOL_NAMES) -> ParsedReply:
    """Parse the model's raw output into text and OpenAI-style calls; never raises on bad model output.

    Errors are reported in `error` as {"type": ..., "message": ..., "raw": ...} with type one of
    `unterminated_call`, `invalid_json`, `not_a_list`, `bad_call`, `unknown_tool`, `bad_arguments`.
    """
    raw = text
    text = text.replace(EOS, "")
    if text.startswith(MESSAGE_FRAME):
        text = text[len(MESSAGE_FRAME):]
    start = text.find(CALL_START)
    if start < 0:
        return ParsedReply(content=text.strip())
    before = text[:start].strip()
    end = text.find(CALL_END, start)
    if end < 0:
        return ParsedReply(before, error={"type": "unterminated_call", "raw": raw,
                                          "message": f"tool call opened with {CALL_START} but never closed"})
    body = text[start + len(CALL_START):end].strip()
    try:
        data = json.loads(body)
    except json.JSONDecodeError as exc:
        return ParsedReply(before, error={"type": "invalid_json", "raw": raw,
                                          "message": f"tool call is not valid JSON: {exc.msg} at {exc.pos}"})
    except RecursionError:
        return ParsedReply(before, error={"type": "invalid_json", "raw": raw,
                                          "message": "tool call is JSON nested too deeply to read"})
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        return ParsedReply(before, error={"type": "not_a_list", "raw": raw,
                                          "message": "tool call must be a non-empty JSON array of calls"})
    calls = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            return ParsedReply(before, error={"type": "bad_call", "raw": raw,
                                              "message": f"call {i} is not an object with a string 'name'"})
        args = item.get("parameters", item.get("arguments", {}))
        if isinstance(args, str):
            try:
                args = json.loads(args)
            except (json.JSONDecodeError, RecursionError):
                pass
        if not isinstance(args, dict):
            return ParsedReply(before, error={"type": "bad_arguments", "raw": raw,
                                              "message": f"arguments of {item['name']} are not a JSON object"})
        if item["name"] not in known_tools:
            return ParsedReply(before, error={"type": "unknown_tool", "raw": raw,
                                              "message": f"model called unknown tool {item['name']!r}"})
        calls.append({"name": item["name"], "arguments": args})
    return ParsedReply(before, calls)


__all__ = ["BOS", "EOS", "SYSTEM", "USER", "ASSISTANT", "TOOL", "TOOLS", "CALL_START", "CALL_END",
           "FOUNDRY_PROTOCOL_PREFIX", "FOUNDRY_MARKER", "MESSAGE_FRAME", "USER_SYMBOLS", "CHAT_TEMPLATE", "dump_json",
           "compact_json_text", "format_tool_calls", "render_segments", "render", "ParsedReply", "parse_reply",
           "MARKERS", "markup_in"]
