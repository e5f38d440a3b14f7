"""Times of day as people say them, with the HH:MM a callback needs (introduced in notebook 01).

`half past four in the afternoon` is 16:30, `quarter to six pm` 17:45, `7 in the evening` 19:00, `midday`
12:00, `오후 3시 반` 15:30. A model that copies values must learn this one small conversion; the training
generator (`helpers.data.realistic_synth`) draws these forms, and every form names its half of the day, so
the answer is never a guess.
"""

from __future__ import annotations

import random

WORDS = ["twelve", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"]
MINUTE_WORDS = {5: "five", 10: "ten", 15: "quarter", 20: "twenty", 25: "twenty-five", 30: "half"}
_TENS = {20: "twenty", 30: "thirty", 40: "forty", 50: "fifty"}
_ONES = ["", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TEENS = {10: "ten", 11: "eleven", 12: "twelve", 13: "thirteen", 14: "fourteen", 15: "fifteen", 16: "sixteen",
          17: "seventeen", 18: "eighteen", 19: "nineteen"}


def minute_words(m: int) -> str:
    """`thirty`, `forty-five`, `oh five` (as said after the hour: `ten thirty`, `nine oh five`)."""
    if m < 10:
        return "oh " + _ONES[m]
    if m < 20:
        return _TEENS[m]
    tens, ones = divmod(m, 10)
    return _TENS[tens * 10] + ("-" + _ONES[ones] if ones else "")


def periods(h: int) -> list[str]:
    """Ways to name the half of the day of hour `h` (0-23) after a 12-hour time; empty if none is natural."""
    am = ["am", "a.m.", "AM", "in the morning"] if 5 <= h <= 11 else ["am", "a.m.", "AM"]
    if h < 12:
        out = list(am)
        if 5 <= h <= 11:
            out += ["this morning", "tomorrow morning"]
        if 0 < h <= 3:
            out += ["at night"]
        return out
    out = ["pm", "p.m.", "PM"]
    if 13 <= h <= 17:
        out += ["in the afternoon", "this afternoon", "tomorrow afternoon"]
    if 17 <= h <= 21:
        out += ["in the evening", "this evening", "tomorrow evening", "tonight"]
    if 20 <= h <= 23:
        out += ["at night", "tonight"]
    return out


def spoken_time(rng: random.Random) -> tuple[str, str]:
    """(a time as an English speaker says it, the same time as HH:MM)."""
    h = rng.randint(0, 23)
    m = rng.choice([0, 0, 0, 15, 30, 30, 45, 5, 10, 20, 25, 35, 40, 50, 55, rng.randint(1, 59)])
    canonical = f"{h:02d}:{m:02d}"
    if m == 0 and h == 12 and rng.random() < 0.6:
        return rng.choice(["noon", "midday", "12 noon", "twelve noon", "midday today"]), canonical
    if m == 0 and h == 0:
        return rng.choice(["midnight", "12 midnight"]), canonical
    h12 = h % 12 or 12
    word = rng.random() < 0.6
    hour = WORDS[h12] if word else str(h12)
    period = rng.choice(periods(h))
    forms: list[str] = [f"{h12}:{m:02d} {period}", f"{h12}:{m:02d}{'am' if h < 12 else 'pm'}",
                        (f"{hour} {minute_words(m)} {period}" if word else f"{h12}:{m:02d} {period}") if m
                        else f"{hour} {period}"]
    if m == 0:
        forms += [f"{hour} o'clock {period}", f"{h12} {period}", f"{h12}{'am' if h < 12 else 'pm'}"]
    if m == 30:
        forms += [f"half past {hour} {period}", f"half past {hour} {period}", f"{h12}.30 {period}"]
    if m in (5, 10, 15, 20, 25):
        forms += [f"{MINUTE_WORDS[m]} past {hour} {period}"] * 2
        if m == 15:
            forms += [f"a quarter past {hour} {period}"]
    if m in (35, 40, 45, 50, 55):
        nh = (h + 1) % 24
        n12 = nh % 12 or 12
        if n12 != 12:  # `quarter to twelve` leaves noon or midnight open
            nhour = WORDS[n12] if word else str(n12)
            before = MINUTE_WORDS[60 - m]
            forms += [f"{before} to {nhour} {rng.choice(periods(nh))}"] * 2
            if m == 45:
                forms += [f"a quarter to {nhour} {rng.choice(periods(nh))}"]
    return rng.choice(forms), canonical


# Korean: native numerals for the hour (세 시), Sino-Korean for minutes (삼십 분) or digits (3시 30분).
KO_HOURS = ["열두", "한", "두", "세", "네", "다섯", "여섯", "일곱", "여덟", "아홉", "열", "열한", "열두"]
_KO_DIGITS = ["", "일", "이", "삼", "사", "오", "육", "칠", "팔", "구"]


def ko_minutes(m: int) -> str:
    """Sino-Korean minutes: 15 -> 십오."""
    tens, ones = divmod(m, 10)
    return (("" if tens == 1 else _KO_DIGITS[tens]) + "십" if tens else "") + _KO_DIGITS[ones]


def ko_periods(h: int) -> list[str]:
    """Korean words for the part of the day of hour `h`."""
    if h < 12:
        out = ["오전"]
        out += ["아침"] if 6 <= h <= 10 else []
        out += ["새벽"] if 1 <= h <= 5 else []
        return out
    out = ["오후"]
    out += ["낮"] if 12 <= h <= 15 else []
    out += ["저녁"] if 17 <= h <= 21 else []
    out += ["밤"] if 20 <= h <= 23 else []
    return out


def korean_time(rng: random.Random) -> tuple[str, str]:
    """(a time as a Korean speaker writes it, the same time as HH:MM)."""
    h = rng.randint(0, 23)
    m = rng.choice([0, 0, 0, 30, 30, 15, 45, 10, 20, 40, 50, rng.randint(1, 59)])
    canonical = f"{h:02d}:{m:02d}"
    if m == 0 and h == 12 and rng.random() < 0.4:
        return rng.choice(["정오", "낮 12시", "점심 12시"]), canonical
    if m == 0 and h == 0 and rng.random() < 0.6:
        return rng.choice(["자정", "밤 12시"]), canonical
    if h >= 13 and rng.random() < 0.25:  # 24-hour: unambiguous on its own
        return (f"{h}시" + (f" {m}분" if m else "")), canonical
    h12 = h % 12 or 12
    space = rng.choice([" ", " ", ""])
    hour = f"{KO_HOURS[h12]}{space}시" if rng.random() < 0.3 else f"{h12}시"
    if m == 0:
        minutes = ""
    elif m == 30 and rng.random() < 0.5:
        minutes = " 반"
    elif rng.random() < 0.2:
        minutes = f" {ko_minutes(m)}분"
    else:
        minutes = f" {m}분"
    return f"{rng.choice(ko_periods(h))} {hour}{minutes}", canonical
