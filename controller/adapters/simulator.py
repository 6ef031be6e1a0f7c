"""Simulated smart plugs for tests and the demo: a real MQTT client each, publishing what a Tasmota or a
Shelly Gen2 plug publishes (see ``tasmota`` and ``shelly`` for the documented topics and payloads) and
obeying their switch commands like the real firmware. ``drop()`` cuts the connection without a DISCONNECT,
as a plug losing power does, so the broker publishes its Last Will.
"""

from __future__ import annotations

import json
import threading
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion


class SimulatedPlug:
    """One plug powering an air conditioner that draws ``load_w`` while on."""

    def __init__(self, dialect: str, address: str, host: str, port: int, *, load_w: float = 850.0,
                 energy_kwh: float = 12.0, obey: bool = True, username: str | None = None,
                 password: str | None = None) -> None:
        if dialect not in ("tasmota", "shelly"):
            raise ValueError(f"unknown plug dialect {dialect!r}")
        self.dialect, self.address, self.load_w, self.energy_kwh = dialect, address, load_w, energy_kwh
        self.obey = obey  # False: connected, but ignores commands (a plug stuck in a bad state)
        self.on = True
        self.commands: list[str] = []  # what it was told to do, for tests
        self._lock = threading.Lock()
        self._host, self._port = host, port
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sim-{dialect}-{address}",
                                   protocol=MQTTProtocolVersion.MQTTv311)
        if username:
            self._client.username_pw_set(username, password)
        will_topic, will_payload = self._availability(False)
        self._client.will_set(will_topic, will_payload, qos=1, retain=True)
        self._client.on_connect = self._on_connect
        self._client.on_message = self._on_message

    @property
    def power_w(self) -> float:
        """What it draws now."""
        return self.load_w if self.on else 0.0

    def start(self) -> None:
        """Connect (the birth message and first report follow on connect)."""
        self._client.connect(self._host, self._port, keepalive=30)
        self._client.loop_start()

    def stop(self) -> None:
        """A clean disconnect: the broker discards the Will (like a reconfiguration, not a failure)."""
        topic, payload = self._availability(False)
        self._client.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
        self._client.disconnect()
        self._client.loop_stop()

    def drop(self) -> None:
        """Lose the connection abruptly (power cut): the broker publishes the Last Will."""
        self._client.loop_stop()
        sock = self._client.socket()
        if sock is not None:
            sock.close()

    def report(self) -> None:
        """The periodic report (Tasmota's TelePeriod STATE and SENSOR; Shelly's status update)."""
        with self._lock:
            self.energy_kwh += self.power_w / 1000 / 3600 * 60  # as if a minute had passed
            messages = self._reports()
        for topic, payload in messages:
            self._client.publish(topic, payload, qos=1)

    def press(self) -> None:
        """Someone presses the plug's button: the relay toggles and the plug says so."""
        with self._lock:
            self.on = not self.on
            messages = self._changed("Button")
        for topic, payload in messages:
            self._client.publish(topic, payload, qos=1)

    # What the firmware publishes.
    def _availability(self, online: bool) -> tuple[str, str]:
        if self.dialect == "tasmota":
            return f"tele/{self.address}/LWT", "Online" if online else "Offline"
        return f"{self.address}/online", "true" if online else "false"

    def _reports(self) -> list[tuple[str, str]]:
        if self.dialect == "tasmota":
            now = time.strftime("%Y-%m-%dT%H:%M:%S")
            state = {"Time": now, "Uptime": "0T00:10:11", "UptimeSec": 611, "Heap": 24, "SleepMode": "Dynamic",
                     "Sleep": 50, "LoadAvg": 19, "MqttCount": 1, "POWER": "ON" if self.on else "OFF",
                     "Wifi": {"AP": 1, "SSId": "truong-hoc", "RSSI": 44, "Signal": -78, "LinkCount": 1}}
            current = round(self.power_w / 230, 3)
            energy = {"TotalStartTime": "2025-08-15T07:00:00", "Total": round(self.energy_kwh, 3), "Yesterday": 6.1,
                      "Today": 2.4, "Period": 14, "Power": self.power_w, "ApparentPower": self.power_w,
                      "ReactivePower": 0, "Factor": 1.0, "Voltage": 230, "Current": current}
            return [(f"tele/{self.address}/STATE", json.dumps(state)),
                    (f"tele/{self.address}/SENSOR", json.dumps({"Time": now, "ENERGY": energy}))]
        return [(f"{self.address}/status/switch:0", json.dumps(self._switch_status("timer")))]

    def _switch_status(self, source: str) -> dict[str, object]:
        return {"id": 0, "source": source, "output": self.on, "apower": self.power_w, "voltage": 231.4,
                "current": round(self.power_w / 231.4, 3), "freq": 50.0,
                "aenergy": {"total": round(self.energy_kwh * 1000, 3), "by_minute": [0.0, 0.0, 0.0],
                            "minute_ts": int(time.time())},
                "temperature": {"tC": 41.2, "tF": 106.2}}

    def _changed(self, source: str) -> list[tuple[str, str]]:
        if self.dialect == "tasmota":
            word = "ON" if self.on else "OFF"
            return [(f"stat/{self.address}/RESULT", json.dumps({"POWER": word})), (f"stat/{self.address}/POWER", word)]
        note = {"src": self.address, "dst": f"{self.address}/events", "method": "NotifyStatus",
                "params": {"ts": round(time.time(), 2), "switch:0": {"id": 0, "output": self.on, "source": source}}}
        return [(f"{self.address}/events/rpc", json.dumps(note)),
                (f"{self.address}/status/switch:0", json.dumps(self._switch_status(source)))]

    # paho callbacks (its network thread).
    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, reason: object, _p: object) -> None:
        if getattr(reason, "is_failure", False):
            return
        command = f"cmnd/{self.address}/POWER" if self.dialect == "tasmota" else f"{self.address}/rpc"
        client.subscribe(command, qos=1)
        topic, payload = self._availability(True)
        client.publish(topic, payload, qos=1, retain=True)
        with self._lock:
            messages = self._reports()
        for t, p in messages:
            client.publish(t, p, qos=1)

    def _on_message(self, client: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        text = msg.payload.decode(errors="replace")
        self.commands.append(text)
        if not self.obey:
            return
        out: list[tuple[str, str]] = []
        with self._lock:
            if self.dialect == "tasmota":
                word = text.strip().upper()
                if word in ("ON", "OFF", "TOGGLE"):
                    self.on = (not self.on) if word == "TOGGLE" else word == "ON"
                out = self._changed("MQTT")  # Tasmota answers even when nothing changed
            else:
                try:
                    frame = json.loads(text)
                except ValueError:
                    return
                src, rid, method = frame.get("src"), frame.get("id"), frame.get("method")
                if method == "Switch.Set":
                    was_on, self.on = self.on, bool(frame.get("params", {}).get("on"))
                    result: dict[str, object] = {"was_on": was_on}
                    changed = was_on != self.on
                elif method == "Switch.GetStatus":
                    result, changed = self._switch_status("MQTT"), False
                else:
                    return
                if src:
                    out.append((f"{src}/rpc", json.dumps({"id": rid, "src": self.address, "dst": src,
                                                          "result": result})))
                if changed:  # notifications only on a change
                    out += self._changed("MQTT")
        for topic, payload in out:
            client.publish(topic, payload, qos=1)
