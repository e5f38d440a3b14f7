"""The drift guard (helpers/drift.py, `python -m helpers drift-check`): the version diff, the plan, blaming a
failure on a package from its traceback or pip's error, the report, bad input and an interrupted run. No network:
pip's and pytest's texts are either produced here or recorded from real runs (said where)."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from helpers import cli, drift
from helpers.drift import Finding, Package
from helpers.paths import ROOT

CHANGED = {"transformers": ("5.23.0", "5.24.0"), "huggingface-hub": ("1.2.0", "1.3.0"), "onnxruntime": ("1.31.0",
                                                                                                        "1.32.0")}
OWNERS = {"transformers": ["transformers"], "huggingface_hub": ["huggingface-hub"], "onnxruntime": ["onnxruntime"],
          "numpy": ["numpy"], "yaml": ["pyyaml"]}
SITE = "/home/u/build/drift/venv/lib/python3.11/site-packages"

# pip's words for a resolver conflict (recorded from the drift check of 2026-11-30 on this machine: the drift
# venv's own pip, 23.2) and for a source build that failed
CONFLICT = """WARNING: Location 'file:///opt/pypi/simple/onnxruntime/' is ignored: it is neither a file nor a directory.
INFO: pip is looking at multiple versions of foundry-local-sdk to determine which version is compatible with \
other requirements. This could take a while.

The conflict is caused by:
    The user requested onnxruntime==1.32.0
    foundry-local-sdk 2.2.1 depends on onnxruntime==1.31.0

To fix this you could try to:
1. loosen the range of package versions you've specified
2. remove package versions to allow pip attempt to solve the dependency conflict

ERROR: Cannot install foundry-local-sdk==2.2.1 and onnxruntime==1.32.0 because these package versions have \
conflicting dependencies.
ERROR: ResolutionImpossible: for help visit https://pip.pypa.io/en/latest/topics/dependency-resolution/
"""
BUILD_FAILED = """  error: subprocess-exited-with-error
  × Building wheel for llama-cpp-python (pyproject.toml) did not run successfully.
  │ exit code: 1
  ╰─> CMake Error at CMakeLists.txt:3 (project): No CMAKE_CXX_COMPILER could be found.
  ERROR: Failed building wheel for llama-cpp-python
Failed to build llama-cpp-python
ERROR: Failed to build installable wheels for some pyproject.toml based projects (llama-cpp-python)
"""


def test_version_diff_names_each_package_that_moved_appeared_or_went():
    before = {"transformers": "5.23.0", "numpy": "2.3.1", "gone": "1.0"}
    after = {"transformers": "5.24.0", "numpy": "2.3.1", "new-dep": "0.1"}
    assert drift.version_diff(before, after) == {"gone": ("1.0", None), "new-dep": (None, "0.1"),
                                                 "transformers": ("5.23.0", "5.24.0")}
    assert drift.version_diff(before, dict(before)) == {}


def test_the_plan_moves_only_newer_releases_and_says_why_one_is_held_back():
    deps = ["transformers==5.23.0", "openai>=1.50", "llama-cpp-python[server]==0.3.36", "numpy>=1.26"]
    baseline = {"transformers": "5.23.0", "openai": "3.57.0", "llama-cpp-python": "0.3.36", "numpy": "2.3.1"}
    newest = {"transformers": "5.24.0", "openai": "3.57", "llama-cpp-python": "0.3.40", "ollama": None}
    held = {"llama-cpp-python": "kept at the pin (--skip)"}
    plan = drift.plan_packages(["transformers", "openai", "llama-cpp-python", "ollama"], deps, baseline, newest, held)
    by = {p.name: p for p in plan}
    assert by["transformers"].status == "changed" and by["transformers"].tried == "5.24.0"
    assert by["openai"].status == "same", "3.57 and 3.57.0 are one version"
    assert (by["llama-cpp-python"].status, by["llama-cpp-python"].why) == ("held back", "kept at the pin (--skip)")
    assert by["llama-cpp-python"].tried is None and by["ollama"].status == "held back"
    assert by["transformers"].spec == "transformers==5.23.0"


def test_requirements_pin_the_rest_at_the_pinned_environment_and_keep_extras_and_markers():
    deps = ["transformers==5.23.0", "llama-cpp-python[server]==0.3.36", "numpy>=1.26",
            "pywin32>=300; sys_platform == 'win32'", "not-installed>=2", "numpy>=1"]
    baseline = {"transformers": "5.23.0", "llama-cpp-python": "0.3.36", "numpy": "2.3.1", "huggingface-hub": "1.2.0",
                "pywin32": "306"}
    plan = [Package("transformers", deps[0], "5.23.0", "5.24.0", "changed"),
            Package("llama-cpp-python", deps[1], "0.3.36", "0.3.40", "held back", "--skip"),
            Package("huggingface-hub", "", "1.2.0", "1.3.0", "changed")]
    reqs = drift.requirements(deps, plan, baseline)
    assert reqs == ["transformers==5.24.0", "llama-cpp-python[server]==0.3.36", "numpy==2.3.1",
                    'pywin32==306; sys_platform == "win32"', "not-installed>=2", "huggingface-hub==1.3.0"]


def test_a_failed_import_is_blamed_on_the_package_that_owns_the_module():
    tb = ("\x1b[31mImportError\x1b[39m: cannot import name 'AutoModelForCausalLM' from 'transformers' "
          f"({SITE}/transformers/__init__.py)")
    who, why, certain = drift.attribute(tb, CHANGED, OWNERS)
    assert (who, certain) == (["transformers"], True) and "import of 'transformers' failed" in why
    who, _, certain = drift.attribute("ModuleNotFoundError: No module named 'huggingface_hub.errors'", CHANGED, OWNERS)
    assert (who, certain) == (["huggingface-hub"], True)


def test_a_traceback_through_one_changed_package_is_blamed_on_it():
    tb = f"""Traceback (most recent call last):
  File "/repo/helpers/model/load.py", line 12, in load
  File "{SITE}/numpy/core/fromnumeric.py", line 3, in asarray
  File "{SITE}/transformers/modeling_utils.py", line 4410, in from_pretrained
TypeError: from_pretrained() got an unexpected keyword argument 'torch_dtype'"""
    who, why, certain = drift.attribute(tb, CHANGED, OWNERS)
    assert (who, certain) == (["transformers"], True) and "no other changed package" in why


def test_two_changed_packages_in_a_traceback_are_ambiguous_innermost_first():
    tb = f"""  File "{SITE}/transformers/utils/hub.py", line 80, in cached_file
  File "{SITE}/huggingface_hub/file_download.py", line 9, in hf_hub_download
ValueError: repo id must be a string"""
    who, why, certain = drift.attribute(tb, CHANGED, OWNERS)
    assert (who, certain) == (["huggingface-hub", "transformers"], False) and why.startswith("ambiguous")


def test_a_traceback_through_no_changed_package_suspects_all_of_them():
    who, why, certain = drift.attribute(f'  File "{SITE}/yaml/parser.py", line 1\nAssertionError: 3 != 4',
                                        CHANGED, OWNERS)
    assert (sorted(who), certain) == (sorted(CHANGED), False) and "no changed package" in why


def test_a_pip_conflict_is_blamed_on_the_moving_package_it_names():
    assert drift.blame_install(CONFLICT, ["onnxruntime", "transformers"]) == ["onnxruntime"]
    assert drift.blame_install(BUILD_FAILED, ["transformers", "llama-cpp-python"]) == ["llama-cpp-python"]
    assert drift.blame_install("ERROR: No space left on device", ["onnxruntime"]) == []
    assert "No CMAKE_CXX_COMPILER could be found" in drift.install_error(BUILD_FAILED)
    # what the drift venv's pip said on 2026-11-30 after an interrupted run had left a half-removed package behind
    noisy = CONFLICT.replace("    foundry-local-sdk 2.2.1 depends",
                             "WARNING: Ignoring invalid distribution ~ransformers (/x/site-packages)\n"
                             "    foundry-local-sdk 2.2.1 depends")
    assert "~ransformers" not in drift.install_error(noisy)


def test_a_package_that_fails_to_install_is_a_finding_held_back_and_the_rest_retried(monkeypatch, tmp_path):
    calls: list[list[str]] = []

    def fake_pip(py, reqs, index_url, log_file):
        calls.append(reqs)
        fails = "onnxruntime==1.32.0" in reqs
        return subprocess.CompletedProcess([], 1 if fails else 0, "", CONFLICT if fails else "")

    monkeypatch.setattr(drift, "pip_install", fake_pip)
    deps = ["onnxruntime==1.31.0", "transformers==5.23.0", "foundry-local-sdk==2.2.1"]
    baseline = {"onnxruntime": "1.31.0", "transformers": "5.23.0", "foundry-local-sdk": "2.2.1"}
    plan = [Package("onnxruntime", deps[0], "1.31.0", "1.32.0", "changed"),
            Package("transformers", deps[1], "5.23.0", "5.24.0", "changed")]
    findings: list[Finding] = []
    ok = drift._install(Path("py"), {"dependencies": deps}, plan, baseline, drift.Options(out=tmp_path), findings,
                        lambda m: None)
    assert ok and len(calls) == 2
    assert "onnxruntime==1.31.0" in calls[1] and "transformers==5.24.0" in calls[1]
    assert plan[0].status == "install failed" and plan[1].status == "changed"
    assert [(f.where, f.packages, f.certain) for f in findings] == [("install", ["onnxruntime"], True)]
    assert findings[0].error == ("The user requested onnxruntime==1.32.0 | foundry-local-sdk 2.2.1 depends on "
                                 "onnxruntime==1.31.0 | ERROR: Cannot install foundry-local-sdk==2.2.1 and "
                                 "onnxruntime==1.32.0 because these package versions have conflicting dependencies.")


def test_bisect_settles_an_ambiguous_failure_by_repinning_one_suspect_at_a_time(monkeypatch, tmp_path):
    pinned: set[str] = set()
    monkeypatch.setattr(drift, "pip_install", lambda py, reqs, i, log: pinned.update(r.split("==")[0] for r in reqs))
    f = Finding("smoke: notebooks/04.ipynb", "ValueError", packages=["transformers", "huggingface-hub"])
    runs: list[set[str]] = []

    def rerun() -> bool:
        runs.append(set(pinned))
        return "huggingface-hub" in pinned

    drift._bisect(f, CHANGED, rerun=rerun, restore=pinned.clear, py=Path("py"),
                  o=drift.Options(out=tmp_path), log=lambda m: None)
    assert (f.packages, f.certain) == (["huggingface-hub"], True)
    assert "passes with huggingface-hub back at 1.2.0" in f.evidence
    assert runs == [set(), {"transformers"}, {"huggingface-hub"}], "first unchanged, then one suspect at a time"

    flaky = Finding("smoke: notebooks/04.ipynb", "RuntimeError: Kernel died before replying to kernel_info",
                    packages=["transformers"])
    drift._bisect(flaky, CHANGED, rerun=lambda: True, restore=pinned.clear, py=Path("py"),
                  o=drift.Options(out=tmp_path), log=lambda m: None)
    assert (flaky.packages, flaky.certain) == ([], False) and "flaky" in flaky.evidence

    g = Finding("smoke: notebooks/05.ipynb", "AssertionError", packages=["transformers"])
    drift._bisect(g, CHANGED, rerun=lambda: False, restore=pinned.clear, py=Path("py"),
                  o=drift.Options(out=tmp_path), log=lambda m: None)
    assert (g.packages, g.certain) == ([], True) and "not drift" in g.evidence


def test_contract_failures_are_read_from_pytest_junit_xml(tmp_path):
    (tmp_path / "test_x.py").write_text("def test_ok():\n    pass\n\n"
                                        "def test_bad():\n    assert 1 == 2, 'arguments are str, not a dict'\n")
    xml = tmp_path / "out.xml"
    env = {**os.environ, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}  # a bare pytest starts in a second
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path / "test_x.py"),
                    f"--junitxml={xml}", "--rootdir", str(tmp_path)], capture_output=True, cwd=str(tmp_path), env=env)
    fails = drift.contract_failures(xml)
    assert len(fails) == 1
    node, msg, tb = fails[0]
    assert node == "test_x.py::test_bad" and "arguments are str, not a dict" in msg and "assert 1 == 2" in tb
    assert drift.contract_failures(tmp_path / "missing.xml") == []
    assert drift.junit_counts(xml) == "1 passed, 0 skipped, 1 failed"


def test_the_traceback_of_a_failed_notebook_cell_is_read_without_colours(tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell("import transformers")
    cell.outputs = [nbformat.v4.new_output("error", ename="ImportError", evalue="x",
                                           traceback=["\x1b[31mImportError\x1b[0m", f"{SITE}/transformers/x.py"])]
    nb.cells = [nbformat.v4.new_code_cell("1"), cell]
    path = tmp_path / "nb.ipynb"
    nbformat.write(nb, path)
    assert drift.notebook_traceback(path) == f"ImportError\n{SITE}/transformers/x.py"
    assert drift.notebook_traceback(tmp_path / "none.ipynb") == ""


def _packages():
    return [Package("transformers", "transformers==5.23.0", "5.23.0", "5.24.0", "changed"),
            Package("onnxruntime", "onnxruntime==1.31.0", "1.31.0", "1.32.0", "install failed", "pip could not"),
            Package("openai", "openai>=1.50", "3.57.0", "3.57.0")]


def test_the_report_names_the_breaking_release_the_call_and_the_error(tmp_path):
    findings = [Finding("smoke: notebooks/04-x.ipynb", "cell 7: TypeError: unexpected keyword 'torch_dtype'",
                        call="model = AutoModel.from_pretrained(path, torch_dtype=torch.float32)",
                        packages=["transformers"], evidence="the traceback runs through transformers", certain=True)]
    doc = drift.build_report(_packages(), {"huggingface-hub": ("1.2.0", "1.3.0")}, findings,
                             {"smoke": {"result": "40 passed, 1 failed", "seconds": 500.0}})
    assert doc["verdict"] == "1 finding(s); broken by: transformers"
    assert [p["tried"] for p in doc["packages"]] == ["5.24.0", None, None]
    md = drift.format_report(doc)
    assert "| transformers | `transformers==5.23.0` | 5.23.0 | 5.24.0 | changed |" in md
    assert "| onnxruntime | `onnxruntime==1.31.0` | 1.31.0 | 1.32.0 | install failed: pip could not |" in md
    assert "### smoke: notebooks/04-x.ipynb: transformers" in md and "torch_dtype=torch.float32" in md
    assert "Other differences from the pinned environment" in md and "huggingface-hub 1.2.0 -> 1.3.0" in md
    assert "smoke: 40 passed, 1 failed (500.0 s)" in md
    report = drift.write_report(doc, tmp_path / "out", publish=tmp_path / "docs")
    assert json.loads((tmp_path / "out" / "report.json").read_text())["verdict"] == doc["verdict"]
    assert report.read_text() == md and (tmp_path / "docs" / f"drift-{doc['date'][:10]}.md").read_text() == md


def test_a_report_with_nothing_broken_or_cut_short_says_so():
    ok = drift.build_report(_packages()[:1], {}, [], {})
    assert ok["verdict"] == "nothing broke with the newest releases tried"
    assert "None: every check that ran passed." in drift.format_report(ok)
    cut = drift.build_report(_packages()[:1], {}, [], {}, interrupted=True)
    assert cut["verdict"].startswith("interrupted") and "None before the interrupt." in drift.format_report(cut)
    vague = drift.build_report([], {}, [Finding("install", "no space", packages=["a", "b"])], {})
    assert vague["verdict"] == "1 finding(s); broken by: not attributed for certain"
    assert "### install: a, b (ambiguous)" in drift.format_report(vague)


def test_the_fast_moving_list_is_read_from_pyproject_and_names_installed_dependencies():
    cfg = drift.drift_config()
    assert {"openai", "transformers", "llama-cpp-python", "agent-framework-core"} <= set(cfg["fast_moving"])
    installed = drift.installed_versions()
    assert all(n in installed for n in cfg["fast_moving"]), "a fast-moving package the workbook does not have"


def _cli(capsys, *args: str) -> tuple[int, str]:
    rc = cli.main(["drift-check", *args])
    return rc, capsys.readouterr().err


@pytest.mark.parametrize("args,needle", [
    (["--skip", "numpy"], "--skip numpy: not in the fast-moving list"),
    (["--notebooks", "notebooks/99-nope.ipynb"], "no notebook at notebooks/99-nope.ipynb"),
    (["--no-smoke", "--no-contract"], "leave nothing to run"),
])
def test_bad_options_fail_in_one_line_before_anything_is_installed(args, needle, tmp_path, capsys):
    rc, err = _cli(capsys, *args, "--out", str(tmp_path / "d"))
    assert rc == 2 and err.count("\n") == 1 and err.startswith("error: ") and needle in err, err
    assert not (tmp_path / "d").exists()


def test_no_network_is_one_clear_line(tmp_path, capsys):
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    rc, err = _cli(capsys, "--index-url", f"http://127.0.0.1:{port}/simple", "--out", str(tmp_path / "d"))
    assert rc == 2 and err.count("\n") == 1 and "cannot reach the package index" in err, err
    assert not (tmp_path / "d" / "venv").exists()


def test_an_interrupted_run_writes_what_it_had_and_exits_130(monkeypatch, tmp_path, capsys):
    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(drift, "newest_releases", interrupted)
    rc = cli.main(["drift-check", "--out", str(tmp_path / "d"), "--no-smoke"])
    assert rc == 130 and "interrupted" in capsys.readouterr().err
    doc = json.loads((tmp_path / "d" / "report.json").read_text())
    assert doc["interrupted"] and doc["verdict"].startswith("interrupted")


WORKFLOW = ROOT / ".github" / "workflows" / "drift.yml"


def test_the_weekly_workflow_is_valid_offline_and_never_gates(tmp_path):
    """check-jsonschema's vendored GitHub-workflow schema (no network) passes the workflow and catches a broken copy
    (one call for both: the tool is slow to start)."""
    import yaml

    if not shutil.which("check-jsonschema"):
        pytest.skip("check-jsonschema is not installed (pip install check-jsonschema==0.39.0)")
    bad = tmp_path / "broken-drift.yml"
    bad.write_text(WORKFLOW.read_text().replace("runs-on: ubuntu-latest", "runs_on: ubuntu-latest"))
    r = subprocess.run(["check-jsonschema", "--builtin-schema", "vendor.github-workflows", str(WORKFLOW), str(bad)],
                       capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 1 and "broken-drift.yml" in out and "runs-on" in out, out
    assert str(WORKFLOW) not in out and "drift.yml::" not in out.replace("broken-drift.yml::", ""), out
    wf = yaml.safe_load(WORKFLOW.read_text())
    triggers = wf[True] if True in wf else wf["on"]  # YAML 1.1 reads the key `on` as True
    assert set(triggers) == {"schedule", "workflow_dispatch"}, "only the schedule and a person start it"
    steps = wf["jobs"]["drift"]["steps"]
    check = next(s for s in steps if s.get("id") == "drift")
    assert "python -m helpers drift-check" in check["run"] and check["continue-on-error"] is True
    assert any(s.get("uses", "").startswith("actions/upload-artifact") and s.get("if") == "always()" for s in steps)


def test_a_venv_left_half_built_by_an_interrupted_run_is_rebuilt_and_a_working_one_reused(tmp_path):
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "stray-from-the-interrupted-run").write_text("x")
    said: list[str] = []
    py = drift.ensure_venv(venv, fresh=False, log=said.append)
    assert py.exists() and not (venv / "stray-from-the-interrupted-run").exists() and said == [f"creating {venv}"]
    left = next(venv.glob("lib/python*/site-packages")) / "~ransformers"  # what a pip install cut short leaves
    left.mkdir()
    assert drift.ensure_venv(venv, fresh=False, log=said.append) == py and said[-1].startswith("reusing")
    assert not left.exists()


def test_the_drift_env_runs_the_venv_python_this_checkout_and_an_absolute_build_folder(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    env = drift.drift_env(Path("build/drift/venv"), Path("build/drift/build"))
    assert env["PATH"].split(os.pathsep)[0] == str(tmp_path / "build/drift/venv/bin")
    assert env["PYTHONPATH"] == str(ROOT) and env["VIRTUAL_ENV"] == str(tmp_path / "build/drift/venv")
    assert env["EDGEAI_BUILD"] == str(tmp_path / "build/drift/build"), "a relative build folder moves with each cwd"
    assert env["JUPYTER_PATH"] == str(tmp_path / "build/drift/venv/share/jupyter")
