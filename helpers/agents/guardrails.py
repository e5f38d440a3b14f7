"""Guardrails for the agent loop: input and output policies, role-based tool permissions, signed tokens,
an append-only audit log with a hash chain, and a defence against instructions hidden in tool results.

Introduced in notebook 06 (guardrails). Every piece works on its own (`InputPolicy().check(text)`), and
`Guardrails` puts them together behind the `Guard` protocol of `helpers.agents.base`, which the agent loop
(`helpers.agents.loop.Agent(..., guard=..., audit=...)`) calls around every step. `AuditLog` implements
the `AuditLog` protocol. Everything is local and uses the standard library (plus the domain's schemas).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable

from helpers.domain.tools import TOOL_NAMES, ToolArgumentError, validate_arguments

# ------------------------------------------------------------------------------------ unicode helpers
# Characters that render as nothing (or reorder text) yet change what a pattern sees: zero-width
# spaces and joiners, the word joiner, the BOM, soft hyphen, and the bidirectional overrides/isolates.
INVISIBLE = frozenset("\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
                      "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# A small confusables table: letters of other scripts that look like Latin ones (after NFKC, which
# already folds full-width and mathematical letters). Enough for the demonstrations; Unicode's full
# table is in UTS #39.
CONFUSABLES = str.maketrans({
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j", "ѕ": "s",
    "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ո": "n", "ν": "v", "ο": "o", "α": "a", "ε": "e", "ι": "i",
    "κ": "k", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ϲ": "c", "ԛ": "q", "ԝ": "w",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C", "Т": "T",
    "Х": "X", "І": "I", "Ј": "J", "Ѕ": "S", "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I",
    "Κ": "K", "Μ": "M", "Ν": "N", "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
})


def skeleton(text: str) -> str:
    """The form patterns are matched on (notebook 06): NFKC, invisible characters removed, look-alike
    letters mapped to Latin, whitespace collapsed, case folded. Two strings a reader cannot tell apart
    get the same skeleton."""
    t = unicodedata.normalize("NFKC", text)
    t = "".join(ch for ch in t if ch not in INVISIBLE and unicodedata.category(ch) != "Cf")
    t = t.translate(CONFUSABLES)
    t = re.sub(r"\s+", " ", t)
    return t.casefold().strip()


def _forbidden_controls(text: str) -> list[str]:
    """Control and format characters other than newline, carriage return and tab, as U+XXXX names."""
    bad = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in "\n\r\t":
            continue
        if cat in ("Cc", "Cf", "Cs", "Co", "Cn") or ch in INVISIBLE:
            code = f"U+{ord(ch):04X}"
            if code not in bad:
                bad.append(code)
    return bad


# Chat-template markers of the workbook model (helpers.domain.chat_format) and of other common
# templates: text carrying them could forge a turn of the conversation.
CHAT_MARKERS = ("<|system|>", "<|user|>", "<|assistant|>", "<|tool|>", "<|tools|>", "<|end|>", "<tool_call>",
                "</tool_call>", "<|im_start|>", "<|im_end|>", "<|eot_id|>", "<|start_header_id|>", "[INST]", "<s>",
                "</s>")

# Phrases that instruct a model rather than inform it (matched on the skeleton). Tool names also match
# when written with spaces ("escalate to human").
_TOOLS_RE = "|".join(n.replace("_", "[ _]") for n in TOOL_NAMES)
INSTRUCTION_PATTERNS: tuple[str, ...] = (
    r"\b(ignore|disregard|forget|override)\b.{0,40}\b(instruction|instructions|rules|prompt|guidelines|above)\b",
    r"\b(you are now|from now on|new instructions?|system prompt|developer mode|jailbreak)\b",
    r"\b(call|use|invoke|run|execute|trigger)\b.{0,30}\b(" + _TOOLS_RE + r")\b",
    r"\b(" + _TOOLS_RE + r")\s*\(",
    r"\b(assistant|ai|model|agent)\s*[:,]\s*(please\s+)?(call|do|say|reply|send|escalate|reveal)\b",
    r"\breveal\b.{0,30}\b(secret|password|token|key|prompt)\b",
)


# ------------------------------------------------------------------------------------ input policy
@dataclass
class InputPolicy:
    """What a user's message must satisfy before it reaches the model (notebook 06).

    Checks, in order: it is text (bytes must be valid UTF-8), not empty, at most `max_chars` characters,
    in NFC form, free of control/format characters (zero-width, bidi overrides), free of chat-template
    markers, and free of `forbidden` patterns, which are matched on the `skeleton` so that full-width
    letters, look-alike letters and zero-width splits do not slip past them.
    """

    max_chars: int = 500
    forbidden: tuple[str, ...] = INSTRUCTION_PATTERNS[:2] + INSTRUCTION_PATTERNS[5:]
    require_nfc: bool = True

    def check(self, text: Any) -> str | None:
        """A reason to refuse `text`, or None when it passes."""
        if isinstance(text, (bytes, bytearray)):
            try:
                text = bytes(text).decode("utf-8", errors="strict")
            except UnicodeDecodeError as exc:
                return f"input is not valid UTF-8 (byte {exc.start}): decode it as UTF-8 before sending"
        if not isinstance(text, str):
            return f"input must be text, got {type(text).__name__}"
        try:
            text.encode("utf-8", errors="strict")
        except UnicodeEncodeError as exc:
            return f"input holds a lone surrogate at position {exc.start}: it is not valid Unicode text"
        if not text.strip():
            return "input is empty: type a request"
        if len(text) > self.max_chars:
            return f"input is {len(text)} characters, the limit is {self.max_chars}: shorten it"
        if self.require_nfc and unicodedata.normalize("NFC", text) != text:
            return "input is not in Unicode NFC form: normalise it with unicodedata.normalize('NFC', text)"
        bad = _forbidden_controls(text)
        if bad:
            return f"input holds invisible control/format characters {bad[:5]}: remove them"
        sk = skeleton(text)
        for marker in CHAT_MARKERS:
            if marker.casefold() in sk:
                return f"input holds the chat-template marker {marker!r}, which could forge a turn: remove it"
        for pat in self.forbidden:
            m = re.search(pat, sk)
            if m:
                return f"input matches a forbidden pattern ({m.group(0)[:40]!r}): rephrase the request"
        return None


# ------------------------------------------------------------------------------------ output policy
CUSTOMER_ID_RE = re.compile(r"\bc\s*-\s*\d{4,6}\b")
EMAIL_RE = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
SECRET_RES = (re.compile(r"\bsk-[a-z0-9]{16,}"), re.compile(r"\bv1\.[a-z0-9_-]{10,}\.[0-9a-f]{64}\b"),
              re.compile(r"\b(password|passwd|secret)\s*[:=]\s*\S+"))


@dataclass
class OutputPolicy:
    """What the model's answer must satisfy before the user sees it (notebook 06).

    At most `max_chars`; no customer id other than `allowed_customer_ids`; no e-mail address other than
    `allowed_emails`; nothing that looks like a secret (API keys, this module's tokens, passwords).
    Matching runs on the `skeleton`, so zero-width characters inside an id do not hide it.
    """

    max_chars: int = 1200
    allowed_customer_ids: set[str] = field(default_factory=set)
    allowed_emails: set[str] = field(default_factory=set)

    def check(self, text: str) -> str | None:
        """A reason to withhold `text`, or None when it may be shown."""
        if len(text) > self.max_chars:
            return f"answer is {len(text)} characters, the limit is {self.max_chars}"
        sk = skeleton(text)
        allowed_ids = {skeleton(c) for c in self.allowed_customer_ids}
        for m in CUSTOMER_ID_RE.finditer(sk):
            cid = re.sub(r"\s", "", m.group(0))
            if cid not in allowed_ids:
                return f"answer mentions customer id {cid.upper()}, which is not this session's customer"
        allowed_mails = {skeleton(e) for e in self.allowed_emails}
        for m in EMAIL_RE.finditer(sk):
            if m.group(0) not in allowed_mails:
                return "answer holds an e-mail address that is not this session's customer's"
        for pat in SECRET_RES:
            if pat.search(sk):
                return "answer holds something that looks like a secret (key, token or password)"
        return None


# ------------------------------------------------------------------------------------ signed tokens
class TokenSigner:
    """Short-lived access tokens signed with HMAC-SHA256 (notebook 06): `v1.<payload>.<signature>`.

    The payload (base64url JSON) names the subject, the scopes and the expiry time; only a holder of
    `secret` can make a signature that verifies. `clock` is injectable so tests can move time.
    """

    def __init__(self, secret: bytes, clock: Callable[[], float] = time.time) -> None:
        if not isinstance(secret, (bytes, bytearray)) or len(secret) < 16:
            raise ValueError("secret must be at least 16 random bytes: use secrets.token_bytes(32)")
        self._secret = bytes(secret)
        self.clock = clock

    def _sign(self, payload: str) -> str:
        return hmac.new(self._secret, payload.encode("ascii"), hashlib.sha256).hexdigest()

    def issue(self, subject: str, scopes: Iterable[str], ttl_s: float = 300.0) -> str:
        """A token for `subject` allowing `scopes`, valid for `ttl_s` seconds from now."""
        body = {"sub": subject, "scp": sorted(scopes), "exp": round(self.clock() + ttl_s, 3)}
        payload = base64.urlsafe_b64encode(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).decode()
        payload = payload.rstrip("=")
        return f"v1.{payload}.{self._sign(payload)}"

    def verify(self, token: str | None, scope: str, subject: str | None = None) -> str | None:
        """A reason the token does not grant `scope` (to `subject`), or None when it does."""
        if not token or not isinstance(token, str):
            return f"this tool needs a token with scope {scope!r}: sign in first"
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != "v1":
            return "token is malformed (expected v1.<payload>.<signature>)"
        _, payload, sig = parts
        if not hmac.compare_digest(self._sign(payload), sig):
            return "token signature is invalid: it was not issued by this service or was altered"
        try:
            body = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        except (ValueError, json.JSONDecodeError):
            return "token payload is unreadable"
        if self.clock() >= float(body.get("exp", 0)):
            return "token has expired: sign in again"
        if scope not in body.get("scp", []):
            return f"token does not grant scope {scope!r} (it grants {body.get('scp')})"
        if subject is not None and body.get("sub") != subject:
            return "token was issued to someone else"
        return None


# ------------------------------------------------------------------------------------ permissions
@dataclass
class Session:
    """Who is talking to the agent (notebook 06): a role, the authenticated customer, an optional token."""

    role: str
    customer_id: str | None = None
    token: str | None = None


@dataclass
class RolePolicy:
    """What one role may do (notebook 06): its tools, whether `customer_id` arguments must be the
    session's own customer, and which tools need a token with which scope."""

    tools: frozenset[str]
    own_customer_only: bool = True
    token_scopes: dict[str, str] = field(default_factory=dict)


# Roles used in notebook 06. A kiosk serves the customer who signed in at it; support staff may act
# for any customer; the IT desk runs diagnostics; the records desk (health-care style) reads personal
# data only with a valid token.
DEFAULT_ROLES: dict[str, RolePolicy] = {
    "kiosk": RolePolicy(frozenset({"lookup_order", "check_inventory", "get_weather", "get_current_time",
                                   "calculate_circle_area", "schedule_callback", "escalate_to_human",
                                   "create_ticket"})),
    "support": RolePolicy(frozenset(TOOL_NAMES), own_customer_only=False),
    "it": RolePolicy(frozenset({"run_diagnostics", "create_ticket", "get_current_time"}), own_customer_only=False),
    "records": RolePolicy(frozenset({"lookup_customer", "schedule_callback", "get_current_time"}),
                          token_scopes={"lookup_customer": "records:read"}),
}


def _norm_id(value: Any) -> str:
    return skeleton(str(value)).replace(" ", "").upper()


class ToolPermissions:
    """Role -> allowed tools + argument constraints + token checks (notebook 06).

    `check(session, name, arguments)` returns a reason to refuse or None. It also re-validates the
    arguments against the tool's schema, so no tool runs with arguments that fail it even if a caller
    skipped that step.
    """

    def __init__(self, roles: dict[str, RolePolicy] | None = None, signer: TokenSigner | None = None) -> None:
        self.roles = dict(DEFAULT_ROLES if roles is None else roles)
        self.signer = signer

    def check(self, session: Session, name: str, arguments: dict[str, Any]) -> str | None:
        """A reason to refuse this call for this session, or None when it may run."""
        policy = self.roles.get(session.role)
        if policy is None:
            return f"unknown role {session.role!r}; roles: {sorted(self.roles)}"
        if name not in policy.tools:
            return f"role {session.role!r} may not call {name}; it may call {sorted(policy.tools)}"
        if name in TOOL_NAMES:
            try:
                arguments = validate_arguments(name, arguments)
            except ToolArgumentError as exc:
                return f"arguments fail the schema: {exc}"
        if policy.own_customer_only and "customer_id" in arguments:
            if not session.customer_id:
                return f"{name} acts for a customer, but nobody is signed in at this {session.role}"
            if _norm_id(arguments["customer_id"]) != _norm_id(session.customer_id):
                return (f"{name} may act only for the signed-in customer {session.customer_id}, "
                        f"not {arguments['customer_id']}")
        scope = policy.token_scopes.get(name)
        if scope is not None:
            if self.signer is None:
                return f"{name} needs a token but no token signer is configured"
            reason = self.signer.verify(session.token, scope, subject=session.customer_id)
            if reason:
                return f"{name}: {reason}"
        return None


# ------------------------------------------------------------------------------------ injection defence
@dataclass
class Screened:
    """What `InjectionDefence.screen` found in a tool result and the text to pass on."""

    text: str
    flagged: list[str]


class InjectionDefence:
    """Treat tool output as data, never as instructions (notebook 06).

    `screen(name, result)` looks at every string in a tool result (JSON or text) and replaces those that
    carry chat markers or instruction-like phrases with a placeholder, so the model never reads them.
    The flag it raises is what `Guardrails` uses to refuse further tool calls in the same turn: a
    tool result can inform the answer, it cannot start another action.
    """

    # One plain word: the workbook's model copies a result's fields into its answer, and a long bracketed
    # placeholder it never saw in training came out garbled ("(ri°C- f (Lyon )"); "withheld" comes out whole.
    PLACEHOLDER = "withheld"

    def __init__(self, patterns: tuple[str, ...] = INSTRUCTION_PATTERNS) -> None:
        self.patterns = tuple(re.compile(p) for p in patterns)

    def suspicious(self, text: str) -> str | None:
        """Why `text` looks like an instruction (or a forged turn), or None."""
        sk = skeleton(text)
        for marker in CHAT_MARKERS:
            if marker.casefold() in sk:
                return f"chat marker {marker!r}"
        for pat in self.patterns:
            m = pat.search(sk)
            if m:
                return f"instruction-like text {m.group(0)[:40]!r}"
        return None

    def screen(self, name: str, result: str) -> Screened:
        """The tool result with suspicious strings withheld, and what was flagged."""
        text, flagged = withhold(result, self.suspicious, self.PLACEHOLDER)
        return Screened(text=text, flagged=flagged)


def withhold(result: str, check: Callable[[str], str | None], placeholder: str) -> tuple[str, list[str]]:
    """A tool result with every string `check` flags replaced by `placeholder`, and the reasons it gave.

    A JSON object or list is walked field by field (and re-serialised only if something was withheld); any
    other result is checked as one string."""
    flagged: list[str] = []

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            why = check(v)
            if why:
                flagged.append(why)
                return placeholder
            return v
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, dict):
            return {k: walk(x) for k, x in v.items()}
        return v

    try:
        data = json.loads(result)
    except (TypeError, ValueError):
        data = None
    if isinstance(data, (dict, list)):
        cleaned = walk(data)
        return (json.dumps(cleaned, ensure_ascii=False, separators=(",", ":")) if flagged else result), flagged
    return walk(str(result)), flagged


# ------------------------------------------------------------------------------------ the guard
class Guardrails:
    """All the checks together, as the `Guard` the agent loop calls (notebook 06).

    Per turn (a user message and the steps it causes): the input policy checks the message; each tool
    call must pass the role's permissions (tools, own-customer arguments, tokens) and, once a tool result
    in this turn was flagged by the injection defence, no further tool call runs; each tool result is
    screened; the answer must pass the output policy. `events` lists every decision for inspection.
    """

    def __init__(self, session: Session, *, input_policy: InputPolicy | None = None,
                 output_policy: OutputPolicy | None = None, permissions: ToolPermissions | None = None,
                 injection: InjectionDefence | None = None, max_calls_per_turn: int = 3) -> None:
        self.session = session
        self.input_policy = input_policy or InputPolicy()
        self.output_policy = output_policy or OutputPolicy(
            allowed_customer_ids={session.customer_id} if session.customer_id else set())
        self.permissions = permissions or ToolPermissions()
        self.injection = injection or InjectionDefence()
        self.max_calls_per_turn = max_calls_per_turn
        self.tainted: list[str] = []
        self.calls_this_turn = 0
        self.events: list[dict[str, Any]] = []

    def _note(self, check: str, reason: str | None, **extra: Any) -> str | None:
        self.events.append({"check": check, "decision": "refused" if reason else "allowed", "reason": reason,
                            **extra})
        return reason

    def check_input(self, text: str) -> str | None:
        """A new turn: reset the per-turn state, then apply the input policy."""
        self.tainted, self.calls_this_turn = [], 0
        return self._note("input", self.input_policy.check(text))

    def check_call(self, name: str, arguments: dict[str, Any]) -> str | None:
        """Refuse calls after an injected tool result, beyond the per-turn budget, or outside the role."""
        if self.tainted:
            reason = (f"a tool result in this turn carried instructions ({self.tainted[0]}); "
                      f"{name} was not asked for by the user and will not run")
        elif self.calls_this_turn >= self.max_calls_per_turn:
            reason = f"more than {self.max_calls_per_turn} tool calls in one turn"
        else:
            reason = self.permissions.check(self.session, name, arguments)
        if reason is None:
            self.calls_this_turn += 1
        return self._note("call", reason, tool=name, arguments=arguments)

    def check_tool_result(self, name: str, result: str) -> str:
        """Screen a tool result; flag the turn when it carried instructions."""
        if not isinstance(result, str):
            result = json.dumps(result, ensure_ascii=False, separators=(",", ":"))
        screened = self.injection.screen(name, result)
        if screened.flagged:
            self.tainted.extend(screened.flagged)
        self._note("tool_result", "; ".join(screened.flagged) or None, tool=name)
        return screened.text

    def check_output(self, text: str) -> str | None:
        """Apply the output policy to the model's answer."""
        return self._note("output", self.output_policy.check(text))


# ------------------------------------------------------------------------------------ audit log
@dataclass
class AuditCheck:
    """The result of `AuditLog.verify()`: whether the chain is intact, how many records, what broke."""

    ok: bool
    records: int
    problem: str | None = None
    head: str | None = None

    def __bool__(self) -> bool:
        return self.ok


GENESIS = "0" * 64


class AuditLog:
    """An append-only JSONL audit log with a hash chain (notebook 06).

    Each record holds `seq`, `ts`, the event, `prev` (the previous record's hash) and `hash`, the SHA-256
    (or HMAC-SHA256 with `key`) of the record's canonical JSON without `hash`. `verify()` recomputes the
    chain: an edited, deleted, inserted or reordered record breaks it. Truncating the newest records
    leaves a valid shorter chain: keep `head` somewhere else and pass it as `expected_head` to catch that.
    Without a key, someone who can write the file can rebuild the whole chain; with a key they cannot.
    """

    def __init__(self, path: str | Path, key: bytes | None = None, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.key = key
        self.clock = clock
        self._seq, self._head = 0, GENESIS
        if self.path.exists() and self.path.stat().st_size:
            check = self.verify()
            if not check.ok:
                raise ValueError(f"audit log {self.path} fails verification ({check.problem}); "
                                 "keep it as evidence and start a new file")
            self._seq, self._head = check.records, check.head or GENESIS

    def _hash(self, record: dict[str, Any]) -> str:
        data = json.dumps(record, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str).encode()
        if self.key is not None:
            return hmac.new(self.key, data, hashlib.sha256).hexdigest()
        return hashlib.sha256(data).hexdigest()

    @property
    def head(self) -> str:
        """The hash of the newest record (GENESIS when empty)."""
        return self._head

    def record(self, event: dict[str, Any]) -> None:
        """Append one event; the file is only ever opened for appending."""
        rec = {"seq": self._seq + 1, "ts": round(self.clock(), 3),
               "event": json.loads(json.dumps(event, ensure_ascii=False, default=str)), "prev": self._head}
        rec["hash"] = self._hash(rec)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(rec, ensure_ascii=False, sort_keys=True) + "\n")
        self._seq, self._head = rec["seq"], rec["hash"]

    def records(self) -> list[dict[str, Any]]:
        """All records, oldest first."""
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def verify(self, expected_head: str | None = None) -> AuditCheck:
        """Recompute the chain; report the first broken record."""
        return verify_log(self.path, key=self.key, expected_head=expected_head)


def verify_log(path: str | Path, key: bytes | None = None, expected_head: str | None = None) -> AuditCheck:
    """Verify an audit log file without opening it for appending (notebook 06): the first broken record."""
    path = Path(path)
    reader = AuditLog.__new__(AuditLog)  # hashing only: no file is opened for writing
    reader.key = key
    prev, n = GENESIS, 0
    if not path.exists():
        return AuditCheck(True, 0, None, GENESIS)
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            return AuditCheck(False, n, f"line {lineno} is not JSON", prev)
        if not isinstance(rec, dict) or "hash" not in rec:
            return AuditCheck(False, n, f"line {lineno} is not an audit record", prev)
        if rec.get("seq") != n + 1:
            return AuditCheck(False, n, f"line {lineno}: sequence {rec.get('seq')} where {n + 1} was expected "
                                        "(a record was deleted, inserted or moved)", prev)
        if rec.get("prev") != prev:
            return AuditCheck(False, n, f"record {n + 1}: its prev hash does not match record {n}", prev)
        body = {k: v for k, v in rec.items() if k != "hash"}
        if not hmac.compare_digest(reader._hash(body), str(rec["hash"])):
            return AuditCheck(False, n, f"record {n + 1} was altered (its hash does not match its content)", prev)
        prev, n = rec["hash"], n + 1
    if expected_head is not None and prev != expected_head:
        return AuditCheck(False, n, "the newest record is not the expected head (records were removed "
                                    "from the end, or the log was replaced)", prev)
    return AuditCheck(True, n, None, prev)


__all__ = ["AuditCheck", "AuditLog", "CHAT_MARKERS", "DEFAULT_ROLES", "Guardrails", "INSTRUCTION_PATTERNS",
           "InjectionDefence", "InputPolicy", "OutputPolicy", "RolePolicy", "Screened", "Session", "TokenSigner",
           "ToolPermissions", "skeleton", "verify_log"]
