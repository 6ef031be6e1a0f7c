"""What polls mean, with an injected clock: rates, wraps, reboots, reachability, uplinks; credentials parsing."""

from __future__ import annotations

import datetime as dt

import pytest

from controller.pollers.snmp.decode import Interface, Neighbour, Snapshot
from controller.pollers.snmp.meaning import DeviceTracker, counter_delta, infer_uplink, rate, rebooted
from controller.pollers.snmp.service import parse_address, parse_credential, split_profile

T0 = dt.datetime(2026, 1, 5, 8, 0, tzinfo=dt.UTC)


def test_counter_delta_handles_one_32_bit_wrap() -> None:
    """A Counter32 that passed 2**32 increased by what it went over the top plus what it has now."""
    assert counter_delta(2**32 - 100, 50, 32) == 150
    assert counter_delta(10, 25, 64) == 15


def test_a_64_bit_counter_going_back_is_a_reset_not_a_wrap() -> None:
    """Counter64 does not wrap in practice: going back means the counter restarted, so no delta."""
    assert counter_delta(10**12, 5, 64) is None
    assert rate(10**12, 5, 64, 60.0) is None


def test_rate_refuses_absurd_values_and_empty_intervals() -> None:
    """A jump no link could carry is a discontinuity; no interval, no rate; never negative."""
    assert rate(0, 10**12, 64, 1.0, limit_per_s=1e9 / 8 * 1.2) is None  # 8 Tbit/s on a 1G port
    assert rate(0, 1000, 64, 0.0) is None
    assert rate(100, 200, 32, 10.0) == 10.0
    for prev, cur in ((2**32 - 1, 0), (0, 2**32 - 1), (5, 4)):
        value = rate(prev, cur, 32, 1.0)
        assert value is None or value >= 0


def test_rebooted_when_uptime_goes_back_but_not_on_a_timeticks_wrap() -> None:
    """sysUpTime back → reboot; sysUpTime wrapping after ~497 days as expected → not a reboot."""
    assert rebooted(1000.0, 3.0, 60.0)
    assert not rebooted(1000.0, 1060.0, 60.0)
    assert not rebooted(None, 3.0, 60.0)
    wrap = 2**32 / 100.0
    assert not rebooted(wrap - 30.0, 30.0, 60.0)
    assert rebooted(wrap - 3000.0, 30.0, 60.0)


def _iface(index: int, oper: str = "up", speed: int = 1_000_000_000, octets: int | None = 0,
           bits: int = 64, errors: int = 0) -> Interface:
    return Interface(index=index, name=f"p{index}", oper=oper, admin="up", if_type=6, speed_bps=speed,
                     in_octets=octets, out_octets=octets, counter_bits=bits, in_errors=errors, out_errors=0)


def _snap(uptime: float, ifaces: list[Interface], neighbours: list[Neighbour] | None = None) -> Snapshot:
    return Snapshot(uptime_s=uptime, interfaces=ifaces, neighbours=neighbours or [], vendor="X", model="Y")


def _checks(result: object) -> dict[str, bool]:
    return {c.code: c.active for c in result.faults}  # type: ignore[attr-defined]


def test_wrap_then_reboot_give_no_negative_or_absurd_rate() -> None:
    """Round 2 has a 32-bit wrap (a sane rate), round 3 a reboot (no rate at all, switch.rebooted raised)."""
    tracker = DeviceTracker(1)
    tracker.observe(_snap(1000.0, [_iface(1, octets=2**32 - 6000, bits=32)]), T0)
    wrapped = tracker.observe(_snap(1060.0, [_iface(1, octets=1500, bits=32)]), T0 + dt.timedelta(seconds=60))
    port = wrapped.components[0].data
    assert port["in_bps"] == pytest.approx(7500 * 8 / 60)
    assert not _checks(wrapped)["switch.rebooted"]
    rebooted_round = tracker.observe(_snap(20.0, [_iface(1, octets=100, bits=32)]), T0 + dt.timedelta(seconds=120))
    assert "in_bps" not in rebooted_round.components[0].data
    assert _checks(rebooted_round)["switch.rebooted"]
    after = tracker.observe(_snap(80.0, [_iface(1, octets=700, bits=32)]), T0 + dt.timedelta(seconds=180))
    assert after.components[0].data["in_bps"] == pytest.approx(80.0)


def test_unreachable_after_n_failures_and_recovery() -> None:
    """switch.unreachable is raised on the N-th failed poll in a row and cleared by the next answer."""
    tracker = DeviceTracker(7, fail_threshold=3)
    results = [tracker.failed(T0 + dt.timedelta(seconds=i), "timeout", "no answer") for i in range(3)]
    assert [_checks(r)["switch.unreachable"] for r in results] == [False, False, True]
    assert results[-1].faults[0].detail["reason"] == "timeout" and not results[-1].reachable
    back = tracker.observe(_snap(10.0, [_iface(1)]), T0 + dt.timedelta(seconds=5))
    assert back.reachable and _checks(back)["switch.unreachable"] is False and tracker.failures == 0


def test_uplink_inferred_from_lldp_then_from_speed_else_none() -> None:
    """LLDP neighbour first; else the one port faster than the rest; all alike → no guess."""
    ports = [_iface(1), _iface(2), _iface(3, speed=10_000_000_000)]
    lldp = infer_uplink(_snap(1, ports, [Neighbour(2, "p2", "aa", "x", None, None)]))
    assert lldp is not None and (lldp.index, lldp.how) == (2, "lldp")
    fast = infer_uplink(_snap(1, ports))
    assert fast is not None and (fast.index, fast.how) == (3, "speed")
    assert infer_uplink(_snap(1, [_iface(1), _iface(2)])) is None


def test_uplink_down_raised_on_the_remembered_uplink() -> None:
    """Once inferred, the uplink is kept: when it goes down, switch.uplink_down is raised."""
    tracker = DeviceTracker(1)
    first = tracker.observe(_snap(10, [_iface(1), _iface(2, speed=10**10)]), T0)
    assert not _checks(first)["switch.uplink_down"]
    down = tracker.observe(_snap(70, [_iface(1), _iface(2, oper="down", speed=0)]), T0 + dt.timedelta(seconds=60))
    assert _checks(down)["switch.uplink_down"]
    assert next(c for c in down.faults if c.code == "switch.uplink_down").detail["port"] == "p2"


def test_configured_uplink_and_school_uplink_flag() -> None:
    """A configured uplink wins over inference; the school's uplink switch also raises school.upstream_down."""
    tracker = DeviceTracker(1, configured_uplink="p1", is_school_uplink=True)
    result = tracker.observe(_snap(10, [_iface(1, oper="down"), _iface(2, speed=10**10)]), T0)
    checks = _checks(result)
    assert checks["switch.uplink_down"] and checks["school.upstream_down"]
    assert tracker.uplink is not None and tracker.uplink.how == "configured"


def test_port_errors_above_threshold() -> None:
    """More than the threshold of errors per second on a port raises switch.port_errors."""
    tracker = DeviceTracker(1, error_rate_threshold=1.0)
    tracker.observe(_snap(10, [_iface(1, errors=0)]), T0)
    result = tracker.observe(_snap(70, [_iface(1, errors=600)]), T0 + dt.timedelta(seconds=60))
    assert _checks(result)["switch.port_errors"]


def test_credentials_and_addresses() -> None:
    """The documented credential forms, addresses and profile options."""
    assert parse_credential("s3cret") == ("2c", "s3cret", None)
    assert parse_credential("v1:old") == ("1", "old", None)
    version, _, v3 = parse_credential("v3:nms:SHA256:authpass1:AES:privpass1")
    assert version == "3" and v3 is not None and (v3.user, v3.auth_protocol, v3.priv_key) == (
        "nms", "SHA256", "privpass1")
    assert "privpass1" not in repr(v3)
    _, _, v3 = parse_credential('{"user": "u", "auth_protocol": "SHA", "auth_key": "abcdefgh"}')
    assert v3 is not None and v3.priv_key is None
    with pytest.raises(ValueError):
        parse_credential("v3:nms:SHA:short")
    assert parse_address("10.0.0.1") == ("10.0.0.1", 161)
    assert parse_address("127.0.0.1:1161") == ("127.0.0.1", 1161)
    assert split_profile("switch;uplink=Gi1/0/48") == ("switch", "Gi1/0/48")
    assert split_profile(None) == (None, None)


def test_ups_on_battery_and_low_battery_raise_faults() -> None:
    """A UPS on battery with a low battery raises both; back on line with a good battery clears both."""
    from controller.pollers.snmp.decode import Ups

    tracker = DeviceTracker(3, kind="ups")
    bad = tracker.observe(Snapshot(uptime_s=10, ups=Ups("ups_mib", "low", 35.0, 420.0, True)), T0)
    checks = _checks(bad)
    assert checks["ups.on_battery"] and checks["ups.battery_low"] and "switch.uplink_down" not in checks
    assert bad.figures["ups"] == {"battery_status": "low", "charge_pct": 35.0, "runtime_s": 420.0, "on_battery": True}
    good = tracker.observe(Snapshot(uptime_s=70, ups=Ups("ups_mib", "normal", 100.0, 3600.0, False)),
                           T0 + dt.timedelta(seconds=60))
    assert not _checks(good)["ups.on_battery"] and not _checks(good)["ups.battery_low"]
    assert _checks(good)["ups.unreachable"] is False
