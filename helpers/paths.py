"""Where the workbook's files live: one place for every path (notebook 00 prints them)."""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "data"
BUILD = Path(os.environ.get("EDGEAI_BUILD", ROOT / "build"))
MODEL_DIR = DATA / "model"  # transformers weights + tokenizer of the workbook's SLM
GGUF_DIR = DATA / "gguf"
ONNX_DIR = DATA / "onnx"
EVAL_DIR = DATA / "eval"
MANIFEST = DATA / "manifest.json"
MODEL_NAME = "edge-slm"
