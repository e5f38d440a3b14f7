"""Package faces that import lazily: `from helpers.agents import Agent` without loading every module of the
package (introduced in notebook 00). A package's `__init__` lists what notebooks use and where it lives."""

from __future__ import annotations

import importlib
from typing import Any, Callable


def lazy_face(package: str, where: dict[str, list[str]]) -> tuple[Callable[[str], Any], Callable[[], list[str]],
                                                                  list[str]]:
    """`__getattr__`, `__dir__` and `__all__` for `package`, from {submodule: [names it gives the face]}."""
    home = {name: f"{package}.{mod}" for mod, names in where.items() for name in names}

    def __getattr__(name: str) -> Any:
        if name not in home:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(home[name]), name)

    def __dir__() -> list[str]:
        return sorted(home)

    return __getattr__, __dir__, sorted(home)
