"""A department registers air-conditioner plugs by importing its inventory: ``watched_by`` and ``mgmt_address``
columns, checked (dialect, one-level topic, one device per plug) with errors by row and column."""

from __future__ import annotations

import csv
import io

from sqlalchemy import select
from sqlalchemy.orm import Session

from controller.audit.importer import COLUMNS, import_inventory
from controller.store import db
from controller.store.models import Device

HEADER = list(COLUMNS)


def _csv(rows: list[dict[str, str]]) -> bytes:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=HEADER, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue().encode()


BASE = [
    {"record": "school", "school": "thcs-le-loi", "name": "Trường THCS Lê Lợi"},
    {"record": "room", "school": "thcs-le-loi", "room": "P201", "kind": "smart_l2", "name": "Phòng 201"},
]


def _device(uid: str, watched_by: str = "", address: str = "") -> dict[str, str]:
    return {"record": "device", "school": "thcs-le-loi", "room": "P201", "uid": uid, "kind": "air_conditioner",
            "name": f"Điều hòa {uid}", "watched_by": watched_by, "mgmt_address": address}


def test_plugs_are_registered_by_import(db_url):
    engine = db.make_engine(db_url)
    rows = [*BASE, _device("ac-1", "tasmota", "tasmota_9CF9D1"), _device("ac-2", "shelly", "shellyplusplugs-e86bea1"),
            _device("ac-3")]
    with Session(engine) as session:
        result = import_inventory(session, "kiem-ke.csv", _csv(rows))
    assert result.ok, [e.text("en") for e in result.errors]
    with Session(engine) as session:
        got = {d.uid: (d.watched_by, d.mgmt_address) for d in session.scalars(select(Device))}
    assert got == {"ac-1": ("tasmota", "tasmota_9CF9D1"), "ac-2": ("shelly", "shellyplusplugs-e86bea1"),
                   "ac-3": ("manual", None)}
    with Session(engine) as session:  # idempotent
        assert import_inventory(session, "kiem-ke.csv", _csv(rows)).changed == 0
    # A plug fitted later to a manual air conditioner: the same row, now with its plug.
    with Session(engine) as session:
        again = import_inventory(session, "kiem-ke.csv", _csv([*BASE, _device("ac-3", "tasmota", "tasmota_AB12CD")]))
    assert again.ok and again.updated["devices"] == 1
    # Another device claiming a plug that is taken, a bad topic, a missing one, a dialect we do not speak.
    bad = [*BASE, _device("ac-9", "tasmota", "tasmota_9CF9D1"), _device("ac-10", "tasmota", "cmnd/+/POWER"),
           _device("ac-11", "shelly"), _device("ac-12", "zigbee", "0x00158d"),
           _device("ac-13", "shelly", "dup-1"), _device("ac-14", "shelly", "dup-1")]
    with Session(engine) as session:
        refused = import_inventory(session, "kiem-ke.csv", _csv(bad))
    assert not refused.ok
    errors = {(e.row, e.column): e.text("en") for e in refused.errors}
    assert errors == {
        (4, "mgmt_address"): "Row 4, column 'mgmt_address': plug 'tasmota_9CF9D1' is already device 'ac-1' of "
                             "school 'thcs-le-loi'",
        (5, "mgmt_address"): "Row 5, column 'mgmt_address': a 'tasmota' plug needs mgmt_address, its MQTT topic: one "
                             "level of letters, digits, '_', '-', '.', ':' (e.g. tasmota_9CF9D1), got 'cmnd/+/POWER'",
        (6, "mgmt_address"): "Row 6, column 'mgmt_address': a 'shelly' plug needs mgmt_address, its MQTT topic: one "
                             "level of letters, digits, '_', '-', '.', ':' (e.g. tasmota_9CF9D1), got ''",
        (7, "watched_by"): "Row 7, column 'watched_by': 'zigbee' is not valid, must be one of: manual, tasmota, shelly",
        (9, "mgmt_address"): "Row 9, column 'mgmt_address': duplicates row 8",
    }
    assert "Dòng 4, cột 'mgmt_address'" in refused.errors[0].text("vi")
    with Session(engine) as session:
        assert session.scalar(select(Device.id).where(Device.uid == "ac-9")) is None  # nothing imported
    engine.dispose()




def test_a_plug_gets_its_mqtt_login_from_the_cli(sqlite_url, tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from controller.cli import app
    from controller.enrolment import verify_password
    from controller.store.models import DeviceCredential

    from .conftest import seed_plugs

    engine = db.make_engine(sqlite_url)
    ids = seed_plugs(engine)
    monkeypatch.setenv("CLASSFLEET_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("CLASSFLEET_DATA_DIR", str(tmp_path))
    out = CliRunner().invoke(app, ["device", "plug-credential", "s1", "ac-p201-1"])
    assert out.exit_code == 0, out.output
    user, password = (line.split(": ", 1)[1] for line in out.output.strip().splitlines())
    assert user == "s1.ac-p201-1"
    with Session(engine) as session:
        assert verify_password(password, session.get(DeviceCredential, ids["ac-p201-1"]).password_hash)
    refused = CliRunner().invoke(app, ["device", "plug-credential", "s1", "nothing"])
    assert refused.exit_code == 2 and "no device 'nothing'" in refused.output
    engine.dispose()


def test_the_watched_by_vocabulary_is_one_list() -> None:
    """``store.models.WATCHED_BY`` names every way a device is watched, plug dialects included, and the adapters'
    registry and the inventory import take theirs from it (no stale copy to fall out of step)."""
    from controller.adapters.registry import ADAPTERS, PLUG_WATCHERS
    from controller.audit.importer import IMPORT_WATCHERS
    from controller.pollers.pjlink.service import WATCHED_BY as PJLINK
    from controller.store.models import PLUG_WATCHERS as STORE_PLUGS
    from controller.store.models import WATCHED_BY

    assert PLUG_WATCHERS is STORE_PLUGS and tuple(ADAPTERS) == PLUG_WATCHERS == ("tasmota", "shelly")
    assert {"mqtt", "snmp", "onvif", PJLINK, "tasmota", "shelly", "manual"} == set(WATCHED_BY)
    assert set(IMPORT_WATCHERS) == {"manual", "tasmota", "shelly"} and set(IMPORT_WATCHERS) <= set(WATCHED_BY)
