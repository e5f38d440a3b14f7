"""JupyterLab on loopback with a token: `python -m helpers lab` opens the workbook at its contents page.

Introduced in the README. The server binds 127.0.0.1 only, on a free port unless one is asked for, and
requires a token generated for this run (handed to the server through the JUPYTER_TOKEN environment
variable, so it does not show in the process list). The browser test (tests/test_browser.py) starts the
same server.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from helpers.paths import BUILD, ROOT

CONTENTS_PAGE = "CONTENTS.ipynb"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    """Whether `port` on `host` is taken (bind fails)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def quiet_settings(state_dir: Path) -> Path:
    """JupyterLab settings for a scripted session (the browser test), in `state_dir` (pass it to start_lab):
    every cell attached to the page (no windowing, so each output can be checked), kernels shut down when
    their tab closes, no news prompt."""
    import json

    settings = {"notebook-extension/tracker": {"kernelShutdown": True, "windowingMode": "none"},
                "apputils-extension/notification": {"fetchNews": "false", "checkForUpdates": False}}
    for name, values in settings.items():
        f = Path(state_dir) / "settings" / "@jupyterlab" / f"{name}.jupyterlab-settings"
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text(json.dumps(values), encoding="utf-8")
    return Path(state_dir)


@dataclass
class LabServer:
    """A running JupyterLab: its process, port and token; `url(path)` opens a file, `stop()` ends it."""

    proc: subprocess.Popen
    port: int
    token: str
    root: Path
    log: Path
    host: str = "127.0.0.1"
    _stopped: bool = field(default=False, repr=False)

    @property
    def base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def url(self, path: str = CONTENTS_PAGE, token: bool = True) -> str:
        """The address that opens `path` (relative to the server's root) in JupyterLab."""
        u = f"{self.base}/lab/tree/{quote(path)}"
        return f"{u}?token={self.token}" if token else u

    def stop(self, timeout: float = 15.0) -> None:
        """Stop the server (it shuts its kernels down first); kill it if it does not stop in time."""
        if self._stopped:
            return
        self._stopped = True
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def __enter__(self) -> "LabServer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def lab_command(port: int, root: Path, open_browser: bool, open_path: str | None,
                state_dir: Path | None) -> list[str]:
    """The `jupyter lab` command line: loopback, one port (no retries), offline (no news, no update check)."""
    cmd = [sys.executable, "-m", "jupyterlab", "--ip=127.0.0.1", f"--port={port}", "--ServerApp.port_retries=0",
           f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.extension_manager=readonly",
           "--ServerApp.open_browser=" + ("True" if open_browser else "False")]
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # containers and CI run as root; jupyter refuses without this
        cmd.append("--allow-root")
    if open_path:
        cmd.append(f"--LabApp.default_url=/lab/tree/{quote(open_path)}")
    if state_dir is not None:  # a fresh layout: no workspace or settings left by an earlier session
        cmd += [f"--LabApp.workspaces_dir={state_dir / 'workspaces'}",
                f"--LabApp.user_settings_dir={state_dir / 'settings'}"]
    return cmd


def start_lab(port: int | None = None, root: Path = ROOT, open_browser: bool = False,
              open_path: str | None = CONTENTS_PAGE, state_dir: Path | None = None, wait_s: float = 90.0,
              log: Path | None = None) -> LabServer:
    """Start JupyterLab on 127.0.0.1 with a fresh token; return once it answers (raises if it does not)."""
    import httpx

    if port is None:
        port = free_port()
    elif port_in_use(port):
        raise OSError(f"port {port} on 127.0.0.1 is in use: pick another with --port, or leave --port out to get "
                      "a free one")
    token = secrets.token_urlsafe(24)
    log = log or BUILD / f"jupyterlab-{port}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "JUPYTER_TOKEN": token}
    with open(log, "wb") as out:
        # its own session: Ctrl+C reaches this process, which stops the server (no "Shutdown? (y/n)" prompt)
        proc = subprocess.Popen(lab_command(port, root, open_browser, open_path, state_dir), env=env, cwd=root,
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    server = LabServer(proc, port, token, Path(root), log)
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise OSError(f"JupyterLab exited with code {proc.returncode} before answering: {' | '.join(tail)} "
                          f"(whole log: {log})")
        try:
            r = httpx.get(f"{server.base}/api/status", headers={"Authorization": f"token {token}"}, timeout=2)
            if r.status_code == 200:
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    server.stop()
    raise TimeoutError(f"JupyterLab did not answer on 127.0.0.1:{port} within {wait_s:.0f} s (log: {log})")


def run_lab(port: int | None = None, open_browser: bool = True) -> int:
    """`python -m helpers lab`: start JupyterLab at the contents page, print its address, wait for Ctrl+C."""
    if not (ROOT / CONTENTS_PAGE).exists():
        raise FileNotFoundError(f"{CONTENTS_PAGE} is missing: build it with `python -m helpers contents`")
    import signal

    def _terminate(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)  # `kill` stops the server too, as Ctrl+C does
    server = start_lab(port=port, open_browser=open_browser)
    print(f"JupyterLab is running on 127.0.0.1:{server.port} (this machine only). Open the workbook at:\n\n"
          f"    {server.url()}\n\nThe token in the address is this run's password. Ctrl+C stops the server "
          f"and its kernels (log: {server.log}).", flush=True)
    try:
        while server.proc.poll() is None:
            time.sleep(0.5)
        print(f"JupyterLab stopped (exit code {server.proc.returncode}; log: {server.log})", file=sys.stderr)
        return server.proc.returncode or 0
    except KeyboardInterrupt:
        print("stopping JupyterLab ...", flush=True)
        return 0
    finally:
        server.stop()
