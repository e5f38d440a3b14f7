"""General model families' tokenizers from llama.cpp's vocab-only test files (notebook 03 counts schema tokens)."""

import pytest

from helpers.model import export


def test_missing_sdist_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "BUILD", tmp_path)
    with pytest.raises(FileNotFoundError, match="build-llama-server"):
        export.llama_cpp_vocab("phi-3")


def test_vocab_tokenizer_counts_and_unknown_names_are_listed():
    sdist = export.BUILD / "cache" / f"llama_cpp_python-{export.LLAMA_CPP_PYTHON_VERSION}.tar.gz"
    cached = export.BUILD / "cache" / "vocab" / "ggml-vocab-phi-3.gguf"
    if not sdist.exists() and not cached.exists():
        pytest.skip("no llama-cpp-python sdist in build/cache: run `python -m helpers build-llama-server` first")
    encode = export.vocab_tokenizer("phi-3")
    ids = encode('{"name":"lookup_order"}')
    assert 3 <= len(ids) < len('{"name":"lookup_order"}')  # a general BPE merges JSON into few tokens
    if sdist.exists():
        with pytest.raises(KeyError, match="qwen2"):
            export.llama_cpp_vocab("no-such-family")
