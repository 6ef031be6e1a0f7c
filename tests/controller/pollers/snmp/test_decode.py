"""Decoding on recorded responses (no network): every real recording, plus the synthetic PoE/UPS ones."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from controller.pollers.snmp.decode import RecordingTransport, Snapshot, decode, fetch, read_snmprec, text
from controller.pollers.snmp.modules import default_catalogue, load
from controller.pollers.snmp.transport import Oid, Target, Value, parse_oid
from tests.controller.pollers.snmp import synthetic
from tests.fixtures.snmp import RECORDINGS

# vendor, and a string the model must contain, from ../shared/testdata/snmprec/README.md's table
EXPECTED = {
    "apc_smt750x-nmc2": ("APC", "Smart-UPS"),
    "arubaos-cx_6300m": ("HPE Aruba", "6300M"),
    "ciscosb_c1200": ("Cisco", "C1200-8T-D"),
    "ciscosb_cbs350": ("Cisco", "CBS350-24P-4G"),
    "ciscosb_sg350-10": ("Cisco", "SG350-10"),
    "dlink_dgs-1510-28": ("D-Link", "DGS-1510-28"),
    "epson-projector_eb-4770w": ("Epson", "Projector"),
    "iosxe_c9300": ("Cisco", "9300"),
    "jetdirect_m252dw": ("HP", "M252dw"),
    "procurve_2520": ("HP", "2520"),
    "routeros_crs317": ("MikroTik", "CRS317-1G-16S+"),
    "ruijie": ("Ruijie", "S6220-48XS4QXS"),
    "tplink_sg2008": ("TP-Link", "TL-SG2008"),
    "vrp_s5328c-ei": ("Huawei", "S5328C-EI"),
}
# ifTable rows (ifDescr/ifOperStatus) per the README's table
IF_ROWS = {"ciscosb_sg350-10": 23, "ciscosb_cbs350": 43, "ciscosb_c1200": 20, "iosxe_c9300": 76,
           "procurve_2520": 44, "arubaos-cx_6300m": 73, "tplink_sg2008": 11, "dlink_dgs-1510-28": 36,
           "ruijie": 57, "vrp_s5328c-ei": 31, "routeros_crs317": 20, "apc_smt750x-nmc2": 2, "jetdirect_m252dw": 4,
           "epson-projector_eb-4770w": 2}


def snapshot_of(values: dict[Oid, Value], profile: str = "auto") -> Snapshot:
    """Fetch and decode through the recording transport, exactly as the poller does over the network."""
    catalogue = default_catalogue()
    raw = asyncio.run(fetch(RecordingTransport(values), Target("recording"), catalogue.modules_for(profile)))
    return decode(raw, catalogue)


def test_all_fourteen_recordings_are_covered() -> None:
    """The table above names every recording the README lists."""
    assert {p.stem for p in RECORDINGS.glob("*.snmprec")} == set(EXPECTED) == set(IF_ROWS)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_recording_identity_and_interfaces(name: str) -> None:
    """Vendor/model as the README says, and one interface per ifTable row, indexed by the OID suffix."""
    values = read_snmprec(RECORDINGS / f"{name}.snmprec")
    snap = snapshot_of(values)
    vendor, model = EXPECTED[name]
    assert snap.vendor == vendor
    assert snap.model is not None and model.lower() in snap.model.lower()
    assert len(snap.interfaces) == IF_ROWS[name]
    oper_rows = {oid[-1]: v for oid, v in values.items()
                 if oid[:-1] == parse_oid("1.3.6.1.2.1.2.2.1.8") and isinstance(v, int)}
    assert {i.index: i.oper for i in snap.interfaces} == {
        index: {1: "up", 2: "down", 3: "testing", 4: "unknown", 5: "dormant", 6: "notPresent",
                7: "lowerLayerDown"}[value] for index, value in oper_rows.items()}
    assert all(i.name for i in snap.interfaces)


def test_index_comes_from_the_oid_suffix_when_ifindex_is_absent() -> None:
    """TP-Link has no ifIndex column and ifIndexes 52800+: they come from the suffix."""
    snap = snapshot_of(read_snmprec(RECORDINGS / "tplink_sg2008.snmprec"))
    assert [i.index for i in snap.interfaces][-3:] == [52800, 52801, 52802]


def test_64_bit_counters_and_high_speed_are_preferred() -> None:
    """Where ifXTable has HC counters and ifHighSpeed, those are used (not ifInOctets/ifSpeed)."""
    values = read_snmprec(RECORDINGS / "iosxe_c9300.snmprec")
    snap = snapshot_of(values)
    hc = {oid[-1]: v for oid, v in values.items() if oid[:-1] == parse_oid("1.3.6.1.2.1.31.1.1.1.6")}
    with_hc = [i for i in snap.interfaces if i.index in hc]
    assert with_hc and all(i.counter_bits == 64 and i.in_octets == hc[i.index] for i in with_hc)
    high = {oid[-1]: v for oid, v in values.items() if oid[:-1] == parse_oid("1.3.6.1.2.1.31.1.1.1.15")}
    assert all(i.speed_bps == high[i.index] * 1_000_000 for i in snap.interfaces if high.get(i.index))


def test_32_bit_counters_are_the_fallback() -> None:
    """The Epson projector has no ifXTable: 32-bit ifInOctets, ifSpeed."""
    snap = snapshot_of(read_snmprec(RECORDINGS / "epson-projector_eb-4770w.snmprec"))
    eth = next(i for i in snap.interfaces if i.name == "eth0")
    assert eth.counter_bits == 32 and eth.in_octets is not None and eth.speed_bps


def test_aruba_without_counters_still_lists_ports() -> None:
    """Aruba CX holds only ifDescr/ifType/ifOperStatus: ports without traffic figures, no crash."""
    snap = snapshot_of(read_snmprec(RECORDINGS / "arubaos-cx_6300m.snmprec"))
    assert all(i.in_octets is None and i.out_octets is None for i in snap.interfaces)
    assert snap.uptime_s is None  # the recording has no sysUpTime


def test_entity_mib_gives_serial_and_firmware() -> None:
    """The chassis entry of ENTITY-MIB fills serial and firmware."""
    snap = snapshot_of(read_snmprec(RECORDINGS / "ciscosb_cbs350.snmprec"))
    assert (snap.serial, snap.firmware) == ("FOC2433L650", "3.0.0.61")


def test_lldp_neighbours_map_to_local_ports() -> None:
    """D-Link's two LLDP neighbours sit on eth1/0/24 and eth1/0/26; MikroTik's 18 have no port index."""
    snap = snapshot_of(read_snmprec(RECORDINGS / "dlink_dgs-1510-28.snmprec"))
    assert sorted(n.local_port_name for n in snap.neighbours) == ["eth1/0/24", "eth1/0/26"]  # type: ignore[type-var]
    assert any(n.sys_name == "Kos16c" and n.chassis_id == "10:be:f5:ac:87:a0" for n in snap.neighbours)
    mikrotik = snapshot_of(read_snmprec(RECORDINGS / "routeros_crs317.snmprec"))
    assert len(mikrotik.neighbours) == 18


def test_apc_powernet_ups() -> None:
    """APC's enterprise MIB: model, serial, on line (not on battery), runtime from TimeTicks."""
    snap = snapshot_of(read_snmprec(RECORDINGS / "apc_smt750x-nmc2.snmprec"), profile="ups")
    assert snap.ups is not None and snap.ups.source == "apc"
    assert snap.ups.on_battery is False and snap.ups.runtime_s == pytest.approx(109762.0)
    assert (snap.model, snap.serial, snap.kind) == ("Smart-UPS X 750", "AS1907242163", "ups")


def _synthetic(name: str, tmp_path: Path) -> dict[Oid, Value]:
    path = tmp_path / f"{name}.snmprec"
    path.write_text(synthetic.recordings()[name])
    return read_snmprec(path)


def test_poe_on_a_synthetic_recording(tmp_path: Path) -> None:
    """SYNTHETIC: POWER-ETHERNET-MIB ports and supply."""
    snap = snapshot_of(_synthetic("synthetic_poe", tmp_path))
    assert [(p.port, p.enabled, p.status) for p in snap.poe_ports] == [
        (1, True, "delivering"), (2, True, "delivering"), (3, True, "searching"), (4, False, "disabled")]
    assert [(s.power_w, s.consumption_w, s.status) for s in snap.poe_supplies] == [(120, 18, "on")]


def test_rfc1628_ups_on_a_synthetic_recording(tmp_path: Path) -> None:
    """SYNTHETIC: UPS-MIB on battery, battery low."""
    snap = snapshot_of(_synthetic("synthetic_ups", tmp_path), profile="ups")
    assert snap.ups is not None and snap.ups.source == "ups_mib"
    assert (snap.ups.battery_status, snap.ups.on_battery, snap.ups.charge_pct, snap.ups.runtime_s) == (
        "low", True, 35.0, 420.0)
    assert (snap.vendor, snap.model) == ("Net-SNMP", "SYN-UPS 1000")


def test_text_renders_binary_as_hex() -> None:
    """MAC addresses and other binary strings become readable hex; text stays text."""
    assert text(b"\x00\x03\x0f\x82\xc9\x02") == "00:03:0f:82:c9:02"
    assert text(b"eth1/0/24") == "eth1/0/24"
    assert text(None) is None


def test_modules_file_is_data_and_checked(tmp_path: Path) -> None:
    """A class naming an unknown module is refused; the vendor map merges prefixes, most specific last."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[classes]\nswitch = ["nope"]\n')
    with pytest.raises(ValueError, match="unknown modules"):
        load(bad)
    entry = default_catalogue().vendor_for("1.3.6.1.4.1.9.1.99999")
    assert (entry.vendor, entry.model) == ("Cisco", None)
    assert [m.name for m in default_catalogue().modules_for(None, "ups")] == ["system", "if_mib", "if_meta", "ups_mib",
                                                                               "apc_ups"]
