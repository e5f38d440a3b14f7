"""Intents of a request: which of the ten domain tools it needs, or none (introduced in notebook 04).

`keyword_intent` is the router's transparent fallback: the first keyword rule that matches names the tool.
"""

from __future__ import annotations

import re

NO_TOOL = "none"  # the intent of a request that needs no tool (greeting, thanks, out of scope)

# Transparent fallback rules: the first tool whose pattern matches wins (order matters: ids first).
KEYWORD_RULES: list[tuple[str, str]] = [
    ("run_diagnostics", r"\bsrv-\d+|\bdiagnos|\bhealth ?check|\bserver\b"),
    ("check_inventory", r"\bsku-[a-z0-9]+|\bin stock\b|\bstock\b|\binventory\b|\bunits\b"),
    ("escalate_to_human", r"\bhuman\b|\bperson\b|\bsomeone\b|\bagent\b|\bmanager\b|\bescalat|\btransfer\b|"
                          r"\bhand (me )?over\b|\bsupervisor\b|\bteam\b"),
    ("schedule_callback", r"\bcall(back| me| back)\b|\bring me\b|\bphone\b.*\b\d{1,2}([:h]\d\d)?\s*(am|pm)?\b|"
                          r"\breach me\b|\bcallback\b"),
    ("lookup_customer", r"\bc-\d{3,}"),
    ("lookup_order", r"\border\b|\bparcel\b|\bpackage\b|\bdeliver|\bshipp?|\btrack|\bpurchase\b|#\d{3,}"),
    ("get_weather", r"\bweather\b|\brain\b|\bsunny\b|\bforecast\b|\btemperature\b|\bskies\b|\bumbrella\b|"
                    r"\bconditions\b|\bwindy\b|\bcold\b|\bwarm\b"),
    ("calculate_circle_area", r"\bcircle\b|\bradius\b|\bdisc\b|\bdisk\b|\barea\b|\bround\b"),
    ("get_current_time", r"\btime\b|\bclock\b|\bhour\b|\bdate\b|\bwhat day\b"),
    ("create_ticket", r"\bticket\b|\bincident\b|\bbroken\b|\bnot working\b|\bwon'?t\b|\bcrash|\berror\b|"
                      r"\bhelp ?desk\b|\bissue\b|\bproblem\b|\bfreez|\bslow\b|\bjammed\b"),
]


def keyword_intent(text: str, rules: list[tuple[str, str]] | None = None) -> str:
    """The intent by keyword rules: the first matching tool, or NO_TOOL (notebook 04)."""
    low = text.lower()
    for tool, pattern in (rules if rules is not None else KEYWORD_RULES):
        if re.search(pattern, low):
            return tool
    return NO_TOOL
