"""The agent domain: ten customer-service, retail and IT-support tools backed by a local SQLite shop.

Introduced in notebook 01 (meet the workbook's SLM) and used by every agent notebook. This module is the
single source of truth for the tool catalog: the training data, the chat template, the evaluation and
the agents all read tool names, argument formats and result shapes from here.
"""

from __future__ import annotations

import hashlib
import inspect
import math
from functools import lru_cache
import random
import sqlite3
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Callable, Literal, get_type_hints

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, create_model

# --- argument types: the formats are part of the contract ------------------------------------------
OrderId = Annotated[str, Field(pattern=r"^[0-9]{3,8}$", description="Order number: 3-8 digits, no '#'.")]
def _upper(v: Any) -> Any:
    return v.strip().upper() if isinstance(v, str) else v


def _lower(v: Any) -> Any:
    return v.strip().lower() if isinstance(v, str) else v


# Ids are case-insensitive for users ("c-1234", "sku-ab12"): validation normalises them first.
CustomerId = Annotated[str, Field(pattern=r"^C-[0-9]{4,6}$", description="Customer id: 'C-' then 4-6 digits."),
                       BeforeValidator(_upper)]
ProductSku = Annotated[
    str, Field(pattern=r"^SKU-[A-Z0-9]{3,6}$", description="Product SKU: 'SKU-' then 3-6 capitals or digits."),
    BeforeValidator(_upper)]
City = Annotated[str, Field(min_length=1, max_length=80, description="City name as the user wrote it.")]
ClockTime = Annotated[
    str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$", description="Time of day, 24-hour HH:MM.")
]
SystemId = Annotated[str, Field(pattern=r"^srv-[0-9]+$", description="System id: 'srv-' then digits."),
                     BeforeValidator(_lower)]
FreeText = Annotated[str, Field(min_length=1, max_length=300, description="Short free text.")]
Priority = Literal["low", "medium", "high"]
Radius = Annotated[float, Field(ge=0, description="Circle radius, a number.")]

ORDER_STATUSES = ("processing", "shipped", "in transit", "delivered", "cancelled", "on hold")
TIERS = ("bronze", "silver", "gold", "platinum")
CONDITIONS = ("sunny", "clear", "partly cloudy", "cloudy", "light rain", "rain", "thunderstorms", "snow",
              "fog", "windy", "drizzle", "sleet")
SYSTEM_STATUSES = ("healthy", "degraded", "critical")
PRODUCTS = ("USB-C cable", "wireless mouse", "mechanical keyboard", "27-inch monitor", "laptop stand",
            "noise-cancelling headphones", "webcam", "docking station", "phone case", "smart speaker",
            "HDMI adapter", "desk lamp", "office chair", "SSD 1TB", "router", "power bank")
WAREHOUSES = ("Lyon", "Rotterdam", "Leeds", "Porto", "Gdansk", "Tampere")
FIRST_NAMES = ("Ana", "Ben", "Chloe", "Dev", "Elif", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemi",
               "Liam", "Mina", "Noor", "Omar", "Priya", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera")
LAST_NAMES = ("Silva", "Okafor", "Novak", "Tanaka", "Haddad", "Jensen", "Garcia", "Kowalski", "Nguyen",
              "Rossi", "Schmidt", "Dubois", "Moreau", "Ivanova", "Lindqvist", "Mensah", "Costa")


class ToolArgumentError(ValueError):
    """A tool was called with arguments that fail its schema (introduced in notebook 01; the agent loop handles it)."""


@dataclass(frozen=True)
class ToolSpec:
    """One tool of the catalog: its name, description and the JSON schema of its arguments."""

    name: str
    description: str
    parameters: dict[str, Any]

    def openai(self) -> dict[str, Any]:
        """The OpenAI `tools` entry for this tool."""
        return {"type": "function",
                "function": {"name": self.name, "description": self.description, "parameters": self.parameters}}


def _stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


class Shop:
    """The local shop the tools read and write: a SQLite file built from a fixed seed.

    Introduced in notebook 01; the agent notebooks use it. `Shop.create(path)` builds a fresh
    database; `Shop(path)` opens an existing one. Each public tool method is a typed function whose JSON
    schema comes from its signature and docstring (see `tool_specs`).
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise FileNotFoundError(f"No shop database at {self.path}: build one with Shop.create({str(path)!r}).")
        self.db = sqlite3.connect(str(self.path))
        self.db.row_factory = sqlite3.Row

    # ------------------------------------------------------------------ building
    @classmethod
    def create(cls, path: str | Path, seed: int = 123, n_orders: int = 400, n_customers: int = 120,
               n_products: int = 60, n_systems: int = 40) -> "Shop":
        """Build a fresh shop database at `path` from `seed` (overwrites it)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()
        rng = random.Random(seed)
        db = sqlite3.connect(str(path))
        db.executescript(
            """
            CREATE TABLE customers (customer_id TEXT PRIMARY KEY, name TEXT, tier TEXT, email TEXT);
            CREATE TABLE orders (order_id TEXT PRIMARY KEY, customer_id TEXT, status TEXT, eta TEXT,
                                 total REAL);
            CREATE TABLE products (product_sku TEXT PRIMARY KEY, product TEXT, in_stock INTEGER,
                                   warehouse TEXT);
            CREATE TABLE systems (system_id TEXT PRIMARY KEY, status TEXT, cpu_pct INTEGER,
                                  disk_free_pct INTEGER);
            CREATE TABLE tickets (ticket_id TEXT PRIMARY KEY, issue TEXT, priority TEXT, status TEXT,
                                  created TEXT);
            CREATE TABLE callbacks (callback_id TEXT PRIMARY KEY, customer_id TEXT, preferred_time TEXT,
                                    status TEXT);
            CREATE TABLE escalations (case_id TEXT PRIMARY KEY, customer_id TEXT, reason TEXT, status TEXT);
            """
        )
        customers = []
        for i in range(n_customers):
            cid = f"C-{1000 + i * 7}"
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            customers.append(cid)
            db.execute("INSERT INTO customers VALUES (?,?,?,?)",
                       (cid, f"{first} {last}", rng.choice(TIERS), f"{first}.{last}@example.com".lower()))
        for i in range(n_orders):
            oid = str(10000 + i * 37)
            db.execute("INSERT INTO orders VALUES (?,?,?,?,?)",
                       (oid, rng.choice(customers), rng.choice(ORDER_STATUSES),
                        f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}", round(rng.uniform(5, 900), 2)))
        for i in range(n_products):
            sku = "SKU-" + "".join(rng.choice("ABCDEFGHJKLMNPQRSTUVWXYZ0123456789") for _ in range(rng.randint(3, 6)))
            db.execute("INSERT OR IGNORE INTO products VALUES (?,?,?,?)",
                       (sku, rng.choice(PRODUCTS), rng.choice([0, 0, 3, 12, 40, 150, 999]), rng.choice(WAREHOUSES)))
        for i in range(n_systems):
            status = rng.choice(SYSTEM_STATUSES)
            db.execute("INSERT INTO systems VALUES (?,?,?,?)",
                       (f"srv-{100 + i}", status, rng.randint(5, 99), rng.randint(1, 90)))
        db.commit()
        db.close()
        return cls(path)

    def close(self) -> None:
        """Close the database connection."""
        self.db.close()

    def _next_id(self, table: str, column: str, prefix: str, start: int) -> str:
        n = self.db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        return f"{prefix}{start + n}"

    def _row(self, sql: str, args: tuple[Any, ...]) -> dict[str, Any] | None:
        row = self.db.execute(sql, args).fetchone()
        return dict(row) if row is not None else None

    # ------------------------------------------------------------------ the tools
    def lookup_order(self, order_id: OrderId) -> dict[str, Any]:
        """Look up an order's status, expected delivery date and total."""
        row = self._row("SELECT order_id, status, eta, total FROM orders WHERE order_id = ?", (order_id,))
        return row if row is not None else {"error": f"order {order_id} not found"}

    def lookup_customer(self, customer_id: CustomerId) -> dict[str, Any]:
        """Look up a customer's name, loyalty tier and email address."""
        row = self._row("SELECT customer_id, name, tier, email FROM customers WHERE customer_id = ?",
                        (customer_id.upper(),))
        return row if row is not None else {"error": f"customer {customer_id} not found"}

    def check_inventory(self, product_sku: ProductSku) -> dict[str, Any]:
        """Check how many units of a product are in stock and in which warehouse."""
        row = self._row("SELECT product_sku, product, in_stock, warehouse FROM products WHERE product_sku = ?",
                        (product_sku.upper(),))
        return row if row is not None else {"error": f"product {product_sku} not found"}

    def get_weather(self, city: City) -> dict[str, Any]:
        """Get the current weather for a city (simulated offline: deterministic per city name)."""
        h = _stable_int(city.strip().lower())
        return {"city": city, "condition": CONDITIONS[h % len(CONDITIONS)], "temp_c": int(h % 41) - 8,
                "source": "simulated"}

    def schedule_callback(self, customer_id: CustomerId, preferred_time: ClockTime) -> dict[str, Any]:
        """Schedule a phone callback for a customer at a preferred time of day."""
        cb = self._next_id("callbacks", "callback_id", "CB-", 1001)
        self.db.execute("INSERT INTO callbacks VALUES (?,?,?,?)", (cb, customer_id, preferred_time, "scheduled"))
        self.db.commit()
        return {"callback_id": cb, "customer_id": customer_id, "preferred_time": preferred_time,
                "status": "scheduled"}

    def run_diagnostics(self, system_id: SystemId) -> dict[str, Any]:
        """Run diagnostics on a server and report its health, CPU load and free disk space."""
        row = self._row("SELECT system_id, status, cpu_pct, disk_free_pct FROM systems WHERE system_id = ?",
                        (system_id.lower(),))
        return row if row is not None else {"error": f"system {system_id} not found"}

    def create_ticket(self, issue: FreeText, priority: Priority = "medium") -> dict[str, Any]:
        """Open a support ticket for an issue with a priority of low, medium or high."""
        tid = self._next_id("tickets", "ticket_id", "T-", 1001)
        self.db.execute("INSERT INTO tickets VALUES (?,?,?,?,?)",
                        (tid, issue, priority, "open", datetime.now(timezone.utc).isoformat(timespec="seconds")))
        self.db.commit()
        return {"ticket_id": tid, "priority": priority, "status": "open"}

    def calculate_circle_area(self, radius: Radius) -> dict[str, Any]:
        """Calculate the area of a circle from its radius."""
        return {"radius": radius, "area": round(math.pi * float(radius) ** 2, 3)}

    def get_current_time(self) -> dict[str, Any]:
        """Get the current date and time (UTC)."""
        now = datetime.now(timezone.utc)
        return {"time": now.strftime("%H:%M"), "date": now.strftime("%Y-%m-%d"), "timezone": "UTC"}

    def escalate_to_human(self, customer_id: CustomerId, reason: FreeText) -> dict[str, Any]:
        """Hand the conversation to a human agent, with the customer id and the reason."""
        case = self._next_id("escalations", "case_id", "E-", 2001)
        self.db.execute("INSERT INTO escalations VALUES (?,?,?,?)", (case, customer_id, reason, "queued"))
        self.db.commit()
        return {"case_id": case, "customer_id": customer_id, "status": "queued"}


TOOL_NAMES: tuple[str, ...] = (
    "lookup_order", "lookup_customer", "check_inventory", "get_weather", "schedule_callback",
    "run_diagnostics", "create_ticket", "calculate_circle_area", "get_current_time", "escalate_to_human",
)

# What each tool's successful result holds (the synthetic training data must use the same keys).
RESULT_KEYS: dict[str, tuple[str, ...]] = {
    "lookup_order": ("order_id", "status", "eta", "total"),
    "lookup_customer": ("customer_id", "name", "tier", "email"),
    "check_inventory": ("product_sku", "product", "in_stock", "warehouse"),
    "get_weather": ("city", "condition", "temp_c", "source"),
    "schedule_callback": ("callback_id", "customer_id", "preferred_time", "status"),
    "run_diagnostics": ("system_id", "status", "cpu_pct", "disk_free_pct"),
    "create_ticket": ("ticket_id", "priority", "status"),
    "calculate_circle_area": ("radius", "area"),
    "get_current_time": ("time", "date", "timezone"),
    "escalate_to_human": ("case_id", "customer_id", "status"),
}


def argument_model(fn: Callable[..., Any]) -> type[BaseModel]:
    """The pydantic model of a typed function's parameters, forbidding unknown arguments (notebook 01).

    The one place that turns a signature into fields: `schema_from_function` derives the JSON schema from
    it, and `check_arguments` (used by `validate_arguments` and `helpers.agents.toolbox`) validates with it.
    """
    sig = inspect.signature(fn)
    hints = get_type_hints(fn, include_extras=True)
    fields: dict[str, Any] = {}
    for name, param in sig.parameters.items():
        if name == "self":
            continue
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise TypeError(f"{fn.__name__}: *args/**kwargs cannot become a JSON schema; name each argument.")
        if name not in hints:
            raise TypeError(f"{fn.__name__}: parameter {name!r} has no type annotation; annotate it.")
        default = ... if param.default is inspect.Parameter.empty else param.default
        fields[name] = (hints[name], default)
    return create_model(f"{fn.__name__}_args", __config__=ConfigDict(extra="forbid"), **fields)


def schema_from_function(fn: Callable[..., Any]) -> ToolSpec:
    """Derive a tool's JSON schema from a typed function's signature and docstring (notebook 01)."""
    schema = argument_model(fn).model_json_schema()
    schema.pop("title", None)
    for prop in schema.get("properties", {}).values():
        prop.pop("title", None)
    schema["additionalProperties"] = False
    doc = inspect.getdoc(fn) or fn.__name__
    return ToolSpec(name=fn.__name__, description=doc.splitlines()[0], parameters=schema)


def tool_specs() -> list[ToolSpec]:
    """The ten tools of the domain, in catalog order, with schemas derived from `Shop`'s signatures."""
    return [schema_from_function(getattr(Shop, name)) for name in TOOL_NAMES]


def openai_tools(names: list[str] | tuple[str, ...] | None = None) -> list[dict[str, Any]]:
    """The catalog as an OpenAI `tools` list (all tools, or those named)."""
    specs = tool_specs()
    if names is not None:
        unknown = set(names) - set(TOOL_NAMES)
        if unknown:
            raise KeyError(f"Unknown tool(s) {sorted(unknown)}; the catalog has {list(TOOL_NAMES)}.")
        specs = [s for s in specs if s.name in names]
    return [s.openai() for s in specs]


def jsonschema_module():
    """`jsonschema`, imported without its optional `rfc3987_syntax` format checker (introduced in notebook 03).

    jupyter-events installs jsonschema's format extras, and `rfc3987_syntax` builds dozens of Lark grammars when
    jsonschema imports it: about 5 s on a busy 2-core machine, paid by every process at its first tool-call check.
    The workbook's schemas use no `iri` formats, and `jsonschema.validate` checks no formats by default, so
    blocking that one optional import changes no result."""
    import sys

    if "jsonschema" not in sys.modules:
        sys.modules.setdefault("rfc3987_syntax", None)  # jsonschema imports it under `suppress(ImportError)`
    import jsonschema

    return jsonschema


def check_arguments(name: str, model: type[BaseModel], arguments: Any, *, with_defaults: bool = True,
                    schema: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate `arguments` with tool `name`'s argument model (from `argument_model`); return the coerced values.

    Raises ToolArgumentError saying what is wrong (unknown, missing or invalid arguments). `with_defaults=False`
    returns only the arguments given. With `schema`, the coerced values must also pass that JSON schema
    (what the model was shown is what is enforced). Introduced in notebook 01; the agents use it (notebook 03).
    """
    if not isinstance(arguments, dict):
        raise ToolArgumentError(f"Arguments for {name} must be a JSON object, got {type(arguments).__name__}.")
    allowed = list(model.model_fields)
    try:
        values = model.model_validate(arguments)
    except ValidationError as exc:
        problems = []
        for err in exc.errors()[:3]:
            where = ".".join(str(p) for p in err.get("loc", ())) or "arguments"
            if err.get("type") == "extra_forbidden":
                problems.append(f"{where} is not an argument of {name}")
            elif err.get("type") == "missing":
                problems.append(f"{name} needs argument {where!r}")
            else:
                problems.append(f"argument {where}={err.get('input')!r} is invalid: {err.get('msg')}")
        raise ToolArgumentError(f"{name}: " + "; ".join(problems) + f" ({name} takes {allowed}).") from None
    if schema is not None:
        jsonschema = jsonschema_module()
        try:
            jsonschema.validate(values.model_dump(mode="json"), schema)
        except jsonschema.ValidationError as exc:
            where = "/".join(str(p) for p in exc.absolute_path) or "arguments"
            raise ToolArgumentError(f"{name}: {where}: {exc.message}.") from None
    keys = allowed if with_defaults else [k for k in allowed if k in values.model_fields_set]
    return {k: getattr(values, k) for k in keys}


@lru_cache(maxsize=None)
def _catalog_model(name: str) -> type[BaseModel]:
    return argument_model(getattr(Shop, name))


def validate_arguments(name: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """Check `arguments` against tool `name`'s schema; return the coerced values or raise ToolArgumentError."""
    if name not in TOOL_NAMES:
        raise ToolArgumentError(f"Unknown tool {name!r}; the catalog has {list(TOOL_NAMES)}.")
    return check_arguments(name, _catalog_model(name), arguments, with_defaults=False)


# Arguments a user states word for word (copied, not converted): the extractive decoding constraint
# (helpers.runtimes.constrained) may restrict them to spans of the user's words.
VERBATIM_ARGUMENTS = frozenset({"order_id", "customer_id", "product_sku", "city", "system_id", "issue", "reason",
                                "radius"})
