"""The agent: session, heartbeats, inventory, local faults, spool and remote commands over MQTT.

All agent state changes on one thread (the one calling ``tick``); paho's callbacks only put
notes on a queue. That keeps the paho thread unblocked and makes the agent easy to drive many
times over from one scheduler thread (the demo runs 200 of them that way).
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from classfleet_wire import (
    Command,
    CommandAck,
    Event,
    Heartbeat,
    Inventory,
    MessageKind,
    Status,
    WireError,
    build_topic,
    decode,
)
from classfleet_wire.models import MAX_PAYLOAD_BYTES

from . import __version__
from .detectors import Detectors
from .facts import FactSource, inventory_hash
from .spool import Spool, next_session

log = logging.getLogger(__name__)

CommandHandler = Callable[["Agent", dict[str, Any]], str]


@dataclass
class AgentConfig:
    """What one agent needs to know; built by the CLI from flags or a TOML file."""

    school: str
    device: str
    host: str = "127.0.0.1"
    port: int = 1883
    username: str | None = None
    password: str | None = None
    tls_ca: str | None = None
    profile: str = "pc"
    state_dir: Path | None = None  # None: in-memory spool and session (simulations only)
    heartbeat_interval_s: float = 60.0
    inventory_check_interval_s: float = 3600.0
    session_expiry_s: int = 7 * 24 * 3600
    allow_power_commands: bool = False
    handlers: dict[str, CommandHandler] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Note:
    what: str  # connected | disconnected | puback | command
    value: Any = None


class Agent:
    """One device's agent. ``start`` connects; call ``tick`` regularly (``run`` does it for you)."""

    def __init__(self, config: AgentConfig, facts: FactSource, *, initial_session: int | None = None) -> None:
        self.config = config
        self.facts = facts
        if config.state_dir is not None:
            config.state_dir.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(config.state_dir / "spool.db" if config.state_dir else ":memory:")
        if initial_session is not None:
            self.session = initial_session
        elif config.state_dir is not None:
            self.session = next_session(config.state_dir)
        else:
            self.session = 1
        self.seq = 0
        self.detectors = Detectors()
        self.handlers: dict[str, CommandHandler] = {**DEFAULT_HANDLERS, **config.handlers}
        self._notes: queue.SimpleQueue[_Note] = queue.SimpleQueue()
        self._connected = False
        self._inflight: dict[int, int] = {}  # paho mid -> spool id
        self._scheduled: list[Command] = []
        self._next_heartbeat = 0.0
        self._next_inventory_check = 0.0
        self._sent_inventory_hash: str | None = None
        self._client = self._make_client()
        self.published = 0

    # ---- connection -------------------------------------------------------------------------
    def _topic(self, kind: MessageKind) -> str:
        return build_topic(self.config.school, self.config.device, kind)

    def _make_client(self) -> mqtt.Client:
        cfg = self.config
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"cf-{cfg.school}-{cfg.device}"[:64],
                             protocol=MQTTProtocolVersion.MQTTv5)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls_ca:
            client.tls_set(ca_certs=cfg.tls_ca, cert_reqs=ssl.CERT_REQUIRED)
        will = Status(state="offline", session=self.session).to_json()
        client.will_set(self._topic(MessageKind.STATUS), will, qos=1, retain=True)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.max_queued_messages_set(0)
        client.on_connect = lambda c, u, f, rc, p: self._notes.put(
            _Note("connected") if not rc.is_failure else _Note("refused", str(rc)))
        client.on_disconnect = lambda c, u, f, rc, p: self._notes.put(_Note("disconnected", str(rc)))
        client.on_publish = lambda c, u, mid, rc, p: self._notes.put(_Note("puback", mid))
        client.on_message = lambda c, u, msg: self._notes.put(_Note("command", (msg.topic, msg.payload)))
        return client

    def start(self) -> None:
        """Connect in the background (paho retries until the broker is there)."""
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.config.session_expiry_s
        self._client.connect_async(self.config.host, self.config.port, keepalive=30, clean_start=False,
                                   properties=props)
        self._client.loop_start()

    def stop(self, graceful: bool = True) -> None:
        """Publish offline (graceful) and disconnect; the spool keeps what was not acknowledged."""
        if graceful and self._connected:
            info = self._client.publish(self._topic(MessageKind.STATUS),
                                        Status(state="offline", session=self.session).to_json(), qos=1, retain=True)
            info.wait_for_publish(2)
        self._client.disconnect()
        self._client.loop_stop()
        self.spool.close()

    @property
    def connected(self) -> bool:
        """True while the broker connection is up (as last seen by ``tick``)."""
        return self._connected

    # ---- publishing -------------------------------------------------------------------------
    def _next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def _send(self, kind: MessageKind, payload: dict[str, Any]) -> None:
        """Spool, then publish if connected; the spool row goes when the broker acknowledges."""
        topic = self._topic(kind)
        row_id = self.spool.add(topic, payload)
        if self._connected:
            self._publish_row(row_id, topic, payload)

    def _publish_row(self, row_id: int, topic: str, payload: dict[str, Any]) -> None:
        data = _encode(topic, payload)
        info = self._client.publish(topic, data, qos=1)
        if info.rc == mqtt.MQTT_ERR_SUCCESS or info.rc == mqtt.MQTT_ERR_NO_CONN:
            self._inflight[info.mid] = row_id
            self.published += 1

    def _flush_spool(self) -> None:
        """Send what waited while the broker was away, marked replayed."""
        inflight_ids = set(self._inflight.values())
        after = 0
        while True:
            rows = self.spool.pending(limit=500, after_id=after)
            if not rows:
                return
            for row in rows:
                after = row.id
                if row.id in inflight_ids:
                    continue  # paho resends these itself on a resumed session
                payload = dict(row.payload)
                if "replayed" in payload:
                    payload["replayed"] = True
                self._publish_row(row.id, row.topic, payload)

    def send_heartbeat(self) -> dict[str, Any]:
        """Collect figures, publish a heartbeat, and publish any fault transitions they cause."""
        figures = self.facts.heartbeat()
        payload = Heartbeat(session=self.session, seq=self._next_seq(), ts=time.time(), **figures)
        self._send(MessageKind.HEARTBEAT, payload.model_dump(mode="json", exclude_none=True))
        for change in self.detectors.check(figures):
            self.send_event(change.code, change.severity, change.state, change.detail)
        return figures

    def send_event(self, code: str, severity: str, state: str, detail: dict[str, Any] | None = None) -> None:
        """Publish one fault raise or clear."""
        event = Event(session=self.session, seq=self._next_seq(), ts=time.time(), code=code,
                      severity=severity, state=state, detail=detail or {})  # type: ignore[arg-type]
        self._send(MessageKind.EVENT, event.model_dump(mode="json", exclude_none=True))

    def send_inventory(self, force: bool = False) -> bool:
        """Publish inventory if its content hash changed (or ``force``); True if sent."""
        inv = self.facts.inventory()
        digest = inventory_hash(inv)
        if not force and digest == self._sent_inventory_hash:
            return False
        payload = Inventory(session=self.session, seq=self._next_seq(), ts=time.time(), hash=digest, **inv)
        self._send(MessageKind.INVENTORY, payload.model_dump(mode="json", exclude_none=True))
        self._sent_inventory_hash = digest
        return True

    def _ack(self, command_id: str, state: str, detail: str | None = None) -> None:
        ack = CommandAck(id=command_id, state=state, ts=time.time(), detail=detail,  # type: ignore[arg-type]
                         session=self.session, seq=self._next_seq())
        self._send(MessageKind.CMD_ACK, ack.model_dump(mode="json", exclude_none=True))

    # ---- the loop ---------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> None:
        """Handle what paho reported, run due commands, and send what is due."""
        now = time.time() if now is None else now
        self._drain_notes(now)
        self._run_due_commands(now)
        if now >= self._next_heartbeat:
            self._next_heartbeat = now + self.config.heartbeat_interval_s
            self.send_heartbeat()
        if now >= self._next_inventory_check:
            self._next_inventory_check = now + self.config.inventory_check_interval_s
            self.send_inventory()

    def run(self, stop: threading.Event) -> None:
        """Run until ``stop`` is set."""
        self.start()
        failing = False
        try:
            while not stop.is_set():
                try:
                    self.tick()
                    if failing:
                        log.info("agent loop recovered")
                    failing = False
                except Exception:  # a bad reading or a full disk must not end the agent
                    if not failing:
                        log.exception("agent loop step failed; continuing")
                    failing = True
                stop.wait(min(1.0, self.config.heartbeat_interval_s))
        finally:
            self.stop()

    def _drain_notes(self, now: float) -> None:
        while True:
            try:
                note = self._notes.get_nowait()
            except queue.Empty:
                return
            if note.what == "puback":
                row_id = self._inflight.pop(note.value, None)
                if row_id is not None:
                    self.spool.remove(row_id)
            elif note.what == "connected":
                self._on_connected()
            elif note.what == "disconnected":
                if self._connected:
                    log.warning("%s/%s: broker connection lost (%s); spooling", self.config.school,
                                self.config.device, note.value)
                self._connected = False
            elif note.what == "refused":
                log.error("broker refused %s/%s: %s", self.config.school, self.config.device, note.value)
            elif note.what == "command":
                self._on_command(*note.value, now=now)

    def _on_connected(self) -> None:
        self._connected = True
        online = Status(state="online", session=self.session, ts=time.time(), agent=__version__,
                        profile=self.config.profile)  # type: ignore[arg-type]
        self._client.publish(self._topic(MessageKind.STATUS), online.to_json(), qos=1, retain=True)
        self._client.subscribe(self._topic(MessageKind.CMD), qos=1)
        self._flush_spool()
        self._sent_inventory_hash = None  # full state on every (re)connect
        self._next_inventory_check = 0.0

    # ---- commands ---------------------------------------------------------------------------
    def _on_command(self, topic: str, raw: bytes, now: float) -> None:
        try:
            command = decode(topic, raw).payload
        except WireError as exc:
            log.warning("rejected command on %s: %s", topic, exc)
            command_id = _salvage_id(raw)
            if command_id:
                self._ack(command_id, "rejected", exc.reason)
            return
        assert isinstance(command, Command)
        if not self.spool.mark_command(command.id, now):
            return  # redelivered: handled already
        if command.is_expired(now):
            self._ack(command.id, "rejected", "expired")
            return
        if command.action not in self.handlers:
            self._ack(command.id, "rejected", f"action {command.action!r} not allowed on this device")
            return
        self._ack(command.id, "accepted")
        self._scheduled.append(command)
        self._run_due_commands(now)

    def _run_due_commands(self, now: float) -> None:
        waiting = []
        for command in self._scheduled:
            if command.not_before is not None and now < command.not_before:
                waiting.append(command)
                continue
            if command.is_expired(now):
                self._ack(command.id, "failed", "expired before it could run")
                continue
            try:
                detail = self.handlers[command.action](self, command.args)
            except Exception as exc:  # a failing action is reported, never fatal
                self._ack(command.id, "failed", f"{type(exc).__name__}: {exc}"[:500])
            else:
                self._ack(command.id, "done", detail)
        self._scheduled = waiting


def _encode(topic: str, payload: dict[str, Any]) -> bytes:
    import json

    data = json.dumps(payload, separators=(",", ":")).encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise WireError("oversized", f"{topic}: {len(data)} bytes")
    return data


def _salvage_id(raw: bytes) -> str | None:
    import json

    try:
        value = json.loads(raw).get("id")
    except Exception:
        return None
    return value if isinstance(value, str) and 8 <= len(value) <= 64 and value.replace("-", "").isalnum() else None


def _collect_inventory(agent: Agent, _args: dict[str, Any]) -> str:
    agent.send_inventory(force=True)
    return "inventory sent"


def _run_check(agent: Agent, _args: dict[str, Any]) -> str:
    agent.send_heartbeat()
    return f"checked; active faults: {sorted(agent.detectors.active) or 'none'}"


def _message(agent: Agent, args: dict[str, Any]) -> str:
    text = str(args.get("text", ""))[:500]
    log.warning("message from the IT office for %s: %s", agent.config.device, text)
    return "shown"


def _power(action: str) -> CommandHandler:
    def handler(agent: Agent, args: dict[str, Any]) -> str:
        if not agent.config.allow_power_commands:
            raise PermissionError("power commands are disabled in this agent's configuration")
        import platform
        import subprocess

        delay = int(args.get("delay_s", 60))
        if platform.system() == "Windows":
            argv = ["shutdown", "/r" if action == "reboot" else "/s", "/t", str(delay)]
        else:
            argv = ["shutdown", "-r" if action == "reboot" else "-h", f"+{max(1, delay // 60)}"]
        subprocess.run(argv, check=True, timeout=30)  # noqa: S603 - fixed argv
        return f"{action} in {delay}s"

    return handler


DEFAULT_HANDLERS: dict[str, CommandHandler] = {
    "collect_inventory": _collect_inventory,
    "run_check": _run_check,
    "message": _message,
    "reboot": _power("reboot"),
    "shutdown": _power("shutdown"),
}
