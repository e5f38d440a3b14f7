"""A realistic-size model for speed only: a Llama-architecture model with RANDOM weights (its answers mean
nothing), built here and converted/quantized like the workbook's, to show decoding bound by memory bandwidth.

Introduced in notebook 17 (`python -m helpers build-bench-model` builds it). The workbook's 5 M-parameter model
fits in the CPU caches, so its speed says little about memory; a model of a few hundred million parameters
reads every weight from RAM for every token, so decode tokens/s approaches memory bandwidth / model bytes
(the bandwidth is `helpers.preflight.memory_bandwidth`, the one copy-bandwidth measurement of the workbook).
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from helpers.paths import MODEL_DIR

CACHE = Path.home() / ".cache" / "edge-slm" / "bench-model"


@dataclass(frozen=True)
class BenchShape:
    """The random model's shape (Llama; the workbook's tokenizer and vocabulary)."""

    hidden: int = 1024
    layers: int = 24
    intermediate: int = 2816
    heads: int = 16
    kv_heads: int = 4

    @property
    def tag(self) -> str:
        return f"h{self.hidden}-l{self.layers}-i{self.intermediate}"


def build_bench_model(shape: BenchShape = BenchShape(), qtypes: tuple[str, ...] = ("Q8_0", "Q4_K_M"),
                      root: Path = CACHE, seed: int = 0, log=print) -> dict[str, Path]:
    """Build (once; cached under `root`) the random model as GGUF f16 and the `qtypes`; {type: path}."""
    from helpers.model.export import hf_to_gguf, quantize_gguf

    out = root / shape.tag
    paths = {"F16": out / "bench-f16.gguf", **{q: out / f"bench-{q.lower()}.gguf" for q in qtypes}}
    if all(p.exists() for p in paths.values()):
        return paths
    hf = out / "hf"
    if not paths["F16"].exists():
        import torch
        from transformers import LlamaConfig, LlamaForCausalLM

        src = LlamaConfig.from_pretrained(str(MODEL_DIR))
        cfg = LlamaConfig(vocab_size=src.vocab_size, hidden_size=shape.hidden, intermediate_size=shape.intermediate,
                          num_hidden_layers=shape.layers, num_attention_heads=shape.heads,
                          num_key_value_heads=shape.kv_heads, max_position_embeddings=2048,
                          bos_token_id=src.bos_token_id, eos_token_id=src.eos_token_id, tie_word_embeddings=False)
        torch.manual_seed(seed)
        t0 = time.perf_counter()
        model = LlamaForCausalLM(cfg).to(torch.float16)
        n = sum(p.numel() for p in model.parameters())
        hf.mkdir(parents=True, exist_ok=True)
        model.save_pretrained(str(hf))
        for name in ("tokenizer.json", "tokenizer_config.json", "tokenizer.model", "chat_template.jinja"):
            if (MODEL_DIR / name).exists():
                shutil.copy2(MODEL_DIR / name, hf / name)
        log(f"random Llama {shape.tag}: {n / 1e6:.0f} M parameters, saved in {time.perf_counter() - t0:.1f} s")
        del model
        hf_to_gguf(hf, paths["F16"], "f16")
        shutil.rmtree(hf, ignore_errors=True)  # the GGUF is what the runtimes read
    for q in qtypes:
        if not paths[q].exists():  # via a temporary name: a half-written file never looks built
            tmp = paths[q].with_name(paths[q].name + ".tmp")
            quantize_gguf(paths["F16"], tmp, q)
            os.replace(tmp, paths[q])
    return paths


def decode_tokens_per_s(gguf: str | Path, threads: int = 1, n_tokens: int = 32, repeats: int = 3) -> float:
    """Decode speed of one sequence in llama.cpp (one token at a time after a short prompt; no sampling,
    the way llama-bench's tg test times it), median of `repeats`."""
    from llama_cpp import Llama

    llm = Llama(model_path=str(gguf), n_ctx=n_tokens + 16, n_threads=threads, n_threads_batch=threads,
                n_batch=16, verbose=False)
    prompt = llm.tokenize(b"hello there", add_bos=True)
    speeds = []
    for _ in range(repeats):
        llm.reset()
        llm.eval(prompt)
        tok = prompt[-1]
        t0 = time.perf_counter()
        for _ in range(n_tokens):
            llm.eval([tok])
        speeds.append(n_tokens / (time.perf_counter() - t0))
    llm.close()
    return statistics.median(speeds)
