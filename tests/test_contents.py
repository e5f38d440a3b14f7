"""The contents page, the nav cells and the kernel metadata (helpers/nbfiles.py): current in the repository,
generated idempotently, and equal to what the kernel reports (so JupyterLab opens a notebook unchanged)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from helpers import nbfiles
from helpers.paths import BUILD, ROOT


def test_contents_page_and_nav_cells_are_current():
    stale = nbfiles.sync(ROOT, write=False, metadata=False)
    assert not stale, (f"{len(stale)} stale (e.g. {stale[:3]}): run `python -m helpers contents` and commit the "
                       "notebooks it updates")


def test_committed_metadata_is_what_jupyterlab_writes():
    """JupyterLab sets kernelspec and language_info from the kernel and flags any difference as unsaved."""
    want = nbfiles.kernel_metadata()
    wrong = []
    for path in nbfiles.managed(ROOT):
        meta = nbfiles.read(path)["metadata"]
        if {k: meta.get(k) for k in want} != want:
            wrong.append(path.relative_to(ROOT).as_posix())
    recorded = {json.dumps(nbfiles.read(p)["metadata"].get("language_info", {}).get("version"))
                for p in nbfiles.managed(ROOT)}
    if wrong and len(recorded) == 1 and recorded - {"null", json.dumps(want["language_info"]["version"])}:
        pytest.skip(f"this Python ({sys.version.split()[0]}) is not the one the notebooks record ({recorded.pop()}): "
                    "JupyterLab here will mark them changed on open; `python -m helpers contents` re-records them")
    assert not wrong, (f"{len(wrong)} notebook(s) would show unsaved changes when opened (e.g. {wrong[:3]}): run "
                       "`python -m helpers contents --metadata-only` and commit")


def test_kernel_metadata_is_what_the_kernel_reports():
    """kernel_metadata() against a real kernel's kernel_info reply (what JupyterLab copies into the notebook)."""
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name="python3")
    try:
        reply = kc.kernel_info(reply=True, timeout=60)["content"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    assert nbfiles.kernel_metadata()["language_info"] == reply["language_info"]
    assert nbfiles.kernel_metadata()["kernelspec"]["display_name"] == km.kernel_spec.display_name


@pytest.fixture()
def workbook(tmp_path: Path) -> Path:
    """A copy of three notebooks, their labs and solutions (notebook 01's lab has another name)."""
    for sub in ("notebooks", "labs", "labs/solutions"):
        (tmp_path / sub).mkdir(parents=True)
    for n in ("00", "01", "02"):
        for sub in ("notebooks", "labs", "labs/solutions"):
            for p in (ROOT / sub).glob(f"{n}-*.ipynb"):
                shutil.copy(p, tmp_path / sub / p.name)
    return tmp_path


def test_sync_writes_once_then_nothing_is_stale(workbook: Path):
    first = nbfiles.sync(workbook, write=True)
    assert any(s.startswith(nbfiles.CONTENTS) for s in first)
    before = {p: p.read_bytes() for p in workbook.rglob("*.ipynb")}
    assert nbfiles.sync(workbook, write=True) == [], "a second run changed something"
    assert {p: p.read_bytes() for p in workbook.rglob("*.ipynb")} == before
    nb = nbfiles.read(workbook / "notebooks" / "01-meet-the-workbook-slm.ipynb")
    navs = [c for c in nb["cells"] if nbfiles.NAV_TAG in c["metadata"].get("tags", [])]
    assert len(navs) == 1 and nb["cells"][-1] is navs[0] and navs[0]["cell_type"] == "markdown"
    text = "".join(navs[0]["source"])
    assert "00-environment-check.ipynb" in text and "02-what-is-an-agent.ipynb" in text
    assert "../labs/01-train-your-own-slm.ipynb" in text and "../CONTENTS.ipynb" in text
    assert not any(line.startswith("# ") for line in text.splitlines()), "the title must stay the only # heading"


def test_every_generated_link_resolves(workbook: Path):
    import re

    nbfiles.sync(workbook, write=True)
    for path in [*nbfiles.managed(workbook), workbook / nbfiles.CONTENTS]:
        nb = nbfiles.read(path)
        cell = nb["cells"][-1] if path.name != nbfiles.CONTENTS else nb["cells"][0]
        links = re.findall(r"\]\(([^)]+)\)", "".join(cell["source"]))
        assert links, f"{path.name}: no links"
        for link in links:
            assert (path.parent / link).resolve().exists(), f"{path.relative_to(workbook)} links to missing {link}"


@pytest.mark.parametrize("damage", ["moved", "doubled", "edited", "title", "metadata", "no id"])
def test_stale_files_are_found(workbook: Path, damage: str):
    nbfiles.sync(workbook, write=True)
    path = workbook / "notebooks" / "01-meet-the-workbook-slm.ipynb"
    nb = nbfiles.read(path)
    if damage == "moved":
        nb["cells"].insert(0, nb["cells"].pop())
    elif damage == "doubled":
        nb["cells"].append(json.loads(json.dumps(nb["cells"][-1])))
    elif damage == "edited":
        nb["cells"][-1]["source"] = ["---\n", "[Contents](../CONTENTS.ipynb)"]
    elif damage == "title":  # a renamed notebook: its neighbours' links and the contents page go stale
        nb["cells"][0]["source"][0] = "# 01 · A new title\n"
    elif damage == "metadata":
        nb["metadata"]["language_info"] = {"name": "python"}
    else:
        del nb["cells"][3]["id"]
    path.write_text(nbfiles.dumps(nb), encoding="utf-8")
    stale = nbfiles.sync(workbook, write=False)
    assert stale, f"{damage}: not detected"
    if damage == "title":
        assert any("00-environment-check" in s for s in stale) and any("CONTENTS" in s for s in stale)
    nbfiles.sync(workbook, write=True)
    assert nbfiles.sync(workbook, write=False) == []


def test_a_notebook_without_a_title_is_a_clear_error(workbook: Path):
    path = workbook / "notebooks" / "02-what-is-an-agent.ipynb"
    nb = nbfiles.read(path)
    nb["cells"][0]["source"] = ["## Overview\n"]
    path.write_text(nbfiles.dumps(nb), encoding="utf-8")
    with pytest.raises(ValueError, match="title as a `# ` heading"):
        nbfiles.sync(workbook, write=False)


def test_finish_executed_writes_kernel_metadata_and_trusts(tmp_path: Path):
    import nbformat

    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("1 + 1", id="c1")],
                                  metadata={"kernelspec": {"display_name": "Python 3", "language": "python",
                                                           "name": "python3"}, "language_info": {"name": "python"}})
    nb.cells[0].outputs = [nbformat.v4.new_output("display_data", data={"text/html": f"<b>{tmp_path.name}</b>"})]
    path = tmp_path / "executed.ipynb"
    nbformat.write(nb, path)
    assert not nbfiles.is_trusted(path)
    assert nbfiles.finish_executed(path) is True
    assert nbfiles.is_trusted(path)
    assert {k: nbfiles.read(path)["metadata"][k] for k in ("kernelspec", "language_info")} == \
        nbfiles.kernel_metadata()


@pytest.mark.skipif(not (BUILD / "executed" / "notebooks").exists(), reason="no executed copies: run run-all first")
def test_executed_copies_are_trusted_and_open_unchanged():
    want = nbfiles.kernel_metadata()
    copies = sorted((BUILD / "executed" / "notebooks").glob("*.ipynb"))
    untrusted = [p.name for p in copies if not nbfiles.is_trusted(p)]
    assert not untrusted, f"not trusted (widgets would show as text): {untrusted[:3]}; run-all signs them"
    other = [p.name for p in copies if {k: nbfiles.read(p)["metadata"].get(k) for k in want} != want]
    assert not other, f"would show unsaved changes when opened: {other[:3]}"
