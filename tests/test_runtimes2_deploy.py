"""deploy/: every shipped compose file and Dockerfile passes; each rule catches its fault."""

from __future__ import annotations

import pytest

from helpers.deploy_check import check_compose, check_dockerfile, deploy_files, render_vllm_compose, vllm_deployments
from helpers.paths import ROOT


def test_shipped_files_pass():
    files = deploy_files()
    assert len(files) >= 6
    for p in files:
        problems = check_compose(p) if p.name == "compose.yaml" else check_dockerfile(p)
        assert problems == [], f"{p.relative_to(ROOT)}: {problems}"


@pytest.mark.parametrize("name", list(vllm_deployments()))
def test_vllm_compose_files_are_the_rendered_configs(name):
    assert (ROOT / "deploy" / name / "compose.yaml").read_text() == render_vllm_compose(name)


def _compose(tmp_path, text: str):
    p = tmp_path / "compose.yaml"
    p.write_text(text)
    return check_compose(p)


def test_schema_violation_is_reported(tmp_path):
    problems = _compose(tmp_path, """
services:
  a:
    image: x/y:1.0
    depends_on:
      b:
        condition: service_hot
  b:
    image: x/z:1.0
""")
    assert problems and all(p.startswith("schema:") for p in problems) and "service_hot" in "\n".join(problems)


def test_rules_catch_course_faults(tmp_path):
    problems = _compose(tmp_path, """
services:
  ollama:
    image: ollama/ollama:latest
    ports: ["11434:11434"]
    healthcheck:
      test: ["CMD", "curl", "-f", "http://localhost:11434/api/health"]
  web:
    image: ghcr.io/open-webui/open-webui:main
    ports: [{target: 8080, published: 3000}]
""")
    text = "\n".join(problems)
    for needle in ("ollama/ollama:latest is not pinned", "published on every interface", "has no curl",
                   "/api/health", "open-webui:main is not pinned", "host_ip", "web: no healthcheck"):
        assert needle in text, f"{needle!r} not in {problems}"


def test_bad_yaml_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match="not valid YAML"):
        _compose(tmp_path, "services: [a\n")
    with pytest.raises(FileNotFoundError):
        check_compose(tmp_path / "missing.yaml")


def test_dockerfile_rules(tmp_path):
    p = tmp_path / "Dockerfile"
    p.write_text("FROM python:latest\nRUN pip install x\nHEALTHCHECK CMD curl -f http://127.0.0.1:8000/health\n"
                 "CMD [\"python\"]\n")
    text = "\n".join(check_dockerfile(p))
    for needle in ("not pinned", "runs as root", "no EXPOSE", "never installs it"):
        assert needle in text
    p.write_text("FROM python:3.11.11-slim\nUSER app\nEXPOSE 8000\n")
    assert any("no HEALTHCHECK" in m for m in check_dockerfile(p))
