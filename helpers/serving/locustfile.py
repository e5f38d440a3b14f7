"""The Locust user of `python -m helpers loadtest` (run by Locust in a subprocess; never imported by notebooks).

Each request sends one prompt of the spec (in turn), reads the whole answer (streamed or not) and appends
one JSON line to the results file: what was sent, the status, the assembled answer and whether a stream
ended with `[DONE]`, with an error event, or with neither. The loadtest command compares the answers with
the reference answers afterwards. A global count bounds the requests; the last user to finish stops the run.
"""

import json
import os
import time

from locust import HttpUser, constant, task
from locust.exception import StopUser

with open(os.environ["EDGE_LOADTEST_SPEC"], encoding="utf-8") as _f:
    SPEC = json.load(_f)
KEY = os.environ.get("EDGE_LOADTEST_KEY", "")
OUT = open(SPEC["results"], "a", encoding="utf-8")  # noqa: SIM115 (open for the whole run; Locust ends the process)
STATE = {"sent": 0, "inflight": 0}


def _assemble_stream(resp):
    text, calls, done, error = "", {}, False, None
    for line in resp.iter_lines(decode_unicode=True):
        if not line or not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            done = True
            break
        chunk = json.loads(data)
        if chunk.get("error"):
            error = chunk["error"].get("code") or "error"
            break
        for ch in chunk.get("choices") or []:
            d = ch.get("delta") or {}
            text += d.get("content") or ""
            for tc in d.get("tool_calls") or []:
                slot = calls.setdefault(tc.get("index", 0), {"name": "", "arguments": ""})
                f = tc.get("function") or {}
                slot["name"] += f.get("name") or ""
                slot["arguments"] += f.get("arguments") or ""
    return {"content": text, "tool_calls": [calls[k] for k in sorted(calls)]}, done, error


class GatewayUser(HttpUser):
    wait_time = constant(0)

    @task
    def chat(self):
        if STATE["sent"] >= SPEC["max_requests"]:
            if STATE["inflight"] == 0:
                self.environment.runner.quit()
            raise StopUser()
        i = STATE["sent"]
        STATE["sent"] += 1
        STATE["inflight"] += 1
        prompt = SPEC["prompts"][i % len(SPEC["prompts"])]
        stream = i % 2 == 1
        body = {**prompt["request"], "stream": stream}
        row = {"i": i, "prompt": i % len(SPEC["prompts"]), "stream": stream, "status": None, "answer": None,
               "done": None, "error": None}
        OUT.write(json.dumps({"started": i}) + "\n")
        OUT.flush()
        t0 = time.perf_counter()
        row["t0"] = time.time()
        try:
            with self.client.post("/v1/chat/completions", json=body, stream=stream, catch_response=True,
                                  headers={"Authorization": f"Bearer {KEY}"}, name="chat-stream" if stream else "chat",
                                  timeout=SPEC["timeout_s"]) as resp:
                row["status"] = resp.status_code
                if resp.status_code == 200:
                    if stream:
                        row["answer"], row["done"], row["error"] = _assemble_stream(resp)
                    else:
                        msg = resp.json()["choices"][0]["message"]
                        row["answer"] = {"content": msg.get("content") or "",
                                         "tool_calls": [{"name": c["function"]["name"],
                                                         "arguments": c["function"]["arguments"]}
                                                        for c in msg.get("tool_calls") or []]}
                        row["done"] = True
                else:
                    try:
                        row["error"] = resp.json()["error"]["code"]
                    except (ValueError, KeyError, TypeError):
                        row["error"] = f"http_{resp.status_code}"
                if row["error"]:
                    resp.failure(row["error"])
                else:
                    resp.success()
        except Exception as exc:  # noqa: BLE001 (refused, reset, cut: whatever it was, the client saw no answer)
            row["error"] = type(exc).__name__
        finally:
            row["ms"] = round((time.perf_counter() - t0) * 1000, 2)
            row["t1"] = time.time()
            OUT.write(json.dumps(row) + "\n")
            OUT.flush()
            STATE["inflight"] -= 1
        if STATE["sent"] >= SPEC["max_requests"] and STATE["inflight"] == 0:
            self.environment.runner.quit()
