"""Train the workbook's tool-calling SLM from scratch on the CPU (transformers + PyTorch).

Introduced in lab 01 (train your own SLM); `python -m helpers train-model` runs it. Fresh synthetic
dialogues are drawn for every chunk of steps, so the model never sees the same example twice and must
learn the format and the copying of values rather than memorise examples. The loss counts only the
assistant's tokens. Checkpoints are written every `save_every` steps and a run resumes from them.
"""

from __future__ import annotations

import copy
import json
import math
import re
import random
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

from helpers.domain.chat_format import CALL_START, render_segments


@dataclass
class ModelShape:
    """Llama shape; hidden and intermediate sizes are multiples of 256 so every GGUF K-quant applies."""

    hidden_size: int = 256
    intermediate_size: int = 768
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 2048

    def check(self) -> None:
        for name in ("hidden_size", "intermediate_size"):
            if getattr(self, name) % 256:
                raise ValueError(f"{name}={getattr(self, name)} is not a multiple of 256: llama.cpp's K-quants "
                                 "would silently fall back to other types. Use 256, 512, 768, ...")


@dataclass
class TrainConfig:
    """Hyper-parameters of one training run (recorded next to the weights)."""

    steps: int = 3000
    batch_tokens: int = 6144  # padded tokens per batch
    lr: float = 2e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.05
    seed: int = 123
    chunk_dialogues: int = 4000
    save_every: int = 250
    eval_every: int = 500
    log_every: int = 50
    eval_cases: int = 48
    max_minutes: float | None = None
    threads: int | None = None
    compile: bool = False  # torch.compile: ~20 % faster steps on this CPU after a ~1 min compile
    value_weight: float = 1.0  # loss weight of argument-value tokens in tool calls (copying is the hard part)
    init_from: str | None = None  # start from these weights (e.g. data/model) instead of random ones
    grow_layers: int | None = None  # with init_from: deepen the model to this many layers (see expand_depth)
    copy_share: float = 0.0  # share of free texts and cities made of the tokenizer's pieces (synth.copy_pieces)
    realistic_share: float = 0.0  # share of dialogues of the realistic kinds (helpers.data.realistic_synth)
    workers: int = 0  # processes that write and encode dialogues (0: the training process itself)
    device: str = "cpu"  # "cuda" on a machine with a GPU
    bf16: bool = False  # bfloat16 autocast for the forward pass (GPU)
    tokenizer: str | None = None  # where the run's tokenizer came from, when not trained for it (recorded only)


def build_model(vocab_size: int, shape: ModelShape, bos: int, eos: int):  # -> LlamaForCausalLM
    """A randomly initialised Llama causal LM of `shape`."""
    from transformers import LlamaConfig, LlamaForCausalLM

    shape.check()
    cfg = LlamaConfig(vocab_size=vocab_size, tie_word_embeddings=False, bos_token_id=bos, eos_token_id=eos,
                      pad_token_id=eos, rms_norm_eps=1e-5, rope_theta=10000.0, **asdict(shape))
    return LlamaForCausalLM(cfg)


def expand_depth(model, n_layers: int):  # -> LlamaForCausalLM
    """A deeper copy of `model` that computes exactly the same function (block expansion, as in LLaMA Pro).

    New layers are copies of existing ones, spread evenly, with their attention output and MLP down
    projections set to zero: through the residual stream such a layer adds nothing, so the deeper model
    starts where the trained one stopped and training then puts the added capacity to use.
    """
    import torch
    from transformers import LlamaForCausalLM

    old = model.config.num_hidden_layers
    if n_layers <= old:
        raise ValueError(f"expand_depth: the model already has {old} layers; ask for more than that")
    extra = n_layers - old
    after = [(k + 1) * old // extra - 1 for k in range(extra)]  # copy these layers, right after themselves
    source: list[tuple[int, bool]] = []
    for i in range(old):
        source.append((i, False))
        source.extend((i, True) for _ in range(after.count(i)))
    cfg = copy.deepcopy(model.config)
    cfg.num_hidden_layers = n_layers
    if getattr(cfg, "layer_types", None):
        cfg.layer_types = [cfg.layer_types[0]] * n_layers
    deeper = LlamaForCausalLM(cfg)
    old_sd = model.state_dict()
    new_sd = {}
    for k in deeper.state_dict():
        m = re.match(r"model\.layers\.(\d+)\.(.*)", k)
        if not m:
            new_sd[k] = old_sd[k].clone()
            continue
        src, added = source[int(m.group(1))]
        w = old_sd[f"model.layers.{src}.{m.group(2)}"].clone()
        if added and m.group(2) in ("self_attn.o_proj.weight", "mlp.down_proj.weight"):
            w = torch.zeros_like(w)
        new_sd[k] = w
    deeper.load_state_dict(new_sd)
    return deeper


def encode_dialogue(tok, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None
                    ) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 outside the assistant's output) for one dialogue."""
    ids: list[int] = []
    labels: list[int] = []
    for text, target in render_segments(messages, tools):
        seg = tok(text, add_special_tokens=False)["input_ids"]
        ids += seg
        labels += seg if target else [-100] * len(seg)
    return ids, labels


_ARG_VALUE = re.compile(r'"[a-z_]+":("(?:[^"\\]|\\.)*"|-?[0-9][0-9.eE+-]*)')


def encode_weighted(tok, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None, value_weight: float
                    ) -> tuple[list[int], list[int], list[float]]:
    """Like `encode_dialogue`, plus a loss weight per token: `value_weight` for the tokens of argument
    values inside tool calls (what the model must copy), 1 for the rest of the assistant's output."""
    ids: list[int] = []
    labels: list[int] = []
    weights: list[float] = []
    for text, target in render_segments(messages, tools):
        enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
        seg = enc["input_ids"]
        ids += seg
        if not target:
            labels += [-100] * len(seg)
            weights += [0.0] * len(seg)
            continue
        labels += seg
        spans = []
        start = text.find(CALL_START)
        if start >= 0:
            body = text[start:]
            params = body.find('"parameters":')
            if params >= 0:
                for m in _ARG_VALUE.finditer(body, params + len('"parameters":')):
                    spans.append((start + m.start(1), start + m.end(1)))
        weights += [value_weight if any(a < e and b > s for s, e in spans) else 1.0
                    for a, b in enc["offset_mapping"]]
    return ids, labels, weights


def make_generator(cfg: TrainConfig, seed: int, copy_words: list[str] | None):  # -> DialogueGenerator
    """The training dialogue generator a run's config asks for."""
    if cfg.realistic_share:
        from helpers.data.realistic_synth import RealisticGenerator

        return RealisticGenerator(seed=seed, copy_words=copy_words, copy_share=cfg.copy_share,
                                  realistic_share=cfg.realistic_share)
    from helpers.data.synth import DialogueGenerator

    return DialogueGenerator(split="train", seed=seed, copy_words=copy_words, copy_share=cfg.copy_share)


_WORKER: dict[str, Any] = {}


def _worker_init(tokenizer_dir: str, cfg: TrainConfig, copy_words: list[str] | None) -> None:
    from transformers import AutoTokenizer

    _WORKER.update(tok=AutoTokenizer.from_pretrained(tokenizer_dir), cfg=cfg, copy_words=copy_words)


def _worker_chunk(seed: int) -> list[tuple[list[int], list[int], list[float]]]:
    """One chunk of encoded dialogues from a generator seeded with `seed` (runs in a data process)."""
    tok, cfg = _WORKER["tok"], _WORKER["cfg"]
    gen = make_generator(cfg, seed, _WORKER["copy_words"])
    return [encode_weighted(tok, d.messages, d.tools, cfg.value_weight)
            for d in (gen.dialogue() for _ in range(cfg.chunk_dialogues))]


def _chunks(tok, gen, cfg: TrainConfig, tokenizer_dir: str, seed: int, copy_words: list[str] | None
            ) -> Iterator[list[tuple[list[int], list[int], list[float]]]]:
    """Chunks of encoded dialogues: from `gen` here (`cfg.workers == 0`), or from `cfg.workers` data processes.
    With workers, chunk k of a run is seeded with seed * 100003 + k, so the data does not depend on how many
    workers there are; without, one generator seeded with `seed` writes every chunk (other data)."""
    if not cfg.workers:
        while True:
            yield [encode_weighted(tok, d.messages, d.tools, cfg.value_weight)
                   for d in (gen.dialogue() for _ in range(cfg.chunk_dialogues))]
    import collections
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Pool(cfg.workers, initializer=_worker_init, initargs=(tokenizer_dir, cfg, copy_words)) as pool:
        # at most two chunks per worker in flight: Pool.imap would queue the endless stream of seeds and pile
        # up finished chunks faster than training takes them, until the process runs out of memory
        pending: collections.deque = collections.deque()
        k = 0
        while True:
            while len(pending) < 2 * cfg.workers:
                pending.append(pool.apply_async(_worker_chunk, (seed * 100003 + k,)))
                k += 1
            yield pending.popleft().get()


def _batches(chunks: Iterator[list[Any]], cfg: TrainConfig, rng: random.Random, pad_id: int
             ) -> Iterator[tuple[Any, Any]]:
    import torch

    for rows in chunks:
        rows = [r for r in rows if len(r[0]) <= 1024]
        rows.sort(key=lambda r: len(r[0]))
        batches, cur = [], []
        for r in rows:
            if cur and (len(cur) + 1) * len(r[0]) > cfg.batch_tokens:
                batches.append(cur)
                cur = []
            cur.append(r)
        if cur:
            batches.append(cur)
        rng.shuffle(batches)
        for b in batches:
            n = max(len(r[0]) for r in b)
            ids = torch.full((len(b), n), pad_id, dtype=torch.long)
            lab = torch.full((len(b), n), -100, dtype=torch.long)
            att = torch.zeros((len(b), n), dtype=torch.long)
            wts = torch.zeros((len(b), n), dtype=torch.float32)
            for i, (x, y, w) in enumerate(b):
                ids[i, : len(x)] = torch.tensor(x)
                lab[i, : len(y)] = torch.tensor(y)
                att[i, : len(x)] = 1
                wts[i, : len(w)] = torch.tensor(w)
            yield ids, (lab, att, wts)


def train(out_dir: str | Path, tokenizer_dir: str | Path, cfg: TrainConfig | None = None,
          shape: ModelShape | None = None, log=print,
          evaluate: Callable[[Any, Any, list[dict[str, Any]]], float] | None = None) -> dict[str, Any]:
    """Train (or resume) a model in `out_dir`; returns the training record.

    `evaluate(model, tokenizer, cases) -> exact match` scores the dev cases every `cfg.eval_every` steps
    (`python -m helpers train` passes `helpers.eval.transformers_exact_match`); the model layer does not
    import the evaluation, it is handed one."""
    import torch
    from transformers import AutoTokenizer, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    from helpers.data.synth import DEV_SEED, copy_pieces, eval_cases

    hf_logging.disable_progress_bar()

    cfg = cfg or TrainConfig()
    shape = shape or ModelShape()
    if cfg.grow_layers and not cfg.init_from:
        raise ValueError("grow_layers deepens trained weights: give init_from (--init-from data/model) too, "
                         "or set the depth of a new model with its shape (--layers)")
    if cfg.eval_every and cfg.eval_cases and evaluate is None:
        raise ValueError("eval_every needs an evaluation: pass evaluate=helpers.eval.transformers_exact_match "
                         "(as `python -m helpers train` does), or set eval_every=0 or eval_cases=0")
    out_dir = Path(out_dir)
    ckpt = out_dir / "checkpoint"
    out_dir.mkdir(parents=True, exist_ok=True)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    tok = AutoTokenizer.from_pretrained(str(tokenizer_dir))
    state_file = ckpt / "trainer_state.pt"
    if state_file.exists():
        model = LlamaForCausalLM.from_pretrained(str(ckpt))
        state = torch.load(state_file, map_location="cpu", weights_only=False)  # a GPU run resumes anywhere
        start = state["step"]
        log(f"resuming from step {start}")
    elif cfg.init_from:
        model = LlamaForCausalLM.from_pretrained(str(cfg.init_from))
        state, start = None, 0
        log(f"starting from the weights in {cfg.init_from}")
        if cfg.grow_layers and cfg.grow_layers != model.config.num_hidden_layers:
            log(f"expanding {model.config.num_hidden_layers} layers to {cfg.grow_layers}")
            model = expand_depth(model, cfg.grow_layers)
        if len(tok) > model.config.vocab_size:  # a tokenizer with added pieces (add_characters)
            log(f"adding {len(tok) - model.config.vocab_size} rows to the embeddings (new pieces)")
            model.resize_token_embeddings(len(tok), mean_resizing=True)
    else:
        model = build_model(len(tok), shape, tok.bos_token_id, tok.eos_token_id)
        state, start = None, 0
    n_params = sum(p.numel() for p in model.parameters())
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr, betas=(0.9, 0.98), eps=1e-8)
    if state is not None:
        opt.load_state_dict(state["optimizer"])
    rng = random.Random(cfg.seed + start)
    copy_words = copy_pieces(tok) if cfg.copy_share else None
    gen = make_generator(cfg, cfg.seed + start, copy_words)
    # the first cases of the shipped dev set, whatever the run's seed, so runs' curves compare
    dev = eval_cases(cfg.eval_cases, seed=DEV_SEED) if cfg.eval_cases else []

    def lr_at(step: int) -> float:
        """Warm-up, then cosine decay over the steps, or over the wall-clock budget when one is set."""
        if step < cfg.warmup:
            return cfg.lr * (step + 1) / cfg.warmup
        t = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
        if cfg.max_minutes is not None:
            t = max(t, min(1.0, (elapsed0 + time.time() - t0) / 60 / cfg.max_minutes))
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))

    history: list[dict[str, Any]] = state["history"] if state else []
    elapsed0 = state["elapsed"] if state else 0.0
    t0 = time.time()
    device = torch.device(cfg.device)
    model.to(device)
    # optimizer state loaded before the move follows the parameters' device
    for st in opt.state.values():
        for k, v in st.items():
            if torch.is_tensor(v) and k != "step":
                st[k] = v.to(device)
    model.train()
    fwd = torch.compile(model, dynamic=True) if cfg.compile else model
    batches = _batches(_chunks(tok, gen, cfg, str(tokenizer_dir), cfg.seed + start, copy_words), cfg, rng,
                       tok.eos_token_id)
    step = start
    loss_acc, tok_acc, n_acc = 0.0, 0, 0
    last_log = elapsed0

    def save() -> None:
        model.save_pretrained(str(ckpt))
        tok.save_pretrained(str(ckpt))
        torch.save({"step": step, "optimizer": opt.state_dict(), "history": history,
                    "elapsed": elapsed0 + time.time() - t0}, state_file)

    while step < cfg.steps:
        if cfg.max_minutes is not None and (elapsed0 + time.time() - t0) / 60 > cfg.max_minutes:
            log(f"time budget of {cfg.max_minutes} min reached at step {step}")
            break
        ids, (labels, att, wts) = next(batches)
        ids, labels, att, wts = (t.to(device, non_blocking=True) for t in (ids, labels, att, wts))
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            logits = fwd(input_ids=ids, attention_mask=att).logits[:, :-1].float()
        ce = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                               ignore_index=-100, reduction="none")
        w = wts[:, 1:].reshape(-1)
        loss = (ce * w).sum() / w.sum().clamp(min=1.0)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        opt.zero_grad(set_to_none=True)
        step += 1
        loss_acc += loss.item()
        tok_acc += int(att.sum())
        n_acc += 1
        if step % cfg.log_every == 0:
            el = elapsed0 + time.time() - t0
            rec = {"step": step, "loss": round(loss_acc / n_acc, 4), "lr": round(lr_at(step), 6),
                   "tokens_per_s": round(tok_acc / max(1e-9, el - last_log), 1), "elapsed_s": round(el, 1)}
            last_log = el
            history.append(rec)
            log(json.dumps(rec))
            loss_acc, tok_acc, n_acc = 0.0, 0, 0
        if evaluate and cfg.eval_every and step % cfg.eval_every == 0:
            acc = evaluate(model.cpu(), tok, dev)
            model.to(device)
            history.append({"step": step, "dev_exact_match": round(acc, 4), "n": len(dev)})
            log(json.dumps(history[-1]))
        if step % cfg.save_every == 0:
            save()
    model.cpu()
    if evaluate and cfg.eval_every and step % cfg.eval_every:
        acc = evaluate(model, tok, dev)
        history.append({"step": step, "dev_exact_match": round(acc, 4), "n": len(dev)})
        log(json.dumps(history[-1]))
    save()
    final = out_dir / "final"
    model.save_pretrained(str(final))
    tok.save_pretrained(str(final))
    # the shape of the model trained (from its config: with init_from it is not the `shape` argument)
    trained_shape = {k: getattr(model.config, k) for k in asdict(shape)}
    record = {"params": n_params, "shape": trained_shape, "config": asdict(cfg), "steps": step,
              "elapsed_s": round(elapsed0 + time.time() - t0, 1), "history": history}
    (out_dir / "train_record.json").write_text(json.dumps(record, indent=1))
    return record
