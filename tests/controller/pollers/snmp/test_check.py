"""``classfleet snmp check`` and ``discover`` against real agents: snmpsim serving the 14 real recordings,
net-snmp's snmpd for SNMPv3, a garbage-answering socket; each recording is read by net-snmp's
``snmpwalk`` in the same test (a differential test against a real peer)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from controller.pollers.snmp.cli import app
from controller.store import db
from controller.store.models import Device
from tests.controller.pollers.snmp.test_decode import EXPECTED
from tests.fixtures.snmp import GarbageAgent, Snmpd, Snmpsim, free_udp_port
from tests.helpers import add_school

pytestmark = pytest.mark.integration
runner = CliRunner()
IF_DESCR, IF_OPER = ".1.3.6.1.2.1.2.2.1.2", ".1.3.6.1.2.1.2.2.1.8"
STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown"}


def snmpwalk(walk: Path, auth: list[str], address: str, oid: str) -> dict[int, str]:
    """net-snmp's view of a column: {row index: raw value text}."""
    out = subprocess.run([str(walk), *auth, "-On", "-Oe", "-Oq", "-t", "2", "-r", "1", address, oid],
                         capture_output=True, text=True, timeout=60, check=True).stdout
    rows = {}
    for line in out.splitlines():
        name, _, value = line.partition(" ")
        if name.startswith(oid + "."):
            rows[int(name[len(oid) + 1:].split(".")[0])] = value.strip()
    return rows


def check(*args: str) -> tuple[int, dict[str, Any]]:
    """Run ``classfleet snmp check … --json`` in-process; (exit code, parsed output)."""
    result = runner.invoke(app, ["check", *args, "--json"])
    return result.exit_code, json.loads(result.stdout)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_check_matches_snmpwalk(name: str, snmpsim_agent: Snmpsim, net_snmp: Path) -> None:
    """Vendor/model as the README says; interface count and each status exactly as snmpwalk reads them."""
    code, data = check(snmpsim_agent.address, "--community", name, "--timeout", "1")
    assert code == 0, data
    vendor, model = EXPECTED[name]
    assert data["identity"]["vendor"] == vendor
    assert model.lower() in (data["identity"]["model"] or "").lower()
    auth = ["-v2c", "-c", name]
    oper = snmpwalk(net_snmp, auth, snmpsim_agent.address, IF_OPER)
    descr = snmpwalk(net_snmp, auth, snmpsim_agent.address, IF_DESCR)
    ours = {i["index"]: i["status"] for i in data["interfaces"]}
    assert set(ours) == set(oper) | set(descr)
    assert len(data["interfaces"]) == len(set(oper) | set(descr))
    assert ours == {index: STATUS[int(value)] for index, value in oper.items()}


def test_check_over_snmpv1_walks_with_getnext(snmpsim_agent: Snmpsim, net_snmp: Path) -> None:
    """SNMPv1 (no GETBULK; noSuchName ends a column) gives the same interfaces as snmpwalk -v1."""
    code, data = check(snmpsim_agent.address, "--community", "iosxe_c9300", "--version", "1")
    assert code == 0 and data["version"] == "1"
    oper = snmpwalk(net_snmp, ["-v1", "-c", "iosxe_c9300"], snmpsim_agent.address, IF_OPER)
    assert {i["index"]: i["status"] for i in data["interfaces"]} == {k: STATUS[int(v)] for k, v in oper.items()}


def test_check_reports_neighbours_ups_and_poe(snmpsim_agent: Snmpsim) -> None:
    """LLDP neighbours (D-Link), the APC UPS, and PoE (SYNTHETIC recording) come out of check --json."""
    _, dlink = check(snmpsim_agent.address, "-c", "dlink_dgs-1510-28")
    assert {n["local_port_name"] for n in dlink["neighbours"]} == {"eth1/0/24", "eth1/0/26"}
    assert dlink["uplink"]["how"] == "lldp"
    _, apc = check(snmpsim_agent.address, "-c", "apc_smt750x-nmc2")
    assert apc["ups"]["source"] == "apc" and apc["ups"]["on_battery"] is False
    _, poe = check(snmpsim_agent.address, "-c", "synthetic_poe")
    assert sum(p["status"] == "delivering" for p in poe["poe"]["ports"]) == 2
    _, ups = check(snmpsim_agent.address, "-c", "synthetic_ups")  # SYNTHETIC RFC 1628 UPS-MIB
    assert (ups["ups"]["source"], ups["ups"]["on_battery"], ups["ups"]["battery_status"]) == ("ups_mib", True, "low")


def test_check_with_rate_reads_twice_and_shows_traffic(snmpsim_agent: Snmpsim) -> None:
    """--rate S reads twice S seconds apart: ports get in/out bit/s (0 on a frozen recording, never negative)."""
    code, data = check(snmpsim_agent.address, "-c", "tplink_sg2008", "--rate", "0.3")
    assert code == 0
    port1 = next(i for i in data["interfaces"] if i["index"] == 1)
    assert port1["in_bps"] == 0.0 and port1["out_bps"] == 0.0


def test_check_human_output_through_the_real_entry_point(snmpsim_agent: Snmpsim) -> None:
    """``classfleet snmp check`` as a technician runs it (the installed console script)."""
    exe = Path(sys.executable).with_name("classfleet")
    out = subprocess.run([str(exe), "snmp", "check", snmpsim_agent.address, "-c", "ciscosb_cbs350"],
                         capture_output=True, text=True, timeout=60, env={"COLUMNS": "200", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert "Cisco CBS350-24P-4G" in out.stdout and "FOC2433L650" in out.stdout and "gi1" in out.stdout


def test_check_snmpv3_authpriv_sha256_aes(snmpd_agent: Snmpd, net_snmp: Path) -> None:
    """SNMPv3 authPriv (SHA-256 + AES-128) against net-snmp's snmpd; same interfaces as snmpwalk -v3."""
    d = snmpd_agent
    code, data = check(d.address, "--v3-user", d.user, "--v3-auth-key", d.auth_key, "--v3-priv-key", d.priv_key,
                       "--v3-auth-protocol", d.auth_protocol, "--v3-priv-protocol", d.priv_protocol)
    assert code == 0, data
    assert data["version"] == "3" and data["identity"]["vendor"] == "Net-SNMP"
    auth = ["-v3", "-l", "authPriv", "-u", d.user, "-a", "SHA-256", "-A", d.auth_key, "-x", "AES", "-X", d.priv_key]
    oper = snmpwalk(net_snmp, auth, d.address, IF_OPER)
    assert oper and {i["index"]: i["status"] for i in data["interfaces"]} == {
        k: STATUS[int(v)] for k, v in oper.items()}


def test_snmpv3_wrong_key_is_a_clear_auth_failure(snmpd_agent: Snmpd) -> None:
    """A wrong v3 auth key is reported as auth_failed, not as a timeout."""
    d = snmpd_agent
    code, data = check(d.address, "--v3-user", d.user, "--v3-auth-key", "not-the-key", "--v3-priv-key", d.priv_key,
                       "--v3-auth-protocol", d.auth_protocol, "--timeout", "1", "--retries", "0")
    assert code == 1 and data["reachable"] is False and data["error"] == "auth_failed"


def test_wrong_community_and_garbage_have_clear_reasons(snmpsim_agent: Snmpsim) -> None:
    """A wrong community times out with a hint; a peer answering junk is called out as not SNMP."""
    code, data = check(snmpsim_agent.address, "-c", "no-such-community", "--timeout", "0.5", "--retries", "0")
    assert code == 1 and data["error"] == "timeout" and "community" in data["detail"]
    with GarbageAgent() as junk:
        code, data = check(junk.address, "--timeout", "0.5", "--retries", "0")
        assert junk.received >= 1
    assert code == 1 and data["error"] == "malformed_response"


def test_discover_sweeps_loopback_and_refuses_big_ranges(snmpsim_agent: Snmpsim) -> None:
    """A /29 of loopback finds the one agent; more than a /22 needs --force."""
    started = time.monotonic()
    result = runner.invoke(app, ["discover", "127.0.0.0/29", "--port", str(snmpsim_agent.port), "-c",
                                 "tplink_sg2008", "--timeout", "0.5", "--json"])
    assert result.exit_code == 0, result.output
    found = json.loads(result.stdout)
    assert [(f["address"], f["model"]) for f in found] == [(snmpsim_agent.address, "TL-SG2008")]
    assert time.monotonic() - started < 10
    refused = runner.invoke(app, ["discover", "127.0.0.0/8", "--port", str(free_udp_port())])
    assert refused.exit_code == 2 and "--force" in refused.output


def test_discover_adds_what_answered_to_a_school(snmpsim_agent: Snmpsim, sqlite_url: str) -> None:
    """--school X --add registers the answering agent once, watched by SNMP, with its credential reference."""
    engine = db.make_engine(sqlite_url)
    add_school(engine, "thcs-discover")
    args = ["discover", "127.0.0.1/32", "--port", str(snmpsim_agent.port), "-c", "dlink_dgs-1510-28",
            "--timeout", "0.5", "--school", "thcs-discover", "--add", "--credential-ref", "SNMP_DLINK", "--json"]
    env = {"CLASSFLEET_DATABASE_URL": sqlite_url}
    first = runner.invoke(app, args, env=env)
    assert first.exit_code == 0, first.output
    again = runner.invoke(app, args, env=env)
    assert again.exit_code == 0 and "added 0 device(s)" in again.stderr
    with engine.connect() as conn:
        rows = conn.execute(select(Device.uid, Device.kind, Device.vendor, Device.model, Device.mgmt_address,
                                   Device.watched_by, Device.credential_ref)).all()
    engine.dispose()
    assert [tuple(r) for r in rows] == [(f"snmp-127-0-0-1-{snmpsim_agent.port}", "switch", "D-Link", "DGS-1510-28",
                                         snmpsim_agent.address, "snmp", "SNMP_DLINK")]
