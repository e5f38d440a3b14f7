"""Health as each runtime defines it, and the difference between alive and ready (notebook 18).

- liveness: the process answers at all (a TCP connection and an HTTP status of any kind);
- readiness: it can serve a request now (the model is loaded).

Each runtime spells this differently, so `HEALTH_ROUTES` records how, and `probe()` reads one:
llama.cpp's `llama-server` answers `GET /health` with 503 while it loads the model and 200 when ready;
Ollama has no health route, `GET /` answers 200 "Ollama is running"; vLLM answers `GET /health` 200 once
its engine runs; the workbook's own servers answer `GET /health`, and the llama-cpp-python server (which
has no health route) is ready when `GET /v1/models` lists a model. Foundry Local runs in-process here: its
health is the SDK's state, read through the runtime interface (`runtime_health`).
"""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class HealthRoute:
    """How one kind of server says it is ready: a path and what a ready answer looks like."""

    path: str
    ready_status: int = 200
    ready_text: str | None = None  # a ready answer must contain this (Ollama: "Ollama is running")
    note: str = ""


HEALTH_ROUTES: dict[str, HealthRoute] = {
    "llama-server": HealthRoute("/health", note="503 {\"error\": ... \"Loading model\"} while loading, 200 when ready"),
    "ollama": HealthRoute("/", ready_text="Ollama is running", note="no health route; GET / answers when up"),
    "vllm": HealthRoute("/health", note="200 once the engine runs; 503/connection refused otherwise"),
    "workbook": HealthRoute("/health", note="the workbook's servers (ServerMetrics beside /metrics)"),
    "openai-compatible": HealthRoute("/v1/models", note="no health route: ready when the model list answers"),
}


@dataclass
class Health:
    """One probe: alive (anything answered), ready (the ready answer came), what was seen, how long it took."""

    kind: str
    url: str
    live: bool
    ready: bool
    status: int | None
    detail: str
    seconds: float

    def line(self) -> str:
        """One line for a notebook table."""
        state = "ready" if self.ready else ("alive, not ready" if self.live else "down")
        code = self.status if self.status is not None else "-"
        return f"{self.kind:<18} {state:<17} HTTP {code:<4} {self.url}  ({self.detail})"


def probe(base_url: str, kind: str, timeout: float = 1.0) -> Health:
    """Probe a server the way its kind defines health; never raises for a down or refusing server."""
    if kind not in HEALTH_ROUTES:
        raise ValueError(f"unknown server kind {kind!r}; choose one of {', '.join(HEALTH_ROUTES)}")
    route = HEALTH_ROUTES[kind]
    url = base_url.rstrip("/") + route.path
    t0 = time.perf_counter()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            status, body = resp.status, resp.read(2000).decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:  # an HTTP answer: the process is alive
        body = exc.read(500).decode("utf-8", "replace") if exc.fp else ""
        return Health(kind, url, True, False, exc.code, _short(body) or exc.reason, time.perf_counter() - t0)
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return Health(kind, url, False, False, None, f"no answer: {reason}", time.perf_counter() - t0)
    ready = status == route.ready_status and (route.ready_text is None or route.ready_text in body)
    return Health(kind, url, True, ready, status, _short(body), time.perf_counter() - t0)


def _short(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 1] + "…"


def wait_ready(base_url: str, kind: str, timeout: float = 30.0, interval: float = 0.1) -> list[tuple[float, Health]]:
    """Probe until ready or `timeout`: (seconds since the first probe, probe) at every change of state, so a
    loading phase shows as alive-not-ready between down and ready."""
    seen: list[tuple[float, Health]] = []
    t0 = time.perf_counter()
    while True:
        h = probe(base_url, kind)
        now = time.perf_counter() - t0
        if not seen or (h.live, h.ready, h.status) != (seen[-1][1].live, seen[-1][1].ready, seen[-1][1].status):
            seen.append((now, h))
        if h.ready or now > timeout:
            return seen
        time.sleep(interval)


def runtime_health(runtime: Any) -> Health:
    """Health of an in-process runtime (embedded, Foundry Local): its own availability check, no HTTP."""
    t0 = time.perf_counter()
    av = runtime.availability()
    return Health(f"{av.name} (in-process)", "-", True, bool(av.ok), None,
                  _short(av.detail if av.ok else f"{av.detail}; {av.fix}", 90), time.perf_counter() - t0)
