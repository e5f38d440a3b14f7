"""A short, bounded load for monitoring lessons (notebooks 19 and 20): N workers send requests for a fixed
time (and at most `max_requests`), to 127.0.0.1 only, and count what happened.

What one request is stays in the notebook (a function that raises on failure), so the lesson shows it.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """Requests sent, their latencies (successful ones) and errors by type."""

    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    errors: Counter = field(default_factory=Counter)

    @property
    def requests(self) -> int:
        return len(self.latencies) + sum(self.errors.values())

    @property
    def error_rate(self) -> float:
        return sum(self.errors.values()) / self.requests if self.requests else 0.0

    def line(self) -> str:
        errs = ", ".join(f"{k} {v}" for k, v in self.errors.most_common()) or "none"
        return (f"{self.requests} requests in {self.seconds:.1f} s ({self.requests / max(self.seconds, 1e-9):.1f}/s), "
                f"errors: {errs} ({self.error_rate:.1%})")


def run_load(request: Callable[[int], object], duration_s: float, concurrency: int = 1,
             max_requests: int = 10_000, on_tick: Callable[[LoadResult], None] | None = None,
             tick_s: float = 1.0) -> LoadResult:
    """Call `request(i)` from `concurrency` threads for `duration_s` seconds (at most `max_requests` calls).

    A call that raises counts as an error of its exception's type; `on_tick(result)` runs every `tick_s`
    seconds in the calling thread (a live dashboard refreshes there).
    """
    if concurrency < 1 or duration_s <= 0:
        raise ValueError("concurrency must be >= 1 and duration_s > 0")
    res = LoadResult()
    lock = threading.Lock()
    counter = iter(range(max_requests))
    t0 = time.perf_counter()
    deadline = t0 + duration_s

    def worker() -> None:
        while time.perf_counter() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            s = time.perf_counter()
            try:
                request(i)
            except Exception as exc:  # a failed request is data here, not a crash
                with lock:
                    res.errors[type(exc).__name__] += 1
            else:
                with lock:
                    res.latencies.append(time.perf_counter() - s)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        for t in threads:
            t.join(timeout=tick_s / max(len(threads), 1))
        res.seconds = time.perf_counter() - t0
        if on_tick is not None:
            with lock:
                on_tick(res)
    res.seconds = time.perf_counter() - t0
    return res
