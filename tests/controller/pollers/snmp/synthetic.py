"""SYNTHETIC recordings, written by us (not captured from devices): PoE, RFC 1628 UPS-MIB, and one
switch in several states (counters wrapped, uplink down, rebooted) for the live meaning tests.

No real recording has POWER-ETHERNET-MIB or UPS-MIB data (see ../shared/testdata/snmprec/README.md),
so these exercise those decoders; every file's sysDescr says "SYNTHETIC".
"""

from __future__ import annotations

SYS = "1.3.6.1.2.1.1"
IF = "1.3.6.1.2.1.2.2.1"
IFX = "1.3.6.1.2.1.31.1.1.1"


def _system(descr: str, object_id: str, uptime_ticks: int) -> list[str]:
    return [f"{SYS}.1.0|4|{descr}", f"{SYS}.2.0|6|{object_id}", f"{SYS}.3.0|67|{uptime_ticks}",
            f"{SYS}.5.0|4|synthetic"]


def switch(uptime_ticks: int, in_octets: list[int], uplink_up: bool = True) -> str:
    """A 4-port switch with 32-bit counters only (ifInOctets/ifOutOctets) and a 10G port 4 (the uplink)."""
    lines = _system("SYNTHETIC classfleet test switch", "1.3.6.1.4.1.8072.3.2.10", uptime_ticks)
    rows = []
    for port in range(1, 5):
        oper = 1 if port != 4 or uplink_up else 2
        rows.append((port, oper))
    for col, render in (
        (2, lambda p, o: f"4|port{p}"), (3, lambda p, o: "2|6"),
        (5, lambda p, o: f"66|{4294967295 if p == 4 else 1000000000}"), (7, lambda p, o: "2|1"),
        (8, lambda p, o: f"2|{o}"), (10, lambda p, o: f"65|{in_octets[p - 1]}"),
        (14, lambda p, o: "65|0"), (16, lambda p, o: f"65|{in_octets[p - 1] // 2}"), (20, lambda p, o: "65|0"),
    ):
        lines += [f"{IF}.{col}.{p}|{render(p, o)}" for p, o in rows]
    lines += [f"{IFX}.1.{p}|4|ge-0/0/{p}" for p, _ in rows]
    lines += [f"{IFX}.15.{p}|66|{10000 if p == 4 else 1000}" for p, _ in rows]
    return "\n".join(sorted(lines, key=_oid_key)) + "\n"


def poe_switch() -> str:
    """A 4-port PoE switch: ports 1–2 deliver power, 3 searching, 4 disabled; one 120 W PSE using 18 W."""
    lines = _system("SYNTHETIC classfleet PoE switch", "1.3.6.1.4.1.8072.3.2.10", 123456)
    peth = "1.3.6.1.2.1.105.1"
    for port, (admin, status) in enumerate(((1, 3), (1, 3), (1, 2), (2, 1)), start=1):
        lines += [f"{IF}.2.{port}|4|port{port}", f"{IF}.8.{port}|2|{1 if status == 3 else 2}",
                  f"{peth}.1.1.3.1.{port}|2|{admin}", f"{peth}.1.1.6.1.{port}|2|{status}",
                  f"{peth}.1.1.10.1.{port}|2|{3 if status == 3 else 1}"]
    lines += [f"{peth}.3.1.1.2.1|66|120", f"{peth}.3.1.1.3.1|2|1", f"{peth}.3.1.1.4.1|66|18"]
    return "\n".join(sorted(lines, key=_oid_key)) + "\n"


def ups_mib() -> str:
    """An RFC 1628 UPS on battery: battery low, 7 minutes and 35 % left."""
    lines = _system("SYNTHETIC classfleet RFC 1628 UPS", "1.3.6.1.4.1.8072.3.2.10", 654321)
    ups = "1.3.6.1.2.1.33.1"
    lines += [f"{ups}.1.1.0|4|Synthetic Power", f"{ups}.1.2.0|4|SYN-UPS 1000", f"{ups}.1.3.0|4|1.2.3",
              f"{ups}.2.1.0|2|3", f"{ups}.2.3.0|2|7", f"{ups}.2.4.0|2|35", f"{ups}.4.1.0|2|5",
              f"{IF}.2.1|4|eth0", f"{IF}.8.1|2|1"]
    return "\n".join(sorted(lines, key=_oid_key)) + "\n"


def _oid_key(line: str) -> tuple[int, ...]:
    return tuple(int(p) for p in line.split("|", 1)[0].split("."))


NEAR_WRAP = 2**32 - 1000


def recordings() -> dict[str, str]:
    """Name (= community) → snmprec text of every synthetic recording."""
    return {
        "synthetic_poe": poe_switch(),
        "synthetic_ups": ups_mib(),
        # the same switch over time: t0, then 32-bit counters wrapped (+ uplink down), then rebooted
        "synthetic_sw_t0": switch(100_000, [NEAR_WRAP, 5_000, 10_000, 20_000]),
        "synthetic_sw_wrapped": switch(100_100, [500, 6_000, 11_000, 21_000], uplink_up=False),
        "synthetic_sw_rebooted": switch(300, [10, 20, 30, 40]),
    }
