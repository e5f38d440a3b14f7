"""Commands of `python -m helpers`: a thin face over functions the notebooks also call."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _cmd_train_model(a: argparse.Namespace) -> int:
    from helpers.model.pipeline import prepare_tokenizer
    from helpers.model.train import ModelShape, TrainConfig, train

    out = Path(a.out)
    tok_dir = out / "tokenizer"
    if not (tok_dir / "tokenizer.json").exists():
        prepare_tokenizer(tok_dir, n_dialogues=a.tokenizer_dialogues, vocab_size=a.vocab_size, seed=a.seed)
    cfg = TrainConfig(steps=a.steps, max_minutes=a.minutes, lr=a.lr, batch_tokens=a.batch_tokens, seed=a.seed,
                      eval_every=a.eval_every, threads=a.threads,
                      compile=a.compile)
    shape = ModelShape(num_hidden_layers=a.layers, hidden_size=a.hidden, intermediate_size=a.intermediate)

    def log(msg: str) -> None:
        print(msg, flush=True)

    record = train(out, tok_dir, cfg, shape, log=log)
    print(json.dumps({k: v for k, v in record.items() if k != "history"}))
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train-model", help="train the workbook's SLM from scratch (CPU)")
    t.add_argument("--out", default="build/train", help="run folder (resumes from its checkpoint)")
    t.add_argument("--steps", type=int, default=3000)
    t.add_argument("--minutes", type=float, default=None, help="wall-clock budget; the LR schedule follows it")
    t.add_argument("--lr", type=float, default=2e-3)
    t.add_argument("--batch-tokens", type=int, default=6144)
    t.add_argument("--layers", type=int, default=4)
    t.add_argument("--hidden", type=int, default=256)
    t.add_argument("--intermediate", type=int, default=768)
    t.add_argument("--vocab-size", type=int, default=1024)
    t.add_argument("--tokenizer-dialogues", type=int, default=40000)
    t.add_argument("--eval-every", type=int, default=500)
    t.add_argument("--threads", type=int, default=None)
    t.add_argument("--seed", type=int, default=123)
    t.add_argument("--compile", action="store_true", help="torch.compile the training step")
    t.set_defaults(func=_cmd_train_model)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return int(args.func(args) or 0)
