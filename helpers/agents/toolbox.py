"""Tools for agents: typed Python functions whose JSON schema comes from their signatures and docstrings.

Introduced in notebook 03 (tool calling and the agent loop); the agent notebooks 04-07 reuse it. A
`ToolBox` holds callables and their OpenAI `tools` schemas, validates every call against the schema
BEFORE the function runs, and turns whatever the function returns into JSON-safe data.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from helpers.domain.tools import (TOOL_NAMES, Shop, ToolArgumentError, ToolSpec, argument_model, check_arguments,
                                  schema_from_function)


class ToolExecutionError(RuntimeError):
    """A tool raised while running (notebook 03): the loop feeds the message back to the model."""

    def __init__(self, name: str, exc: BaseException) -> None:
        self.tool = name
        self.cause = exc
        super().__init__(f"tool {name} failed: {type(exc).__name__}: {exc}")


@dataclass
class Tool:
    """One tool: the function, its derived spec (name, description, JSON schema) and its argument model."""

    fn: Callable[..., Any]
    spec: ToolSpec
    model: Any  # the pydantic model that validates the arguments

    @property
    def name(self) -> str:
        return self.spec.name

    def openai(self) -> dict[str, Any]:
        """The OpenAI `tools` entry."""
        return self.spec.openai()


def _json_safe(value: Any) -> Any:
    """Make a tool's return value JSON-safe: bytes and broken UTF-8 become text with U+FFFD replacements."""
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, str):
        # lone surrogates (e.g. from os.fsdecode of bad bytes) cannot be encoded as UTF-8: replace them
        return value.encode("utf-8", errors="replace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, dict):
        return {str(_json_safe(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_json_safe(v) for v in value]
    if hasattr(value, "model_dump"):
        return _json_safe(value.model_dump())
    return str(value)


def result_text(result: dict[str, Any]) -> str:
    """A tool result as the compact JSON text the model reads (notebook 03)."""
    return json.dumps(result, ensure_ascii=False, separators=(",", ":"))


class ToolBox:
    """Named tools with derived schemas; `call` validates the arguments before running anything (notebook 03)."""

    def __init__(self, tools: Iterable[Tool]) -> None:
        self._tools: dict[str, Tool] = {}
        for t in tools:
            if t.name in self._tools:
                raise ValueError(f"Two tools are named {t.name!r}; tool names must be unique.")
            self._tools[t.name] = t

    # ----------------------------------------------------------------- building
    @classmethod
    def from_functions(cls, fns: list[Callable[..., Any]]) -> "ToolBox":
        """Tools from typed functions: the schema comes from each signature and docstring."""
        tools = []
        for fn in fns:
            if not callable(fn):
                raise TypeError(f"{fn!r} is not callable; pass functions or bound methods.")
            tools.append(Tool(fn=fn, spec=schema_from_function(fn), model=argument_model(fn)))
        return cls(tools)

    @classmethod
    def from_shop(cls, shop: Shop, names: list[str] | None = None) -> "ToolBox":
        """The domain tools bound to `shop` (real SQLite lookups), all ten or those named, in catalog order."""
        names = list(TOOL_NAMES) if names is None else list(names)
        unknown = [n for n in names if n not in TOOL_NAMES]
        if unknown:
            raise KeyError(f"Unknown tool(s) {unknown}; the shop has {list(TOOL_NAMES)}.")
        return cls.from_functions([getattr(shop, n) for n in TOOL_NAMES if n in names])

    # ----------------------------------------------------------------- reading
    @property
    def names(self) -> list[str]:
        """The tool names, in order."""
        return list(self._tools)

    @property
    def schemas(self) -> list[dict[str, Any]]:
        """The OpenAI `tools` list."""
        return [t.openai() for t in self._tools.values()]

    def __contains__(self, name: object) -> bool:
        return name in self._tools

    def __len__(self) -> int:
        return len(self._tools)

    def __getitem__(self, name: str) -> Tool:
        if name not in self._tools:
            raise KeyError(f"Unknown tool {name!r}; this toolbox has {self.names}.")
        return self._tools[name]

    def __repr__(self) -> str:
        return f"ToolBox({self.names})"

    def subset(self, names: Iterable[str]) -> "ToolBox":
        """A toolbox with only the named tools (each must exist here)."""
        names = list(names)
        return ToolBox([self[n] for n in names])

    def with_functions(self, fns: list[Callable[..., Any]]) -> "ToolBox":
        """A copy where each function replaces the tool of the same name (in place), or is added at the end.

        Handy to give the model a stricter or instrumented version of a tool it knows, keeping the
        catalog (names and order) the model was trained with."""
        new = {t.name: t for t in ToolBox.from_functions(fns)._tools.values()}
        tools = [new.pop(t.name, t) for t in self._tools.values()]
        return ToolBox(tools + list(new.values()))

    # ----------------------------------------------------------------- calling
    def validate(self, name: str, arguments: Any) -> dict[str, Any]:
        """Check `arguments` against tool `name`'s schema; return the coerced values or raise ToolArgumentError."""
        if name not in self._tools:
            raise ToolArgumentError(f"Unknown tool {name!r}; the tools offered are {self.names}.")
        tool = self._tools[name]
        # the values the tool will run with must also pass the published JSON schema (after normalising,
        # e.g. "c-1234" -> "C-1234"): what the model was shown is what is enforced
        return check_arguments(name, tool.model, arguments, schema=tool.spec.parameters)

    def call(self, name: str, arguments: dict[str, Any]) -> dict[str, Any]:
        """Validate, then run tool `name`; the result as JSON-safe data (a dict).

        Raises KeyError for an unknown tool, ToolArgumentError when the arguments fail the schema (the
        function does not run), ToolExecutionError when the function itself raises.
        """
        if name not in self._tools:
            raise KeyError(f"Unknown tool {name!r}; this toolbox has {self.names}.")
        values = self.validate(name, arguments)
        try:
            out = self._tools[name].fn(**values)
        except Exception as exc:  # the tool's own failure, reported to the loop
            raise ToolExecutionError(name, exc) from exc
        out = _json_safe(out)
        return out if isinstance(out, dict) else {"result": out}


# ------------------------------------------------------------------------------------------ the shop data
SHOP_SEED = 123


def shop_db_path() -> Path:
    """data/shop.sqlite: the agents' shop database, built by `build_shop_db()` (notebook 03)."""
    from helpers.paths import DATA

    return DATA / "shop.sqlite"


def build_shop_db(path: str | Path | None = None, seed: int = SHOP_SEED) -> Path:
    """(Re)build the shop database deterministically with `Shop.create(path, seed=123)`; returns its path."""
    path = Path(path) if path is not None else shop_db_path()
    Shop.create(path, seed=seed).close()
    return path


def shop_copy(name: str = "shop", source: str | Path | None = None) -> Shop:
    """A fresh working copy of data/shop.sqlite under build/agents/NAME.sqlite, so lessons never change data/.

    Tools that write (tickets, callbacks, escalations) write to the copy; call it again for a clean shop.
    If data/shop.sqlite is missing it is rebuilt from the seed first.
    """
    import shutil

    from helpers.paths import BUILD

    src = Path(source) if source is not None else shop_db_path()
    if not src.exists():
        if source is not None:
            raise FileNotFoundError(f"No shop database at {src}; build one with build_shop_db({str(src)!r}).")
        build_shop_db(src)
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        raise ValueError(f"shop copy name {name!r} must be a plain file name such as 'nb03'.")
    dst = BUILD / "agents" / f"{name}.sqlite"
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)
    return Shop(dst)


__all__ = ["Tool", "ToolBox", "ToolExecutionError", "ToolArgumentError", "result_text", "build_shop_db",
           "shop_copy", "shop_db_path"]
