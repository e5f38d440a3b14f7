"""The model pipeline behind `python -m helpers train-model`: tokenizer, training, packaging into data/.

Introduced in lab 02 (train your own SLM).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from helpers.model.chat_format import CHAT_TEMPLATE


def write_tokenizer_files(tok, out_dir: str | Path) -> None:
    """Save a tokenizer so that every runtime finds what it reads.

    transformers 5 writes the chat template to `chat_template.jinja` only; llama.cpp's converter and
    ONNX Runtime GenAI read `chat_template` inside `tokenizer_config.json`, so it goes there too.
    `tokenizer_class` is LlamaTokenizer: the SentencePiece-Llama form (▁ for spaces, byte fallback).
    """
    out_dir = Path(out_dir)
    tok.save_pretrained(str(out_dir))
    cfg_path = out_dir / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["chat_template"] = CHAT_TEMPLATE
    cfg["tokenizer_class"] = "LlamaTokenizer"
    cfg["add_bos_token"] = False
    cfg["add_eos_token"] = False
    cfg["legacy"] = False
    cfg["add_prefix_space"] = False
    # llama.cpp's converter reads token types from here (transformers 5 no longer writes it): markers
    # such as <|user|> become control tokens, tool names and <tool_call> user-defined tokens.
    cfg["added_tokens_decoder"] = {
        str(i): {"content": t.content, "lstrip": False, "normalized": False, "rstrip": False,
                 "single_word": False, "special": bool(t.special)}
        for i, t in sorted(tok.added_tokens_decoder.items())
    }
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False))


def prepare_tokenizer(out_dir: str | Path, n_dialogues: int = 40000, vocab_size: int = 1024, seed: int = 123):
    """Train the tokenizer on `n_dialogues` fresh training dialogues and save it in `out_dir`."""
    from helpers.data.synth import DialogueGenerator
    from helpers.model.chat_format import render
    from helpers.model.tokenizer import hf_tokenizer, train_tokenizer

    g = DialogueGenerator(split="train", seed=seed + 999)
    texts = [render(d.messages, d.tools, add_generation_prompt=False) for d in (g.dialogue() for _ in range(n_dialogues))]
    model_file = train_tokenizer(texts, out_dir, vocab_size=vocab_size)
    tok = hf_tokenizer(model_file)
    write_tokenizer_files(tok, out_dir)
    return tok
