"""The coordinator on recorded responses with an injected clock: slow modules, backoff, bounded concurrency."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import pytest

from controller.pollers.snmp.decode import RecordingTransport, read_snmprec
from controller.pollers.snmp.poller import PollTarget, SnmpPoller
from controller.pollers.snmp.transport import Oid, SnmpError, Target, Value, parse_oid
from tests.fixtures.snmp import RECORDINGS

ENTITY = parse_oid("1.3.6.1.2.1.47.1.1.1.1")
UPTIME = parse_oid("1.3.6.1.2.1.1.3.0")


class Counting(RecordingTransport):
    """A recording that counts which columns were walked and how many requests ran at once."""

    def __init__(self, values: dict[Oid, Value], fail: bool = False) -> None:
        super().__init__(values)
        self.walked: list[Oid] = []
        self.fail = fail
        self.in_flight = 0
        self.most = 0

    async def get(self, target: Target, oids: Sequence[Oid]) -> dict[Oid, Value]:
        """Answer (or time out), noting concurrency."""
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(0.01)
            if self.fail:
                raise SnmpError("timeout", "no answer")
            return await super().get(target, oids)
        finally:
            self.in_flight -= 1

    async def walk(self, target: Target, columns: Sequence[Oid]) -> dict[Oid, dict[Oid, Value]]:
        """Answer and remember the columns."""
        self.walked += list(columns)
        return await super().walk(target, columns)


class Clock:
    """A monotonic clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _entity_walks(transport: Counting) -> int:
    return sum(1 for c in transport.walked if c[:len(ENTITY)] == ENTITY)


def test_identity_modules_are_reread_hourly_or_after_a_reboot() -> None:
    """ENTITY-MIB is walked on the first poll, reused until every_s passes, and re-read after a reboot."""
    values = read_snmprec(RECORDINGS / "ciscosb_cbs350.snmprec")
    transport, clock = Counting(values), Clock()
    poller = SnmpPoller(transport, monotonic=clock)
    pt = PollTarget(1, Target("recording"), kind="switch")

    def poll() -> str | None:
        return asyncio.run(poller.poll(pt)).identity.get("serial")

    assert poll() == "FOC2433L650" and _entity_walks(transport) == 8
    clock.now += 60
    assert poll() == "FOC2433L650" and _entity_walks(transport) == 8  # cached, identity still recorded
    clock.now += 3600
    poll()
    assert _entity_walks(transport) == 16
    values[UPTIME] = 5  # rebooted
    clock.now += 60
    poll()
    assert _entity_walks(transport) == 24


def test_dead_targets_back_off_and_concurrency_is_bounded() -> None:
    """Failures push the next poll out exponentially (capped); never more requests in flight than allowed."""
    transport, clock = Counting({}, fail=True), Clock()
    poller = SnmpPoller(transport, concurrency=3, interval_s=10, backoff_max_s=60, jitter=0, monotonic=clock)
    targets = [PollTarget(i, Target(f"10.0.0.{i}"), kind="switch") for i in range(10)]
    results = asyncio.run(poller.poll_all(targets))
    assert transport.most == 3 and not any(r.reachable for r in results)
    delays = []
    for _ in range(5):
        asyncio.run(poller.poll(targets[0]))
        delays.append(poller.schedules[0].next_due - clock.now)
    assert delays == [20, 40, 60, 60, 60]
    assert poller.due(targets) == []
    clock.now += 61
    assert len(poller.due(targets)) == 10


def test_failure_and_recovery_are_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    """Three failed polls log one warning; the answer after them logs one recovery line."""
    transport, clock = Counting(read_snmprec(RECORDINGS / "tplink_sg2008.snmprec"), fail=True), Clock()
    poller = SnmpPoller(transport, monotonic=clock)
    pt = PollTarget(1, Target("recording"), kind="switch", label="sw-1")
    with caplog.at_level(logging.INFO, logger="controller.pollers.snmp.poller"):
        for _ in range(3):
            asyncio.run(poller.poll(pt))
        transport.fail = False
        asyncio.run(poller.poll(pt))
        asyncio.run(poller.poll(pt))
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 2, messages
    assert "failed" in messages[0] and "answers again after 3 failed poll(s)" in messages[1]


def test_what_a_device_lacks_is_not_asked_again_until_rechecked() -> None:
    """TP-Link has no PoE and no 32-bit octet columns: probed on the first poll, skipped after, re-probed later."""
    transport, clock = Counting(read_snmprec(RECORDINGS / "tplink_sg2008.snmprec")), Clock()
    poller = SnmpPoller(transport, monotonic=clock, absent_recheck_s=900)
    pt = PollTarget(1, Target("recording"), kind="switch")
    poe, in_octets = parse_oid("1.3.6.1.2.1.105.1.1.1.6"), parse_oid("1.3.6.1.2.1.2.2.1.10")
    first = asyncio.run(poller.poll(pt))
    assert poe in transport.walked and in_octets in transport.walked
    transport.walked.clear()
    clock.now += 60
    second = asyncio.run(poller.poll(pt))
    assert poe not in transport.walked and in_octets not in transport.walked
    assert len(second.components) == len(first.components) and "in_bps" in second.components[0].data
    clock.now += 900
    transport.walked.clear()
    asyncio.run(poller.poll(pt))
    assert poe in transport.walked
