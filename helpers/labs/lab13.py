"""Auto-checks for lab 13 (an ONNX Runtime GenAI service): each `check_*` raises AssertionError with a hint, or
prints what passed. The checks run the learner's code on fresh inputs: new prompts, new sets of tools, and a
real service started for the check with one generation slot and no queue.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def _fresh_prompts(n: int, seed: int) -> list[list[dict[str, Any]]]:
    from helpers.data.synth import eval_cases

    return [c["messages"] for c in eval_cases(n, seed=seed)]


def _reference(model, tokenizer, prompt_ids: list[int], max_new_tokens: int, guidance=None) -> list[int]:
    """The answer key: greedy `og.Generator` loop, end-of-sequence dropped."""
    import onnxruntime_genai as og

    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(prompt_ids) + max_new_tokens, do_sample=False)
    if guidance:
        params.set_guidance(*guidance)
    gen = og.Generator(model, params)
    gen.append_tokens(prompt_ids)
    eos = {int(t) for t in tokenizer.eos_token_ids}
    out = []
    while not gen.is_done():
        gen.generate_next_token()
        token = int(gen.get_next_tokens()[0])
        if token in eos:
            break
        out.append(token)
    return out


def check_generate(fn: Callable[..., list[int]], model, tokenizer, seed: int | None = None) -> None:
    """Lab 13, task 1: `fn(model, tokenizer, prompt_ids, max_new_tokens, guidance=None)` is the greedy loop, with
    `GeneratorParams.set_guidance(*guidance)` when `guidance` is given."""
    from helpers.domain.tools import openai_tools
    from helpers.domain.chat_format import render
    from helpers.runtimes.ortgenai_engine import tool_guidance

    rng = random.Random(seed if seed is not None else random.randrange(1 << 30))
    tools = openai_tools()
    for messages in _fresh_prompts(2, rng.randrange(1 << 30)):
        ids = list(tokenizer.encode(render(messages, tools, add_generation_prompt=True)))
        n = rng.randint(8, 48)
        got, want = fn(model, tokenizer, ids, n), _reference(model, tokenizer, ids, n)
        got = [int(t) for t in got]
        assert not got or got[-1] not in {int(t) for t in tokenizer.eos_token_ids}, \
            "the end-of-sequence token is in your output: stop before appending it"
        assert len(got) <= n, f"asked for at most {n} new tokens, got {len(got)}: set max_length = len(prompt) + {n}"
        assert got == want, (f"for {messages[-1]['content']!r} your loop gave {tokenizer.decode(got)!r}, greedy "
                             f"decoding gives {tokenizer.decode(want)!r}: use do_sample=False and feed the prompt "
                             "with append_tokens")
    weather = openai_tools(["get_weather"])
    guidance = tool_guidance(weather, "required")
    ids = list(tokenizer.encode(render([{"role": "user", "content": "hello there"}], weather,
                                       add_generation_prompt=True)))
    got = [int(t) for t in fn(model, tokenizer, ids, 64, guidance=guidance)]
    assert got == _reference(model, tokenizer, ids, 64, guidance), (
        f"with a grammar that allows only a get_weather call, your loop wrote {tokenizer.decode(got)!r}: call "
        "params.set_guidance(*guidance) before creating the Generator")
    _ok("greedy loop identical to the reference on 2 fresh prompts, and it follows a grammar when given one")


def check_grammar(fn: Callable[[list[dict[str, Any]]], str], model, tokenizer, seed: int | None = None) -> None:
    """Lab 13, task 2: `fn(tools)` is a Lark grammar that allows only well-formed calls of the given tools, in the
    workbook's format `<tool_call>[{"name":...,"parameters":{...}}]</tool_call>`, each tool's arguments following
    its JSON schema."""
    from helpers.domain.tools import TOOL_NAMES, ToolArgumentError, openai_tools, validate_arguments
    from helpers.domain.chat_format import parse_reply, render

    rng = random.Random(seed if seed is not None else random.randrange(1 << 30))
    names = rng.sample(list(TOOL_NAMES), 3)
    tools = openai_tools(names)
    grammar = fn(tools)
    assert isinstance(grammar, str) and "start" in grammar, "return the grammar as a string with a `start:` rule"
    questions = ["hello there", "thanks, bye!", "what can you do?"]
    questions += [m[-1]["content"] for m in _fresh_prompts(3, rng.randrange(1 << 30))]
    judged, cut = 0, 0
    for q in questions:
        if judged == 3:
            break
        ids = list(tokenizer.encode(render([{"role": "user", "content": q}], tools, add_generation_prompt=True)))
        try:
            reply_ids = _reference(model, tokenizer, ids, 96, ("lark_grammar", grammar))
        except Exception as exc:
            raise AssertionError(f"ONNX Runtime GenAI could not use your grammar: {str(exc)[:300]}") from None
        out = tokenizer.decode(reply_ids)
        parsed = parse_reply(out, known_tools=names)
        if parsed.error and parsed.error["type"] == "unterminated_call" and len(reply_ids) >= 96:
            cut += 1  # a call still being written at the token limit (e.g. an id of endless digits): no verdict
            continue
        judged += 1
        assert not parsed.error or parsed.error["type"] != "unknown_tool", (
            f"for {q!r} the model wrote {out!r}, a call of a tool that was not offered ({names}): one alternative "
            "per offered tool, with its own name written out")
        assert parsed.tool_calls and not parsed.error, (
            f"for {q!r} the model wrote {out!r} under your grammar, which is not a complete tool call: allow only "
            "`<tool_call>[` call (`,` call)* `]</tool_call>` (no free text)")
        for c in parsed.tool_calls:
            assert c["name"] in names, (f"the model called {c['name']!r}, which was not offered ({names}): one "
                                        "alternative per offered tool, with its name written out")
            try:
                validate_arguments(c["name"], c["arguments"])  # the catalog's own argument check (pydantic)
            except ToolArgumentError as exc:
                raise AssertionError(f"for {q!r} the call {c} breaks the tool's schema ({exc}): put each tool's "
                                     "`parameters` schema after `%json` in its alternative") from None
    assert judged >= 2, f"only {judged} replies finished within 96 tokens ({cut} were cut): run the check again"
    _ok("replies to fresh prompts under your grammar, for three tools drawn at random: every one a valid call of an "
        "offered tool")


HOLD_TOKENS = 400  # the length of the check's own generation, which keeps the only slot busy


def check_client(fn: Callable[..., dict[str, Any]], model_dir: str | Path | None = None, burst: int = 2) -> None:
    """Lab 13, task 3: `fn(http, payload)` posts `payload` to `/v1/chat/completions` with the httpx client `http`
    and returns the JSON answer; on 503 it waits the `Retry-After` seconds and tries again."""
    import httpx

    from helpers.paths import ONNX_DIR
    from helpers.runtimes.ortgenai_engine import model_id
    from helpers.runtimes.ortgenai_service import ServiceSettings, serve_in_thread

    folder = Path(model_dir) if model_dir else ONNX_DIR / "int4"
    tool = [{"type": "function", "function": {"name": "write_note", "parameters": {
        "type": "object", "properties": {"text": {"type": "string", "minLength": 60}}, "required": ["text"]}}}]
    payload = {"model": model_id(folder), "messages": [{"role": "user", "content": "write a note"}], "tools": tool,
               "tool_choice": "required", "max_tokens": 300}
    log: dict[int, list[tuple[float, str, int, float]]] = {}  # thread -> (time, event, status, retry_after)

    def on_request(request) -> None:
        log.setdefault(threading.get_ident(), []).append((time.monotonic(), "request", 0, 0.0))

    def on_response(response) -> None:
        retry = float(response.headers.get("retry-after") or 0)
        log.setdefault(threading.get_ident(), []).append((time.monotonic(), "response", response.status_code, retry))

    # the check's own request takes the one slot first and keeps it: a tool whose note must be longer than the
    # token limit allows, so the model writes until `max_tokens` (about half a second here); your requests
    # arrive while it runs, so the first answer each of them gets is a 503, whatever the speed of the machine
    long_note = [{"type": "function", "function": {"name": "write_note", "parameters": {
        "type": "object", "properties": {"text": {"type": "string", "minLength": 4000}}, "required": ["text"]}}}]
    holder = {**payload, "tools": long_note, "max_tokens": HOLD_TOKENS}
    settings = ServiceSettings(folder, max_concurrency=1, max_queue=0, request_timeout_s=60)
    with serve_in_thread(settings) as (url, service), httpx.Client(
            base_url=url + "/v1", timeout=60, event_hooks={"request": [on_request], "response": [on_response]},
            limits=httpx.Limits(max_connections=burst)) as http:
        held: list[Any] = [None]

        def hold() -> None:
            try:
                with httpx.Client(base_url=url + "/v1", timeout=60) as own:
                    held[0] = own.post("/chat/completions", json=holder)
            except Exception as exc:  # reported below
                held[0] = exc

        holding = threading.Thread(target=hold)
        holding.start()
        until = time.monotonic() + 30
        while service.limiter.running < 1 and holding.is_alive() and time.monotonic() < until:
            time.sleep(0.002)  # until the check's request is generating
        results: list[Any] = [None] * burst

        def run(i: int) -> None:
            try:
                results[i] = fn(http, dict(payload))
            except Exception as exc:  # shown below with a hint
                results[i] = exc

        threads = [threading.Thread(target=run, args=(i,)) for i in range(burst)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        holding.join(60)
    assert isinstance(held[0], httpx.Response) and held[0].status_code == 200, (
        f"the check's own request failed ({held[0]!r}): run the check again; if it fails again, the service is "
        "not answering")
    for i, r in enumerate(results):
        assert not isinstance(r, Exception), (f"request {i} raised {type(r).__name__}: {r}; on HTTP 503 wait "
                                              "float(response.headers['Retry-After']) seconds and send it again")
        assert isinstance(r, dict) and "choices" in r, (
            f"request {i} returned {str(r)[:160]}: on 503 (error code queue_full) wait Retry-After seconds and "
            "retry, and return response.json() of the 200 answer")
    refused = [e for events in log.values() for e in events if e[1] == "response" and e[2] == 503]
    assert refused, ("the service never refused a request while the check's own request held its only slot: "
                     "send each request once per attempt, from the `http` client you were given")
    for events in log.values():
        for k, (t, kind, status, retry) in enumerate(events):
            if kind == "response" and status == 503 and k + 1 < len(events):
                waited = events[k + 1][0] - t
                assert waited >= 0.9 * retry, (f"after a 503 with Retry-After: {retry:g} your client retried after "
                                               f"{waited:.2f} s: time.sleep(Retry-After) before the next attempt")
    _ok("requests sent at once to a service with one slot and no queue: each refusal followed by a wait of "
        "Retry-After seconds, and every request answered")
