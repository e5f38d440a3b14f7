"""A real Prometheus on 127.0.0.1 for the notebooks, its HTTP API, and `promtool` (notebooks 19 and 20).

The workbook uses Debian's `prometheus` package (`apt-get install prometheus`, which brings `promtool`).
`PrometheusServer` writes a scrape config into build/, starts its own Prometheus on a free loopback port
with its own data directory, waits until `/-/ready`, answers PromQL over `/api/v1/query`, and stops it.
The Debian service (which would listen on every interface on 9090) is never used.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from helpers.runtimes.wire import stop_process
from dataclasses import dataclass
from pathlib import Path
from typing import Any

INSTALL_HINT = ("Prometheus is not installed: on Debian/Ubuntu run `sudo apt-get install prometheus` "
                "(it brings promtool), or download it from https://prometheus.io/download/ and put "
                "`prometheus` and `promtool` on PATH")


class PrometheusNotInstalled(RuntimeError):
    """No `prometheus`/`promtool` binary on PATH; the message says how to get one."""


class PortInUse(RuntimeError):
    """The port asked for is taken; the message says which and what to do."""


class PromtoolError(RuntimeError):
    """promtool rejected a rule file or a rule test; the message carries promtool's own words."""


def find_binary(name: str = "prometheus") -> str:
    """Path of `prometheus` or `promtool`, or PrometheusNotInstalled with the install command."""
    path = shutil.which(name)
    if path is None:
        raise PrometheusNotInstalled(f"`{name}` not found. {INSTALL_HINT}.")
    return path


def installed() -> bool:
    """Whether both prometheus and promtool are on PATH."""
    return shutil.which("prometheus") is not None and shutil.which("promtool") is not None


def version() -> str:
    """`prometheus --version`'s first line."""
    out = subprocess.run([find_binary(), "--version"], capture_output=True, text=True, timeout=10, check=False)
    return (out.stdout or out.stderr).splitlines()[0]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def check_port_free(port: int, host: str = "127.0.0.1") -> None:
    """PortInUse unless `host:port` can be bound now."""
    with socket.socket() as s:
        try:
            s.bind((host, port))
        except OSError:
            raise PortInUse(f"port {port} on {host} is in use (another Prometheus or server?): pick another "
                            "port, or pass port=None to take a free one") from None


def scrape_config(targets: dict[str, list[str]], interval: str = "1s", rule_files: list[str] | None = None,
                  evaluation_interval: str | None = None) -> dict[str, Any]:
    """A prometheus.yml as a dict: one job per name with its `host:port` targets (and /metrics paths)."""
    jobs = []
    for job, addrs in targets.items():
        for addr in addrs:
            if not addr.startswith(("127.", "localhost")):
                raise ValueError(f"target {addr!r} of job {job!r} is not on this machine; the workbook scrapes "
                                 "loopback targets only")
        jobs.append({"job_name": job, "static_configs": [{"targets": list(addrs)}]})
    cfg: dict[str, Any] = {"global": {"scrape_interval": interval, "scrape_timeout": interval,
                                      "evaluation_interval": evaluation_interval or interval},
                           "scrape_configs": jobs}
    if rule_files:
        cfg["rule_files"] = [str(p) for p in rule_files]
    return cfg


@dataclass
class PrometheusServer:
    """Our own Prometheus process on 127.0.0.1 (use as a context manager; `stop()` ends it)."""

    workdir: Path
    port: int | None = None
    proc: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.workdir = Path(self.workdir)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, config: dict[str, Any], timeout: float = 20.0) -> PrometheusServer:
        """Write `config` to workdir/prometheus.yml, start Prometheus on 127.0.0.1 and wait until ready."""
        import yaml

        binary = find_binary("prometheus")
        if self.port is None:
            self.port = free_port()
        else:
            check_port_free(self.port)
        self.workdir.mkdir(parents=True, exist_ok=True)
        data = self.workdir / "data"
        shutil.rmtree(data, ignore_errors=True)  # every run starts from an empty database
        self.n_targets = sum(len(sc["targets"]) for job in config.get("scrape_configs", [])
                             for sc in job.get("static_configs", []))
        cfg_path = self.workdir / "prometheus.yml"
        cfg_path.write_text(yaml.safe_dump(config, sort_keys=False))
        self.log_path = self.workdir / "prometheus.log"
        cmd = [binary, f"--config.file={cfg_path}", f"--storage.tsdb.path={data}",
               f"--web.listen-address=127.0.0.1:{self.port}", "--web.enable-lifecycle",
               "--storage.tsdb.retention.time=1h", "--log.level=warn"]
        with open(self.log_path, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text()[-1200:]
                self.proc = None
                raise RuntimeError(f"Prometheus exited at start-up (see {self.log_path}):\n{tail}")
            try:
                with urllib.request.urlopen(self.url + "/-/ready", timeout=0.5) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"Prometheus did not become ready within {timeout:.0f} s; see {self.log_path}")

    def _get(self, path: str, **params: Any) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read() or b"{}")
            raise ValueError(f"Prometheus refused {params.get('query', path)!r}: {body.get('error', exc)}") from None
        if body.get("status") != "success":
            raise ValueError(f"Prometheus answered {body.get('status')}: {body.get('error')}")
        return body["data"]

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant PromQL query: [{"metric": {...labels}, "value": float}], NaN kept as NaN."""
        data = self._get("/api/v1/query", query=promql)
        if data["resultType"] == "scalar":
            return [{"metric": {}, "value": float(data["result"][1])}]
        return [{"metric": r["metric"], "value": float(r["value"][1])} for r in data["result"]]

    def query_value(self, promql: str) -> float:
        """The single value of a query that returns one series (NaN when it returns none)."""
        rows = self.query(promql)
        if len(rows) > 1:
            raise ValueError(f"{promql!r} returned {len(rows)} series; wrap it in sum(...) or pick labels")
        return rows[0]["value"] if rows else float("nan")

    def targets(self) -> list[dict[str, Any]]:
        """The active scrape targets: job, URL, health (up/down/unknown) and the last scrape error."""
        data = self._get("/api/v1/targets")
        return [{"job": t["labels"].get("job"), "url": t["scrapeUrl"], "health": t["health"],
                 "error": t.get("lastError", "")} for t in data["activeTargets"]]

    def alerts(self) -> list[dict[str, Any]]:
        """Alerts pending or firing now: name, state, labels, value."""
        data = self._get("/api/v1/alerts")
        return [{"alertname": a["labels"].get("alertname"), "state": a["state"], "labels": a["labels"],
                 "value": a.get("value")} for a in data["alerts"]]

    def wait_for(self, predicate, timeout: float = 15.0, interval: float = 0.25) -> bool:
        """Poll `predicate(self)` until it is true or `timeout` passes; whether it became true."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if predicate(self):
                    return True
            except ValueError:
                pass
            time.sleep(interval)
        return False

    def wait_first_scrape(self, timeout: float = 15.0) -> list[dict[str, Any]]:
        """Wait until every target has been scraped once (Prometheus applies new targets on a 5-second tick,
        so the first scrape can come seconds after start-up); returns the targets."""
        want = getattr(self, "n_targets", 0)

        def scraped(p: PrometheusServer) -> bool:
            ts = p.targets()
            return len(ts) >= want and all(t["health"] != "unknown" for t in ts)

        self.wait_for(scraped, timeout=timeout)
        return self.targets()

    def stop(self) -> None:
        """End the Prometheus process (its data directory stays in build/ for inspection)."""
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None

    def __enter__(self) -> PrometheusServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def promtool(*args: str, timeout: float = 60.0) -> str:
    """Run promtool; its output on success, PromtoolError with its output on failure."""
    res = subprocess.run([find_binary("promtool"), *args], capture_output=True, text=True, timeout=timeout,
                         check=False)
    out = (res.stdout + res.stderr).strip()
    if res.returncode != 0:
        raise PromtoolError(f"promtool {' '.join(args[:2])} failed:\n{out}")
    return out


def promtool_check_rules(path: str | Path) -> str:
    """`promtool check rules PATH`: syntax, PromQL and templates of a rule file."""
    return promtool("check", "rules", str(path))


def promtool_test_rules(path: str | Path) -> str:
    """`promtool test rules PATH`: the rule unit tests (input series, expected alerts)."""
    return promtool("test", "rules", str(path))


@dataclass
class NodeExporter:
    """Prometheus's node_exporter (Debian `prometheus-node-exporter`) on 127.0.0.1, memory and load only:
    the machine-level numbers (`node_memory_MemAvailable_bytes` ...) the memory alert reads."""

    port: int | None = None
    proc: subprocess.Popen | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, timeout: float = 10.0) -> NodeExporter:
        binary = shutil.which("prometheus-node-exporter") or shutil.which("node_exporter")
        if binary is None:
            raise PrometheusNotInstalled("node_exporter not found: `sudo apt-get install prometheus-node-exporter` "
                                         "(then stop its service: the workbook runs its own on 127.0.0.1)")
        self.port = self.port or free_port()
        self.proc = subprocess.Popen([binary, f"--web.listen-address={self.address}", "--collector.disable-defaults",
                                      "--collector.meminfo", "--collector.loadavg"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://{self.address}/metrics", timeout=0.5):
                    return self
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"node_exporter did not answer on {self.address} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None

    def __enter__(self) -> NodeExporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
