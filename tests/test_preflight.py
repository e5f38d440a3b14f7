"""The preflight (`doctor --fit`): read from the shipped GGUF, and sized on synthetic specs of large models."""

import json
import platform
import shutil
from pathlib import Path

import pytest

from helpers.preflight import (
    X86_FEATURES,
    ModelSpec,
    compute_buffer_bytes,
    cpu_features,
    fit,
    fit_file,
    gpus,
    kv_cache_bytes,
    spec_from_gguf,
    weights_bytes_as,
)
from helpers.registry import artefact_path

GiB = 2**30

# Llama-3-8B's published shape (32 layers, 4096 wide, 32 heads, 8 KV heads, 128k vocabulary, 8k context).
LLAMA3_8B = ModelSpec(name="llama-3-8b (synthetic)", architecture="llama", n_layers=32, n_embd=4096, n_heads=32,
                      n_kv_heads=8, n_vocab=128256, context_length=8192, weights_bytes=16_060_522_496,
                      matrix_elements=8_030_000_000, other_elements=261_120)


def test_spec_from_the_shipped_gguf():
    path = artefact_path("gguf-f16")
    spec = spec_from_gguf(path)
    vocab = json.loads(artefact_path("tokenizer").read_text())["model"]["vocab"]
    assert spec.architecture == "llama" and spec.n_layers >= 1 and spec.n_vocab == len(vocab)
    assert 0.9 * path.stat().st_size < spec.weights_bytes <= path.stat().st_size
    # f16 matrices + f32 norms: the weights are 2 bytes per matrix element plus 4 per other element
    assert spec.weights_bytes == 2 * spec.matrix_elements + 4 * spec.other_elements


def test_kv_cache_of_llama3_8b_at_8k_is_one_gib():
    assert kv_cache_bytes(LLAMA3_8B, 8192) == 1 * GiB
    assert kv_cache_bytes(LLAMA3_8B, 8192, parallel=4) == 4 * GiB
    assert kv_cache_bytes(LLAMA3_8B, 8192, bytes_per_value=1) == GiB // 2  # q8_0-sized cache, roughly


def test_quant_sizes_follow_ggml_block_sizes():
    q8 = weights_bytes_as(LLAMA3_8B, "Q8_0")
    q4 = weights_bytes_as(LLAMA3_8B, "Q4_K")
    assert q8 == pytest.approx(8_030_000_000 * 34 / 32 + 4 * 261_120)
    assert q4 == pytest.approx(8_030_000_000 * 144 / 256 + 4 * 261_120)


def test_the_workbook_model_fits_here():
    rep = fit_file(artefact_path("gguf-f16"), ctx=512, measure_bandwidth=False, gpu_list=[])
    assert rep.verdict == "fits" and rep.needed_bytes < 200 * 2**20
    assert "verdict: fits" in rep.text()


def test_8b_at_f16_in_12_gib_needs_q6_k():
    rep = fit(LLAMA3_8B, ctx=8192, ram_free_bytes=12 * GiB, measure_bandwidth=False, gpu_list=[])
    assert rep.verdict == "fits with Q6_K", rep.text()
    assert "quantize to Q6_K" in rep.advice


def test_8b_in_4_gib_does_not_fit_and_says_what_to_do():
    rep = fit(LLAMA3_8B, ctx=8192, ram_free_bytes=4 * GiB, measure_bandwidth=False, gpu_list=[])
    assert rep.verdict == "does not fit"
    assert "smaller model" in rep.advice and "--ctx" in rep.advice


def test_gpu_verdicts_use_free_vram():
    gl = [{"index": 0, "name": "big", "free_bytes": 80 * GiB, "total_bytes": 80 * GiB},
          {"index": 1, "name": "small", "free_bytes": 8 * GiB, "total_bytes": 8 * GiB}]
    rep = fit(LLAMA3_8B, ctx=8192, ram_free_bytes=64 * GiB, measure_bandwidth=False, gpu_list=gl)
    assert rep.gpu_verdicts == ["fits", "fits with Q4_K_M"]
    assert "GPU 1 small" in rep.text()


def test_bad_requests_get_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="trained for"):
        fit(LLAMA3_8B, ctx=100_000, ram_free_bytes=GiB, measure_bandwidth=False, gpu_list=[])
    with pytest.raises(ValueError, match="parallel"):
        fit(LLAMA3_8B, ctx=512, parallel=0, ram_free_bytes=GiB, measure_bandwidth=False, gpu_list=[])
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"not a gguf at all")
    with pytest.raises(ValueError, match="not a GGUF file"):
        fit_file(bad)
    with pytest.raises(FileNotFoundError, match="No file"):
        fit_file(tmp_path / "missing.gguf")


def test_compute_buffer_grows_with_context():
    assert compute_buffer_bytes(LLAMA3_8B, 8192) > compute_buffer_bytes(LLAMA3_8B, 1024)


def test_cpu_features_and_gpus_on_this_machine():
    feats = cpu_features()
    if platform.machine() == "x86_64" and Path("/proc/cpuinfo").exists():
        assert set(feats) == set(X86_FEATURES) and feats["sse3"]  # every x86-64 Linux CPU has SSE3
    if shutil.which("nvidia-smi") is None:
        assert gpus() == []  # no driver, no GPU: the report says CPU only


def test_doctor_fit_command(capsys):
    from helpers.cli import main

    assert main(["doctor", "--fit", str(artefact_path("gguf-q8_0")), "--ctx", "256"]) == 0
    out = capsys.readouterr().out
    assert "edge-slm-q8_0.gguf" in out and "verdict: fits" in out
