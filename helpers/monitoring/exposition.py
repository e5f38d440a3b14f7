"""Reading Prometheus exposition text: scrape a `/metrics` route, parse it with prometheus-client's parser,
and compute what PromQL computes from it (a counter's rate between two scrapes, `histogram_quantile`).

Introduced in notebook 19. The parsing is prometheus-client's (`text_string_to_metric_families`); what is
written here is the arithmetic a learner should be able to check by hand, mirrored from Prometheus's own
`histogram_quantile` (linear interpolation inside the bucket that holds the rank).
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from helpers.paths import DATA

RECORDED_VLLM = DATA / "recorded" / "vllm" / "metrics-docs.txt"  # registry name: recorded-vllm-metrics


class ScrapeError(RuntimeError):
    """A `/metrics` route could not be read; the message says what to check."""


class ExpositionError(ValueError):
    """Text that is not valid Prometheus exposition format; the message names the line."""


@dataclass(frozen=True)
class Sample:
    """One sample of a scrape: the series name (with `_bucket`/`_sum`/`_count`/`_total`), labels, value."""

    name: str
    labels: dict[str, str]
    value: float


def scrape(url: str, timeout: float = 2.0, headers: dict[str, str] | None = None) -> str:
    """GET a `/metrics` route and return its text; a clear ScrapeError when the target is down or refuses."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        hint = (" (llama-server serves /metrics only when started with --metrics)" if exc.code in (404, 501)
                else "")
        raise ScrapeError(f"{url} answered HTTP {exc.code}{hint}: check the route and the server's options.") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ScrapeError(f"nothing answers at {url} ({reason}): is the server running on that port?") from None


def parse(text: str) -> list[Sample]:
    """Every sample of an exposition text, parsed by prometheus-client; ExpositionError names the bad line."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        return [Sample(s.name, dict(s.labels), float(s.value))
                for fam in text_string_to_metric_families(text) for s in fam.samples]
    except Exception as exc:  # the parser raises ValueError, TypeError or IndexError on bad lines
        bad = _first_bad_line(text)
        where = f" at line {bad[0]}: {bad[1]!r}" if bad else ""
        raise ExpositionError(f"not Prometheus exposition text{where} ({type(exc).__name__}: {exc}); "
                              "each sample line is `name{label=\"value\"} number`.") from None


def _first_bad_line(text: str) -> tuple[int, str] | None:
    from prometheus_client.parser import text_string_to_metric_families

    for i, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            list(text_string_to_metric_families(line + "\n"))
        except Exception:
            return i, line[:120]
    return None


def families(text: str) -> dict[str, str]:
    """Family name -> type (counter, gauge, histogram, ...) of an exposition text."""
    from prometheus_client.parser import text_string_to_metric_families

    parse(text)  # raises a clear error first
    return {fam.name: fam.type for fam in text_string_to_metric_families(text)}


def select(samples: Iterable[Sample], name: str, **labels: str) -> list[Sample]:
    """The samples called `name` whose labels include `labels`."""
    return [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]


def value(samples: Iterable[Sample], name: str, **labels: str) -> float:
    """The sum of the matching samples (0.0 when none match), like PromQL `sum(name{...})`."""
    return float(sum(s.value for s in select(samples, name, **labels)))


def buckets(samples: Iterable[Sample], histogram: str, **labels: str) -> list[tuple[float, float]]:
    """Cumulative (upper bound, count) pairs of a histogram, summed over the other labels, sorted by bound."""
    acc: dict[float, float] = {}
    for s in select(samples, histogram + "_bucket", **labels):
        try:
            le = float(s.labels["le"])
        except (KeyError, ValueError):
            raise ExpositionError(f"{s.name} has le={s.labels.get('le')!r}: a bucket's upper bound must be a "
                                  "number or +Inf") from None
        acc[le] = acc.get(le, 0.0) + s.value
    return sorted(acc.items())


def histogram_quantile(q: float, cumulative: list[tuple[float, float]]) -> float:
    """Prometheus's `histogram_quantile`: the q-quantile from cumulative (le, count) buckets.

    The rank q * total falls in one bucket; the answer is interpolated linearly between that bucket's
    lower and upper bound (the lowest bucket starts at 0; a rank in the +Inf bucket returns the highest
    finite bound). NaN when there are no observations.
    """
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be between 0 and 1, got {q}")
    if not cumulative or cumulative[-1][0] != math.inf:
        raise ValueError("a histogram needs its +Inf bucket (le=\"+Inf\") to know the total count")
    total = cumulative[-1][1]
    if total <= 0:
        return math.nan
    rank = q * total
    lower, prev = 0.0, 0.0
    for le, count in cumulative:
        if count >= rank:
            if le == math.inf:
                return lower
            if count == prev:
                return le
            if le <= 0:  # Prometheus: a bucket with a non-positive upper bound returns that bound
                return le
            return lower + (le - lower) * (rank - prev) / (count - prev)
        lower, prev = le, count
    return lower


def delta(before: list[Sample], after: list[Sample]) -> list[Sample]:
    """after - before for every series in `after` (counters and histogram buckets between two scrapes)."""
    old = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in before}
    return [Sample(s.name, s.labels, s.value - old.get((s.name, tuple(sorted(s.labels.items()))), 0.0))
            for s in after]


def rate(before: list[Sample], after: list[Sample], seconds: float, name: str, **labels: str) -> float:
    """Per-second increase of a counter between two scrapes `seconds` apart (PromQL `rate`, without the
    extrapolation to the window's edges that Prometheus adds)."""
    if seconds <= 0:
        raise ValueError("the two scrapes must be a positive number of seconds apart")
    return (value(after, name, **labels) - value(before, name, **labels)) / seconds


def recorded_vllm_sample(path: Path = RECORDED_VLLM) -> str:
    """vLLM's `/metrics` excerpt as its documentation prints it (a recording, not a live server)."""
    return path.read_text(encoding="utf-8")
