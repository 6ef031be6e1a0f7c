"""A device id that survives reinstalls and never merges two machines: firmware first, junk refused.

Order of trust: the id given at enrolment wins. Otherwise the id is hashed from the firmware's
serials and SMBIOS UUID (they survive a reinstall), with the MAC set mixed in when fewer than
two independent firmware values are usable, so machines sharing one serial still differ. With
no firmware values at all, the MAC set alone. The OS instance ids (``/etc/machine-id``,
MachineGuid, the machine SID) are the last resort, because disk images copy them: they are
combined with the hostname, which imaging tools set per machine.

The readable prefix defaults to the vendor, not the hostname: Windows picks a new random
hostname (``DESKTOP-XXXXXXX``) at every install, which would move the id.
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass
from typing import Literal

from classfleet_wire import is_valid_id

from .platform.base import IdentitySources, is_hardware_mac, normalize_mac

HASH_CHARS = 12  # base32: 60 bits, far beyond a province's few tens of thousands of machines
MAX_PREFIX = 64 - HASH_CHARS - 1

# Placeholders firmware vendors leave in SMBIOS, compared case-folded with spaces collapsed.
JUNK_VALUES = frozenset(v.casefold() for v in (
    "Default string", "Default_String", "$(DEFAULT_STRING)", "Default", "To be filled by O.E.M.",
    "To Be Filled By O.E.M", "To be filled by OEM", "Filled by O.E.M.", "O.E.M.", "OEM", "OEM_Serial",
    "System Serial Number", "System Product Name", "System manufacturer", "System Version", "Chassis Serial Number",
    "Base Board Serial Number", "Board Serial Number", "Type2 - Board Serial Number", "Type1ProductConfigId",
    "SerialNumber", "Serial Number", "Serial", "SN", "S/N", "None", "Null", "N/A", "NA", "Not Applicable",
    "Not Specified", "Not Available", "Not Settable", "Not Present", "Unknown", "Invalid", "Empty", "Undefined",
    "No Asset Information", "No Asset Tag", "Asset Tag", "BSN12345678901234567", "MB-1234567890", "Whitebook",
    "0123456789", "03000200-0400-0500-0006-000700080009", "00020003-0004-0005-0006-000700080009",
    "12345678-1234-5678-90ab-cddeefaabbcc", "01234567-8901-2345-6789-012345678901",
))
JUNK_WORDS = re.compile(r"\bo\.?e\.?m\b|filled by|default string|serial number|not (specified|applicable|available)")
SEQUENCES = ("0123456789" * 3, "9876543210" * 3, "0123456789abcdef" * 2, "abcdefghijklmnopqrstuvwxyz")
UUID_RE = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")

Basis = Literal["hardware", "hardware+network", "network", "os"]


class IdentityError(ValueError):
    """Nothing on this machine is stable enough to name it: enrol it with an explicit id."""


@dataclass(frozen=True, slots=True)
class Fingerprint:
    """The hashed part of a device id and what it was derived from (``basis`` tells how much to trust it)."""

    digest: str
    basis: Basis
    used: tuple[str, ...]


def _norm(value: str | None) -> str:
    return " ".join((value or "").replace("\x00", " ").split()).casefold()


def is_placeholder(value: str | None) -> bool:
    """True for empty or known placeholder text (vendor and model names may be short: "HP" is fine)."""
    text = _norm(value)
    return not text or text in JUNK_VALUES or bool(JUNK_WORDS.search(text))


def usable(value: str | None, *, serial: bool = False) -> str | None:
    """The firmware value as given, or None if it is a placeholder (for serials: any junk)."""
    bad = is_junk(value) if serial else is_placeholder(value)
    return None if bad else value


def is_junk(value: str | None) -> bool:
    """True for placeholder serials: known strings, one repeated character, counting sequences, too short."""
    text = _norm(value)
    if not text or text in JUNK_VALUES or JUNK_WORDS.search(text):
        return True
    alnum = re.sub(r"[^0-9a-z]", "", text)
    if len(alnum) < 4 or len(set(alnum)) <= 1:
        return True
    return any(alnum in seq for seq in SEQUENCES)


def valid_serial(value: str | None) -> str | None:
    """The serial normalised for hashing (case and spacing ignored), or None if it is junk."""
    return None if is_junk(value) else _norm(value)


def valid_uuid(value: str | None) -> str | None:
    """The SMBIOS UUID in lower case without dashes, or None for junk (all 0, all F, vendor placeholders)."""
    text = _norm(value)
    if not UUID_RE.fullmatch(text) or text in JUNK_VALUES:
        return None
    hexes = text.replace("-", "")
    if len(set(hexes)) <= 2 or any(hexes in seq or seq.startswith(hexes) for seq in SEQUENCES):
        return None
    return hexes


def valid_os_id(value: str | None) -> str | None:
    """machine-id, MachineGuid or SID, normalised; None when empty or a placeholder."""
    text = _norm(value)
    if not text or text in ("uninitialized", "none") or len(set(re.sub(r"[^0-9a-z]", "", text))) <= 1:
        return None
    return text


def physical_macs(sources: IdentitySources) -> tuple[str, ...]:
    """The burnt-in MACs, normalised and sorted (the platform filters too; this guards hand-made sources)."""
    macs = {normalize_mac(m) for m in sources.macs}
    return tuple(sorted(m for m in macs if m and is_hardware_mac(m)))


def fingerprint(sources: IdentitySources) -> Fingerprint:
    """Hash the most stable facts available; raises ``IdentityError`` when there are none."""
    hardware: dict[str, str] = {}
    for name in ("product_serial", "board_serial"):
        serial = valid_serial(getattr(sources, name))
        if serial and serial not in hardware.values():  # some vendors copy one serial into both fields
            hardware[name] = serial
    uuid = valid_uuid(sources.product_uuid)
    if uuid:
        hardware["product_uuid"] = uuid
    macs = physical_macs(sources)
    parts: dict[str, str] = dict(hardware)
    if len(hardware) >= 2:
        basis: Basis = "hardware"
    elif hardware and macs:
        basis = "hardware+network"
        parts["macs"] = ",".join(macs)
    elif hardware:
        basis = "hardware"
    elif macs:
        basis = "network"
        parts["macs"] = ",".join(macs)
    else:
        os_ids = {k: v for k in ("machine_id", "os_sid") if (v := valid_os_id(getattr(sources, k)))}
        if not os_ids:
            raise IdentityError("no usable serial, UUID, MAC address or machine id on this machine")
        basis = "os"
        parts.update(os_ids)
        host = _norm(sources.hostname)
        if host:
            parts["hostname"] = host  # images copy the OS ids; the imaging tool renames each machine
    material = "\n".join(f"{k}={v}" for k, v in sorted(parts.items())).encode()
    digest = base64.b32encode(hashlib.sha256(b"classfleet-device-v1\n" + material).digest()).decode()
    return Fingerprint(digest=digest[:HASH_CHARS].lower(), basis=basis, used=tuple(sorted(parts)))


def slug(text: str | None, limit: int = MAX_PREFIX) -> str:
    """Lower-case ``[a-z0-9-]`` words from free text (Vietnamese diacritics dropped), at most ``limit`` long."""
    import unicodedata

    ascii_text = unicodedata.normalize("NFKD", (text or "").replace("đ", "d").replace("Đ", "D"))
    ascii_text = ascii_text.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")[:limit].strip("-")


def default_prefix(sources: IdentitySources) -> str:
    """The vendor's first word (``dell``, ``hp``, ``viewsonic``), or ``dev`` when firmware says nothing useful."""
    vendor = sources.vendor
    if vendor and not is_placeholder(vendor):
        word = slug(vendor.split()[0] if vendor.split() else vendor, 16)
        if word:
            return word
    return "dev"


def derive_device_id(sources: IdentitySources, *, enrolled_id: str | None = None, prefix: str | None = None) -> str:
    """The device id: the enrolment's if given, else ``<prefix>-<hash>`` matching ``[a-z0-9_-]{1,64}``."""
    if enrolled_id is not None:
        if not is_valid_id(enrolled_id):
            raise ValueError(f"enrolled id {enrolled_id!r} does not match [a-z0-9_-]{{1,64}}")
        return enrolled_id
    head = slug(prefix) if prefix is not None else default_prefix(sources)
    digest = fingerprint(sources).digest
    return f"{head}-{digest}" if head else digest
