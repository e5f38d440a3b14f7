"""The contracts the agent pieces share: guards and audit logs plug into the agent loop through these.

Introduced in notebook 03 (the loop) and notebook 06 (guardrails). Any object with these methods works.
"""

from __future__ import annotations

from typing import Any, Protocol


class Guard(Protocol):
    """Checks the loop runs around every step; each returns a reason to refuse, or None to allow."""

    def check_input(self, text: str) -> str | None:
        """Before the user's message reaches the model."""

    def check_call(self, name: str, arguments: dict[str, Any]) -> str | None:
        """Before a tool runs (after its arguments passed the schema)."""

    def check_tool_result(self, name: str, result: str) -> str:
        """After a tool ran: the text to feed back to the model (possibly neutralised)."""

    def check_output(self, text: str) -> str | None:
        """Before the model's answer reaches the user."""


class AuditLog(Protocol):
    """Where the loop records every tool call, allowed or refused."""

    def record(self, event: dict[str, Any]) -> None:
        """Append one event (tool, arguments, decision, result or error)."""
