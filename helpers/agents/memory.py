"""State and memory for agents: conversations and facts in SQLite, and context-window budgeting.

Introduced in notebook 05 (state and memory).
- `ConversationStore(path)`: sessions, their messages (OpenAI-style dicts, in order) and `facts`, the
  agent's long-term memory (key/value per user, e.g. the customer id the user gave last week). Every
  write is committed at once, so a new process (a restarted kernel) opening the same file sees it all.
- `count_tokens(messages)`: tokens of a chat as the workbook's model sees it (the chat template of
  `helpers.domain.chat_format`, tokenized with the model's own tokenizer from `helpers.paths.MODEL_DIR`).
- `fit_to_budget(messages, max_tokens, keep_last=..., summarise=...)`: drop or summarise the oldest turns
  so a chat fits the model's context; it always keeps the system message and never separates a tool
  call from its result.
An `Agent` (helpers.agents.loop) is built with `messages=store.load(sid)`; its new messages go back with
`store.extend(sid, result.transcript)`.
"""

from __future__ import annotations

import contextlib
import json
import re
import sqlite3
import time
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable, Iterator

ROLES = ("system", "user", "assistant", "tool")
SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (session_id TEXT PRIMARY KEY, user_id TEXT NOT NULL, title TEXT NOT NULL,
                                     created REAL NOT NULL);
CREATE TABLE IF NOT EXISTS messages (session_id TEXT NOT NULL REFERENCES sessions(session_id), seq INTEGER NOT NULL,
                                     role TEXT NOT NULL, message TEXT NOT NULL, PRIMARY KEY (session_id, seq));
CREATE TABLE IF NOT EXISTS facts (user_id TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, source TEXT NOT NULL,
                                  updated REAL NOT NULL, PRIMARY KEY (user_id, key));
"""


class StoreError(RuntimeError):
    """The store's file cannot be used now; the message says why and what to do (a subclass says which case)."""


class StoreLocked(StoreError):
    """Another connection holds the store's write lock longer than the busy timeout: the file is fine, retry."""


class StoreCorrupt(StoreError):
    """The file is damaged or is not a conversation store: move it aside (never delete it) and start a new one."""


class StoreReadOnly(StoreError):
    """A write to a store opened read-only (a file or folder without write permission, or `readonly=True`)."""


class UnknownSessionError(LookupError):
    """A session id that the store does not hold; the message lists the ones it does."""


class ContextBudgetError(ValueError):
    """A chat cannot be made to fit the token budget without dropping what must be kept."""


def check_message(message: Any) -> dict[str, Any]:
    """Notebook 05: check one OpenAI-style message (role, text content) and return a clean copy, or raise ValueError."""
    if not isinstance(message, dict):
        raise ValueError(f"a message must be a dict like {{'role': 'user', 'content': '...'}}, got "
                         f"{type(message).__name__}")
    role = message.get("role")
    if role not in ROLES:
        raise ValueError(f"message role {role!r} is not one of {ROLES}")
    msg = dict(message)
    if msg.get("content") is None:
        msg["content"] = ""  # an assistant message with only tool calls; some servers reject null content
    if not isinstance(msg["content"], str):
        raise ValueError(f"message content must be text, got {type(msg['content']).__name__}")
    try:
        json.dumps(msg)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"message is not JSON-serialisable: {exc}") from None
    return msg


class Facts:
    """Notebook 05: the agent's long-term memory: string values by key, per user (a view on the store's `facts`
    table)."""

    def __init__(self, db: sqlite3.Connection, write: Callable[[], Any] | None = None,
                 errors: Callable[[], Any] | None = None) -> None:
        self._db = db
        self._write = write or (lambda: db)
        self._errors = errors or contextlib.nullcontext

    def set(self, user_id: str, key: str, value: str, source: str = "") -> None:
        """Remember `key = value` for `user_id` (replaces an older value)."""
        for name, v in (("user_id", user_id), ("key", key), ("value", value)):
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"fact {name} must be non-empty text, got {v!r}")
        with self._write():
            self._db.execute("INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?, ?)",
                             (user_id, key, value, source, time.time()))

    def get(self, user_id: str, key: str, default: str | None = None) -> str | None:
        """The remembered value, or `default`."""
        with self._errors():
            row = self._db.execute("SELECT value FROM facts WHERE user_id = ? AND key = ?", (user_id, key)).fetchone()
        return row[0] if row else default

    def all(self, user_id: str) -> dict[str, str]:
        """Everything remembered about `user_id`, by key."""
        with self._errors():
            return dict(self._db.execute("SELECT key, value FROM facts WHERE user_id = ? ORDER BY key", (user_id,)))

    def delete(self, user_id: str, key: str | None = None) -> int:
        """Forget one fact, or every fact about the user (key=None); how many were forgotten."""
        with self._write():
            if key is None:
                return self._db.execute("DELETE FROM facts WHERE user_id = ?", (user_id,)).rowcount
            return self._db.execute("DELETE FROM facts WHERE user_id = ? AND key = ?", (user_id, key)).rowcount


BUSY_TIMEOUT_S = 10.0  # how long a writer waits for another connection's write lock before StoreLocked


def _is_writable(path: Path) -> bool:
    """Whether SQLite can write here: the file (if any) and its folder (journal and WAL files live beside it)."""
    import os

    return (not path.exists() or os.access(path, os.W_OK)) and os.access(path.parent, os.W_OK)


class ConversationStore:
    """Notebook 05: conversations (sessions of ordered messages) and facts, persisted in one SQLite file.

    Safe for several processes at once: the file is in WAL mode (readers never block the writer), a writer
    waits up to `busy_timeout` seconds for another one's lock, and each write is one `BEGIN IMMEDIATE`
    transaction that reads the next sequence number inside it, so concurrent appends lose nothing. A file or
    folder without write permission (or `readonly=True`) opens read-only: loading works, writing raises
    `StoreReadOnly`. Errors say which case it is: `StoreLocked` (busy, the file is fine: retry),
    `StoreCorrupt` (move the file aside, never delete it), `StoreReadOnly`, or `StoreError`.
    """

    def __init__(self, path: str | Path, *, readonly: bool | None = None, busy_timeout: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.busy_timeout = busy_timeout
        if readonly is None:
            readonly = self.path.exists() and not _is_writable(self.path)
        self.readonly = readonly
        if readonly and not self.path.exists():
            raise StoreError(f"no store at {self.path} to open read-only: check the path, or open it writable")
        if not readonly:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                if not self.path.exists():  # a -wal left by a deleted store must not be replayed into a new one
                    for suffix in ("-wal", "-shm"):
                        side = self.path.with_name(self.path.name + suffix)
                        if side.exists():
                            side.replace(side.with_name(side.name + ".orphaned"))
            except OSError as exc:
                raise StoreError(f"cannot create the folder of {self.path} ({exc.strerror}): choose a writable "
                                 "path") from None
        self.db = self._connect()
        try:
            with self._errors():
                tables = {r[0] for r in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
                version = self.db.execute("PRAGMA user_version").fetchone()[0]
            if tables and (version != SCHEMA_VERSION or not {"sessions", "messages", "facts"} <= tables):
                raise StoreCorrupt(f"{self.path} is a SQLite database but not a conversation store (tables "
                                   f"{sorted(tables)}, schema version {version}): {self._move_advice()}")
            if not readonly:
                with self._errors():
                    self.db.execute("PRAGMA journal_mode = WAL")
                if not tables:
                    with self._write():
                        for stmt in filter(str.strip, _SCHEMA.split(";")):
                            self.db.execute(stmt)
                        self.db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif not tables:
                raise StoreError(f"{self.path} is an empty database opened read-only: open it writable once "
                                 "to create the store")
        except BaseException:
            self.db.close()
            raise
        self.facts = Facts(self.db, self._write, self._errors)

    # ------------------------------------------------------------------ connection and errors
    def _connect(self) -> sqlite3.Connection:
        from urllib.parse import quote

        try:
            if not self.readonly:
                db = sqlite3.connect(str(self.path), timeout=self.busy_timeout, isolation_level=None)
            else:
                uri = "file:" + quote(str(self.path.resolve()))
                try:
                    db = sqlite3.connect(uri + "?mode=ro", uri=True, timeout=self.busy_timeout, isolation_level=None)
                    db.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
                except sqlite3.OperationalError:
                    # a WAL store in a read-only folder has no -shm file to share: read the file as it is
                    db = sqlite3.connect(uri + "?immutable=1", uri=True, isolation_level=None)
            db.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
        except sqlite3.Error as exc:
            raise self._translate(exc) from None
        return db

    def _move_advice(self) -> str:
        return (f"move it aside (e.g. `mv {self.path} {self.path}.damaged`; keep it, it may hold what you need) "
                "and open the path again to start an empty store, or open another path")

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        """The sqlite3 exception as the StoreError that says what happened and what to do."""
        text = str(exc)
        low = text.lower()
        if "locked" in low or "busy" in low:
            return StoreLocked(f"{self.path} is locked by another connection (waited {self.busy_timeout:g} s; "
                               f"{text}). The file is fine: close the other program or kernel using it, or try "
                               "again; do not move or delete it")
        if "readonly" in low or "read-only" in low:
            return StoreReadOnly(f"{self.path} is read-only here ({text}): loading works, writing needs write "
                                 "permission on the file and its folder (or open a copy)")
        if isinstance(exc, sqlite3.OperationalError) and ("unable to open" in low or "disk i/o" in low
                                                          or "full" in low):
            return StoreError(f"{self.path} cannot be used ({text}): check the path, its permissions and the "
                              "free disk space")
        if isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError):
            return StoreCorrupt(f"{self.path} is not a readable SQLite database ({text}): {self._move_advice()}")
        return StoreError(f"{self.path}: SQLite error ({text})")

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate sqlite3 errors raised by the block."""
        try:
            yield
        except sqlite3.Error as exc:
            raise self._translate(exc) from None

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        """One write transaction (BEGIN IMMEDIATE: the write lock first, then the reads that decide what to
        write), committed at the end or rolled back on any error."""
        if self.readonly:
            raise StoreReadOnly(f"{self.path} was opened read-only: loading works; to write, open it with write "
                                "permission on the file and its folder (or work on a copy)")
        with self._errors():
            self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException as exc:
            if self.db.in_transaction:
                try:
                    self.db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
            if isinstance(exc, sqlite3.Error):
                raise self._translate(exc) from None
            raise

    # ------------------------------------------------------------------ sessions
    def new_session(self, user_id: str = "default", session_id: str | None = None, title: str = "") -> str:
        """Start a session for `user_id`; its id (`<user>-001`, `<user>-002`, ... unless given)."""
        if not isinstance(user_id, str) or not user_id.strip():
            raise ValueError("user_id must be non-empty text")
        with self._write():  # the id is chosen inside the write transaction: two processes never pick the same
            if session_id is None:
                n = self.db.execute("SELECT COUNT(*) FROM sessions WHERE user_id = ?", (user_id,)).fetchone()[0]
                session_id = f"{user_id}-{n + 1:03d}"
                while self._exists(session_id):
                    n += 1
                    session_id = f"{user_id}-{n + 1:03d}"
            elif self._exists(session_id):
                raise ValueError(f"session {session_id!r} exists already: load it, or choose another id")
            self.db.execute("INSERT INTO sessions VALUES (?, ?, ?, ?)", (session_id, user_id, title, time.time()))
        return session_id

    def _exists(self, session_id: str) -> bool:
        with self._errors():
            return self.db.execute("SELECT 1 FROM sessions WHERE session_id = ?",
                                   (session_id,)).fetchone() is not None

    def _require(self, session_id: str) -> None:
        if not self._exists(session_id):
            known = [s["session_id"] for s in self.sessions()]
            shown = ", ".join(known[-10:]) if known else "none yet"
            raise UnknownSessionError(f"no session {session_id!r} in {self.path.name} (sessions: {shown}); "
                                      "start one with store.new_session(user_id)")

    def sessions(self, user_id: str | None = None) -> list[dict[str, Any]]:
        """Sessions in the order they were started: id, user, title, number of messages."""
        with self._errors():
            rows = self.db.execute(
                "SELECT s.session_id, s.user_id, s.title, COUNT(m.seq) FROM sessions s LEFT JOIN messages m "
                "ON m.session_id = s.session_id WHERE (? IS NULL OR s.user_id = ?) GROUP BY s.session_id "
                "ORDER BY s.created, s.rowid", (user_id, user_id)).fetchall()
        return [{"session_id": a, "user_id": b, "title": c, "messages": d} for a, b, c, d in rows]

    def user_of(self, session_id: str) -> str:
        """The user a session belongs to."""
        self._require(session_id)
        with self._errors():
            return self.db.execute("SELECT user_id FROM sessions WHERE session_id = ?",
                                   (session_id,)).fetchone()[0]

    def delete_session(self, session_id: str) -> None:
        """Forget a session and its messages (facts stay: they belong to the user)."""
        self._require(session_id)
        with self._write():
            self.db.execute("DELETE FROM messages WHERE session_id = ?", (session_id,))
            self.db.execute("DELETE FROM sessions WHERE session_id = ?", (session_id,))

    # ------------------------------------------------------------------ messages
    def append(self, session_id: str, message: dict[str, Any]) -> None:
        """Add one message at the end of a session (committed at once)."""
        self.extend(session_id, [message])

    def extend(self, session_id: str, messages: list[dict[str, Any]]) -> None:
        """Add messages at the end of a session, all or none (one transaction).

        The next sequence number is read INSIDE the write transaction (after `BEGIN IMMEDIATE` took the write
        lock): read before it, two processes could both read 41 and one append would overwrite or fail."""
        self._require(session_id)
        clean = [check_message(m) for m in messages]  # check all before writing any
        with self._write():
            seq = self.db.execute("SELECT COALESCE(MAX(seq), -1) FROM messages WHERE session_id = ?",
                                  (session_id,)).fetchone()[0]
            self.db.executemany("INSERT INTO messages VALUES (?, ?, ?, ?)",
                                [(session_id, seq + 1 + i, m["role"], json.dumps(m, ensure_ascii=False))
                                 for i, m in enumerate(clean)])

    def load(self, session_id: str) -> list[dict[str, Any]]:
        """The session's messages, in order (a fresh list: changing it does not change the store)."""
        self._require(session_id)
        out = []
        with self._errors():
            rows = self.db.execute("SELECT seq, message FROM messages WHERE session_id = ? ORDER BY seq",
                                   (session_id,)).fetchall()
        for seq, text in rows:
            try:
                out.append(json.loads(text))
            except json.JSONDecodeError:
                raise StoreCorrupt(f"message {seq} of session {session_id!r} in {self.path} is not valid JSON: the "
                                   "file was edited by hand or damaged; copy the file aside, then delete that row "
                                   "or the session (store.delete_session)") from None
        return out

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> "ConversationStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<ConversationStore {self.path.name}: {len(self.sessions())} sessions>"


# ============================================================== facts from a conversation
REMEMBERED_ARGUMENTS = ("customer_id", "order_id", "product_sku", "system_id", "city")
_CUSTOMER_ID = re.compile(r"\bC-[0-9]{4,6}\b", re.IGNORECASE)


def extract_facts(messages: list[dict[str, Any]]) -> dict[str, str]:
    """Notebook 05: facts worth remembering from a chat: ids the user gave and tools used (latest value wins)."""
    facts: dict[str, str] = {}
    for m in messages:
        if m.get("role") == "user":
            found = _CUSTOMER_ID.findall(m.get("content") or "")
            if found:
                facts["customer_id"] = found[-1].upper()
        for tc in m.get("tool_calls") or []:
            f = tc.get("function", tc)
            args = f.get("arguments") or {}
            if isinstance(args, str):
                try:
                    args = json.loads(args)
                except json.JSONDecodeError:
                    continue
            for key in REMEMBERED_ARGUMENTS:
                if isinstance(args, dict) and isinstance(args.get(key), str) and args[key].strip():
                    facts[key] = args[key]
    return facts


def with_customer_id(message: str, facts: dict[str, str]) -> str:
    """Notebook 05: add the remembered customer id to a message that names none, in words the model was trained on."""
    cid = facts.get("customer_id")
    if not cid or _CUSTOMER_ID.search(message):
        return message
    return f"{message.rstrip()}, I'm {cid}"


# ============================================================== tokens and the context budget
class FastTokenizer:
    """The model's tokenizer.json through the `tokenizers` library, called like a transformers tokenizer.

    It reads the same file as transformers' fast tokenizer and gives the same ids (tests/test_agents_memory.py
    checks it on 200 dialogues); it loads in milliseconds where `AutoTokenizer` takes seconds.
    """

    def __init__(self, path: Path) -> None:
        from tokenizers import Tokenizer

        self.path = path
        self._tok = Tokenizer.from_file(str(path))

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": self._tok.encode(text, add_special_tokens=add_special_tokens).ids}

    def __len__(self) -> int:
        return self._tok.get_vocab_size()

    def convert_ids_to_tokens(self, ids: list[int]) -> list[str]:
        return [self._tok.id_to_token(i) for i in ids]


@lru_cache(maxsize=4)
def load_tokenizer(model_dir: str | None = None, backend: str = "tokenizers") -> Any:
    """Notebook 05: the workbook model's tokenizer, loaded once per process.

    backend="tokenizers" reads tokenizer.json with the `tokenizers` library (fast to load); "transformers"
    returns `AutoTokenizer.from_pretrained(model_dir)`. Both give the same token ids.
    """
    from helpers.paths import MODEL_DIR

    path = Path(model_dir) if model_dir else MODEL_DIR
    if not (path / "tokenizer_config.json").exists():
        raise FileNotFoundError(f"no tokenizer in {path}: restore data/model (see data/README.md) or pass "
                                "the folder of another model's tokenizer")
    if backend == "tokenizers" and (path / "tokenizer.json").exists():
        return FastTokenizer(path / "tokenizer.json")
    if backend not in ("tokenizers", "transformers"):
        raise ValueError(f"backend must be 'tokenizers' or 'transformers', not {backend!r}")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(path))


def count_text_tokens(text: str, tokenizer: Any = None) -> int:
    """Notebook 05: tokens in a piece of text (no special tokens added)."""
    tok = tokenizer or load_tokenizer()
    return len(tok(text, add_special_tokens=False)["input_ids"])


def count_tokens(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None, *,
                 tokenizer: Any = None, add_generation_prompt: bool = True) -> int:
    """Notebook 05: tokens of a chat as the model reads it: rendered with the chat template, then tokenized."""
    from helpers.domain.chat_format import render

    for m in messages:
        check_message(m)
    return count_text_tokens(render(messages, tools, add_generation_prompt=add_generation_prompt), tokenizer)


def message_tokens(messages: list[dict[str, Any]], tokenizer: Any = None) -> list[int]:
    """Notebook 05: tokens each message adds to the prompt (its markers included)."""
    from helpers.domain.chat_format import render_segments

    out = []
    for m in messages:
        text = "".join(s for s, _ in render_segments([check_message(m)], None)[1:])  # [0] is the BOS marker
        out.append(count_text_tokens(text, tokenizer))
    return out


def split_turns(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[list[dict[str, Any]]]]:
    """Notebook 05: (leading system messages, turns); a turn is a user message and all that follows up to the next.

    A tool call and its result are always in the same turn, so dropping whole turns never separates them.
    """
    i = 0
    while i < len(messages) and messages[i].get("role") == "system":
        i += 1
    system, turns = list(messages[:i]), []
    for m in messages[i:]:
        if m.get("role") == "user" or not turns:
            turns.append([m])
        else:
            turns[-1].append(m)
    return system, turns


def brief_summary(messages: list[dict[str, Any]], max_chars: int = 400) -> str:
    """Notebook 05: a summary without a model: each request, the tools called with their arguments, the answers."""
    parts = []
    for m in messages:
        text = (m.get("content") or "").strip().replace("\n", " ")
        if m.get("role") == "user":
            parts.append(f"user asked: {text[:80]}")
        elif m.get("role") == "assistant":
            for tc in m.get("tool_calls") or []:
                f = tc.get("function", tc)
                parts.append(f"called {f['name']}({f.get('arguments')})")
            if text:
                parts.append(f"answered: {text[:80]}")
    summary = "; ".join(parts)
    while len(summary) > max_chars and len(parts) > 1:  # the most recent parts matter most: drop the oldest
        parts.pop(0)
        summary = "(earlier turns omitted) " + "; ".join(parts)
    return summary[:max_chars]


def fit_to_budget(messages: list[dict[str, Any]], max_tokens: int, *, keep_last: int = 4,
                  summarise: Callable[[list[dict[str, Any]]], str] | None = None,
                  tools: list[dict[str, Any]] | None = None, reserve: int = 0, tokenizer: Any = None,
                  summary_prefix: str = "Summary of the earlier conversation: ") -> list[dict[str, Any]]:
    """Notebook 05: the chat, shortened to fit `max_tokens` (minus `reserve` for the reply) by dropping the oldest
    turns.

    Always kept: the leading system message(s) and the turns holding the last `keep_last` messages (at least
    the last turn). Turns are dropped whole, so a tool call is never separated from its result. With
    `summarise` (a callable: dropped messages -> text), the dropped turns are replaced by one system message
    holding their summary; when no summary fits beside the kept turns, the chat is trimmed as without one.
    Raises ContextBudgetError when even what must be kept does not fit.
    """
    if not isinstance(max_tokens, int) or max_tokens <= 0:
        raise ValueError(f"max_tokens must be a positive int, got {max_tokens!r}")
    if keep_last < 1:
        raise ValueError("keep_last must be at least 1: the newest message is what the model must answer")
    messages = [check_message(m) for m in messages]
    budget = max_tokens - reserve

    def size(msgs: list[dict[str, Any]]) -> int:
        return count_tokens(msgs, tools, tokenizer=tokenizer)

    if size(messages) <= budget:
        return messages
    system, turns = split_turns(messages)
    # how many turns from the end hold the last keep_last messages
    n_keep, tail = 0, 0
    while n_keep < len(turns) and tail < keep_last:
        n_keep += 1
        tail += len(turns[-n_keep])
    n_keep = max(n_keep, 1)
    floor = size(system + [m for t in turns[len(turns) - n_keep:] for m in t])
    if floor > budget:
        raise ContextBudgetError(
            f"the system message and the last {n_keep} turn(s) need {floor} tokens, more than the budget of "
            f"{budget} ({max_tokens} - {reserve} reserved for the reply): raise max_tokens, lower keep_last, "
            f"or shorten the newest message")
    plain = None  # the fewest turns dropped without a summary: the answer when no summary fits
    for n_drop in range(1, len(turns) - n_keep + 1):
        dropped = [m for t in turns[:n_drop] for m in t]
        kept = [m for t in turns[n_drop:] for m in t]
        candidate = system + kept
        if plain is None and size(candidate) <= budget:
            if summarise is None:
                return candidate
            plain = candidate
        if summarise is not None:
            summary = summarise(dropped)
            if not isinstance(summary, str):
                raise TypeError(f"summarise must return text, got {type(summary).__name__}")
            with_summary = system + [{"role": "system", "content": summary_prefix + summary}] + kept
            if size(with_summary) <= budget:
                return with_summary
    return plain or system + [m for t in turns[len(turns) - n_keep:] for m in t]  # fits: checked above


__all__ = ["ConversationStore", "ContextBudgetError", "Facts", "FastTokenizer", "StoreCorrupt", "StoreError",
           "StoreLocked", "StoreReadOnly", "UnknownSessionError", "brief_summary",
           "check_message", "count_text_tokens", "count_tokens", "extract_facts", "fit_to_budget", "load_tokenizer",
           "message_tokens", "split_turns", "with_customer_id"]
