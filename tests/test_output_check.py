"""The executed-notebook check (helpers/output_check.py): it fails on bad samples, passes good ones, and the
executed notebooks of `python -m helpers run-all --smoke` pass it. Also the runner's kernel settings."""

import os

import pytest

from helpers.output_check import check_executed, check_notebook
from helpers.paths import BUILD, ROOT

NBS, LABS = {0, 1, 3, 7, 11, 23}, {1, 3, 7}


def code(*lines: str, source: str = "print(x)") -> dict:
    return {"cell_type": "code", "source": source, "outputs": [{"output_type": "stream", "name": "stdout",
                                                                 "text": "\n".join(lines) + "\n"}]}


def md(text: str) -> dict:
    return {"cell_type": "markdown", "source": text}


def kinds(*cells: dict) -> list[str]:
    return [f.kind for f in check_notebook({"cells": list(cells)}, "t.ipynb", NBS, LABS)]


@pytest.mark.parametrize("line", [
    '  assistant text   <tool_call>[{"name":"lookup_customer","parameters":{"customer_id":"C-1""}}]</tool_call>',
    "answer: Sure<|end|>",
    "final answer  : <tool_call>[{\"name\":\"x\"}]",
    "greedy : hello<|assistant|>hi",
])
def test_markup_in_an_answer_fails(line):
    findings = check_notebook({"cells": [code(line)]}, "t.ipynb", NBS, LABS)
    assert [f.kind for f in findings] == ["markup"]
    assert "parser" in findings[0].fix and "t.ipynb cell 0" in str(findings[0])


@pytest.mark.parametrize("line", [
    "<s><|tools|>lookup_order<|end|><|user|>hi<|end|><|assistant|>",  # a rendered prompt
    "{'type': 'invalid_json', 'raw': '<tool_call>[{\"name\"', 'message': 'not JSON'}",  # a parser demo
    "<tool_call>|[|{|\"|name|\"|",  # generated token pieces
    "prompt llama-server renders: <s><|tools|>x<|end|>",
])
def test_raw_views_are_not_answers(line):
    assert kinds(code(line)) == []


def test_markup_acknowledged_in_the_next_markdown_passes():
    line = "one-pass reply: garbled <tool_call>"
    assert kinds(code(line)) == ["markup"]
    assert kinds(code(line), md("Only its last token is new: `<tool_call>`, the first token of the answer.")) == []
    assert kinds(code(line), md("The cell shows the model's raw markup on purpose.")) == []
    assert kinds(code(line), md("## Next section"), md("`<tool_call>`")) == ["markup"]  # only the very next cell


@pytest.mark.parametrize("line", ["finish_reason: length", "finish_reason='length'", '"finish_reason": "length"',
                                  "greedy: I'm the assistant (finish_reason length)"])
def test_an_unacknowledged_cut_fails(line):
    findings = check_notebook({"cells": [code(line)]}, "t.ipynb", NBS, LABS)
    assert [f.kind for f in findings] == ["cut"] and "cut at max_tokens" in findings[0].fix


def test_a_cut_acknowledged_by_output_or_markdown_passes():
    assert kinds(code("finish_reason: length", "-> cut at max_tokens=64: raise it for the whole answer")) == []
    assert kinds(code("finish_reason: length"), md("The answer is cut at max_tokens: it stops mid-word.")) == []
    assert kinds(code("finish_reason: stop")) == []


@pytest.mark.parametrize("text", [
    "The deployment notebooks are planned.",
    "Monitoring comes in a later notebook.",
    "Notebook 11 (coming) serves the model.",
    "The quantization lessons are not written yet.",
    "Notebook 24 deploys it to a phone.",
    "Notebooks 11-24 deploy it.",
    "Lab 23 trains a bigger model.",
])
def test_promises_fail(text):
    findings = check_notebook({"cells": [md(text)]}, "t.ipynb", NBS, LABS)
    assert [f.kind for f in findings] == ["promise"], findings


@pytest.mark.parametrize("text", [
    "Notebooks 11-23 deploy it; notebook 07 builds the agent, lab 03 has exercises.",
    "The incoming requests are queued.",
    "Later, the model answers.",
])
def test_true_references_pass(text):
    assert kinds(md(text)) == []


def test_missing_executed_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="run-all --smoke"):
        check_executed(tmp_path / "nope", ROOT)


def test_executed_notebooks_show_no_broken_output():
    executed = BUILD / "executed"
    if not any(executed.rglob("*.ipynb")):
        pytest.skip("build/executed holds no executed notebooks: run `python -m helpers run-all --smoke` first")
    findings = check_executed(executed, ROOT)
    assert not findings, "broken outputs in the executed notebooks:\n" + "\n".join(map(str, findings))


def test_runner_kernel_settings():
    from helpers.runner import KERNEL_ENV, kernel_config, kernel_env

    before = {k: os.environ.get(k) for k in KERNEL_ENV}
    with kernel_env({"EDGE_TEST_ONLY": "1"}):
        assert os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] == "1" and os.environ["EDGE_TEST_ONLY"] == "1"
    assert {k: os.environ.get(k) for k in KERNEL_ENV} == before and "EDGE_TEST_ONLY" not in os.environ
    cfg = kernel_config().KernelManager
    assert cfg.get("transport_encryption") == "auto" or cfg.get("transport") == "ipc"


def test_wilson_interval_is_honest_at_the_edges():
    from helpers.eval import wilson_interval

    lo, hi = wilson_interval(8, 8)
    assert round(lo, 2) == 0.68 and hi == 1.0  # not "standard error 0.000"
    assert wilson_interval(0, 8)[0] == 0.0 and round(wilson_interval(0, 8)[1], 2) == 0.32
    lo, hi = wilson_interval(95, 100)
    assert round(lo, 3) == 0.888 and round(hi, 3) == 0.978
    with pytest.raises(ValueError, match="successes"):
        wilson_interval(9, 8)


def test_runner_reads_one_answered_by_line_or_a_comma_list(tmp_path):
    import json

    from helpers.runner import runtimes_in

    nb = {"cells": [code("answered by: embedded/edge-slm-f16"),
                    code("answered by: embedded/edge-slm-f16, embedded/edge-slm-q2_k, llamacpp/edge-slm-f16"),
                    code("answered by: none here")]}
    path = tmp_path / "x.ipynb"
    path.write_text(json.dumps(nb))
    assert runtimes_in(path) == ["embedded/edge-slm-f16", "embedded/edge-slm-q2_k", "llamacpp/edge-slm-f16"]
