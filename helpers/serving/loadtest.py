"""`python -m helpers loadtest`: Locust against a gateway on 127.0.0.1, and an account of every request (notebook 22).

First the reference: each prompt is sent once, one at a time, at temperature 0. Then Locust (headless, in a
subprocess, bounded in users, requests and seconds) sends the same prompts concurrently, half streamed. Every
request ends in exactly one bucket:

- ok: HTTP 200 and the answer equals the reference, whole;
- rejected: refused with a reason to come back later (429 rate limit, 503 queue full or no upstream);
- failed: any other refusal, or an explicit error (status 502/504, an error event in the stream, no answer);
- lost: HTTP 200 with no error, but the answer is missing, cut (no `[DONE]`) or differs from the reference.

`lost` is the silent failure a gateway exists to prevent: it must be 0. ok + rejected + failed + lost = sent.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from helpers.paths import BUILD, EVAL_DIR
from helpers.serving.settings import LOOPBACK

REJECTED_STATUSES = (429, 503)


def check_bounds(url: str, users: int, seconds: float, requests: int) -> None:
    """Load goes to this machine only, and is bounded; a clear error otherwise."""
    host = urlparse(url).hostname or ""
    if host not in LOOPBACK and not host.startswith("127."):
        raise ValueError(f"loadtest sends load to this machine only (127.0.0.1), not to {host!r}")
    if not 1 <= users <= 64:
        raise ValueError("--users must be from 1 to 64")
    if not 1 <= seconds <= 600:
        raise ValueError("--seconds must be from 1 to 600")
    if not 1 <= requests <= 5000:
        raise ValueError("--requests must be from 1 to 5000")


def prompts_from_dev(n: int, model: str, max_tokens: int = 64) -> list[dict[str, Any]]:
    """`n` requests from the dev set (the workbook's tools offered), temperature 0 and a fixed seed."""
    from helpers.domain.tools import openai_tools
    from helpers.eval import load_cases

    tools = openai_tools()
    cases = load_cases(EVAL_DIR / "dev.jsonl")[:n]
    return [{"id": c["id"], "request": {"model": model, "messages": c["messages"], "tools": tools,
                                        "temperature": 0, "seed": 123, "max_tokens": max_tokens}} for c in cases]


def canonical(message: dict[str, Any]) -> dict[str, Any]:
    """An assistant message reduced to what must match: its text and its tool calls (name, arguments)."""
    calls = [{"name": c["function"]["name"], "arguments": c["function"]["arguments"]}
             for c in message.get("tool_calls") or []]
    return {"content": message.get("content") or "", "tool_calls": calls}


def reference_answers(url: str, key: str, prompts: list[dict[str, Any]], timeout: float = 60.0) -> list[dict]:
    """Each prompt's answer, asked one at a time (the sequential reference the load is compared with)."""
    import httpx

    out = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout,
                      trust_env=False) as client:
        for p in prompts:
            for attempt in range(3):
                r = client.post("/v1/chat/completions", json={**p["request"], "stream": False})
                if r.status_code == 200:
                    out.append(canonical(r.json()["choices"][0]["message"]))
                    break
                time.sleep(float(r.headers.get("Retry-After", "1")))
            else:
                raise RuntimeError(f"no reference answer for {p['id']}: HTTP {r.status_code} {r.text[:200]}")
    return out


def first_model(url: str, key: str) -> str:
    import httpx

    r = httpx.get(url.rstrip("/") + "/v1/models", headers={"Authorization": f"Bearer {key}"}, timeout=10,
                  trust_env=False)
    if r.status_code != 200:
        raise RuntimeError(f"{url}/v1/models answered HTTP {r.status_code}: {r.text[:200]}")
    return r.json()["data"][0]["id"]


def classify(row: dict[str, Any], reference: dict[str, Any]) -> str:
    """The bucket of one request: ok, rejected, failed or lost (see the module's docstring)."""
    status = row.get("status")
    if status == 200:
        if row.get("error"):
            return "failed"  # an explicit error event: the client knows the answer is not whole
        if not row.get("done") or row.get("answer") != reference:
            return "lost"
        return "ok"
    if status in REJECTED_STATUSES:
        return "rejected"
    return "failed"


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100), linear between ranks; nan for no values."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[max(0, min(98, round(q) - 1))]


def summarize(rows: list[dict[str, Any]], started: int, references: list[dict[str, Any]],
              seconds: float) -> dict[str, Any]:
    """Counts per bucket, latency percentiles of accepted requests, throughput; `sent` = requests started."""
    counts = {"ok": 0, "rejected": 0, "failed": 0, "lost": 0}
    kinds: dict[str, int] = {}
    for r in rows:
        b = classify(r, references[r["prompt"]])
        counts[b] += 1
        r["bucket"] = b
        if b != "ok":
            kind = r.get("error") or (f"http_{r['status']}" if r.get("status") != 200 else "mismatch")
            kinds[f"{b}:{kind}"] = kinds.get(f"{b}:{kind}", 0) + 1
    unfinished = started - len(rows)  # started but never recorded: the client gave up (killed at the time limit)
    counts["failed"] += unfinished
    accepted_ms = sorted(r["ms"] for r in rows if r.get("status") == 200)
    # throughput over the window in which requests ran (first start to last end), not Locust's start-up
    window = (max(r["t1"] for r in rows) - min(r["t0"] for r in rows)) if rows and "t0" in rows[0] else seconds
    return {"requests": started, **counts, "p50_ms": percentile(accepted_ms, 50), "p95_ms": percentile(accepted_ms, 95),
            "seconds": seconds, "window_s": window, "ok_per_s": counts["ok"] / window if window else float("nan"),
            "why": kinds, "unfinished": unfinished}


def summary_line(s: dict[str, Any]) -> str:
    """The command's last line."""
    return (f"loadtest requests={s['requests']} ok={s['ok']} rejected={s['rejected']} failed={s['failed']} "
            f"lost={s['lost']} p50_ms={s['p50_ms']:.1f} p95_ms={s['p95_ms']:.1f}")


def run_loadtest(url: str, key: str, users: int, seconds: float, max_requests: int = 200, n_prompts: int = 8,
                 model: str | None = None, max_tokens: int = 64, prompts: list[dict[str, Any]] | None = None,
                 references: list[dict[str, Any]] | None = None, workdir: Path | None = None,
                 timeout_s: float = 60.0, during: Any = None) -> dict[str, Any]:
    """Reference answers (unless given), then Locust headless in a subprocess; returns the summary (notebook 22).

    `during(results_path)`, if given, runs in a thread while the load runs (notebook 22 kills an upstream from it
    once the first answers are in)."""
    url = url.rstrip("/")
    check_bounds(url, users, seconds, max_requests)
    model = model or first_model(url, key)
    prompts = prompts or prompts_from_dev(n_prompts, model, max_tokens)
    references = references or reference_answers(url, key, prompts)
    workdir = Path(workdir or BUILD / "loadtest" / f"run-{os.getpid()}-{time.time_ns()}")
    workdir.mkdir(parents=True, exist_ok=True)
    results = workdir / "results.jsonl"
    results.write_text("")
    spec = workdir / "spec.json"
    spec.write_text(json.dumps({"prompts": prompts, "max_requests": max_requests, "results": str(results),
                                "timeout_s": timeout_s}))
    cmd = [sys.executable, "-m", "locust", "-f", str(Path(__file__).with_name("locustfile.py")), "--headless",
           "-u", str(users), "-r", str(users), "-t", f"{int(max(1, seconds))}s", "--host", url, "--only-summary",
           "--stop-timeout", str(int(timeout_s)), "--loglevel", "ERROR", "--exit-code-on-error", "0",
           "--csv", str(workdir / "locust")]
    env = {**os.environ, "EDGE_LOADTEST_SPEC": str(spec), "EDGE_LOADTEST_KEY": key}
    t0 = time.perf_counter()
    side = None
    if during is not None:
        import threading

        side = threading.Thread(target=during, args=(results,), daemon=True)
        side.start()
    proc = subprocess.run(cmd, check=False, env=env, capture_output=True, text=True, timeout=seconds + timeout_s + 60)
    elapsed = time.perf_counter() - t0
    if side is not None:
        side.join(timeout=10)
    (workdir / "locust.log").write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"locust exited with {proc.returncode}: {(proc.stderr or proc.stdout)[-800:]}")
    lines = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
    started = sum(1 for x in lines if "started" in x)
    rows = [x for x in lines if "i" in x]
    summary = summarize(rows, started, references, elapsed)
    summary.update({"users": users, "rows": rows, "references": references, "workdir": str(workdir)})
    return summary


def loadtest_command(url: str, users: int, seconds: float, api_key_file: str, requests: int = 200,
                     prompts: int = 8, model: str | None = None, max_tokens: int = 64) -> int:
    """The `loadtest` command: prints the account and ends with the one summary line; 1 if anything was lost."""
    from helpers.serving.settings import read_key_file

    key = read_key_file(api_key_file).get_secret_value()
    check_bounds(url, users, seconds, requests)
    s = run_loadtest(url, key, users, seconds, requests, prompts, model, max_tokens)
    print(f"{s['users']} users, {s['window_s']:.1f} s of load, {s['ok_per_s']:.2f} whole answers/s; "
          f"not ok: {s['why'] or 'none'}")
    print(f"accepted+rejected+failed = {s['ok'] + s['lost'] + s['rejected'] + s['failed']} of {s['requests']} sent")
    print(summary_line(s))
    return 0 if s["lost"] == 0 else 1
