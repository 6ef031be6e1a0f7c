"""docs/operations.md: the retention SQL it tells operators to run from cron does what it says, on both backends
(old dead letters and old finished commands go; recent rows and unfinished commands stay)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from controller.store import db
from controller.store.models import Command, DeadLetter, Device, District, School

DOC = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
pytestmark = pytest.mark.integration


def _statements(dialect: str) -> list[str]:
    """The SQL blocks of the retention section: the first is for PostgreSQL, the second for SQLite."""
    section = DOC.read_text().split("## Retention", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sql\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "expected a PostgreSQL and a SQLite block"
    block = blocks[0] if dialect == "postgresql" else blocks[1]
    lines = [line for line in block.splitlines() if not line.lstrip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


def test_retention_sql_trims_only_what_it_says(db_url: str) -> None:
    engine = db.make_engine(db_url)
    now = dt.datetime.now(dt.UTC)
    with Session(engine) as session, session.begin():
        session.add(District(id="d1", name="Quận 1"))
        session.add(School(id="s1", name="THCS", district_id="d1"))
        session.flush()
        device = Device(school_id="s1", uid="pc-1", kind="pc", watched_by="mqtt")
        session.add(device)
        session.flush()
        for days in (40, 10):
            session.add(DeadLetter(received_at=now - dt.timedelta(days=days), topic=f"t/{days}", reason="bad_json",
                                   detail="", payload=b"x", payload_size=1))
        for name, state, days in (("old-done", "done", 200), ("old-pending", "pending", 200),
                                  ("old-sent", "sent", 200), ("recent-done", "done", 20)):
            session.add(Command(id=name, device_id=device.id, action="reboot", args={}, state=state,
                                expires=now - dt.timedelta(days=days - 1), created_at=now - dt.timedelta(days=days)))
    statements = _statements(engine.dialect.name)
    assert len(statements) == 2
    with engine.begin() as conn:
        for statement in statements:
            conn.execute(text(statement))
    with Session(engine) as session:
        assert session.scalars(select(DeadLetter.topic)).all() == ["t/10"]
        assert sorted(session.scalars(select(Command.id))) == ["old-pending", "old-sent", "recent-done"]
    engine.dispose()
