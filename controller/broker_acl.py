"""Mosquitto password and ACL files from the enrolled devices (DESIGN §8).

A device may publish only under its own topic and read only its own ``cmd``; the controller's
account reads every agent topic and writes commands. The store keeps only Mosquitto-compatible
``$7$`` hashes, so the files are written without anyone knowing a device's password. Mosquitto
re-reads both files on SIGHUP: an enrolment or a revocation takes effect without a restart.
"""

from __future__ import annotations

import os
import signal
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from classfleet_wire import MessageKind
from classfleet_wire.topics import TOPIC_ROOT

from .enrolment import hash_password
from .store.models import Device, DeviceCredential

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
        select(DeviceCredential.username, DeviceCredential.password_hash, Device.school_id, Device.uid)
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
        "",
    ]
    for username, password_hash, school, uid in rows:
        passwords.append(f"{username}:{password_hash}")
        acl.append(f"user {username}")
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
