"""The runtime `ortgenai-service`: starts the workbook's ONNX Runtime GenAI service (notebook 13) on 127.0.0.1,
waits for its /health, talks to it with the OpenAI client (`OpenAICompatRuntime`) and stops it on close.

Every agent lesson can run on it: `get_runtime("ortgenai-service")`, or EDGEAI_RUNTIME=ortgenai-service.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from helpers.runtimes.base import Availability, RuntimeUnavailable
from helpers.runtimes.openai_compat import OpenAICompatRuntime
from helpers.runtimes.wire import free_port


def health(base: str, api_key: str | None = None, timeout: float = 1.0) -> tuple[int | None, dict]:
    """(status code, JSON body) of GET {base}/health; (None, {"status": why}) when no answer came."""
    req = urllib.request.Request(base + "/health", headers={"Authorization": f"Bearer {api_key}"} if api_key else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (loopback URL built here)
            return resp.status, json.loads(resp.read() or b"{}")
    except urllib.error.HTTPError as exc:
        try:
            return exc.code, json.loads(exc.read() or b"{}")
        except ValueError:
            return exc.code, {}
    except (OSError, ValueError) as exc:
        refused = isinstance(getattr(exc, "reason", exc), ConnectionRefusedError)
        return None, {"status": "not listening yet" if refused else f"no answer within {timeout:g} s (busy)"}


class OrtGenAIServiceRuntime(OpenAICompatRuntime):
    """The ONNX Runtime GenAI service, started on 127.0.0.1 on a free port and stopped by this object."""

    name = "ortgenai-service"
    env_url = "EDGEAI_ORTGENAI_URL"
    env_key = None
    how_to_start = "it starts by itself; if it fails, run `python -m helpers serve-ortgenai` to see the error"

    def __init__(self, model_dir: str | Path | None = None, port: int | None = None, host: str = "127.0.0.1",
                 api_key: str | None = None, start: bool = True, startup_timeout: float = 60.0,
                 max_concurrency: int = 1, max_queue: int = 8, request_timeout: float = 60.0) -> None:
        from helpers.paths import ONNX_DIR
        from helpers.runtimes.ortgenai_engine import model_id

        self.model_dir = Path(model_dir) if model_dir else ONNX_DIR / "int4"
        self.host, self.port = host, port or free_port()
        self.server_url = f"http://{host}:{self.port}"
        self.options = {"--max-concurrency": max_concurrency, "--max-queue": max_queue, "--timeout": request_timeout}
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self.startup_seconds: float | None = None
        self.health_log: list[tuple[float, int | None, str]] = []  # (seconds since start, status, state)
        super().__init__(base_url=self.server_url + "/v1", model=model_id(self.model_dir), api_key=api_key)
        self._key_given = api_key is not None
        if start:
            self.start(startup_timeout)

    def start(self, timeout: float = 60.0) -> None:
        """Start the service process and poll /health until it answers 200 (the model is loaded)."""
        if self.proc is not None:
            return
        from helpers.paths import BUILD
        from helpers.runtimes.ortgenai_engine import check_folder

        try:
            check_folder(self.model_dir)
        except (FileNotFoundError, ValueError) as exc:
            raise RuntimeUnavailable(f"{self.name}: {exc}") from None
        BUILD.mkdir(parents=True, exist_ok=True)
        self.log_path = BUILD / f"ortgenai-service-{self.port}.log"
        cmd = [sys.executable, "-m", "helpers", "serve-ortgenai", "--model-dir", str(self.model_dir),
               "--host", self.host, "--port", str(self.port), "--exit-with-parent"]
        for flag, value in self.options.items():
            cmd += [flag, str(value)]
        key_file = None
        if self._key_given:  # handed over in a private file, never on the command line
            fd, key_file = tempfile.mkstemp(prefix="ortgenai-key-", dir=BUILD)
            with os.fdopen(fd, "w") as f:
                f.write(self.api_key + "\n")
            cmd += ["--api-key-file", key_file]
        t0 = time.perf_counter()
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT,
                                         cwd=str(Path(__file__).resolve().parents[2]))
        try:
            self._wait_ready(t0, timeout)
        finally:
            if key_file:
                Path(key_file).unlink(missing_ok=True)

    def _wait_ready(self, t0: float, timeout: float) -> None:
        key = self.api_key if self._key_given else None
        while time.perf_counter() - t0 < timeout:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text()[-1500:]
                self.proc = None
                raise RuntimeUnavailable(f"{self.name}: the service exited at start-up:\n{tail}")
            status, body = health(self.server_url, key, timeout=1.0)
            state = body.get("status", "")
            if not self.health_log or self.health_log[-1][1:] != (status, state):
                self.health_log.append((time.perf_counter() - t0, status, state))
            if status == 200:
                self.startup_seconds = time.perf_counter() - t0
                return
            if state == "failed":
                self.close()
                raise RuntimeUnavailable(f"{self.name}: {body.get('error')}")
            time.sleep(0.02)
        self.close()
        raise RuntimeUnavailable(f"{self.name}: /health did not answer 200 within {timeout:.0f} s; see {self.log_path}")

    def availability(self) -> Availability:
        if self.proc is None:
            return ortgenai_service_startable(self.model_dir)
        av = super().availability()
        if av.ok:
            av.detail = f"ONNX Runtime GenAI service (pid {self.proc.pid}) at {self.base_url}"
        return av



def ortgenai_service_startable(model_dir: str | Path | None = None) -> Availability:
    """Whether `OrtGenAIServiceRuntime` can start its service (checked without starting it)."""
    import importlib.util

    from helpers.paths import ONNX_DIR
    from helpers.runtimes.ortgenai_engine import check_folder, model_id

    name = OrtGenAIServiceRuntime.name
    for mod in ("onnxruntime_genai", "fastapi", "uvicorn"):
        if importlib.util.find_spec(mod) is None:
            return Availability(name, False, f"{mod} is not installed", "install the workbook (`pip install -e .`)")
    folder = Path(model_dir) if model_dir else ONNX_DIR / "int4"
    try:
        check_folder(folder)
    except (FileNotFoundError, ValueError) as exc:
        return Availability(name, False, str(exc), "run `python -m helpers export`")
    return Availability(name, True, "starts the ONNX Runtime GenAI service on 127.0.0.1 on demand",
                        models=[model_id(folder)])
