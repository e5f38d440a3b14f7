"""JSON Lines, read and written in one place: eval sets, agent cases, reports (introduced in notebook 01).

UTF-8, one JSON value a line, non-ASCII kept as it is (`ensure_ascii=False`), so the files diff well and the
dev set's checksum is stable.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator


def iter_jsonl(path: str | Path, missing: str) -> Iterator[tuple[int, Any]]:
    """(line number, parsed value) for each non-blank line of a JSONL file; `missing` is the error text when
    the file does not exist, and a broken line is a ValueError naming it."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(missing)
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a folder: give a JSONL file (one case per line), e.g. data/eval/dev.jsonl.")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path} is not UTF-8 text (byte {exc.start}): give a JSONL file.") from None
    for n, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}:{n}: not valid JSON ({exc.msg}).") from None
        yield n, value


def write_jsonl(rows: Iterable[Any], path: str | Path) -> None:
    """Write rows as JSON lines (UTF-8, one object a line)."""
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
