"""Growing a trained model deeper without changing what it computes, and what a grown run records."""

import pytest

torch = pytest.importorskip("torch")

from helpers.model.train import ModelShape, build_model, expand_depth  # noqa: E402


def _small():
    torch.manual_seed(0)
    shape = ModelShape(hidden_size=256, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=64)
    model = build_model(64, shape, bos=1, eos=2)
    with torch.no_grad():  # a random init has tiny output projections; make every layer matter
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.normal_(0, 0.2)
            layer.mlp.down_proj.weight.normal_(0, 0.2)
    return model.eval()


def test_expanded_model_computes_the_same_function():
    model = _small()
    deeper = expand_depth(model, 3).eval()
    ids = torch.randint(3, 64, (2, 12))
    with torch.no_grad():
        assert torch.allclose(model(ids).logits, deeper(ids).logits, atol=1e-5)
    assert deeper.config.num_hidden_layers == 3
    assert [layer.self_attn.layer_idx for layer in deeper.model.layers] == [0, 1, 2]
    # the added layer is a copy of layer 1 whose output projections start at zero, so it can learn
    added = deeper.model.layers[2]
    assert torch.equal(added.self_attn.q_proj.weight, model.model.layers[1].self_attn.q_proj.weight)
    assert not added.self_attn.o_proj.weight.any() and not added.mlp.down_proj.weight.any()
    assert deeper.model.layers[1].mlp.down_proj.weight.any()


def test_expanding_to_fewer_layers_is_refused_with_a_reason():
    with pytest.raises(ValueError, match="already has 2 layers"):
        expand_depth(_small(), 2)


def test_growing_without_trained_weights_is_refused_with_what_to_do(tmp_path):
    from helpers.model.train import TrainConfig, train
    from helpers.paths import MODEL_DIR

    with pytest.raises(ValueError, match="--init-from"):
        train(tmp_path / "run", MODEL_DIR, TrainConfig(steps=1, grow_layers=6), log=lambda m: None)
    assert not (tmp_path / "run").exists()  # refused before anything was written


def test_a_grown_run_records_the_shape_it_trained(tmp_path):
    import json

    from transformers import AutoTokenizer

    from helpers.model.train import TrainConfig, train
    from helpers.paths import MODEL_DIR

    tok = AutoTokenizer.from_pretrained(str(MODEL_DIR))
    shape = ModelShape(hidden_size=256, intermediate_size=256, num_hidden_layers=1)
    build_model(len(tok), shape, tok.bos_token_id, tok.eos_token_id).save_pretrained(str(tmp_path / "start"))
    cfg = TrainConfig(steps=2, batch_tokens=512, chunk_dialogues=20, eval_cases=0, warmup=1, log_every=1,
                      init_from=str(tmp_path / "start"), grow_layers=2)
    record = train(tmp_path / "run", MODEL_DIR, cfg, ModelShape(), log=lambda m: None)
    assert record["steps"] == 2 and record["shape"]["num_hidden_layers"] == 2  # not ModelShape()'s 4
    assert json.loads((tmp_path / "run" / "final" / "config.json").read_text())["num_hidden_layers"] == 2


def test_interpolating_a_run_mixes_its_weights_with_the_start_and_records_it(tmp_path):
    import json

    from safetensors.torch import load_file

    from helpers.model.pipeline import interpolate_run

    start, run = tmp_path / "start", tmp_path / "run"
    _small().save_pretrained(str(start))
    final = _small()
    with torch.no_grad():
        for p in final.parameters():
            p.add_(1.0)
    final.save_pretrained(str(run / "final"))
    (run / "tokenizer").mkdir()
    (run / "train_record.json").write_text(json.dumps({"steps": 3, "config": {"init_from": str(start)}}))
    out = interpolate_run(run, 0.7)
    a, b = load_file(str(start / "model.safetensors")), load_file(str(run / "final" / "model.safetensors"))
    mixed = load_file(str(out / "final" / "model.safetensors"))
    assert out.name == "run-a0.7" and (out / "tokenizer").is_dir() and (out / "final" / "config.json").exists()
    for k in a:
        assert torch.allclose(mixed[k], 0.3 * a[k] + 0.7 * b[k], atol=1e-6)
    rec = json.loads((out / "train_record.json").read_text())
    assert rec["steps"] == 3 and rec["weight_interpolation"]["alpha"] == 0.7
    assert torch.equal(load_file(str(interpolate_run(run, 0.0) / "final" / "model.safetensors"))["lm_head.weight"],
                       a["lm_head.weight"])
    with pytest.raises(ValueError, match="between 0"):
        interpolate_run(run, 1.5)
    (run / "train_record.json").write_text(json.dumps({"steps": 3, "config": {"init_from": None}}))
    with pytest.raises(FileNotFoundError, match="start="):
        interpolate_run(run, 0.5)
