"""The model pipeline behind `python -m helpers train-model`: tokenizer, training, packaging into data/.

Introduced in lab 01 (train your own SLM).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any, Iterable

from helpers.domain.chat_format import CHAT_TEMPLATE


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
    from helpers.domain.chat_format import render
    from helpers.model.tokenizer import hf_tokenizer, train_tokenizer

    g = DialogueGenerator(split="train", seed=seed + 999)
    texts = [render(d.messages, d.tools, add_generation_prompt=False)
             for d in (g.dialogue() for _ in range(n_dialogues))]
    model_file = train_tokenizer(texts, out_dir, vocab_size=vocab_size)
    tok = hf_tokenizer(model_file)
    write_tokenizer_files(tok, out_dir)
    return tok


def package_model(run_dir: str | Path, dst: str | Path | None = None, weights: str = "final") -> Path:
    """Copy a training run's weights (`final` or `checkpoint`) and tokenizer into data/model."""
    from helpers.paths import MODEL_DIR

    run_dir = Path(run_dir)
    dst = Path(dst) if dst else MODEL_DIR
    src = run_dir / weights
    if not (src / "model.safetensors").exists():
        raise FileNotFoundError(f"No trained weights in {src}: train first (`python -m helpers train-model`).")
    old_record = dst / "train_record.json"
    previous = json.loads(old_record.read_text()) if old_record.exists() else None
    shutil.rmtree(dst, ignore_errors=True)
    dst.mkdir(parents=True)
    for name in ("config.json", "generation_config.json", "model.safetensors"):
        shutil.copy2(src / name, dst / name)
    from transformers import AutoTokenizer

    write_tokenizer_files(AutoTokenizer.from_pretrained(str(run_dir / "tokenizer")), dst)
    shutil.copy2(run_dir / "tokenizer" / "tokenizer.model", dst / "tokenizer.model")
    record = run_dir / "train_record.json"
    if weights == "final" and record.exists():
        rec = json.loads(record.read_text())
    else:  # packaging a checkpoint: its record comes from the trainer state saved with it
        rec = checkpoint_record(src)
    init_from = rec.get("config", {}).get("init_from")
    if init_from and previous and Path(init_from).resolve() == dst.resolve():
        rec["init_from_record"] = previous  # the run continued these weights: keep their history
    (dst / "train_record.json").write_text(json.dumps(rec, indent=1))
    return dst


def interpolate_run(run_dir: str | Path, alpha: float, out_dir: str | Path | None = None,
                    start: str | Path | None = None) -> Path:
    """A run folder whose weights are `(1 - alpha) * start + alpha * final` (weight-space interpolation).

    Fine-tuning can trade one skill for another; mixing the fine-tuned weights with the weights it started
    from keeps some of both (WiSE-FT, Wortsman et al., 2022). `start` defaults to the run's `init_from`. The
    result (`final/`, `tokenizer/`, `train_record.json` with a `weight_interpolation` entry) is a run folder
    for `export --from-run`."""
    from safetensors.torch import load_file, save_file

    run_dir = Path(run_dir)
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 (the start weights) and 1 (the run's final weights), not {alpha}")
    rec = json.loads((run_dir / "train_record.json").read_text())
    start = Path(start or rec["config"].get("init_from") or "")
    if not (start / "model.safetensors").exists():
        raise FileNotFoundError(f"No start weights at {start!s}: this run did not continue other weights "
                                "(--init-from); pass start= the folder to interpolate with.")
    a, b = load_file(str(start / "model.safetensors")), load_file(str(run_dir / "final" / "model.safetensors"))
    if a.keys() != b.keys() or any(a[k].shape != b[k].shape for k in a):
        raise ValueError(f"{start} and {run_dir / 'final'} are models of different shapes: nothing to interpolate")
    out = Path(out_dir) if out_dir else run_dir.with_name(f"{run_dir.name}-a{alpha:g}")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(run_dir / "tokenizer", out / "tokenizer")
    (out / "final").mkdir(parents=True)
    for f in (run_dir / "final").iterdir():
        if f.name != "model.safetensors":
            shutil.copy2(f, out / "final" / f.name)
    mixed = {k: ((1 - alpha) * a[k].float() + alpha * b[k].float()).to(b[k].dtype) for k in b}
    save_file(mixed, str(out / "final" / "model.safetensors"), metadata={"format": "pt"})
    rec["weight_interpolation"] = {"alpha": alpha, "start": str(start), "run": str(run_dir),
                                   "weights": f"{1 - alpha:g} * start + {alpha:g} * the run's final weights"}
    (out / "train_record.json").write_text(json.dumps(rec, indent=1))
    return out


def checkpoint_record(ckpt: Path) -> dict[str, Any]:
    """A training record for a checkpoint folder (steps, time and history from its trainer state)."""
    import torch

    state = torch.load(ckpt / "trainer_state.pt", map_location="cpu", weights_only=False)
    cfg = json.loads((ckpt / "config.json").read_text())
    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads",
            "max_position_embeddings")
    import math

    from safetensors import safe_open

    with safe_open(str(ckpt / "model.safetensors"), "pt") as f:
        params = sum(math.prod(f.get_slice(k).get_shape()) for k in f.keys())
    return {"params": params, "shape": {k: cfg[k] for k in keys}, "config": {"checkpoint": str(ckpt)},
            "steps": state["step"], "elapsed_s": round(state["elapsed"], 1), "history": state["history"]}


def export_all(run_dir: str | Path | None = None, log=print) -> dict[str, Any]:
    """Rebuild every shipped artefact from data/model (after packaging `run_dir` if given)."""
    import time

    from helpers.data.jsonl import write_jsonl
    from helpers.data.synth import DEV_SEED, eval_cases
    from helpers.model.export import hf_to_gguf, hf_to_onnx_genai, quantize_gguf
    from helpers.paths import MODEL_DIR
    from helpers.registry import artefact_path, write_manifest

    timings: dict[str, float] = {}

    def step(name: str, fn, *args):
        t = time.perf_counter()
        out = fn(*args)
        timings[name] = round(time.perf_counter() - t, 2)
        log(f"{name}: {out} ({timings[name]} s)")
        return out

    if run_dir is not None:
        step("package", package_model, run_dir)
    f16 = step("gguf-f16", hf_to_gguf, MODEL_DIR, artefact_path("gguf-f16"), "f16")
    step("gguf-q8_0", quantize_gguf, f16, artefact_path("gguf-q8_0"), "Q8_0")
    for precision in ("int4", "fp32"):
        step(f"onnx-{precision}", hf_to_onnx_genai, MODEL_DIR, artefact_path(f"onnx-{precision}").parent, precision)
    dev = artefact_path("dev-set")
    dev.parent.mkdir(parents=True, exist_ok=True)
    step("dev-set", lambda: write_jsonl(eval_cases(300, seed=DEV_SEED), dev) or dev)
    doc = write_manifest()
    return {"timings_s": timings, "manifest": doc}


def extend_tokenizer(src_dir: str | Path, chars: Iterable[str], out_dir: str | Path) -> list[str]:
    """A copy of the tokenizer in `src_dir` with `chars` added as pieces (see `tokenizer.add_characters`),
    written in every form the runtimes read; returns the characters added."""
    from helpers.model.tokenizer import add_characters, hf_tokenizer

    out_dir = Path(out_dir)
    added = add_characters(Path(src_dir) / "tokenizer.model", chars, out_dir / "tokenizer.model")
    write_tokenizer_files(hf_tokenizer(out_dir / "tokenizer.model"), out_dir)
    return added
