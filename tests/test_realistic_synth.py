"""The realistic training kinds of issue 21: spoken times, the generator's dialogues, the Hangul pieces,
and the rule that no held-out request or value is something training writes."""

import json
import random
import re

import pytest

from helpers.data.realistic_synth import KINDS, RealisticGenerator, korean_characters
from helpers.data.spoken import korean_time, spoken_time
from helpers.data.synth import template_regex
from helpers.data.text_data import read_text_data
from helpers.domain.tools import validate_arguments
from helpers.eval import load_cases
from helpers.paths import EVAL_DIR

# ------------------------------------------------------------------------------ an independent reading of times
_NUM = {w: i for i, w in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                                    "ten", "eleven", "twelve"])}
_MIN = {"five": 5, "ten": 10, "quarter": 15, "a quarter": 15, "twenty": 20, "twenty-five": 25, "half": 30}
_TENS = {"twenty": 20, "thirty": 30, "forty": 40, "fifty": 50}
_TEEN = {"ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15, "sixteen": 16,
         "seventeen": 17, "eighteen": 18, "nineteen": 19}
_AM = ("am", "a.m.", "in the morning", "this morning", "tomorrow morning")
_PM = ("pm", "p.m.", "in the afternoon", "this afternoon", "tomorrow afternoon", "in the evening", "this evening",
       "tomorrow evening", "tonight")


def _number(word: str) -> int:
    return int(word) if word.isdigit() else _NUM[word]


def _minutes(words: str) -> int:
    if words.startswith("oh "):
        return _NUM[words[3:]]
    if words in _TEEN:
        return _TEEN[words]
    tens, _, ones = words.partition("-")
    return _TENS[tens] + (_NUM[ones] if ones else 0)


def read_english_time(said: str) -> str:
    """HH:MM of a spoken English time, read without the generator's code."""
    s = said.lower()
    fixed = {"noon": "12:00", "midday": "12:00", "12 noon": "12:00", "twelve noon": "12:00", "midday today": "12:00",
             "midnight": "00:00", "12 midnight": "00:00"}
    if s in fixed:
        return fixed[s]
    period = next(p for p in sorted(_AM + _PM + ("at night",), key=len, reverse=True) if s.endswith(p))
    core = s[: -len(period)].strip()
    if m := re.fullmatch(r"(\d+)[:.](\d\d)", core):
        h, mi = int(m.group(1)), int(m.group(2))
    elif m := re.fullmatch(r"(a quarter|quarter|half|five|ten|twenty|twenty-five) past (\w+)", core):
        h, mi = _number(m.group(2)), _MIN[m.group(1)]
    elif m := re.fullmatch(r"(a quarter|quarter|five|ten|twenty|twenty-five) to (\w+)", core):
        h, mi = _number(m.group(2)) - 1, 60 - _MIN[m.group(1)]
    elif m := re.fullmatch(r"(\w+)(?: o'clock)?", core):
        h, mi = _number(m.group(1)), 0
    else:
        word, _, rest = core.partition(" ")
        h, mi = _number(word), _minutes(rest)
    h %= 12
    pm = period in _PM or (period == "at night" and h >= 7)
    return f"{h + 12 * pm:02d}:{mi:02d}"


_KO_NUM = {w: i for i, w in enumerate(["", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉", "열", "열한",
                                       "열두"])}
_KO_DIGIT = {"일": 1, "이": 2, "삼": 3, "사": 4, "오": 5, "육": 6, "칠": 7, "팔": 8, "구": 9}


def _ko_minutes(words: str) -> int:
    if words.isdigit():
        return int(words)
    tens, _, ones = words.partition("십")
    return (_KO_DIGIT.get(tens, 1)) * 10 + (_KO_DIGIT[ones] if ones else 0) if "십" in words else _KO_DIGIT[words]


def read_korean_time(said: str) -> str:
    fixed = {"정오": "12:00", "낮 12시": "12:00", "점심 12시": "12:00", "자정": "00:00", "밤 12시": "00:00"}
    if said in fixed:
        return fixed[said]
    m = re.fullmatch(r"(?:(오전|오후|아침|새벽|낮|저녁|밤) )?(\d+|[가-힣]+) ?시(?: (반)| (\S+)분)?", said)
    assert m, said
    part, hour, half, minutes = m.groups()
    h = int(hour) if hour.isdigit() else _KO_NUM[hour]
    mi = 30 if half else (_ko_minutes(minutes) if minutes else 0)
    if part in ("오후", "저녁", "밤") or (part == "낮" and h < 12 and h <= 5):
        h = h % 12 + 12
    elif part in ("오전", "아침", "새벽"):
        h %= 12
    return f"{h:02d}:{mi:02d}"


def test_spoken_english_times_mean_what_the_call_says():
    rng = random.Random(5)
    seen = set()
    for _ in range(4000):
        said, canonical = spoken_time(rng)
        assert read_english_time(said) == canonical, said
        seen.add(re.sub(r"\d+|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve", "N", said))
    assert len(seen) > 150  # many forms, not a handful


def test_spoken_korean_times_mean_what_the_call_says():
    rng = random.Random(6)
    for _ in range(4000):
        said, canonical = korean_time(rng)
        assert read_korean_time(said) == canonical, said


def test_the_reading_of_times_can_fail():
    assert read_english_time("quarter to six pm") == "17:45" != read_english_time("quarter to six am")
    assert read_korean_time("오후 3시 반") == "15:30" != read_korean_time("오전 3시 반")


# ------------------------------------------------------------------------------ dialogues
def _calls(messages):
    return [json.loads(c["function"]["arguments"]) | {"__name": c["function"]["name"]}
            for m in messages if m["role"] == "assistant" for c in m.get("tool_calls") or []]


def _users(msgs):
    return [m["content"] for m in msgs if m["role"] == "user"]


# what each kind's dialogue must look like (its last request, the call it makes)
_KIND_CHECKS = {
    "long_message": lambda msgs, calls: len(calls) >= 1 and any(st in _users(msgs)[-1] for st in _STORY),
    "distractor_numbers": lambda msgs, calls: any(  # a number or a second id beside the call's value
        n.lower() not in {str(v).lower() for v in calls[-1].values()}
        for n in re.findall(r"SKU-\w+|C-\d+|srv-\d+|\d+", _users(msgs)[-1], re.I)),
    "indirect": lambda msgs, calls: len(calls) >= 1,
    "no_request": lambda msgs, calls: len(calls) <= len(_users(msgs)) - 1 or calls,  # a note, or its twin
    "refers_back": lambda msgs, calls: len(_users(msgs)) >= 2 and len(calls) >= 1,
    "who_is": lambda msgs, calls: calls[-1]["__name"] == "lookup_customer",
    "korean": lambda msgs, calls: bool(re.search("[\uac00-\ud7a3\u3131-\u318e]", " ".join(_users(msgs)))),
    "spoken_time": lambda msgs, calls: calls[-1]["__name"] == "schedule_callback" and (
        _spoken_in(_users(msgs)[-1]) is None
        or calls[-1]["preferred_time"] == read_english_time(_spoken_in(_users(msgs)[-1]))),
}


_STORY = [t for part in ("before", "after") for t in read_text_data("synth_realistic")["story"][part]]


def _spoken_in(text):
    """The spoken time in a callback request, when it is a `... past/to ...` form with its half of the day."""
    periods = "|".join(re.escape(p) for p in sorted(_AM + _PM + ("at night",), key=len, reverse=True))
    m = re.search(r"((?:a )?(?:quarter|half|five|ten|twenty|twenty-five) (?:past|to) (?:\d+|[a-z]+) (?:%s))(?!\w)"
                  % periods, text.lower())
    return m.group(1) if m else None


def test_realistic_dialogues_are_valid_and_each_kind_looks_like_itself():
    g = RealisticGenerator(seed=11, realistic_share=1.0)
    spoken_checked = 0
    for kind in KINDS:
        for _ in range(200):
            msgs: list = []
            getattr(g, {"spoken_time": "spoken_time_turn", "korean": "korean_turn"}.get(kind, kind))(msgs)
            calls = _calls(msgs)
            for call in calls:
                validate_arguments(call["__name"], {k: v for k, v in call.items() if k != "__name"})
            assert _KIND_CHECKS[kind](msgs, calls), (kind, msgs)
            spoken_checked += kind == "spoken_time" and _spoken_in(_users(msgs)[-1]) is not None
            if kind == "refers_back" and calls:
                last = calls[-1]
                earlier = json.dumps([m["content"] for m in msgs[:-4]], ensure_ascii=False)
                value = next(v for k, v in last.items() if k in ("customer_id", "city", "order_id", "product_sku",
                                                                 "system_id"))
                assert str(value) in earlier, (value, msgs)  # the value the second request points back to
    assert spoken_checked >= 20  # `quarter to six pm` and its kind, read independently

def test_the_kind_checks_can_fail():
    one_call = [{"__name": "lookup_order", "order_id": "123"}]
    short = [{"role": "user", "content": "where is 123"}]
    assert not _KIND_CHECKS["long_message"](short, one_call)
    assert not _KIND_CHECKS["who_is"](short, one_call)
    assert not _KIND_CHECKS["korean"](short, one_call)
    assert not _KIND_CHECKS["distractor_numbers"](short, one_call)
    assert not _KIND_CHECKS["spoken_time"]([{"role": "user", "content": "call C-1234 at half past four pm"}],
                                           [{"__name": "schedule_callback", "preferred_time": "04:30"}])


def test_notes_with_nothing_asked_get_no_call_and_tickets_keep_their_priority():
    g = RealisticGenerator(seed=12, realistic_share=1.0)
    replies = set(read_text_data("synth_realistic")["no_request"]["reply"])
    notes = 0
    for _ in range(600):
        msgs: list = []
        g.no_request(msgs)
        if msgs[-1]["content"] in replies:
            notes += 1
            assert not _calls(msgs)
    assert notes > 300
    urgent = re.compile(r"급|urgent|asap|high priority|critical|emergency", re.I)
    for _ in range(400):
        msgs = []
        g.korean_turn(msgs)
        for m, call in zip([m for m in msgs if m["role"] == "user"], _calls(msgs)):
            if call["__name"] == "create_ticket":
                assert (call["priority"] == "high") == bool(urgent.search(m["content"])), m["content"]


def test_the_generator_is_seeded_and_keeps_the_base_dialogues():
    g1, g2 = RealisticGenerator(seed=3), RealisticGenerator(seed=3)
    assert [g1.dialogue().messages for _ in range(50)] == [g2.dialogue().messages for _ in range(50)]
    with pytest.raises(ValueError, match="training data only"):
        RealisticGenerator(split="dev")


# ------------------------------------------------------------------------------ held out stays held out
def _all_items(node):
    for v in node.values():
        yield from (v if isinstance(v, list) else _all_items(v))


def test_no_held_out_request_is_a_form_the_realistic_templates_write():
    en, ko = read_text_data("synth_realistic"), read_text_data("synth_korean")
    templates = [t for t in _all_items(en) if t not in en["no_request"]["reply"]]
    templates += [t for t in _all_items(ko["ko"]["templates"])] + ko["ko"]["no_request"]
    templates += [t for k in ("greet", "thanks", "ood") for t in ko["ko"]["no_tool"][k]]
    held = [m["content"] for f in ("dev.jsonl", "fresh.jsonl", "val.jsonl", "realistic.jsonl")
            for c in load_cases(EVAL_DIR / f) for m in c["messages"] if m["role"] == "user"]
    hits = [(t, h) for t in templates for rx in [template_regex(t)] for h in held if rx.fullmatch(h.strip())]
    assert not hits
    values = {str(v).casefold() for f in ("dev.jsonl", "fresh.jsonl", "val.jsonl", "realistic.jsonl")
              for c in load_cases(EVAL_DIR / f) if c["expected"] for v in c["expected"]["arguments"].values()}
    assert not values & {v.casefold() for v in ko["ko"]["cities"] + ko["ko"]["issues"] + ko["ko"]["reasons"]}


def test_the_held_out_check_catches_a_template_that_writes_a_held_out_request():
    case = load_cases(EVAL_DIR / "realistic.jsonl")[0]
    text = case["messages"][-1]["content"]
    cid = case["expected"]["arguments"]["customer_id"]
    assert template_regex(text.replace(cid, "{cid}")).fullmatch(text)


# ------------------------------------------------------------------------------ Hangul pieces
def test_hangul_pieces_are_single_tokens_and_old_ids_do_not_move(tmp_path, hf_tokenizer):
    import sentencepiece as spm

    from helpers.model.pipeline import extend_tokenizer
    from helpers.model.tokenizer import add_characters
    from helpers.paths import MODEL_DIR

    chars = korean_characters()
    assert 300 < len(chars) < 800
    # the shipped tokenizer already has them: nothing more to add
    assert extend_tokenizer(MODEL_DIR, chars, tmp_path / "again") == []
    sp = spm.SentencePieceProcessor(model_file=str(MODEL_DIR / "tokenizer.model"))
    for text in ["서울 날씨 어때요?", "오후 3시 반에 C-1234 전화", "주문 58213 확인 부탁", "where is order 12"]:
        ids = sp.encode(text)
        assert ids == hf_tokenizer(text, add_special_tokens=False)["input_ids"]
        assert sp.decode(ids) == text
    assert len(sp.encode("날씨")) == 2  # one piece a syllable, not three bytes
    before = sp.encode("Lisbon weather, order #123")
    out = tmp_path / "x.model"
    assert add_characters(MODEL_DIR / "tokenizer.model", ["뷁"], out) == ["뷁"]
    sp2 = spm.SentencePieceProcessor(model_file=str(out))
    assert sp2.encode("Lisbon weather, order #123") == before and len(sp2.encode("뷁")) == 1
    with pytest.raises(ValueError, match="single visible characters"):
        add_characters(MODEL_DIR / "tokenizer.model", ["서울"], out)


# ------------------------------------------------------------------------------ data processes
def test_data_processes_write_the_chunks_their_seeds_give(hf_tokenizer):
    from helpers.model import train as tr
    from helpers.paths import MODEL_DIR

    cfg = tr.TrainConfig(chunk_dialogues=6, workers=1, realistic_share=0.5, value_weight=5.0)
    chunks = tr._chunks(hf_tokenizer, None, cfg, str(MODEL_DIR), seed=9, copy_words=None)
    from_pool = [next(chunks), next(chunks)]
    chunks.close()
    tr._worker_init(str(MODEL_DIR), cfg, None)
    try:
        assert from_pool == [tr._worker_chunk(9 * 100003), tr._worker_chunk(9 * 100003 + 1)]
    finally:
        tr._WORKER.clear()
    assert from_pool[0] != from_pool[1]


def test_extend_tokenizer_command_reports_what_it_added(tmp_path, capsys):
    from helpers.cli import main
    from helpers.paths import MODEL_DIR

    assert main(["extend-tokenizer", "--from", str(MODEL_DIR), "--out", str(tmp_path / "tok")]) == 0
    assert "0 pieces added" in capsys.readouterr().out  # the shipped tokenizer has them all
    once = ["--min-count", "1"]
    assert main(["extend-tokenizer", "--from", str(MODEL_DIR), "--out", str(tmp_path / "tok1"), *once]) == 0
    out = capsys.readouterr().out
    added = int(out.split(": ")[1].split()[0])
    assert added > 0 and (tmp_path / "tok1" / "tokenizer.json").exists()  # syllables used once were not in it
