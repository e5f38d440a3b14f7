import math

import pytest

from helpers.data.synth import synth_result
from helpers.domain.tools import (RESULT_KEYS, TOOL_NAMES, Shop, ToolArgumentError, openai_tools, tool_specs,
                                  validate_arguments)


def test_catalog_has_the_ten_tools_in_order():
    assert [s.name for s in tool_specs()] == list(TOOL_NAMES)
    assert len(TOOL_NAMES) == 10


def test_schemas_come_from_signatures():
    specs = {s.name: s for s in tool_specs()}
    order = specs["lookup_order"].parameters
    assert order["required"] == ["order_id"]
    assert order["properties"]["order_id"]["pattern"] == "^[0-9]{3,8}$"
    ticket = specs["create_ticket"].parameters
    assert ticket["properties"]["priority"]["enum"] == ["low", "medium", "high"]
    assert ticket["required"] == ["issue"]
    assert specs["get_current_time"].parameters["properties"] == {}
    assert specs["calculate_circle_area"].parameters["properties"]["radius"]["type"] == "number"
    assert openai_tools(["get_weather"])[0]["function"]["name"] == "get_weather"
    with pytest.raises(KeyError, match="Unknown tool"):
        openai_tools(["no_such_tool"])


@pytest.mark.parametrize("name,args,expected", [
    ("lookup_order", {"order_id": "48213"}, {"order_id": "48213"}),
    ("lookup_customer", {"customer_id": "c-1234"}, {"customer_id": "C-1234"}),
    ("check_inventory", {"product_sku": "sku-ab12c"}, {"product_sku": "SKU-AB12C"}),
    ("run_diagnostics", {"system_id": "SRV-12"}, {"system_id": "srv-12"}),
    ("schedule_callback", {"customer_id": "C-9999", "preferred_time": "09:30"},
     {"customer_id": "C-9999", "preferred_time": "09:30"}),
    ("calculate_circle_area", {"radius": "2.5"}, {"radius": 2.5}),
])
def test_valid_arguments_are_normalised(name, args, expected):
    assert validate_arguments(name, args) == expected


@pytest.mark.parametrize("name,args,msg", [
    ("lookup_order", {"order_id": "#48213"}, "pattern"),
    ("lookup_order", {"order_id": "12"}, "pattern"),
    ("lookup_order", {}, "needs argument"),
    ("lookup_order", {"order_id": "123", "x": 1}, "takes"),
    ("schedule_callback", {"customer_id": "C-9999", "preferred_time": "25:00"}, "pattern"),
    ("create_ticket", {"issue": "x", "priority": "urgent"}, "invalid"),
    ("calculate_circle_area", {"radius": "big"}, "invalid"),
    ("nope", {}, "Unknown tool"),
])
def test_invalid_arguments_raise_clear_errors(name, args, msg):
    with pytest.raises(ToolArgumentError, match=msg):
        validate_arguments(name, args)


def test_shop_tools_do_real_lookups_and_writes(tmp_path):
    shop = Shop.create(tmp_path / "shop.sqlite", seed=1)
    row = shop.db.execute("SELECT order_id, status FROM orders LIMIT 1").fetchone()
    got = shop.lookup_order(row["order_id"])
    assert got["status"] == row["status"] and set(got) == set(RESULT_KEYS["lookup_order"])
    assert "error" in shop.lookup_order("99999999")
    t1 = shop.create_ticket("printer jammed", "high")
    t2 = shop.create_ticket("screen flickers")
    assert t1["ticket_id"] != t2["ticket_id"] and t2["priority"] == "medium"
    assert shop.db.execute("SELECT COUNT(*) FROM tickets").fetchone()[0] == 2
    assert math.isclose(shop.calculate_circle_area(2)["area"], round(math.pi * 4, 3))
    assert shop.get_weather("Paris") == shop.get_weather("paris ") | {"city": "Paris"}
    shop.close()
    with pytest.raises(FileNotFoundError, match="Shop.create"):
        Shop(tmp_path / "missing.sqlite")


def test_synthetic_results_have_the_real_tools_keys(tmp_path):
    import random

    shop = Shop.create(tmp_path / "shop.sqlite", seed=2)
    rng = random.Random(0)
    args = {"lookup_order": {"order_id": "10000"}, "lookup_customer": {"customer_id": "C-1000"},
            "check_inventory": {"product_sku": shop.db.execute("SELECT product_sku FROM products").fetchone()[0]},
            "get_weather": {"city": "Oslo"}, "schedule_callback": {"customer_id": "C-1000", "preferred_time": "10:00"},
            "run_diagnostics": {"system_id": "srv-100"}, "create_ticket": {"issue": "x", "priority": "low"},
            "calculate_circle_area": {"radius": 3}, "get_current_time": {},
            "escalate_to_human": {"customer_id": "C-1000", "reason": "billing"}}
    for name in TOOL_NAMES:
        real = getattr(shop, name)(**args[name])
        assert set(real) == set(RESULT_KEYS[name]), name
        for _ in range(20):
            fake = synth_result(name, args[name], rng)
            assert set(fake) in (set(RESULT_KEYS[name]), {"error"}), name


def test_one_argument_model_builds_schema_and_validates():
    from helpers.domain.tools import argument_model, check_arguments, schema_from_function

    model = argument_model(Shop.create_ticket)
    assert list(model.model_fields) == ["issue", "priority"]  # `self` skipped
    assert schema_from_function(Shop.create_ticket).parameters["required"] == ["issue"]
    assert check_arguments("create_ticket", model, {"issue": "x"}) == {"issue": "x", "priority": "medium"}
    assert check_arguments("create_ticket", model, {"issue": "x"}, with_defaults=False) == {"issue": "x"}
    with pytest.raises(ToolArgumentError, match="not an argument"):
        check_arguments("create_ticket", model, {"issue": "x", "urgency": 1})

    def f(*names: str) -> dict:
        """Varargs."""

    with pytest.raises(TypeError, match="name each argument"):
        schema_from_function(f)
