"""The agent's on-disk outbox and session counter.

Every message goes into the spool before it is published and leaves it only when the broker
acknowledges it (PUBACK), so a broker outage, a network drop or an agent crash loses nothing:
what is left is sent again, marked ``replayed``, on the next connection.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    payload: dict[str, Any]
    retain: bool


class Spool:
    """A SQLite outbox (``:memory:`` for simulations), bounded: the oldest rows go first when full."""

    def __init__(self, path: Path | str, max_rows: int = 100_000) -> None:
        self._max_rows = max_rows
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        if str(path) != ":memory:":
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS outbox (id INTEGER PRIMARY KEY AUTOINCREMENT, topic TEXT NOT NULL, "
            "payload TEXT NOT NULL, retain INTEGER NOT NULL DEFAULT 0)"
        )
        self._db.execute("CREATE TABLE IF NOT EXISTS handled_commands (id TEXT PRIMARY KEY, at REAL NOT NULL)")
        self.dropped = 0

    def add(self, topic: str, payload: dict[str, Any], retain: bool = False) -> int:
        """Store a message; returns its spool id."""
        with self._lock:
            cur = self._db.execute("INSERT INTO outbox (topic, payload, retain) VALUES (?, ?, ?)",
                                   (topic, json.dumps(payload, separators=(",", ":")), int(retain)))
            row_id = int(cur.lastrowid or 0)
            if row_id % 1000 == 0:
                self._trim()
            return row_id

    def _trim(self) -> None:
        (count,) = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()
        excess = count - self._max_rows
        if excess > 0:
            self._db.execute("DELETE FROM outbox WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT ?)",
                             (excess,))
            self.dropped += excess

    def remove(self, row_id: int) -> None:
        """The broker acknowledged the message."""
        with self._lock:
            self._db.execute("DELETE FROM outbox WHERE id = ?", (row_id,))

    def pending(self, limit: int = 1000, after_id: int = 0) -> list[SpooledMessage]:
        """Unacknowledged messages, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, retain FROM outbox WHERE id > ? ORDER BY id LIMIT ?", (after_id, limit)
            ).fetchall()
        return [SpooledMessage(r[0], r[1], json.loads(r[2]), bool(r[3])) for r in rows]

    def __len__(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0])

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
