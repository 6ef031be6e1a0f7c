"""Mosquitto password and ACL files from the enrolled devices (DESIGN §8).

A device may publish only under its own topic and read only its own ``cmd``; the controller's
account reads every agent topic and writes commands. A smart plug (``watched_by`` a plug dialect)
may publish only under its own dialect topics (Tasmota ``tele/<t>/…``, ``stat/<t>/…``; Shelly
``<prefix>/online``, ``status/…``, ``events/…`` and its RPC answers) and read only its own command
topic (``cmnd/<t>/…``, ``<prefix>/rpc``); the controller reads them all and writes their commands.
Plugs get their login from ``issue_plug_credential`` (the firmware's MQTT user and password).
The store keeps only Mosquitto-compatible ``$7$`` hashes, so the files are written without anyone
knowing a device's password. Mosquitto re-reads both files on SIGHUP: an enrolment or a revocation
takes effect without a restart.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import signal
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from classfleet_wire import MessageKind
from classfleet_wire.topics import TOPIC_ROOT

from .adapters.registry import ADAPTERS
from .enrolment import hash_password
from .store.models import AuditLog, Device, DeviceCredential

AGENT_WRITES = (MessageKind.STATUS, MessageKind.HEARTBEAT, MessageKind.INVENTORY, MessageKind.EVENT,
                MessageKind.CMD_ACK)


@dataclass(frozen=True, slots=True)
class BrokerFiles:
    """What was written."""

    password_file: Path
    acl_file: Path
    devices: int


def render(session: Session, controller_user: str, controller_password: str) -> tuple[str, str]:
    """The password file and the ACL file, as text."""
    rows = session.execute(
        select(DeviceCredential.username, DeviceCredential.password_hash, Device.school_id, Device.uid,
               Device.watched_by, Device.mgmt_address)
        .join(Device, Device.id == DeviceCredential.device_id)
        .where(DeviceCredential.revoked_at.is_(None), Device.lifecycle != "retired")
        .order_by(DeviceCredential.username)
    ).all()
    passwords = [f"{controller_user}:{hash_password(controller_password)}"]
    acl = [
        "# Written by 'classfleet broker acl'; do not edit: re-run it after enrolments and revocations.",
        f"user {controller_user}",
        f"topic read {TOPIC_ROOT}/#",
        f"topic write {TOPIC_ROOT}/+/+/{MessageKind.CMD.value}",
    ]
    for adapter in ADAPTERS.values():
        reads, writes = adapter.controller_acl()
        acl.extend(f"topic read {t}" for t in reads)
        acl.extend(f"topic write {t}" for t in writes)
    acl.append("")
    for username, password_hash, school, uid, watched_by, address in rows:
        passwords.append(f"{username}:{password_hash}")
        acl.append(f"user {username}")
        if watched_by in ADAPTERS:
            if address:  # a plug with no address yet may log in, and do nothing
                writes, reads = ADAPTERS[watched_by].acl(address)
                acl.extend(f"topic write {t}" for t in writes)
                acl.extend(f"topic read {t}" for t in reads)
        else:
            acl.extend(f"topic write {TOPIC_ROOT}/{school}/{uid}/{kind.value}" for kind in AGENT_WRITES)
            acl.append(f"topic read {TOPIC_ROOT}/{school}/{uid}/{MessageKind.CMD.value}")
        acl.append("")
    return "\n".join(passwords) + "\n", "\n".join(acl)


def write(session: Session, out_dir: Path, controller_user: str, controller_password: str,
          reload_pid_file: Path | None = None) -> BrokerFiles:
    """Write both files atomically (mode 0640) and, if given a pid file, SIGHUP the broker."""
    passwords, acl = render(session, controller_user, controller_password)
    out_dir.mkdir(parents=True, exist_ok=True)
    password_file, acl_file = out_dir / "classfleet.passwd", out_dir / "classfleet.acl"
    for path, text in ((password_file, passwords), (acl_file, acl)):
        tmp = path.with_suffix(path.suffix + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.replace(tmp, path)
    if reload_pid_file is not None:
        os.kill(int(reload_pid_file.read_text().strip()), signal.SIGHUP)
    return BrokerFiles(password_file, acl_file, passwords.count("\n") - 1)


class PlugCredentialError(ValueError):
    """A plug login that cannot be issued, with the reason."""


def issue_plug_credential(session: Session, school: str, uid: str, actor: str = "cli",
                          now: dt.datetime | None = None) -> tuple[str, str]:
    """A new MQTT login for a registered plug: (username, password), the password shown once and stored
    hashed; issuing again rotates it. Re-run ``classfleet broker acl`` for it to take effect."""
    now = now or dt.datetime.now(dt.UTC)
    device = session.scalar(select(Device).where(Device.school_id == school, Device.uid == uid))
    if device is None:
        raise PlugCredentialError(f"no device {uid!r} in school {school!r}")
    if device.watched_by not in ADAPTERS or not device.mgmt_address:
        raise PlugCredentialError(f"device {uid!r} is not a smart plug with an address (watched_by "
                                  f"{' or '.join(ADAPTERS)} and mgmt_address)")
    username, password = f"{school}.{uid}", secrets.token_urlsafe(24)
    credential = session.get(DeviceCredential, device.id)
    if credential is None:
        session.add(DeviceCredential(device_id=device.id, username=username, password_hash=hash_password(password),
                                     created_at=now))
    else:
        credential.password_hash, credential.revoked_at, credential.created_at = hash_password(password), None, now
    session.add(AuditLog(at=now, actor=actor, action="device.plug_credential", target=f"device:{school}/{uid}",
                         detail={"watched_by": device.watched_by, "address": device.mgmt_address}))
    return username, password
