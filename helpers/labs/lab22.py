"""Auto-checks for lab 22 (load and faults). Every check raises AssertionError with a hint, or prints `PASS: ...`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

REF = {"content": "", "tool_calls": [{"name": "get_current_time", "arguments": "{}"}]}
# (row, expected bucket, why) for the classifier of task 1
ROWS: list[tuple[dict[str, Any], str, str]] = [
    ({"status": 200, "answer": REF, "done": True, "error": None}, "ok", "a whole, correct answer"),
    ({"status": 200, "answer": {"content": "", "tool_calls": []}, "done": True, "error": None}, "lost",
     "200 with a different answer is lost: the client cannot know"),
    ({"status": 200, "answer": REF, "done": False, "error": None}, "lost",
     "200 without [DONE] and without an error event is a silently cut stream: lost"),
    ({"status": 200, "answer": {"content": "par", "tool_calls": []}, "done": False, "error": "broken"}, "failed",
     "an error event tells the client the answer is cut: failed, not lost"),
    ({"status": 200, "answer": None, "done": True, "error": None}, "lost", "200 with no answer at all is lost"),
    ({"status": 429, "answer": None, "done": None, "error": "rate_limited"}, "rejected", "429: come back later"),
    ({"status": 503, "answer": None, "done": None, "error": "queue_full"}, "rejected", "503 with Retry-After"),
    ({"status": 504, "answer": None, "done": None, "error": "deadline_exceeded"}, "failed", "504 is a failure"),
    ({"status": 502, "answer": None, "done": None, "error": "bad_upstream"}, "failed", "502 is a failure"),
    ({"status": None, "answer": None, "done": None, "error": "ConnectionError"}, "failed", "no answer at all"),
]


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def check_classify(fn: Callable[[dict[str, Any], dict[str, Any]], str]) -> None:
    """Lab 22, task 1: each request in exactly one bucket (ok, rejected, failed, lost)."""
    for row, want, why in ROWS:
        got = fn(dict(row), REF)
        assert got == want, f"{row} -> {got!r}, expected {want!r}: {why}"
    _ok(f"{len(ROWS)} requests classified as the load test does")


def check_retry_rule(fn: Callable[..., bool]) -> None:
    """Lab 22, task 2: retry only before the first byte, only what may succeed elsewhere, only within the deadline."""
    cases = [
        ({"sent_first_byte": False, "kind": "connect", "status": None, "remaining_s": 5, "next_wait_s": 0.1}, True,
         "a refused connection: the next upstream may answer"),
        ({"sent_first_byte": False, "kind": "status", "status": 500, "remaining_s": 5, "next_wait_s": 0.1}, True,
         "500: retry"),
        ({"sent_first_byte": False, "kind": "status", "status": 429, "remaining_s": 5, "next_wait_s": 0.1}, True,
         "an upstream's 429: another upstream may have room"),
        ({"sent_first_byte": False, "kind": "status", "status": 400, "remaining_s": 5, "next_wait_s": 0.1}, False,
         "400: the request itself is wrong; every upstream will say the same"),
        ({"sent_first_byte": False, "kind": "status", "status": 404, "remaining_s": 5, "next_wait_s": 0.1}, False,
         "404"),
        ({"sent_first_byte": False, "kind": "malformed", "status": None, "remaining_s": 5, "next_wait_s": 0.1}, True,
         "garbage before the first byte: nothing was sent, retry"),
        ({"sent_first_byte": True, "kind": "broken", "status": None, "remaining_s": 5, "next_wait_s": 0.1}, False,
         "after the first byte a retry would send a second answer after half of the first: end with an error event"),
        ({"sent_first_byte": True, "kind": "connect", "status": None, "remaining_s": 5, "next_wait_s": 0.1}, False,
         "after the first byte: never retry"),
        ({"sent_first_byte": False, "kind": "timeout", "status": None, "remaining_s": 0.05, "next_wait_s": 0.1}, False,
         "the backoff would end after the deadline: stop (the timeout is not paid again per attempt)"),
        ({"sent_first_byte": False, "kind": "timeout", "status": None, "remaining_s": 3, "next_wait_s": 0.1}, True,
         "a timeout with time left: retry elsewhere"),
    ]
    for kwargs, want, why in cases:
        got = fn(**kwargs)
        assert bool(got) == want, f"{kwargs} -> {got}, expected {want}: {why}"
    _ok(f"{len(cases)} retry decisions as the gateway makes them")


def check_account(summary: dict[str, Any]) -> None:
    """Lab 22, task 3: the load run's account closes (ok + rejected + failed + lost = sent) and lost is 0."""
    total = summary["ok"] + summary["rejected"] + summary["failed"] + summary["lost"]
    assert total == summary["requests"], (f"ok+rejected+failed+lost = {total} but {summary['requests']} were sent: "
                                          "a request was counted twice or not at all")
    assert summary["lost"] == 0, (f"{summary['lost']} accepted answers were lost (200 but cut or different): "
                                  "did the load bypass the gateway, or raise its concurrency above what the "
                                  "upstream survives?")
    _ok(f"{summary['requests']} sent = {summary['ok']} ok + {summary['rejected']} rejected + {summary['failed']} "
        f"failed + 0 lost")
