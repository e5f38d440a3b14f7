
import pytest

from helpers.data.synth import DialogueGenerator
from helpers.domain.chat_format import CHAT_TEMPLATE, format_tool_calls, parse_reply, render


def test_python_renderer_equals_the_jinja_template(hf_tokenizer):
    g = DialogueGenerator(seed=11)
    for _ in range(200):
        d = g.dialogue()
        for gen in (False, True):
            jinja = hf_tokenizer.apply_chat_template(d.messages, tools=d.tools, tokenize=False,
                                                     add_generation_prompt=gen)
            assert jinja == render(d.messages, d.tools, add_generation_prompt=gen)
    assert hf_tokenizer.chat_template == CHAT_TEMPLATE


def test_foundry_protocol_message_renders_compactly():
    msgs = [{"role": "system", "content": "Tool calling protocol for this conversation:\nAvailable tools: [...]"},
            {"role": "user", "content": "hi"}]
    assert render(msgs, None) == "<s><|system|>protocol:foundry<|end|><|user|>hi<|end|><|assistant|>"


def test_tool_call_text_round_trips():
    calls = [{"name": "get_weather", "arguments": {"city": "São Paulo"}}]
    text = format_tool_calls(calls)
    assert text == '<tool_call>[{"name":"get_weather","parameters":{"city":"São Paulo"}}]</tool_call>'
    parsed = parse_reply(text + "<|end|>")
    assert parsed.tool_calls == calls and parsed.error is None
    assert parse_reply("MESSAGE\nHello there").content == "Hello there"


@pytest.mark.parametrize("raw,kind", [
    ('<tool_call>[{"name":"get_weather","parameters":{"city":"Paris"}}]', "unterminated_call"),
    ('<tool_call>[{"name":"get_weather","parameters":{"city":"Paris"]</tool_call>', "invalid_json"),
    ('<tool_call>"get_weather"</tool_call>', "not_a_list"),
    ('<tool_call>[{"parameters":{}}]</tool_call>', "bad_call"),
    ('<tool_call>[{"name":"get_weather","parameters":"Paris"}]</tool_call>', "bad_arguments"),
    ('<tool_call>[{"name":"launch_rocket","parameters":{}}]</tool_call>', "unknown_tool"),
])
def test_malformed_model_output_is_a_structured_error(raw, kind):
    parsed = parse_reply(raw)
    assert parsed.tool_calls == []
    assert parsed.error["type"] == kind and parsed.error["message"] and parsed.error["raw"] == raw
