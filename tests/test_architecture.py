"""The house rules of ARCHITECTURE.md that a unit test can hold: faces resolve, one home per fact behaves,
modules stay small. (`lint-imports` checks the layers themselves.)"""

import importlib
import json
import os
import time

import numpy as np
import pytest

from helpers.paths import ROOT

FACES = ["helpers.agents", "helpers.domain", "helpers.data", "helpers.model", "helpers.quant", "helpers.runtimes"]


@pytest.mark.parametrize("package", FACES)
def test_every_name_a_face_offers_resolves(package):
    pkg = importlib.import_module(package)
    assert pkg.__all__
    for name in pkg.__all__:
        assert getattr(pkg, name) is not None, f"{package}.{name}"
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        pkg.nope  # noqa: B018


def test_no_module_is_over_600_lines():
    sizes = {p.relative_to(ROOT): sum(1 for _ in p.open(encoding="utf-8")) for p in (ROOT / "helpers").rglob("*.py")}
    assert max(sizes.values()) < 600, {str(p): n for p, n in sizes.items() if n >= 600}


def test_tool_call_arguments_read_the_same_from_text_or_object():
    from helpers.runtimes.wire import arguments_dict, ollama_wire_messages, openai_wire_messages

    assert arguments_dict('{"city": "Oslo"}') == arguments_dict({"city": "Oslo"}) == {"city": "Oslo"}
    assert arguments_dict(None) == arguments_dict("") == {}
    with pytest.raises(json.JSONDecodeError):
        arguments_dict("{city")
    with pytest.raises(ValueError, match="not a JSON object"):
        arguments_dict("[1, 2]")
    msgs = [{"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'}}]}]
    assert openai_wire_messages(msgs)[0]["content"] == ""
    assert ollama_wire_messages(msgs)[0]["tool_calls"][0]["function"]["arguments"] == {"city": "Oslo"}


def test_a_quantized_file_is_made_once_and_remade_when_its_source_changes(tmp_path):
    from helpers.model.export import quantized_gguf, quantized_path

    src = tmp_path / "edge-slm-f16.gguf"
    src.write_bytes(b"GGUF v1")
    made = []

    def fake_quantizer(s, d, qtype, threads=2):  # stands in for llama.cpp: writes the source plus the type
        made.append(qtype)
        d.write_bytes(s.read_bytes() + qtype.encode())

    out = quantized_gguf(src, "q4_k_m", tmp_path / "q", quantizer=fake_quantizer)
    assert out == quantized_path("Q4_K_M", tmp_path / "q") == tmp_path / "q" / "edge-slm-q4_k_m.gguf"
    assert quantized_gguf(src, "Q4_K_M", tmp_path / "q", quantizer=fake_quantizer) == out and made == ["Q4_K_M"]
    later = time.time() + 5
    src.write_bytes(b"GGUF v2")
    os.utime(src, (later, later))
    quantized_gguf(src, "Q4_K_M", tmp_path / "q", quantizer=fake_quantizer)
    assert made == ["Q4_K_M", "Q4_K_M"] and out.read_bytes() == b"GGUF v2Q4_K_M"
    assert [p.name for p in (tmp_path / "q").iterdir()] == [out.name]  # no temporary files left behind
    with pytest.raises(FileNotFoundError, match="No GGUF file"):
        quantized_gguf(tmp_path / "missing.gguf", "Q8_0", tmp_path / "q", quantizer=fake_quantizer)


def test_one_measurement_row_for_every_table():
    from helpers.quant.measure import kl_and_top1, measurement_row, perplexity

    rng = np.random.default_rng(0)
    ref, lg = rng.normal(size=(6, 5)), rng.normal(size=(6, 5))
    targets = np.array([0, 1, 2, 3, 4, 0])
    reply = np.array([True, False, True, False, False, True])
    row = measurement_row("Q4_K_M", 2_000_000, 6_000_000, lg, targets, ref, reply, {"gen_tps": 10.0})
    assert row["size_mb"] == 2.0 and row["ratio_vs_f16"] == 3.0 and row["gen_tps"] == 10.0
    assert row["ppl"] == perplexity(lg, targets) and row["ppl_reply"] == perplexity(lg[reply], targets[reply])
    assert (row["kld"], row["top1"]) == kl_and_top1(ref, lg)
    assert measurement_row("F16", 1, 1, ref, targets, ref)["ppl_reply"] is None


def test_training_is_handed_its_evaluation_rather_than_importing_it(tmp_path):
    from helpers.model.train import TrainConfig, train
    from helpers.paths import MODEL_DIR

    with pytest.raises(ValueError, match="evaluate=helpers.eval.transformers_exact_match"):
        train(tmp_path / "run", MODEL_DIR, TrainConfig(steps=1, eval_every=1, eval_cases=2), log=lambda m: None)
    assert not (tmp_path / "run").exists()
