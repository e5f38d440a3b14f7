"""The registry of shipped artefacts: every file in data/ that the workbook reads, with its checksum.

Introduced in notebook 00 (`python -m helpers doctor` verifies it). `data/manifest.json` is the one source
of truth; `python -m helpers export` rewrites it after rebuilding the files.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from helpers.paths import DATA, MANIFEST

# name -> path relative to data/ (the manifest adds size and sha256)
ARTEFACTS: dict[str, str] = {
    "hf-model": "model/model.safetensors",
    "hf-config": "model/config.json",
    "generation-config": "model/generation_config.json",
    "tokenizer": "model/tokenizer.json",
    "tokenizer-sp": "model/tokenizer.model",
    "tokenizer-config": "model/tokenizer_config.json",
    "chat-template": "model/chat_template.jinja",
    "train-record": "model/train_record.json",
    "gguf-f16": "gguf/edge-slm-f16.gguf",
    "gguf-q8_0": "gguf/edge-slm-q8_0.gguf",
    "onnx-int4": "onnx/int4/model.onnx.data",
    "onnx-int4-graph": "onnx/int4/model.onnx",
    "onnx-int4-genai-config": "onnx/int4/genai_config.json",
    "onnx-int4-tokenizer": "onnx/int4/tokenizer.json",
    "onnx-int4-tokenizer-config": "onnx/int4/tokenizer_config.json",
    "onnx-int4-chat-template": "onnx/int4/chat_template.jinja",
    "onnx-fp32": "onnx/fp32/model.onnx.data",
    "onnx-fp32-graph": "onnx/fp32/model.onnx",
    "onnx-fp32-genai-config": "onnx/fp32/genai_config.json",
    "onnx-fp32-tokenizer": "onnx/fp32/tokenizer.json",
    "onnx-fp32-tokenizer-config": "onnx/fp32/tokenizer_config.json",
    "onnx-fp32-chat-template": "onnx/fp32/chat_template.jinja",
    "dev-set": "eval/dev.jsonl",
    "agent-dev-set": "eval/agent_dev.jsonl",
    "fresh-set": "eval/fresh.jsonl",
    "val-set": "eval/val.jsonl",
    "realistic-set": "eval/realistic.jsonl",
    "guardrail-set": "eval/guardrails.jsonl",
    "shop-db": "shop.sqlite",
    # the dialogue generator's word lists, templates and canned replies, and the phrase bank (helpers.data)
    "text-values": "text/synth_values.txt",
    "text-requests": "text/synth_templates.txt",
    "text-chat": "text/synth_chat.txt",
    "phrase-bank": "text/phrasebank.txt",
    "text-realistic": "text/synth_realistic.txt",
    "text-korean": "text/synth_korean.txt",
    # answers recorded from runtime documentation and the course's quoted recipes (data/recorded/README.md)
    "recorded-ollama-chat-tools-request": "recorded/ollama/chat_tools_request.json",
    "recorded-ollama-chat-tools": "recorded/ollama/chat_tools.json",
    "recorded-ollama-chat-stream-chunk": "recorded/ollama/chat_stream_chunk.json",
    "recorded-ollama-chat-stream-final": "recorded/ollama/chat_stream_final.json",
    "recorded-ollama-chat-unload": "recorded/ollama/chat_unload.json",
    "recorded-ollama-ps": "recorded/ollama/ps.json",
    "recorded-ollama-show": "recorded/ollama/show.json",
    "recorded-ollama-create-status": "recorded/ollama/create_status.json",
    "recorded-vllm-metrics": "recorded/vllm/metrics-docs.txt",
    "recorded-readme": "recorded/README.md",
    "course-recipes": "recorded/course/recipes.json",
}


def sha256(path: str | Path) -> str:
    """Hex SHA-256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@lru_cache(maxsize=64)
def _sha256_of(path: str, size: int, mtime_ns: int) -> str:
    return sha256(path)


def sha256_cached(path: str | Path) -> str:
    """SHA-256 of a file, computed once per (path, size, modification time) in this process."""
    st = Path(path).stat()
    return _sha256_of(str(path), st.st_size, st.st_mtime_ns)


def artefact_path(name: str) -> Path:
    """Absolute path of a registered artefact (whether or not it exists yet)."""
    if name not in ARTEFACTS:
        raise KeyError(f"Unknown artefact {name!r}; registered: {sorted(ARTEFACTS)}")
    return DATA / ARTEFACTS[name]


def default_gguf() -> Path:
    """The GGUF file the embedded and llamacpp runtimes load unless told otherwise (the shipped f16 model)."""
    return artefact_path("gguf-f16")


def load_manifest() -> dict[str, Any]:
    """The manifest's entries, or {} before the first export."""
    if not MANIFEST.exists():
        return {}
    return json.loads(MANIFEST.read_text())


def write_manifest(extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Recompute size and checksum of every artefact present and write data/manifest.json."""
    entries: dict[str, Any] = {}
    for name, rel in ARTEFACTS.items():
        p = DATA / rel
        if p.exists():
            entries[name] = {"path": rel, "bytes": p.stat().st_size, "sha256": sha256(p)}
    doc = {"artefacts": entries, **(extra or {})}
    MANIFEST.write_text(json.dumps(doc, indent=1) + "\n")
    return doc


def verify() -> list[dict[str, Any]]:
    """Check every registered artefact against the manifest: one row per artefact with `ok` and a note."""
    manifest = load_manifest().get("artefacts", {})
    rows = []
    for name, rel in ARTEFACTS.items():
        p = DATA / rel
        entry = manifest.get(name)
        if not p.exists():
            rows.append({"name": name, "path": rel, "ok": False, "note": "missing: run `python -m helpers export`"})
        elif entry is None:
            rows.append({"name": name, "path": rel, "ok": False, "note": "not in data/manifest.json"})
        elif p.is_dir():
            rows.append({"name": name, "path": rel, "ok": False, "note": "a folder where a file belongs: move it "
                         "aside and restore the file (`git checkout -- data`)"})
        else:
            ok = sha256_cached(p) == entry["sha256"]
            rows.append({"name": name, "path": rel, "ok": ok, "bytes": p.stat().st_size,
                         "sha256": entry["sha256"][:12],
                         "note": "checksum matches" if ok else "checksum differs from data/manifest.json"})
    return rows
