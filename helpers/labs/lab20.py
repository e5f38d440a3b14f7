"""Auto-checks for lab 20 (alerts and dashboards): each `check_*` raises AssertionError with a hint, or prints
what passed. The learner's rule is run by promtool against fresh series; the learner's promtool test must
pass on the rule and FAIL on a rule whose threshold was changed (a test that cannot fail proves nothing).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from helpers.monitoring import prometheus as prom

ALERT = "EdgeSLMClientSlowP95"
METRIC = "gen_ai_client_operation_duration_seconds_bucket"


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def _rule(rule_yaml: str) -> dict[str, Any]:
    import yaml

    try:
        doc = yaml.safe_load(rule_yaml)
    except yaml.YAMLError as exc:
        raise AssertionError(f"the rule file is not valid YAML: {exc}") from None
    assert isinstance(doc, dict) and isinstance(doc.get("groups"), list), "a rule file starts with `groups:`, a list"
    rules = [r for g in doc["groups"] for r in (g.get("rules") or [])]
    match = [r for r in rules if r.get("alert") == ALERT]
    assert match, f"no rule with `alert: {ALERT}` (found {[r.get('alert') or r.get('record') for r in rules]})"
    r = match[0]
    assert METRIC in r.get("expr", ""), f"the expression should read {METRIC} (the client duration histogram)"
    assert "histogram_quantile(0.95" in r["expr"].replace(" ", ""), "use histogram_quantile(0.95, ...) for the p95"
    return r


def _series(model: str, slow: bool, n: int = 20) -> str:
    # cumulative buckets growing by 10 observations a minute, all below 0.01 s (fast) or in (0.64, 1.28] (slow)
    out = []
    for le in ("0.01", "0.64", "1.28", "+Inf"):
        step = 10 if (not slow or le in ("1.28", "+Inf")) else 0
        out.append(f"      - series: '{METRIC}{{gen_ai_request_model=\"{model}\",le=\"{le}\"}}'\n"
                   f"        values: '0+{step}x{n}'")
    return "\n".join(out)


def check_rule(rule_yaml: str, threshold_s: float, seed: int = 2020) -> None:
    """Lab 20, task 1: the learner's rule passes promtool and fires exactly for the slow model."""
    r = _rule(rule_yaml)
    assert 0.01 <= threshold_s < 1.0, (f"threshold {threshold_s} s: choose one between 0.01 s and 1 s (the check's "
                                       "fast model answers under 0.01 s, its slow one in about 1.2 s)")
    assert f"> {threshold_s:g}" in r["expr"] or f">{threshold_s:g}" in r["expr"], \
        f"compare the p95 with the threshold: `... > {threshold_s:g}`"
    if not prom.installed():
        print(f"SKIPPED the promtool part: {prom.INSTALL_HINT}")
        return
    tmp = Path(tempfile.mkdtemp(prefix="lab20-"))
    try:
        (tmp / "rules.yml").write_text(rule_yaml)
        try:
            prom.promtool_check_rules(tmp / "rules.yml")
        except prom.PromtoolError as exc:
            raise AssertionError(f"promtool rejects the rule file:\n{exc}") from None
        slow, fast = f"m{random.Random(seed).randint(100, 999)}", "fast"
        for_ = r.get("for", "0s")
        test = (f"rule_files:\n  - rules.yml\nevaluation_interval: 1m\ntests:\n  - interval: 1m\n    input_series:\n"
                f"{_series(slow, True)}\n{_series(fast, False)}\n    alert_rule_test:\n"
                f"      - eval_time: 15m\n        alertname: {ALERT}\n        exp_alerts:\n"
                f"          - exp_labels:\n              gen_ai_request_model: {slow}\n"
                + "".join(f"              {k}: {v}\n" for k, v in (r.get("labels") or {}).items())
                + ("            exp_annotations:\n" + "".join(f"              {k}: {_quote(v, slow)}\n"
                                                           for k, v in (r.get("annotations") or {}).items())
                   if r.get("annotations") else ""))
        (tmp / "test.yml").write_text(test)
        try:
            prom.promtool_test_rules(tmp / "test.yml")
        except prom.PromtoolError as exc:
            raise AssertionError(
                f"on fresh series (model {slow}: p95 ~1.2 s; model fast: p95 < 0.01 s), threshold {threshold_s} s, "
                f"for {for_}, promtool expected exactly one alert for {slow} after 15 minutes:\n{exc}\nGroup by "
                "(le, gen_ai_request_model) so the alert carries the model label; keep `for:` at most 5m; "
                "annotations may use {{ $labels.gen_ai_request_model }} but not {{ $value }}") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _ok(f"promtool accepts the rule, and it fires for the slow model only (threshold {threshold_s} s, for {for_})")


def _quote(text: str, model: str) -> str:
    rendered = str(text).replace("{{ $labels.gen_ai_request_model }}", model)
    return '"' + rendered.replace('"', '\\"') + '"'


def check_rule_test(rule_yaml: str, test_yaml: str) -> None:
    """Lab 20, task 2: the learner's promtool test passes on the rule and fails when the threshold changes."""
    _rule(rule_yaml)
    assert "alert_rule_test" in test_yaml and "rule_files" in test_yaml, \
        "a promtool test file has `rule_files:` and `tests:` with `input_series` and `alert_rule_test`"
    if not prom.installed():
        print(f"SKIPPED: {prom.INSTALL_HINT}")
        return
    import re

    tmp = Path(tempfile.mkdtemp(prefix="lab20-"))
    try:
        (tmp / "rules.yml").write_text(rule_yaml)
        (tmp / "test.yml").write_text(test_yaml)
        try:
            prom.promtool_test_rules(tmp / "test.yml")
        except prom.PromtoolError as exc:
            raise AssertionError(f"your test fails on your own rule (rule_files must name rules.yml):\n{exc}") from None
        mutated = re.sub(r">\s*([0-9.]+)", lambda m: f"> {float(m.group(1)) * 100:g}", rule_yaml, count=1)
        (tmp / "rules.yml").write_text(mutated)
        try:
            prom.promtool_test_rules(tmp / "test.yml")
        except prom.PromtoolError:
            pass
        else:
            raise AssertionError("your test still passes when the rule's threshold is 100 times higher: it never "
                                 "checks that the alert fires. Add an alert_rule_test with exp_alerts for a slow model")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _ok("your promtool test passes on the rule and fails on a rule with a 100x higher threshold")


def check_fired(alerts: list[dict[str, Any]], p95_seconds: float, threshold_s: float) -> None:
    """Lab 20, task 3: the alert fired in a real Prometheus on a real load whose p95 broke the threshold."""
    assert p95_seconds > threshold_s, (f"the measured p95 ({p95_seconds:.4f} s) is not above your threshold "
                                       f"({threshold_s} s): pick a threshold below it, or a heavier load")
    firing = [a for a in alerts if a.get("alertname") == ALERT and a.get("state") == "firing"]
    assert firing, f"{ALERT} is not firing (alerts: {[(a.get('alertname'), a.get('state')) for a in alerts]}); " \
                   "wait a few scrapes after the load, with for: 0s in the fast copy"
    _ok(f"{ALERT} fired on real data: p95 {p95_seconds * 1e3:.1f} ms > {threshold_s * 1e3:.1f} ms")
