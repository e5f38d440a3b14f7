"""Fault suite of the CLI, run-all's report and doctor (issue 15): one clear line per error, nothing lost,
and doctor fails when a shipped file is missing or changed."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest

from helpers import cli, registry
from helpers.paths import DATA, GGUF_DIR, ROOT


def run_cli(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers", *args], cwd=str(ROOT), capture_output=True, text=True,
                          timeout=timeout)


def assert_one_line(r: subprocess.CompletedProcess, needle: str, code: int = 2) -> None:
    assert r.returncode == code, (r.returncode, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_a_folder_given_as_the_eval_file(tmp_path):
    assert_one_line(run_cli("eval-toolcalls", str(tmp_path), "--runtime", "embedded"), "is a folder")
    assert_one_line(run_cli("eval-agent", str(tmp_path), "--runtime", "embedded"), "is a folder")


@pytest.mark.parametrize("field,value,needle", [
    ("expected_arguments", ["order_id", "1"], "'expected_arguments' must be an object"),
    ("expected_facts", "shipped", "'expected_facts' must be a list of strings"),
    ("free_text", 3, "'free_text' must be an object"),
])
def test_wrongly_typed_agent_eval_fields_fail_before_the_model_runs(tmp_path, field, value, needle):
    turn = {"user": "where is order 12035?", "expected_tool": "lookup_order",
            "expected_arguments": {"order_id": "12035"}, "expected_facts": ["shipped"], field: value}
    path = tmp_path / "cases.jsonl"
    path.write_text(json.dumps({"id": "c1", "turns": [turn]}) + "\n")
    # a runtime that cannot start would fail differently: the file is refused first
    r = run_cli("eval-agent", str(path), "--runtime", "vllm")
    assert_one_line(r, needle)
    assert "c1" not in r.stdout  # nothing ran


def test_quantize_out_pointing_at_a_file(tmp_path):
    target = tmp_path / "out.gguf"
    target.write_text("keep me")
    assert_one_line(run_cli("quantize", "Q8_0", "--out", str(target)), "is a file")
    assert target.read_text() == "keep me"


@pytest.fixture()
def truncated_gguf(tmp_path):
    src = GGUF_DIR / "edge-slm-f16.gguf"
    if not src.exists():
        pytest.skip("no shipped GGUF")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(src.read_bytes()[: src.stat().st_size * 2 // 3])
    return cut


def test_a_truncated_gguf_is_named_as_such(truncated_gguf):
    assert_one_line(run_cli("quantize", "Q8_0", "--src", str(truncated_gguf)), "truncated")
    assert_one_line(run_cli("eval-toolcalls", "data/eval/dev.jsonl", "--runtime", "embedded", "--model",
                            str(truncated_gguf)), "truncated")
    from helpers.quant.gguf_file import reader  # the shared check: gguf-py never sees the cut file

    with pytest.raises(ValueError, match="truncated"):
        reader(truncated_gguf)


def test_an_unexpected_error_is_one_line_and_exit_1(monkeypatch, capsys):
    def boom(a):
        raise ZeroDivisionError("division by zero\nsecond line")

    parser = cli.build_parser()
    monkeypatch.setattr(cli, "build_parser", lambda: parser)
    parser._subparsers._group_actions[0].choices["doctor"].set_defaults(func=boom)
    assert cli.main(["doctor"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unexpected ZeroDivisionError" in err[0] and "EDGEAI_DEBUG=1" in err[0]


def test_run_all_on_a_subset_updates_its_entries_only(tmp_path):
    from helpers.runner import write_report

    report = tmp_path / "run-report.json"
    a = {"notebook": "notebooks/00-a.ipynb", "status": "ok", "seconds": 1.0, "runtimes": []}
    b = {"notebook": "notebooks/01-b.ipynb", "status": "failed", "seconds": 2.0, "runtimes": [], "error": "x"}
    write_report([a, b], True, report)
    doc = write_report([{**b, "status": "ok", "seconds": 3.0}], True, report)  # re-run only notebook 01
    rows = {r["notebook"]: r for r in json.loads(report.read_text())["notebooks"]}
    assert set(rows) == {a["notebook"], b["notebook"]}  # 00 kept
    assert rows[b["notebook"]]["status"] == "ok" and rows[b["notebook"]]["seconds"] == 3.0
    assert doc["passed"] == 2 and doc["failed"] == 0 and doc["last_run"] == [b["notebook"]]
    report.write_text("{cut")  # a damaged report is moved aside, not silently dropped
    write_report([a], True, report)
    assert (tmp_path / "run-report.json.bad").read_text() == "{cut"


def test_run_all_names_a_missing_notebook():
    assert_one_line(run_cli("run-all", "notebooks/99-missing.ipynb"), "No notebook at")


# ------------------------------------------------------------------ doctor and the registry
def test_every_shipped_data_file_is_registered():
    out = subprocess.run(["git", "ls-files", "data"], cwd=str(ROOT), capture_output=True, text=True)
    if out.returncode != 0 or not out.stdout.strip():
        pytest.skip("not a git checkout")
    shipped = {p.removeprefix("data/") for p in out.stdout.split()} - {"README.md", "manifest.json"}
    assert shipped <= set(registry.ARTEFACTS.values()), shipped - set(registry.ARTEFACTS.values())
    for name in ("hf-config", "chat-template", "tokenizer-config", "onnx-int4-graph", "onnx-int4-genai-config"):
        assert name in registry.ARTEFACTS
    manifest = json.loads((DATA / "manifest.json").read_text())["artefacts"]
    assert set(manifest) == set(registry.ARTEFACTS)


def test_doctor_exits_non_zero_when_a_shipped_file_changed(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    small = {"hf-config": "model/config.json", "chat-template": "model/chat_template.jinja",
             "onnx-int4-genai-config": "onnx/int4/genai_config.json"}
    for rel in small.values():
        (data / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(DATA / rel, data / rel)
    monkeypatch.setattr(registry, "ARTEFACTS", small)
    monkeypatch.setattr(registry, "DATA", data)
    monkeypatch.setattr(registry, "MANIFEST", data / "manifest.json")
    registry.write_manifest()
    from helpers import doctor

    real_report = doctor.report
    monkeypatch.setattr(doctor, "report", lambda: {**real_report_light(), "artefacts": registry.verify()})
    assert cli.main(["doctor"]) == 0
    (data / "model/chat_template.jinja").write_text("{{ tampered }}")
    assert cli.main(["doctor"]) == 1
    err = capsys.readouterr().err
    assert "model/chat_template.jinja" in err and "changed" in err
    (data / "onnx/int4/genai_config.json").unlink()
    rows = {r["name"]: r for r in registry.verify()}
    assert not rows["onnx-int4-genai-config"]["ok"] and "missing" in rows["onnx-int4-genai-config"]["note"]
    assert real_report is not None


def real_report_light() -> dict:
    """The parts of doctor's report that do not depend on the data (no runtime survey: it starts nothing)."""
    from helpers import doctor
    from helpers.runtimes.base import default_threads

    return {"machine": doctor.machine(), "packages": doctor.package_versions(), "runtimes": [],
            "data_dir": "data", "build_dir": "build", "selected": "auto", "threads": default_threads()}


def test_doctor_passes_on_the_shipped_files():
    rows = registry.verify()
    bad = [r["path"] for r in rows if not r["ok"]]
    assert not bad, bad
