"""Seeded synthetic dialogues for the agent domain: training data and a held-out dev set.

Introduced in notebook 01 and lab 01 (train your own SLM). The dev set uses phrasings (templates), ids
and city names that never occur in training: `split="dev"` draws from held-out pools and the training
sampler rejects any dev value.

Every dialogue is a list of OpenAI-style messages; tool results come from the same result shapes as
`helpers.domain.tools.Shop` (a test checks the keys agree).
"""

from __future__ import annotations

import random
import re
import string
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from helpers.data.jsonl import write_jsonl  # noqa: F401 (the JSONL writer's home is helpers.data.jsonl)
from helpers.data.phrasebank import BANK_REQUESTS, BANK_TEXTS
from helpers.data.text_data import read_text_data
from helpers.data.tool_results import answer_for, synth_result
from helpers.data.values import (_DEV_CITIES, _DEV_TEXTS, CITIES_DEV, CITIES_TRAIN, ISSUES,  # noqa: F401
                                 ISSUES_DEV, REASONS, REASONS_DEV, copy_pieces, piece_text, pieces_in_arguments,
                                 random_city, random_issue, random_ood, random_reason, random_social)
from helpers.domain.chat_format import FOUNDRY_PROTOCOL_PREFIX, MESSAGE_FRAME, dump_json
from helpers.domain.tools import TOOL_NAMES, openai_tools

# The templates and canned replies live in data/text/ (one phrasing a line, with a checksum); the values and
# free texts the templates are filled with are helpers.data.values', the tool results helpers.data.tool_results'.
_TEMPLATES = read_text_data("synth_templates")
_CHAT = read_text_data("synth_chat")

# ----------------------------------------------------------------------------------------------- phrasings
# Training templates and held-out dev templates per intent. {x} marks the slot values.
T: dict[str, dict[str, list[str]]] = _TEMPLATES["templates"]

# Share of training requests and no-tool texts drawn from the phrase bank (`helpers.data.phrasebank`):
# templates written by helper agents that never saw this generator or the evaluation sets.
BANK_SHARE = 0.4

# How people state a ticket's priority (training only), before or after the request: {t} is the request.
PRIORITY_FORMS = [(prio, form) for prio, forms in _TEMPLATES["priority_forms"].items() for form in forms]

# Compositional phrasings (training only): a question frame around a noun phrase of the request, so the
# model meets each intent in many more word orders than the whole-sentence templates give.
FRAMES = _TEMPLATES["frames"]
CORES: dict[str, list[str]] = _TEMPLATES["cores"]

# Word-level paraphrase for training requests: each listed word may be swapped for one of its
# neighbours, so an intent is recognised from its meaning rather than from one memorised wording.
SYNONYMS: dict[str, list[str]] = _TEMPLATES["synonyms"]


# Tools whose request needs a value the user may forget: the model asks for it instead of calling.
MISSING = {tool: (v["request"], v["question"], v["answer"]) for tool, v in _TEMPLATES["missing"].items()}

GREETINGS = _CHAT["greetings"]["train"]
GREETINGS_DEV = _CHAT["greetings"]["dev"]
THANKS = _CHAT["thanks"]["train"]
THANKS_DEV = _CHAT["thanks"]["dev"]
BYES = _CHAT["byes"]
SMALLTALK = _CHAT["smalltalk"]
OUT_OF_DOMAIN = _CHAT["out_of_domain"]["train"]
OUT_OF_DOMAIN_DEV = _CHAT["out_of_domain"]["dev"]

REPLY_GREET = _CHAT["replies"]["greet"]
REPLY_THANKS = _CHAT["replies"]["thanks"]
REPLY_BYE = _CHAT["replies"]["bye"]
REPLY_SMALLTALK = _CHAT["replies"]["smalltalk"]
REPLY_OOD = _CHAT["replies"]["ood"]
REPLY_NO_TOOL = _CHAT["replies"]["no_tool"]

OPENERS = _CHAT["openers"]
CLOSERS = _CHAT["closers"]
SYSTEM_PROMPTS = _CHAT["system_prompts"]


# A template's slot: `{oid}`, `{cid2}`. One pattern for filling, paraphrasing and template_regex, so that every
# slot name a template may use is a slot everywhere (letters only once left `{cid2}` as literal text).
_SLOT = re.compile(r"(\{[a-z][a-z0-9]*\})")


# ----------------------------------------------------------------------------------------------- sampling
@dataclass
class Values:
    """Slot values drawn for one request."""

    slots: dict[str, str]
    arguments: dict[str, Any]


class DialogueSampler:
    """Draws dialogues for `split` ("train" or "dev") from a seeded random generator."""

    def __init__(self, split: str = "train", seed: int = 123, copy_words: list[str] | None = None,
                 copy_share: float = 0.0) -> None:
        """`copy_words` (see `copy_pieces`): in training, `copy_share` of free texts and city names are made
        of them, so that every piece of the vocabulary is copied from a request into an argument."""
        if split not in ("train", "dev"):
            raise ValueError(f"split must be 'train' or 'dev', not {split!r}")
        if copy_share and not copy_words:
            raise ValueError("copy_share needs copy_words: pass copy_pieces(tokenizer)")
        self.split = split
        self.copy_words = copy_words or []
        self.copy_share = copy_share if split == "train" else 0.0
        self.rng = random.Random(seed if split == "train" else seed + 10_000)
        self.tools_all = openai_tools()
        dev_rng = random.Random(987654)  # the dev id pools are fixed, whatever the seed
        self.dev_ids = {self._digits(dev_rng, dev_rng.randint(3, 8)) for _ in range(400)}
        self.dev_cids = {f"C-{self._digits(dev_rng, dev_rng.randint(4, 6))}" for _ in range(200)}
        self.dev_skus = {"SKU-" + self._sku_body(dev_rng) for _ in range(200)}
        self.dev_srvs = {f"srv-{self._digits(dev_rng, dev_rng.randint(1, 4))}" for _ in range(120)}

    # values ------------------------------------------------------------------------------------------
    @staticmethod
    def _digits(rng: random.Random, n: int) -> str:
        return str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(n - 1))

    @staticmethod
    def _sku_body(rng: random.Random) -> str:
        n = rng.randint(3, 6)
        pool = rng.choice([string.ascii_uppercase, string.ascii_uppercase + string.digits, string.digits + "ABC"])
        return "".join(rng.choice(pool) for _ in range(n))

    def _fresh(self, make: Callable[[], str], dev_pool: set[str]) -> str:
        if self.split == "dev":
            return self.rng.choice(sorted(dev_pool))
        while True:
            v = make()
            if v not in dev_pool:
                return v

    def _fresh_text(self, make: Callable[[random.Random], str]) -> str:
        """Training free text that never equals a held-out one."""
        if self.copy_share and self.rng.random() < self.copy_share:
            make = lambda rng: piece_text(rng, self.copy_words)  # noqa: E731
        while True:
            v = make(self.rng)
            if v.casefold() not in _DEV_TEXTS:
                return v

    def order_id(self) -> str:
        return self._fresh(lambda: self._digits(self.rng, self.rng.randint(3, 8)), self.dev_ids)

    def customer_id(self) -> str:
        return self._fresh(lambda: f"C-{self._digits(self.rng, self.rng.randint(4, 6))}", self.dev_cids)

    def sku(self) -> str:
        return self._fresh(lambda: "SKU-" + self._sku_body(self.rng), self.dev_skus)

    def srv(self) -> str:
        return self._fresh(lambda: f"srv-{self._digits(self.rng, self.rng.randint(1, 4))}", self.dev_srvs)

    def city(self) -> str:
        if self.split == "dev":
            c = self.rng.choice(CITIES_DEV)
        else:
            c = self.rng.choice(CITIES_TRAIN) if self.rng.random() < 0.35 else random_city(self.rng)
            if self.copy_share and self.rng.random() < self.copy_share:
                c = piece_text(self.rng, self.copy_words, 1, 2).title()
            while c.casefold() in _DEV_CITIES:  # an invented name can hit a held-out one (Niš: 8 per million)
                c = random_city(self.rng)
        r = self.rng.random()
        if r < 0.12:
            c = c.lower()
        elif r < 0.14:
            c = c.upper()
        return c

    def clock(self) -> tuple[str, str]:
        """(as the user writes it, as HH:MM)."""
        rng = self.rng
        h, m = rng.randint(0, 23), rng.choice([0, 0, 0, 15, 30, 30, 45, rng.randint(0, 59)])
        canonical = f"{h:02d}:{m:02d}"
        h12 = h % 12 or 12
        ap = "am" if h < 12 else "pm"
        r = rng.random()
        if r < 0.4:
            said = canonical if rng.random() < 0.7 else f"{h}:{m:02d}"
        elif r < 0.65:
            sep = rng.choice(["", " "])
            said = f"{h12}:{m:02d}{sep}{rng.choice([ap, ap.upper()])}"
        elif r < 0.85 and m == 0:
            said = f"{h12}{rng.choice(['', ' '])}{rng.choice([ap, ap.upper()])}"
        elif r < 0.92:
            said = f"{h}h{m:02d}"
        elif h == 12 and m == 0:
            said = "noon"
        else:
            said = canonical
        return said, canonical

    def radius(self) -> tuple[str, float | int]:
        rng = self.rng
        r = rng.random()
        if r < 0.55:
            v: float | int = rng.randint(1, 100)
        elif r < 0.9:
            v = round(rng.uniform(0.1, 50), rng.choice([1, 2]))
            if v == int(v):
                v = int(v)
        else:
            v = rng.randint(100, 5000)
        return str(v), v

    def order_ref(self, oid: str) -> str:
        return self.rng.choice(["{x}", "{x}", "#{x}", "#{x}", "{x}", "no. {x}", "number {x}", "#{x}"]).format(x=oid)

    def pick(self, pool_train: list[str], pool_dev: list[str]) -> str:
        return self.rng.choice(pool_dev if self.split == "dev" else pool_train)

    def values(self, tool: str) -> Values:
        rng = self.rng
        if tool == "lookup_order":
            oid = self.order_id()
            return Values({"oid": self.order_ref(oid)}, {"order_id": oid})
        if tool == "lookup_customer":
            cid = self.customer_id()
            said = cid if rng.random() < 0.85 else cid.lower()
            return Values({"cid": said}, {"customer_id": said})
        if tool == "check_inventory":
            sku = self.sku()
            said = sku if rng.random() < 0.85 else sku.lower()
            return Values({"sku": said}, {"product_sku": said})
        if tool == "get_weather":
            c = self.city()
            return Values({"city": c}, {"city": c})
        if tool == "schedule_callback":
            cid = self.customer_id()
            said, canon = self.clock()
            return Values({"cid": cid, "time": said}, {"customer_id": cid, "preferred_time": canon})
        if tool == "run_diagnostics":
            s = self.srv()
            return Values({"srv": s}, {"system_id": s})
        if tool == "create_ticket":
            issue = self.pick(ISSUES, ISSUES_DEV) if self.split == "dev" else self._fresh_text(random_issue)
            if rng.random() < 0.15:
                issue = issue.lower()
            return Values({"issue": issue}, {"issue": issue})
        if tool == "calculate_circle_area":
            said, v = self.radius()
            return Values({"r": said}, {"radius": v})
        if tool == "get_current_time":
            return Values({}, {})
        if tool == "escalate_to_human":
            cid = self.customer_id()
            reason = self.pick(REASONS, REASONS_DEV) if self.split == "dev" else self._fresh_text(random_reason)
            return Values({"cid": cid, "reason": reason},
                          {"customer_id": cid, "reason": None})
        raise KeyError(tool)

    # text --------------------------------------------------------------------------------------------
    def _typo(self, word: str) -> str:
        rng = self.rng
        if len(word) < 4 or not word.isalpha():
            return word
        i = rng.randint(1, len(word) - 2)
        op = rng.random()
        if op < 0.35:
            return word[:i] + word[i + 1] + word[i] + word[i + 2:]
        if op < 0.6:
            return word[:i] + word[i + 1:]
        if op < 0.8:
            return word[:i] + word[i] + word[i:]
        return word[:i] + rng.choice("aeiourstnl") + word[i + 1:]

    def _style(self, literal: str, lower: bool, upper: bool, typos: float) -> str:
        words = re.split(r"(\s+)", literal)
        out = []
        for w in words:
            if w.strip() and self.rng.random() < typos:
                w = self._typo(w)
            out.append(w)
        s = "".join(out)
        if upper:
            return s.upper()
        if lower:
            return s.lower()
        return s

    def fill(self, template: str, slots: dict[str, str], wrap: bool = True, urgent_ok: bool = True) -> str:
        """Fill a template's slots; style (case, typos, openers) touches only the literal text.

        `urgent_ok=False` (a ticket that is not high priority) turns the closer " asap" into none, so no
        request carries an urgency word that contradicts its label."""
        rng = self.rng
        if wrap:
            opener, closer = rng.choice(OPENERS), rng.choice(CLOSERS)
            template = opener + template + ("" if closer == " asap" and not urgent_ok else closer)
            if rng.random() < 0.5:
                template = template[0].upper() + template[1:] if template else template
        lower = rng.random() < 0.25
        upper = rng.random() < 0.03
        typos = rng.choice([0.0, 0.0, 0.0, 0.05, 0.12])
        parts = _SLOT.split(template)
        out = []
        for p in parts:
            if _SLOT.fullmatch(p):
                out.append(slots[p[1:-1]])
            else:
                out.append(self._style(p, lower, upper, typos))
        text = "".join(out)
        return re.sub(r"\s+", " ", text).strip() or template

    def paraphrase(self, template: str, p: float = 0.6) -> str:
        """Swap listed words of a template's literal text for neighbours (slots are kept)."""
        def swap(m: re.Match[str]) -> str:
            w = m.group(0)
            alts = SYNONYMS.get(w.lower())
            return self.rng.choice(alts) if alts and self.rng.random() < p else w
        parts = _SLOT.split(template)
        return "".join(p_ if p_.startswith("{") else re.sub(r"[A-Za-z]+", swap, p_) for p_ in parts)

    def request(self, tool: str) -> tuple[str, dict[str, Any]]:
        """A user request for `tool` and the expected arguments."""
        v = self.values(tool)
        if self.split == "train" and self.rng.random() < BANK_SHARE:
            tmpl = self.rng.choice(BANK_REQUESTS[tool])
        elif self.split == "train" and tool in CORES and self.rng.random() < 0.3:
            tmpl = self.rng.choice(FRAMES).format(q=self.rng.choice(CORES[tool]))
        else:
            tmpl = self.rng.choice(T[tool][self.split])
        if self.split == "train" and self.rng.random() < 0.35:
            tmpl = self.paraphrase(tmpl)
        if tool == "create_ticket" and self.split == "train" and self.rng.random() < 0.5:
            prio, affix = self.rng.choice(PRIORITY_FORMS)  # training only: more wordings and places
            tmpl = affix.replace("{t}", tmpl)
            v.arguments["priority"] = prio
        elif tool == "create_ticket":
            prio, words = self.rng.choice([("medium", ""), ("medium", ""), ("high", "urgent: "),
                                           ("high", "high priority: "), ("high", "ASAP - "),
                                           ("low", "low priority, "), ("low", "not urgent: "),
                                           ("medium", "medium priority: "), ("high", "critical! "),
                                           ("low", "no rush, ")])
            tmpl = words + tmpl if self.rng.random() < 0.7 else tmpl + (
                {"high": " - this is urgent", "low": " (low priority)", "medium": ""}[prio])
            v.arguments["priority"] = prio
        if tool == "escalate_to_human":
            v.arguments["reason"] = v.slots["reason"]
        # training only: the shipped dev set was generated before this rule and stays byte for byte
        calm_ticket = self.split == "train" and tool == "create_ticket" and v.arguments["priority"] != "high"
        text = self.fill(tmpl, v.slots, urgent_ok=not calm_ticket)
        return text, v.arguments


# ----------------------------------------------------------------------------------------------- dialogues
def _call_message(tool: str, args: dict[str, Any], call_id: str) -> dict[str, Any]:
    return {"role": "assistant", "content": "",
            "tool_calls": [{"id": call_id, "type": "function",
                            "function": {"name": tool, "arguments": dump_json(args)}}]}


@dataclass
class Dialogue:
    """A training dialogue: messages, the tools offered, and whether Foundry's protocol mode is on."""

    messages: list[dict[str, Any]]
    tools: list[dict[str, Any]] | None


class DialogueGenerator(DialogueSampler):
    """Whole dialogues: tool calls with results and answers, multi-turn chats, no-tool chats."""

    TOOL_WEIGHTS = {"lookup_order": 3, "lookup_customer": 2, "check_inventory": 2, "get_weather": 3,
                    "schedule_callback": 2.5, "run_diagnostics": 2, "create_ticket": 2,
                    "calculate_circle_area": 1.5, "get_current_time": 1, "escalate_to_human": 2}

    def _tool(self) -> str:
        names = list(self.TOOL_WEIGHTS)
        return self.rng.choices(names, weights=[self.TOOL_WEIGHTS[n] for n in names])[0]

    def _text_reply(self, kind: str) -> tuple[str, str]:
        rng = self.rng
        # training only: a compositional phrase, a phrase-bank text or one of the fixed lists
        source = "list"
        if self.split == "train":
            r = rng.random()
            source = "invent" if r < 0.35 else ("bank" if r < 0.35 + BANK_SHARE else "list")
        if source == "bank":
            pool = kind if kind != "ood" or rng.random() < 0.6 else "ood_hard"
            said = rng.choice(BANK_TEXTS[pool])
            reply = {"greet": REPLY_GREET, "thanks": REPLY_THANKS, "bye": REPLY_BYE,
                     "smalltalk": REPLY_SMALLTALK}.get(kind, REPLY_OOD)
            return self.fill(said, {}, wrap=kind == "ood"), rng.choice(reply)
        invent = source == "invent"
        if kind == "greet":
            said = random_social(rng, kind) if invent else self.pick(GREETINGS, GREETINGS_DEV)
            return self.fill(said, {}, wrap=False), rng.choice(REPLY_GREET)
        if kind == "thanks":
            said = random_social(rng, kind) if invent else self.pick(THANKS, THANKS_DEV)
            return self.fill(said, {}, wrap=False), rng.choice(REPLY_THANKS)
        if kind == "bye":
            return self.fill(rng.choice(BYES), {}, wrap=False), rng.choice(REPLY_BYE)
        if kind == "smalltalk":
            return self.fill(rng.choice(SMALLTALK), {}, wrap=False), rng.choice(REPLY_SMALLTALK)
        said = random_ood(rng) if invent else self.pick(OUT_OF_DOMAIN, OUT_OF_DOMAIN_DEV)
        return self.fill(said, {}), rng.choice(REPLY_OOD)

    def _tool_turn(self, msgs: list[dict[str, Any]], tool: str, n: int, frame: str,
                   missing: bool = False) -> None:
        rng = self.rng
        if missing and tool in MISSING:
            asks, prompts, answers = MISSING[tool]
            msgs.append({"role": "user", "content": self.fill(rng.choice(asks), {})})
            msgs.append({"role": "assistant", "content": frame + rng.choice(prompts)})
            v = self.values(tool)
            msgs.append({"role": "user", "content": self.fill(rng.choice(answers), v.slots, wrap=False)})
            args = v.arguments
        else:
            text, args = self.request(tool)
            msgs.append({"role": "user", "content": text})
        call_id = f"call_{n}"
        msgs.append(_call_message(tool, args, call_id))
        result = synth_result(tool, args, rng)
        msgs.append({"role": "tool", "tool_call_id": call_id, "content": dump_json(result)})
        msgs.append({"role": "assistant", "content": frame + answer_for(tool, result, rng)})

    def dialogue(self) -> Dialogue:
        """One training dialogue."""
        rng = self.rng
        msgs: list[dict[str, Any]] = []
        mode = rng.random()
        tools: list[dict[str, Any]] | None = self.tools_all
        frame = ""
        if mode < 0.15:  # Foundry Local's protocol mode: its system message, replies framed with MESSAGE
            msgs.append({"role": "system", "content": FOUNDRY_PROTOCOL_PREFIX + " ..."})
            frame = MESSAGE_FRAME
            if rng.random() < 0.5:
                tools = None
        elif mode < 0.2:
            tools = None  # no tools at all: text only
        elif rng.random() < 0.2:
            msgs.append({"role": "system", "content": rng.choice(SYSTEM_PROMPTS)})
        if tools is None and not frame:
            kind = rng.choice(["greet", "ood", "request", "request", "thanks"])
            if kind == "request":
                text, _ = self.request(self._tool())
                msgs.append({"role": "user", "content": text})
                msgs.append({"role": "assistant", "content": rng.choice(REPLY_NO_TOOL)})
            else:
                u, a = self._text_reply(kind)
                msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": a}]
            return Dialogue(msgs, None)
        if tools is self.tools_all and rng.random() < 0.08:
            shuffled = list(tools)
            rng.shuffle(shuffled)
            tools = shuffled
        shape = rng.random()
        n_turns = 1 if shape < 0.55 else (2 if shape < 0.9 else 3)
        for turn in range(n_turns):
            r = rng.random()
            if r < 0.72:
                self._tool_turn(msgs, self._tool(), turn, frame, missing=rng.random() < 0.07)
            else:
                kind = rng.choice(["greet", "thanks", "ood", "ood", "smalltalk", "bye"] if turn else
                                  ["greet", "ood", "ood", "smalltalk"])
                u, a = self._text_reply(kind)
                msgs += [{"role": "user", "content": u}, {"role": "assistant", "content": frame + a}]
        if frame and rng.random() < 0.5:  # history sent back without the frame
            for m in msgs[:-1]:
                if m["role"] == "assistant" and m.get("content", "").startswith(MESSAGE_FRAME):
                    m["content"] = m["content"][len(MESSAGE_FRAME):]
        return Dialogue(msgs, tools)

    def __iter__(self) -> Iterator[Dialogue]:
        while True:
            yield self.dialogue()


# ----------------------------------------------------------------------------------------------- eval sets
DEV_SEED = 123  # the shipped dev set is eval_cases(300, DEV_SEED); any n gives a prefix of it


def eval_cases(n: int = 300, seed: int = DEV_SEED, split: str = "dev") -> list[dict[str, Any]]:
    """Evaluation cases in the `eval-toolcalls` format, drawn from held-out phrasings and values."""
    g = DialogueGenerator(split=split, seed=seed)
    rng = g.rng
    cases = []
    for i in range(n):
        r = rng.random()
        msgs: list[dict[str, Any]] = []
        if r < 0.12:
            u, _ = g._text_reply(rng.choice(["greet", "thanks", "ood", "ood", "ood"]))
            msgs.append({"role": "user", "content": u})
            expected = None
        elif r < 0.22:  # second request in the same chat
            first = g._tool()
            g._tool_turn(msgs, first, 0, "")
            tool = g._tool()
            text, args = g.request(tool)
            msgs.append({"role": "user", "content": text})
            expected = {"name": tool, "arguments": args}
        else:
            tool = g._tool()
            text, args = g.request(tool)
            msgs.append({"role": "user", "content": text})
            expected = {"name": tool, "arguments": args}
        cases.append({"id": f"{split}-{i:04d}", "messages": msgs, "expected": expected})
    return cases


def template_regex(template: str, fills: dict[str, list[str]] | None = None) -> re.Pattern[str]:
    """Every text the generator can write from `template`, as a regex: slots are wildcards (or one of
    their `fills`), wrapped in the generator's optional openers and closers, any casing. Tests and the
    phrase bank's build use it to prove that no held-out text is a form training writes."""
    parts = _SLOT.split(template)
    body = "".join(
        ("(?:" + "|".join(re.escape(v) for v in fills[p[1:-1]]) + ")" if fills and p[1:-1] in fills else ".+?")
        if _SLOT.fullmatch(p) else re.escape(p) for p in parts)
    op = "|".join(re.escape(o) for o in OPENERS if o)
    cl = "|".join(re.escape(c) for c in CLOSERS if c)
    return re.compile(rf"(?:{op})?{body}(?:{cl})?", re.I)


__all__ = ["DialogueGenerator", "DialogueSampler", "Dialogue", "eval_cases", "synth_result", "answer_for",
           "template_regex", "write_jsonl", "TOOL_NAMES"]
