"""Property tests (Hypothesis) of the server's request validator and the chat-format parser (issue 15).

Random bodies: `parse_chat_request` returns a request or raises `ApiError` with a client status and a one-line
message, never anything else. Random model output: `parse_reply` never raises, and what it returns is either
text, well-formed calls to known tools, or a documented error; calls written by `format_tool_calls` parse back
exactly. No model is needed: both run on text.
"""

from __future__ import annotations

import json
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers.model.chat_format import (
    ASSISTANT,
    CALL_END,
    CALL_START,
    EOS,
    MESSAGE_FRAME,
    format_tool_calls,
    parse_reply,
)
from helpers.runtimes.server_api import ApiError, ChatRequest, parse_chat_request

MODEL, N_CTX = "edge-slm-f16", 2048
SETTINGS = settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
ERROR_TYPES = {"unterminated_call", "invalid_json", "not_a_list", "bad_call", "unknown_tool", "bad_arguments"}
TOOLS = ("lookup_order", "get_weather", "create_ticket")

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=8)


def _field_values(name: str):
    """Values for a known field: mostly plausible, sometimes of the wrong type or out of range."""
    plausible = {
        "model": st.sampled_from([MODEL, "gpt-4o", "", "x" * 300]),
        "messages": st.lists(st.fixed_dictionaries(
            {"role": st.sampled_from(["system", "user", "assistant", "tool", "developer", "wizard"])},
            optional={"content": st.one_of(st.text(max_size=40), st.none(), st.integers(),
                                           st.lists(st.fixed_dictionaries({"type": st.just("text"),
                                                                           "text": st.text(max_size=10)}),
                                                    max_size=2)),
                      "tool_calls": st.lists(st.fixed_dictionaries({"function": st.fixed_dictionaries(
                          {"name": st.sampled_from(TOOLS), "arguments": st.text(max_size=20)})}), max_size=2)}),
            max_size=5),
        "max_tokens": st.integers(-10, 5000) | st.none() | st.text(max_size=3),
        "temperature": st.floats(-1, 3) | st.none() | st.just("hot"),
        "n": st.integers(-1, 4) | st.none(),
        "stream": st.booleans() | st.integers(-1, 2),
        "tool_choice": st.sampled_from(["auto", "none", "required", {"type": "function"}]) | st.none(),
        "logprobs": st.booleans() | st.none(),
        "top_p": st.floats(0, 1.5) | st.none(),
        "seed": st.integers(-5, 2**33) | st.none(),
        "stop": st.none() | st.text(max_size=5) | st.lists(st.text(max_size=3), max_size=2),
        "grammar": st.none() | st.text(max_size=40) | st.just('root ::= "yes" | "no"'),
        "tools": st.none() | st.lists(st.fixed_dictionaries(
            {"type": st.just("function"), "function": st.fixed_dictionaries(
                {"name": st.sampled_from([*TOOLS, "bad name!", ""])},
                optional={"parameters": st.dictionaries(st.text(max_size=5), json_values, max_size=2)})}),
            max_size=3),
    }
    return plausible[name]


request_bodies = st.fixed_dictionaries(
    {"model": _field_values("model"), "messages": _field_values("messages")},
    optional={k: _field_values(k) for k in ("max_tokens", "temperature", "n", "stream", "tool_choice", "logprobs",
                                            "top_p", "seed", "stop", "grammar", "tools")})


def _check_outcome(body: bytes) -> ChatRequest | None:
    try:
        req, ignored = parse_chat_request(body, model=MODEL, n_ctx=N_CTX, max_body_bytes=50_000)
    except ApiError as err:
        assert err.status in (400, 404, 413, 422), err.status
        assert err.message and "\n" not in err.message and "Traceback" not in err.message
        assert ".py" not in err.message and "/work/" not in err.message and "/home/" not in err.message
        json.dumps(err.body())  # the error body is JSON
        return None
    assert isinstance(req, ChatRequest) and isinstance(ignored, list)
    return req


@SETTINGS
@given(st.binary(max_size=300))
def test_random_bytes_get_a_client_error_or_a_request(body):
    _check_outcome(body)


@SETTINGS
@given(json_values)
def test_random_json_gets_a_client_error_or_a_request(value):
    _check_outcome(json.dumps(value).encode())


@SETTINGS
@given(request_bodies, st.dictionaries(st.text(max_size=8), json_values, max_size=2))
def test_random_chat_bodies_are_validated_consistently(body, extra):
    req = _check_outcome(json.dumps({**extra, **body}).encode())
    if req is None:
        return
    # what passed is what the server can honour
    assert req.model == MODEL and 1 <= len(req.messages) <= N_CTX // 2
    assert req.n in (None, 1) and not req.logprobs and req.tool_choice in (None, "auto", "none")
    assert req.max_tokens is None or 1 <= req.max_tokens < N_CTX
    assert req.temperature is None or 0 <= req.temperature <= 2
    assert not req.stop and req.top_p in (None, 1.0)
    if req.grammar is not None:
        assert "root" in req.grammar


def test_deeply_nested_json_is_a_400_not_a_crash():
    for body in (b"[" * 100_000, b'{"model": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"):
        try:
            parse_chat_request(body, model=MODEL, n_ctx=N_CTX, max_body_bytes=1_000_000)
        except ApiError as err:
            assert err.status == 400
        else:  # pragma: no cover
            raise AssertionError("deep JSON accepted")


# ------------------------------------------------------------------ the chat-format parser on model output
pieces = st.sampled_from([CALL_START, CALL_END, EOS, ASSISTANT, MESSAGE_FRAME, "[", "]", "{", "}", ",", ":", '"',
                          '"name"', '"parameters"', '"arguments"', *[f'"{t}"' for t in TOOLS], '"order_id"',
                          '"48213"', "1", "null", "true", " ", "\n", "Your order", "\\", "\ufffd"])
model_output = st.lists(pieces | st.text(alphabet=string.printable, max_size=5), max_size=40).map("".join)


@SETTINGS
@given(model_output | st.text(max_size=200))
def test_parse_reply_never_raises_and_returns_a_documented_shape(text):
    parsed = parse_reply(text, known_tools=TOOLS)
    assert isinstance(parsed.content, str)
    if parsed.error is not None:
        assert parsed.error["type"] in ERROR_TYPES and parsed.error["message"] and not parsed.tool_calls
        return
    for call in parsed.tool_calls:
        assert call["name"] in TOOLS and isinstance(call["arguments"], dict)
        json.dumps(call["arguments"])
    if CALL_START not in text.replace(EOS, ""):
        assert not parsed.tool_calls


safe_args = st.dictionaries(st.text(string.ascii_letters + "_", min_size=1, max_size=8), json_values, max_size=3)


@SETTINGS
@given(st.lists(st.tuples(st.sampled_from(TOOLS), safe_args), min_size=1, max_size=3),
       st.text(alphabet=string.ascii_letters + " .,!?", max_size=30))
def test_calls_the_model_writes_parse_back_exactly(calls, preface):
    written = format_tool_calls([{"name": n, "arguments": a} for n, a in calls])
    parsed = parse_reply(preface + written + EOS, known_tools=TOOLS)
    assert parsed.error is None
    assert parsed.tool_calls == [{"name": n, "arguments": a} for n, a in calls]
    assert parsed.content == preface.strip()
