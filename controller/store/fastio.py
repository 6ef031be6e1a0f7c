"""The ingest hot path's SQL, written against the driver for speed (measured with bench/ingest.py).

SQLAlchemy's per-row parameter processing and psycopg's parsing of a new 500-row INSERT on
every batch cost more than the database itself. Here each statement has a fixed text: on
PostgreSQL whole batches travel as arrays through ``unnest`` (psycopg caches the statement), on
SQLite as one multi-row statement or an ``executemany``. Values are stored exactly as the ORM
stores them (naive UTC text on SQLite, ``timestamptz`` on PostgreSQL), so both paths read alike.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection

from .state import StateRow

STATE_COLUMNS = StateRow.columns()
STATE_DATETIMES = frozenset({"last_seen", "status_changed_at", "hb_ts"})
_PG_TYPES = {
    "device_id": "integer", "session": "bigint", "seq": "bigint", "last_seen": "timestamptz", "online": "boolean",
    "status_session": "bigint", "status_changed_at": "timestamptz", "agent_version": "text", "profile": "text",
    "hb_session": "bigint", "hb_seq": "bigint", "hb_ts": "timestamptz", "uptime_s": "float8", "cpu_pct": "float8",
    "mem_pct": "float8", "disk_max_pct": "float8", "temp_c": "float8", "clock_skew_s": "float8",
    "inventory_hash": "text",
}
HISTORY_COLUMNS = ("device_id", "session", "seq", "kind", "ts", "received_at", "replayed", "data")
_HISTORY_PG_TYPES = ("integer", "bigint", "bigint", "text", "timestamptz", "timestamptz", "boolean", "jsonb")


def sqlite_time(value: dt.datetime | None) -> str | None:
    """UTC datetime → the text SQLAlchemy's SQLite DATETIME stores."""
    if value is None:
        return None
    if value.tzinfo is not dt.UTC:
        value = value.astimezone(dt.UTC)
    return value.replace(tzinfo=None).isoformat(" ", "microseconds")


def _sqlite_read_time(value: str | None) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)


def insert_history(conn: Connection, rows: list[tuple[Any, ...]]) -> set[tuple[int, int, int]]:
    """Insert (HISTORY_COLUMNS) rows, skipping known (device, session, seq); return the keys inserted."""
    if not rows:
        return set()
    if conn.dialect.name == "postgresql":
        columns = list(zip(*rows, strict=True))
        # The JSON documents travel as one JSON array: as a text[] each would be escaped element by element.
        params = [list(c) for c in columns[:-1]] + ["[" + ",".join(columns[-1]) + "]"]
        result = conn.exec_driver_sql(_pg_history_sql(), tuple(params))
        return {(r[0], r[1], r[2]) for r in result}
    keys: set[tuple[int, int, int]] = set()
    for start in range(0, len(rows), 500):
        chunk = rows[start : start + 500]
        params = [v for row in chunk for v in (*row[:4], sqlite_time(row[4]), sqlite_time(row[5]), *row[6:])]
        result = conn.exec_driver_sql(_sqlite_history_sql(len(chunk)), tuple(params))
        keys.update((r[0], r[1], r[2]) for r in result)
    return keys


@lru_cache(maxsize=1)
def _pg_history_sql() -> str:
    arrays = ", ".join(f"%s::{t}[]" for t in _HISTORY_PG_TYPES[:-1])
    names = ", ".join(HISTORY_COLUMNS[:-1])
    return (f"INSERT INTO observations ({', '.join(HISTORY_COLUMNS)}) "
            f"SELECT {', '.join('u.' + c for c in HISTORY_COLUMNS[:-1])}, j.data "
            f"FROM unnest({arrays}) WITH ORDINALITY AS u({names}, n) "
            "JOIN jsonb_array_elements(%s::jsonb) WITH ORDINALITY AS j(data, n) ON j.n = u.n "
            "ON CONFLICT (device_id, session, seq) DO NOTHING RETURNING device_id, session, seq")


@lru_cache(maxsize=64)
def _sqlite_history_sql(n: int) -> str:
    one = "(" + ", ".join("?" * len(HISTORY_COLUMNS)) + ")"
    return (f"INSERT INTO observations ({', '.join(HISTORY_COLUMNS)}) VALUES {', '.join([one] * n)} "
            "ON CONFLICT (device_id, session, seq) DO NOTHING RETURNING device_id, session, seq")


def read_states(conn: Connection, device_ids: list[int]) -> list[StateRow]:
    """Current state rows of these devices (locked for this transaction on PostgreSQL)."""
    if not device_ids:
        return []
    cols = ", ".join(STATE_COLUMNS)
    if conn.dialect.name == "postgresql":
        result = conn.exec_driver_sql(
            f"SELECT {cols} FROM device_state WHERE device_id = ANY(%s) ORDER BY device_id FOR UPDATE",
            (sorted(device_ids),))
        return [StateRow(*row) for row in result]
    out = []
    time_index = [i for i, c in enumerate(STATE_COLUMNS) if c in STATE_DATETIMES]
    for start in range(0, len(device_ids), 500):
        chunk = device_ids[start : start + 500]
        marks = ", ".join("?" * len(chunk))
        for row in conn.exec_driver_sql(f"SELECT {cols} FROM device_state WHERE device_id IN ({marks})",
                                        tuple(chunk)):
            values = list(row)
            for i in time_index:
                values[i] = _sqlite_read_time(values[i])
            values[STATE_COLUMNS.index("online")] = bool(values[STATE_COLUMNS.index("online")])
            out.append(StateRow(*values))
    return out


def write_states(conn: Connection, rows: list[StateRow]) -> None:
    """Write merged state rows back."""
    if not rows:
        return
    others = [c for c in STATE_COLUMNS if c != "device_id"]
    if conn.dialect.name == "postgresql":
        arrays = ", ".join(f"%s::{_PG_TYPES[c]}[]" for c in STATE_COLUMNS)
        sets = ", ".join(f"{c} = u.{c}" for c in others)
        sql = (f"UPDATE device_state AS s SET {sets} FROM unnest({arrays}) AS u({', '.join(STATE_COLUMNS)}) "
               "WHERE s.device_id = u.device_id")
        conn.exec_driver_sql(sql, tuple([getattr(r, c) for r in rows] for c in STATE_COLUMNS))
        return
    sql = f"UPDATE device_state SET {', '.join(f'{c} = ?' for c in others)} WHERE device_id = ?"
    params = [
        tuple(sqlite_time(getattr(r, c)) if c in STATE_DATETIMES else getattr(r, c) for c in others) + (r.device_id,)
        for r in rows
    ]
    conn.exec_driver_sql(sql, params)
