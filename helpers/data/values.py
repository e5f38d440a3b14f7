"""The values and free texts the dialogue generator copies into requests (introduced in notebook 01).

City names (a held-out pool for the dev set, invented names for training), issue and reason texts built from
parts, words made of the tokenizer's pieces, and invented no-tool requests. The word lists are read from
data/text/synth_values.txt and synth_chat.txt; `helpers.data.synth` draws from them.
"""

from __future__ import annotations

import random
import string
from typing import Any, Callable

from helpers.data.text_data import read_text_data

_VALUES = read_text_data("synth_values")
_CHAT = read_text_data("synth_chat")

# ----------------------------------------------------------------------------------------------- values
CITIES_TRAIN = _VALUES["cities"]["train"]

CITIES_DEV = _VALUES["cities"]["dev"]

_SYL_ONSET = _VALUES["syllables"]["onset"]
_SYL_VOWEL = _VALUES["syllables"]["vowel"]
_SYL_CODA = _VALUES["syllables"]["coda"]
_CITY_WORDS = _VALUES["city_words"]
_CITY_SUFFIX = _VALUES["city_suffix"]


def _word(rng: random.Random, lo: int = 1, hi: int = 3) -> str:
    w = "".join(rng.choice(_SYL_ONSET) + rng.choice(_SYL_VOWEL) + rng.choice(_SYL_CODA)
                for _ in range(rng.randint(lo, hi)))
    return w.capitalize() if w else "Ola"


def random_city(rng: random.Random) -> str:
    """An invented place name (training only): teaches the model to copy, not to remember."""
    r = rng.random()
    if r < 0.55:
        name = _word(rng)
    elif r < 0.7:
        name = rng.choice(_CITY_WORDS) + " " + _word(rng)
    elif r < 0.8:
        name = _word(rng) + " " + rng.choice(_CITY_SUFFIX)
    elif r < 0.88:
        name = _word(rng) + "-" + rng.choice(["en", "sur", "le", "upon", "am", "de"]) + "-" + _word(rng, 1, 2)
    elif r < 0.91:
        name = _word(rng, 1, 2) + " " + _word(rng, 1, 2)
    elif r < 0.95:  # lowercase particles inside a name: the span does not end at the first small word
        name = f"{_word(rng)} {rng.choice(['de', 'de la', 'del', 'do', 'am', 'an der', 'on', 'la', 'di'])} {_word(rng)}"
    else:  # random letters: pure copying
        n = rng.randint(3, 12)
        name = "".join(rng.choice(string.ascii_lowercase) for _ in range(n)).capitalize()
    return name


ISSUES = _VALUES["issues"]["train"]
ISSUES_DEV = _VALUES["issues"]["dev"]

REASONS = _VALUES["reasons"]["train"]
REASONS_DEV = _VALUES["reasons"]["dev"]

# Free text for training, built from parts: the model must learn to copy a span of the message, not to
# recall one of a few dozen memorised strings (with fixed lists it copied 0 of 43 held-out texts).
_ISSUE_THINGS = _VALUES["issue_things"]
_ISSUE_OWNERS = _VALUES["issue_owners"]
_ISSUE_PROBLEMS = _VALUES["issue_problems"]
_ISSUE_TAILS = _VALUES["issue_tails"]
_REASON_PARTS = _VALUES["reason_parts"]
_COPY_WORDS = _VALUES["copy_words"]


def _free_words(rng: random.Random, lo: int, hi: int) -> str:
    """Known words mixed with invented ones: a text the model can only reproduce by copying it."""
    return " ".join(rng.choice(_COPY_WORDS) if rng.random() < 0.6 else _word(rng).lower()
                    for _ in range(rng.randint(lo, hi)))


# Free texts as long as people write them: a second clause joined to the first, with numbers, error codes
# and contractions, so the model learns to copy a span to its end, not a few words of it (training only).
_JOINS = _VALUES["joins"]
_EXTRA = _VALUES["extra"]
_WHEN = _VALUES["when"]
_NTH = _VALUES["nth"]


def _code(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.3:
        return f"error {rng.randint(100, 999)}"
    if r < 0.5:
        return "0x" + "".join(rng.choice("0123456789ABCDEF") for _ in range(8))
    if r < 0.75:
        return "".join(rng.choice(string.ascii_uppercase) for _ in range(rng.randint(3, 7))) + str(rng.randint(1, 99))
    return f"{rng.choice(string.ascii_uppercase)}{rng.choice(string.ascii_uppercase)}-{rng.randint(10, 9999)}"


def _longer(rng: random.Random, text: str, base: Callable[[random.Random], str]) -> str:
    """`text` with one or two more clauses joined on (training free text)."""
    for _ in range(1 if rng.random() < 0.8 else 2):
        if rng.random() < 0.6:
            more = rng.choice(_EXTRA).format(n=rng.randint(2, 40), m=rng.randint(0, 9), code=_code(rng),
                                             nth=rng.choice(_NTH), when=rng.choice(_WHEN))
        else:
            more = base(rng)
        text = text + rng.choice(_JOINS) + more
    return text[0].upper() + text[1:] if rng.random() < 0.2 else text


def random_issue(rng: random.Random) -> str:
    """A made-up support issue (training only): one or, in 40 % of them, two or three clauses."""
    text = _issue_clause(rng)
    return _longer(rng, text, _issue_clause) if rng.random() < 0.4 else text


def random_reason(rng: random.Random) -> str:
    """A made-up escalation reason (training only): one or, in 40 % of them, two or three clauses."""
    text = _reason_clause(rng)
    return _longer(rng, text, _reason_clause) if rng.random() < 0.4 else text


def _issue_clause(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.2:
        return rng.choice(ISSUES)
    if r < 0.6:
        thing = rng.choice(_ISSUE_THINGS) if rng.random() < 0.75 else _word(rng).lower()
        return f"{rng.choice(_ISSUE_OWNERS)} {thing} {rng.choice(_ISSUE_PROBLEMS)}{rng.choice(_ISSUE_TAILS)}"
    if r < 0.75:
        return " ".join(rng.choice(_COPY_WORDS) for _ in range(rng.randint(2, 6)))
    return f"{rng.choice(_ISSUE_OWNERS)} {_free_words(rng, 2, 7)}"


def _reason_clause(rng: random.Random) -> str:
    r = rng.random()
    if r < 0.25:
        return rng.choice(REASONS)
    if r < 0.6:
        return f"{rng.choice(_REASON_PARTS['open'])} {rng.choice(_REASON_PARTS['thing'])}"
    if r < 0.7:
        return rng.choice(_REASON_PARTS["plain"])
    if r < 0.8:
        return " ".join(rng.choice(_COPY_WORDS) for _ in range(rng.randint(2, 6)))
    return f"{rng.choice(['a', 'an', 'the', 'my', 'a question about', 'a problem with'])} {_free_words(rng, 1, 6)}"


_DEV_TEXTS = {t.casefold() for t in ISSUES_DEV + REASONS_DEV}


# Words built from the tokenizer's own pieces (training only, when the trainer passes them): a model can only
# copy a token it has learned to copy. Measured on the 1024-piece tokenizer, 245 of its 646 word pieces never
# occurred in a string argument of 20,000 training dialogues (e.g. `kiosk`, `produ`, `quest`), so a held-out
# word made of them came back as another word ("the kiosk touchscreen" -> "the laptop touchscreen").
def copy_pieces(tokenizer: Any) -> list[str]:
    """The word pieces of `tokenizer` (letters only, at least two of them), for `DialogueSampler(copy_words=)`."""
    pieces = {t.replace("\u2581", "") for t in tokenizer.get_vocab()}
    return sorted(p for p in pieces if len(p) >= 2 and p.isalpha() and not p.startswith("<"))


def pieces_in_arguments(gen: Any, tokenizer: Any, n: int,
                        tools: tuple[str, ...] = ("create_ticket", "escalate_to_human", "get_weather")) -> set[int]:
    """Token ids that occur in a string argument of `n` requests per tool drawn from `gen` (notebook 01)."""
    seen: set[int] = set()
    for _ in range(n):
        for tool in tools:
            for v in gen.request(tool)[1].values():
                if isinstance(v, str):
                    seen.update(tokenizer(v, add_special_tokens=False)["input_ids"])
    return seen


def piece_text(rng: random.Random, pieces: list[str], lo: int = 1, hi: int = 5) -> str:
    """One to five words, each one to three random pieces long: text the model can only reproduce by copying."""
    words = []
    for _ in range(rng.randint(lo, hi)):
        w = "".join(rng.choice(pieces) for _ in range(rng.choices([1, 2, 3], weights=[5, 3, 1])[0]))
        words.append(w if rng.random() < 0.5 else rng.choice(_COPY_WORDS))
    text = " ".join(words)
    return text.lower() if rng.random() < 0.5 else text


_DEV_CITIES = {c.casefold() for c in CITIES_DEV}


# Compositional no-tool requests and social phrases (training only): a request that merely mentions a
# season, a number or a place is still outside the tools; a short social phrase never calls a tool.
_OOD_ASK = _CHAT["ood_ask"]
_OOD_THING = _CHAT["ood_thing"]
_OOD_TOPIC = _CHAT["ood_topic"]
_OOD_PATTERNS = _CHAT["ood_patterns"]
_OOD_FILL = _CHAT["ood_fill"]
_GREET_HEADS = _CHAT["greet_heads"]
_GREET_TAILS = _CHAT["greet_tails"]
_THANKS_HEADS = _CHAT["thanks_heads"]
_THANKS_CORE = _CHAT["thanks_core"]


def random_ood(rng: random.Random) -> str:
    """An invented out-of-domain request (training only)."""
    pattern = rng.choice(_OOD_PATTERNS)
    slots = {k: rng.choice(v) for k, v in _OOD_FILL.items()}
    slots.update(ask=rng.choice(_OOD_ASK), thing=rng.choice(_OOD_THING), topic=rng.choice(_OOD_TOPIC),
                 n=str(rng.randint(2, 12)), a=str(rng.randint(2, 99)), b=str(rng.randint(2, 99)))
    return pattern.format(**slots)


def random_social(rng: random.Random, kind: str) -> str:
    """An invented greeting or thanks (training only)."""
    if kind == "greet":
        return rng.choice(_GREET_HEADS) + rng.choice(_GREET_TAILS)
    return rng.choice(_THANKS_HEADS) + rng.choice(_THANKS_CORE) + rng.choice(["", "", "!", " :)", "."])
