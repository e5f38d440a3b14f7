"""Lab 13's checks pass the solution's answers and fail wrong ones with a hint (notebook 13)."""

import json
import time

import pytest

og = pytest.importorskip("onnxruntime_genai")

from helpers.labs.lab13 import check_client, check_generate, check_grammar  # noqa: E402
from helpers.paths import ONNX_DIR  # noqa: E402


@pytest.fixture(scope="module")
def loaded():
    model = og.Model(str(ONNX_DIR / "int4"))
    return model, og.Tokenizer(model)


def loop(model, tokenizer, prompt_ids, max_new_tokens, guidance=None, use_guidance=True, keep_eos=False):
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(prompt_ids) + max_new_tokens, do_sample=False)
    if guidance and use_guidance:
        params.set_guidance(*guidance)
    gen = og.Generator(model, params)
    gen.append_tokens(prompt_ids)
    out = []
    while not gen.is_done():
        gen.generate_next_token()
        token = int(gen.get_next_tokens()[0])
        if token in {int(t) for t in tokenizer.eos_token_ids} and not keep_eos:
            break
        out.append(token)
    return out


def test_generate_check_passes_the_loop_and_names_each_mistake(loaded):
    model, tok = loaded
    check_generate(loop, model, tok, seed=1)
    with pytest.raises(AssertionError, match="set_guidance"):
        check_generate(lambda *a, guidance=None: loop(*a, guidance=guidance, use_guidance=False), model, tok, seed=1)
    with pytest.raises(AssertionError, match="end-of-sequence"):
        check_generate(lambda *a, guidance=None: loop(*a, guidance=guidance, keep_eos=True), model, tok, seed=1)


def grammar(tools, allow_text=False, fixed_name=None):
    alts = []
    for i, t in enumerate(tools):
        f = t["function"]
        head = json.dumps('{"name":"' + (fixed_name or f["name"]) + '","parameters":')
        alts.append(f"call_{i}: {head} %json {json.dumps(f['parameters'])} \"}}\"")
    start = 'start: calls | TEXT\nTEXT: /[^<]+/' if allow_text else "start: calls"
    return "\n".join([start, 'calls: "<tool_call>[" call ("," call)* "]</tool_call>"',
                      "call: " + " | ".join(f"call_{i}" for i in range(len(tools))), *alts])


def test_grammar_check_passes_a_good_grammar_and_fails_bad_ones(loaded):
    model, tok = loaded
    check_grammar(grammar, model, tok, seed=2)
    with pytest.raises(AssertionError, match="not a complete tool call"):
        check_grammar(lambda tools: grammar(tools, allow_text=True), model, tok, seed=2)
    with pytest.raises(AssertionError, match="was not offered"):
        check_grammar(lambda tools: grammar(tools, fixed_name="not_a_tool"), model, tok, seed=2)
    with pytest.raises(AssertionError, match="could not use your grammar"):
        check_grammar(lambda tools: "start: call_0 this is not lark", model, tok, seed=2)


def test_client_check_needs_retries_that_wait():
    def patient(http, payload, max_attempts=10):
        for _ in range(max_attempts):
            r = http.post("/chat/completions", json=payload)
            if r.status_code != 503:
                return r.json()
            time.sleep(float(r.headers["Retry-After"]))
        raise RuntimeError("refused")

    def impatient(http, payload):
        while True:
            r = http.post("/chat/completions", json=payload)
            if r.status_code != 503:
                return r.json()
            time.sleep(0.01)

    check_client(patient)
    with pytest.raises(AssertionError, match="returned .*wait Retry-After"):
        check_client(lambda http, payload: http.post("/chat/completions", json=payload).json())
    with pytest.raises(AssertionError, match="retried after"):
        check_client(impatient)
