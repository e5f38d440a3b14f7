"""Training dialogues for requests written the way people really write them (issue 21; notebook 01).

The base generator (`helpers.data.synth`) writes short, clean requests. This one adds the kinds the model
failed on: times said in words, a story around the request, numbers besides the id, indirect requests,
ids mentioned with nothing asked, a second request that points back to an earlier turn, `who is` lookups,
and Korean or mixed Korean-English requests. Its templates were written by helper agents shown only the
tool contract (`data/text/synth_realistic.txt`, `data/text/synth_korean.txt`); the held-out set
`data/eval/realistic.jsonl` was written by another one, and no held-out request is a form these write
(`tests/test_realistic_synth.py`).

`RealisticGenerator(realistic_share=0.5)` draws half its dialogues from these kinds and half from the base
generator, so the old skills keep being trained.
"""

from __future__ import annotations

import random
import re
from typing import Any

from helpers.data.spoken import korean_time, spoken_time
from helpers.data.synth import (REPLY_GREET, REPLY_OOD, REPLY_THANKS, Dialogue, DialogueGenerator, Values,
                                 _call_message)
from helpers.data.text_data import read_text_data
from helpers.data.tool_results import answer_for, synth_result
from helpers.domain.chat_format import dump_json

_EN = read_text_data("synth_realistic")
_KO = read_text_data("synth_korean")["ko"]

# the kinds and their shares of the realistic dialogues
KINDS = {"long_message": 0.14, "distractor_numbers": 0.12, "indirect": 0.12, "no_request": 0.12,
         "refers_back": 0.14, "who_is": 0.06, "korean": 0.24, "spoken_time": 0.06}

_MONTHS = ["Jan", "March", "May", "June", "Sept", "Oct", "Nov", "Dec"]
_URGENT = re.compile(r"급|urgent|asap|high priority|critical|emergency", re.I)

# which id a no-request note or a near-twin names, and the tool a twin asks for
_NOTE_SLOT = {"order": "lookup_order", "customer": "lookup_customer", "sku": "check_inventory",
              "srv": "run_diagnostics", "city": "get_weather"}


def hangul_syllables() -> list[str]:
    """The 2,350 Hangul syllables of KS X 1001 (the common ones), in code point order."""
    out = []
    for cp in range(0xAC00, 0xD7A4):
        try:
            chr(cp).encode("euc-kr")
        except UnicodeEncodeError:
            continue
        out.append(chr(cp))
    return out


_SYLLABLES = hangul_syllables()


def korean_place(rng: random.Random) -> str:
    """An invented Korean place name (training only): two or three syllables, sometimes 시, 군, 구 or 동."""
    name = "".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(2, 3)))
    return name + rng.choice(["", "", "", "시", "군", "구", "동", "읍"])


def korean_characters(min_count: int = 2) -> list[str]:
    """The Hangul syllables the tokenizer gets pieces for: those used at least `min_count` times in the Korean
    training text (request words, common city syllables), plus the words of spoken Korean times; the rare
    rest stays three byte pieces each."""
    from collections import Counter

    from helpers.data.spoken import KO_HOURS
    from helpers.registry import artefact_path

    text = artefact_path("text-korean").read_text(encoding="utf-8")
    counts = Counter(ch for ch in text if "\uac00" <= ch <= "\ud7a3")
    common = sorted((c for c, n in counts.items() if n >= min_count), key=lambda c: (-counts[c], c))
    extra = "".join(KO_HOURS) + "오전후아침새벽낮저녁밤정자점심시분반십일이삼사오육칠팔구"
    return list(dict.fromkeys(common + [c for c in extra if c.strip()]))


class RealisticGenerator(DialogueGenerator):
    """The base generator plus the realistic kinds (`realistic_share` of all dialogues)."""

    def __init__(self, split: str = "train", seed: int = 123, copy_words: list[str] | None = None,
                 copy_share: float = 0.0, realistic_share: float = 0.5, spoken_share: float = 0.4) -> None:
        if split != "train":
            raise ValueError("RealisticGenerator writes training data only; held-out sets are in data/eval/")
        super().__init__(split, seed, copy_words, copy_share)
        self.realistic_share = realistic_share
        self.spoken_share = spoken_share
        self.korean = False  # while True, cities, times and free texts are drawn in Korean

    def _typo(self, word: str) -> str:
        if any("\uac00" <= ch <= "\ud7a3" for ch in word):  # no invented typos inside Hangul syllables
            return word
        return super()._typo(word)

    # values --------------------------------------------------------------------------------------------
    def clock(self) -> tuple[str, str]:
        if self.korean:
            return korean_time(self.rng) if self.rng.random() < 0.8 else super().clock()
        if self.rng.random() < self.spoken_share:
            return spoken_time(self.rng)
        return super().clock()

    def city(self) -> str:
        if self.korean and self.rng.random() < 0.8:
            return self.rng.choice(_KO["cities"]) if self.rng.random() < 0.6 else korean_place(self.rng)
        return super().city()

    def values(self, tool: str) -> Values:
        v = super().values(tool)
        if self.korean and tool in ("create_ticket", "escalate_to_human") and self.rng.random() < 0.75:
            key, pool = ("issue", "issues") if tool == "create_ticket" else ("reason", "reasons")
            v.slots[key] = self.rng.choice(_KO[pool])
            if tool == "create_ticket":
                v.arguments["issue"] = v.slots["issue"]
        return v

    def _distractors(self) -> dict[str, str]:
        rng = self.rng
        return {"n": str(rng.randint(1, 20)), "days": str(rng.randint(2, 21)),
                "price": rng.choice(["${:.2f}", "{:.2f} EUR", "£{:.0f}", "${:.0f}", "{:.0f} euros"]).format(
                    rng.uniform(3, 900)),
                "date": f"{rng.choice(_MONTHS)} {rng.randint(1, 28)}",
                "oid2": self.order_id(), "cid2": self.customer_id(), "sku2": self.sku(), "srv2": self.srv()}

    # turns ---------------------------------------------------------------------------------------------
    def _call_turn(self, msgs: list[dict[str, Any]], text: str, tool: str, args: dict[str, Any]) -> None:
        call_id = f"call_{sum(1 for m in msgs if m['role'] == 'tool')}"
        msgs.append({"role": "user", "content": text})
        msgs.append(_call_message(tool, args, call_id))
        result = synth_result(tool, args, self.rng)
        msgs.append({"role": "tool", "tool_call_id": call_id, "content": dump_json(result)})
        msgs.append({"role": "assistant", "content": answer_for(tool, result, self.rng)})

    def _templated(self, tool: str, templates: list[str], extra: dict[str, str] | None = None,
                   wrap: bool = True) -> tuple[str, dict[str, Any]]:
        """A request from one of `templates` with fresh values for `tool` (plus distractor slots)."""
        v = self.values(tool)
        template = self.rng.choice(templates)
        if tool == "create_ticket":
            v.arguments["priority"] = "high" if _URGENT.search(template) else "medium"
        if tool == "escalate_to_human":
            v.arguments["reason"] = v.slots["reason"]
        slots = {**(extra or {}), **v.slots}
        return self.fill(template, slots, wrap=wrap, urgent_ok=v.arguments.get("priority") == "high"), v.arguments

    def _note(self, kind: str) -> tuple[str, dict[str, Any]]:
        """A message that names an id and asks nothing: (text, the arguments a call about it would take)."""
        v = self.values(_NOTE_SLOT[kind])
        return self.fill(self.rng.choice(_EN["no_request"][kind]), v.slots), v.arguments

    # kinds ---------------------------------------------------------------------------------------------
    def long_message(self, msgs: list[dict[str, Any]]) -> None:
        rng = self.rng
        tool = self._tool()
        text, args = self.request(tool)
        # a ticket's story never states an urgency its priority does not have
        story = {part: [t for t in _EN["story"][part] if tool != "create_ticket" or not _URGENT.search(t)]
                 for part in ("before", "after")}
        before = " ".join(rng.sample(story["before"], rng.randint(1, 3)))
        after = " " + rng.choice(story["after"]) if rng.random() < 0.5 else ""
        if rng.random() < 0.15:  # the request first, the story after it
            text, before = text.rstrip(".") + ".", ""
            after = " " + " ".join(rng.sample(story["before"], rng.randint(1, 2))) + after
        self._call_turn(msgs, (before + " " + text).strip() + after, tool, args)

    def distractor_numbers(self, msgs: list[dict[str, Any]]) -> None:
        tool = self.rng.choice(sorted(_EN["distractor"]))
        text, args = self._templated(tool, _EN["distractor"][tool], self._distractors())
        self._call_turn(msgs, text, tool, args)

    def indirect(self, msgs: list[dict[str, Any]]) -> None:
        tool = self.rng.choice(sorted(_EN["indirect"]))
        text, args = self._templated(tool, _EN["indirect"][tool])
        self._call_turn(msgs, text, tool, args)

    def no_request(self, msgs: list[dict[str, Any]]) -> None:
        """A note with an id and no request (no call), or its near-twin that asks (a call)."""
        rng = self.rng
        kind = rng.choice(sorted(k for k in _EN["no_request"] if k != "reply"))
        if rng.random() < 0.3 and _NOTE_SLOT[kind] in _EN["twin"]:
            tool = _NOTE_SLOT[kind]
            text, args = self._templated(tool, _EN["twin"][tool])
            self._call_turn(msgs, text, tool, args)
            return
        text, _ = self._note(kind)
        msgs += [{"role": "user", "content": text},
                 {"role": "assistant", "content": rng.choice(_EN["no_request"]["reply"])}]

    def refers_back(self, msgs: list[dict[str, Any]]) -> None:
        """A first turn that names a customer, city, order, SKU or system; a second that points back to it."""
        rng = self.rng
        tool = rng.choice(sorted(_EN["refers"]))
        kind = {"schedule_callback": "customer", "escalate_to_human": "customer", "lookup_customer": "customer",
                "get_weather": "city", "lookup_order": "order", "check_inventory": "sku",
                "run_diagnostics": "srv"}[tool]
        if kind == "customer":
            first = rng.choice(["lookup_customer", "schedule_callback", "escalate_to_human", "note"])
            if first == tool:
                first = "note"
        else:
            first = rng.choice([_NOTE_SLOT[kind], "note"])
        if first == "note":
            text, args0 = self._note(kind)
            msgs += [{"role": "user", "content": text},
                     {"role": "assistant", "content": rng.choice(_EN["no_request"]["reply"])}]
        else:
            text, args0 = self.request(first)
            self._call_turn(msgs, text, first, args0)
        key = {"customer": "customer_id", "city": "city", "order": "order_id", "sku": "product_sku",
               "srv": "system_id"}[kind]
        v = self.values(tool)
        args = {**v.arguments, key: args0[key]}
        if tool == "escalate_to_human":
            args["reason"] = v.slots["reason"]
        text = self.fill(rng.choice(_EN["refers"][tool]), v.slots, wrap=rng.random() < 0.3)
        self._call_turn(msgs, text, tool, args)

    def who_is(self, msgs: list[dict[str, Any]]) -> None:
        text, args = self._templated("lookup_customer", _EN["who_is"])
        self._call_turn(msgs, text, "lookup_customer", args)

    def spoken_time_turn(self, msgs: list[dict[str, Any]]) -> None:
        saved, self.spoken_share = self.spoken_share, 1.0
        try:
            text, args = self.request("schedule_callback")
        finally:
            self.spoken_share = saved
        self._call_turn(msgs, text, "schedule_callback", args)

    def korean_turn(self, msgs: list[dict[str, Any]]) -> None:
        rng = self.rng
        self.korean = True
        try:
            r = rng.random()
            if r < 0.72:
                tool = self._tool()
                text, args = self._templated(tool, _KO["templates"][tool], self._distractors(),
                                             wrap=rng.random() < 0.3)
                self._call_turn(msgs, text, tool, args)
            elif r < 0.82:
                kind = rng.choice(["order", "customer"])
                v = self.values(_NOTE_SLOT[kind])
                notes = [t for t in _KO["no_request"] if ("{oid}" in t) == (kind == "order")]
                msgs += [{"role": "user", "content": self.fill(rng.choice(notes), v.slots, wrap=False)},
                         {"role": "assistant", "content": rng.choice(_KO["replies"]["no_request"])}]
            else:
                kind = rng.choice(["greet", "thanks", "ood", "ood"])
                said = rng.choice(_KO["no_tool"][kind])
                reply = rng.choice(_KO["replies"][kind] if rng.random() < 0.7 else
                                   {"greet": REPLY_GREET, "thanks": REPLY_THANKS, "ood": REPLY_OOD}[kind])
                msgs += [{"role": "user", "content": said}, {"role": "assistant", "content": reply}]
        finally:
            self.korean = False

    def dialogue(self) -> Dialogue:
        rng = self.rng
        if rng.random() >= self.realistic_share:
            return super().dialogue()
        msgs: list[dict[str, Any]] = []
        if rng.random() < 0.15:
            msgs.append({"role": "system", "content": rng.choice(_SYSTEM)})
        names = list(KINDS)
        kind = rng.choices(names, weights=[KINDS[k] for k in names])[0]
        if kind != "refers_back" and rng.random() < 0.2:  # an ordinary turn first: the kind comes second
            tool = self._tool()
            text, args = self.request(tool)
            self._call_turn(msgs, text, tool, args)
        getattr(self, {"spoken_time": "spoken_time_turn", "korean": "korean_turn"}.get(kind, kind))(msgs)
        return Dialogue(msgs, self.tools_all)


_SYSTEM = ["You are a helpful assistant for a shop and its IT desk.", "You are a customer service assistant."]
