"""helpers.agents.router: intents, permissions, tiers, escalation signals, cost maths, and the router and
pipeline on the embedded runtime for a few requests (notebook 04)."""

import pytest

from helpers.agents import router as R
from helpers.agents.loop import AgentResult, Step
from helpers.domain.tools import TOOL_NAMES, Shop


def test_keyword_rules_and_mapping():
    assert R.keyword_intent("run diagnostics on srv-12") == "run_diagnostics"
    assert R.keyword_intent("is SKU-AB12 in stock?") == "check_inventory"
    assert R.keyword_intent("where is order 10037?") == "lookup_order"
    assert R.keyword_intent("tell me a joke") == R.NO_TOOL
    R.check_mapping(R.INTENT_TO_SPECIALIST)
    for tool in TOOL_NAMES:  # each tool belongs to exactly the specialist it maps to
        assert tool in R.SPECIALISTS[R.INTENT_TO_SPECIALIST[tool]].tools
    with pytest.raises(ValueError, match="no entry"):
        R.check_mapping({"lookup_order": "customer_service"})
    with pytest.raises(ValueError, match="Unknown specialist"):
        R.check_mapping({**R.INTENT_TO_SPECIALIST, "none": "nobody"})


def test_permissions_guard():
    g = R.Permissions(("check_inventory",), "retail_kiosk")
    assert g.check_call("check_inventory", {"product_sku": "SKU-ABC"}) is None
    reason = g.check_call("lookup_order", {"order_id": "123"})
    assert "retail_kiosk" in reason and "lookup_order" in reason


def test_workload_is_labelled_and_seeded():
    a, b = R.make_workload(40, seed=5), R.make_workload(40, seed=5)
    assert [i.text for i in a] == [i.text for i in b]
    intents = {i.intent for i in a}
    assert R.NO_TOOL in intents and len(intents & set(TOOL_NAMES)) >= 8
    with pytest.raises(ValueError):
        R.make_workload(0)


def test_select_tier():
    assert R.select_tier("what time is it", "get_current_time") == "lightweight"
    assert R.select_tier("where is order 123", "lookup_order") == "balanced"
    assert R.select_tier("open a ticket: vpn down", "create_ticket") == "capable"
    assert R.select_tier("word " * 30, "get_current_time") == "balanced"


def _result(steps, ok=True):
    return AgentResult(answer="x", ok=ok, error=None, steps=steps, runtime="embedded", model="m")


def test_failure_signals_and_policy():
    route = R.RouteDecision("where is order 123", "lookup_order", "customer_service", "slm")
    ran = Step("tool", {"name": "lookup_order", "arguments": {"order_id": "123"}, "ran": True, "result": {}})
    assert R.failure_signals(_result([ran]), route, confidence=0.9) == []
    assert R.failure_signals(_result([ran]), route, confidence=0.2) == ["low_confidence"]
    bad = Step("tool", {"name": "lookup_order", "arguments": {"order_id": "x"}, "ran": False,
                        "error_type": "bad_arguments"})
    sig = R.failure_signals(_result([bad], ok=False), route)
    assert {"schema", "no_tool", "failed"} <= set(sig)
    refused = Step("guard", {"name": "get_weather", "stage": "call", "reason": "not yours"})
    assert "not_permitted" in R.failure_signals(_result([refused]), route)
    policy = R.EscalationPolicy()
    assert policy.should_escalate(["schema"]) and not policy.should_escalate([])
    assert not R.EscalationPolicy(on=("schema",)).should_escalate(["low_confidence"])


def test_escalation_target_stays_local_without_opt_in():
    from helpers.runtimes.embedded import EmbeddedRuntime

    best = EmbeddedRuntime()
    t = R.escalation_target(best, env={})
    assert t.runtime is best and not t.remote and "Nothing leaves this machine" in t.note
    # a key alone is not an opt-in: nothing remote is chosen
    t = R.escalation_target(best, env={"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": "https://x.example/v1"})
    assert t.runtime is best and not t.remote and "OPENAI_API_KEY is set" in t.note
    # opting in without a key still stays local
    t = R.escalation_target(best, env={}, allow_remote=True)
    assert t.runtime is best and not t.remote
    # opt-in by parameter
    t = R.escalation_target(best, env={"OPENAI_API_KEY": "sk-test", "EDGEAI_ESCALATION_MODEL": "m1"},
                            allow_remote=True)
    assert t.remote and t.runtime.model == "m1" and t.runtime.base_url == "https://api.openai.com/v1"
    # opt-in by an explicit escalation URL
    t = R.escalation_target(best, env={"EDGEAI_ESCALATION_URL": "http://127.0.0.1:9/v1"})
    assert t.remote and t.runtime.base_url == "http://127.0.0.1:9/v1" and "EDGEAI_ESCALATION_URL" in t.note


def test_cost_maths():
    p = R.Prices(remote_input_per_m=2.0, remote_output_per_m=8.0, local_watts=36.0, usd_per_kwh=0.5)
    assert R.remote_cost(1_000_000, 500_000, p) == pytest.approx(2.0 + 4.0)
    assert R.local_cost(100.0, p) == pytest.approx(100 * 36 / 3.6e6 * 0.5)
    route = R.RouteDecision("t", "lookup_order", "customer_service", "slm")
    local = R.Handled("t", route, "balanced", [], False, "a", True, "e/m", [],
                      [R.Call("first", "e/m", False, 1000, 100, 10.0)], 10.0)
    esc = R.Handled("t", route, "balanced", ["schema"], True, "a", True, "openai/x", [],
                    [R.Call("first", "e/m", False, 1000, 100, 10.0),
                     R.Call("escalated", "openai/x", True, 2000, 200, 1.0)],
                    11.0)
    m = R.summarize([local, esc], p)
    assert m["local_share"] == 0.5 and m["escalated_share"] == 0.5
    want = 2 * R.local_cost(10.0, p) + R.remote_cost(2000, 200, p)
    assert m["cost_usd"] == pytest.approx(want)
    assert m["all_remote_usd"] == pytest.approx(2 * R.remote_cost(1000, 100, p))
    assert m["ratio"] == pytest.approx(m["all_remote_usd"] / want)
    with pytest.raises(ValueError):
        R.summarize([], p)


@pytest.fixture(scope="module")
def embedded():
    from helpers.runtimes.embedded import EmbeddedRuntime

    rt = EmbeddedRuntime()
    if not rt.availability().ok:
        pytest.skip(rt.availability().detail)
    yield rt
    rt.close()


def test_decision_walk_matches_greedy_chat(embedded):
    from helpers.domain.tools import openai_tools

    tools = openai_tools()
    for item in R.make_workload(6, seed=11):
        msgs = [{"role": "user", "content": item.text}]
        d = R.decision_confidence(embedded, msgs, tools)
        r = embedded.chat(msgs, tools, max_tokens=64)
        chat_intent = r.tool_calls[0].name if r.tool_calls else (
            next((t for t in TOOL_NAMES if f'"{t}"' in (r.raw or "")), R.NO_TOOL))
        assert d["intent"] == chat_intent, item.text
        assert 0.0 < d["confidence"] <= 1.0


def test_router_and_pipeline_on_embedded(embedded, tmp_path):
    router = R.IntentRouter(embedded, method="hybrid")
    dec = router.route("where is order 10037?")
    assert dec.intent in (*TOOL_NAMES, R.NO_TOOL) and dec.specialist in R.SPECIALISTS
    assert dec.answered_by.startswith("embedded/")
    shop = Shop.create(tmp_path / "shop.sqlite")
    tiers = {t: embedded for t in R.TIER_NAMES}
    pipe = R.HybridRouter(router, tiers, shop, R.escalation_target(embedded, env={}))
    for text in ("where is order 10037?", "hello"):
        h = pipe.handle(text)
        assert h.handled_locally and h.calls and h.calls[0].stage == "router"
        assert h.escalated == pipe.policy.should_escalate(h.signals)
        allowed = R.SPECIALISTS[h.route.specialist].tools
        assert all(c["name"] in allowed for c in h.tool_calls)  # permissions held
    shop.close()
