"""The agent: session, heartbeats, inventory, local faults, spool and remote commands over MQTT.

All agent state changes on one thread (the one calling ``tick``); paho's callbacks only put
notes on a queue. That keeps the paho thread unblocked and makes the agent easy to drive many
times over from one scheduler thread (the demo runs 200 of them that way).

Publishing is windowed: every message is spooled first, and ``_pump`` sends the oldest unsent
rows while fewer than ``inflight_window`` are unacknowledged (paho's own unbounded queue was
seen to stall under a burst). A row created before the current connection came up is sent
marked ``replayed``: it fills history but does not move the device's ``last_seen``.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import random
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
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
from .config import AgentConfig, AgentConfigError, load_config
from .detectors import Detectors, build_rules
from .facts import FactSource, inventory_hash
from .spool import Spool, next_session

log = logging.getLogger(__name__)

CommandHandler = Callable[["Agent", dict[str, Any]], str]
UNSUPPORTED_PROTOCOL = 0x84  # MQTT 5 CONNACK: the broker speaks an older protocol


@dataclass(frozen=True, slots=True)
class _Note:
    what: str  # connected | refused | disconnected | puback | command
    value: Any = None


class Agent:
    """One device's agent. ``start`` connects; call ``tick`` regularly (``run`` does it for you)."""

    def __init__(self, config: AgentConfig, facts: FactSource, *, initial_session: int | None = None,
                 handlers: dict[str, CommandHandler] | None = None) -> None:
        self.config = config
        self.facts = facts
        if config.state_dir is not None:
            config.state_dir.mkdir(parents=True, exist_ok=True)
        self.spool = Spool(config.state_dir / "spool.db" if config.state_dir else ":memory:",
                           max_rows=config.spool_max_rows, max_age_s=config.spool_max_age_s)
        if initial_session is not None:
            self.session = initial_session
        elif config.state_dir is not None:
            self.session = next_session(config.state_dir)
        else:
            self.session = 1
        self.seq = 0
        self.detectors = Detectors(build_rules(config.thresholds, config.profile, config.services))
        self.handlers: dict[str, CommandHandler] = {**DEFAULT_HANDLERS, **(handlers or {})}
        self.restart_requested = threading.Event()
        self._notes: queue.SimpleQueue[_Note] = queue.SimpleQueue()
        self._protocol = MQTTProtocolVersion.MQTTv5
        self._connected = False
        self._connected_since = 0.0
        self._inflight: dict[int, int] = {}  # paho mid -> spool id
        self._sent_up_to = 0  # highest spool id handed to paho on this connection
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
        client_id = f"cf-{cfg.school}-{cfg.device}"[:64]
        if self._protocol == MQTTProtocolVersion.MQTTv5:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=self._protocol)
        else:
            client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=self._protocol,
                                 clean_session=False)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.password)
        if cfg.tls_ca:
            client.tls_set(ca_certs=cfg.tls_ca, cert_reqs=ssl.CERT_REQUIRED)
        will = Status(state="offline", session=self.session).to_json()
        client.will_set(self._topic(MessageKind.STATUS), will, qos=1, retain=True)
        # Jitter the backoff per machine, so a school's PCs do not reconnect in lockstep after an outage.
        client.reconnect_delay_set(min_delay=random.randint(1, 3), max_delay=random.randint(45, 90))
        client.max_inflight_messages_set(self.config.inflight_window)
        client.on_connect = lambda c, u, f, rc, p: self._notes.put(
            _Note("connected") if not rc.is_failure else _Note("refused", rc))
        client.on_disconnect = lambda c, u, f, rc, p: self._notes.put(_Note("disconnected", str(rc)))
        client.on_publish = lambda c, u, mid, rc, p: self._notes.put(_Note("puback", mid))
        client.on_message = lambda c, u, msg: self._notes.put(_Note("command", (msg.topic, msg.payload)))
        return client

    def start(self) -> None:
        """Connect in the background (paho retries until the broker is there)."""
        if self._protocol == MQTTProtocolVersion.MQTTv5:
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = self.config.session_expiry_s
            self._client.connect_async(self.config.host, self.config.port, keepalive=30, clean_start=False,
                                       properties=props)
        else:
            self._client.connect_async(self.config.host, self.config.port, keepalive=30)
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
        """Spool, then send what the window allows; the row goes when the broker acknowledges."""
        self.spool.add(self._topic(kind), kind.value, payload)
        self._pump()

    def _pump(self) -> None:
        """Hand the oldest unsent rows to paho while the in-flight window has room."""
        if not self._connected:
            return
        room = self.config.inflight_window - len(self._inflight)
        while room > 0:
            rows = self.spool.pending(limit=min(room, 500), after_id=self._sent_up_to)
            if not rows:
                return
            for row in rows:
                payload = row.payload
                if "replayed" in payload and row.created_at < self._connected_since:
                    payload = {**payload, "replayed": True}
                info = self._client.publish(row.topic, _encode(row.topic, payload), qos=1)
                self._sent_up_to = row.id
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    log.warning("publish failed (%s); will retry after reconnect", info.rc)
                    return
                self._inflight[info.mid] = row.id
                self.published += 1
                room -= 1

    def collect_facts(self) -> dict[str, Any]:
        """Heartbeat figures plus the live facts the detectors need."""
        figures = self.facts.heartbeat()
        return {**figures, **self.facts.live_facts(self.config.services)}

    def send_heartbeat(self) -> dict[str, Any]:
        """Collect figures, publish a heartbeat, and publish any fault transitions they cause."""
        facts = self.collect_facts()
        wire = {k: facts[k] for k in ("uptime_s", "cpu_pct", "mem_pct", "disk", "temp_c") if k in facts}
        payload = Heartbeat(session=self.session, seq=self._next_seq(), ts=time.time(), **wire)
        self._send(MessageKind.HEARTBEAT, payload.model_dump(mode="json", exclude_none=True))
        for change in self.detectors.check(facts):
            self.send_event(change.code, change.severity, change.state, change.detail)
        return facts

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

    def reload_config(self) -> str:
        """Re-read thresholds and watched services from the config file (SIGHUP, ``run_check``)."""
        path = self.config.config_path
        if path is None:
            return "no config file to reload"
        try:
            fresh = load_config(path)
        except AgentConfigError as exc:
            log.error("config not reloaded: %s", exc)
            return f"config not reloaded: {exc}"
        self.config = self.config.model_copy(update={"thresholds": fresh.thresholds, "services": fresh.services})
        for change in self.detectors.replace_rules(build_rules(fresh.thresholds, self.config.profile,
                                                               fresh.services)):
            self.send_event(change.code, change.severity, change.state, change.detail)
        log.info("config reloaded from %s", path)
        return "config reloaded"

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
        self._pump()

    def run(self, stop: threading.Event, reload: threading.Event | None = None) -> None:
        """Run until ``stop`` (or a ``restart_agent`` command) is set; ``reload`` re-reads the config."""
        self.start()
        failing = False
        try:
            while not stop.is_set() and not self.restart_requested.is_set():
                try:
                    if reload is not None and reload.is_set():
                        reload.clear()
                        self.reload_config()
                    self.tick()
                    if failing:
                        log.info("agent loop recovered")
                    failing = False
                except Exception:  # a bad reading or a full disk must not end the agent
                    if not failing:
                        log.exception("agent loop step failed; continuing")
                    failing = True
                stop.wait(min(0.5, self.config.heartbeat_interval_s))
            self._drain_notes(time.time())  # send the last acks (e.g. restart_agent's 'done')
            deadline = time.monotonic() + 3
            while self._inflight and time.monotonic() < deadline:
                time.sleep(0.05)
                self._drain_notes(time.time())
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
                self._inflight.clear()  # what paho had in flight is still in the spool: resent in order
                self._sent_up_to = 0
            elif note.what == "refused":
                self._on_refused(note.value)
            elif note.what == "command":
                self._on_command(*note.value, now=now)

    def _on_refused(self, reason: Any) -> None:
        if getattr(reason, "value", None) == UNSUPPORTED_PROTOCOL and self._protocol == MQTTProtocolVersion.MQTTv5:
            log.warning("broker does not speak MQTT 5; falling back to MQTT 3.1.1")
            self._client.loop_stop()
            self._protocol = MQTTProtocolVersion.MQTTv311
            self._client = self._make_client()
            self.start()
            return
        log.error("broker refused %s/%s: %s", self.config.school, self.config.device, reason)

    def _on_connected(self) -> None:
        self._connected = True
        self._connected_since = time.time()
        self._inflight.clear()
        self._sent_up_to = 0
        online = Status(state="online", session=self.session, ts=time.time(), agent=__version__,
                        profile=self.config.profile)
        self._client.publish(self._topic(MessageKind.STATUS), online.to_json(), qos=1, retain=True)
        self._client.subscribe(self._topic(MessageKind.CMD), qos=1)
        self._sent_inventory_hash = None  # full state on every (re)connect
        self._next_inventory_check = 0.0
        self._pump()

    # ---- commands ---------------------------------------------------------------------------
    def _on_command(self, topic: str, raw: bytes, now: float) -> None:
        try:
            command = decode(topic, raw).payload
        except WireError as exc:
            log.warning("rejected command on %s: %s", topic, exc)
            command_id = _salvage_id(raw)
            if command_id:
                self._ack(command_id, "rejected", f"{exc.reason}: {exc.detail}"[:500])
            return
        assert isinstance(command, Command)
        if not self.spool.mark_command(command.id, now):
            log.info("command %s delivered again; it ran already", command.id)
            return
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
    data = json.dumps(payload, separators=(",", ":")).encode()
    if len(data) > MAX_PAYLOAD_BYTES:
        raise WireError("oversized", f"{topic}: {len(data)} bytes")
    return data


def _salvage_id(raw: bytes) -> str | None:
    try:
        value = json.loads(raw).get("id")
    except Exception:
        return None
    return value if isinstance(value, str) and 8 <= len(value) <= 64 and value.replace("-", "").isalnum() else None


def _collect_inventory(agent: Agent, _args: dict[str, Any]) -> str:
    agent.send_inventory(force=True)
    return "inventory sent"


def _run_check(agent: Agent, _args: dict[str, Any]) -> str:
    reloaded = agent.reload_config()
    agent.send_heartbeat()
    return f"{reloaded}; active faults: {', '.join(sorted(agent.detectors.active)) or 'none'}"


def _message(agent: Agent, args: dict[str, Any]) -> str:
    text = str(args.get("text", "")).strip()[:500]
    if not text:
        raise ValueError("message needs a non-empty 'text'")
    return agent.facts.notify(text, agent.config.dry_run)


def _power(action: str) -> CommandHandler:
    def handler(agent: Agent, args: dict[str, Any]) -> str:
        if not agent.config.allow_power_commands:
            raise PermissionError("power commands are disabled in this agent's configuration")
        delay = int(args.get("delay_s", 60))
        if not 0 <= delay <= 86400:
            raise ValueError("delay_s must be between 0 and 86400")
        notice = args.get("notice")
        return agent.facts.power(action, delay, str(notice)[:200] if notice else None, agent.config.dry_run)

    return handler


def _restart_agent(agent: Agent, _args: dict[str, Any]) -> str:
    if agent.config.dry_run:
        return "dry run: agent restart"
    agent.restart_requested.set()  # run() returns; the service manager (systemd, WinSW) starts it again
    return "restarting"


DEFAULT_HANDLERS: dict[str, CommandHandler] = {
    "collect_inventory": _collect_inventory,
    "run_check": _run_check,
    "message": _message,
    "reboot": _power("reboot"),
    "shutdown": _power("shutdown"),
    "restart_agent": _restart_agent,
}


def exec_self() -> None:
    """Replace this process with a fresh agent (used when no service manager restarts us)."""
    os.execv(sys.executable, [sys.executable, *sys.argv])
