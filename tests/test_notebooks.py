"""Notebook hygiene and the exercise notebooks' behaviour. The executed copies in build/executed are
checked by nbval (see README: the test command runs `run-all --smoke` first)."""

import json
import re
from pathlib import Path

import pytest

from helpers.paths import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "labs").rglob("*.ipynb"))
NOTEBOOKS = [p for p in NOTEBOOKS if ".ipynb_checkpoints" not in p.parts]


def test_there_are_notebooks_and_labs_with_solutions():
    names = {p.relative_to(ROOT).as_posix() for p in NOTEBOOKS}
    assert "notebooks/00-environment-check.ipynb" in names
    for lab in (ROOT / "labs").glob("*.ipynb"):
        assert (ROOT / "labs" / "solutions" / lab.name).exists(), f"{lab.name} has no solution"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_committed_notebook_is_clean(path: Path):
    nb = json.loads(path.read_text(encoding="utf-8"))
    assert nb["metadata"]["kernelspec"]["name"] == "python3"
    assert set(nb["metadata"]) <= {"kernelspec", "language_info"}, "stray notebook metadata"
    assert re.fullmatch(r"\d\d-[a-z0-9-]+\.ipynb", path.name), "name notebooks NN-short-title.ipynb"
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, "exactly one cell tagged 'parameters'"
    assert "SMOKE" in "".join(tagged[0]["source"])
    headings = [line for c in nb["cells"] if c["cell_type"] == "markdown"
                for line in "".join(c["source"]).splitlines() if line.startswith("# ")]
    assert len(headings) == 1 and nb["cells"][0]["source"][0].startswith("# "), "the title is the only # heading"
    for c in nb["cells"]:
        assert set(c.get("metadata", {})) <= {"tags"}, "stray cell metadata"
        if c["cell_type"] == "code":
            assert c["outputs"] == [] and c["execution_count"] is None, "outputs are not committed"
    text = "".join("".join(c["source"]) for c in nb["cells"])
    assert "microsoft_agent_framework" not in text and "0.0.0.0" not in text


@pytest.mark.parametrize("path", sorted((ROOT / "labs").glob("*.ipynb")), ids=lambda p: p.name)
def test_exercise_runs_up_to_its_first_todo(path: Path, tmp_path):
    import papermill as pm

    with pytest.raises(pm.PapermillExecutionError) as info:
        pm.execute_notebook(str(path), str(tmp_path / path.name), parameters={"SMOKE": True},
                            kernel_name="python3", cwd=str(path.parent), progress_bar=False)
    assert info.value.ename == "NotImplementedError"
    assert "TODO 1" in info.value.evalue and "labs/solutions" in info.value.evalue
