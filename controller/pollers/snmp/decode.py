"""Decoding: what was read (plain values keyed by MIB object name and row index) → a typed snapshot.

No I/O here: ``fetch`` drives any ``Transport`` (the real one, or a recording read from a file), and
``decode`` is a pure function, so every real device recording is a unit test.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .modules import Catalogue, Module, default_catalogue
from .transport import Oid, Target, Transport, Value, format_oid, parse_oid

IF_STATUS = {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent", 7: "lowerLayerDown"}
POE_DETECTION = {1: "disabled", 2: "searching", 3: "delivering", 4: "fault", 5: "test", 6: "otherFault"}
UPS_MIB_BATTERY = {1: "unknown", 2: "normal", 3: "low", 4: "depleted"}
APC_BATTERY = {1: "unknown", 2: "normal", 3: "low", 4: "fault"}
# ifType values that are ports a technician plugs cables into (and LAGs of them).
PHYSICAL_IF_TYPES = frozenset({6, 7, 26, 62, 69, 71, 117, 161})
COUNTER32_MAX = 2**32 - 1


@dataclass(slots=True)
class Raw:
    """What a poll read: scalars by name, and table columns by name → {row index: value}."""

    scalars: dict[str, Value] = field(default_factory=dict)
    columns: dict[str, dict[Oid, Value]] = field(default_factory=dict)


@dataclass(slots=True)
class Interface:
    """One ifTable row, merged with its ifXTable row (64-bit counters and ifHighSpeed preferred)."""

    index: int
    name: str
    descr: str | None = None
    alias: str | None = None
    if_type: int | None = None
    admin: str | None = None
    oper: str = "unknown"
    speed_bps: int | None = None
    in_octets: int | None = None
    out_octets: int | None = None
    counter_bits: int = 64
    in_errors: int | None = None
    out_errors: int | None = None
    in_discards: int | None = None
    out_discards: int | None = None

    @property
    def physical(self) -> bool:
        """A port with a cable (Ethernet, fibre, LAG), not a VLAN interface or loopback."""
        return self.if_type is None or self.if_type in PHYSICAL_IF_TYPES


@dataclass(slots=True)
class Neighbour:
    """An LLDP neighbour seen on a local port."""

    local_port: int | None
    local_port_name: str | None
    chassis_id: str | None
    port_id: str | None
    port_descr: str | None
    sys_name: str | None


@dataclass(slots=True)
class PoePort:
    """A PoE port (POWER-ETHERNET-MIB); ``port`` is the PSE port number, usually the ifIndex."""

    group: int
    port: int
    enabled: bool | None
    status: str
    power_class: int | None


@dataclass(slots=True)
class PoeSupply:
    """A power sourcing unit: budget and consumption in watts."""

    group: int
    power_w: int | None
    consumption_w: int | None
    status: str | None


@dataclass(slots=True)
class Ups:
    """UPS state from RFC 1628 UPS-MIB or APC PowerNet-MIB."""

    source: str
    battery_status: str | None = None
    charge_pct: float | None = None
    runtime_s: float | None = None
    on_battery: bool | None = None
    replace_battery: bool | None = None
    load_pct: float | None = None


@dataclass(slots=True)
class Snapshot:
    """One device as a poll saw it."""

    sys_descr: str | None = None
    sys_object_id: str | None = None
    sys_name: str | None = None
    sys_location: str | None = None
    sys_contact: str | None = None
    uptime_s: float | None = None
    vendor: str | None = None
    model: str | None = None
    serial: str | None = None
    firmware: str | None = None
    kind: str | None = None
    interfaces: list[Interface] = field(default_factory=list)
    neighbours: list[Neighbour] = field(default_factory=list)
    poe_ports: list[PoePort] = field(default_factory=list)
    poe_supplies: list[PoeSupply] = field(default_factory=list)
    ups: Ups | None = None

    def identity(self) -> dict[str, str]:
        """The identity facts the store keeps on the device row."""
        values = {"vendor": self.vendor, "model": self.model, "serial": self.serial, "firmware": self.firmware}
        return {k: v for k, v in values.items() if v}

    def to_json(self) -> dict[str, Any]:
        """Plain JSON-able dict (the ``check --json`` output)."""
        return asdict(self)


def text(value: Value | None) -> str | None:
    """An OCTET STRING as text: UTF-8 when it is printable, else colon-separated hex (MACs, chassis ids)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    raw = value.rstrip(b"\x00")
    try:
        decoded = raw.decode("utf-8")
    except UnicodeDecodeError:
        return ":".join(f"{b:02x}" for b in raw)
    if decoded and not all(c.isprintable() or c in "\r\n\t" for c in decoded):
        return ":".join(f"{b:02x}" for b in raw)
    return decoded.strip() or None


def _int(value: Value | None) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _first_index(index: Oid) -> int | None:
    return index[0] if len(index) == 1 else None


async def fetch(transport: Transport, target: Target, modules: Iterable[Module]) -> Raw:
    """Read the modules' scalars in one GET, then each table's columns side by side."""
    modules = list(modules)
    raw = Raw()
    scalar_names: dict[Oid, str] = {}
    for module in modules:
        for name, oid in module.scalars.items():
            scalar_names[oid] = name
    if scalar_names:
        oids = list(scalar_names)
        for start in range(0, len(oids), 40):  # keep each PDU well under agents' var-bind limits
            got = await transport.get(target, oids[start:start + 40])
            for oid, value in got.items():
                if oid in scalar_names:
                    raw.scalars[scalar_names[oid]] = value
    for module in modules:
        for columns in module.tables.values():
            by_oid = {oid: name for name, oid in columns.items()}
            walked = await transport.walk(target, list(by_oid))
            for oid, rows in walked.items():
                if rows:
                    raw.columns[by_oid[oid]] = rows
    return raw


def decode(raw: Raw, catalogue: Catalogue | None = None) -> Snapshot:
    """Turn raw values into a snapshot; absent modules simply leave their parts empty."""
    catalogue = catalogue or default_catalogue()
    s, c = raw.scalars, raw.columns
    snap = Snapshot(
        sys_descr=text(s.get("sysDescr")), sys_name=text(s.get("sysName")),
        sys_location=text(s.get("sysLocation")), sys_contact=text(s.get("sysContact")),
    )
    oid = s.get("sysObjectID")
    snap.sys_object_id = oid if isinstance(oid, str) else None
    uptime = _int(s.get("sysUpTime"))
    snap.uptime_s = uptime / 100.0 if uptime is not None else None
    snap.interfaces = _interfaces(c)
    snap.neighbours = _neighbours(c, snap.interfaces)
    snap.poe_ports, snap.poe_supplies = _poe(c)
    snap.ups = _ups(s)
    _identity(snap, raw, catalogue)
    return snap


def _identity(snap: Snapshot, raw: Raw, catalogue: Catalogue) -> None:
    """Vendor/model/serial/firmware: ENTITY-MIB chassis, then UPS ident, then sysObjectID map, then sysDescr."""
    entry = catalogue.vendor_for(snap.sys_object_id)
    c, s = raw.columns, raw.scalars
    classes = c.get("entPhysicalClass", {})
    chassis = [i for i, v in sorted(classes.items()) if v == 3] or sorted(c.get("entPhysicalModelName", {}))
    ent: dict[str, str | None] = {}
    for index in chassis:
        for key, column in (("model", "entPhysicalModelName"), ("serial", "entPhysicalSerialNum"),
                            ("firmware", "entPhysicalSoftwareRev"), ("firmware_alt", "entPhysicalFirmwareRev"),
                            ("mfg", "entPhysicalMfgName")):
            value = text(c.get(column, {}).get(index))
            if value and not ent.get(key):
                ent[key] = value
        if ent.get("model") and ent.get("serial"):
            break
    descr_model = None
    if entry.model_from_descr and snap.sys_descr:
        match = re.search(entry.model_from_descr, snap.sys_descr)
        descr_model = match.group(1).strip() if match else None
    ups_model = text(s.get("upsBasicIdentModel")) or text(s.get("upsIdentModel"))
    snap.vendor = entry.vendor or ent.get("mfg") or text(s.get("upsIdentManufacturer")) or (
        snap.sys_descr.split()[0] if snap.sys_descr and snap.sys_descr != "<private>" else None)
    snap.model = ent.get("model") or ups_model or descr_model or entry.model
    snap.serial = ent.get("serial") or text(s.get("upsAdvIdentSerialNumber"))
    snap.firmware = (ent.get("firmware") or ent.get("firmware_alt") or text(s.get("upsAdvIdentFirmwareRevision"))
                     or text(s.get("upsIdentUPSSoftwareVersion")))
    snap.kind = entry.kind or ("ups" if snap.ups else None)


def _interfaces(c: dict[str, dict[Oid, Value]]) -> list[Interface]:
    """ifTable rows (index from the OID suffix) merged with ifXTable; ifXTable alone if ifTable is absent."""
    if_cols = ("ifDescr", "ifType", "ifSpeed", "ifAdminStatus", "ifOperStatus", "ifInOctets", "ifOutOctets")
    indexes = {i for col in if_cols for i in c.get(col, {})}
    if not indexes:
        indexes = {i for col in ("ifName", "ifHCInOctets", "ifHighSpeed") for i in c.get(col, {})}
    out = []
    for index in sorted(indexes):
        number = _first_index(index)
        if number is None:
            continue

        def col(name: str, _i: Oid = index) -> Value | None:
            return c.get(name, {}).get(_i)

        descr = text(col("ifDescr"))
        iface = Interface(index=number, name=text(col("ifName")) or descr or f"if{number}", descr=descr,
                          alias=text(col("ifAlias")), if_type=_int(col("ifType")))
        admin, oper = _int(col("ifAdminStatus")), _int(col("ifOperStatus"))
        iface.admin = IF_STATUS.get(admin) if admin is not None else None
        iface.oper = IF_STATUS.get(oper, "unknown") if oper is not None else "unknown"
        high, speed = _int(col("ifHighSpeed")), _int(col("ifSpeed"))
        if high:
            iface.speed_bps = high * 1_000_000
        elif speed is not None and speed > 0:
            iface.speed_bps = speed
        hc_in, hc_out = _int(col("ifHCInOctets")), _int(col("ifHCOutOctets"))
        if hc_in is not None or hc_out is not None:
            iface.in_octets, iface.out_octets, iface.counter_bits = hc_in, hc_out, 64
        else:
            iface.in_octets, iface.out_octets = _int(col("ifInOctets")), _int(col("ifOutOctets"))
            iface.counter_bits = 32
        iface.in_errors, iface.out_errors = _int(col("ifInErrors")), _int(col("ifOutErrors"))
        iface.in_discards, iface.out_discards = _int(col("ifInDiscards")), _int(col("ifOutDiscards"))
        out.append(iface)
    return out


def _neighbours(c: dict[str, dict[Oid, Value]], interfaces: list[Interface]) -> list[Neighbour]:
    """LLDP neighbours, with the local port mapped to an interface name where the agent allows."""
    loc_desc = {i: text(v) for i, v in c.get("lldpLocPortDesc", {}).items()}
    loc_id = {i: text(v) for i, v in c.get("lldpLocPortId", {}).items()}
    by_name = {name: iface for iface in interfaces for name in (iface.name, iface.descr) if name}
    by_index = {iface.index: iface for iface in interfaces}
    rows: set[Oid] = set()
    for col in ("lldpRemChassisId", "lldpRemPortId", "lldpRemSysName", "lldpRemPortDesc"):
        rows.update(c.get(col, {}))
    out = []
    for index in sorted(rows):
        local: int | None = index[1] if len(index) == 3 else None
        iface = None
        if local is not None:
            for label in (loc_desc.get((local,)), loc_id.get((local,))):
                if label and label in by_name:
                    iface = by_name[label]
                    break
            iface = iface or by_index.get(local)
        out.append(Neighbour(
            local_port=iface.index if iface else local, local_port_name=iface.name if iface else None,
            chassis_id=text(c.get("lldpRemChassisId", {}).get(index)),
            port_id=text(c.get("lldpRemPortId", {}).get(index)),
            port_descr=text(c.get("lldpRemPortDesc", {}).get(index)),
            sys_name=text(c.get("lldpRemSysName", {}).get(index))))
    return out


def _poe(c: dict[str, dict[Oid, Value]]) -> tuple[list[PoePort], list[PoeSupply]]:
    """PoE ports and supplies from POWER-ETHERNET-MIB."""
    ports = []
    rows = set(c.get("pethPsePortDetectionStatus", {})) | set(c.get("pethPsePortAdminEnable", {}))
    for index in sorted(rows):
        if len(index) != 2:
            continue
        admin = _int(c.get("pethPsePortAdminEnable", {}).get(index))
        status = _int(c.get("pethPsePortDetectionStatus", {}).get(index))
        ports.append(PoePort(group=index[0], port=index[1], enabled=None if admin is None else admin == 1,
                             status=POE_DETECTION.get(status or 0, "unknown"),
                             power_class=_int(c.get("pethPsePortPowerClassifications", {}).get(index))))
    supplies = []
    for index in sorted(set(c.get("pethMainPsePower", {})) | set(c.get("pethMainPseConsumptionPower", {}))):
        oper = _int(c.get("pethMainPseOperStatus", {}).get(index))
        supplies.append(PoeSupply(group=index[0], power_w=_int(c.get("pethMainPsePower", {}).get(index)),
                                  consumption_w=_int(c.get("pethMainPseConsumptionPower", {}).get(index)),
                                  status={1: "on", 2: "off", 3: "faulty"}.get(oper or 0)))
    return ports, supplies


def _ups(s: dict[str, Value]) -> Ups | None:
    """RFC 1628 UPS-MIB first (the standard), else APC PowerNet-MIB."""
    battery = _int(s.get("upsBatteryStatus"))
    if battery is not None or _int(s.get("upsOutputSource")) is not None:
        minutes = _int(s.get("upsEstimatedMinutesRemaining"))
        charge = _int(s.get("upsEstimatedChargeRemaining"))
        source = _int(s.get("upsOutputSource"))
        return Ups(source="ups_mib", battery_status=UPS_MIB_BATTERY.get(battery or 0),
                   charge_pct=float(charge) if charge is not None else None,
                   runtime_s=minutes * 60.0 if minutes is not None else None,
                   on_battery=None if source is None else source == 5)
    apc_battery = _int(s.get("upsBasicBatteryStatus"))
    if apc_battery is None and _int(s.get("upsBasicOutputStatus")) is None:
        return None
    capacity = _int(s.get("upsAdvBatteryCapacity"))
    runtime = _int(s.get("upsAdvBatteryRunTimeRemaining"))
    output = _int(s.get("upsBasicOutputStatus"))
    replace = _int(s.get("upsAdvBatteryReplaceIndicator"))
    load = _int(s.get("upsAdvOutputLoad"))
    return Ups(source="apc", battery_status=APC_BATTERY.get(apc_battery or 0),
               charge_pct=float(capacity) if capacity is not None else None,
               runtime_s=runtime / 100.0 if runtime is not None else None,
               on_battery=None if output is None else output == 3,
               replace_battery=None if replace is None else replace == 2,
               load_pct=float(load) if load is not None else None)


# --- recordings (.snmprec) as a transport: decoding is tested on what real devices answered ---

SNMPREC_INT_TAGS = {"2", "65", "66", "67", "70"}


def read_snmprec(path: Path) -> dict[Oid, Value]:
    """Parse an snmpsim ``.snmprec`` file (``OID|TAG|VALUE``) into plain values."""
    out: dict[Oid, Value] = {}
    for line in path.read_text(encoding="utf-8", errors="surrogateescape").splitlines():
        parts = line.split("|", 2)
        if len(parts) != 3 or not parts[0] or parts[0].startswith("#"):
            continue
        oid_text, tag, value = parts
        tag = tag.split(":")[0]
        try:
            oid = parse_oid(oid_text)
        except ValueError:
            continue
        if tag in SNMPREC_INT_TAGS:
            out[oid] = int(value)
        elif tag == "6":
            out[oid] = value
        elif tag.endswith("x"):
            try:
                out[oid] = bytes.fromhex(value)
            except ValueError:
                continue  # a few recordings hold odd-length hex; snmpsim cannot serve those either
        elif tag == "64":
            out[oid] = bytes(int(p) for p in value.split(".")) if value.count(".") == 3 else value.encode()
        elif tag == "4":
            out[oid] = value.encode("utf-8", errors="surrogateescape")
    return out


class RecordingTransport:
    """A ``Transport`` that answers from a parsed recording with GET/walk semantics (for decoding tests)."""

    def __init__(self, values: dict[Oid, Value]) -> None:
        self._values = values
        self._sorted = sorted(values)

    async def get(self, target: Target, oids: Sequence[Oid]) -> dict[Oid, Value]:
        """The recorded values of the instances asked for."""
        return {o: self._values[o] for o in oids if o in self._values}

    async def walk(self, target: Target, columns: Sequence[Oid]) -> dict[Oid, dict[Oid, Value]]:
        """Every recorded instance under each column."""
        import bisect

        out: dict[Oid, dict[Oid, Value]] = {}
        for column in columns:
            rows: dict[Oid, Value] = {}
            for oid in self._sorted[bisect.bisect_right(self._sorted, column):]:
                if oid[:len(column)] != column:
                    break
                rows[oid[len(column):]] = self._values[oid]
            out[column] = rows
        return out


__all__ = ["Raw", "Snapshot", "Interface", "decode", "fetch", "read_snmprec", "RecordingTransport", "text",
           "format_oid"]
