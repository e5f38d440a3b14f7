"""Registering the workbook's GGUF with Ollama, its real settings, and what its client does to tool schemas.

Introduced in notebook 14. `OllamaModelConfig` is the one typed description of a model registration; it
renders both a Modelfile (for `ollama create NAME -f Modelfile`) and the keyword arguments of the 0.6
client's `create(files=..., template=..., parameters=...)` (the 0.6 client has no `modelfile=` argument).
Recorded answers from Ollama's API documentation live in data/recorded/ollama/ (see its README).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from helpers.paths import DATA

RECORDED = DATA / "recorded" / "ollama"

# Go template (Ollama's TEMPLATE language) for the workbook's chat format (helpers.model.chat_format):
# the same markers the Jinja template in data/model/chat_template.jinja writes.
EDGE_SLM_TEMPLATE = (
    '{{- if .Tools }}<|tools|>{{ range $i, $t := .Tools }}{{ if $i }},{{ end }}{{ $t.Function.Name }}{{ end }}'
    '<|end|>{{ end }}'
    '{{- range .Messages }}'
    '{{- if eq .Role "system" }}<|system|>{{ .Content }}<|end|>'
    '{{- else if eq .Role "user" }}<|user|>{{ .Content }}<|end|>'
    '{{- else if eq .Role "assistant" }}<|assistant|>{{ .Content }}'
    '{{- if .ToolCalls }}<tool_call>[{{ range $i, $c := .ToolCalls }}{{ if $i }},{{ end }}'
    '{"name":"{{ $c.Function.Name }}","parameters":{{ $c.Function.Arguments }}}{{ end }}]</tool_call>{{ end }}<|end|>'
    '{{- else if eq .Role "tool" }}<|tool|>{{ .Content }}<|end|>'
    '{{- end }}{{- end }}<|assistant|>'
)

# Modelfile PARAMETERs a registration may set (api/types.go Options; docs/modelfile.mdx)
ModelParameter = Literal["temperature", "seed", "num_ctx", "num_predict", "num_thread", "top_k", "top_p", "min_p",
                         "stop", "repeat_penalty", "num_batch", "num_keep"]


class OllamaModelConfig(BaseModel):
    """One Ollama model registration: a GGUF file, a template, a system prompt and default parameters."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9._-]*(:[A-Za-z0-9._-]+)?$",
                      description="Ollama model name, lowercase, optionally with a :tag")
    gguf: Path
    template: str = EDGE_SLM_TEMPLATE
    system: str | None = None
    parameters: dict[ModelParameter, Any] = Field(default_factory=lambda: {"temperature": 0.0, "num_ctx": 2048,
                                                                           "stop": ["<|end|>"]})

    @field_validator("gguf")
    @classmethod
    def _gguf_exists(cls, p: Path) -> Path:
        if p.suffix != ".gguf":
            raise ValueError(f"{p} is not a .gguf file: Ollama's FROM takes a GGUF path, a model name or a "
                             "Safetensors folder; this config registers a GGUF")
        if not p.exists():
            raise ValueError(f"no file at {p}: run `python -m helpers export`, or give the path of a GGUF")
        return p

    @field_validator("template")
    @classmethod
    def _template_has_tools(cls, t: str) -> str:
        if ".ToolCalls" not in t or ".Tools" not in t:
            raise ValueError("the TEMPLATE never uses .Tools and .ToolCalls, so Ollama will answer 'does not support "
                             "tools' to every request with tools; keep EDGE_SLM_TEMPLATE or add both")
        return t

    def modelfile(self, relative_to: Path | None = None) -> str:
        """The Modelfile text for `ollama create NAME -f Modelfile` (FROM relative to the Modelfile's folder)."""
        src = self.gguf.resolve()
        if relative_to is not None:
            try:
                src = src.relative_to(Path(relative_to).resolve())
            except ValueError:
                pass
        lines = [f"FROM {src if src.is_absolute() else './' + src.as_posix()}"]
        lines.append(f'TEMPLATE """{self.template}"""')
        if self.system:
            lines.append(f'SYSTEM """{self.system}"""')
        for key, value in self.parameters.items():
            for v in value if isinstance(value, list) else [value]:
                lines.append(f"PARAMETER {key} {json.dumps(v) if isinstance(v, str) else v}")
        return "\n".join(lines) + "\n"

    def create_kwargs(self, digest: str) -> dict[str, Any]:
        """Keyword arguments of the 0.6 client's `Client.create` once the GGUF is a blob with `digest`."""
        if not digest.startswith("sha256:") or len(digest) != 71:
            raise ValueError(f"{digest!r} is not a blob digest: use what `client.create_blob(path)` returns "
                             "('sha256:' and 64 hex digits)")
        kw: dict[str, Any] = {"model": self.name, "files": {self.gguf.name: digest}, "template": self.template,
                              "parameters": dict(self.parameters)}
        if self.system:
            kw["system"] = self.system
        return kw


def register(client: Any, cfg: OllamaModelConfig) -> list[str]:
    """Upload the GGUF as a blob and create the model with the 0.6 client; the status lines Ollama streamed."""
    digest = client.create_blob(cfg.gguf)
    return [p.status for p in client.create(**cfg.create_kwargs(digest), stream=True) if p.status]


# Ollama's server settings (envconfig/config.go, docs/faq.mdx) and names the course invented
REAL_ENV = {
    "OLLAMA_HOST": "bind address, default 127.0.0.1:11434 (the docker image sets 0.0.0.0:11434)",
    "OLLAMA_KEEP_ALIVE": "how long a model stays loaded after a request, default 5m; per request: keep_alive",
    "OLLAMA_NUM_PARALLEL": "parallel requests per loaded model, default 1; memory grows with it x context",
    "OLLAMA_MAX_LOADED_MODELS": "models loaded at once, default 3 x GPUs (3 on CPU)",
    "OLLAMA_MAX_QUEUE": "queued requests before HTTP 503, default 512",
    "OLLAMA_CONTEXT_LENGTH": "default context when a request or Modelfile sets no num_ctx",
    "OLLAMA_ORIGINS": "extra browser origins allowed (CORS)",
    "OLLAMA_MODELS": "where models are stored",
    "OLLAMA_FLASH_ATTENTION": "1 turns flash attention on",
    "OLLAMA_KV_CACHE_TYPE": "KV cache type (f16, q8_0, q4_0)",
}
INVENTED_ENV = {
    "OLLAMA_NUM_THREAD": "not a server setting: threads are the per-request option num_thread "
                         "(or PARAMETER num_thread in a Modelfile)",
    "OLLAMA_NUM_GPU": "not a server setting: GPU layers are the per-request option num_gpu",
    "OLLAMA_GPU_LAYERS": "not an Ollama setting: use the per-request option num_gpu",
    "OLLAMA_MAX_VRAM": "not an Ollama setting: Ollama sizes layers to the free VRAM itself; limit models with "
                       "OLLAMA_MAX_LOADED_MODELS",
}


def check_env(env: dict[str, str]) -> list[str]:
    """One message per OLLAMA_* variable that Ollama does not read (invented or misspelled); [] when all are real."""
    problems = []
    host = env.get("OLLAMA_HOST", "")
    if host.split("://")[-1].split(":")[0] in ("0.0.0.0", "::", "[::]"):
        problems.append(f"OLLAMA_HOST={host}: binds every interface and Ollama has no authentication: keep "
                        "127.0.0.1 and put a gateway with a key in front for other machines")
    for key in env:
        if not key.startswith("OLLAMA_") or key in REAL_ENV or key in ("OLLAMA_DEBUG", "OLLAMA_NOPRUNE",
                                                                      "OLLAMA_NO_CLOUD", "OLLAMA_LOAD_TIMEOUT",
                                                                      "OLLAMA_SCHED_SPREAD", "OLLAMA_NEW_ENGINE",
                                                                      "OLLAMA_LLM_LIBRARY", "OLLAMA_API_KEY"):
            continue
        why = INVENTED_ENV.get(key, "Ollama does not read this variable (check docs/faq.mdx)")
        problems.append(f"{key}: {why}")
    return problems


def client_tool_schema(tool: Any) -> dict[str, Any]:
    """What the `ollama` client sends for one tool: a Python function goes through the client's
    `convert_function_to_tool`, a dict through its pydantic `Tool` model (the client's own code, no server)."""
    from ollama._types import Tool
    from ollama._utils import convert_function_to_tool

    obj = convert_function_to_tool(tool) if callable(tool) else Tool.model_validate(tool)
    return obj.model_dump(exclude_none=True)


def schema_losses(before: dict[str, Any], after: dict[str, Any], path: str = "") -> list[str]:
    """Keys of a JSON schema that are missing after a round trip (e.g. through the ollama client)."""
    lost = []
    for key, value in before.items():
        here = f"{path}.{key}" if path else key
        if key not in after:
            lost.append(here)
        elif isinstance(value, dict) and isinstance(after[key], dict):
            lost += schema_losses(value, after[key], here)
    return lost


def recorded(name: str) -> Any:
    """A response recorded from Ollama's API documentation (data/recorded/ollama/NAME.json)."""
    path = RECORDED / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"no recorded response {path.name} in {RECORDED}; recorded: "
                                f"{sorted(p.stem for p in RECORDED.glob('*.json'))}")
    return json.loads(path.read_text(encoding="utf-8"))
