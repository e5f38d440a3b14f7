"""The runtime interface's optional capabilities (token ids, logits): present on the embedded runtime, a clear
error elsewhere, and the same numbers whichever way they are asked for."""

import numpy as np
import pytest

from helpers.runtimes import CAPABILITIES, CapabilityUnavailable, ChatResult, Runtime, get_runtime


class ChatOnly(Runtime):
    """A runtime that answers chats and nothing else (like a server)."""

    name = "chatonly"

    def availability(self):
        raise NotImplementedError

    @property
    def model(self) -> str:
        return "m"

    def chat(self, messages, tools=None, **kw) -> ChatResult:
        return ChatResult(self.name, self.model, content="hi")


@pytest.mark.parametrize("capability", CAPABILITIES)
def test_a_runtime_without_a_capability_says_so_and_what_to_use(capability):
    rt = ChatOnly()
    assert not rt.supports(capability)
    call = {"tokenize": lambda: rt.tokenize("x"), "prompt_tokens": lambda: rt.prompt_tokens([]),
            "bos_token_id": rt.bos_token_id, "next_token_logits": lambda: rt.next_token_logits([1]),
            "logits": lambda: rt.logits([1])}[capability]
    with pytest.raises(CapabilityUnavailable, match=r"chatonly runtime does not give .*embedded"):
        call()


def test_an_unknown_capability_is_a_clear_error():
    with pytest.raises(ValueError, match="optional ones are"):
        ChatOnly().supports("telepathy")


def test_a_server_runtime_is_built_without_contact_when_asked():
    rt = get_runtime("openai", model="m", check=False, base_url="http://127.0.0.1:9/v1")
    assert rt.name == "openai" and not rt.supports("next_token_logits")


def test_router_confidence_is_none_without_logits():
    from helpers.agents.router import decision_confidence

    assert decision_confidence(ChatOnly(), [{"role": "user", "content": "hi"}], None) is None


def test_embedded_next_token_logits_reuses_its_cache_with_the_same_decision(embedded):
    assert all(embedded.supports(c) for c in CAPABILITIES)
    toks = embedded.prompt_tokens([{"role": "user", "content": "What time is it in Oslo?"}])
    assert toks[-1:] == embedded.tokenize("<|assistant|>")  # ends with the generation prompt, a special token
    step1 = embedded.next_token_logits(toks)
    nxt = int(step1.argmax())
    extended = embedded.next_token_logits(toks + [nxt])  # evaluates one token
    embedded.close()  # forget the cache: evaluate everything afresh
    fresh = embedded.next_token_logits(toks + [nxt])
    assert step1.shape == (embedded.llama.n_vocab(),)
    # one token on top of a cache and the whole sequence in one batch round differently (about 1e-3 on this model)
    assert int(extended.argmax()) == int(fresh.argmax())
    np.testing.assert_allclose(extended, fresh, rtol=0, atol=5e-3)


def test_embedded_logits_of_every_position_need_logits_all_and_match_one_step(embedded):
    from helpers.registry import default_gguf

    with pytest.raises(ValueError, match="logits_all=True"):
        embedded.logits([1, 2, 3])
    rt = get_runtime("embedded", model=str(default_gguf()), n_ctx=64, n_batch=64, n_ubatch=64, logits_all=True)
    try:
        toks = [rt.bos_token_id()] + rt.tokenize("<|user|>hello")
        all_rows = rt.logits(toks)
        assert all_rows.shape == (len(toks), rt.llama.n_vocab())
        last = rt.next_token_logits(toks)
        assert int(all_rows[-1].argmax()) == int(last.argmax())
        np.testing.assert_allclose(all_rows[-1], last, rtol=1e-3, atol=1e-3)
    finally:
        rt.close()
