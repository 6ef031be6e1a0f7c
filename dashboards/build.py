"""Builds the Grafana dashboards in this folder from one description (run after editing):

    .venv/bin/python dashboards/build.py

Every dashboard has a stable uid, a ``${datasource}`` variable, and ``school`` / ``room_kind``
variables where they apply; queries use only metrics the controller exports (checked by
tests/dashboards/, which also evaluates each query in a real Prometheus).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DS = {"type": "prometheus", "uid": "${datasource}"}
S = 'school=~"$school"'


def panel(pid: int, title: str, kind: str, exprs: list[tuple[str, str]], x: int, y: int, w: int = 12, h: int = 8,
          unit: str | None = None) -> dict[str, Any]:
    """One panel with its PromQL targets."""
    p: dict[str, Any] = {
        "id": pid, "title": title, "type": kind, "datasource": DS, "gridPos": {"x": x, "y": y, "w": w, "h": h},
        "targets": [{"refId": chr(65 + i), "expr": e, "legendFormat": legend, "datasource": DS}
                    for i, (e, legend) in enumerate(exprs)],
        "fieldConfig": {"defaults": {}, "overrides": []}, "options": {},
    }
    if unit:
        p["fieldConfig"]["defaults"]["unit"] = unit
    return p


def variables(*names: str) -> list[dict[str, Any]]:
    """The datasource variable plus label variables."""
    out: list[dict[str, Any]] = [{"name": "datasource", "type": "datasource", "query": "prometheus",
                                  "label": "Prometheus"}]
    sources = {"school": "label_values(classfleet_devices, school)",
               "room_kind": "label_values(classfleet_rooms, room_kind)"}
    for name in names:
        out.append({"name": name, "type": "query", "datasource": DS, "label": name,
                    "query": {"query": sources[name], "refId": name}, "definition": sources[name],
                    "includeAll": True, "multi": True, "allValue": ".*", "refresh": 2,
                    "current": {"text": "All", "value": "$__all"}})
    return out


def dashboard(uid: str, title: str, panels: list[dict[str, Any]], *variable_names: str) -> dict[str, Any]:
    """A provisioned dashboard."""
    return {"uid": uid, "title": title, "tags": ["classfleet"], "schemaVersion": 39, "version": 1,
            "editable": True, "refresh": "30s", "time": {"from": "now-6h", "to": "now"},
            "templating": {"list": variables(*variable_names)}, "panels": panels}


DASHBOARDS = {
    "fleet-overview.json": dashboard("classfleet-fleet", "classfleet — fleet overview / tổng quan thiết bị", [
        panel(1, "Devices up (share)", "stat",
              [(f"sum(classfleet_device_up{{{S}}}) / clamp_min(count(classfleet_device_up{{{S}}}), 1)", "up")],
              0, 0, 6, 5, unit="percentunit"),
        panel(2, "Devices by health", "stat", [(f"sum by (health) (classfleet_devices{{{S}}})", "{{health}}")],
              6, 0, 18, 5),
        panel(3, "Health by school", "table",
              [(f"sum by (school, health) (classfleet_devices{{{S}}})", "{{school}} {{health}}")], 0, 5, 12, 10),
        panel(4, "Devices down by school and kind", "bargauge",
              [(f"count by (school, device_kind) (classfleet_device_up{{{S}}} == 0)", "{{school}} {{device_kind}}")],
              12, 5, 12, 10),
        panel(5, "Open incidents by code", "timeseries",
              [(f"sum by (code, severity) (classfleet_incidents_open{{{S}}})", "{{code}} ({{severity}})")], 0, 15),
        panel(6, "Rooms by kind", "bargauge",
              [('sum by (room_kind) (classfleet_rooms{school=~"$school", room_kind=~"$room_kind"})',
                "{{room_kind}}")], 12, 15),
    ], "school", "room_kind"),
    "school-detail.json": dashboard("classfleet-school", "classfleet — school / trường", [
        panel(1, "Devices by kind and health", "table",
              [(f"sum by (device_kind, health) (classfleet_devices{{{S}}})", "{{device_kind}} {{health}}")],
              0, 0, 12, 10),
        panel(2, "Devices down", "table", [(f"classfleet_device_up{{{S}}} == 0", "{{device}}")], 12, 0, 12, 10),
        panel(3, "Minutes since last seen (worst 20)", "bargauge",
              [(f"topk(20, (time() - classfleet_device_last_seen_timestamp_seconds{{{S}}}) / 60)", "{{device}}")],
              0, 10, 12, 10, unit="m"),
        panel(4, "Rooms by kind", "stat",
              [('sum by (room_kind) (classfleet_rooms{school=~"$school", room_kind=~"$room_kind"})',
                "{{room_kind}}")], 12, 10, 12, 10),
    ], "school", "room_kind"),
    "network.json": dashboard("classfleet-network", "classfleet — network / mạng", [
        panel(1, "Switches up", "stat",
              [(f'sum(classfleet_device_up{{{S}, device_kind="switch"}})', "up"),
               (f'count(classfleet_device_up{{{S}, device_kind="switch"}})', "all")], 0, 0, 8, 5),
        panel(2, "Uplinks down", "stat", [(f"count(classfleet_switch_uplink_up{{{S}}} == 0) or vector(0)", "down")],
              8, 0, 8, 5),
        panel(3, "Ports by status", "bargauge",
              [(f"sum by (status) (classfleet_switch_ports{{{S}}})", "{{status}}")], 16, 0, 8, 5),
        panel(4, "Ports up per switch", "table",
              [(f'sum by (school, device) (classfleet_switch_ports{{{S}, status="up"}})', "{{device}}")],
              0, 5, 24, 10),
        panel(5, "Network incidents", "timeseries",
              [(f'sum by (code) (classfleet_incidents_open{{{S}, code=~"switch.*|school.*|ups.*"}})', "{{code}}")],
              0, 15, 24, 8),
    ], "school"),
    "cameras.json": dashboard("classfleet-cameras", "classfleet — cameras / camera", [
        panel(1, "Cameras and NVRs up", "stat",
              [(f'sum by (device_kind) (classfleet_device_up{{{S}, device_kind=~"camera|nvr"}})', "{{device_kind}}")],
              0, 0, 12, 5),
        panel(2, "Camera incidents", "table",
              [(f'sum by (school, code) (classfleet_incidents_open{{{S}, code=~"camera.*"}})', "{{code}}")],
              12, 0, 12, 10),
        panel(3, "Cameras down", "table",
              [(f'classfleet_device_up{{{S}, device_kind=~"camera|nvr"}} == 0', "{{device}}")], 0, 5, 12, 10),
    ], "school"),
    "audit.json": dashboard("classfleet-audit", "classfleet — plan vs registered vs seen / kiểm kê", [
        panel(1, "Planned vs registered by kind", "table",
              [(f"sum by (device_kind) (classfleet_devices_planned{{{S}}})", "planned {{device_kind}}"),
               (f"sum by (device_kind) (classfleet_devices{{{S}}})", "registered {{device_kind}}")], 0, 0, 12, 10),
        panel(2, "Seen in the last 7 days by kind", "table",
              [(f"count by (device_kind) (time() - classfleet_device_last_seen_timestamp_seconds{{{S}}} < 7 * 86400)",
                "{{device_kind}}")], 12, 0, 12, 10),
        panel(3, "Healthy share by school", "bargauge",
              [(f'sum by (school) (classfleet_devices{{{S}, health="ok"}}) / '
                f"clamp_min(sum by (school) (classfleet_devices{{{S}}}), 1)", "{{school}}")],
              0, 10, 24, 10, unit="percentunit"),
    ], "school"),
    "controller.json": dashboard("classfleet-controller", "classfleet — controller health", [
        panel(1, "Ingest: messages/s by kind", "timeseries",
              [("sum by (kind) (rate(classfleet_ingest_messages_total[$__rate_interval]))", "{{kind}}")], 0, 0,
              unit="ops"),
        panel(2, "Ingest: rejected/s by reason", "timeseries",
              [("sum by (reason) (rate(classfleet_ingest_rejected_total[$__rate_interval]))", "{{reason}}")],
              12, 0, unit="ops"),
        panel(3, "Batch commit time (p50, p99)", "timeseries",
              [("histogram_quantile(0.5, sum by (le) (rate(classfleet_ingest_batch_commit_seconds_bucket"
                "[$__rate_interval])))", "p50"),
               ("histogram_quantile(0.99, sum by (le) (rate(classfleet_ingest_batch_commit_seconds_bucket"
                "[$__rate_interval])))", "p99")], 0, 8, unit="s"),
        panel(4, "Lag and queue", "timeseries",
              [("max(classfleet_ingest_lag_seconds)", "lag"), ("max(classfleet_ingest_queue_depth)", "queue")],
              12, 8),
        panel(5, "Store readable", "stat", [("max(classfleet_store_scrape_error)", "error")], 0, 16, 6, 4),
        panel(6, "Poll round time by poller (p50, p99)", "timeseries",
              [("histogram_quantile(0.5, sum by (le, poller) (rate(classfleet_poll_duration_seconds_bucket"
                "[$__rate_interval])))", "{{poller}} p50"),
               ("histogram_quantile(0.99, sum by (le, poller) (rate(classfleet_poll_duration_seconds_bucket"
                "[$__rate_interval])))", "{{poller}} p99")], 0, 20, unit="s"),
        panel(7, "Device check time by poller (p99)", "timeseries",
              [("histogram_quantile(0.99, sum by (le, poller) (rate(classfleet_poll_check_duration_seconds_bucket"
                "[$__rate_interval])))", "{{poller}} p99")], 12, 20, unit="s"),
        panel(8, "Poll rounds and unanswered checks per minute", "timeseries",
              [("sum by (poller) (rate(classfleet_poll_rounds_total[$__rate_interval])) * 60", "{{poller}} rounds"),
               ("sum by (poller) (rate(classfleet_poll_check_failures_total[$__rate_interval])) * 60",
                "{{poller}} unanswered")], 0, 28, 24, 8),
        panel(9, "Ingest: store retries and writer errors per minute", "timeseries",
              [("sum(rate(classfleet_ingest_commit_failures_total[$__rate_interval])) * 60", "store retries"),
               ("sum(rate(classfleet_ingest_writer_errors_total[$__rate_interval])) * 60", "writer errors")],
              0, 36, 24, 8),
    ]),
}


def main() -> None:
    """Write every dashboard."""
    for name, content in DASHBOARDS.items():
        (HERE / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
