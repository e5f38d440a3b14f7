"""The runtime contract (helpers/contract.py) on every runtime available on this machine.

Each check is one test: pass, a failure naming what was seen, or a skip that says the runtime does not offer
that feature or is not running here. Known gaps are strict xfails: they fail the suite the day they are fixed,
so the table in notebook 17 and this list stay true.
"""

import pytest

from helpers.contract import ABSENT, FAIL, NOT_OFFERED, checks_for, run_check

# The deployment runtimes (Ollama and vLLM are checked when running, skipped here). The transformers reference
# runtime is left to `python -m helpers contract --runtimes transformers`: it passes, but PyTorch generation makes
# it the slowest by far, and it is a yardstick for exports rather than a way to serve.
RUNTIMES = ["embedded", "ortgenai", "foundry", "llamacpp", "llamaserver", "ortgenai-service", "ollama", "vllm"]
KNOWN_GAPS: dict[tuple[str, str], str] = {}  # (runtime, check) -> why it fails today; none at present
_open: dict[str, object] = {}
_why: dict[str, str] = {}


@pytest.fixture(scope="module", autouse=True)
def _close_runtimes():
    yield
    for rt in _open.values():
        if rt is not None:
            rt.close()


def _runtime(name: str):
    from helpers.runtimes import get_runtime

    if name not in _open:
        try:
            _open[name] = get_runtime(name)
        except Exception as exc:
            _open[name] = None
            _why[name] = str(exc)
    return _open[name]


CASES = [(rt, check) for rt in RUNTIMES for check in checks_for(rt)]


@pytest.mark.parametrize(("name", "check"), CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_contract(name: str, check: str):
    rt = _runtime(name)
    if rt is None:
        pytest.skip(f"{ABSENT}: {_why[name][:200]}")
    outcome = run_check(checks_for(name)[check], rt)
    if outcome.status == NOT_OFFERED:
        pytest.skip(f"{NOT_OFFERED}: {outcome.detail}")
    if (name, check) in KNOWN_GAPS:
        assert outcome.status == FAIL, f"known gap fixed ({KNOWN_GAPS[(name, check)]}): remove it from KNOWN_GAPS"
        pytest.xfail(KNOWN_GAPS[(name, check)])
    assert outcome.status != FAIL, outcome.detail


def test_a_failing_runtime_is_reported_as_a_failure():
    """The checks can fail: a runtime whose answers break the contract gets FAIL with what was seen."""
    from helpers.runtimes.base import ChatResult, Runtime

    class Broken(Runtime):
        name = "broken"

        def availability(self):
            raise NotImplementedError

        @property
        def model(self):
            return "m"

        def chat(self, messages, tools=None, *, temperature=0.0, max_tokens=256, seed=123):
            return ChatResult(runtime="broken", model="m", content="", finish_reason="stop")

    checks = checks_for("broken")
    for cname in ("plain answer", "tool call", "tool result -> answer", "finish_reason", "context overflow"):
        out = run_check(checks[cname], Broken())
        assert out.status == FAIL, (cname, out)
