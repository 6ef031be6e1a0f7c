"""The agent's on-disk outbox, its command ledger and its session counter.

Every message goes into the spool before it is published and leaves it only when the broker
acknowledges it (PUBACK), so a broker outage, a network drop or an agent crash loses nothing:
what is left is sent again, in order, on the next connection. The spool is bounded by rows and
by age; when it must shed, heartbeats go first (the next one says the same), events last.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Lower sheds first: a heartbeat is superseded by the next one; an event is a fact worth keeping.
SHED_PRIORITY = {"heartbeat": 0, "inventory": 1, "cmd/ack": 2, "event": 3}


def next_session(state_dir: Path) -> int:
    """Increment and persist the session counter (Sparkplug's bdSeq idea); called once per start."""
    state_dir.mkdir(parents=True, exist_ok=True)
    path = state_dir / "session"
    try:
        current = int(path.read_text().strip() or 0)
    except (FileNotFoundError, ValueError):
        current = 0
    session = current + 1
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as fh:
        fh.write(str(session))
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return session


@dataclass(frozen=True, slots=True)
class SpooledMessage:
    """One message waiting for the broker's acknowledgement."""

    id: int
    topic: str
    kind: str
    payload: dict[str, Any]
    created_at: float


class Spool:
    """A SQLite outbox (``:memory:`` for simulations), bounded by rows and age."""

    def __init__(self, path: Path | str, max_rows: int = 100_000, max_age_s: float = 7 * 86400) -> None:
        self.max_rows = max_rows
        self.max_age_s = max_age_s
        self.dropped = 0
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
            "kind TEXT NOT NULL, payload TEXT NOT NULL, created_at REAL NOT NULL);"
            "CREATE INDEX IF NOT EXISTS outbox_kind ON outbox (kind, id);"
            "CREATE TABLE IF NOT EXISTS handled_commands (id TEXT PRIMARY KEY, at REAL NOT NULL);"
        )
        self._count = int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

    def add(self, topic: str, kind: str, payload: dict[str, Any], now: float | None = None) -> int:
        """Store a message; returns its spool id. Sheds old rows when over the bounds."""
        now = time.time() if now is None else now
        with self._lock:
            cur = self._db.execute("INSERT INTO outbox (topic, kind, payload, created_at) VALUES (?, ?, ?, ?)",
                                   (topic, kind, json.dumps(payload, separators=(",", ":")), now))
            self._count += 1
            if self._count > self.max_rows or cur.lastrowid % 500 == 0:
                self._shed(now)
            return int(cur.lastrowid or 0)

    def _shed(self, now: float) -> None:
        """Drop what is too old, then the lowest-priority oldest rows until under ``max_rows``."""
        for kind, priority in sorted(SHED_PRIORITY.items(), key=lambda kv: kv[1]):
            # Events and acks may wait four times longer than heartbeats.
            limit = self.max_age_s * (4 if priority >= 2 else 1)
            cur = self._db.execute("DELETE FROM outbox WHERE kind = ? AND created_at < ?", (kind, now - limit))
            self.dropped += cur.rowcount
            self._count -= cur.rowcount
        for kind, _ in sorted(SHED_PRIORITY.items(), key=lambda kv: kv[1]):
            excess = self._count - self.max_rows
            if excess <= 0:
                break
            cur = self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE kind = ? ORDER BY id LIMIT ?)",
                (kind, excess))
            self.dropped += cur.rowcount
            self._count -= cur.rowcount

    def remove(self, row_id: int) -> None:
        """The broker acknowledged the message."""
        with self._lock:
            cur = self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))
            self._count -= cur.rowcount

    def pending(self, limit: int = 1000, after_id: int = 0) -> list[SpooledMessage]:
        """Unacknowledged messages, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, kind, payload, created_at FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
                (after_id, limit)).fetchall()
        return [SpooledMessage(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def __len__(self) -> int:
        with self._lock:
            return self._count

    def mark_command(self, command_id: str, at: float) -> bool:
        """Remember a handled command id; False if it was handled before (a redelivery)."""
        with self._lock:
            cur = self._db.execute("INSERT OR IGNORE INTO handled_commands (id, at) VALUES (?, ?)",
                                   (command_id, at))
            self._db.execute("DELETE FROM handled_commands WHERE at < ?", (at - 30 * 86400,))
            return cur.rowcount == 1

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()
