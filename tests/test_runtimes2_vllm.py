"""The typed vLLM serve config: every trap of issue 17 is an error (or a warning where it is a decision),
the course's recipes fail for their documented reasons, and /metrics parses with prometheus-client."""

from __future__ import annotations

import json

import pytest

from helpers.paths import DATA
from helpers.runtimes.vllm_config import (
    ServeConfigError,
    VLLMServeConfig,
    check_metric_names,
    histogram_stats,
    parse_metrics,
    published_on,
    replicas_needed,
)

OK = {"model": "Qwen/Qwen2.5-0.5B-Instruct", "host": "127.0.0.1"}


def rules(cfg: VLLMServeConfig, level: str = "error") -> set[str]:
    return {f.rule for f in cfg.findings() if f.level == level}


@pytest.mark.parametrize("kw, rule", [
    ({"device": "cpu", "image": "vllm/vllm-openai:v0.33.0"}, "cuda-image-on-cpu"),
    ({"image": "vllm/vllm-openai-cpu:v0.33.0-x86_64"}, "cpu-image-on-gpu"),
    ({"image": "vllm/vllm-openai:latest"}, "unpinned-image"),
    ({"enable_auto_tool_choice": True}, "auto-tool-choice-needs-parser"),
    ({"quantization": "awq"}, "quantization-needs-prequantized-checkpoint"),
    ({"host": None}, "binds-every-interface"),
    ({"host": ".".join(["0"] * 4)}, "binds-every-interface"),
    ({"model": "./m.gguf", "tokenizer": "Qwen/Qwen2.5-0.5B-Instruct"}, "gguf-needs-plugin"),
    ({"model": "./m.gguf", "plugins": ["vllm-gguf-plugin"]}, "gguf-needs-tokenizer"),
    ({"device": "cpu", "quantization": "fp8"}, "fp8-on-cpu"),
    ({"image": "vllm/vllm-openai:v0.33.0", "published_on": None}, "published-on-every-interface"),
])
def test_each_trap_is_an_error(kw, rule):
    cfg = VLLMServeConfig(**{**OK, **kw})
    assert rule in rules(cfg)
    with pytest.raises(ServeConfigError, match=rule):
        cfg.command()


def test_api_key_without_gateway_warns_about_open_routes():
    cfg = VLLMServeConfig(**OK, api_key=True)
    assert "api-key-leaves-routes-open" in rules(cfg, "warning") and not rules(cfg)
    msg = next(f.message for f in cfg.findings() if f.rule == "api-key-leaves-routes-open")
    assert "/metrics" in msg and "/invocations" in msg and "gateway" in msg
    assert "api-key-leaves-routes-open" not in rules(cfg.model_copy(update={"behind_gateway": True}), "warning")


def test_a_good_config_renders_command_and_compose():
    cfg = VLLMServeConfig(**OK, enable_auto_tool_choice=True, tool_call_parser="hermes", max_model_len=4096)
    assert cfg.findings() == []
    cmd = cfg.command()
    assert cmd[:3] == ["vllm", "serve", OK["model"]] and "--tool-call-parser" in cmd and "--api-key" not in cmd
    cpu = VLLMServeConfig(**{**OK, "host": None}, device="cpu", dtype="bfloat16",
                          image="vllm/vllm-openai-cpu:v0.33.0-x86_64")
    svc = cpu.compose_service()
    assert svc["ports"] == ["127.0.0.1:8000:8000"] and svc["shm_size"] == "4g"
    assert "/health" in svc["healthcheck"]["test"][-1]
    with pytest.raises(ServeConfigError, match="image"):
        cfg.compose_service()


def test_course_recipes_fail_for_their_documented_reasons():
    course = json.loads((DATA / "recorded" / "course" / "recipes.json").read_text())["vllm"]
    got = [rules(VLLMServeConfig.from_args(r["args"], device="cuda" if r["gpu"] else "cpu", image=r["image"],
                                           published_on=published_on(r["publish"]))) for r in course]
    assert "cuda-image-on-cpu" in got[0]
    assert "auto-tool-choice-needs-parser" in got[1]
    assert {"auto-tool-choice-needs-parser", "quantization-needs-prequantized-checkpoint"} <= got[2]
    assert all("unpinned-image" in g and "published-on-every-interface" in g for g in got)


def test_from_args_refuses_unknown_flags():
    with pytest.raises(ServeConfigError, match="unknown or unsupported flag"):
        VLLMServeConfig.from_args(["m", "--swap-space", "4"])
    with pytest.raises(ServeConfigError, match="needs a value"):
        VLLMServeConfig.from_args(["m", "--port"])
    assert VLLMServeConfig.from_args(["--model=m", "--port=9000", "--api-key", "k"]).port == 9000


def test_recorded_metrics_parse_and_bad_text_is_an_error():
    fams = parse_metrics((DATA / "recorded" / "vllm" / "metrics-docs.txt").read_text())
    st = histogram_stats(fams["vllm:iteration_tokens_total"])
    assert st["count"] == 3.0 and st["buckets"][512.0] == 3.0
    with pytest.raises(ValueError, match="exposition format"):
        parse_metrics("vllm:x{le=} not a number\n")


def test_removed_metric_names_are_flagged():
    found = check_metric_names(["vllm:gpu_cache_usage_perc", "vllm:time_per_output_token_seconds_bucket",
                                "vllm:kv_cache_usage_perc", "vllm:inter_token_latency_seconds_sum"])
    assert [f.message.split()[0] for f in found] == ["vllm:gpu_cache_usage_perc",
                                                     "vllm:time_per_output_token_seconds_bucket"]


def test_replicas_needed():
    assert replicas_needed(50, 10, 0.5) == 10 and replicas_needed(1, 100) == 1
    with pytest.raises(ValueError):
        replicas_needed(10, 0)


def test_vllm_named_but_not_running_says_how_to_start_it(monkeypatch):
    from helpers.runtimes import RuntimeUnavailable, get_runtime
    from helpers.runtimes.openai_compat import free_port

    monkeypatch.setenv("VLLM_BASE_URL", f"http://127.0.0.1:{free_port()}/v1")
    with pytest.raises(RuntimeUnavailable, match="vllm serve"):
        get_runtime("vllm")
