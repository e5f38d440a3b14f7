"""Running the gateway (and the test double): uvicorn in a thread for tests, a process for everything else.

`python -m helpers gateway` calls `run_gateway`; notebooks start it as a separate process with
`GatewayProcess` (a real server on its own port, as a learner would run it) and stop it when done.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any, Self

from helpers.paths import ROOT
from helpers.runtimes.wire import free_port, stop_process
from helpers.serving.settings import LOOPBACK, GatewaySettings


def configure_logging(stream: Any = None, level: int = logging.INFO) -> None:
    """JSON log lines on stderr (python-json-logger): one record per request, one per audited tool call."""
    from pythonjsonlogger.json import JsonFormatter

    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s",
                                       rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"}))
    logger = logging.getLogger("edge_slm.gateway")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def run_gateway(settings: GatewaySettings) -> None:
    """Serve the gateway until interrupted (the `gateway` command)."""
    import uvicorn

    from helpers.serving.app import create_app

    if settings.host not in LOOPBACK:
        print(f"warning: binding {settings.host} exposes the gateway beyond this machine", file=sys.stderr)
    configure_logging()
    print(f"gateway on http://{settings.host}:{settings.port} -> {', '.join(settings.upstreams)}", flush=True)
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="warning",
                access_log=False, timeout_graceful_shutdown=5)


def run_passthrough(settings: GatewaySettings) -> None:
    """Serve the bare forwarder to the first upstream (the `gateway --passthrough` command; notebook 21)."""
    import uvicorn

    from helpers.serving.passthrough import create_passthrough_app

    if settings.host not in LOOPBACK:
        print(f"warning: binding {settings.host} exposes the passthrough beyond this machine", file=sys.stderr)
    print(f"passthrough (no policy, for measuring) on http://{settings.host}:{settings.port} -> "
          f"{settings.upstreams[0]}", flush=True)
    uvicorn.run(create_passthrough_app(settings.upstreams[0], settings.api_keys[0].get_secret_value()),
                host=settings.host, port=settings.port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=5)


class ServerThread:
    """An ASGI app served by uvicorn on 127.0.0.1 in a daemon thread (tests and the fault double)."""

    def __init__(self, app: Any, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="critical", access_log=False,
                                timeout_graceful_shutdown=2)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self, timeout: float = 10.0) -> ServerThread:
        self.thread.start()
        t_end = time.monotonic() + timeout
        while not self.server.started:
            if time.monotonic() > t_end or not self.thread.is_alive():
                raise RuntimeError(f"server on 127.0.0.1:{self.port} did not start")
            time.sleep(0.01)
        return self

    def kill(self) -> None:
        """Stop listening and abort every open connection now (no graceful shutdown)."""
        loop = getattr(self.server, "_loop", None) or self._find_loop()
        done = threading.Event()

        def _abort() -> None:
            for s in self.server.servers:
                s.close()
            for conn in list(self.server.server_state.connections):
                transport = getattr(conn, "transport", None)
                if transport is not None:
                    transport.abort()
            done.set()

        loop.call_soon_threadsafe(_abort)
        done.wait(5)

    def _find_loop(self) -> Any:
        for conn in list(self.server.server_state.connections):
            loop = getattr(conn, "loop", None)
            if loop is not None:
                return loop
        return self.server.servers[0].get_loop()

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class GatewayProcess:
    """`python -m helpers gateway` as a child process on 127.0.0.1; waits for /healthz, stops on close()."""

    def __init__(self, upstreams: list[str], key_file: str | Path, port: int | None = None,
                 log_path: str | Path | None = None, env: dict[str, str] | None = None,
                 args: list[str] | None = None) -> None:
        import os

        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(log_path) if log_path else ROOT / "build" / f"gateway-{self.port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "helpers", "gateway", "--upstream", ",".join(upstreams), "--port",
               str(self.port), "--api-key-file", str(key_file), *(args or [])]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=str(ROOT),
                                         env={**os.environ, **(env or {})})
        t_end = time.monotonic() + 30
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the gateway exited at start-up:\n{self.log_path.read_text()[-1500:]}")
            try:
                with urllib.request.urlopen(self.url + "/healthz", timeout=1) as r:
                    if json.loads(r.read()).get("status") == "ok":
                        break
            except OSError:
                pass
            if time.monotonic() > t_end:
                self.close()
                raise RuntimeError(f"the gateway did not answer /healthz in 30 s; see {self.log_path}")
            time.sleep(0.1)

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON records the gateway logged so far."""
        out = []
        for line in self.log_path.read_text().splitlines():
            if line.startswith("{"):
                out.append(json.loads(line))
        return out

    def close(self) -> None:
        if self.proc.poll() is None:
            stop_process(self.proc)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
