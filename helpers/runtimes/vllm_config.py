"""A typed `vllm serve` configuration: it renders command lines and compose services, and refuses the traps.

Introduced in notebook 15. vLLM does not install on the workbook's CI machines (the PyPI wheel is the CUDA
build), so nothing here starts vLLM: `VLLMServeConfig` describes a deployment, `findings()` lists what is
wrong with it (each rule cites the vLLM behaviour it encodes), `command()` and `compose_service()` render it.
`parse_metrics()` reads a `/metrics` answer with prometheus-client's own parser.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

ALL_INTERFACES = ".".join(["0"] * 4)  # what a server binds when it should answer from every network
CPU_IMAGE = "vllm/vllm-openai-cpu"
GPU_IMAGE = "vllm/vllm-openai"
# docs/features/tool_calling.md (late 2026); custom parsers load with --tool-parser-plugin
TOOL_PARSERS = ("hermes", "mistral", "llama3_json", "llama4_json", "llama4_pythonic", "pythonic", "granite",
                "granite4", "granite-20b-fc", "internlm", "jamba", "xlam", "deepseek_v3", "deepseek_v31", "openai",
                "kimi_k2", "hunyuan_a13b", "cohere_command3", "longcat", "glm45", "glm47", "functiongemma",
                "qwen3_xml", "olmo3", "gigachat3", "apertus", "solar_open2")
# checkpoint formats: they need a checkpoint already quantized that way (with its quantization config)
PREQUANTIZED = ("awq", "awq_marlin", "gptq", "gptq_marlin", "compressed-tensors", "bitsandbytes", "gguf", "modelopt")
ONLINE_QUANT = ("fp8", "fp8_per_tensor", "fp8_per_block", "mxfp8", "mxfp4", "lut_b_moe")
# routes --api-key leaves open (docs/usage/security.md, "API Key Authentication Limitations")
OPEN_WITH_API_KEY = ("/metrics", "/health", "/ping", "/version", "/tokenize", "/detokenize", "/invocations",
                     "/load", "/pause", "/score", "/rerank", "/pooling", "/classify")
# metric names vLLM removed (docs/design/metrics.md; PR #29330) -> what to query instead
REMOVED_METRICS = {
    "vllm:gpu_cache_usage_perc": "vllm:kv_cache_usage_perc",
    "vllm:cpu_cache_usage_perc": "vllm:kv_cache_usage_perc",
    "vllm:gpu_prefix_cache_queries": "vllm:prefix_cache_queries",
    "vllm:gpu_prefix_cache_hits": "vllm:prefix_cache_hits",
    "vllm:gpu_prefix_cache_hit_rate": "vllm:prefix_cache_hits / vllm:prefix_cache_queries",
    "vllm:time_per_output_token_seconds": "vllm:inter_token_latency_seconds (or "
                                          "vllm:request_time_per_output_token_seconds)",
    "vllm:num_requests_swapped": "(gone with the V0 engine; watch vllm:num_preemptions)",
}


@dataclass(frozen=True)
class Finding:
    """One rule's verdict: `error` stops a deployment, `warning` needs a decision."""

    level: Literal["error", "warning"]
    rule: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: [{self.rule}] {self.message}"


class ServeConfigError(ValueError):
    """A serve configuration that vLLM would refuse or that would be unsafe; the message lists every error."""


class VLLMServeConfig(BaseModel):
    """What `vllm serve` is given, plus where it runs (device, image, gateway)."""

    model_config = ConfigDict(extra="forbid")

    model: str
    device: Literal["cuda", "cpu"] = "cuda"
    image: str | None = Field(None, description="container image with tag; None for a bare `vllm serve`")
    host: str | None = Field(None, description="--host; None binds every interface (vLLM's default)")
    port: int = Field(8000, ge=1, le=65535)
    served_model_name: str | None = None
    api_key: bool = Field(False, description="--api-key (read from VLLM_API_KEY, never written into files)")
    behind_gateway: bool = Field(False, description="a reverse proxy/gateway in front allows only /v1 routes")
    enable_auto_tool_choice: bool = False
    tool_call_parser: str | None = None
    quantization: str | None = None
    checkpoint_prequantized: bool = Field(False, description="the checkpoint ships its quantization config")
    tokenizer: str | None = None
    plugins: list[str] = Field(default_factory=list, description="pip packages installed beside vllm")
    max_model_len: int | None = Field(None, gt=0)
    max_num_seqs: int | None = Field(None, gt=0)
    gpu_memory_utilization: float | None = Field(None, gt=0, le=1)
    dtype: Literal["auto", "half", "float16", "bfloat16", "float", "float32"] | None = None
    tensor_parallel_size: int = Field(1, ge=1)
    pipeline_parallel_size: int = Field(1, ge=1)
    data_parallel_size: int = Field(1, ge=1)
    distributed_executor_backend: Literal["mp", "ray"] | None = None
    trust_remote_code: bool = False
    published_on: str | None = Field("127.0.0.1", description="host address a container port is published on")

    @classmethod
    def from_args(cls, args: list[str], **where: Any) -> VLLMServeConfig:
        """A config from a recipe's `vllm serve` arguments (e.g. the course's), plus device/image/... keywords."""
        flags = {"--model": "model", "--host": "host", "--port": "port", "--served-model-name": "served_model_name",
                 "--tool-call-parser": "tool_call_parser", "--quantization": "quantization",
                 "--tokenizer": "tokenizer", "--max-model-len": "max_model_len", "--max-num-seqs": "max_num_seqs",
                 "--gpu-memory-utilization": "gpu_memory_utilization", "--dtype": "dtype",
                 "--tensor-parallel-size": "tensor_parallel_size", "--pipeline-parallel-size": "pipeline_parallel_size",
                 "--data-parallel-size": "data_parallel_size",
                 "--distributed-executor-backend": "distributed_executor_backend"}
        switches = {"--enable-auto-tool-choice": "enable_auto_tool_choice", "--trust-remote-code": "trust_remote_code"}
        values: dict[str, Any] = {}
        rest = list(args)
        if rest and not rest[0].startswith("-"):
            values["model"] = rest.pop(0)
        i = 0
        while i < len(rest):
            arg = rest[i]
            key, _, inline = arg.partition("=")
            if key in switches:
                values[switches[key]] = True
                i += 1
            elif key == "--api-key":
                values["api_key"] = True
                i += 1 if inline else 2
            elif key in flags:
                if not inline and i + 1 >= len(rest):
                    raise ServeConfigError(f"{key} needs a value")
                values[flags[key]] = inline or rest[i + 1]
                i += 1 if inline else 2
            else:
                raise ServeConfigError(f"unknown or unsupported flag {arg!r}: add it to VLLMServeConfig first")
        return cls(**values, **where)

    def findings(self) -> list[Finding]:
        """Every rule this configuration breaks (an empty list: nothing known to be wrong)."""
        out: list[Finding] = []

        def err(rule: str, msg: str) -> None:
            out.append(Finding("error", rule, msg))

        def warn(rule: str, msg: str) -> None:
            out.append(Finding("warning", rule, msg))

        img, tag = (self.image.rsplit(":", 1) + [""])[:2] if self.image and ":" in self.image else (self.image, "")
        if self.image:
            if self.device == "cpu" and img != CPU_IMAGE:
                err("cuda-image-on-cpu", f"{self.image} is vLLM's CUDA image; on a CPU use "
                                         f"{CPU_IMAGE}:v<version>-x86_64 "
                                         "(run with --shm-size=4g --cap-add SYS_NICE --security-opt "
                                         "seccomp=unconfined)")
            if self.device == "cuda" and img == CPU_IMAGE:
                err("cpu-image-on-gpu", f"{self.image} is the CPU image; on a GPU use {GPU_IMAGE}:v<version>")
            if not tag or tag == "latest" or tag.startswith("latest"):
                err("unpinned-image", f"{self.image} is not pinned: name a version tag (e.g. {img}:v0.33.0"
                                      f"{'-x86_64' if img == CPU_IMAGE else ''}) so a rebuild gets the same server")
        if self.enable_auto_tool_choice and not self.tool_call_parser:
            err("auto-tool-choice-needs-parser", "--enable-auto-tool-choice without --tool-call-parser: vLLM refuses "
                                                 "to start ('--enable-auto-tool-choice requires --tool-call-parser'); "
                                                 "add the parser for the model family, e.g. --tool-call-parser hermes")
        if self.tool_call_parser and self.tool_call_parser not in TOOL_PARSERS:
            warn("unknown-tool-parser", f"{self.tool_call_parser!r} is not a documented parser "
                                        f"({', '.join(TOOL_PARSERS[:6])}, ...); a custom one needs "
                                        "--tool-parser-plugin")
        if self.tool_call_parser and not self.enable_auto_tool_choice:
            warn("parser-without-auto", "--tool-call-parser without --enable-auto-tool-choice: tool_choice 'auto' "
                                        "requests get HTTP 400; add --enable-auto-tool-choice")
        q = (self.quantization or "").lower()
        if q in PREQUANTIZED and q != "gguf" and not self.checkpoint_prequantized:
            err("quantization-needs-prequantized-checkpoint",
                f"--quantization {q} on {self.model}, an unquantized checkpoint: {q} loads weights already quantized "
                f"({q} config in the checkpoint) and fails otherwise; use a pre-quantized {q} checkpoint, or an "
                f"online scheme ({', '.join(ONLINE_QUANT[:3])}), or drop --quantization")
        if self.device == "cpu" and q in ONLINE_QUANT:
            err("fp8-on-cpu", f"online {q} quantization is a GPU feature; the CPU backend takes AWQ/GPTQ or "
                              "compressed-tensors INT8 W8A8 checkpoints")
        if self.model.endswith(".gguf"):
            if "vllm-gguf-plugin" not in self.plugins:
                err("gguf-needs-plugin", "GGUF loading moved out of vLLM in 0.24: `pip install vllm-gguf-plugin` "
                                         "beside vllm (and add it to plugins)")
            if not self.tokenizer:
                err("gguf-needs-tokenizer", "a GGUF needs --tokenizer <the base model's Hugging Face repo>; "
                                            "converting the GGUF's own tokenizer is slow and can differ")
        if self.device == "cpu" and self.gpu_memory_utilization is not None:
            warn("gpu-flag-on-cpu", "--gpu-memory-utilization does nothing on CPU; size the KV cache with "
                                    "VLLM_CPU_KVCACHE_SPACE (GiB)")
        if self.device == "cpu" and self.dtype not in ("bfloat16", None):
            warn("cpu-dtype", f"--dtype {self.dtype} on CPU: bfloat16 is the recommended CPU dtype")
        if self.image is None:
            if self.host in (None, ALL_INTERFACES, "::"):
                err("binds-every-interface", f"--host {'unset' if self.host is None else self.host} binds every "
                                             "network interface (vLLM's default is no host = all): pass --host "
                                             "127.0.0.1 and put a gateway in front for other machines")
        else:
            if self.published_on in (None, ALL_INTERFACES, ""):
                err("published-on-every-interface", "the container port is published on every interface: publish "
                                                    f"on 127.0.0.1 (ports: ['127.0.0.1:{self.port}:{self.port}'])")
        if not self.behind_gateway:
            opened = ", ".join(OPEN_WITH_API_KEY[:7])
            if self.api_key:
                warn("api-key-leaves-routes-open", f"--api-key guards only /v1, /v2 and /inference routes; {opened} "
                                                   "... stay open (/invocations runs inference!): put a gateway "
                                                   "in front that allows only /v1 (notebooks 21-23)")
            elif (self.image and self.published_on not in ("127.0.0.1", "localhost")) or \
                    (not self.image and self.host not in ("127.0.0.1", "localhost")):
                err("reachable-without-key", "reachable from other machines with no key and no gateway")
        if self.trust_remote_code:
            warn("trust-remote-code", "--trust-remote-code runs Python from the model repository; pin its revision")
        if self.distributed_executor_backend == "ray" and self.tensor_parallel_size * self.pipeline_parallel_size == 1:
            warn("ray-for-one-gpu", "Ray only matters across nodes (pipeline/tensor parallel); one GPU needs none")
        return out

    def check(self) -> VLLMServeConfig:
        """This config, or ServeConfigError listing every error (warnings are in `findings()`)."""
        errors = [f for f in self.findings() if f.level == "error"]
        if errors:
            raise ServeConfigError(f"{len(errors)} error(s) in the vLLM serve config for {self.model}: "
                                   + "; ".join(f"[{f.rule}] {f.message}" for f in errors))
        return self

    def args(self, container: bool = False) -> list[str]:
        """The `vllm serve` arguments (model first); in a container --host is every interface of the container."""
        a = [self.model]
        host = ALL_INTERFACES if container else self.host
        if host:
            a += ["--host", host]
        a += ["--port", str(self.port)]
        pairs = [("--served-model-name", self.served_model_name), ("--tool-call-parser", self.tool_call_parser),
                 ("--quantization", self.quantization), ("--tokenizer", self.tokenizer),
                 ("--max-model-len", self.max_model_len), ("--max-num-seqs", self.max_num_seqs),
                 ("--gpu-memory-utilization", self.gpu_memory_utilization), ("--dtype", self.dtype),
                 ("--distributed-executor-backend", self.distributed_executor_backend)]
        for flag, value in pairs:
            if value is not None:
                a += [flag, str(value)]
        for flag, n in (("--tensor-parallel-size", self.tensor_parallel_size),
                        ("--pipeline-parallel-size", self.pipeline_parallel_size),
                        ("--data-parallel-size", self.data_parallel_size)):
            if n > 1:
                a += [flag, str(n)]
        if self.enable_auto_tool_choice:
            a.append("--enable-auto-tool-choice")
        if self.trust_remote_code:
            a.append("--trust-remote-code")
        return a

    def command(self) -> list[str]:
        """`vllm serve ...` as an argument list (checked first; the API key comes from VLLM_API_KEY)."""
        self.check()
        return ["vllm", "serve", *self.args()]

    def compose_service(self) -> dict[str, Any]:
        """A compose service for this config (checked first): pinned image, 127.0.0.1 port, health check,
        Hugging Face cache in a volume, GPU reservation on cuda, the CPU image's extra settings on cpu."""
        if not self.image:
            raise ServeConfigError("compose_service needs image= (e.g. vllm/vllm-openai-cpu:v0.33.0-x86_64)")
        self.check()
        probe = f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{self.port}/health', timeout=3)"
        svc: dict[str, Any] = {
            "image": self.image,
            "command": self.args(container=True),
            "ports": [f"{self.published_on}:{self.port}:{self.port}"],
            "volumes": ["hf-cache:/root/.cache/huggingface"],
            "environment": {"HF_HUB_OFFLINE": "${HF_HUB_OFFLINE:-0}"},
            "healthcheck": {"test": ["CMD", "python3", "-c", probe], "interval": "15s", "timeout": "5s",
                            "retries": 5, "start_period": "300s"},
            "restart": "unless-stopped",
        }
        if self.api_key:
            svc["environment"]["VLLM_API_KEY"] = "${VLLM_API_KEY:?set VLLM_API_KEY}"
        if self.device == "cuda":
            svc["deploy"] = {"resources": {"reservations": {"devices": [
                {"driver": "nvidia", "count": self.tensor_parallel_size * self.pipeline_parallel_size,
                 "capabilities": ["gpu"]}]}}}
            svc["ipc"] = "host"
        else:
            svc.update({"shm_size": "4g", "cap_add": ["SYS_NICE"], "security_opt": ["seccomp=unconfined"]})
            svc["environment"].update({"VLLM_CPU_KVCACHE_SPACE": "4", "VLLM_CPU_OMP_THREADS_BIND": "auto"})
        return svc


def published_on(publish: str) -> str | None:
    """The host address of a `docker run -p`/compose port string ("8000:8000" -> None: every interface)."""
    parts = publish.rsplit(":", 2)
    return parts[0] if len(parts) == 3 and parts[0] else None


def check_metric_names(names: list[str]) -> list[Finding]:
    """Errors for metric names vLLM removed (e.g. in a dashboard or an alert rule), with the current name."""
    out = []
    for n in names:
        base = n.removesuffix("_bucket").removesuffix("_sum").removesuffix("_count").removesuffix("_total")
        if base in REMOVED_METRICS:
            out.append(Finding("error", "removed-metric", f"{n} no longer exists in vLLM; query "
                                                          f"{REMOVED_METRICS[base]}"))
    return out


def parse_metrics(text: str) -> dict[str, Any]:
    """Prometheus text (a /metrics answer) as {family name: prometheus_client Metric}, via its own parser."""
    from prometheus_client.parser import text_string_to_metric_families

    try:
        return {fam.name: fam for fam in text_string_to_metric_families(text)}
    except ValueError as exc:
        raise ValueError(f"not Prometheus text exposition format ({exc}); pass the body of GET /metrics") from None


def histogram_stats(family: Any) -> dict[str, float]:
    """count, sum, mean and bucket counts of one histogram family (all label sets added up)."""
    count = sum(s.value for s in family.samples if s.name.endswith("_count"))
    total = sum(s.value for s in family.samples if s.name.endswith("_sum"))
    buckets: dict[float, float] = {}
    for s in family.samples:
        if s.name.endswith("_bucket"):
            le = float(s.labels["le"])
            buckets[le] = buckets.get(le, 0.0) + s.value
    if not count and buckets:
        count = buckets.get(math.inf, max(buckets.values()))
    return {"count": count, "sum": total, "mean": total / count if count else float("nan"),
            "buckets": dict(sorted(buckets.items()))}


def replicas_needed(target_rps: float, measured_rps: float, headroom: float = 0.7) -> int:
    """Data-parallel replicas for `target_rps` when one replica sustains `measured_rps` (kept at `headroom`)."""
    if measured_rps <= 0 or not 0 < headroom <= 1:
        raise ValueError("measured_rps must be > 0 and headroom in (0, 1]: measure one replica first")
    return max(1, math.ceil(target_rps / (measured_rps * headroom)))
