import re
import subprocess
import sys
import tomllib

from helpers.paths import ROOT


def test_environment_yml_installs_the_project_with_pip():
    env = (ROOT / "environment.yml").read_text()
    assert re.search(r"^\s+- python=3\.11\s*$", env, re.M)
    assert re.search(r"^\s+- pip:\s*\n\s+- -e \.\s*$", env, re.M), "environment.yml must `pip install -e .`"
    assert "conda-forge" in env


def test_pyproject_pins_the_cpu_torch_and_declares_every_package():
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=\[ ]", d)[0].lower() for d in deps}
    assert "torch==2.13.0" in deps
    for needed in ("jupyterlab", "ipywidgets", "ollama", "openai", "transformers", "papermill", "nbval",
                   "llama-cpp-python", "foundry-local-sdk", "onnxruntime", "onnxruntime-genai",
                   "agent-framework-core", "agent-framework-openai", "prometheus-client", "matplotlib", "psutil"):
        assert needed in names, needed
    assert "llama-cpp-python[server]==0.3.36" in deps


def test_readme_has_the_two_commands_and_ci_runs_the_test_command():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```bash\n(.*?)```", readme, re.S)
    assert blocks, "README needs its quickstart commands in a bash block"
    quick = [line for line in blocks[0].splitlines() if line.strip() and not line.startswith("#")]
    assert len(quick) == 2, f"the quickstart is exactly two commands after cloning: {quick}"
    ci = (ROOT / ".ci" / "run").read_text()
    assert quick[1].strip() in ci, ".ci/run must call the README's test command"


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "helpers", *args], capture_output=True, text=True, timeout=300,
                          cwd=str(ROOT))


def test_doctor_runs_without_external_runtimes():
    res = _cli("doctor")
    assert res.returncode == 0, res.stderr
    assert "== runtimes" in res.stdout and "ollama" in res.stdout and "what to do" in res.stdout
    assert re.search(r"^embedded\s+yes", res.stdout, re.M)


def test_run_all_rejects_a_missing_notebook():
    res = _cli("run-all", "notebooks/99-nope.ipynb")
    assert res.returncode == 2 and "No notebook at notebooks/99-nope.ipynb" in res.stderr


def test_unknown_runtime_env_is_an_error():
    import os

    for cmd in (["eval-toolcalls", "data/eval/dev.jsonl"], ["run-all", "--smoke"], ["doctor"]):
        res = subprocess.run([sys.executable, "-m", "helpers", *cmd], capture_output=True, text=True, cwd=str(ROOT),
                             env={**os.environ, "EDGEAI_RUNTIME": "gpt5"}, timeout=120)
        assert res.returncode == 2 and "Unknown runtime 'gpt5'" in res.stderr, cmd


def test_manifest_matches_the_shipped_files():
    from helpers.registry import verify

    rows = verify()
    assert rows and all(r["ok"] for r in rows), [r for r in rows if not r["ok"]]
