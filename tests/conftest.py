"""Shared fixtures: the shipped model's runtimes are loaded once per test session."""

from __future__ import annotations

import pytest

from helpers.domain.tools import openai_tools


@pytest.fixture(scope="session")
def tools():
    return openai_tools()


@pytest.fixture(scope="session")
def embedded():
    from helpers.runtimes.embedded import EmbeddedRuntime

    rt = EmbeddedRuntime()
    yield rt
    rt.close()


@pytest.fixture(scope="session")
def hf_tokenizer():
    from transformers import AutoTokenizer

    from helpers.paths import MODEL_DIR

    return AutoTokenizer.from_pretrained(str(MODEL_DIR))
