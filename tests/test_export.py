"""The export command reproduces the shipped GGUF and ONNX Runtime GenAI files byte for byte."""

import pytest

from helpers.model.export import GGUF_TYPES, hf_to_gguf, hf_to_onnx_genai, quantize_gguf
from helpers.paths import MODEL_DIR
from helpers.registry import load_manifest, sha256

def test_gguf_and_onnx_exports_reproduce_the_shipped_files(tmp_path):
    shipped = load_manifest()["artefacts"]
    f16 = hf_to_gguf(MODEL_DIR, tmp_path / "edge-slm-f16.gguf", "f16")
    assert sha256(f16) == shipped["gguf-f16"]["sha256"]
    q8 = quantize_gguf(f16, tmp_path / "edge-slm-q8_0.gguf", "Q8_0")
    assert sha256(q8) == shipped["gguf-q8_0"]["sha256"]
    out = hf_to_onnx_genai(MODEL_DIR, tmp_path / "int4", "int4")
    assert sha256(out / "model.onnx.data") == shipped["onnx-int4"]["sha256"]

def test_quantize_rejects_bad_input(tmp_path):
    with pytest.raises(ValueError, match="Unknown GGUF type 'Q3_X'"):
        quantize_gguf(tmp_path / "a.gguf", tmp_path / "b.gguf", "Q3_X")
    with pytest.raises(FileNotFoundError, match="No GGUF file"):
        quantize_gguf(tmp_path / "missing.gguf", tmp_path / "b.gguf", "Q4_K_M")
    fake = tmp_path / "not.gguf"
    fake.write_bytes(b"PK\x03\x04 this is a zip")
    with pytest.raises(ValueError, match="is not a GGUF file"):
        quantize_gguf(fake, tmp_path / "b.gguf", "Q4_K_M")
    assert {"Q2_K", "Q3_K_M", "Q4_0", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K", "Q8_0"} <= set(GGUF_TYPES)
    with pytest.raises(ValueError, match="precision must be"):
        hf_to_onnx_genai(MODEL_DIR, tmp_path / "x", "int3")
