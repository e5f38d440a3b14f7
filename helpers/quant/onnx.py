"""ONNX Runtime quantization (notebook 10): ORT GenAI folders, int8 dynamic quantization, logits and speed.

An ORT GenAI folder (made by `helpers.model.export.hf_to_onnx_genai`, i.e. onnxruntime-genai's model builder)
holds `genai_config.json`, the tokenizer and `model.onnx` (plus `model.onnx.data` for large weights).
`quantize_int8` copies such a folder with its weights quantized by ONNX Runtime's dynamic quantization, so
the same ORT GenAI generation loop runs fp32, int8 and int4. The functions here give what the quantization
measurements need from ONNX Runtime, cut the same way as `helpers.quant.measure` does for GGUF files (notebook
09): logits of held-out text in chunks like llama-perplexity, speed like llama-bench, tool-call exact match.
The math on those logits (perplexity, KL divergence, top-1 agreement) is `helpers.quant.measure`'s.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np

# the folder checks live beside the export that writes the folders (helpers.model.export)
from helpers.model.export import (CONFIG, HOW_TO_BUILD, check_genai_folder, check_onnx_file,  # noqa: F401
                                  hf_to_onnx_genai, model_filename)
from helpers.quant.measure import check_chunks, chunked_logits, prompt_of_length, runtime_exact_match

PROVIDERS = ("cpu", "cuda", "DML", "OpenVINO", "QNN", "WebGPU")  # names ORT GenAI's Config.append_provider takes


def model_bytes(folder: str | Path) -> int:
    """Bytes of the model's ONNX files (graph + external weights), without tokenizer and config (notebook 10)."""
    folder = check_genai_folder(folder)
    name = model_filename(folder)
    return sum(p.stat().st_size for p in folder.iterdir() if p.is_file() and p.name.startswith(name))


# Notebook 10 builds its ORT GenAI folders with the export command's own builder wrapper.
build_genai = hf_to_onnx_genai


class _DropPreprocessAdvice(logging.Filter):
    """Drops onnxruntime.quantization's "Please consider to run pre-processing" warning (root logger)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def quantize_int8(src_dir: str | Path, dst_dir: str | Path, per_channel: bool = False,
                  reduce_range: bool | None = None, op_types: list[str] | None = None) -> Path:
    """Copy an ORT GenAI folder with its MatMul/Gather weights quantized to int8 (ORT dynamic) (notebook 10).

    `reduce_range=None` decides for this CPU: 7-bit weights where ONNX Runtime's int8 kernel would saturate
    (x86 without VNNI; see `helpers.machine.int8_reduce_range`). `op_types` limits the quantized operators
    (e.g. ["MatMul"] keeps the embedding's Gather in float32). ONNX Runtime's advice to run its pre-processing
    (shape inference and graph fusions, for image models) is not logged: the builder's graph is already fused,
    and notebook 10 explains the message where `quantize_dynamic` prints it."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from helpers.machine import int8_reduce_range

    src = check_genai_folder(src_dir)
    dst = Path(dst_dir)
    if dst.resolve() == src.resolve():
        raise ValueError(f"Write the int8 model to a new folder, not over its source {src}.")
    name = model_filename(src)
    tmp = dst.with_name(dst.name + ".tmp")  # the destination is replaced only on success
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for p in src.iterdir():  # config, tokenizer, chat template: everything but the model's own files
        if p.is_file() and not p.name.startswith(name):
            shutil.copy2(p, tmp / p.name)
    root = logging.getLogger()
    advice = _DropPreprocessAdvice()
    root.addFilter(advice)
    try:
        quantize_dynamic(str(src / name), str(tmp / name), weight_type=QuantType.QInt8, per_channel=per_channel,
                         reduce_range=int8_reduce_range() if reduce_range is None else reduce_range,
                         op_types_to_quantize=op_types)
    finally:
        root.removeFilter(advice)
    shutil.rmtree(dst, ignore_errors=True)
    os.replace(tmp, dst)
    return dst


def load(folder: str | Path, threads: int | None = None):
    """An `onnxruntime_genai.Model` for a checked ORT GenAI folder (`threads`: intra-op threads) (notebook 10)."""
    import onnxruntime_genai as og

    cfg = og.Config(str(check_genai_folder(folder)))
    if threads is not None:
        if threads < 1:
            raise ValueError(f"threads must be at least 1, not {threads}.")
        cfg.overlay(json.dumps({"model": {"decoder": {"session_options": {"intra_op_num_threads": threads}}}}))
    return og.Model(cfg)


def prompt_logits(model, ids: list[int]) -> np.ndarray:
    """Logits [len(ids), vocab] after each position of `ids`, from one ORT GenAI prefill (notebook 10)."""
    import onnxruntime_genai as og

    if not len(ids):
        raise ValueError("prompt_logits needs at least one token id.")
    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + 1, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens([int(i) for i in ids])
    out = np.asarray(gen.get_output("logits"), dtype=np.float32)
    return out.reshape(-1, out.shape[-1])[-len(ids):].copy()


def logits(model, tokens: list[int], n_ctx: int = 256, bos: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Scored logits and targets of `tokens`, chunked exactly like `measure.logits` (llama-perplexity) (notebook 10).

    Each chunk of `n_ctx` tokens starts a fresh context with `bos`; only its second half is scored
    (`measure.chunked_logits`). `model` is an ORT GenAI folder, an `og.Model`, or a function from token ids
    to logits [len(ids), vocab].
    """
    import onnxruntime_genai as og

    check_chunks(len(tokens), n_ctx)  # bad input fails before a model loads
    if isinstance(model, (str, Path)):
        model = load(model)
    if isinstance(model, og.Model):
        og_model = model
        run = lambda ids: prompt_logits(og_model, ids)  # noqa: E731
    elif callable(model):
        run = model
    else:
        raise TypeError(f"model must be an ORT GenAI folder, an og.Model or a function ids -> logits, "
                        f"not {type(model)}.")
    return chunked_logits(run, tokens, n_ctx, bos)


def transformers_logits(hf_dir: str | Path, ids: list[int], model: Any = None) -> np.ndarray:
    """The same logits from the transformers weights (the reference the export must match) (notebook 10)."""
    import torch

    if model is None:
        from transformers import LlamaForCausalLM

        model = LlamaForCausalLM.from_pretrained(str(hf_dir)).eval()
    with torch.no_grad():
        return model(torch.tensor([list(ids)])).logits[0].float().numpy()


def greedy(model, tokenizer, ids: list[int], max_new_tokens: int) -> list[int]:
    """Greedy token ids after `ids` with ORT GenAI's generator, stopping at end of sequence (notebook 10)."""
    import onnxruntime_genai as og

    params = og.GeneratorParams(model)
    params.set_search_options(max_length=len(ids) + max_new_tokens, do_sample=False)
    gen = og.Generator(model, params)
    gen.append_tokens([int(i) for i in ids])
    out: list[int] = []
    while not gen.is_done():
        gen.generate_next_token()
        out.append(int(gen.get_next_tokens()[0]))
    eos = set(getattr(tokenizer, "eos_token_ids", []) or [])
    return out[:-1] if out and out[-1] in eos else out


def speed(folder: str | Path, prompt_tokens: list[int], runs: int = 3, n_prompt: int = 128, n_gen: int = 64,
          threads: int | None = 1) -> dict[str, Any]:
    """Median load seconds, prompt tokens/s and generation tokens/s over `runs` fresh loads (notebook 10).

    The same test as `measure.speed` for GGUF (llama-bench's pp/tg): the prompt in one prefill, then exactly
    `n_gen` decode steps (end of sequence suppressed with `min_length`), greedy.
    """
    import onnxruntime_genai as og

    folder = check_genai_folder(folder)
    if runs < 1 or n_prompt < 1 or n_gen < 1:
        raise ValueError("runs, n_prompt and n_gen must all be at least 1.")
    prompt = prompt_of_length(prompt_tokens, n_prompt)
    loads, pps, tgs = [], [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        model = load(folder, threads)
        loads.append(time.perf_counter() - t0)
        total = n_prompt + n_gen + 1
        params = og.GeneratorParams(model)
        params.set_search_options(max_length=total, min_length=total, do_sample=False)
        gen = og.Generator(model, params)
        t0 = time.perf_counter()
        gen.append_tokens(prompt)  # the prefill: one forward pass over the whole prompt
        pps.append(n_prompt / (time.perf_counter() - t0))
        gen.generate_next_token()  # picks the first token from the prefill's logits (no forward pass)
        t0 = time.perf_counter()
        for _ in range(n_gen):  # each step: one forward pass over the previous token, then pick the next
            gen.generate_next_token()
        tgs.append(n_gen / (time.perf_counter() - t0))
        del gen, params, model
    return {"load_s": statistics.median(loads), "prompt_tps": statistics.median(pps),
            "gen_tps": statistics.median(tgs), "runs": runs, "n_prompt": n_prompt, "n_gen": n_gen}


def answered_by(folder: str | Path) -> str:
    """The `runtime/model` label of an ORT GenAI folder, as `OrtGenAIRuntime` reports it (notebook 10)."""
    from helpers.runtimes import get_runtime

    rt = get_runtime("ortgenai", model=str(folder), check=False)
    return f"{rt.name}/{rt.model}"


def tool_exact_match(folder: str | Path, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Tool-call exact match of an ORT GenAI folder through `OrtGenAIRuntime` (as `measure` for GGUF) (notebook 10)."""
    from helpers.runtimes import get_runtime

    return runtime_exact_match(get_runtime("ortgenai", model=str(check_genai_folder(folder))), cases)


def try_providers(folder: str | Path, providers: tuple[str, ...] = PROVIDERS) -> list[dict[str, Any]]:
    """Try to load `folder` with each ORT GenAI execution provider; what loaded, or why not (notebook 10)."""
    import onnxruntime_genai as og

    folder = check_genai_folder(folder)
    rows = []
    for ep in providers:
        try:
            cfg = og.Config(str(folder))
            cfg.clear_providers()  # no provider appended = the CPU provider
            if ep.lower() != "cpu":
                cfg.append_provider(ep)
            og.Model(cfg)
            rows.append({"provider": ep, "loaded": True, "message": "loaded"})
        except Exception as exc:  # the library says why: not built in, driver or library missing
            rows.append({"provider": ep, "loaded": False, "message": str(exc).strip().splitlines()[0]})
    return rows


# ----------------------------------------------------------------------------------------- command line
def compare(out_dir: str | Path, hf_dir: str | Path | None = None,
            gguf_types: tuple[str, ...] = ("F16", "Q8_0", "Q4_K_M"),
            cases: list[dict[str, Any]] | None = None, n_dialogues: int = 60, n_ctx: int = 256, runs: int = 3,
            n_prompt: int = 128, n_gen: int = 64, threads: int = 1, seed: int = 2024) -> list[dict[str, Any]]:
    """Build fp32/int8/int4 ORT GenAI folders and measure them (notebook 10, `python -m helpers bench-onnx`)
    beside GGUF types, all against the fp32 ONNX logits; rows in `measure.format_rows`'s format."""
    from helpers.paths import MODEL_DIR
    from helpers.quant import measure

    out_dir = Path(out_dir)
    hf_dir = Path(hf_dir) if hf_dir else MODEL_DIR
    folders = {"ort-fp32": hf_to_onnx_genai(hf_dir, out_dir / "fp32", "fp32")}
    folders["ort-int8"] = quantize_int8(folders["ort-fp32"], out_dir / "int8")
    folders["ort-int4"] = hf_to_onnx_genai(hf_dir, out_dir / "int4", "int4")
    f16 = measure.default_source()
    tokens, is_reply = measure.held_out_tokens(f16, n_dialogues, seed)
    ref, targets = logits(load(folders["ort-fp32"], threads), tokens, n_ctx)
    reply = np.asarray(is_reply)[measure.scored_positions(len(tokens), n_ctx)]
    f16_bytes = f16.stat().st_size
    rows: list[dict[str, Any]] = []

    no_cases = {"exact_match": None, "answered_by": None}
    for name, folder in folders.items():
        lg = ref if name == "ort-fp32" else logits(load(folder, threads), tokens, n_ctx)[0]
        rows.append(measure.measurement_row(
            name, model_bytes(folder), f16_bytes, lg, targets, ref, reply,
            speed(folder, tokens, runs=runs, n_prompt=n_prompt, n_gen=n_gen, threads=threads),
            tool_exact_match(folder, cases) if cases else no_cases))
    for qtype in gguf_types:
        path = f16 if qtype.upper() == "F16" else measure.quantize_type(f16, qtype, out_dir / "gguf")
        rows.append(measure.measurement_row(
            qtype.upper(), path.stat().st_size, f16_bytes, measure.logits(path, tokens, n_ctx, threads)[0], targets,
            ref, reply,
            measure.speed(path, runs=runs, prompt_tokens=tokens, n_prompt=n_prompt, n_gen=n_gen, threads=threads),
            measure.tool_exact_match(path, cases, threads) if cases else no_cases))
    return rows


def bench_onnx(a: Any) -> int:
    """Run `bench-onnx` from parsed arguments: export, quantize, measure, print the table (notebook 10)."""
    from helpers.eval import load_cases
    from helpers.quant import measure

    cases = load_cases(a.cases)[: a.limit or None] if a.cases else None
    rows = compare(a.out, gguf_types=tuple(t.strip() for t in a.gguf.split(",") if t.strip()), cases=cases,
                   n_dialogues=a.dialogues, runs=a.runs, threads=a.threads)
    print(measure.format_rows(rows))
    for r in rows:
        if r.get("answered_by"):
            print(f"{r['type']:<8} answered by: {r['answered_by']}")
    return 0
