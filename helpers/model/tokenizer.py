"""Train the workbook model's SentencePiece tokenizer and wrap it for transformers.

Introduced in notebook 01 and lab 01. Design choices, each for one reason:
- BPE with byte fallback: any text encodes, nothing becomes <unk>.
- Digits split, and merges only inside runs of letters: the space marker '▁' and punctuation are always
  tokens of their own. So a value such as a city name is the same token sequence in the user's message
  (`in Lisbon`) and in the tool call (`"city":"Lisbon"`), which makes copying it a plain look-up for
  the model instead of a translation between two spellings.
- Chat markers, tool-call tags and tool names are user-defined symbols: always one token.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Iterable

from helpers.domain.chat_format import BOS, CHAT_TEMPLATE, EOS, USER_SYMBOLS

UNK = "<unk>"
_WORD = re.compile(r"[^\W\d_]+")  # runs of letters (any script)


def _corpus_lines(texts: Iterable[str]) -> tuple[list[str], set[str]]:
    lines: list[str] = []
    chars: set[str] = set()
    for t in texts:
        for sym in USER_SYMBOLS + (BOS, EOS):
            t = t.replace(sym, " ")
        chars.update(t)
        lines.extend(_WORD.findall(t))
    return lines, chars


def train_tokenizer(texts: Iterable[str], out_dir: str | Path, vocab_size: int = 1024) -> Path:
    """Train the SentencePiece model on `texts` and write `tokenizer.model` into `out_dir`."""
    import sentencepiece as spm
    from sentencepiece import sentencepiece_model_pb2 as pb

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    lines, chars = _corpus_lines(texts)
    chars.discard("\n")
    required = "".join(sorted(c for c in chars if c.strip()))
    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        # each word on its own line: BPE learns merges inside words only; one spaced line keeps '▁'
        corpus.write_text("\n".join(lines) + "\n" + " ".join(required) + "\n", encoding="utf-8")
        prefix = str(Path(tmp) / "sp")
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=prefix, model_type="bpe", vocab_size=vocab_size,
            character_coverage=1.0, byte_fallback=True, split_digits=True, add_dummy_prefix=False,
            normalization_rule_name="identity", remove_extra_whitespaces=False, required_chars=required,
            user_defined_symbols=list(USER_SYMBOLS), unk_piece=UNK, bos_piece=BOS, eos_piece=EOS,
            unk_id=0, bos_id=1, eos_id=2, pad_id=-1, hard_vocab_limit=False, num_threads=2,
            max_sentence_length=100000, minloglevel=2,
        )
        proto = pb.ModelProto()
        proto.ParseFromString(Path(prefix + ".model").read_bytes())
    # keep a piece if it is special, a byte, a single character, or made of letters only
    keep = []
    for p in proto.pieces:
        if p.type != pb.ModelProto.SentencePiece.NORMAL or len(p.piece) == 1 or p.piece.isalpha():
            keep.append(p)
    del proto.pieces[:]
    proto.pieces.extend(keep)
    path = out_dir / "tokenizer.model"
    path.write_bytes(proto.SerializeToString())
    return path


def hf_tokenizer(model_file: str | Path):  # -> transformers.PreTrainedTokenizerFast
    """Build the transformers tokenizer from `tokenizer.model`, with the chat template attached."""
    from tokenizers import AddedToken, Tokenizer, decoders, normalizers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(Path(model_file).read_bytes())
    vocab = {p.piece: i for i, p in enumerate(proto.pieces)}
    score = {p.piece: p.score for p in proto.pieces}
    # merges: every split of a multi-character piece into two pieces, ranked by the piece's score
    merges = []
    for p in proto.pieces:
        if p.type == pb.ModelProto.SentencePiece.NORMAL and len(p.piece) > 1:
            for k in range(1, len(p.piece)):
                a, b = p.piece[:k], p.piece[k:]
                if a in vocab and b in vocab:
                    merges.append((score[p.piece], vocab[a], vocab[b], (a, b)))
    merges.sort(key=lambda m: (-m[0], m[1], m[2]))
    tok = Tokenizer(BPE(vocab=vocab, merges=[m[3] for m in merges], unk_token=UNK, byte_fallback=True,
                        fuse_unk=True))
    tok.normalizer = normalizers.Replace(" ", "▁")
    # No pre-tokenizer is needed: no merge involves '▁', a digit or punctuation, so merges cannot cross
    # them. This keeps the tokenizer in the plain SentencePiece-Llama form every runtime reads.
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse()])
    specials = [AddedToken(s, special=True, normalized=False) for s in (UNK, BOS, EOS)]
    users = [AddedToken(s, special=False, normalized=False) for s in USER_SYMBOLS]
    tok.add_special_tokens(specials)
    tok.add_tokens(users)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, unk_token=UNK,
                                   pad_token=EOS, model_max_length=2048, clean_up_tokenization_spaces=False)
    fast.chat_template = CHAT_TEMPLATE
    return fast


def add_characters(model_file: str | Path, chars: Iterable[str], out_file: str | Path) -> list[str]:
    """Append single-character pieces to a trained SentencePiece model; returns the pieces added.

    Existing ids do not change, so a trained model keeps its weights and only gains embedding rows (training
    `--init-from` resizes them). Used for Hangul (issue 21): without a piece of its own, a syllable is three
    byte-fallback pieces, so a five-syllable city is 15 tokens and one wrong byte corrupts it."""
    from sentencepiece import sentencepiece_model_pb2 as pb

    proto = pb.ModelProto()
    proto.ParseFromString(Path(model_file).read_bytes())
    have = {p.piece for p in proto.pieces}
    lowest = min(p.score for p in proto.pieces if p.type == pb.ModelProto.SentencePiece.NORMAL)
    added = []
    for c in dict.fromkeys(chars):
        if len(c) != 1 or not c.strip():
            raise ValueError(f"add_characters adds single visible characters, not {c!r}")
        if c in have:
            continue
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = c, lowest - 1 - len(added), pb.ModelProto.SentencePiece.NORMAL
        added.append(c)
    Path(out_file).parent.mkdir(parents=True, exist_ok=True)
    Path(out_file).write_bytes(proto.SerializeToString())
    return added
