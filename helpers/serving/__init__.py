"""Serving: a gateway in front of any runtime's server, its load test, and the fault double (notebooks 21-23).

A sibling of agents, quant and monitoring: it imports runtimes, eval and paths, never its siblings. Heavy
imports (FastAPI, uvicorn, aiohttp, httpx, Locust) happen inside functions, so `import helpers.serving` stays fast.
"""

from helpers.serving.settings import GatewaySettings, read_key_file, write_key_file

__all__ = [
    "FakeUpstream",
    "GatewayProcess",
    "GatewaySettings",
    "ServerThread",
    "configure_logging",
    "create_app",
    "read_key_file",
    "run_gateway",
    "write_key_file",
]


def __getattr__(name: str):  # the heavy parts load on first use
    if name == "create_app":
        from helpers.serving.app import create_app

        return create_app
    if name == "FakeUpstream":
        from helpers.serving.fake_upstream import FakeUpstream

        return FakeUpstream
    if name in ("GatewayProcess", "ServerThread", "configure_logging", "run_gateway"):
        from helpers.serving import server

        return getattr(server, name)
    raise AttributeError(name)
