"""Offline checks for the container files in deploy/: the compose specification's own JSON schema (vendored
by check-jsonschema) and Dockerfile rules read with dockerfile-parse.

Introduced in notebook 16; `python -m helpers check-deploy` runs it. Docker is not needed: the files are
validated, not started. The rules: ports published on 127.0.0.1 only; image tags pinned (no `latest`);
a health check on every service that works in its image (no curl where the image has none, no route that
does not exist); a non-root USER in our Dockerfiles; models in volumes, not in images.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from helpers.paths import ROOT

DEPLOY = ROOT / "deploy"
# images known to ship without curl (ollama/ollama: ubuntu + ca-certificates only; issue ollama#9781)
NO_CURL_IMAGES = ("ollama/ollama",)
# routes that do not exist on the server a health check probes
MISSING_ROUTES = {"/api/health": "Ollama has no /api/health: probe with `ollama list` (CMD) or GET /",
                  "/api/metrics": "no runtime here serves /api/metrics"}
ALL_INTERFACES = ".".join(["0"] * 4)


@lru_cache(maxsize=1)
def compose_schema() -> dict[str, Any]:
    """The compose-spec JSON schema as vendored by check-jsonschema (no network)."""
    import importlib.resources

    from helpers.domain.tools import jsonschema_module

    jsonschema_module()  # first, so check_jsonschema's own import of jsonschema skips the slow optional parser

    ref = importlib.resources.files("check_jsonschema") / "builtin_schemas" / "vendor" / "compose-spec.json"
    return json.loads(ref.read_text(encoding="utf-8"))


def load_yaml(path: Path) -> Any:
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ValueError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None


def schema_errors(doc: Any) -> list[str]:
    """Where `doc` breaks the compose specification (JSON-pointer-like path: message)."""
    from helpers.domain.tools import jsonschema_module

    schema = compose_schema()
    v = jsonschema_module().Draft202012Validator(schema)
    return [f"{'/'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}"
            for e in sorted(v.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))]


def _pinned(image: str) -> str | None:
    _name, _, tag = image.rpartition(":") if ":" in image.split("/")[-1] else (image, "", "")
    if "@sha256:" in image:
        return None
    if not tag or tag.startswith("latest") or tag in ("main", "server", "full", "light"):
        return f"image {image} is not pinned to a version: name a release tag"
    return None


def _published_problems(ports: list[Any]) -> list[str]:
    out = []
    for p in ports or []:
        if isinstance(p, dict):
            host_ip = p.get("host_ip")
            if p.get("published") is not None and host_ip not in ("127.0.0.1", "::1"):
                out.append(f"port {p.get('published')} is published on {host_ip or 'every interface'}: set "
                           "host_ip: 127.0.0.1")
        else:
            parts = str(p).split(":")
            if len(parts) < 3 or parts[0] in ("", ALL_INTERFACES):
                inner = parts[-2] if len(parts) > 1 else p
                out.append(f"port {p!r} is published on every interface: write '127.0.0.1:{inner}:{parts[-1]}'")
    return out


def _health_problems(name: str, svc: dict[str, Any], base: Path) -> list[str]:
    hc = svc.get("healthcheck")
    image = svc.get("image", "")
    if hc is None:
        build = svc.get("build")
        if build:
            ctx = base / (build if isinstance(build, str) else build.get("context", "."))
            df = ctx / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            if df.exists() and any(i["instruction"] == "HEALTHCHECK" for i in _parse_dockerfile(df)):
                return []
            return [f"{name}: no healthcheck here and none in {df.name}"]
        return [f"{name}: no healthcheck: add one that works in {image or 'the image'}"]
    if hc.get("disable"):
        return [f"{name}: healthcheck disabled"]
    test = hc.get("test")
    text = " ".join(test) if isinstance(test, list) else str(test)
    out = []
    if "curl" in text and any(image.startswith(i) for i in NO_CURL_IMAGES):
        out.append(f"{name}: {image} has no curl, so this check always fails: use [\"CMD\", \"ollama\", \"list\"]")
    for route, why in MISSING_ROUTES.items():
        if route in text:
            out.append(f"{name}: healthcheck probes {route}: {why}")
    return out


def check_compose(path: str | Path) -> list[str]:
    """Every problem of one compose file: schema errors first, then the workbook's rules ([] = fine)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no compose file at {path}")
    doc = load_yaml(path)
    errors = [f"schema: {e}" for e in schema_errors(doc)]
    if errors or not isinstance(doc, dict):
        return errors or ["schema: the file is not a mapping of compose keys"]
    out = []
    for name, svc in (doc.get("services") or {}).items():
        if "image" in svc and (msg := _pinned(svc["image"])):
            out.append(f"{name}: {msg}")
        out += [f"{name}: {m}" for m in _published_problems(svc.get("ports"))]
        out += _health_problems(name, svc, path.parent)
        vols = svc.get("volumes") or []
        if not vols and "model" in json.dumps(svc.get("command", "")).lower():
            out.append(f"{name}: the command names a model but no volume holds it: mount models, do not bake them in")
    return out


def _parse_dockerfile(path: Path) -> list[dict[str, Any]]:
    from dockerfile_parse import DockerfileParser

    parser = DockerfileParser(path=str(path), cache_content=True)
    return parser.structure


def check_dockerfile(path: str | Path) -> list[str]:
    """Problems of one Dockerfile: pinned FROM, a non-root USER, EXPOSE, a HEALTHCHECK that can run ([] = fine)."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no Dockerfile at {path}")
    ins = _parse_dockerfile(path)
    final = ins[max([i for i, x in enumerate(ins) if x["instruction"] == "FROM"], default=0):]
    out = []
    for x in ins:
        if x["instruction"] == "FROM":
            image = x["value"].split()[0]
            if msg := _pinned(image):
                out.append(f"FROM {msg}")
    users = [x["value"].strip() for x in final if x["instruction"] == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        out.append("the final stage runs as root: add a user (useradd) and `USER` it")
    if not any(x["instruction"] == "EXPOSE" for x in final):
        out.append("no EXPOSE: document the port the server listens on")
    hcs = [x["value"] for x in final if x["instruction"] == "HEALTHCHECK"]
    if not hcs or hcs[-1].strip().upper() == "NONE":
        out.append("no HEALTHCHECK: add one (only the last one counts)")
    elif "curl" in hcs[-1]:
        installs = " ".join(x["value"] for x in final if x["instruction"] == "RUN")
        if "curl" not in installs:
            out.append("HEALTHCHECK uses curl but the final stage never installs it: install curl or probe with "
                       "python -c 'import urllib.request; ...'")
    for route, why in MISSING_ROUTES.items():
        if hcs and route in hcs[-1]:
            out.append(f"HEALTHCHECK probes {route}: {why}")
    return out


def deploy_files(root: Path = DEPLOY) -> list[Path]:
    """Every compose file and Dockerfile under deploy/."""
    return sorted(list(root.rglob("compose.yaml")) + list(root.rglob("Dockerfile")))


def check_file(path: Path) -> list[str]:
    return check_dockerfile(path) if Path(path).name.startswith("Dockerfile") else check_compose(path)


def vllm_deployments() -> dict[str, Any]:
    """The vLLM deployments in deploy/vllm-*/ as typed configs (rendered by `write_vllm_compose`)."""
    from helpers.runtimes.vllm_config import VLLMServeConfig

    model = "Qwen/Qwen2.5-0.5B-Instruct"
    common = {"model": model, "served_model_name": "qwen2.5-0.5b", "enable_auto_tool_choice": True,
                  "tool_call_parser": "hermes", "max_model_len": 4096, "api_key": True}
    return {"vllm-cpu": VLLMServeConfig(**common, device="cpu", image="vllm/vllm-openai-cpu:v0.33.0-x86_64",
                                        dtype="bfloat16", max_num_seqs=8),
            "vllm-gpu": VLLMServeConfig(**common, device="cuda", image="vllm/vllm-openai:v0.33.0",
                                        gpu_memory_utilization=0.85, max_num_seqs=64)}


def render_vllm_compose(name: str) -> str:
    """The compose file text for one vLLM deployment, from its typed config."""
    import yaml

    cfg = vllm_deployments()[name]
    doc = {"name": f"edge-slm-{name}", "services": {name: cfg.compose_service()}, "volumes": {"hf-cache": {}}}
    head = (f"# Rendered by helpers.deploy_check.render_vllm_compose({name!r}) from a VLLMServeConfig (notebook 15);\n"
            "# edit the config, not this file (tests compare them). Run: VLLM_API_KEY=... docker compose -f "
            f"deploy/{name}/compose.yaml up -d\n")
    return head + yaml.safe_dump(doc, sort_keys=False, width=120)


def write_vllm_compose() -> list[Path]:
    paths = []
    for name in vllm_deployments():
        p = DEPLOY / name / "compose.yaml"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(render_vllm_compose(name), encoding="utf-8")
        paths.append(p)
    return paths


def cmd_check_deploy(a: Any) -> int:
    """`python -m helpers check-deploy [paths]`: one line per file, then each problem; exit 2 on any."""
    paths = [Path(p) for p in a.paths] if a.paths else deploy_files()
    bad = 0
    for p in paths:
        problems = check_file(p)
        print(f"{'ok  ' if not problems else 'FAIL'} {p.relative_to(ROOT) if p.resolve().is_relative_to(ROOT) else p}")
        for m in problems:
            print(f"     - {m}")
        bad += bool(problems)
    return 2 if bad else 0
