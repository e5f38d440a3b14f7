"""Auto-checks for lab 16 (containers): each `check_*` raises AssertionError with a hint.

Introduced in lab 16. The learner's compose service and Dockerfile go through the same offline validators
as deploy/ (`helpers.deploy_check`: the compose-spec schema, the workbook's rules, dockerfile-parse).
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _ok(msg: str) -> None:
    print(f"PASS: {msg}")


def check_llama_server_service(fn: Callable[[int], dict[str, Any]], port: int = 8081) -> None:
    """Lab 16, task 1: a llama-server compose service that passes the schema and every rule, for any port."""
    import yaml

    from helpers.deploy_check import check_compose

    for p in (port, port + 17):
        svc = fn(p)
        assert isinstance(svc, dict), "return one compose service as a dict"
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / "compose.yaml"
            f.write_text(yaml.safe_dump({"services": {"llama-server": svc}}))
            problems = check_compose(f)
        assert not problems, "the service fails the checks: " + "; ".join(problems)
        assert str(svc.get("image", "")).startswith("ghcr.io/ggml-org/llama.cpp:"), \
            "use llama.cpp's server image, ghcr.io/ggml-org/llama.cpp:<server build tag>"
        assert svc.get("ports") == [f"127.0.0.1:{p}:{p}"], \
            f"publish exactly '127.0.0.1:{p}:{p}' (got {svc.get('ports')})"
        cmd = [str(x) for x in svc.get("command", [])]
        assert "--port" in cmd and cmd[cmd.index("--port") + 1] == str(p), \
            f"pass --port {p}: llama-server's default port is changing"
        assert "--host" in cmd, \
            "pass --host: llama-server listens on 127.0.0.1 by default, unreachable from outside the container"
        test = " ".join(svc.get("healthcheck", {}).get("test", []))
        assert "/health" in test and str(p) in test, f"probe /health on port {p} inside the container"
        user = str(svc.get("user", "root")).split(":")[0]
        assert user not in ("root", "0", ""), \
            "run as a non-root user (e.g. user: '65534:65534'); the server only reads the model"
        assert any("/models" in str(v) and str(v).endswith(":ro") for v in svc.get("volumes", [])), \
            "mount the GGUF folder read-only at /models (a volume ending in ':ro')"
    _ok("the llama-server service passes the compose schema and the rules, on two ports")


def check_dockerfile_text(fn: Callable[[], str]) -> None:
    """Lab 16, task 2: a Dockerfile for the workbook's server that passes the Dockerfile rules."""
    from helpers.deploy_check import _parse_dockerfile, check_dockerfile

    text = fn()
    assert isinstance(text, str) and text.strip(), "return the Dockerfile's text"
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "Dockerfile"
        f.write_text(text)
        problems = check_dockerfile(f)
        ins = _parse_dockerfile(f)
    assert not problems, "the Dockerfile fails the checks: " + "; ".join(problems)
    froms = [x["value"].split()[0] for x in ins if x["instruction"] == "FROM"]
    assert re.search(r":\d+\.\d+\.\d+", froms[-1]), f"pin the Python image to a patch release (got {froms[-1]})"
    hc = [x["value"] for x in ins if x["instruction"] == "HEALTHCHECK"][-1]
    assert "curl" not in hc and "/health" in hc, \
        "probe /health without curl (python -c 'import urllib.request; ...'): it is the route that needs no key"
    assert any(x["instruction"] == "EXPOSE" and "8000" in x["value"] for x in ins), "EXPOSE 8000"
    cmd = [x["value"] for x in ins if x["instruction"] == "CMD"]
    assert cmd and "helpers" in cmd[-1] and "serve" in cmd[-1] and "--host" in cmd[-1], \
        "start `python -m helpers serve --model ... --host <every interface> --port 8000`"
    assert any(x["instruction"] == "COPY" and "helpers" in x["value"] for x in ins), "COPY helpers/ into the image"
    assert "llama-cpp-python[server]==0.3.36" in text, "install the pinned llama-cpp-python[server]==0.3.36"
    _ok("the Dockerfile passes: pinned base, non-root user, EXPOSE, a curl-free HEALTHCHECK, the workbook's server")
