"""`python -m helpers lab`: JupyterLab on 127.0.0.1 only, behind a token generated for the run."""

from __future__ import annotations

import socket
import subprocess
import sys

import httpx

from helpers.lab import CONTENTS_PAGE, free_port, lab_command, start_lab
from helpers.paths import ROOT


def test_the_command_binds_loopback_and_never_retries_another_port(tmp_path):
    cmd = lab_command(8888, ROOT, open_browser=False, open_path=CONTENTS_PAGE, state_dir=tmp_path)
    assert "--ip=127.0.0.1" in cmd and "--port=8888" in cmd and "--ServerApp.port_retries=0" in cmd
    assert f"--LabApp.default_url=/lab/tree/{CONTENTS_PAGE}" in cmd
    assert not any("token" in part.lower() for part in cmd), "the token goes through the environment, not argv"


def test_a_busy_port_is_one_clear_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "helpers", "lab", "--no-browser", "--port", str(port)],
                             capture_output=True, text=True, cwd=str(ROOT), timeout=60)
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith("error: ") and len(res.stderr.strip().splitlines()) == 1
    assert f"port {port}" in res.stderr and "--port" in res.stderr


def test_lab_answers_on_loopback_only_with_its_token(tmp_path):
    server = start_lab(port=free_port(), state_dir=tmp_path, log=tmp_path / "lab.log")
    try:
        assert server.url().startswith(f"http://127.0.0.1:{server.port}/lab/tree/{CONTENTS_PAGE}?token=")
        ok = httpx.get(f"{server.base}/api/contents/{CONTENTS_PAGE}",
                       headers={"Authorization": f"token {server.token}"}, timeout=10)
        assert ok.status_code == 200 and ok.json()["type"] == "notebook"
        assert httpx.get(f"{server.base}/api/contents/{CONTENTS_PAGE}", timeout=10).status_code == 403
        wrong = httpx.get(f"{server.base}/api/status", headers={"Authorization": "token guessed"}, timeout=10)
        assert wrong.status_code == 403
        listening = subprocess.run(["ss", "-ltnH", f"sport = :{server.port}"], capture_output=True, text=True)
        if listening.returncode == 0 and listening.stdout.strip():
            assert all(line.split()[3].startswith("127.0.0.1:") for line in listening.stdout.strip().splitlines())
    finally:
        server.stop()
    assert server.proc.poll() is not None, "the server outlived stop()"
