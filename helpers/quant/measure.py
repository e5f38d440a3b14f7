"""Measure GGUF quantization types: size, load time, speed, perplexity, KL divergence, tool-call accuracy.

Introduced in notebook 09 (GGUF in practice); `python -m helpers bench-quant` prints the same table.
Quality is measured the way llama.cpp's own `llama-perplexity` tool does it: the held-out text is cut
into chunks of `n_ctx` tokens, each chunk is evaluated from an empty context with BOS as its first
token, and only the second half of each chunk is scored (every scored token has at least n_ctx/2 tokens
of context). Perplexity is exp(mean negative log-likelihood of the actual next token); with
`--kl-divergence` the tool reports the mean KL divergence KL(P_f16 || P_quant) of the next-token
distributions and "Same top p", the share of positions where both models rank the same token first.

Every model call goes through the runtime interface: `get_runtime("embedded", model=path)` loads a GGUF file
in-process, and its optional capabilities (`tokenize`, `logits`, `next_token_logits`) give what a chat
cannot: token ids, the logits of every position, one decode step at a time.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

import numpy as np

from helpers.paths import BUILD
from helpers.model.export import quantized_gguf, quantized_path
from helpers.quant.gguf_file import check_gguf, type_counts
from helpers.registry import default_gguf
from helpers.quant.quantize import quantize

# The types notebook 09 compares (the issue asks for at least these), from small to large.
DEFAULT_TYPES: tuple[str, ...] = ("Q2_K", "Q3_K_M", "Q4_0", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0")
BASE_TYPE = "F16"
QUANT_DIR = BUILD / "quant"
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (  # key, header, format
    ("type", "type", "<8"), ("size_mb", "MB", ">7.2f"), ("ratio_vs_f16", "x<f16", ">7.2f"),
    ("load_s", "load s", ">8.3f"), ("prompt_tps", "pp tok/s", ">9.0f"), ("gen_tps", "tg tok/s", ">9.0f"),
    ("ppl", "PPL", ">8.2f"), ("ppl_reply", "PPL rep", ">8.3f"), ("kld", "KLD", ">8.4f"), ("top1", "top-1", ">7.3f"),
    ("exact_match", "exact", ">7.3f"),
)


def default_source() -> Path:
    """The shipped f16 GGUF file that every type is quantized from (notebook 09)."""
    return default_gguf()


def quant_path(qtype: str, out_dir: str | Path | None = None) -> Path:
    """Where the file of `qtype` goes: build/quant/edge-slm-<type>.gguf (notebook 09)."""
    return quantized_path(qtype, out_dir or QUANT_DIR)


def answered_by(path: str | Path) -> str:
    """The `runtime/model` label of a GGUF file scored in-process with llama-cpp-python (notebook 09)."""
    return f"llama-cpp-python/{Path(path).stem}"


# ----------------------------------------------------------------------------------------- held-out text
def held_out_text(n_dialogues: int = 60, seed: int = 2024) -> str:
    """Dev-split dialogues rendered with the model's chat template: text the model never trained on (notebook 09)."""
    if n_dialogues < 1:
        raise ValueError(f"n_dialogues must be at least 1, not {n_dialogues}.")
    from helpers.data.synth import DialogueGenerator
    from helpers.domain.chat_format import render

    g = DialogueGenerator(split="dev", seed=seed)
    return "".join(render(d.messages, d.tools, add_generation_prompt=False)
                   for d in (g.dialogue() for _ in range(n_dialogues)))


@contextlib.contextmanager
def _quiet_native(log_path: Path | None = None) -> Iterator[None]:
    """Send llama.cpp's log lines (C stderr and its Python log callback) to a file instead of the notebook."""
    log_path = log_path or QUANT_DIR / "llama.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "ab") as f:
        with contextlib.suppress(Exception):
            sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            with contextlib.redirect_stderr(io.TextIOWrapper(f, write_through=True)) as wrapper:
                try:
                    yield
                finally:
                    wrapper.detach()
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def _runtime(path: Path, n_ctx: int, threads: int, logits_all: bool):
    """The embedded runtime on a GGUF file, not loaded yet, with BOTH thread counts set to `threads` (the runtime
    sets llama-cpp-python's `n_threads_batch`, which defaults to every core: on a busy machine those threads
    spin-wait, a 40x slowdown was measured while training ran) and the whole context in one batch."""
    from helpers.runtimes import get_runtime

    return get_runtime("embedded", model=str(path), n_ctx=n_ctx, n_threads=threads, n_batch=n_ctx, n_ubatch=n_ctx,
                       logits_all=logits_all)


def _load(path: Path, n_ctx: int, threads: int, logits_all: bool):
    """`_runtime(...)` with its model loaded, llama.cpp's log lines sent to a file."""
    rt = _runtime(path, n_ctx, threads, logits_all)
    with _quiet_native():
        rt.load()
    return rt


def held_out_tokens(path: str | Path, n_dialogues: int = 60, seed: int = 2024) -> tuple[list[int], list[bool]]:
    """Token ids of `held_out_text(n_dialogues, seed)` and, per token, whether the assistant wrote it (notebook 09).

    The text is tokenized segment by segment (`render_segments`); the workbook's tokenizer keeps chat
    markers whole, so the ids equal those of the whole text and the mask says which tokens the model
    was trained to produce."""
    if n_dialogues < 1:
        raise ValueError(f"n_dialogues must be at least 1, not {n_dialogues}.")
    from helpers.data.synth import DialogueGenerator
    from helpers.domain.chat_format import render_segments

    g = DialogueGenerator(split="dev", seed=seed)
    llm = _load(check_gguf(path), 64, 1, False)
    tokens: list[int] = []
    mask: list[bool] = []
    try:
        for _ in range(n_dialogues):
            d = g.dialogue()
            for text, is_reply in render_segments(d.messages, d.tools, add_generation_prompt=False):
                ids = llm.tokenize(text)
                tokens += ids
                mask += [is_reply] * len(ids)
    finally:
        llm.close()
    return tokens, mask


def scored_positions(n_tokens: int, n_ctx: int) -> np.ndarray:
    """Indices of the tokens `logits(path, tokens, n_ctx)` scores, in its row order (notebook 09)."""
    first = n_ctx // 2
    return np.concatenate([np.arange(c * n_ctx + first + 1, (c + 1) * n_ctx) for c in range(n_tokens // n_ctx)]
                          or [np.zeros(0, dtype=np.int64)])


def tokenize(path: str | Path, text: str) -> list[int]:
    """Token ids of `text` with the GGUF's own tokenizer, chat markers parsed as special tokens (notebook 09)."""
    llm = _load(check_gguf(path), 64, 1, False)
    try:
        return llm.tokenize(text)
    finally:
        llm.close()


# ----------------------------------------------------------------------------------------- quality
def check_chunks(n_tokens: int, n_ctx: int) -> int:
    """How many whole chunks of `n_ctx` tokens `n_tokens` holds; a clear error for a bad n_ctx or too few
    (notebook 09)."""
    if n_ctx < 8 or n_ctx % 2:
        raise ValueError(f"n_ctx must be an even number of at least 8 tokens, not {n_ctx}.")
    if n_tokens < n_ctx:
        raise ValueError(f"{n_tokens} tokens is less than one chunk of n_ctx={n_ctx}: use more held-out "
                         "dialogues (held_out_text(n_dialogues=...)) or a smaller n_ctx.")
    return n_tokens // n_ctx


def chunked_logits(run: Callable[[list[int]], Any], tokens: Sequence[int], n_ctx: int = 256,
                   bos: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Scored logits [n, vocab] and target ids [n] of `tokens`, cut like llama-perplexity (notebooks 09, 10).

    Each chunk of `n_ctx` tokens starts a fresh context with `bos` in place of its first token and is given
    to `run` (token ids -> logits [len(ids), vocab] from an empty context); only its second half is scored."""
    n_chunks = check_chunks(len(tokens), n_ctx)
    first = n_ctx // 2
    out, targets = [], []
    for c in range(n_chunks):
        chunk = [int(t) for t in tokens[c * n_ctx:(c + 1) * n_ctx]]
        chunk[0] = bos  # as llama-perplexity does: each chunk starts a fresh context with BOS
        out.append(np.asarray(run(chunk), dtype=np.float32)[first:n_ctx - 1].copy())  # row j predicts chunk[j + 1]
        targets.append(np.asarray(chunk[first + 1:n_ctx], dtype=np.int64))
    return np.concatenate(out), np.concatenate(targets)


def logits(path: str | Path, tokens: Sequence[int], n_ctx: int = 256,
           threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Scored next-token logits [n, vocab] and their target ids [n], chunked like llama-perplexity (notebook 09)."""
    path = check_gguf(path)
    check_chunks(len(tokens), n_ctx)  # bad input fails before the model loads
    llm = _load(path, n_ctx, threads, True)
    try:
        return chunked_logits(llm.logits, tokens, n_ctx, llm.bos_token_id())
    finally:
        llm.close()


def log_softmax(x: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float64, stable for large logits (notebook 09)."""
    x = np.asarray(x, dtype=np.float64)
    y = x - x.max(axis=-1, keepdims=True)
    return y - np.log(np.exp(y).sum(axis=-1, keepdims=True))


def _check_logits(a: np.ndarray, name: str) -> np.ndarray:
    a = np.asarray(a)
    if a.ndim != 2 or a.shape[0] == 0 or a.shape[1] < 2:
        raise ValueError(f"{name} must be a 2-D array [positions, vocab] with at least one row and two "
                         f"columns, got shape {a.shape}.")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} holds NaN or infinite values: the model or the file is broken.")
    return a


def token_logprobs(logits_: np.ndarray, targets: Sequence[int]) -> np.ndarray:
    """Log-probability of each target token under its row of logits (notebook 09)."""
    logits_ = _check_logits(logits_, "logits")
    t = np.asarray(targets, dtype=np.int64)
    if t.shape != (logits_.shape[0],):
        raise ValueError(f"targets must hold one id per row of logits: {t.shape[0] if t.ndim else 0} targets "
                         f"for {logits_.shape[0]} rows.")
    if t.min() < 0 or t.max() >= logits_.shape[1]:
        raise ValueError(f"target ids must lie in [0, {logits_.shape[1]}): the logits and tokens come from "
                         "different vocabularies.")
    return log_softmax(logits_)[np.arange(len(t)), t]


def perplexity(logits_: np.ndarray, targets: Sequence[int]) -> float:
    """exp(mean negative log-likelihood) of the targets: llama-perplexity's PPL (notebook 09)."""
    return float(math.exp(-token_logprobs(logits_, targets).mean()))


def kl_and_top1(base_logits: np.ndarray, quant_logits: np.ndarray) -> tuple[float, float]:
    """Mean KL(P_base || P_quant) of the next-token distributions and top-1 agreement, like
    `llama-perplexity --kl-divergence` ("Mean KLD" and "Same top p" as a fraction) (notebook 09)."""
    base = _check_logits(base_logits, "base_logits")
    quant = _check_logits(quant_logits, "quant_logits")
    if base.shape != quant.shape:
        raise ValueError(f"base and quant logits must have the same shape (same tokens, same vocabulary): "
                         f"{base.shape} vs {quant.shape}.")
    lp, lq = log_softmax(base), log_softmax(quant)
    kld = (np.exp(lp) * (lp - lq)).sum(axis=-1)
    top1 = (base.argmax(axis=-1) == quant.argmax(axis=-1)).mean()
    return float(max(0.0, kld.mean())), float(top1)


def measurement_row(name: str, size_bytes: int, base_bytes: int, logits_: np.ndarray, targets: np.ndarray,
                    ref_logits: np.ndarray, reply: np.ndarray | None = None, *extra: dict[str, Any]) -> dict[str, Any]:
    """One row of the quantization tables, for GGUF and ONNX alike (notebooks 09 and 10, bench-quant, bench-onnx):
    type, size_mb, ratio_vs_f16 (`base_bytes` / `size_bytes`), ppl (all scored tokens), ppl_reply (the tokens
    the assistant wrote, by the mask `reply`; None without one), kld and top1 against `ref_logits`, then the
    `extra` measurements (speed, tool-call exact match) merged in."""
    row: dict[str, Any] = {"type": name, "size_mb": size_bytes / 1e6, "ratio_vs_f16": base_bytes / size_bytes,
                           "ppl": perplexity(logits_, targets)}
    row["ppl_reply"] = perplexity(logits_[reply], targets[reply]) if reply is not None and reply.any() else None
    row["kld"], row["top1"] = kl_and_top1(ref_logits, logits_)
    for e in extra:
        row.update(e)
    return row


# ----------------------------------------------------------------------------------------- speed
def prompt_of_length(tokens: Sequence[int], n: int) -> list[int]:
    """The first `n` of `tokens`, repeated from the start when there are fewer (the speed tests, nb 09-10)."""
    prompt = [int(t) for t in list(tokens)[:n]]
    if not prompt:
        raise ValueError("The prompt tokens are empty: pass token ids of some held-out text.")
    while len(prompt) < n:  # short text: repeat it
        prompt += prompt[: n - len(prompt)]
    return prompt


def speed(path: str | Path, runs: int = 3, prompt_tokens: Sequence[int] | None = None, n_prompt: int = 128,
          n_gen: int = 64, threads: int = 1) -> dict[str, float]:
    """Median load seconds, prompt tokens/s and generation tokens/s over `runs` fresh loads (notebook 09).

    Like llama-bench's pp/tg tests: the prompt is evaluated in one batch, then `n_gen` tokens are decoded
    one at a time (greedy, never stopping early), each run in a freshly loaded model."""
    path = check_gguf(path)
    if runs < 1 or n_prompt < 1 or n_gen < 1:
        raise ValueError("runs, n_prompt and n_gen must all be at least 1.")
    if prompt_tokens is None:
        prompt_tokens = tokenize(path, held_out_text(n_dialogues=max(4, n_prompt // 40)))
    prompt = prompt_of_length(prompt_tokens, n_prompt)
    loads, pps, tgs = [], [], []
    for _ in range(runs):
        llm = _runtime(path, n_prompt + n_gen + 8, threads, False)  # checked (file, checksum) before the clock
        t0 = time.perf_counter()
        with _quiet_native():
            llm.load()
        loads.append(time.perf_counter() - t0)
        try:
            seq = list(prompt)
            t0 = time.perf_counter()
            row = llm.next_token_logits(seq)  # the prompt in one batch
            pps.append(n_prompt / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for _ in range(n_gen):  # each step evaluates only the new token (the KV cache holds the rest)
                seq.append(int(row.argmax()))
                row = llm.next_token_logits(seq)
            tgs.append(n_gen / (time.perf_counter() - t0))
        finally:
            llm.close()
    return {"load_s": statistics.median(loads), "prompt_tps": statistics.median(pps),
            "gen_tps": statistics.median(tgs), "runs": runs, "n_prompt": n_prompt, "n_gen": n_gen}


# ----------------------------------------------------------------------------------------- tool calls
def runtime_exact_match(rt: Any, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Tool-call exact match of a runtime on eval cases; closes the runtime afterwards (notebooks 09, 10)."""
    from helpers.eval import case_passes, predict, summarize

    if not cases:
        raise ValueError("No eval cases given: pass helpers.eval.load_cases('data/eval/dev.jsonl')[:n].")
    try:
        preds = predict(rt, cases)
    finally:
        rt.close()
    summary = summarize(cases, preds)
    return {"exact_match": summary["exact_match"], "n": summary["n"], "answered_by": f"{rt.name}/{rt.model}",
            "passed": [case_passes(c["expected"], p) for c, p in zip(cases, preds)]}


def tool_exact_match(path: str | Path, cases: list[dict[str, Any]], threads: int = 1) -> dict[str, Any]:
    """Tool-call exact match of a GGUF file on eval cases, through the embedded runtime (notebook 09)."""
    from helpers.runtimes import get_runtime

    path = check_gguf(path)
    # the embedded runtime sets n_threads_batch = n_threads, so prompt threads are pinned to `threads` as well
    return runtime_exact_match(get_runtime("embedded", model=str(path), n_threads=threads), cases)


# ----------------------------------------------------------------------------------------- quantize + table
def quantize_type(src: str | Path, qtype: str, out_dir: str | Path | None = None, threads: int = 2,
                  force: bool = False) -> Path:
    """Quantize `src` to `qtype` under build/quant, unless a file newer than `src` is there already (notebook 09):
    `helpers.model.export.quantized_gguf` with notebook 08's checked `quantize` (checks, quiet log, warnings)."""
    return quantized_gguf(check_gguf(src), qtype, out_dir or QUANT_DIR, threads=threads, force=force,
                          quantizer=quantize)


def _check_types(types: Sequence[str]) -> list[str]:
    from helpers.model.export import GGUF_TYPES

    out: list[str] = []
    for t in types:
        key = str(t).upper()
        if key not in GGUF_TYPES:
            raise ValueError(f"Unknown GGUF type {t!r}; choose from {', '.join(GGUF_TYPES)}.")
        if key != BASE_TYPE and key not in out:
            out.append(key)
    return out


def measure_types(types: Sequence[str] = DEFAULT_TYPES, src: str | Path | None = None,
                  cases: list[dict[str, Any]] | None = None, n_dialogues: int = 60, n_ctx: int = 256,
                  runs: int = 3, n_prompt: int = 128, n_gen: int = 64, threads: int = 1, seed: int = 2024,
                  out_dir: str | Path | None = None,
                  log: Callable[[str], None] | None = None) -> list[dict[str, Any]]:
    """Quantize `src` (the f16 GGUF) to each type and measure it; one row per type, F16 first (notebook 09).

    Row keys: type, path, size_mb, ratio_vs_f16 (how many times smaller than f16), load_s, prompt_tps,
    gen_tps (medians over `runs`), ppl (all scored tokens, as llama-perplexity), ppl_reply (only the tokens
    the assistant wrote: what the model was trained on), kld, top1 (against f16), exact_match and
    n_cases (tool calls on `cases`; None without cases), passed (per case), answered_by."""
    qtypes = _check_types(types)
    src = check_gguf(src or default_source())
    if cases is not None and not cases:
        raise ValueError("cases is empty: pass None to skip tool-call accuracy, or some eval cases.")
    say = log or (lambda _msg: None)
    tokens, mask = held_out_tokens(src, n_dialogues, seed)
    base_logits, targets = logits(src, tokens, n_ctx=n_ctx, threads=threads)
    reply = np.asarray(mask, dtype=bool)[scored_positions(len(tokens), n_ctx)]
    f16_bytes = src.stat().st_size
    rows: list[dict[str, Any]] = []
    for qtype in [BASE_TYPE] + qtypes:
        path = src if qtype == BASE_TYPE else quantize_type(src, qtype, out_dir)
        q_logits = base_logits if qtype == BASE_TYPE else logits(path, tokens, n_ctx=n_ctx, threads=threads)[0]
        sp = speed(path, runs=runs, prompt_tokens=tokens, n_prompt=n_prompt, n_gen=n_gen, threads=threads)
        row = measurement_row(qtype, path.stat().st_size, f16_bytes, q_logits, targets, base_logits, reply,
                              {"path": str(path)}, {k: sp[k] for k in ("load_s", "prompt_tps", "gen_tps")})
        if cases is not None:
            em = tool_exact_match(path, cases, threads=threads)
            row.update(exact_match=em["exact_match"], n_cases=em["n"], passed=em["passed"],
                       answered_by=em["answered_by"])
        else:
            row.update(exact_match=None, n_cases=0, passed=[], answered_by=None)
        row["n_scored_tokens"] = int(len(targets))
        row["n_reply_tokens"] = int(reply.sum())
        row["tensor_types"] = type_counts(path)
        rows.append(row)
        say(f"{qtype:<8} {row['size_mb']:.2f} MB  ppl {row['ppl']:.3f}  kld {row['kld']:.4f}  "
            f"exact {row['exact_match'] if row['exact_match'] is not None else '-'}")
    return rows


def format_rows(rows: list[dict[str, Any]]) -> str:
    """The measured table as fixed-width text, one line per type (notebook 09, `bench-quant`)."""
    lines = ["".join(_cell(h, fmt, header=True) for _, h, fmt in TABLE_COLUMNS)]
    for r in rows:
        lines.append("".join(_cell(r.get(k), fmt) for k, _, fmt in TABLE_COLUMNS))
    return "\n".join(lines)


def _cell(value: Any, fmt: str, header: bool = False) -> str:
    width = int("".join(ch for ch in fmt[1:].split(".")[0] if ch.isdigit()) or 8)
    if header or value is None or isinstance(value, str):
        return f"{'-' if value is None else value:{fmt[0]}{width}}"
    return f"{value:{fmt}}"


def frontier(rows: list[dict[str, Any]], quality: str = "kld") -> list[str]:
    """Types on the size/quality Pareto frontier: no other type is both smaller and at least as good (notebook 09).

    `quality` is "kld" or "ppl" (lower is better) or "exact_match" or "top1" (higher is better)."""
    if quality not in ("kld", "ppl", "exact_match", "top1"):
        raise ValueError(f"quality must be one of kld, ppl, exact_match, top1, not {quality!r}.")
    sign = 1 if quality in ("kld", "ppl") else -1
    rows = [r for r in rows if r.get(quality) is not None]
    out = []
    for r in rows:
        dominated = any(o is not r and o["size_mb"] <= r["size_mb"] and sign * o[quality] <= sign * r[quality]
                        and (o["size_mb"] < r["size_mb"] or sign * o[quality] < sign * r[quality]) for o in rows)
        if not dominated:
            out.append(r["type"])
    return sorted(out, key=lambda t: next(r["size_mb"] for r in rows if r["type"] == t))


# ----------------------------------------------------------------------------------------- recommend
def recommend(rows: list[dict[str, Any]], memory_budget_mb: float, min_exact_match: float | None = None,
              max_kld: float | None = None, prefer: str = "quality") -> dict[str, Any]:
    """The type to use within a memory budget (MB of weights file) and a quality floor, from measured rows
    (notebook 09).

    Among the rows that fit, `prefer="quality"` picks the highest exact match (then lowest KLD, then the
    smaller file); `prefer="size"` picks the smallest file. Raises ValueError saying what would fit."""
    if not rows:
        raise ValueError("No measured rows: run measure_types(...) first.")
    if prefer not in ("quality", "size"):
        raise ValueError(f"prefer must be 'quality' or 'size', not {prefer!r}.")
    if memory_budget_mb is None or not memory_budget_mb > 0:
        raise ValueError(f"memory_budget_mb must be a positive number of megabytes, not {memory_budget_mb!r}.")
    for r in rows:
        missing = [k for k in ("type", "size_mb", "kld", "exact_match") if k not in r]
        if missing:
            raise ValueError(f"row {r.get('type', r)!r} lacks {missing}: pass rows from measure_types().")
    if min_exact_match is not None and any(r["exact_match"] is None for r in rows):
        raise ValueError("min_exact_match needs rows with exact_match: measure_types(..., cases=...).")

    def quality_ok(r: dict[str, Any]) -> bool:
        return ((min_exact_match is None or r["exact_match"] >= min_exact_match - 1e-12)
                and (max_kld is None or r["kld"] <= max_kld + 1e-12))

    fits = [r for r in rows if r["size_mb"] <= memory_budget_mb and quality_ok(r)]
    if fits:
        if prefer == "size":
            best = min(fits, key=lambda r: r["size_mb"])
        else:
            best = min(fits, key=lambda r: (-(r["exact_match"] or 0.0), r["kld"], r["size_mb"]))
        return dict(best)
    floor = " and ".join(s for s in (f"exact match >= {min_exact_match:.3f}" if min_exact_match is not None else "",
                                     f"KLD <= {max_kld:.4f}" if max_kld is not None else "") if s) or "no floor"
    good = sorted((r for r in rows if quality_ok(r)), key=lambda r: r["size_mb"])
    small = [r for r in rows if r["size_mb"] <= memory_budget_mb]
    hints = []
    if good:
        hints.append(f"the smallest type meeting {floor} is {good[0]['type']} ({good[0]['size_mb']:.2f} MB): "
                     f"raise the budget to {good[0]['size_mb']:.2f} MB")
    else:
        hints.append(f"no measured type meets {floor}")
    if small:
        b = min(small, key=lambda r: (-(r["exact_match"] or 0.0), r["kld"]))
        em = f"exact match {b['exact_match']:.3f}, " if b["exact_match"] is not None else ""
        hints.append(f"within {memory_budget_mb:.2f} MB the best is {b['type']} ({em}KLD {b['kld']:.4f}): "
                     "lower the floor to that")
    else:
        smallest = min(rows, key=lambda r: r["size_mb"])
        hints.append(f"nothing fits {memory_budget_mb:.2f} MB at all: the smallest file is {smallest['type']} "
                     f"({smallest['size_mb']:.2f} MB)")
    raise ValueError(f"No type fits {memory_budget_mb:.2f} MB with {floor}; " + "; ".join(hints) + ".")


def target_sentence(rows: list[dict[str, Any]], qtype: str = "Q4_K_M", min_ratio: float = 3.0,
                    max_drop_points: float = 2.0) -> str:
    """A sentence, built from measured rows, on whether `qtype` meets the size and accuracy target (notebook 09)."""
    by = {r["type"]: r for r in rows}
    if BASE_TYPE not in by or qtype not in by:
        raise ValueError(f"rows must include {BASE_TYPE} and {qtype}: measure_types([... '{qtype}' ...]).")
    b, q = by[BASE_TYPE], by[qtype]
    parts = [f"{qtype} is {q['ratio_vs_f16']:.2f}x smaller than f16 ({q['size_mb']:.2f} MB vs "
             f"{b['size_mb']:.2f} MB): the size target (at least {min_ratio:g}x) is "
             f"{'met' if q['ratio_vs_f16'] >= min_ratio else 'missed'}"]
    if q["ratio_vs_f16"] < min_ratio:
        parts.append(f"{q['ratio_vs_f16']:.2f}x is below {min_ratio:g}x because the tensors llama.cpp keeps at "
                     "higher precision (norms, and for small models the embeddings and output) weigh more in a "
                     "small file")
    if b.get("exact_match") is None or q.get("exact_match") is None:
        parts.append("tool-call exact match was not measured (no cases)")
        return ". ".join(parts) + "."
    drop = 100 * (b["exact_match"] - q["exact_match"])
    n = q["n_cases"]
    parts.append(f"its tool-call exact match is {q['exact_match']:.3f} against f16's {b['exact_match']:.3f} on "
                 f"{n} dev cases ({-drop:+.1f} points): the accuracy target (within {max_drop_points:g} points) is "
                 f"{'met' if drop <= max_drop_points else 'missed'}")
    if b.get("passed") and q.get("passed"):
        lost = sum(pb and not pq for pb, pq in zip(b["passed"], q["passed"]))
        won = sum(pq and not pb for pb, pq in zip(b["passed"], q["passed"]))
        parts.append(f"{lost} cases pass on f16 only and {won} on {qtype} only")
    one_case = 100 / max(1, n)
    if one_case > max_drop_points:
        parts.append(f"with {n} cases one case is {one_case:.1f} points, so this sample cannot resolve "
                     f"{max_drop_points:g} points (run with SMOKE = False for the whole dev set)")
    elif drop > max_drop_points:
        parts.append(f"the quantization noise changes the most likely token at {100 * (1 - q['top1']):.1f}% of "
                     f"held-out positions (mean KLD {q['kld']:.4f}), and a tool call fails if a single copied "
                     "argument token changes")
    return ". ".join(parts) + "."


# ----------------------------------------------------------------------------------------- command line
def bench_quant(a: Any) -> int:
    """Run `bench-quant` from parsed arguments: quantize, measure, print the table (notebook 09)."""
    import json

    from helpers.eval import load_cases

    cases = load_cases(a.cases)[: a.limit or None] if a.cases else None
    rows = measure_types([t for t in a.types.split(",") if t.strip()], src=a.model, cases=cases,
                         n_dialogues=a.dialogues, n_ctx=a.ctx, runs=a.runs, threads=a.threads,
                         log=lambda m: print(m, file=sys.stderr, flush=True))
    print(format_rows(rows))
    for r in rows:
        if r["answered_by"]:
            print(f"{r['type']:<8} answered by: {r['answered_by']}")
    if a.json:
        Path(a.json).write_text(json.dumps([{k: v for k, v in r.items() if k != "passed"} for r in rows],
                                           indent=1) + "\n")
    return 0
