"""Under the test command's `pytest -n 2 --dist loadgroup` (pytest-xdist), which tests may run side by side.

The scheduler below deals out whole groups: a test file, or an executed notebook (nbval runs each cell as one
test, and a notebook's cells must run in order in one kernel), except that everything that starts Foundry Local
is one group, since Foundry Local keeps one app directory (build/foundry) for every process that uses it
(`helpers.runner.SHARED_LANES`, as `run-all --jobs` does). It replaces xdist's own `loadgroup` scheduler, which
reads `xdist_group` marks from test ids that pytest 9.2 no longer lets it change (xdist 3.8 sets
`item._nodeid`; pytest now derives `nodeid` from `item._id`), so marked tests were dealt out one by one.
Without `-n`, nothing here runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

# test files that start Foundry Local (test_notebooks.py runs lab 12 up to its first TODO, which does)
FOUNDRY_TESTS = {"test_foundry_local.py", "test_contract.py", "test_runtimes.py", "test_notebooks.py"}


def group_of(nodeid: str) -> str:
    """The group of a test id: its file, `foundry` for the files and notebooks that use Foundry Local."""
    from helpers.runner import group_key

    file = nodeid.split("::", 1)[0]
    path = Path(file)
    if path.suffix == ".ipynb":
        return "foundry" if group_key(path) == "foundry" else file
    return "foundry" if path.name in FOUNDRY_TESTS else file


def pytest_xdist_make_scheduler(config: Any, log: Any) -> Any:
    if config.getvalue("dist") != "loadgroup":
        return None  # xdist's own choice
    from xdist.scheduler import LoadScopeScheduling

    class WholeGroups(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return WholeGroups(config, log)
