"""Alerting rules as data: the workbook's rules live in `deploy/prometheus/alerts.yml` (notebook 20).

The thresholds are the course's (response time over 2 s, error rate over 5 %, memory over 85 %) plus
queue-based ones (`vllm:num_requests_waiting`, llama-server's `llamacpp:requests_deferred`, the workbook's
`edge_slm_requests_waiting`). `promtool check rules` and `promtool test rules` check them (tests/).

Production rules look at 5 minutes of data and wait minutes before firing. `fast_copy()` writes the same
rules with a shorter window and no waiting, so a notebook can show them fire within seconds of a load;
the expressions and thresholds are otherwise unchanged.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from helpers.paths import ROOT

RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RULE_TESTS = ROOT / "deploy" / "prometheus" / "alerts_test.yml"
GRAFANA_DASHBOARD = ROOT / "deploy" / "grafana" / "edge-slm-dashboard.json"


def load_rules(path: str | Path = RULES) -> list[dict[str, Any]]:
    """Every alerting rule of a rule file, with its group name; ValueError for a file that is not one."""
    import yaml

    try:
        doc = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("groups"), list):
        raise ValueError(f"{path}: a rule file is a mapping with a `groups:` list (see the Prometheus docs, "
                         "'Defining alerting rules')")
    rules = []
    for g in doc["groups"]:
        for r in g.get("rules") or []:
            if "alert" in r:
                rules.append({"group": g.get("name"), **r})
    return rules


def fast_copy(dst: str | Path, window: str = "15s", src: str | Path = RULES) -> Path:
    """The same rules with every range `[...]` set to `window` and `for:` set to 0s, written to `dst`."""
    import yaml

    doc = yaml.safe_load(Path(src).read_text(encoding="utf-8"))
    for g in doc["groups"]:
        g["interval"] = "1s"
        for r in g.get("rules") or []:
            r["expr"] = re.sub(r"\[\d+[smhd]\]", f"[{window}]", r["expr"])
            if "for" in r:
                r["for"] = "0s"
    dst = Path(dst)
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.write_text(yaml.safe_dump(doc, sort_keys=False))
    return dst


METRIC_NAME = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?:\{|\[|\)|$|\s|/|>|<|=|\*|\+|-)")
PROMQL_WORDS = {"sum", "by", "rate", "irate", "increase", "histogram_quantile", "avg", "max", "min", "count",
                "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "bool",
                "topk", "bottomk", "clamp_min", "clamp_max", "abs", "time", "vector", "scalar", "le",
                "offset", "avg_over_time", "max_over_time", "min_over_time", "label_replace", "absent"}


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (function names, keywords and labels left out)."""
    no_braces = re.sub(r"\{[^}]*\}", "{}", expr)
    no_by = re.sub(r"\b(by|without|on|ignoring)\s*\([^)]*\)", "", no_braces)
    names = {m.group(1) for m in METRIC_NAME.finditer(no_by + " ")}
    return {n for n in names if n not in PROMQL_WORDS and not re.fullmatch(r"[0-9.e]+", n)}


def series_name(name: str) -> str:
    """The family a series name belongs to (`x_bucket`, `x_sum`, `x_count` -> x; counters keep `_total`)."""
    return re.sub(r"_(bucket|sum|count)$", "", name)


def check_grafana_dashboard(path: str | Path, known_metrics: set[str]) -> list[str]:
    """Validate a Grafana dashboard JSON and that each panel query reads only `known_metrics` families.

    Returns one line per panel; raises ValueError naming the panel and the unknown metric otherwise.
    """
    import json

    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path} is not valid JSON: {exc}") from None
    panels = doc.get("panels")
    if not isinstance(panels, list) or not panels:
        raise ValueError(f"{path}: a dashboard needs a non-empty `panels` list")
    lines = []
    for p in panels:
        exprs = [t.get("expr", "") for t in p.get("targets", [])]
        if not exprs:
            raise ValueError(f"panel {p.get('title')!r} has no query (targets[].expr)")
        for e in exprs:
            for name in metric_names(e):
                if series_name(name) not in known_metrics and name not in known_metrics:
                    raise ValueError(f"panel {p.get('title')!r} queries {name!r}, which no scraped server "
                                     f"exposes; known: {', '.join(sorted(known_metrics)[:12])} ...")
        lines.append(f"{p.get('title')}: {'; '.join(exprs)}")
    return lines
