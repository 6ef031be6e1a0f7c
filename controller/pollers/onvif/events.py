"""ONVIF PullPoint events (optional, off by default): subscribe, pull, renew before expiry, unsubscribe.

Only tamper matters to the store (``camera.tamper`` raised by a tamper event whose state is true and
resolved by one whose state is false); motion and everything else is parsed but not kept (DESIGN §8:
no more about people than needed). The watcher reuses the checker's WSDL documents and pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from .check import CameraTarget, OnvifChecker, _CameraClients, _describe, classify

log = logging.getLogger(__name__)
TT = "http://www.onvif.org/ver10/schema"
# Topics cameras use for "someone covered, moved or defocused me".
TAMPER_TOPICS = (
    "tns1:RuleEngine/TamperDetector/Tamper",
    "tns1:VideoSource/GlobalSceneChange/ImagingService",
    "tns1:VideoSource/GlobalSceneChange/AnalyticsService",
    "tns1:VideoSource/GlobalSceneChange/RecordingService",
)
STATE_ITEMS = ("State", "IsTamper", "IsMotion", "IsGlobalSceneChange")


@dataclass(frozen=True, slots=True)
class CameraEvent:
    """One NotificationMessage: topic, property operation, source and data items."""

    topic: str
    operation: str | None = None
    utc_time: str | None = None
    source: dict[str, str] = field(default_factory=dict)
    data: dict[str, str] = field(default_factory=dict)

    @property
    def state(self) -> bool | None:
        """The boolean the event carries (State, IsTamper, ...), if any."""
        for name in STATE_ITEMS:
            if name in self.data:
                return self.data[name].strip().lower() in ("true", "1")
        return None

    @property
    def is_tamper(self) -> bool:
        """A tamper-family topic (matched on the topic path, whatever its prefix)."""
        path = self.topic.split(":", 1)[-1].lower()
        return any(path == t.split(":", 1)[1].lower() for t in TAMPER_TOPICS)


def parse_notification(message: Any) -> CameraEvent | None:
    """A zeep NotificationMessage → CameraEvent (the tt:Message body is xsd:any, read with lxml)."""
    topic_obj = getattr(message, "Topic", None)
    topic = getattr(topic_obj, "_value_1", None) if topic_obj is not None else None
    payload = getattr(getattr(message, "Message", None), "_value_1", None)
    if not topic or payload is None:
        return None
    items: dict[str, dict[str, str]] = {"Source": {}, "Data": {}}
    if isinstance(payload, etree._Element):  # a message zeep could not type: read the XML
        for part in ("Source", "Data"):
            for item in payload.iterfind(f"{{{TT}}}{part}/{{{TT}}}SimpleItem"):
                items[part][item.get("Name", "")] = item.get("Value", "")
        operation, utc = payload.get("PropertyOperation"), payload.get("UtcTime")
    else:  # tt:Message, typed by the schema
        for part in ("Source", "Data"):
            for item in getattr(getattr(payload, part, None), "SimpleItem", None) or []:
                items[part][str(item.Name)] = "" if item.Value is None else str(item.Value)
        operation = getattr(payload, "PropertyOperation", None)
        stamp = getattr(payload, "UtcTime", None)
        utc = stamp.isoformat() if isinstance(stamp, dt.datetime) else (str(stamp) if stamp else None)
    return CameraEvent(str(topic).strip(), str(operation) if operation else None, utc, items["Source"],
                       items["Data"])


class PullPointSubscription:
    """One camera's PullPoint subscription; ``run`` pulls until cancelled and always tries to unsubscribe."""

    def __init__(self, checker: OnvifChecker, target: CameraTarget, events_xaddr: str | None = None,
                 termination_s: int = 60, pull_timeout_s: float = 5.0, message_limit: int = 32) -> None:
        self.checker = checker
        self.target = target
        self.events_xaddr = events_xaddr or f"{target.base_url}/onvif/events_service"
        self.termination_s = termination_s
        self.pull_timeout_s = pull_timeout_s
        self.message_limit = message_limit
        self.address: str | None = None
        self.renewals = 0
        self._clients = _CameraClients(checker, target, long_poll=True)
        self._expires_at = 0.0

    async def _call(self, proxy: Any, operation: str, extra_s: float = 0.0, **params: Any) -> Any:
        async with asyncio.timeout(self.checker.settings.call_timeout_s + extra_s):
            return await getattr(proxy, operation)(**params)

    async def subscribe(self) -> str:
        """CreatePullPointSubscription; returns the subscription address (``…/events_service?sub=N``)."""
        await self.checker.load_wsdl("events")
        events = self._clients.proxy("events", self.events_xaddr)
        result = await self._call(events, "CreatePullPointSubscription",
                                  InitialTerminationTime=f"PT{self.termination_s}S")
        address = result.SubscriptionReference.Address
        self.address = str(getattr(address, "_value_1", address)).strip()
        self._expires_at = asyncio.get_running_loop().time() + self.termination_s
        return self.address

    async def pull(self) -> list[CameraEvent]:
        """One PullMessages (the camera may hold it up to the pull timeout when it has nothing)."""
        assert self.address is not None, "subscribe() first"
        pullpoint = self._clients.proxy("pullpoint", self.address)
        answer = await self._call(pullpoint, "PullMessages", extra_s=self.pull_timeout_s,
                                  Timeout=dt.timedelta(seconds=self.pull_timeout_s), MessageLimit=self.message_limit)
        events = []
        for message in getattr(answer, "NotificationMessage", None) or []:
            event = parse_notification(message)
            if event is not None:
                events.append(event)
        return events

    async def renew(self) -> None:
        """Renew for another ``termination_s`` (relative time: cameras count from their own clock)."""
        assert self.address is not None
        manager = self._clients.proxy("subscription", self.address)
        await self._call(manager, "Renew", TerminationTime=f"PT{self.termination_s}S")
        self._expires_at = asyncio.get_running_loop().time() + self.termination_s
        self.renewals += 1

    async def unsubscribe(self) -> None:
        """Tear the subscription down (cameras keep only a few: leaving them to expire starves others)."""
        if self.address is None:
            return
        manager = self._clients.proxy("subscription", self.address)
        try:
            await self._call(manager, "Unsubscribe")
        finally:
            self.address = None

    def renew_due(self) -> bool:
        """Renew once half the subscription's life is gone."""
        return asyncio.get_running_loop().time() >= self._expires_at - self.termination_s / 2

    async def run(self, on_events: Callable[[list[CameraEvent]], Awaitable[None]],
                  retry_s: float = 5.0, max_retry_s: float = 300.0) -> None:
        """Subscribe, pull and renew until cancelled; resubscribe with backoff after any failure."""
        delay = retry_s
        try:
            while True:
                try:
                    if self.address is None:
                        await self.subscribe()
                    if self.renew_due():
                        await self.renew()
                    events = await self.pull()
                    delay = retry_s
                    if events:
                        await on_events(events)
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.debug("PullPoint of %s:%s failed (%s): %s", self.target.host, self.target.port,
                              classify(exc), _describe(exc))
                    self.address = None  # e.g. ResourceUnknownFault: the camera forgot us; subscribe again
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, max_retry_s)
        finally:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.checker.settings.call_timeout_s):
                    await asyncio.shield(self.unsubscribe())
