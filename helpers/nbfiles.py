"""The workbook's notebook files as JupyterLab opens them: kernel metadata, the contents page, prev/next links.

Introduced in the README (`python -m helpers contents`). Three things are generated here, never typed:
- the metadata JupyterLab writes when it connects a kernel (`kernelspec` with the installed spec's display
  name, the kernel's full `language_info`): committed notebooks carry exactly that, so opening one does not
  mark it changed (JupyterLab compares the two and flags any difference as unsaved);
- `CONTENTS.ipynb` at the root: one row per notebook, from its title (its only `# ` heading), with its lab;
- one final markdown cell tagged `nav` in every notebook, lab and solution: previous, contents, lab, next.
`sync(write=False)` lists what is stale (tests/test_contents.py fails on it); `sync(write=True)` fixes it.
Files are read and written as plain JSON in nbformat's layout (indent 1, sorted keys), so a file that is
already right is left byte for byte.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

from helpers.paths import ROOT

NAV_TAG = "nav"
NAV_ID = "nav"
CONTENTS = "CONTENTS.ipynb"
KERNEL_NAME = "python3"
TITLE = re.compile(r"^# (.+)$", re.MULTILINE)


# --- what JupyterLab writes when a kernel connects ---------------------------------------------------------

def kernel_metadata(kernel_name: str = KERNEL_NAME) -> dict[str, Any]:
    """`kernelspec` and `language_info` as JupyterLab sets them once this environment's kernel answers.

    The kernelspec comes from the installed kernel spec (`jupyter kernelspec list`); `language_info` is what
    ipykernel puts in its kernel_info reply (IPythonKernel.language_info: the running Python's version)."""
    from ipykernel.ipkernel import IPythonKernel

    try:
        from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

        spec = KernelSpecManager().get_kernel_spec(kernel_name)
        display, language = spec.display_name, spec.language
    except (ImportError, NoSuchKernel):  # ipykernel's own default spec, as `ipykernel install` writes it
        display, language = "Python 3 (ipykernel)", "python"
    return {"kernelspec": {"display_name": display, "language": language, "name": kernel_name},
            "language_info": json.loads(json.dumps(IPythonKernel.language_info))}


def set_kernel_metadata(nb: dict[str, Any], meta: dict[str, Any] | None = None) -> bool:
    """Give `nb` the kernelspec and language_info JupyterLab would write; True when something changed."""
    meta = meta or kernel_metadata()
    changed = False
    for key in ("kernelspec", "language_info"):
        if nb.setdefault("metadata", {}).get(key) != meta[key]:
            nb["metadata"][key] = json.loads(json.dumps(meta[key]))
            changed = True
    return changed


def set_cell_ids(nb: dict[str, Any]) -> bool:
    """Give every cell an id (nbformat 4.5 requires one; a reader adds a random one, which reads as a change).

    A missing id becomes `cell-NN` by position (or `cell-NN-k` if that is taken): the same on every run."""
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) < (4, 5):
        return False
    used = {c["id"] for c in nb["cells"] if c.get("id")}
    changed = False
    for i, cell in enumerate(nb["cells"]):
        if cell.get("id"):
            continue
        new, k = f"cell-{i:02d}", 1
        while new in used:
            new, k = f"cell-{i:02d}-{k}", k + 1
        cell["id"] = new
        used.add(new)
        changed = True
    return changed


# --- reading and writing notebooks as plain JSON -----------------------------------------------------------

def read(path: Path) -> dict[str, Any]:
    """A notebook as a dict (no validation, no ids invented)."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not valid notebook JSON ({exc}): restore it with `git checkout -- {path}`") \
            from None


def dumps(nb: dict[str, Any]) -> str:
    """nbformat's on-disk layout: what `nbformat.write` produces, so JupyterLab's own saves give no diff."""
    return json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"


def title(nb: dict[str, Any], path: Path | str = "notebook") -> str:
    """The notebook's title: its only `# ` heading, which opens the first cell (the nav cell aside)."""
    cells = [c for c in nb.get("cells") or [] if NAV_TAG not in c.get("metadata", {}).get("tags", [])]
    src = "".join(cells[0].get("source", "")) if cells else ""
    m = TITLE.match(src)
    if not m or cells[0].get("cell_type") != "markdown":
        raise ValueError(f"{path}: the first cell must be markdown starting with the title as a `# ` heading")
    return m.group(1).strip()


def _short(title_text: str) -> str:
    """'09 · GGUF in practice' -> 'GGUF in practice' (the number is shown in its own column)."""
    return re.sub(r"^(Lab\s+)?\d\d\s*·\s*", "", title_text)


# --- the workbook's files ------------------------------------------------------------------------------------

def lessons(root: Path = ROOT) -> list[Path]:
    """notebooks/NN-*.ipynb in reading order."""
    return sorted(p for p in (root / "notebooks").glob("[0-9][0-9]-*.ipynb"))


def labs(root: Path = ROOT) -> list[Path]:
    """labs/NN-*.ipynb (the exercises); each has a twin in labs/solutions/."""
    return sorted(p for p in (root / "labs").glob("[0-9][0-9]-*.ipynb"))


def lab_of(lesson: Path, root: Path = ROOT) -> Path | None:
    """The lab that goes with notebooks/NN-*.ipynb: labs/NN-*.ipynb (its name may differ), or None."""
    found = sorted((root / "labs").glob(f"{Path(lesson).name[:2]}-*.ipynb"))
    return found[0] if found else None


def _rel(target: Path, start: Path) -> str:
    """A link from a notebook in folder `start` to `target`, with forward slashes (markdown links)."""
    import os

    return Path(os.path.relpath(target, start)).as_posix()


def _link(text: str, target: Path, start: Path) -> str:
    return f"[{text}]({_rel(target, start).replace(' ', '%20')})"


def nav_source(path: Path, root: Path = ROOT) -> str:
    """The nav cell of `path`: previous and next lesson, the contents page, the lab or the lesson it belongs to."""
    path = Path(path)
    here = path.parent
    seq = lessons(root)
    contents = _link("Contents", root / CONTENTS, here)
    num = path.name[:2]
    lesson = next((p for p in seq if p.name[:2] == num), None)
    parts: list[str] = []
    if path.parent == root / "notebooks":
        i = seq.index(path)
        if i > 0:
            parts.append("← " + _link(title(read(seq[i - 1]), seq[i - 1]), seq[i - 1], here))
        parts.append(contents)
        lab = lab_of(path, root)
        if lab is not None:
            parts.append(_link(f"Lab {num}", lab, here))
        if i + 1 < len(seq):
            parts.append(_link(title(read(seq[i + 1]), seq[i + 1]), seq[i + 1], here) + " →")
    else:
        parts.append(contents)
        if lesson is not None:
            parts.append(_link(f"Notebook {title(read(lesson), lesson)}", lesson, here))
        if path.parent == root / "labs":
            sol = root / "labs" / "solutions" / path.name
            if sol.exists():
                parts.append(_link("Solution", sol, here))
        elif (root / "labs" / path.name).exists():
            parts.append(_link("The exercise", root / "labs" / path.name, here))
    return "---\n" + " · ".join(parts)


def nav_cell(source: str) -> dict[str, Any]:
    return {"cell_type": "markdown", "id": NAV_ID, "metadata": {"tags": [NAV_TAG]}, "source": _lines(source)}


def _lines(text: str) -> list[str]:
    """Source as nbformat stores it: a list of lines that keep their newline (the last one has none)."""
    return text.splitlines(keepends=True)


def set_nav_cell(nb: dict[str, Any], source: str) -> bool:
    """Make the one cell tagged `nav` the last cell, with `source`; True when the notebook changed."""
    cells = nb["cells"]
    navs = [c for c in cells if NAV_TAG in c.get("metadata", {}).get("tags", [])]
    want = nav_cell(source)
    if (nb.get("nbformat"), nb.get("nbformat_minor", 0)) < (4, 5):
        want.pop("id")
    if len(navs) == 1 and cells[-1] is navs[0] and navs[0] == want:
        return False
    nb["cells"] = [c for c in cells if c not in navs] + [want]
    return True


def contents_source(root: Path = ROOT) -> str:
    """The contents page's one markdown cell: a table of every notebook with its lab, from their titles."""
    rows = ["| | notebook | lab |", "|---|---|---|"]
    for p in lessons(root):
        name = _short(title(read(p), p))
        lab = lab_of(p, root)
        lab_cell = ""
        if lab is not None:
            lab_name = _short(title(read(lab), lab))
            lab_cell = _link(f"Lab {p.name[:2]}" + ("" if lab_name == name else f": {lab_name}"), lab, root)
            sol = root / "labs" / "solutions" / lab.name
            if sol.exists():
                lab_cell += f" ({_link('solution', sol, root)})"
        rows.append(f"| {p.name[:2]} | {_link(name, p, root)} | {lab_cell} |")
    return ("# Edge SLM Agents Workbook: contents\n\n"
            "Open a notebook from this page; each one ends with links to the previous and next notebook, its lab "
            "and this page. Run the cells from the top (the kernel starts with the notebook). Each lab's "
            "solution is in `labs/solutions/`.\n\n"
            + "\n".join(rows) + "\n\n"
            "This page is generated from the notebooks' titles by `python -m helpers contents`; edit a title in "
            "its notebook, not here. Start JupyterLab on this page with `python -m helpers lab`.")


def contents_notebook(root: Path = ROOT, meta: dict[str, Any] | None = None) -> dict[str, Any]:
    """CONTENTS.ipynb: markdown only (nothing to run), with the kernel metadata so it opens unchanged."""
    return {"cells": [{"cell_type": "markdown", "id": "contents", "metadata": {},
                       "source": _lines(contents_source(root))}],
            "metadata": dict(meta or kernel_metadata()), "nbformat": 4, "nbformat_minor": 5}


def managed(root: Path = ROOT) -> list[Path]:
    """Every notebook that gets the kernel metadata and a nav cell: lessons, labs, solutions."""
    return lessons(root) + labs(root) + sorted((root / "labs" / "solutions").glob("[0-9][0-9]-*.ipynb"))


def sync(root: Path = ROOT, write: bool = False, nav: bool = True, metadata: bool = True) -> list[str]:
    """What is stale (relative paths, with the reason); with `write`, fix each file (only those that change).

    nav: the contents page and the nav cells; metadata: the kernel metadata and cell ids."""
    meta = kernel_metadata()
    stale: list[str] = []
    for path in managed(root):
        raw = path.read_text(encoding="utf-8")
        nb = json.loads(raw)
        reasons = []
        if metadata and set_kernel_metadata(nb, meta):
            reasons.append("kernel metadata")
        if metadata and set_cell_ids(nb):
            reasons.append("cell ids")
        if nav and set_nav_cell(nb, nav_source(path, root)):
            reasons.append("nav cell")
        text = dumps(nb)
        if reasons or text != raw:
            stale.append(f"{path.relative_to(root).as_posix()} ({', '.join(reasons) or 'layout'})")
            if write:
                _write(path, text)
    if nav:
        page = root / CONTENTS
        text = dumps(contents_notebook(root, meta))
        if not page.exists() or page.read_text(encoding="utf-8") != text:
            stale.append(f"{CONTENTS} ({'missing' if not page.exists() else 'stale'})")
            if write:
                _write(page, text)
    return stale


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)  # atomic: an interrupted run never leaves half a notebook


# --- executed copies -----------------------------------------------------------------------------------------

def finish_executed(path: Path) -> bool:
    """Make an executed copy open as a learner expects: the kernel metadata JupyterLab writes (no unsaved
    changes on open), then signed as trusted, so its widget and HTML outputs render instead of showing as text.

    Returns whether the signature was stored (False, with a warning, if the signature database is locked)."""
    import nbformat
    from nbformat.sign import NotebookNotary

    path = Path(path)
    nb = nbformat.read(path, as_version=4)
    if set_kernel_metadata(nb):
        nbformat.write(nb, path)
    try:
        NotebookNotary().sign(nb)
        return True
    except Exception as exc:  # noqa: BLE001 - a locked or read-only signature database must not fail a run
        print(f"warning: could not mark {path.name} trusted ({type(exc).__name__}: {exc}); "
              f"`jupyter trust {path}` does it by hand", file=sys.stderr)
        return False


def is_trusted(path: Path) -> bool:
    """Whether JupyterLab will trust `path` (its signature is in this user's Jupyter signature database)."""
    import nbformat
    from nbformat.sign import NotebookNotary

    return NotebookNotary().check_signature(nbformat.read(path, as_version=4))
