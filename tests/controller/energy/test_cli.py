"""``classfleet report energy`` and ``classfleet import timetable`` through the Typer apps the main CLI mounts."""

from __future__ import annotations

import csv
import io
import json

import openpyxl
from typer.testing import CliRunner

from controller.audit.i18n import tr
from controller.cli import app
from controller.store import db
from tests.controller.energy.week import EXPECTED, seed_week

runner = CliRunner()


def _seeded_week(url: str, tmp_path, monkeypatch) -> None:
    """Seed week.py's school into ``url`` and point the CLI (its settings come from the environment) at it."""
    monkeypatch.setenv("CLASSFLEET_DATABASE_URL", url)
    monkeypatch.setenv("CLASSFLEET_DATA_DIR", str(tmp_path))
    engine = db.make_engine(url)
    seed_week(engine)
    engine.dispose()


def test_report_energy_in_every_format_says_the_same(db_url, tmp_path, monkeypatch):
    _seeded_week(db_url, tmp_path, monkeypatch)
    period = ["--from", "2026-11-23", "--to", "2026-11-30"]  # midnights, Vietnam's time

    out_json = tmp_path / "energy.json"
    result = runner.invoke(app, ["report", "energy", *period, "--format", "json", "--output", str(out_json),
                                 "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "5 devices on after school hours: 16.1 h, 10.91 kWh" in " ".join(result.output.split())
    body = json.loads(out_json.read_bytes())
    assert body["start"] == "2026-11-23T00:00:00+07:00"
    assert {r["device"]: (r["room"], r["hours"], r["kwh"], r["method"]) for r in body["rows"]} == EXPECTED

    out_xlsx = tmp_path / "energy.xlsx"
    assert runner.invoke(app, ["report", "energy", *period, "--format", "xlsx", "--output", str(out_xlsx),
                               "--school", "s1"]).exit_code == 0
    book = openpyxl.load_workbook(out_xlsx, read_only=True)
    assert book.sheetnames == ["Thiết bị", "Theo phòng", "Theo trường", "Cách tính"]
    header, *rows = list(book["Thiết bị"].iter_rows(values_only=True))
    assert header[:4] == ("Trường", "Phòng", "Tên phòng", "Mã thiết bị")
    # The spreadsheet holds exactly the JSON's rows (the method in words, an unplaced device as 'unassigned').
    assert rows == [(r["school"], r["room"] or tr("vi", "unassigned"), r["room_name"] or None, r["device"], r["name"],
                     r["kind"], r["hours"], r["kwh"], tr("vi", f"energy.method.{r['method']}")) for r in body["rows"]]
    (_, *schools) = list(book["Theo trường"].iter_rows(values_only=True))
    assert schools == [("s1", None, "THCS Lê Lợi", 5, 16.1, 10.91)]
    book.close()

    out_csv = tmp_path / "energy.csv"
    assert runner.invoke(app, ["report", "energy", *period, "--format", "csv", "--output", str(out_csv),
                               "--lang", "en"]).exit_code == 0
    header, *lines = list(csv.reader(io.StringIO(out_csv.read_text("utf-8-sig"))))
    assert header == ["School", "Room", "Room name", "Device id", "Name", "Device kind",
                      "Hours on after school hours", "Energy (kWh)", "Method"]
    assert [(line[3], float(line[6]), float(line[7])) for line in lines] == [
        (r["device"], r["hours"], r["kwh"]) for r in body["rows"]]
    assert lines[1][8] == "plug's energy meter"

    assert runner.invoke(app, ["report", "energy", *period, "--format", "pdf", "--output", str(out_csv)]).exit_code \
        == 2
    assert runner.invoke(app, ["report", "energy", "--from", "2026-11-30", "--to", "2026-11-23", "--output",
                               str(out_csv)]).exit_code == 2


def test_import_timetable_from_the_command_line(sqlite_url, tmp_path, monkeypatch):
    _seeded_week(sqlite_url, tmp_path, monkeypatch)
    good = tmp_path / "tkb.csv"
    good.write_text("record,school,days,day,hours_start,hours_end,starts_on,ends_on,name\n"
                    "school,s1,t2-t6,,07:00,16:30,,,\n"
                    "holiday,,,,,,2027-02-05,2027-02-13,Tết Nguyên Đán\n", encoding="utf-8")
    result = runner.invoke(app, ["import", "timetable", str(good), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert "Imported 2 rows: 1 created, 1 updated, 0 unchanged." in " ".join(result.output.split())
    result = runner.invoke(app, ["import", "timetable", str(good), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["unchanged"] == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("record,school,day,hours_start,hours_end\nday,s1,t8,07:00,11:30\n", encoding="utf-8")
    result = runner.invoke(app, ["import", "timetable", str(bad)])
    assert result.exit_code == 1
    assert "Dòng 2, cột 'day': 't8' không phải danh sách ngày học" in " ".join(result.output.split())
