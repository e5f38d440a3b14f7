"""The generator's output, pinned: moving word lists and templates out of the code must not change a byte.

The checksums were computed with the generator as it was before its data moved to data/text (commit 083eb6f).
The dev set's equals the shipped data/eval/dev.jsonl. If a change to the generator is meant to change the
data, retrain and re-export, then update these (and say so in data/README.md)."""

import hashlib
import json

from helpers.data.synth import DEV_SEED, DialogueGenerator, eval_cases

DEV_SHA256 = "58e0429106e7670e675f081f6c3134ff93482cd64b621347424b09070d3a2af8"
TRAIN_2000_SHA256 = "cfaba7601ac918f7113f37166da2d47876fe3fe753628cbc0de108aa22f6bfb8"
TRAIN_2000_COPY_SHA256 = "c1acc5f56950b618984a5a3587b40efcf1210dc507d188c6ddd1a21b2beed99e"


def _train_sha256(n: int = 2000, **kw) -> str:
    g = DialogueGenerator(split="train", seed=123, **kw)
    h = hashlib.sha256()
    for _ in range(n):
        d = g.dialogue()
        h.update((json.dumps({"messages": d.messages, "tools": d.tools}, ensure_ascii=False) + "\n").encode())
    return h.hexdigest()


def test_the_dev_set_generation_is_byte_identical():
    text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in eval_cases(300, seed=DEV_SEED))
    assert hashlib.sha256(text.encode("utf-8")).hexdigest() == DEV_SHA256


def test_the_first_2000_training_dialogues_are_byte_identical():
    assert _train_sha256() == TRAIN_2000_SHA256


def test_the_first_2000_training_dialogues_with_copy_pieces_are_byte_identical():
    assert _train_sha256(copy_words=["zq", "vel", "ment", "ab", "orix"], copy_share=0.3) == TRAIN_2000_COPY_SHA256
