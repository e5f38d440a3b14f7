import json
import subprocess
import sys

import pytest

from helpers.eval import case_passes, format_table, load_cases, summarize, values_equal


@pytest.mark.parametrize("exp,pred,ok", [
    ("Paris", " paris ", True), ("SKU-AB12", "sku-ab12", True), ("48213", 48213, True), (2.5, "2.50", True),
    (3, 3.0, True), ("48213", "#48213", False), ("Paris", "Pariss", False), ("high", "medium", False),
])
def test_values_compare_trimmed_casefolded_and_numeric(exp, pred, ok):
    assert values_equal(exp, pred) is ok


def test_case_rules():
    exp = {"name": "create_ticket", "arguments": {"priority": "high"}}
    assert case_passes(exp, {"name": "create_ticket", "arguments": {"priority": "HIGH", "issue": "anything"}})
    assert not case_passes(exp, {"name": "create_ticket", "arguments": {}})
    assert not case_passes(exp, {"name": "lookup_order", "arguments": {"priority": "high"}})
    assert not case_passes(exp, None)
    assert case_passes(None, None) and not case_passes(None, {"name": "get_current_time", "arguments": {}})


def test_summary_table_ends_with_the_exact_match_line():
    cases = [{"expected": None}, {"expected": {"name": "get_current_time", "arguments": {}}}]
    s = summarize(cases, [None, None])
    assert s["exact_match"] == 0.5 and s["per_tool"]["(no tool)"] == {"passed": 1, "n": 1}
    assert format_table(s).splitlines()[-1] == "exact_match=0.500 n=2"


def test_bad_eval_files_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="data/eval/dev.jsonl"):
        load_cases(tmp_path / "nope.jsonl")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [], "expected": null}\n{not json\n')
    with pytest.raises(ValueError, match="bad.jsonl:2: not valid JSON"):
        load_cases(bad)
    bad.write_text('{"messages": "hi", "expected": null}\n')
    with pytest.raises(ValueError, match="needs 'messages'"):
        load_cases(bad)


def _cli(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "helpers", *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=300)


def test_eval_cli_prints_table_and_writes_predictions(tmp_path):
    from helpers.paths import EVAL_DIR

    sub = tmp_path / "sub.jsonl"
    sub.write_text("\n".join((EVAL_DIR / "dev.jsonl").read_text().splitlines()[:12]) + "\n")
    out = tmp_path / "pred.jsonl"
    res = _cli("eval-toolcalls", str(sub), "--runtime", "embedded", "--out", str(out))
    assert res.returncode == 0, res.stderr
    last = res.stdout.strip().splitlines()[-1]
    assert last.startswith("exact_match=") and last.endswith(" n=12")
    assert "runtime=embedded" in res.stdout
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert len(rows) == 12 and all(set(r) == {"id", "predicted"} for r in rows)


def test_eval_cli_rejects_bad_input(tmp_path):
    res = _cli("eval-toolcalls", str(tmp_path / "missing.jsonl"))
    assert res.returncode == 2 and "No eval file" in res.stderr
    res = _cli("eval-toolcalls", "data/eval/dev.jsonl", "--runtime", "quantum")
    assert res.returncode == 2 and "Unknown runtime 'quantum'" in res.stderr
