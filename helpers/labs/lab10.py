"""Auto-checks for lab 10 (ONNX Runtime quantization): each `check_*` raises AssertionError with a hint, or
prints what passed. The checks run the learner's code on fresh inputs: a new random ONNX model, new prompts,
new held-out text.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any, Callable

import numpy as np


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def _random_folder(path: Path, seed: int) -> tuple[Path, np.ndarray]:
    """A folder shaped like an ORT GenAI folder around a fresh two-MatMul ONNX model."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    rows, hidden, cols = 64 * int(rng.integers(1, 3)), 96, 32 * int(rng.integers(1, 3))
    w1 = rng.normal(0, 0.1, (rows, hidden)).astype(np.float32)
    w2 = (rng.normal(0, 0.1, (hidden, cols)) * rng.uniform(0.1, 3, (1, cols))).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W1"], ["H"]), helper.make_node("MatMul", ["H", "W2"], ["Y"])], "lab10",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["batch", rows])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, ["batch", cols])],
        [numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    path.mkdir(parents=True)
    onnx.save(model, str(path / "model.onnx"))
    (path / "genai_config.json").write_text(json.dumps({"model": {"decoder": {"filename": "model.onnx"}}}))
    (path / "tokenizer.json").write_text(json.dumps({"seed": seed}))
    return path, w1 @ w2


def check_quantize_folder(fn: Callable[..., Any], seed: int | None = None) -> None:
    """Lab 10, task 1: `fn(src, dst, per_channel)` writes an int8 copy of an ORT GenAI folder."""
    import onnx
    import onnxruntime as ort

    seed = int(np.random.default_rng(seed).integers(1 << 30))
    with tempfile.TemporaryDirectory() as tmp:
        src, w = _random_folder(Path(tmp) / "fp32", seed)
        x = np.random.default_rng(seed + 1).normal(0, 1, (3, w.shape[0])).astype(np.float32)
        for per_channel in (False, True):
            dst = Path(tmp) / f"int8-{per_channel}"
            fn(src, dst, per_channel=per_channel)
            assert (dst / "model.onnx").exists(), f"no model.onnx in {dst}: write the quantized model there"
            for name in ("genai_config.json", "tokenizer.json"):
                assert (dst / name).exists(), f"{name} was not copied: ORT GenAI needs the config and tokenizer"
                assert (dst / name).read_text() == (src / name).read_text(), f"{name} must be copied unchanged"
            model = onnx.load(str(dst / "model.onnx"))
            ops = [n.op_type for n in model.graph.node]
            assert "MatMulInteger" in ops and "MatMul" not in ops, (
                f"the graph has {sorted(set(ops))}: call quantize_dynamic with weight_type=QuantType.QInt8")
            assert (dst / "model.onnx").stat().st_size < 0.5 * (src / "model.onnx").stat().st_size, \
                "the int8 model should be about a quarter of the fp32 one"
            scales = [t for t in model.graph.initializer if t.name.endswith("_scale") and "W" in t.name]
            widest = max((int(np.prod(t.dims)) for t in scales), default=1)
            assert (widest > 1) == per_channel, (
                f"per_channel={per_channel} but the weight scales have up to {widest} values: pass "
                "per_channel=per_channel to quantize_dynamic")
            sess = ort.InferenceSession(str(dst / "model.onnx"), providers=["CPUExecutionProvider"])
            got, ref = sess.run(None, {"X": x})[0], x @ w
            rel = float(np.abs(got - ref).max() / np.abs(ref).max())
            assert rel < 0.05, (f"outputs differ from fp32 by {rel:.1%}: quantize the weights, not the inputs; on an "
                                "x86 CPU without VNNI pass reduce_range=int8_reduce_range() (helpers.machine), "
                                "or ONNX Runtime's int8 kernel saturates")
    _ok("int8 copies (per tensor and per channel) of a fresh random ONNX model: config and tokenizer copied, "
        "MatMulInteger in the graph, outputs within 5% of fp32")


def check_greedy(fn: Callable[..., list[int]], folder: str | Path, n: int = 5, seed: int = 9090) -> None:
    """Lab 10, task 2: `fn(model, tokenizer, prompt_ids, max_new_tokens)` is greedy generation with og.Generator."""
    import onnxruntime_genai as og

    from helpers.data.synth import eval_cases
    from helpers.domain.tools import openai_tools
    from helpers.domain.chat_format import render
    from helpers.quant import onnx as qo

    model = qo.load(folder)
    tok = og.Tokenizer(model)
    eos = set(tok.eos_token_ids)
    for case in eval_cases(n=n, seed=seed):
        ids = list(tok.encode(render(case["messages"], openai_tools(), add_generation_prompt=True)))
        for budget in (3, 48):
            got = [int(t) for t in fn(model, tok, ids, budget)]
            want = qo.greedy(model, tok, ids, budget)
            assert len(got) <= budget, f"{len(got)} tokens for max_new_tokens={budget}: set max_length accordingly"
            assert not (eos & set(got)), "the end-of-sequence token must not be returned: stop before appending it"
            assert got == want, ("not the greedy continuation: set do_sample=False, append the prompt with "
                                 "append_tokens, then loop generate_next_token / get_next_tokens until is_done")
    _ok(f"greedy generation matches on {n} fresh prompts, with short and long budgets")


def check_comparison(results: dict[str, dict[str, float]], folders: dict[str, str | Path],
                     tokens: list[int] | None = None, prompts: list[str] | None = None) -> None:
    """Lab 10, task 3: sizes, KL divergence, top-1 agreement and greedy agreement against fp32, measured again by the
    check on the same held-out `tokens` and `prompts` the learner used (ONNX Runtime is deterministic on one machine:
    they must agree)."""
    import onnxruntime_genai as og

    from helpers.quant import measure
    from helpers.quant import onnx as qo

    assert set(results) == set(folders), f"results should have one entry per folder: {sorted(folders)}"
    assert "fp32" in folders, "keep the fp32 folder: it is the reference"
    assert tokens is not None and len(tokens) > 256, (
        "pass the held-out tokens you scored: check_comparison(results, folders, tokens); at least one window of "
        "256 tokens plus one")
    assert prompts, "pass the prompts you generated from: check_comparison(results, folders, tokens, prompts)"
    ref_model = qo.load(folders["fp32"])
    ref, _ = qo.logits(ref_model, tokens, 256)
    ref_tok = og.Tokenizer(ref_model)
    ref_replies = [qo.greedy(ref_model, ref_tok, list(ref_tok.encode(p)), 64) for p in prompts]
    for name, folder in folders.items():
        r = results[name]
        for key in ("size_mb", "kld", "top1", "greedy_same"):
            assert key in r, f"results[{name!r}] lacks {key!r}"
        size = qo.model_bytes(folder) / 1e6
        assert abs(r["size_mb"] - size) < 0.01, (f"{name}: size {r['size_mb']:.3f} MB, but its model files hold "
                                                f"{size:.3f} MB: count model.onnx and model.onnx.data, in 10**6 bytes")
        if name == "fp32":
            assert r["kld"] < 1e-9 and r["top1"] == 1.0 and r["greedy_same"] == 1.0, \
                "fp32 against itself has KLD 0, top-1 1.0 and greedy agreement 1.0"
            continue
        model = qo.load(folder)
        tok = og.Tokenizer(model)
        same = sum(qo.greedy(model, tok, list(tok.encode(p)), 64) == want for p, want in zip(prompts, ref_replies))
        assert abs(r["greedy_same"] - same / len(prompts)) < 1e-9, (
            f"{name}: greedy_same {r['greedy_same']}, but {same} of your {len(prompts)} prompts give exactly fp32's "
            "64 greedy tokens: compare the whole id lists, prompt by prompt")
        kld, top1 = measure.kl_and_top1(ref, qo.logits(model, tokens, 256)[0])
        assert r["kld"] > 0, f"{name}: a quantized model has a KL divergence above 0 from fp32"
        assert abs(r["kld"] - kld) <= 0.02 * kld + 1e-7, (
            f"{name}: your KLD {r['kld']:.5f}, the check measured {kld:.5f} on the same tokens: "
            "KL(P_fp32 || P_quant), natural log (nats), the mean over every scored position")
        assert abs(r["top1"] - top1) <= 1e-3, (f"{name}: your top-1 {r['top1']:.4f}, the check measured "
                                               f"{top1:.4f} on the same tokens: the share of positions whose argmax "
                                               "agree with fp32's")
    _ok(f"sizes exact; KLD, top-1 and greedy agreement of {len(folders) - 1} quantized models measured again on "
        f"your {len(tokens)} tokens and {len(prompts)} prompts: equal")
