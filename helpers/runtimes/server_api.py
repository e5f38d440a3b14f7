"""The request checks of the workbook's server (`python -m helpers serve`), at its edge, before any model work.

Introduced in notebook 01 with the server; `tests/test_faults_server.py` tries them with hostile bodies and
Hypothesis generates random ones. `parse_chat_request(body, ...)` turns the raw bytes of a
`POST /v1/chat/completions` into a `ChatRequest`, or raises `ApiError` with the HTTP status a client error
deserves and a one-line message that says what to change (never a path, a traceback or the input echoed):

- 400: not JSON, not an object, a field the server cannot honour (`n` > 1, `logprobs`, `tool_choice` other
  than "auto"/"none", `stop`, `response_format` other than text, ...), a grammar without a `root` rule;
- 404: a model the server does not serve (the error lists the one it does);
- 413: a body over the size bound (checked by the app while reading, before parsing);
- 422: a field of the wrong type or out of range (`max_tokens` of 0 or -5, a role that does not exist, ...).

The server answers with the OpenAI error shape `{"error": {"message", "type", "param", "code"}}`.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_BODY_BYTES = 1_000_000  # a 2,048-token context needs far less; tools and history included
MAX_TOOLS = 64
MAX_GRAMMAR_CHARS = 20_000
MAX_GRAMMAR_NESTING = 50


class ApiError(Exception):
    """A request the server refuses: HTTP status, OpenAI error type, the field at fault and a one-line message."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
                 code: str | None = None, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.type, self.param, self.code = status, message, type, param, code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        """The OpenAI error object."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class _Loose(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FunctionDef(_Loose):
    name: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$")
    description: str | None = None
    parameters: dict[str, Any] | None = None


class ToolDef(_Loose):
    type: Literal["function"] = "function"
    function: FunctionDef


class CallFunction(_Loose):
    name: str = Field(min_length=1, max_length=64)
    arguments: str | dict[str, Any] = "{}"


class ToolCallIn(_Loose):
    id: str | None = None
    type: Literal["function"] = "function"
    function: CallFunction


class TextPart(_Loose):
    type: Literal["text"]
    text: str


class Message(_Loose):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[TextPart] | None = None
    name: str | None = None
    tool_calls: list[ToolCallIn] | None = None
    tool_call_id: str | None = None

    def openai(self) -> dict[str, Any]:
        """The message as the chat handler reads it ("developer" is the newer name of "system")."""
        content = self.content
        if isinstance(content, list):
            content = "".join(p.text for p in content)
        out: dict[str, Any] = {"role": "system" if self.role == "developer" else self.role, "content": content or ""}
        if self.tool_calls:
            out["tool_calls"] = [{"id": c.id or f"call_{i}", "type": "function",
                                  "function": {"name": c.function.name, "arguments": c.function.arguments}}
                                 for i, c in enumerate(self.tool_calls)]
        if self.tool_call_id:
            out["tool_call_id"] = self.tool_call_id
        return out


class StreamOptions(_Loose):
    include_usage: bool = False


class ChatRequest(_Loose):
    """The fields of an OpenAI chat-completions request this server reads (unknown fields are listed back in
    the `x-edge-slm-ignored-fields` response header)."""

    model: str = Field(min_length=1, max_length=256)
    messages: list[Message] = Field(min_length=1)
    tools: list[ToolDef] | None = Field(default=None, max_length=MAX_TOOLS)
    tool_choice: str | dict[str, Any] | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0, allow_inf_nan=False)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0, allow_inf_nan=False)
    seed: int | None = Field(default=None, ge=0, lt=2**32)
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int | None = Field(default=None, ge=1)
    logprobs: bool | None = None
    top_logprobs: int | None = None
    stop: str | list[str] | None = None
    presence_penalty: float | None = None
    frequency_penalty: float | None = None
    logit_bias: dict[str, Any] | None = None
    response_format: dict[str, Any] | None = None
    user: str | None = None
    grammar: str | None = None  # llama.cpp extension: a GBNF grammar the output must follow


# Fields an OpenAI client may send that this server reads or can safely take as no-ops.
KNOWN_FIELDS = set(ChatRequest.model_fields) | {"store", "metadata", "service_tier"}


def _loc(loc: tuple[Any, ...]) -> str:
    return ".".join(str(x) for x in loc) or "body"


def _validation_message(exc: ValidationError) -> tuple[str, str | None]:
    errors = exc.errors(include_url=False, include_input=False)
    parts = [f"{_loc(e['loc'])}: {e['msg']}" for e in errors[:3]]
    more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
    return "invalid request: " + "; ".join(parts) + more + ". See the OpenAI chat-completions request format.", \
        (_loc(errors[0]["loc"]) if errors else None)


def check_grammar(text: str) -> None:
    """Cheap checks of a GBNF grammar before llama.cpp parses it: size, nesting depth and a `root` rule."""
    if len(text) > MAX_GRAMMAR_CHARS:
        raise ApiError(400, f"grammar is {len(text):,} characters; the server takes at most {MAX_GRAMMAR_CHARS:,}.",
                       param="grammar", code="invalid_grammar")
    depth = deepest = 0
    quoted: str | None = None
    escaped = False
    for ch in text:
        if quoted:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == quoted or (quoted == "[" and ch == "]"):
                quoted = None
            continue
        if ch in "\"[":
            quoted = ch
        elif ch == "(":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == ")":
            depth -= 1
    if deepest > MAX_GRAMMAR_NESTING:
        raise ApiError(400, f"grammar nests groups {deepest} deep; the server takes at most {MAX_GRAMMAR_NESTING}.",
                       param="grammar", code="invalid_grammar")
    if not re.search(r"(?m)^\s*root\s*::=", text):
        raise ApiError(400, "grammar has no `root ::= ...` rule: llama.cpp starts generating from `root`.",
                       param="grammar", code="invalid_grammar")


def parse_chat_request(body: bytes, *, model: str, n_ctx: int,
                       max_body_bytes: int = MAX_BODY_BYTES) -> tuple[ChatRequest, list[str]]:
    """Validate a chat-completions body: the request and the unknown fields it carried, or `ApiError`.

    `model` is the name the server serves; `n_ctx` its context in tokens (bounds `max_tokens` and the number of
    messages: every message takes at least two marker tokens, so more than n_ctx / 2 cannot fit).
    """
    if len(body) > max_body_bytes:
        raise ApiError(413, f"request body is {len(body):,} bytes; the server takes at most {max_body_bytes:,}. "
                       "Send fewer or shorter messages.", code="request_too_large")
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):  # RecursionError: JSON nested thousands deep
        raise ApiError(400, "request body is not valid JSON: send a JSON object "
                       "(Content-Type: application/json).", code="invalid_json") from None
    if not isinstance(data, dict):
        raise ApiError(400, f"request body must be a JSON object, not {type(data).__name__}.", code="invalid_json")
    messages = data.get("messages")
    if isinstance(messages, list) and len(messages) > n_ctx // 2:  # counted before validating each one
        raise ApiError(400, f"{len(messages):,} messages cannot fit the model's {n_ctx}-token context (each takes at "
                       "least 2 tokens): drop or summarise old turns.", param="messages",
                       code="context_length_exceeded")
    try:
        req = ChatRequest.model_validate(data)
    except ValidationError as exc:
        msg, param = _validation_message(exc)
        raise ApiError(422, msg, param=param, code="invalid_value") from None
    except RecursionError:
        raise ApiError(400, "request body is nested too deeply.", code="invalid_json") from None
    ignored = sorted(k for k in data if k not in KNOWN_FIELDS)
    check_semantics(req, model=model, n_ctx=n_ctx)
    return req, ignored


def _unsupported(param: str, what: str) -> ApiError:
    return ApiError(400, f"{param}: {what}; this server (one llama.cpp model, one answer per request) cannot "
                    "honour it. Leave it out.", param=param, code="unsupported_parameter")


def check_semantics(req: ChatRequest, *, model: str, n_ctx: int) -> None:
    """What a well-typed request may still ask for that this server cannot do; raises `ApiError`."""
    if req.model != model:
        raise ApiError(404, f"model {req.model[:64]!r} is not served here; this server serves {model!r} "
                       "(GET /v1/models lists it).", param="model", code="model_not_found")
    if req.n not in (None, 1):
        raise _unsupported("n", f"{req.n} answers asked for")
    if req.logprobs or req.top_logprobs:
        raise _unsupported("logprobs", "log-probabilities asked for")
    if req.tool_choice not in (None, "auto", "none"):
        raise _unsupported("tool_choice", "only 'auto' and 'none' are supported (the model decides, or no tools)")
    if req.stop:
        raise _unsupported("stop", "stop sequences asked for")
    if req.presence_penalty or req.frequency_penalty or req.logit_bias:
        raise _unsupported("presence_penalty" if req.presence_penalty else
                           "frequency_penalty" if req.frequency_penalty else "logit_bias", "a sampling penalty")
    if req.top_p not in (None, 1.0):
        raise _unsupported("top_p", f"nucleus sampling at {req.top_p}")
    if req.response_format and req.response_format.get("type") not in (None, "text"):
        raise _unsupported("response_format", f"{str(req.response_format.get('type'))[:32]!r} output "
                           "(use `grammar` to constrain the output)")
    if req.max_tokens is not None and req.max_completion_tokens is not None \
            and req.max_tokens != req.max_completion_tokens:
        raise ApiError(400, "max_tokens and max_completion_tokens disagree: send one of them.", param="max_tokens")
    limit = req.max_completion_tokens or req.max_tokens
    if limit is not None and limit >= n_ctx:
        raise ApiError(400, f"max_tokens is {limit}; the model's context is {n_ctx} tokens in all (prompt plus "
                       f"reply): ask for fewer than {n_ctx}.", param="max_tokens", code="context_length_exceeded")
    if len(req.messages) > n_ctx // 2:
        raise ApiError(400, f"{len(req.messages):,} messages cannot fit the model's {n_ctx}-token context (each takes "
                       "at least 2 tokens): drop or summarise old turns.", param="messages",
                       code="context_length_exceeded")
    for i, m in enumerate(req.messages):
        if m.role == "tool" and isinstance(m.content, list) and not m.content:
            raise ApiError(422, f"messages.{i}.content: a tool result must have text.", param=f"messages.{i}")
    if req.grammar is not None:
        check_grammar(req.grammar)


__all__ = ["ApiError", "ChatRequest", "KNOWN_FIELDS", "MAX_BODY_BYTES", "Message", "check_grammar",
           "check_semantics", "parse_chat_request"]
