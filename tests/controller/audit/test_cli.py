"""``import inventory|plan`` and ``report audit`` through the Typer apps the main CLI mounts."""

from __future__ import annotations

import csv
import io
import json

import openpyxl
from typer.testing import CliRunner

from controller.audit.cli import import_app, report_app
from controller.audit.importer import COLUMNS

from . import fleet

runner = CliRunner()


def test_import_then_report_in_every_format(db_url, tmp_path, monkeypatch):
    monkeypatch.setenv("CLASSFLEET_DATABASE_URL", db_url)
    monkeypatch.setenv("CLASSFLEET_DATA_DIR", str(tmp_path))
    inventory = tmp_path / "inventory.csv"
    inventory.write_bytes(fleet.inventory_csv())
    plan = tmp_path / "plan.csv"
    plan.write_bytes(fleet.plan_csv())

    result = runner.invoke(import_app, ["inventory", str(inventory), "--lang", "en"])
    assert result.exit_code == 0, result.output
    assert f"Imported {len(fleet.inventory_rows())} rows: {len(fleet.inventory_rows())} created" in result.output
    result = runner.invoke(import_app, ["inventory", str(inventory), "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["unchanged"] == len(fleet.inventory_rows())
    assert runner.invoke(import_app, ["plan", str(plan)]).exit_code == 0

    bad = tmp_path / "bad.csv"
    bad.write_bytes(fleet.csv_bytes(COLUMNS, [{"record": "room", "school": "thcs-00", "room": "X", "kind": "lab"}]))
    result = runner.invoke(import_app, ["inventory", str(bad)])
    assert result.exit_code == 1
    assert "Dòng 2, cột 'kind': 'lab' không hợp lệ" in result.output and "không nhập gì" in result.output

    out = tmp_path / "audit.json"
    assert runner.invoke(report_app, ["audit", "--format", "json", "--output", str(out), "--days", "7"]).exit_code == 0
    body = json.loads(out.read_bytes())
    assert body["days"] == 7 and body["totals"]["planned"] == body["totals"]["registered"] == fleet.DEVICES
    assert body["totals"]["never_seen"] == fleet.DEVICES  # nothing has reported yet

    out = tmp_path / "audit.csv"
    assert runner.invoke(report_app, ["audit", "--format", "csv", "--output", str(out), "--lang", "en"]).exit_code == 0
    rows = list(csv.reader(io.StringIO(out.read_text("utf-8-sig"))))
    assert rows[0][:5] == ["Level", "Id", "Name", "Planned", "Registered"] and rows[1][3] == str(fleet.DEVICES)

    out = tmp_path / "audit.xlsx"
    result = runner.invoke(report_app, ["audit", "--format", "xlsx", "--output", str(out), "--school", "thcs-07"])
    assert result.exit_code == 0, result.output
    book = openpyxl.load_workbook(out, read_only=True)
    assert book.sheetnames == ["Tổng hợp", "thcs-07"]
    assert next(book["Tổng hợp"].iter_rows(min_row=1, max_row=1, values_only=True))[:4] == (
        "Cấp", "Mã", "Tên", "Kế hoạch")
    book.close()
    assert runner.invoke(report_app, ["audit", "--format", "pdf", "--output", str(out)]).exit_code == 2
