"""The trap receiver inside the poller service, fed by net-snmp's ``snmptrap`` (v2c and v3 authPriv) and by
junk: a trap re-polls its device at once; refused or malformed traps are kept as dead letters with a reason."""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from controller.pollers.snmp.service import SnmpPollerService
from controller.pollers.snmp.transport import V3Credentials
from controller.pollers.snmp.trap import TrapUser
from controller.store.models import DeadLetter
from tests.controller.pollers.snmp.test_service import add_device, polls
from tests.fixtures.snmp import Snmpsim
from tests.helpers import wait_for

pytestmark = pytest.mark.integration
ENGINE_ID = "80001f8880c1a5f1ee7001"
V3 = V3Credentials("trapper", "trap-auth-key", "trap-priv-key", "SHA", "AES")


@pytest.fixture
def running(engine: Engine, snmpsim_agent: Snmpsim) -> Iterator[tuple[SnmpPollerService, int]]:
    """A service with a long poll interval (so any second poll is the trap's doing) and a trap port."""
    device = add_device(engine, "sw-trap", snmpsim_agent.address, "SNMP_T")
    svc = SnmpPollerService(engine, interval_s=3600, refresh_s=3600, timeout_s=1, retries=0, batch_interval_s=0.1,
                            env={"SNMP_T": "tplink_sg2008"}, trap_port=0, trap_host="127.0.0.1",
                            trap_communities=("traps-c",), trap_v3_users=(TrapUser(V3, bytes.fromhex(ENGINE_ID)),))
    svc.start()
    try:
        wait_for(lambda: len(polls(engine, device)) == 1, timeout=10, what="the first poll")
        yield svc, device
    finally:
        svc.stop()


def snmptrap(*args: str) -> None:
    """Send a trap with net-snmp's snmptrap."""
    exe = shutil.which("snmptrap")
    if exe is None:
        pytest.fail("snmptrap is missing: apt-get install -y snmp (.ci/install-test-deps does this)")
    subprocess.run([exe, *args], check=True, timeout=20, capture_output=True, env={"MIBS": ""})


def dead_letters(engine: Engine) -> list[tuple[str, str]]:
    """(reason, detail) of every dead letter."""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(DeadLetter.reason, DeadLetter.detail))]  # type: ignore[misc]


def test_v2c_linkdown_trap_repolls_the_device(running: tuple[SnmpPollerService, int], engine: Engine) -> None:
    """linkDown (v2c, with ifIndex) → the device is polled again at once, despite a one-hour interval."""
    svc, device = running
    snmptrap("-v2c", "-c", "traps-c", f"127.0.0.1:{svc.trap_port}", "", "1.3.6.1.6.3.1.1.5.3",
             "1.3.6.1.2.1.2.2.1.1.5", "i", "5")
    wait_for(lambda: len(polls(engine, device)) == 2, timeout=10, what="the re-poll")
    event = svc.traps[-1]
    assert (event.name, event.if_index, event.source[0]) == ("linkDown", 5, "127.0.0.1")


def test_v3_authpriv_trap_is_accepted(running: tuple[SnmpPollerService, int], engine: Engine) -> None:
    """A v3 authPriv (SHA + AES) coldStart from a known engine id is accepted and re-polls."""
    svc, device = running
    snmptrap("-v3", "-e", f"0x{ENGINE_ID}", "-u", V3.user, "-l", "authPriv", "-a", "SHA", "-A", "trap-auth-key",
             "-x", "AES", "-X", "trap-priv-key", f"127.0.0.1:{svc.trap_port}", "", "1.3.6.1.6.3.1.1.5.1")
    wait_for(lambda: len(polls(engine, device)) == 2, timeout=10, what="the re-poll")
    assert svc.traps[-1].name == "coldStart"


def test_refused_and_malformed_traps_are_dead_letters(running: tuple[SnmpPollerService, int],
                                                      engine: Engine) -> None:
    """A wrong community, a wrong v3 key and junk bytes: each kept with a clear reason; no re-poll."""
    svc, device = running
    snmptrap("-v2c", "-c", "wrong", f"127.0.0.1:{svc.trap_port}", "", "1.3.6.1.6.3.1.1.5.4")
    snmptrap("-v3", "-e", f"0x{ENGINE_ID}", "-u", V3.user, "-l", "authPriv", "-a", "SHA", "-A", "not-the-auth-key",
             "-x", "AES", "-X", "trap-priv-key", f"127.0.0.1:{svc.trap_port}", "", "1.3.6.1.6.3.1.1.5.1")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\x30\x03garbage that claims to be BER", ("127.0.0.1", svc.trap_port))
    wait_for(lambda: len(dead_letters(engine)) >= 3, timeout=10, what="three dead letters")
    reasons = {reason: detail for reason, detail in dead_letters(engine)}
    assert "community" in reasons["bad_community"]
    assert "auth key" in reasons["auth_failed"]
    assert "not SNMP" in reasons["malformed_trap"]
    assert len(polls(engine, device)) == 1 and not svc.traps
