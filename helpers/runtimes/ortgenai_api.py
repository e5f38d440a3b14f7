"""The ONNX Runtime GenAI service's typed requests and its errors (notebook 13): OpenAI chat-completion bodies as
pydantic models, and errors answered in OpenAI's shape with one clear line."""

import json
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

# the parts of a message and of a streaming request that both servers read alike (`python -m helpers serve`)
from helpers.runtimes.server_api import Message, StreamOptions

# OpenAI fields this service cannot honour: refused with 400, never dropped (the contract suite caught `stop`)
UNSUPPORTED = ("stop", "logprobs", "top_logprobs", "logit_bias", "presence_penalty", "frequency_penalty")


# ---- typed requests (OpenAI chat completions; fields a client may send and this server ignores are dropped)
class _In(BaseModel):
    model_config = ConfigDict(extra="ignore")


class FunctionDef(_In):
    name: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    description: str | None = None
    parameters: dict[str, Any] = Field(default_factory=lambda: {"type": "object", "properties": {}})

    @field_validator("parameters")
    @classmethod
    def _is_json_schema(cls, v: dict[str, Any]) -> dict[str, Any]:
        problem = schema_problem(json.dumps(v, sort_keys=True))
        if problem:
            raise ValueError(f"not a valid JSON Schema ({problem})")
        return v


@lru_cache(maxsize=256)
def schema_problem(schema_text: str) -> str | None:
    """Why a JSON Schema (as JSON text) is invalid, or None. Cached: checking the workbook's ten tool schemas
    takes about 30 ms, three times the HTTP cost of a request, and clients send the same tools every time."""
    from helpers.domain.tools import jsonschema_module

    jsonschema = jsonschema_module()

    try:
        jsonschema.Draft202012Validator.check_schema(json.loads(schema_text))
    except jsonschema.SchemaError as exc:
        return exc.message
    return None


class ToolDef(_In):
    type: Literal["function"]
    function: FunctionDef


class ChatMessage(Message):
    """The workbook server's message, here required to have content unless it is an assistant's tool call."""

    @model_validator(mode="after")
    def _has_content(self) -> "ChatMessage":
        if self.content is None and not (self.role == "assistant" and self.tool_calls):
            raise ValueError(f"a {self.role} message needs content")
        return self

    def plain(self) -> dict[str, Any]:
        """The message as the workbook's chat template takes it (`developer` is a system message)."""
        m = self.model_dump(exclude_none=True)
        m["role"] = "system" if self.role == "developer" else self.role
        return m


class NamedFunction(_In):
    name: str


class NamedToolChoice(_In):
    type: Literal["function"]
    function: NamedFunction


class ChatRequest(_In):
    model: str = Field(min_length=1)
    messages: list[ChatMessage] = Field(min_length=1)
    tools: list[ToolDef] | None = None
    tool_choice: Literal["none", "auto", "required"] | NamedToolChoice | None = None
    temperature: float = Field(0.0, ge=0, le=2)  # greedy unless asked: the workbook compares answers
    top_p: float = Field(1.0, gt=0, le=1)
    max_tokens: int | None = Field(None, ge=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    n: int = Field(1, ge=1, le=1)


# ---- errors: one line, OpenAI's shape, never a path or a traceback
class ServiceError(Exception):
    """An HTTP error answered as `{"error": {"message", "type", "code"}}`."""

    def __init__(self, status: int, message: str, code: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code, self.headers = status, message, code, headers or {}

    def body(self) -> dict[str, Any]:
        kind = "invalid_request_error" if self.status < 500 else "server_error"
        return {"error": {"message": self.message, "type": kind, "param": None, "code": self.code}}


def validation_message(exc: ValidationError) -> str:
    """A pydantic error as one line: where, and what is wrong (the input itself is not echoed)."""
    parts = []
    for e in exc.errors()[:3]:
        where = ".".join(str(p) for p in e["loc"] if not str(p).startswith(("function-after", "literal[", "list[")))
        parts.append(f"{where or 'body'}: {e['msg']}")
    more = f" (and {len(exc.errors()) - 3} more)" if len(exc.errors()) > 3 else ""
    return "; ".join(parts) + more
