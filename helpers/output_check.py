"""What a learner reads, checked: `python -m helpers check-outputs` over the executed notebooks of `run-all`.

Used by tests/test_output_check.py after `python -m helpers run-all --smoke`. Three kinds of finding, each a
broken output left unexplained:

- `markup`: raw chat markup (`<tool_call>`, `</tool_call>`, special tokens such as `<|end|>`) on an output
  line labelled as an answer (`answer: ...`, `assistant text ...`, `reply: ...`, `greedy : ...`). Prompts,
  parser demos and token listings are not answers and are not flagged. A cell that shows an answer's markup on
  purpose says so in the markdown cell right after it, naming the marker (`<tool_call>`) or "raw markup".
- `cut`: an answer cut by the token limit, seen as a printed finish reason `length`
  (`finish_reason: length`, `finish_reason='length'`, `"finish_reason": "length"`), that no cell acknowledges.
  The acknowledgement convention: the cell's own output or the markdown cell right after it contains
  "cut at max_tokens".
- `promise`: markdown that calls a notebook "planned", "coming", "upcoming", "a later notebook" or "not written
  yet" (whether or not it exists: say what the notebook that exists teaches, or promise nothing), and any
  reference ("notebook 24", "notebooks 11-23", "lab 24") to a notebook or lab that does not exist.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKUP = re.compile(r"</?tool_call>|<\|[a-z_]+\|>")
ANSWER_WORDS = frozenset({"answer", "answers", "reply", "replies", "text", "content", "final", "greedy", "seed",
                          "output", "response", "says", "said"})
LENGTH = re.compile(r"finish[_ ]reason\W{0,4}length\b", re.IGNORECASE)
CUT_ACK = "cut at max_tokens"
PROMISE = re.compile(r"\b(planned|coming|upcoming|later notebooks?|future notebooks?|later lessons?|"
                     r"not (?:written|there|built) yet|yet to come|will be added)\b", re.IGNORECASE)
REF = re.compile(r"\b(notebooks?|lessons?|labs?)\s+(\d{2})(?:\s*(?:-|–|to|and|,)\s*(\d{2}))?", re.IGNORECASE)
SUBJECT = re.compile(r"\b(notebooks?|lessons?|labs?)\b", re.IGNORECASE)


@dataclass(frozen=True)
class Finding:
    """One broken output: where it is, what kind, the offending text and what to do."""

    notebook: str
    cell: int
    kind: str  # "markup" | "cut" | "promise"
    text: str
    fix: str

    def __str__(self) -> str:
        return f"{self.notebook} cell {self.cell}: {self.kind}: {self.text[:140]!r} -> {self.fix}"


def _source(cell: dict[str, Any]) -> str:
    src = cell.get("source", "")
    return "".join(src) if isinstance(src, list) else str(src)


def output_text(cell: dict[str, Any]) -> str:
    """The text a code cell shows: its streams, its results' text/plain and its errors."""
    parts = []
    for out in cell.get("outputs", []):
        text = out.get("text")
        if text is None:
            data = out.get("data", {})
            text = data.get("text/plain", "")
            if not text and out.get("output_type") == "error":
                text = f"{out.get('ename', '')}: {out.get('evalue', '')}"
        parts.append("".join(text) if isinstance(text, list) else str(text))
    return "\n".join(parts)


def _next_markdown(cells: list[dict[str, Any]], i: int) -> str:
    nxt = cells[i + 1] if i + 1 < len(cells) else None
    return _source(nxt) if nxt is not None and nxt.get("cell_type") == "markdown" else ""


def _is_answer_line(line: str, marker_at: int) -> bool:
    """Whether the words before the markup label the line as an answer (`answer:`, `assistant text`, ...)."""
    label = line[:marker_at].lower()
    if "'" in label or '"' in label or "{" in label:  # inside a quoted value, a dict, a repr: a raw view
        return False
    return bool(set(re.findall(r"[a-z]+", label)) & ANSWER_WORDS)


def _ranges(text: str) -> list[tuple[str, int]]:
    """(kind, number) for every notebook/lab reference; a range 'notebooks 11-23' gives both ends."""
    refs = []
    for m in REF.finditer(text):
        kind = "lab" if m.group(1).lower().startswith("lab") else "notebook"
        refs.append((kind, int(m.group(2))))
        if m.group(3):
            refs.append((kind, int(m.group(3))))
    return refs


def _sentences(markdown: str) -> list[str]:
    flat = re.sub(r"\s+", " ", markdown)
    return [s for s in re.split(r"(?<=[.!?])\s+(?=[A-Z`(*])", flat) if s.strip()]


def check_notebook(nb: dict[str, Any], name: str, notebooks: set[int], labs: set[int]) -> list[Finding]:
    """Every finding in one notebook (a parsed .ipynb); `notebooks` and `labs` are the numbers that exist."""
    cells = nb.get("cells", [])
    found: list[Finding] = []
    for i, cell in enumerate(cells):
        if cell.get("cell_type") == "markdown":
            for sentence in _sentences(_source(cell)):
                missing = sorted({f"{k} {n:02d}" for k, n in _ranges(sentence)
                                  if n not in (labs if k == "lab" else notebooks)})
                if missing:
                    found.append(Finding(name, i, "promise", sentence, f"{', '.join(missing)} does not exist: "
                                         "point to a notebook that exists, or promise nothing"))
                elif PROMISE.search(sentence) and SUBJECT.search(sentence):
                    found.append(Finding(name, i, "promise", sentence, f"'{PROMISE.search(sentence).group(0)}': "
                                         "say which existing notebook teaches it (by number), without "
                                         "'planned'/'coming'/'later'"))
            continue
        if cell.get("cell_type") != "code":
            continue
        shown = output_text(cell)
        after = _next_markdown(cells, i)
        for line in shown.splitlines():
            m = MARKUP.search(line)
            if m and _is_answer_line(line, m.start()) and m.group(0) not in after and "raw markup" not in after:
                found.append(Finding(name, i, "markup", line.strip(), "a user-facing answer holds chat markup: "
                                     "fix the parser/loop that let it through, or say under the cell why "
                                     f"(name {m.group(0)} or 'raw markup' in the next markdown cell)"))
            if LENGTH.search(line) and CUT_ACK not in shown.lower() and CUT_ACK not in after.lower():
                found.append(Finding(name, i, "cut", line.strip(), "an answer cut by the token limit: raise "
                                     f"max_tokens, or print/say '{CUT_ACK}' in this cell or the markdown after it"))
    return found


def existing_numbers(root: Path) -> tuple[set[int], set[int]]:
    """The notebook and lab numbers that exist under `root` (notebooks/NN-*.ipynb, labs/NN-*.ipynb)."""
    def nums(folder: Path) -> set[int]:
        return {int(p.name[:2]) for p in folder.glob("[0-9][0-9]-*.ipynb")}
    return nums(root / "notebooks"), nums(root / "labs")


def check_executed(executed: Path, root: Path) -> list[Finding]:
    """Findings over every executed notebook under `executed` (build/executed of `run-all`)."""
    if not executed.is_dir():
        raise FileNotFoundError(f"No executed notebooks at {executed}: run `python -m helpers run-all --smoke` first.")
    notebooks, labs = existing_numbers(root)
    found: list[Finding] = []
    for path in sorted(executed.rglob("*.ipynb")):
        if ".ipynb_checkpoints" in path.parts:
            continue
        nb = json.loads(path.read_text(encoding="utf-8"))
        found += check_notebook(nb, path.relative_to(executed).as_posix(), notebooks, labs)
    return found


__all__ = ["Finding", "CUT_ACK", "check_notebook", "check_executed", "existing_numbers", "output_text"]
