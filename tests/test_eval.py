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


def test_cases_with_a_kind_get_one_row_per_kind_in_file_order():
    hit = {"name": "lookup_order", "arguments": {"order_id": "48213"}}
    cases = [{"kind": "spoken_time", "expected": hit}, {"kind": "no_request", "expected": None},
             {"kind": "spoken_time", "expected": hit}]
    s = summarize(cases, [hit, hit, {"name": "lookup_order", "arguments": {"order_id": "48231"}}])
    assert s["per_kind"] == {"spoken_time": {"passed": 1, "n": 2}, "no_request": {"passed": 0, "n": 1}}
    lines = format_table(s).splitlines()
    at = lines.index(f"{'kind':<24}{'passed':>8}{'n':>6}{'rate':>8}")
    assert lines[at + 1].split() == ["spoken_time", "1", "2", "0.500"]
    assert lines[at + 2].split() == ["no_request", "0", "1", "0.000"]
    assert lines[-1] == "exact_match=0.333 n=3"
    assert "per_kind" not in summarize([{"expected": None}], [None])  # sets without kinds print as before
    assert "kind" not in format_table(summarize([{"expected": None}], [None]))


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
