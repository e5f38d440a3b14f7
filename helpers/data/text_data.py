"""Read the generator's word lists and templates from data/text (introduced in notebook 01).

Each file holds named lists, one phrasing a line written as a JSON string, so that spaces at either end and
empty strings stay visible; `[group/name]` starts a list, `#` starts a comment line. The files are registered
artefacts (`TEXT_FILES` names them in `helpers.registry`): `python -m helpers doctor` checks their checksums.
"""

from __future__ import annotations

import json
from typing import Any

from helpers.registry import artefact_path

# file name (data/text/<name>.txt) -> its artefact name in helpers.registry
TEXT_FILES = {"synth_values": "text-values", "synth_templates": "text-requests", "synth_chat": "text-chat",
              "phrasebank": "phrase-bank", "synth_realistic": "text-realistic", "synth_korean": "text-korean"}


def parse_text_data(text: str, source: str = "<text>") -> dict[str, Any]:
    """Nested dicts of lists from the file format above: `[a/b]` then lines gives {"a": {"b": [...]}}."""
    out: dict[str, Any] = {}
    current: list[str] | None = None
    for no, line in enumerate(text.splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("[") and line.endswith("]"):
            *groups, name = line[1:-1].split("/")
            node = out
            for g in groups:
                node = node.setdefault(g, {})
            if name in node:
                raise ValueError(f"{source}:{no}: the list [{line[1:-1]}] appears twice; merge the two.")
            current = node[name] = []
            continue
        if current is None:
            raise ValueError(f"{source}:{no}: a phrasing before the first [section] line; add one above it.")
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{source}:{no}: not a JSON string ({exc.msg}); write the phrasing in double quotes, "
                             f'e.g. "where is my order {{oid}}"') from None
        if not isinstance(item, str):
            raise ValueError(f"{source}:{no}: {line!r} is not a JSON string; write it in double quotes.")
        current.append(item)
    return out


def read_text_data(name: str) -> dict[str, Any]:
    """The lists of data/text/<name>.txt (one of TEXT_FILES) as nested dicts (notebook 01)."""
    if name not in TEXT_FILES:
        raise KeyError(f"Unknown text data {name!r}; choose one of {', '.join(TEXT_FILES)}.")
    path = artefact_path(TEXT_FILES[name])
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: restore data/ from git (`git checkout -- data/text`).")
    return parse_text_data(path.read_text(encoding="utf-8"), str(path))
