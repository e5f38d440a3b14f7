"""The phrase bank: user phrasings written by helper agents, drawn for a share of training requests.

Introduced in notebook 01 (meet the workbook's SLM). The generator's own templates are a few dozen per
tool, written by one author; a model trained on them recognises those wordings and little else. The bank
adds templates and no-tool texts written by separate helper agents that were shown only the tool
contract (never `synth.py` nor any evaluation set), asked for varied real-user wording. At build time a
template was dropped when its slot set was wrong, when a ticket template carried an urgency word (the
priority words come with their labels from `synth.request`), or when it could write a held-out text: a
dev template, or any case of `data/eval/dev.jsonl`, `fresh.jsonl` or `val.jsonl`; and a no-tool text was
dropped when it shared adjacent content words with a held-out no-tool text, or any content word of a short
one ("brilliant, ta"). Tests check both.

Slots: {oid} {cid} {sku} {city} {srv} {r} {time} {issue} {reason}, as in `synth.T`.
"""

from __future__ import annotations

from helpers.data.text_data import read_text_data

_BANK = read_text_data("phrasebank")  # data/text/phrasebank.txt

BANK_REQUESTS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _BANK["requests"].items()}

BANK_TEXTS: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in _BANK["texts"].items()}
