"""Under `pytest -n 2` (pytest-xdist with `--dist loadgroup`), which tests may run side by side.

Every test gets an `xdist_group`: its file, so a file's tests run in one worker in order (a notebook's cells,
which nbval runs as one test each, must run in one kernel in order; a test file's module fixtures, such as a
started server, are made once). Files that use Foundry Local share one group with the notebooks that do,
since Foundry Local keeps one app directory (build/foundry) for every process (helpers.runner.SHARED_LANES).
Without xdist the markers change nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers.runner import SHARED_LANES

FOUNDRY_TESTS = {"test_foundry_local.py", "test_contract.py", "test_runtimes.py"}


def group_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        number = path.name.split("-", 1)[0]
        shared = next((name for name, numbers in SHARED_LANES.items() if number in numbers), None)
        return shared or f"{path.parent.name}/{path.name}"
    return "foundry" if path.name in FOUNDRY_TESTS else path.name


def pytest_collection_modifyitems(config, items):
    for item in items:
        item.add_marker(pytest.mark.xdist_group(group_of(Path(str(item.path)))))
