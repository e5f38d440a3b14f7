"""Faults behind the gateway, each with what the client sees and how many accepted answers were lost (0).

The upstream is `FakeUpstream`, a fault-injecting test double (scripted 500/429, hangs, drops, cut and
malformed streams, a kill); notebook 22 repeats the kill against the workbook's real server.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
from gateway_util import HEADERS, KEY, ask, body, fake_and_gateway, gateway, lost

from helpers.serving.fake_upstream import FakeUpstream


def _many(url: str, n: int, stream: bool | None = None, **kw) -> list[dict]:
    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda i: ask(url, stream=(i % 2 == 1) if stream is None else stream, **kw), range(n)))


def test_upstream_500_is_retried_before_the_first_byte_then_502():
    with fake_and_gateway(["status_500", "status_500"], attempts=3) as (up, url):
        seen = ask(url, stream=True)
        assert seen["status"] == 200 and seen["done"] and not lost(seen)
        assert seen["headers"]["x-edge-slm-attempts"] == "3" and up.faults_served[:3] == ["status_500"] * 2 + ["ok"]
        up.set_script(["status_500"] * 3)
        seen = ask(url)
        assert (seen["status"], seen["error"]) == (502, "bad_upstream"), "after the last attempt: 502, not a fake 200"


def test_malformed_json_is_retried_when_nothing_was_sent_and_an_error_event_after():
    with fake_and_gateway(["malformed"]) as (up, url):
        assert not lost(a := ask(url)) and a["status"] == 200 and a["headers"]["x-edge-slm-attempts"] == "2"
        up.set_script(["malformed"])
        assert not lost(b := ask(url, stream=True)) and b["done"] and b["headers"]["x-edge-slm-attempts"] == "2"
        up.set_script(["malformed_mid"])
        seen = ask(url, stream=True)
        assert seen["status"] == 200 and seen["error"] == "malformed" and not seen["done"] and not lost(seen)


@pytest.mark.parametrize("fault,code", [("stop_mid", "ended_early"), ("drop_mid", "broken")])
def test_a_stream_that_breaks_midway_ends_with_an_error_event_never_done(fault, code):
    # tokens 20 ms apart, as a model sends them: what came before the break reaches the client. (Bytes that
    # arrive in the same read as a dropped connection are not forwarded: aiohttp raises the error first.)
    with fake_and_gateway([fault], fake={"token_delay_s": 0.02}) as (up, url):
        seen = ask(url, stream=True)
        assert seen["status"] == 200 and seen["error"] == code and not seen["done"], seen
        assert seen["answer"] and not lost(seen), "the client got part of the answer AND knows it is cut"
        # what an OpenAI client sees: an exception, not a short answer
        up.set_script([fault])
        client = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        with pytest.raises(openai.APIError, match="cut"):
            for _ in client.chat.completions.create(model="fake-slm", stream=True,
                                                    messages=[{"role": "user", "content": "x y"}]):
                pass


def test_slow_or_hanging_upstream_meets_the_deadline_with_504():
    with fake_and_gateway(["hang", "slow"], fake={"latency_s": 0.2}, deadline_s=0.6) as (up, url):
        t0 = time.monotonic()
        seen = ask(url, stream=True)
        assert (seen["status"], seen["error"]) == (504, "deadline_exceeded")
        assert time.monotonic() - t0 < 3, "the deadline holds across retries (it is not paid once per attempt)"
        assert not lost(ask(url)), "a slow answer inside the deadline arrives whole"
        time.sleep(0.2)
        assert up.cancelled == 1, "the hanging upstream request was cancelled, not left running"


def test_stalled_stream_after_the_first_byte_ends_with_an_error_event():
    with fake_and_gateway(["drip"], read_gap_s=0.1) as (_, url):
        seen = ask(url, text="a b c d", stream=True)
        assert seen["status"] == 200 and seen["error"] == "stalled" and not lost(seen, "a b c d")


def test_first_upstream_down_second_up_fails_over_then_skips_the_dead_one():
    with FakeUpstream() as up, gateway(["http://127.0.0.1:9/v1", up.url]) as url:
        first = ask(url, stream=True)
        assert first["status"] == 200 and not lost(first) and first["headers"]["x-edge-slm-upstream"] == "1"
        again = ask(url)
        assert again["headers"]["x-edge-slm-attempts"] == "1", "the dead upstream waits out its cooldown"


def test_upstream_429_fails_over_to_the_next_upstream():
    with FakeUpstream(["status_429"]) as a, FakeUpstream() as b, gateway([a.url, b.url]) as url:
        seen = ask(url)
        assert seen["status"] == 200 and not lost(seen) and seen["headers"]["x-edge-slm-upstream"] == "1"


def test_upstream_killed_mid_load_loses_nothing():
    with FakeUpstream(token_delay_s=0.05) as a, FakeUpstream() as b, \
            gateway([a.url, b.url], concurrency=4, max_queue=16) as url:
        killer = threading.Timer(0.4, a.kill)
        killer.start()
        results = _many(url, 12, text="one two three four five six seven eight")
        killer.join()
    text = "one two three four five six seven eight"
    n_lost = sum(lost(r, text) for r in results)
    broken = [r for r in results if r["error"]]
    whole = [r for r in results if r["status"] == 200 and not r["error"]]
    assert n_lost == 0, f"{n_lost} accepted answers lost"
    assert len(whole) + len(broken) == 12 and whole, [r["status"] for r in results]
    assert all(r["error"] in ("broken", "bad_upstream", "no_upstream") for r in broken), broken
    assert all(r["status"] == 200 for r in broken if r["error"] == "broken"), "cut streams say so in-band"


def test_queue_full_is_503_with_retry_after_and_loses_nothing():
    with fake_and_gateway(fake={"latency_s": 0.0, "token_delay_s": 0.1}, concurrency=1, max_queue=2) as (_, url):
        results = _many(url, 6, stream=True, text="w1 w2 w3")
    full = [r for r in results if r["status"] == 503]
    assert len(full) == 3 and all(r["error"] == "queue_full" and int(r["headers"]["retry-after"]) >= 1 for r in full)
    assert sum(lost(r, "w1 w2 w3") for r in results) == 0
    assert sum(r["status"] == 200 and r["done"] for r in results) == 3, "1 running + 2 waiting were answered whole"


def test_a_burst_at_a_cold_gateway_asks_the_models_once_and_queues_only_real_requests():
    # the six arrive before anyone knows the model list; one discovery serves them all, so exactly one runs,
    # two wait and three are turned away (asked one by one, the discoveries held the only slot in turn)
    for _ in range(3):
        with fake_and_gateway(fake={"latency_s": 0.0, "token_delay_s": 0.1}, concurrency=1, max_queue=2) as (up, url):
            results = _many(url, 6, stream=True, text="w1 w2 w3")
        assert sorted(r["status"] for r in results) == [200, 200, 200, 503, 503, 503]
        assert up.models_asked == 1, f"{up.models_asked} model discoveries for one burst"


def test_rate_limit_per_key_is_429_with_retry_after():
    with fake_and_gateway(rate_limit="3/minute") as (_, url):
        results = [ask(url) for _ in range(5)]
        other = httpx.get(url + "/metrics", headers=HEADERS, trust_env=False)
    assert [r["status"] for r in results] == [200, 200, 200, 429, 429]
    assert 1 <= int(results[3]["headers"]["retry-after"]) <= 60 and results[3]["error"] == "rate_limited"
    assert other.status_code == 200, "the rate limit applies to the model routes"
    assert sum(lost(r) for r in results) == 0


def test_rate_limit_keeps_its_retry_after_and_is_per_key():
    """Retry-After is a promise: a client that waits that long is let in. Another key has a bucket of its own."""
    other_key = "other-key-0123456789abcdef"
    with fake_and_gateway(rate_limit="2/4 seconds", extra_keys=(other_key,)) as (_, url):  # room every 2 s
        first = [ask(url) for _ in range(3)]
        assert [r["status"] for r in first] == [200, 200, 429]
        other = ask(url, headers={"Authorization": f"Bearer {other_key}"})
        time.sleep(int(first[2]["headers"]["retry-after"]))
        again = ask(url)
    assert other["status"] == 200, "one key's full bucket does not refuse another key"
    assert again["status"] == 200, "waiting Retry-After seconds is enough"
    assert sum(lost(r) for r in [*first, other, again]) == 0


def test_client_disconnect_cancels_the_upstream_request():
    with fake_and_gateway(fake={"token_delay_s": 0.2}) as (up, url):
        with httpx.stream("POST", url + "/v1/chat/completions", headers=HEADERS, trust_env=False,
                          json={"model": "fake-slm", "stream": True,
                                "messages": [{"role": "user", "content": "a b c d e f g h i j"}]}) as r:
            next(r.iter_lines())  # the first event arrived; now the client leaves
        for _ in range(40):
            if up.cancelled:
                break
            time.sleep(0.05)
        assert up.cancelled == 1 and up.completed == 0, "the upstream stopped generating for a client who left"
        with fake_and_gateway(["hang"]) as (up2, url2):
            with pytest.raises(httpx.ReadTimeout):
                httpx.post(url2 + "/v1/chat/completions", headers=HEADERS, timeout=0.3, trust_env=False,
                           json={"model": "fake-slm", "messages": [{"role": "user", "content": "x"}]})
            for _ in range(40):
                if up2.cancelled:
                    break
                time.sleep(0.05)
            assert up2.cancelled == 1, "a non-streamed request is cancelled upstream too"


def test_a_client_that_leaves_the_queue_never_reaches_the_upstream():
    with fake_and_gateway(["slow"], fake={"latency_s": 1.0}, concurrency=1) as (up, url):
        first = threading.Thread(target=ask, args=(url,))
        first.start()
        time.sleep(0.2)  # the first request holds the only slot
        with pytest.raises(httpx.ReadTimeout):
            httpx.post(url + "/v1/chat/completions", headers=HEADERS, timeout=0.3, trust_env=False,
                       json={"model": "fake-slm", "stream": True, "messages": [{"role": "user", "content": "x"}]})
        first.join()
        time.sleep(0.1)
        assert up.requests == 1, "the queued request of a client who left was dropped, not sent"


def test_model_discovery_never_overlaps_a_running_request():
    # llama-cpp-python's server takes its interrupt lock even for GET /v1/models, which cuts a running stream
    # silently; at concurrency 1 the gateway asks /models only while it holds the one upstream slot
    with FakeUpstream(token_delay_s=0.03) as up, gateway([up.url], concurrency=1, models_ttl_s=0.0) as url:
        def staggered(i: int) -> dict:  # arrive while earlier answers are being streamed
            time.sleep(0.08 * i)
            return ask(url, stream=True, text="a b c d e f")

        with ThreadPoolExecutor(6) as pool:  # the model list is stale at once: every arrival refreshes it
            results = list(pool.map(staggered, range(6)))
    assert sum(lost(r, "a b c d e f") for r in results) == 0
    assert up.models_while_busy == 0, f"{up.models_while_busy} /models requests overlapped a running answer"


def test_a_stream_cancelled_before_its_first_step_still_frees_its_slot():
    """Starlette (ASGI 2.3, as uvicorn speaks it) races the body against the client's disconnect; a client gone at
    once can cancel the body before its first step, so the body's own `finally` never runs. The response's
    cleanup must run anyway: it is what frees the upstream slot."""
    import asyncio

    from starlette.responses import StreamingResponse

    from helpers.serving.call import with_cleanup

    body_started, cleaned = [], []

    async def body():
        body_started.append(True)
        yield b"data: x\n\n"

    async def cleanup():
        cleaned.append(True)

    async def receive():
        return {"type": "http.disconnect"}

    async def send(message):
        await asyncio.sleep(0)

    async def serve():
        answer = with_cleanup(StreamingResponse)(body(), media_type="text/event-stream")
        answer.cleanup = cleanup
        await answer({"type": "http", "asgi": {"spec_version": "2.3"}}, receive, send)

    asyncio.run(serve())
    assert cleaned == [True], "the cleanup ran exactly once"
    assert body_started == [], "this test did reach the case where the body never started"


def test_the_model_list_is_asked_within_the_request_deadline():
    # two upstreams that take the connection and never answer: asking each for its models takes its 2 s
    # timeout, longer than the request's 1 s deadline, which ends the request (504) on time
    import socket

    silent = [socket.socket() for _ in range(2)]
    for s in silent:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
    urls = [f"http://127.0.0.1:{s.getsockname()[1]}/v1" for s in silent]
    try:
        with FakeUpstream() as up, gateway([*urls, up.url], deadline_s=1.0) as url:
            t0 = time.monotonic()
            r = httpx.post(url + "/v1/chat/completions", headers=HEADERS, json=body(), timeout=10, trust_env=False)
            waited = time.monotonic() - t0
    finally:
        for s in silent:
            s.close()
    assert (r.status_code, r.json()["error"]["code"]) == (504, "deadline_exceeded"), r.text
    assert waited < 1.8, f"answered after {waited:.1f} s, past the 1 s deadline"
    assert up.requests == 0


def test_closing_the_pool_cancels_a_background_model_refresh():
    # an upstream that takes the connection and never answers: the background refresh of a stale model list is
    # still waiting when the gateway shuts down; it is cancelled, not left to fail later on a closed session
    # ("Task exception was never retrieved ... Session is closed", seen at the end of a test run)
    import asyncio
    import socket

    import aiohttp

    from helpers.serving.upstream import UpstreamPool

    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    url = f"http://127.0.0.1:{silent.getsockname()[1]}/v1"

    async def scenario() -> tuple[bool, list[dict]]:
        loop = asyncio.get_running_loop()
        unhandled: list[dict] = []
        loop.set_exception_handler(lambda _loop, ctx: unhandled.append(ctx))
        async with aiohttp.ClientSession() as client:
            pool = UpstreamPool([url], client, models_ttl_s=0.0)
            pool.upstreams[0].models = ["m"]  # known but stale: refreshed in the background
            assert "m" in await pool.refresh_models()
            await asyncio.sleep(0.05)
            refreshing = pool._refreshing
            assert refreshing is not None and not refreshing.done(), "the refresh is waiting on the silent upstream"
            await pool.aclose()
        return refreshing.cancelled(), unhandled

    try:
        cancelled, unhandled = asyncio.run(scenario())
    finally:
        silent.close()
    assert cancelled and not unhandled, unhandled
