"""A generated department shaped like the real one (57 schools, 1,236 smart rooms, 12,242 laptops, …)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Engine, insert, select
from sqlalchemy.orm import Session

from controller.audit.importer import COLUMNS
from controller.store.models import Device, DeviceState

SCHOOLS = 57
DISTRICTS = 4
SMART_L1, SMART_L2, ONLINE_MEETING = 263, 973, 58
LAPTOPS, AIR_CONDITIONERS = 12_242, 816
CAMERAS_PER_SYSTEM = 4  # one NVR and four corridor cameras per school: 57 camera systems
DEVICES = LAPTOPS + AIR_CONDITIONERS + SCHOOLS * (1 + CAMERAS_PER_SYSTEM)


def spread(total: int, parts: int) -> list[int]:
    """``total`` split into ``parts`` near-equal whole numbers (the first ones get the remainder)."""
    base, extra = divmod(total, parts)
    return [base + (1 if i < extra else 0) for i in range(parts)]


def school_id(i: int) -> str:
    """The id of school number ``i``."""
    return f"thcs-{i:02d}"


def csv_bytes(columns: Sequence[str], rows: list[dict[str, Any]]) -> bytes:
    """Rows as a CSV file."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(columns))
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


def inventory_rows() -> list[dict[str, Any]]:
    """Districts, schools, rooms and every device of the department, as import rows."""
    rows: list[dict[str, Any]] = [{"record": "district", "district": f"q{d}", "name": f"Phòng GD&ĐT Quận {d}"}
                                  for d in range(1, DISTRICTS + 1)]
    l1, l2, om = spread(SMART_L1, SCHOOLS), spread(SMART_L2, SCHOOLS), spread(ONLINE_MEETING, SCHOOLS)
    laptops, acs = spread(LAPTOPS, SCHOOLS), spread(AIR_CONDITIONERS, SCHOOLS)
    for i in range(SCHOOLS):
        s = school_id(i)
        rows.append({"record": "school", "school": s, "name": f"Trường THCS số {i}",
                     "district": f"q{i % DISTRICTS + 1}"})
        for kind, n in (("smart_l1", l1[i]), ("smart_l2", l2[i]), ("online_meeting", om[i]), ("corridor", 1)):
            rows += [{"record": "room", "school": s, "room": f"{kind}-{j}", "kind": kind, "name": f"{kind} {j}"}
                     for j in range(n)]
        for kind, n in (("laptop", laptops[i]), ("air_conditioner", acs[i])):
            rows += [{"record": "device", "school": s, "uid": f"{kind[:2]}-{j:04d}", "kind": kind,
                      "room": f"smart_l2-{j % l2[i]}", "serial": f"SN-{s}-{kind[:2]}-{j}"} for j in range(n)]
        rows.append({"record": "device", "school": s, "uid": "nvr-1", "kind": "nvr", "room": "corridor-0"})
        rows += [{"record": "device", "school": s, "uid": f"cam-{j}", "kind": "camera", "room": "corridor-0"}
                 for j in range(CAMERAS_PER_SYSTEM)]
    return rows


def plan_rows() -> list[dict[str, Any]]:
    """The equipment plan matching inventory_rows()."""
    laptops, acs = spread(LAPTOPS, SCHOOLS), spread(AIR_CONDITIONERS, SCHOOLS)
    rows = []
    for i in range(SCHOOLS):
        s = school_id(i)
        rows += [{"school": s, "room_kind": "smart_l2", "device_kind": "laptop", "planned": laptops[i]},
                 {"school": s, "room_kind": "smart_l2", "device_kind": "air_conditioner", "planned": acs[i]},
                 {"school": s, "room_kind": "corridor", "device_kind": "nvr", "planned": 1},
                 {"school": s, "room_kind": "corridor", "device_kind": "camera", "planned": CAMERAS_PER_SYSTEM}]
    return rows


def inventory_csv() -> bytes:
    """The department's inventory file."""
    return csv_bytes(COLUMNS, inventory_rows())


def plan_csv() -> bytes:
    """The department's plan file."""
    return csv_bytes(("school", "room_kind", "device_kind", "planned"), plan_rows())


def mark_all_seen(engine: Engine, now: dt.datetime) -> None:
    """Every device online and seen at ``now``, as if every watcher had just heard from it."""
    with Session(engine) as session, session.begin():
        ids = session.scalars(select(Device.id)).all()
        session.execute(insert(DeviceState), [
            {"device_id": i, "session": 1, "seq": 1, "last_seen": now, "online": True, "status_session": 1}
            for i in ids])
