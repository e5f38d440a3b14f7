"""The checks of labs 21-23 pass the gateway's own code and fail wrong answers with a helpful message."""

from __future__ import annotations

import hmac
import math

import pytest

from helpers.labs import lab21, lab22, lab23
from helpers.serving.app import unguarded_routes
from helpers.serving.loadtest import classify


def good_key_check(token: str, keys: list[str]) -> bool:
    ok = False
    for k in keys:
        ok |= hmac.compare_digest(token.encode(), k.encode())
    return ok


def test_lab21_checks_pass_the_right_answers(capsys):
    lab21.check_key_check(good_key_check)
    lab21.check_status_for(lambda s: lab21.STATUS_TABLE[s])
    lab21.check_unguarded(unguarded_routes)
    assert capsys.readouterr().out.count("PASS") == 3


def test_lab21_checks_fail_wrong_answers_with_a_hint():
    with pytest.raises(AssertionError, match="EVERY key"):
        lab21.check_key_check(lambda t, keys: any(hmac.compare_digest(t.encode(), k.encode()) for k in keys))
    with pytest.raises(AssertionError, match="EVERY key"):
        lab21.check_key_check(lambda t, keys: t in keys)
    with pytest.raises(AssertionError, match="not a key"):
        lab21.check_key_check(lambda t, keys: [hmac.compare_digest(b"x", b"x") for _ in keys] and bool(t))
    table = dict(lab21.STATUS_TABLE, deadline_passed=(408, False))
    with pytest.raises(AssertionError, match="CLIENT was too slow"):
        lab21.check_status_for(lambda s: table[s])
    table = dict(lab21.STATUS_TABLE, queue_full=(503, False))
    with pytest.raises(AssertionError, match="Retry-After missing"):
        lab21.check_status_for(lambda s: table[s])

    def shallow(app):  # looks only one level deep
        from fastapi.routing import APIRoute
        return [r.path for r in app.routes if isinstance(r, APIRoute)
                and not any(d.call.__name__ == "require_key" for d in r.dependant.dependencies)]

    with pytest.raises(AssertionError, match="recursively"):
        lab21.check_unguarded(shallow)


def test_lab22_checks():
    lab22.check_classify(classify)
    with pytest.raises(AssertionError, match="silently cut"):
        lab22.check_classify(lambda row, ref: "ok" if row["status"] == 200 and row["answer"] == ref
                             else classify(row, ref) if row.get("done") or row.get("error") else "failed")
    with pytest.raises(AssertionError, match="an error event tells"):
        lab22.check_classify(lambda row, ref: "lost" if row["status"] == 200 and row["error"] else classify(row, ref))

    def rule(sent_first_byte, kind, status, remaining_s, next_wait_s):
        if sent_first_byte or remaining_s <= next_wait_s:
            return False
        return kind != "status" or status == 429 or status >= 500

    lab22.check_retry_rule(rule)
    with pytest.raises(AssertionError, match="after the first byte"):
        lab22.check_retry_rule(lambda sent_first_byte, **kw: rule(False, **kw))
    with pytest.raises(AssertionError, match="deadline"):
        lab22.check_retry_rule(lambda remaining_s, **kw: rule(remaining_s=10, **kw))
    lab22.check_account({"requests": 10, "ok": 7, "rejected": 2, "failed": 1, "lost": 0})
    with pytest.raises(AssertionError, match="counted twice or not at all"):
        lab22.check_account({"requests": 10, "ok": 7, "rejected": 2, "failed": 0, "lost": 0})
    with pytest.raises(AssertionError, match="1 accepted answers were lost"):
        lab22.check_account({"requests": 10, "ok": 7, "rejected": 2, "failed": 0, "lost": 1})


def test_lab23_checks():
    lab23.check_replicas(lab23.replicas_reference)
    with pytest.raises(AssertionError, match="round UP"):
        lab23.check_replicas(lambda u, r, rps, util: max(1, round(u * r / (rps * util))))
    with pytest.raises(AssertionError, match="round UP"):
        lab23.check_replicas(lambda u, r, rps, util: max(1, math.ceil(u * r / rps)))
    hpa = {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler", "metadata": {"name": "slm"},
           "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "slm"},
                    "minReplicas": 1, "maxReplicas": 4,
                    "metrics": [{"type": "External", "external": {
                        "metric": {"name": "edge_slm_requests_waiting"},
                        "target": {"type": "AverageValue", "averageValue": "4"}}}]}}
    lab23.check_hpa(hpa, "slm")
    cpu = {**hpa, "spec": {**hpa["spec"], "metrics": [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]}}
    with pytest.raises(AssertionError, match="wrong signal"):
        lab23.check_hpa(cpu, "slm")
    bad = {**hpa, "spec": {**hpa["spec"], "maxReplicas": "4"}}
    with pytest.raises(AssertionError, match="spec.maxReplicas"):
        lab23.check_hpa(bad, "slm")
