"""The PJLink check of one projector, and the checker that runs many of them concurrently.

Network I/O only: a check produces a ``CheckReport``; ``CheckReport.poll_result`` turns it into the
``PollResult`` the store records. One TCP connection per projector per round, every wait bounded
(connect, each reply, the whole check), and a semaphore bounding how many run at once, so a
projector that accepts the connection and never answers costs its own timeout and nobody else's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
import tomllib
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from controller.store.polls import ComponentStatus, FaultCheck, PollResult

from ..concurrency import as_checked
from .protocol import (
    DEFAULT_PORT,
    ERST_CATEGORIES,
    Failure,
    PJLinkError,
    PJLinkProtocolError,
    PJLinkSession,
    PJLinkUnreachable,
    Reply,
    parse_errors,
    parse_input,
    parse_lamps,
    parse_power,
)

log = logging.getLogger(__name__)
LAMP_LIFE_PATH = Path(__file__).with_name("lamp_life.toml")
FALLBACK_LAMP_HOURS = 3000
CLASS1_QUERIES = ("CLSS", "POWR", "INPT", "LAMP", "ERST", "NAME", "INF1", "INF2", "INFO")
CLASS2_QUERIES = ("SNUM", "SVER")


def utcnow() -> dt.datetime:
    """The controller's clock, aware UTC (injectable so tests can move it)."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class LampLife:
    """Lamp hours at which a lamp counts as at its end of life, per model (``lamp_life.toml``)."""

    default_hours: int = FALLBACK_LAMP_HOURS
    models: Mapping[str, int] = field(default_factory=dict)

    def threshold(self, vendor: str | None, model: str | None) -> int:
        """The model's threshold ("Vendor Model" first, then "Model", case-insensitive), else the default."""
        for key in (f"{vendor} {model}" if vendor and model else None, model):
            if key and key.strip().casefold() in self.models:
                return self.models[key.strip().casefold()]
        return self.default_hours

    @classmethod
    def load(cls, path: Path | None = None) -> LampLife:
        """Read the data file; a missing or broken one leaves the built-in default (and says so once)."""
        return _load_lamp_life(path or LAMP_LIFE_PATH)


@lru_cache(maxsize=8)
def _load_lamp_life(path: Path) -> LampLife:
    """Cached: every round of every poller reads the same small file."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
        models = {str(k).strip().casefold(): int(v) for k, v in data.get("models", {}).items()}
        return LampLife(int(data.get("default_hours", FALLBACK_LAMP_HOURS)), models)
    except (OSError, ValueError, TypeError) as exc:
        log.warning("PJLink lamp-life file %s unusable (%s): every model uses %d h", path, exc, FALLBACK_LAMP_HOURS)
        return LampLife()


@dataclass(frozen=True, slots=True)
class CheckSettings:
    """Timeouts and bounds of a check; defaults suit a school LAN."""

    connect_timeout_s: float = 3.0
    read_timeout_s: float = 3.0  # per reply, the greeting included
    check_timeout_s: float = 20.0  # the whole conversation
    max_concurrency: int = 200
    lamp_life: LampLife | None = None  # None: lamp_life.toml


@dataclass(frozen=True, slots=True)
class ProjectorTarget:
    """Where a projector answers and its PJLink password; the password never appears in a repr."""

    host: str
    port: int = DEFAULT_PORT
    password: str | None = field(default=None, repr=False)
    device_id: int | None = None

    @classmethod
    def parse(cls, address: str, password: str | None = None, device_id: int | None = None) -> ProjectorTarget:
        """Read ``host``, ``host:port`` or ``[v6]:port`` (port 4352 by default) as stored in mgmt_address."""
        address = address.strip().removeprefix("pjlink://").split("/", 1)[0]
        try:
            if address.startswith("["):
                host, _, rest = address[1:].partition("]")
                port = int(rest[1:]) if rest.startswith(":") else DEFAULT_PORT
            elif address.count(":") == 1:
                host, _, port_text = address.partition(":")
                port = int(port_text)
            else:
                host, port = address, DEFAULT_PORT
        except ValueError:
            raise ValueError(f"not a projector address (HOST[:PORT]): {address!r}") from None
        if not host or not 0 < port < 65536:
            raise ValueError(f"not a projector address: {address!r}")
        return cls(host, port, password, device_id)


@dataclass(frozen=True, slots=True)
class Lamp:
    """One lamp as LAMP reported it, judged against the model's threshold."""

    index: int
    hours: int
    lit: bool
    threshold_h: int

    @property
    def end_of_life(self) -> bool:
        """At or past the hours the model's lamp is good for."""
        return self.hours >= self.threshold_h


@dataclass(slots=True)
class CheckReport:
    """Everything one check learned about one projector; ``poll_result`` is what the store gets."""

    host: str
    port: int
    checked_at: dt.datetime
    reachable: bool = False
    auth_required: bool | None = None
    auth_ok: bool | None = None
    failure: Failure | None = None
    error: str | None = None
    pjlink_class: int | None = None
    power: str | None = None
    input: str | None = None
    name: str | None = None
    info: str | None = None
    identity: dict[str, str] = field(default_factory=dict)
    lamps: list[Lamp] | None = None  # None: not known this round; []: the projector has no lamp (ERR1)
    errors: dict[str, str] | None = None  # ERST category -> ok | warning | error
    refused: dict[str, str] = field(default_factory=dict)  # command -> ERR1..ERR4
    faults: list[FaultCheck] = field(default_factory=list)
    reconnects: int = 0  # the projector closed the connection after an answer
    elapsed_s: float = 0.0

    def active_faults(self) -> list[str]:
        """The codes raised this round."""
        return [f.code for f in self.faults if f.active]

    def components(self) -> list[ComponentStatus]:
        """One ``lamp`` component per lamp: ``ok`` or ``end_of_life``, with hours and lit in its data."""
        return [ComponentStatus("lamp", lamp.index, "end_of_life" if lamp.end_of_life else "ok", f"lamp {lamp.index}",
                                {"hours": lamp.hours, "lit": lamp.lit, "threshold_h": lamp.threshold_h})
                for lamp in self.lamps or []]

    def poll_result(self, device_id: int) -> PollResult:
        """The store's view of this check (figures stay small: they become history rows)."""
        figures: dict[str, Any] = {"elapsed_s": round(self.elapsed_s, 3)}
        for key in ("power", "input", "pjlink_class"):
            if getattr(self, key) is not None:
                figures[key] = getattr(self, key)
        if self.lamps:
            figures["lamp_hours"] = max(lamp.hours for lamp in self.lamps)
            figures["lamps_lit"] = sum(1 for lamp in self.lamps if lamp.lit)
        if self.refused:
            figures["refused"] = dict(self.refused)
        if self.error:
            figures["error"] = self.error[:200]
        return PollResult(device_id, self.checked_at, self.reachable, figures, dict(self.identity),
                          tuple(self.faults), tuple(self.components()))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for the technician CLI."""
        out = asdict(self)
        out["checked_at"] = self.checked_at.isoformat()
        out["faults"] = [{"code": f.code, "active": f.active, "severity": f.severity, "detail": f.detail}
                         for f in self.faults]
        out["lamps"] = None if self.lamps is None else [
            {**asdict(lamp), "end_of_life": lamp.end_of_life} for lamp in self.lamps]
        return out


class ProjectorChecker:
    """Checks many projectors concurrently (bounded); each check is self-contained and never raises."""

    def __init__(self, settings: CheckSettings | None = None, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.settings = settings or CheckSettings()
        self.clock = clock
        self.lamp_life = self.settings.lamp_life or LampLife.load()
        self._limit = asyncio.Semaphore(max(1, self.settings.max_concurrency))

    def check_many(self, targets: Iterable[ProjectorTarget]) -> AsyncIterator[tuple[ProjectorTarget, CheckReport]]:
        """Check every target (bounded by the checker), yielding each report as soon as it is ready."""
        return as_checked(self.check, targets)

    async def check(self, target: ProjectorTarget) -> CheckReport:
        """One full check, never longer than ``check_timeout_s`` (plus the wait for a slot), never raising."""
        async with self._limit:
            report = CheckReport(target.host, target.port, self.clock())
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.settings.check_timeout_s):
                    await self._run(target, report)
            except PJLinkError as exc:
                report.failure, report.error = exc.failure, str(exc)
            except TimeoutError:
                report.failure, report.error = "timeout", "whole check timed out"
            except Exception as exc:  # a projector must never take the poller down with it
                log.debug("PJLink check of %s:%s crashed", target.host, target.port, exc_info=True)
                report.failure, report.error = "protocol", f"{type(exc).__name__}: {exc}"[:200]
            report.elapsed_s = time.monotonic() - started
            if report.failure == "auth":  # it answered, and refused us: not an unreachable projector
                report.reachable, report.auth_ok = True, False
            elif report.failure is not None:
                report.reachable = False
            report.faults = judge(report)
            return report

    async def _run(self, target: ProjectorTarget, report: CheckReport) -> None:
        """Connect, authenticate with the first query, then ask the class 1 (and class 2) questions.

        All on one connection; a projector that closes it after an answer (some firmwares take one
        command per connection) is reconnected to, at most as often as there are questions, and
        ``reconnects`` says so.
        """
        replies: dict[str, Reply] = {}
        queue = [(1, command) for command in CLASS1_QUERIES]
        session = self._session(target)
        try:
            await session.open()
            report.auth_required = session.auth_required
            while len(replies) < len(queue):
                pjclass, command = queue[len(replies)]
                try:
                    reply = await session.query(command, pjclass)
                except PJLinkUnreachable:
                    if not replies or report.reconnects >= len(queue):
                        raise
                    report.reconnects += 1
                    await session.close()
                    session = self._session(target)
                    await session.open()
                    continue
                replies[command] = reply
                if command == "CLSS":
                    report.reachable, report.auth_ok = True, True
                    report.pjlink_class = 2 if reply.ok and (reply.value or "").strip() == "2" else 1
                    if report.pjlink_class == 2:
                        queue.extend((2, c) for c in CLASS2_QUERIES)
        finally:
            await session.close()
        self._read(replies, report)

    def _session(self, target: ProjectorTarget) -> PJLinkSession:
        """A fresh, unopened session with this checker's timeouts."""
        return PJLinkSession(target.host, target.port, target.password, self.settings.connect_timeout_s,
                             self.settings.read_timeout_s)

    def _read(self, replies: dict[str, Reply], report: CheckReport) -> None:
        """Turn the answers into the report; an ``ERRn`` or a garbled value leaves that part unknown (and noted)."""
        for command, reply in replies.items():
            if reply.error:
                report.refused[command] = reply.error
        values = {c: r.value.strip() for c, r in replies.items() if r.ok and r.value is not None}
        report.power = self._parsed(report, values, "POWR", parse_power)
        report.input = self._parsed(report, values, "INPT", parse_input)
        report.errors = self._parsed(report, values, "ERST", parse_errors)
        report.name, report.info = values.get("NAME") or None, values.get("INFO") or None
        for field_name, command in (("vendor", "INF1"), ("model", "INF2"), ("serial", "SNUM"), ("firmware", "SVER")):
            if values.get(command):
                report.identity[field_name] = values[command]
        threshold = self.lamp_life.threshold(report.identity.get("vendor"), report.identity.get("model"))
        lamps = self._parsed(report, values, "LAMP", parse_lamps)
        if lamps is not None:
            report.lamps = [Lamp(i, hours, lit, threshold) for i, (hours, lit) in enumerate(lamps, start=1)]
        elif replies["LAMP"].error == "ERR1":
            report.lamps = []  # no lamp to ask about (a laser or LED projector)

    @staticmethod
    def _parsed(report: CheckReport, values: dict[str, str], command: str, parse: Callable[[str], Any]) -> Any:
        """``parse`` of the command's value; a value that does not parse is noted as ``malformed``, not fatal."""
        if command not in values:
            return None
        try:
            return parse(values[command])
        except PJLinkProtocolError:
            report.refused[command] = "malformed"
            return None


def judge(report: CheckReport) -> list[FaultCheck]:
    """What this round says about each projector fault; a question not answered says nothing.

    ERST levels map to severities: 1 (warning) → ``warning``, 2 (error) → ``critical``. An ``ERR4``
    (projector failure) answer to any query raises ``projector.error.other`` too.
    """
    if report.failure == "auth":
        return [FaultCheck("projector.unreachable", False),
                FaultCheck("projector.auth_failed", True, detail={"error": report.error or "ERRA"})]
    if not report.reachable:
        return [FaultCheck("projector.unreachable", True,
                           detail={"error": report.error or "unreachable", "failure": report.failure})]
    checks = [FaultCheck("projector.unreachable", False), FaultCheck("projector.auth_failed", False)]
    if report.failure is not None:
        return checks  # answered, then stopped making sense: nothing more can be said this round
    failed = sorted(c for c, e in report.refused.items() if e == "ERR4")
    if report.errors is not None:
        for category in ERST_CATEGORIES:
            level = report.errors[category]
            active = level != "ok" or (category == "other" and bool(failed))
            detail: dict[str, Any] = {"level": level} if level != "ok" else {}
            if category == "other" and failed:
                detail["err4"] = failed
            severity = "critical" if level == "error" or (category == "other" and failed) else "warning"
            checks.append(FaultCheck(f"projector.error.{category}", active, severity if active else None, detail))
    elif failed:
        checks.append(FaultCheck("projector.error.other", True, "critical", {"err4": failed}))
    if report.lamps is not None:
        worn = [lamp for lamp in report.lamps if lamp.end_of_life]
        detail = {"lamps": [{"index": lamp.index, "hours": lamp.hours} for lamp in worn],
                  "threshold_h": worn[0].threshold_h} if worn else {}
        checks.append(FaultCheck("projector.lamp_end_of_life", bool(worn), detail=detail))
    return checks


async def check_one(target: ProjectorTarget, settings: CheckSettings | None = None,
                    clock: Callable[[], dt.datetime] = utcnow) -> CheckReport:
    """Check a single projector with a checker of its own (the CLI's path)."""
    return await ProjectorChecker(settings, clock).check(target)

