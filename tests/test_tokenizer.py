import re

import pytest

from helpers.data.synth import DialogueGenerator
from helpers.domain.chat_format import render
from helpers.paths import MODEL_DIR


def _dialogue_texts(n=300, seed=21):
    """Rendered training dialogues, one in four of them Korean or mixed Korean-English (Hangul pieces)."""
    from helpers.data.realistic_synth import RealisticGenerator

    g = DialogueGenerator(seed=seed)
    texts = [render(d.messages, d.tools, add_generation_prompt=False) for d in (g.dialogue() for _ in range(n))]
    k = RealisticGenerator(seed=seed)
    for i in range(0, n, 4):
        msgs: list = []
        k.korean_turn(msgs)
        texts[i] = render(msgs, k.tools_all, add_generation_prompt=False)
    assert sum(bool(re.search("[\uac00-\ud7a3]", t)) for t in texts) >= n // 6
    return texts


def test_values_tokenize_the_same_in_the_message_and_in_the_call(hf_tokenizer):
    """The reason for the tokenizer's design: copying a value is copying the same tokens."""
    for value in ["Reykjavík", "São Paulo", "Stratford-upon-Avon", "C-48213", "SKU-AB12C", "srv-7", "48213"]:
        alone = hf_tokenizer(value, add_special_tokens=False)["input_ids"]
        in_text = hf_tokenizer(f"weather in {value} please", add_special_tokens=False)["input_ids"]
        in_json = hf_tokenizer(f'{{"city":"{value}"}}', add_special_tokens=False)["input_ids"]
        for ctx in (in_text, in_json):
            assert any(ctx[i:i + len(alone)] == alone for i in range(len(ctx))), value


def test_sentencepiece_and_transformers_agree(hf_tokenizer):
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(MODEL_DIR / "tokenizer.model"))
    for text in _dialogue_texts(200):
        for seg in re.split(r"<s>|<\|end\|>", text):
            if seg:
                assert sp.encode(seg) == hf_tokenizer(seg, add_special_tokens=False)["input_ids"]


def test_llama_cpp_tokenizes_like_transformers(hf_tokenizer, embedded):
    llama = embedded.llama
    for text in _dialogue_texts(200, seed=22):
        assert llama.tokenize(text.encode(), add_bos=False, special=True) == \
            hf_tokenizer(text, add_special_tokens=False)["input_ids"]


def test_onnx_genai_tokenizes_like_transformers(hf_tokenizer):
    og = pytest.importorskip("onnxruntime_genai")
    from helpers.paths import ONNX_DIR

    tok = og.Tokenizer(og.Model(str(ONNX_DIR / "int4")))
    # Known difference: ORT GenAI's pre-tokenizer splits English contractions ('s 't 're 've 'm 'll 'd) off the
    # word, so where letters follow them ("g'day") its pieces differ from transformers' ("d"+"ay", not "day").
    contraction_run = re.compile(r"'(?:s|t|re|ve|m|ll|d)[a-z]")
    g_day = "g'day mate"
    assert list(tok.encode(g_day)) != hf_tokenizer(g_day, add_special_tokens=False)["input_ids"]
    compared = 0
    for text in _dialogue_texts(200, seed=23):
        if contraction_run.search(text):
            continue
        assert list(tok.encode(text)) == hf_tokenizer(text, add_special_tokens=False)["input_ids"]
        compared += 1
    assert compared >= 190
