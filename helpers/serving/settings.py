"""The gateway's configuration: one pydantic-settings class, read from arguments, `EDGE_GATEWAY_*` variables
and a key file (notebook 21).

Every limit the gateway enforces is a field here with its unit in the name, so a learner reads the whole
policy in one place: how much may wait, how long a request may take, how often one key may ask.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class GatewaySettings(BaseSettings):
    """What the gateway enforces. Environment variables `EDGE_GATEWAY_<FIELD>` override the defaults."""

    model_config = SettingsConfigDict(env_prefix="EDGE_GATEWAY_", extra="forbid")

    upstreams: list[str] = Field(description="OpenAI-compatible base URLs, tried in this order (failover)")
    api_keys: list[SecretStr] = Field(description="keys a client may send as `Authorization: Bearer KEY`")
    upstream_api_key: SecretStr | None = Field(None, description="sent upstream (vLLM --api-key); never the client's")
    host: str = "127.0.0.1"
    port: int = 8780
    # load: requests in flight to the upstreams at once, and how many more may wait for a turn
    concurrency: int = Field(1, ge=1,
                             description="requests sent upstream at once (1 for a server that generates one at a time)")
    max_queue: int = Field(32, ge=0, description="requests waiting for a turn; one more gets 503")
    # per-key rate limit, in the `limits` library's notation ("20/second", "600/minute"): a leaky bucket that
    # takes that many requests at once, then refills at that rate
    rate_limit: str = "20/second"
    # time: a whole request's budget, the gap allowed between two chunks, and the connect timeout
    deadline_s: float = Field(30.0, gt=0)
    read_gap_s: float = Field(10.0, gt=0, description="longest silence of an upstream between two chunks")
    connect_timeout_s: float = Field(2.0, gt=0)
    # retries before the first byte reaches the client (each may go to the next upstream)
    attempts: int = Field(3, ge=1)
    backoff_initial_s: float = Field(0.05, ge=0)
    backoff_max_s: float = Field(1.0, ge=0)
    upstream_cooldown_s: float = Field(2.0, ge=0, description="an upstream that refused a connection waits so long")
    models_ttl_s: float = Field(30.0, ge=0, description="how long the upstreams' model lists are trusted")
    # request shape
    max_body_bytes: int = Field(64 * 1024, ge=1024)
    max_tokens_cap: int = Field(1024, ge=1)
    # logs: prompts, answers and keys never appear unless this is switched on
    log_content: bool = False
    audit_path: Path | None = Field(None, description="also append tool-call audit records to this JSONL file")

    @field_validator("upstreams", mode="before")
    @classmethod
    def _split(cls, v: object) -> object:
        if isinstance(v, str):
            v = [u for u in v.split(",") if u.strip()]
        return [str(u).strip().rstrip("/") for u in v] if isinstance(v, list) else v

    @field_validator("upstreams")
    @classmethod
    def _check_urls(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("give at least one upstream, e.g. http://127.0.0.1:8765/v1")
        for u in v:
            if not u.startswith(("http://", "https://")):
                raise ValueError(f"upstream {u!r} is not a URL: write it as http://127.0.0.1:8765/v1")
        return v

    @field_validator("api_keys")
    @classmethod
    def _check_keys(cls, v: list[SecretStr]) -> list[SecretStr]:
        if not v:
            raise ValueError("the gateway needs at least one API key (--api-key-file)")
        for k in v:
            if len(k.get_secret_value()) < 16:
                raise ValueError("an API key must be at least 16 characters: use `secrets.token_urlsafe(32)`")
        return v


def read_key_file(path: str | Path) -> SecretStr:
    """The one key a key file holds (surrounding whitespace removed); a clear error when it is missing or empty."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"No API key file at {p}: write one with "
                                f"`python -c \"import secrets; print(secrets.token_urlsafe(32))\" > {p}`")
    key = p.read_text(encoding="utf-8").strip()
    if not key or len(key.splitlines()) != 1:
        raise ValueError(f"{p} must hold exactly one key on one line")
    return SecretStr(key)


def write_key_file(path: str | Path) -> SecretStr:
    """Write a fresh random key to `path` (mode 0600) and return it: for notebooks and tests."""
    import os
    import secrets

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(32)
    fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    return SecretStr(key)
