"""helpers.quant.onnx: int8 dynamic quantization of an ORT GenAI folder, input checks, ORT GenAI logits."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from helpers.paths import ONNX_DIR
from helpers.quant import onnx as qo


def _tiny_folder(path: Path, rows: int = 64, cols: int = 32, seed: int = 123) -> tuple[Path, np.ndarray]:
    """A folder shaped like an ORT GenAI folder around a one-MatMul ONNX model Y = X @ W."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    w = np.random.default_rng(seed).normal(0, 0.1, (rows, cols)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["Y"])], "tiny",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", rows])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", cols])],
        [numpy_helper.from_array(w, "W")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.mkdir(parents=True)
    onnx.save(model, str(path / "model.onnx"))
    (path / "genai_config.json").write_text(json.dumps({"model": {"decoder": {"filename": "model.onnx"}}}))
    (path / "tokenizer.json").write_text("{}")
    return path, w


def _run(model_file: Path, x: np.ndarray) -> np.ndarray:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(model_file), providers=["CPUExecutionProvider"])
    return sess.run(None, {"X": x})[0]


def test_quantize_int8_shrinks_weights_and_keeps_outputs_close(tmp_path):
    src, w = _tiny_folder(tmp_path / "fp32")
    dst = qo.quantize_int8(src, tmp_path / "int8")
    assert (dst / "genai_config.json").exists() and (dst / "tokenizer.json").exists(), "config and tokenizer copied"
    assert qo.model_bytes(dst) < 0.5 * qo.model_bytes(src), "int8 weights take about a quarter of fp32"
    import onnx

    ops = {n.op_type for n in onnx.load(str(dst / "model.onnx")).graph.node}
    assert "MatMulInteger" in ops and "MatMul" not in ops
    x = np.random.default_rng(7).normal(0, 1, (4, w.shape[0])).astype(np.float32)
    ref, got = _run(src / "model.onnx", x), _run(dst / "model.onnx", x)
    assert np.allclose(ref, x @ w, atol=1e-5)
    rel = np.abs(got - ref).max() / np.abs(ref).max()
    assert 0 < rel < 0.03, f"int8 outputs should be close to fp32 but not identical, got relative error {rel}"


def test_quantize_int8_refuses_to_overwrite_its_source(tmp_path):
    src, _ = _tiny_folder(tmp_path / "fp32")
    with pytest.raises(ValueError, match="new folder"):
        qo.quantize_int8(src, src)


def test_missing_or_wrong_folders_get_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="hf_to_onnx_genai"):
        qo.check_genai_folder(tmp_path / "nope")
    (tmp_path / "plain").mkdir()
    with pytest.raises(FileNotFoundError, match="not an ORT GenAI folder"):
        qo.quantize_int8(tmp_path / "plain", tmp_path / "out")
    src, _ = _tiny_folder(tmp_path / "fp32")
    with pytest.raises(NotADirectoryError, match="pass the ORT GenAI folder"):
        qo.load(src / "model.onnx")


def test_a_file_that_is_not_onnx_is_rejected(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_text("this is not a protobuf\n" * 10)
    with pytest.raises(ValueError, match="not an ONNX model"):
        qo.check_onnx_file(bad)
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "genai_config.json").write_text(json.dumps({"model": {"decoder": {"filename": "model.onnx"}}}))
    (folder / "model.onnx").write_bytes(b"\x00\x01garbage")
    with pytest.raises(ValueError, match="not an ONNX model"):
        qo.check_genai_folder(folder)


def test_logits_are_chunked_like_llama_perplexity():
    from helpers.quant.measure import perplexity

    vocab, n_ctx = 16, 8
    seen = []

    def uniform(ids):  # a stand-in model: uniform next-token distribution
        seen.append(list(ids))
        return np.zeros((len(ids), vocab))

    tokens = list(np.random.default_rng(123).integers(2, vocab, size=20))
    lg, tg = qo.logits(uniform, tokens, n_ctx=n_ctx, bos=1)
    assert len(seen) == 2 and all(c[0] == 1 and len(c) == n_ctx for c in seen), "two whole chunks, each from BOS"
    assert lg.shape == (2 * (n_ctx // 2 - 1), vocab)
    assert tg.tolist() == tokens[n_ctx // 2 + 1:n_ctx] + tokens[n_ctx + n_ctx // 2 + 1:2 * n_ctx], "second halves"
    assert np.isclose(perplexity(lg, tg), vocab)
    with pytest.raises(ValueError, match="less than one chunk"):
        qo.logits(uniform, tokens[:5], n_ctx=n_ctx)
    with pytest.raises(TypeError, match="og.Model"):
        qo.logits(42, tokens, n_ctx=n_ctx)


@pytest.mark.skipif(not (ONNX_DIR / "int4" / "genai_config.json").exists(), reason="no shipped ORT GenAI folder")
def test_prompt_logits_agree_with_the_generation_loop():
    model = qo.load(ONNX_DIR / "int4")
    import onnxruntime_genai as og

    tok = og.Tokenizer(model)
    ids = list(tok.encode("<s><|user|>hi there<|end|><|assistant|>"))
    logits = qo.prompt_logits(model, ids)
    assert logits.shape[0] == len(ids)
    first = qo.greedy(model, tok, ids, max_new_tokens=1)
    assert first == [] or first[0] == int(logits[-1].argmax()), "the first greedy token is the argmax of the logits"
    assert np.allclose(qo.prompt_logits(qo.load(ONNX_DIR / "int4", threads=1), ids), logits, atol=1e-4)


def test_build_genai_rejects_bad_input_before_building(tmp_path):
    with pytest.raises(FileNotFoundError, match="save_pretrained"):
        qo.build_genai(tmp_path / "no-model", tmp_path / "out", "int4")
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    with pytest.raises(ValueError, match="precision must be"):
        qo.build_genai(tmp_path / "hf", tmp_path / "out", "int3")
    assert not (tmp_path / "out").exists()
