"""Stable device ids: survive reinstalls, refuse junk firmware strings, never merge cloned or junk-serial machines."""

from __future__ import annotations

import dataclasses
import re

import pytest

from agents.identity import (
    IdentityError,
    derive_device_id,
    fingerprint,
    is_junk,
    is_placeholder,
    slug,
    valid_uuid,
)
from agents.platform.base import IdentitySources
from classfleet_wire import is_valid_id

ID_RE = re.compile(r"^[a-z0-9_-]{1,64}$")

DELL = IdentitySources(
    hostname="lab1-pc07", vendor="Dell Inc.", model="OptiPlex 3000", board_serial="/7XK3QH3/CNFCW0021Q00KH/",
    product_serial="7XK3QH3", product_uuid="4C4C4544-0058-4B10-8033-B7C04F514833",
    machine_id="3d1219c7c4c5404aaa1f6d2a48adfda4", macs=("b0:7b:25:1a:2c:3d",),
)
# A smart board's OPS module: every firmware string is a placeholder.
OPS = IdentitySources(
    hostname="p101-board", vendor="To be filled by O.E.M.", model="To be filled by O.E.M.",
    board_serial="Default string", product_serial="To be filled by O.E.M.",
    product_uuid="03000200-0400-0500-0006-000700080009", machine_id="2d7a4b1e9c3f4e8ab6d51f0e9a8b7c6d",
    os_sid="S-1-5-21-1004336348-1177238915-682003330", macs=("00:e0:4c:68:12:a1",),
)


@pytest.mark.parametrize("value", [
    "Default string", "To be filled by O.E.M.", "TO BE FILLED BY O.E.M.", "System Serial Number", "0123456789",
    "None", "", None, "   ", "0", "00000000", "XXXXXXXXXX", "123456789", "1234567890", "N/A", "Not Specified",
    "Chassis Serial Number", "BSN12345678901234567", "To be filled by OEM\x00\x00", "........", "ABCDEF",
])
def test_junk_serials(value: str | None) -> None:
    assert is_junk(value)


@pytest.mark.parametrize("value", ["7XK3QH3", "4CE2301XYZ", "PF3ABCDE", "/7XK3QH3/CNFCW0021Q00KH/",
                                   "VMware-56 4d 8f 3a 1b 2c 3d 4e-5f 60 71 82 93 a4 b5 c6", "MXL12345AB"])
def test_real_serials(value: str) -> None:
    assert not is_junk(value)


@pytest.mark.parametrize("value", [
    "00000000-0000-0000-0000-000000000000", "FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF",
    "03000200-0400-0500-0006-000700080009", "00020003-0004-0005-0006-000700080009", "Not Settable", "", None,
])
def test_junk_uuids(value: str | None) -> None:
    assert valid_uuid(value) is None


def test_uuid_case_and_dashes_do_not_matter() -> None:
    """Linux prints the SMBIOS UUID in lower case, Windows in upper case: a dual-boot machine is one device."""
    assert valid_uuid("4C4C4544-0058-4B10-8033-B7C04F514833") == valid_uuid("4c4c4544-0058-4b10-8033-b7c04f514833")


def test_vendor_names_may_be_short() -> None:
    assert not is_placeholder("HP")
    assert is_placeholder("System manufacturer")


def test_id_matches_the_wire_rule() -> None:
    device = derive_device_id(DELL)
    assert ID_RE.match(device) and is_valid_id(device)
    assert device.startswith("dell-")
    long_prefix = derive_device_id(DELL, prefix="Phòng máy tính số 1 — Trường THCS Lê Lợi, Đống Đa" * 3)
    assert ID_RE.match(long_prefix) and long_prefix.startswith("phong-may-tinh-so-1-truong-thcs-le-loi-dong-da")
    assert derive_device_id(OPS).startswith("dev-")  # no usable vendor
    assert ID_RE.match(derive_device_id(DELL, prefix=""))


def test_enrolment_id_wins() -> None:
    assert derive_device_id(DELL, enrolled_id="lab1-pc07") == "lab1-pc07"
    assert derive_device_id(IdentitySources(), enrolled_id="board-p101") == "board-p101"
    with pytest.raises(ValueError):
        derive_device_id(DELL, enrolled_id="Lab1 PC07")


def test_survives_a_reinstall() -> None:
    """New OS: new machine-id, MachineGuid and SID, Windows' random hostname. Same hardware: same id."""
    reinstalled = dataclasses.replace(DELL, machine_id="9f8e7d6c5b4a39281706f5e4d3c2b1a0", hostname="DESKTOP-8K2J4QF",
                                      os_sid="S-1-5-21-1111111111-2222222222-3333333333")
    assert derive_device_id(reinstalled) == derive_device_id(DELL)
    # A serial-only machine (UUID junk) mixes in the MACs, which a reinstall does not change either.
    serial_only = dataclasses.replace(DELL, board_serial=None, product_uuid="00000000-0000-0000-0000-000000000000")
    assert fingerprint(serial_only).basis == "hardware+network"
    assert derive_device_id(dataclasses.replace(serial_only, machine_id="other")) == derive_device_id(serial_only)
    # The OPS's only stable facts are its MACs: a reinstall keeps them.
    assert derive_device_id(dataclasses.replace(OPS, machine_id="new", os_sid="S-1-5-21-1-2-3")) == \
        derive_device_id(OPS)


def test_strong_hardware_ids_ignore_nic_changes() -> None:
    """Two good firmware values: a new network card or a USB dongle does not move the id."""
    assert fingerprint(DELL).basis == "hardware"
    assert derive_device_id(dataclasses.replace(DELL, macs=("b0:7b:25:1a:2c:3d", "00:0e:c6:aa:bb:cc"))) == \
        derive_device_id(DELL)


def test_cloned_disk_images_do_not_collide() -> None:
    """One image on a whole lab: same machine-id and SID, same junk firmware strings; only the NICs differ."""
    clones = [dataclasses.replace(OPS, macs=(f"00:e0:4c:68:12:{i:02x}",), hostname="p101-board") for i in range(40)]
    ids = {derive_device_id(c) for c in clones}
    assert len(ids) == 40
    assert {fingerprint(c).basis for c in clones} == {"network"}


def test_same_junk_serial_differs_by_uuid_or_macs() -> None:
    """Boards from one batch all claim serial "To be filled by O.E.M."; their UUIDs or MACs tell them apart."""
    a = dataclasses.replace(OPS, product_uuid="8f1d2c3b-4a5e-11ec-8a3b-00e04c6812a1", macs=())
    b = dataclasses.replace(OPS, product_uuid="8f1d2c3b-4a5e-11ec-8a3b-00e04c6812a2", macs=())
    assert derive_device_id(a) != derive_device_id(b)
    c = dataclasses.replace(OPS, macs=("00:e0:4c:68:12:a1",))
    d = dataclasses.replace(OPS, macs=("00:e0:4c:68:12:a2",))
    assert derive_device_id(c) != derive_device_id(d)


def test_a_serial_shared_across_machines_is_disambiguated_by_macs() -> None:
    """A serial we do not know to be junk, but which a vendor reused: MACs are mixed in when it stands alone."""
    a = IdentitySources(product_serial="OPS2023001", macs=("00:e0:4c:00:00:01",))
    b = IdentitySources(product_serial="OPS2023001", macs=("00:e0:4c:00:00:02",))
    assert derive_device_id(a) != derive_device_id(b)


def test_mac_order_and_case_do_not_matter() -> None:
    a = dataclasses.replace(OPS, macs=("00:E0:4C:68:12:A1", "d0:c5:d3:44:55:66"))
    b = dataclasses.replace(OPS, macs=("d0-c5-d3-44-55-66", "00:e0:4c:68:12:a1"))
    assert derive_device_id(a) == derive_device_id(b)


def test_locally_administered_macs_are_not_identity() -> None:
    """Docker bridges, veths and randomised Wi-Fi addresses change: they never enter the id."""
    a = dataclasses.replace(OPS, macs=("00:e0:4c:68:12:a1", "02:42:ac:11:00:02"))
    b = dataclasses.replace(OPS, macs=("00:e0:4c:68:12:a1", "7a:11:22:33:44:55"))
    assert derive_device_id(a) == derive_device_id(b) == derive_device_id(OPS)


def test_os_ids_are_the_last_resort_and_hostname_splits_clones() -> None:
    bare = IdentitySources(hostname="lab1-pc01", machine_id="3d1219c7c4c5404aaa1f6d2a48adfda4")
    assert fingerprint(bare).basis == "os"
    other = dataclasses.replace(bare, hostname="lab1-pc02")
    assert derive_device_id(bare) != derive_device_id(other)
    with pytest.raises(IdentityError):
        derive_device_id(IdentitySources(hostname="x", machine_id="00000000000000000000000000000000"))


def test_slug() -> None:
    assert slug("Trường THPT Lê Lợi") == "truong-thpt-le-loi"
    assert slug("Đống Đa") == "dong-da"
    assert slug("  --  ") == ""
