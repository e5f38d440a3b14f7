"""Simulated tool results and the answers that state them, for training dialogues (introduced in notebook 01).

`synth_result` returns the same keys as the real `helpers.domain.tools.Shop` tools (a test checks the keys
agree); `answer_for` words a result with a template from data/text/synth_chat.txt (`[answers/<tool>]`).
"""

from __future__ import annotations

import math
import random
from typing import Any

from helpers.data.text_data import read_text_data
from helpers.domain.tools import CONDITIONS, FIRST_NAMES, LAST_NAMES, ORDER_STATUSES, PRODUCTS, TIERS, WAREHOUSES

ANSWERS: dict[str, list[str]] = read_text_data("synth_chat")["answers"]  # tool (or "error") -> templates

# ----------------------------------------------------------------------------------------------- results
def synth_result(tool: str, args: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """A tool result with the same keys as the real `Shop` tool would return."""
    if tool in ("lookup_order", "lookup_customer", "check_inventory", "run_diagnostics") and rng.random() < 0.1:
        key = {"lookup_order": "order", "lookup_customer": "customer", "check_inventory": "product",
               "run_diagnostics": "system"}[tool]
        return {"error": f"{key} {next(iter(args.values()))} not found"}
    if tool == "lookup_order":
        return {"order_id": args["order_id"], "status": rng.choice(ORDER_STATUSES),
                "eta": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}",
                "total": round(rng.uniform(5, 900), 2)}
    if tool == "lookup_customer":
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        return {"customer_id": args["customer_id"], "name": f"{first} {last}", "tier": rng.choice(TIERS),
                "email": f"{first}.{last}@example.com".lower()}
    if tool == "check_inventory":
        return {"product_sku": args["product_sku"].upper(), "product": rng.choice(PRODUCTS),
                "in_stock": rng.choice([0, 0, 2, 5, 12, 40, 150, 999, rng.randint(1, 500)]),
                "warehouse": rng.choice(WAREHOUSES)}
    if tool == "get_weather":
        return {"city": args["city"], "condition": rng.choice(CONDITIONS), "temp_c": rng.randint(-15, 40),
                "source": "simulated"}
    if tool == "schedule_callback":
        return {"callback_id": f"CB-{rng.randint(1001, 9999)}", "customer_id": args["customer_id"],
                "preferred_time": args["preferred_time"], "status": "scheduled"}
    if tool == "run_diagnostics":
        return {"system_id": args["system_id"], "status": rng.choice(("healthy", "degraded", "critical")),
                "cpu_pct": rng.randint(1, 99), "disk_free_pct": rng.randint(1, 95)}
    if tool == "create_ticket":
        return {"ticket_id": f"T-{rng.randint(1001, 9999)}", "priority": args["priority"], "status": "open"}
    if tool == "calculate_circle_area":
        return {"radius": args["radius"], "area": round(math.pi * float(args["radius"]) ** 2, 3)}
    if tool == "get_current_time":
        return {"time": f"{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}",
                "date": f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", "timezone": "UTC"}
    if tool == "escalate_to_human":
        return {"case_id": f"E-{rng.randint(2001, 9999)}", "customer_id": args["customer_id"], "status": "queued"}
    raise KeyError(tool)


def answer_for(tool: str, result: dict[str, Any], rng: random.Random) -> str:
    """The plain-text answer the model gives once a tool result is back; it states the result's facts."""
    if "error" in result:
        return rng.choice(ANSWERS["error"]).format(e=result["error"])
    r = result
    choices = ANSWERS[tool]
    return rng.choice(choices).format(**r)
