"""The ONVIF health check of one camera or NVR, and the checker that runs many of them concurrently.

Network I/O only: a check produces a ``CheckReport``; ``CheckReport.poll_result`` turns it into the
``PollResult`` the store records. The WSDLs are parsed once per process (onvif-zeep-async keeps
them in its document cache) and every camera's zeep clients share one aiohttp connection pool.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import re
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import aiohttp
import zeep.exceptions

from controller.pollers.concurrency import as_checked
from controller.store.polls import ComponentStatus, FaultCheck, PollResult

# onvif.client calls logging.basicConfig() when imported, which would silently win over the
# controller's own logging set-up (format, CLASSFLEET_LOG_LEVEL): undo exactly what it adds.
_root = logging.getLogger()
_root_handlers, _root_level = list(_root.handlers), _root.level
import onvif  # noqa: E402
from onvif.client import (  # noqa: E402
    AsyncTransportProtocolErrorHandler,
    UsernameDigestTokenDtDiff,
    ZeepAsyncClient,
    _cached_document,
)
from onvif.definition import SERVICES  # noqa: E402
from onvif.settings import DEFAULT_SETTINGS  # noqa: E402
from onvif.wsa import WsAddressingIfMissingPlugin  # noqa: E402

for _handler in [h for h in _root.handlers if h not in _root_handlers]:
    _root.removeHandler(_handler)
_root.setLevel(_root_level)

log = logging.getLogger(__name__)

DEVICE_NS = SERVICES["devicemgmt"]["ns"]
MEDIA_NS = SERVICES["media"]["ns"]
RECORDING_NS = SERVICES["recording"]["ns"]
MAX_RECORDING_JOBS = 64
RETRY_DRIFT_S = 2.0  # below this the clock is not why the camera refused us (1 s resolution)
MAX_PROFILES = 64  # bounded work per camera, even for a 32-channel NVR with two streams each
JPEG_MAGIC = b"\xff\xd8\xff"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
Failure = Literal["auth", "timeout", "unreachable", "protocol"]


def utcnow() -> dt.datetime:
    """The controller's clock, aware UTC (injectable so tests can move it)."""
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class CheckSettings:
    """Timeouts, thresholds and bounds of a check; defaults suit a school LAN."""

    call_timeout_s: float = 5.0
    connect_timeout_s: float = 3.0
    check_timeout_s: float = 30.0
    drift_threshold_s: float = 10.0
    max_concurrency: int = 200
    snapshot: bool = True
    snapshot_timeout_s: float = 5.0
    snapshot_min_bytes: int = 100
    snapshot_max_bytes: int = 8 * 1024 * 1024
    fix_clock: bool = False  # SetSystemDateAndTime on a drifted camera with a manual clock (off: it writes)


@dataclass(frozen=True, slots=True)
class CameraTarget:
    """Where a camera answers and how to log in; the password never appears in a repr."""

    host: str
    port: int = 80
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    device_id: int | None = None
    nvr: bool = False

    @classmethod
    def parse(cls, address: str, user: str | None = None, password: str | None = None,
              device_id: int | None = None, nvr: bool = False) -> CameraTarget:
        """Read ``host``, ``host:port`` or ``[v6]:port`` (port 80 by default) as stored in mgmt_address."""
        address = address.strip()
        for prefix in ("http://", "https://"):
            address = address.removeprefix(prefix)
        address = address.split("/", 1)[0]
        try:
            if address.startswith("["):
                host, _, rest = address[1:].partition("]")
                port = int(rest[1:]) if rest.startswith(":") else 80
            elif address.count(":") == 1:
                host, _, port_text = address.partition(":")
                port = int(port_text)
            else:
                host, port = address, 80
        except ValueError:
            raise ValueError(f"not a camera address (HOST[:PORT]): {address!r}") from None
        if not host or not 0 < port < 65536:
            raise ValueError(f"not a camera address: {address!r}")
        return cls(host, port, user, password, device_id, nvr)

    @property
    def base_url(self) -> str:
        """``http://host:port`` with IPv6 literals bracketed."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


@dataclass(slots=True)
class StreamProfile:
    """One media profile: its video source and the stream URI the camera handed out (or why not)."""

    token: str
    name: str | None = None
    source: str | None = None
    encoding: str | None = None
    width: int | None = None
    height: int | None = None
    stream_uri: str | None = None
    error: str | None = None


@dataclass(slots=True)
class SnapshotResult:
    """The one snapshot fetched this round: judged by magic bytes and size, then thrown away."""

    uri: str | None
    ok: bool
    size: int = 0
    kind: str | None = None
    error: str | None = None


@dataclass(slots=True)
class CheckReport:
    """Everything one check learned about one camera; ``poll_result`` is what the store gets."""

    host: str
    port: int
    checked_at: dt.datetime
    reachable: bool = False
    auth_ok: bool | None = None
    failure: Failure | None = None
    error: str | None = None
    drift_s: float | None = None
    clock_adjusted: bool = False
    clock_mode: str | None = None  # DateTimeType: Manual or NTP
    clock_fixed: bool = False
    identity: dict[str, str] = field(default_factory=dict)
    hardware_id: str | None = None
    services: dict[str, str] = field(default_factory=dict)
    profiles: list[StreamProfile] = field(default_factory=list)
    channels: list[ComponentStatus] = field(default_factory=list)
    snapshot: SnapshotResult | None = None
    recording: list[dict[str, str | None]] | None = None  # None: the device offers no recording service
    media_error: str | None = None
    faults: list[FaultCheck] = field(default_factory=list)
    elapsed_s: float = 0.0

    def active_faults(self) -> list[str]:
        """The codes raised this round."""
        return [f.code for f in self.faults if f.active]

    def poll_result(self, device_id: int) -> PollResult:
        """The store's view of this check (figures stay small: they become history rows)."""
        figures: dict[str, Any] = {"elapsed_s": round(self.elapsed_s, 3)}
        if self.drift_s is not None:
            figures["drift_s"] = round(self.drift_s, 1)
        if self.reachable and self.auth_ok:
            figures["profiles"] = len(self.profiles)
            figures["streams"] = sum(1 for p in self.profiles if p.stream_uri)
        if self.snapshot is not None:
            figures["snapshot_bytes"] = self.snapshot.size
        if self.recording is not None:
            states = [job.get("state") for job in self.recording]
            figures["recording_jobs"] = len(states)
            figures["recording_active"] = sum(1 for s in states if s in ("Active", "PartiallyActive"))
            figures["recording_errors"] = sum(1 for s in states if s == "Error")
        if self.hardware_id:
            figures["hardware_id"] = self.hardware_id
        if self.error:
            figures["error"] = self.error[:200]
        return PollResult(device_id, self.checked_at, self.reachable, figures, dict(self.identity),
                          tuple(self.faults), tuple(self.channels))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view for the technician CLI."""
        out = asdict(self)
        out["checked_at"] = self.checked_at.isoformat()
        out["faults"] = [{"code": f.code, "active": f.active, "detail": f.detail} for f in self.faults]
        out["channels"] = [{"index": c.index, "name": c.name, "status": c.status, **c.data} for c in self.channels]
        return out


class CheckFailed(Exception):
    """A step of the check failed in a way that ends the check (the camera is unreachable or refuses us)."""

    def __init__(self, step: str, failure: Failure, exc: BaseException | str) -> None:
        super().__init__(f"{step}: {_describe(exc)}")
        self.step = step
        self.failure = failure


def classify(exc: BaseException) -> Failure:
    """Sort an exception from a SOAP call: a NotAuthorized fault is not a timeout is not a dead camera."""
    if isinstance(exc, zeep.exceptions.Fault):
        return "auth" if _is_not_authorized(exc) else "protocol"
    if isinstance(exc, zeep.exceptions.TransportError):
        return "auth" if exc.status_code in (401, 403) else "protocol"
    if isinstance(exc, TimeoutError | aiohttp.ServerTimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientError | OSError | ConnectionError):
        return "unreachable"
    return "protocol"


def _is_not_authorized(fault: zeep.exceptions.Fault) -> bool:
    """ONVIF says ter:NotAuthorized; some firmwares only put it in the code or the reason text."""
    names = [getattr(q, "localname", str(q)) for q in (fault.subcodes or [])]
    names.append(str(fault.code or ""))
    if any("notauthorized" in n.lower() for n in names):
        return True
    message = str(fault.message or "").lower()
    return "not authorized" in message or "unauthorized" in message


def _describe(exc: BaseException | str) -> str:
    """A one-line reason for logs and incident details, never with credentials."""
    if isinstance(exc, str):
        return exc
    if isinstance(exc, zeep.exceptions.Fault):
        subcodes = ",".join(getattr(q, "localname", str(q)) for q in (exc.subcodes or []))
        return f"SOAP fault {exc.code}{'/' + subcodes if subcodes else ''}: {exc.message}"
    if isinstance(exc, zeep.exceptions.TransportError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, TimeoutError):
        return "timed out"
    text = str(exc).splitlines()[0] if str(exc) else ""
    return redact(f"{type(exc).__name__}: {text}")[:200]


_USERINFO = re.compile(r"(?<=//)[^/@\s]+@")


def redact(text: str) -> str:
    """Drop ``user:password@`` from URIs: some cameras hand out stream and snapshot URIs with the login in."""
    return _USERINFO.sub("", text)


def _text(value: Any) -> str | None:
    """A zeep value as stripped text, or None."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _camera_utc(sdt: Any) -> dt.datetime | None:
    """UTCDateTime of a GetSystemDateAndTime answer; LocalDateTime is never used (its zone is a guess)."""
    utc = getattr(sdt, "UTCDateTime", None)
    if utc is None or utc.Date is None or utc.Time is None:
        return None
    d, t = utc.Date, utc.Time
    try:
        return dt.datetime(int(d.Year), int(d.Month), int(d.Day), int(t.Hour), int(t.Minute), int(t.Second),
                           tzinfo=dt.UTC)
    except (TypeError, ValueError):
        return None


class _CameraClients:
    """The zeep clients of one camera for one check: built on the shared WSDL documents and pool."""

    def __init__(self, checker: OnvifChecker, target: CameraTarget, long_poll: bool = False) -> None:
        self._checker = checker
        self._target = target
        self._transport = checker.long_poll_transport if long_poll else checker.transport
        self._proxies: dict[tuple[str, str, bool], Any] = {}
        self._tokens: list[UsernameDigestTokenDtDiff] = []
        self.dt_diff: dt.timedelta | None = None

    @property
    def has_credentials(self) -> bool:
        """A user name was given."""
        return bool(self._target.user)

    def adjust_clock(self, offset: dt.timedelta) -> None:
        """Sign from now on with Created shifted to the camera's clock (strict cameras demand it)."""
        self.dt_diff = offset
        for token in self._tokens:
            token.dt_diff = offset

    def proxy(self, service: str, xaddr: str, auth: bool = True) -> Any:
        """A service proxy for ``xaddr``, with or without the WS-UsernameToken."""
        key = (service, xaddr, auth)
        found = self._proxies.get(key)
        if found is not None:
            return found
        wsse = None
        if auth and self._target.user:
            wsse = UsernameDigestTokenDtDiff(self._target.user, self._target.password or "", dt_diff=self.dt_diff,
                                             use_digest=True)
            self._tokens.append(wsse)
        spec = SERVICES[service]
        client = ZeepAsyncClient(wsdl=self._checker.document(spec["wsdl"]), wsse=wsse,
                                 transport=self._transport, settings=DEFAULT_SETTINGS,
                                 plugins=[WsAddressingIfMissingPlugin()])
        proxy = client.create_service(f"{{{spec['ns']}}}{spec['binding']}", xaddr)
        self._proxies[key] = proxy
        return proxy


class OnvifChecker:
    """Checks cameras on one event loop: WSDLs parsed once, one HTTP pool, bounded concurrency."""

    WSDLS = ("devicemgmt", "media")  # events.wsdl is parsed only when PullPoint is used

    def __init__(self, settings: CheckSettings | None = None, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.settings = settings or CheckSettings()
        self.clock = clock
        self._documents: dict[str, Any] = {}
        self._session: aiohttp.ClientSession | None = None
        self._transport: AsyncTransportProtocolErrorHandler | None = None
        self._long_poll_session: aiohttp.ClientSession | None = None
        self._long_poll_transport: AsyncTransportProtocolErrorHandler | None = None
        self._limit: asyncio.Semaphore | None = None

    async def open(self) -> None:
        """Parse the WSDLs (off the loop, once per process) and open the shared connection pool."""
        for name in self.WSDLS:
            await self.load_wsdl(name)
        s = self.settings
        connector = aiohttp.TCPConnector(limit=max(4, s.max_concurrency), limit_per_host=4, ttl_dns_cache=300,
                                         keepalive_timeout=2)  # reuse within a check, few idle sockets
        timeout = aiohttp.ClientTimeout(total=s.call_timeout_s, connect=s.connect_timeout_s,
                                        sock_read=s.call_timeout_s)
        self._session = aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)
        self._transport = AsyncTransportProtocolErrorHandler(session=self._session, verify_ssl=False)
        self._limit = asyncio.Semaphore(s.max_concurrency)

    async def load_wsdl(self, name: str) -> None:
        """Parse one service's WSDL (off the loop, once per process: the library caches documents)."""
        wsdl = SERVICES[name]["wsdl"]
        if wsdl not in self._documents:
            self._documents[wsdl] = await _cached_document(f"{_wsdl_dir()}/{wsdl}")

    async def close(self) -> None:
        """Close the pools; a closed checker can be opened again."""
        for session in (self._session, self._long_poll_session):
            if session is not None:
                await session.close()
        self._session = self._long_poll_session = None
        self._transport = self._long_poll_transport = None

    async def __aenter__(self) -> OnvifChecker:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def document(self, wsdl: str) -> Any:
        """The parsed WSDL document, shared by every camera."""
        return self._documents[wsdl]

    @property
    def long_poll_transport(self) -> AsyncTransportProtocolErrorHandler:
        """A second pool for PullPoint long polls, so held connections never starve the health checks."""
        if self._long_poll_transport is None:
            s = self.settings
            connector = aiohttp.TCPConnector(limit=0, limit_per_host=2, keepalive_timeout=30)
            timeout = aiohttp.ClientTimeout(total=None, connect=s.connect_timeout_s)
            self._long_poll_session = aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False)
            self._long_poll_transport = AsyncTransportProtocolErrorHandler(session=self._long_poll_session,
                                                                           verify_ssl=False)
        return self._long_poll_transport

    @property
    def transport(self) -> AsyncTransportProtocolErrorHandler:
        """The shared zeep transport over the checker's aiohttp session."""
        if self._transport is None:
            raise RuntimeError("OnvifChecker used before open()")
        return self._transport

    def check_many(self, targets: Iterable[CameraTarget]) -> AsyncIterator[tuple[CameraTarget, CheckReport]]:
        """Check every target (bounded by the checker), yielding each report as soon as it is ready."""
        return as_checked(self.check, targets)

    async def check(self, target: CameraTarget) -> CheckReport:
        """One full health check, never longer than ``check_timeout_s`` and never raising."""
        if self._limit is None:
            raise RuntimeError("OnvifChecker used before open()")
        async with self._limit:
            report = CheckReport(target.host, target.port, self.clock())
            started = time.monotonic()
            try:
                async with asyncio.timeout(self.settings.check_timeout_s):
                    await self._run(target, report)
            except CheckFailed as failed:
                report.failure, report.error = failed.failure, str(failed)
                if failed.failure == "auth":  # it answered, and refused us: not an unreachable camera
                    report.reachable, report.auth_ok = True, False
            except TimeoutError:
                report.failure, report.error = "timeout", "whole check timed out"
            except Exception as exc:  # a camera must never take the poller down with it
                log.debug("ONVIF check of %s:%s crashed", target.host, target.port, exc_info=True)
                report.failure, report.error = "protocol", _describe(exc)
            report.elapsed_s = time.monotonic() - started
            if report.failure in ("timeout", "unreachable"):
                report.reachable = False
            report.faults = _faults(report, self.settings)
            return report

    async def _call(self, proxy: Any, operation: str, **params: Any) -> Any:
        """One SOAP call under the per-call timeout; a pooled connection the camera closed is retried once
        (every operation the check makes is a read or, for the optional clock fix, idempotent)."""
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(self.settings.call_timeout_s):
                    return await getattr(proxy, operation)(**params)
            except (aiohttp.ClientOSError, aiohttp.ServerDisconnectedError) as exc:
                if attempt == 2 or isinstance(exc, aiohttp.ClientConnectorError):
                    raise
        raise AssertionError("unreachable")

    async def _step(self, step: str, proxy: Any, operation: str, **params: Any) -> Any:
        """A call whose timeout or connection failure ends the check."""
        try:
            return await self._call(proxy, operation, **params)
        except Exception as exc:
            raise CheckFailed(step, classify(exc), exc) from exc

    async def _run(self, target: CameraTarget, report: CheckReport) -> None:
        """The steps of a check, in order; each fills ``report``."""
        clients = _CameraClients(self, target)
        device_xaddr = f"{target.base_url}/onvif/device_service"
        await self._clock_step(clients, device_xaddr, report)
        device = await self._login_step(clients, device_xaddr, report)
        if self.settings.fix_clock:
            await self._fix_clock_step(clients, device, report)
        await self._services_step(clients, device, report)
        media_xaddr = report.services.get(MEDIA_NS)
        if media_xaddr is None:
            return
        media = clients.proxy("media", media_xaddr)
        await self._media_step(media, report, target)
        if self.settings.snapshot and report.profiles:
            report.snapshot = await self._snapshot_step(media, report.profiles[0].token, target)
        recording_xaddr = report.services.get(RECORDING_NS)
        if recording_xaddr is not None:
            await self.load_wsdl("recording")
            await self._recording_step(clients.proxy("recording", recording_xaddr), report)

    async def _recording_step(self, recording: Any, report: CheckReport) -> None:
        """Recording jobs and their states, where the device (an NVR, mostly) offers the recording service."""
        try:
            jobs = await self._call(recording, "GetRecordingJobs")
        except Exception as exc:
            if classify(exc) in ("timeout", "unreachable"):
                raise CheckFailed("GetRecordingJobs", classify(exc), exc) from exc
            return
        report.recording = []
        for job in list(jobs or [])[:MAX_RECORDING_JOBS]:
            token = _text(getattr(job, "JobToken", None))
            config = getattr(job, "JobConfiguration", None)
            entry: dict[str, str | None] = {
                "job": token, "recording": _text(getattr(config, "RecordingToken", None)),
                "mode": _text(getattr(config, "Mode", None)), "state": None}
            try:
                state = await self._call(recording, "GetRecordingJobState", JobToken=token)
                entry["state"] = _text(getattr(state, "State", None))
            except Exception as exc:
                if classify(exc) in ("timeout", "unreachable"):
                    raise CheckFailed("GetRecordingJobState", classify(exc), exc) from exc
                entry["state"] = "Error"
            report.recording.append(entry)
        if report.channels and len(report.recording) == len(report.channels):  # one job per NVR channel
            for channel, job in zip(report.channels, report.recording, strict=True):
                channel.data["recording"] = job["state"]

    async def _clock_step(self, clients: _CameraClients, xaddr: str, report: CheckReport) -> None:
        """GetSystemDateAndTime without login: reachability, and drift of UTCDateTime from our clock."""
        before, t0 = self.clock(), time.monotonic()
        try:
            sdt = await self._call(clients.proxy("devicemgmt", xaddr, auth=False), "GetSystemDateAndTime")
        except Exception as exc:
            failure = classify(exc)
            if failure != "auth" or not self._has_credentials(clients):
                raise CheckFailed("GetSystemDateAndTime", failure, exc) from exc
            before, t0 = self.clock(), time.monotonic()  # some firmwares want a login even for the clock
            sdt = await self._step("GetSystemDateAndTime", clients.proxy("devicemgmt", xaddr), "GetSystemDateAndTime")
        middle = before + dt.timedelta(seconds=(time.monotonic() - t0) / 2)
        report.reachable = True
        report.clock_mode = _text(getattr(sdt, "DateTimeType", None))
        camera = _camera_utc(sdt)
        if camera is not None:
            report.drift_s = (camera - middle).total_seconds()

    def _has_credentials(self, clients: _CameraClients) -> bool:
        """Whether a login retry is possible at all."""
        return clients.has_credentials

    async def _login_step(self, clients: _CameraClients, xaddr: str, report: CheckReport) -> Any:
        """GetDeviceInformation with login; on NotAuthorized retry once signed on the camera's clock."""
        device = clients.proxy("devicemgmt", xaddr)
        try:
            info = await self._call(device, "GetDeviceInformation")
        except Exception as exc:
            failure = classify(exc)
            if failure != "auth":
                raise CheckFailed("GetDeviceInformation", failure, exc) from exc
            if report.drift_s is None or abs(report.drift_s) < RETRY_DRIFT_S:
                report.auth_ok = False
                raise CheckFailed("GetDeviceInformation", "auth", exc) from exc
            clients.adjust_clock(dt.timedelta(seconds=report.drift_s))
            try:
                info = await self._call(device, "GetDeviceInformation")
            except Exception as retry_exc:
                report.auth_ok = False if classify(retry_exc) == "auth" else None
                raise CheckFailed("GetDeviceInformation", classify(retry_exc), retry_exc) from retry_exc
            report.clock_adjusted = True
        report.auth_ok = True
        identity = {"vendor": _text(info.Manufacturer), "model": _text(info.Model),
                    "firmware": _text(info.FirmwareVersion), "serial": _text(info.SerialNumber)}
        report.identity = {k: v for k, v in identity.items() if v}
        report.hardware_id = _text(getattr(info, "HardwareId", None))
        return device

    async def _fix_clock_step(self, clients: _CameraClients, device: Any, report: CheckReport) -> None:
        """Optional: set a drifted manual clock to ours (an NTP camera's NTP is what needs fixing, not it)."""
        drift = report.drift_s
        if drift is None or abs(drift) <= self.settings.drift_threshold_s or report.clock_mode != "Manual":
            return
        now = self.clock()
        utc = {"Date": {"Year": now.year, "Month": now.month, "Day": now.day},
               "Time": {"Hour": now.hour, "Minute": now.minute, "Second": now.second}}
        try:
            await self._call(device, "SetSystemDateAndTime", DateTimeType="Manual", DaylightSavings=False,
                             UTCDateTime=utc)
        except Exception as exc:
            if classify(exc) in ("timeout", "unreachable"):
                raise CheckFailed("SetSystemDateAndTime", classify(exc), exc) from exc
            log.debug("clock fix of %s:%s refused: %s", report.host, report.port, _describe(exc))
            return
        report.clock_fixed = True
        clients.adjust_clock(dt.timedelta(0))  # the camera now runs on our clock

    async def _services_step(self, clients: _CameraClients, device: Any, report: CheckReport) -> None:
        """GetServices (every service's XAddr), then GetCapabilities as the older cameras' fallback."""
        try:
            services = await self._call(device, "GetServices", IncludeCapability=True)
            for service in services or []:
                ns, xaddr = _text(getattr(service, "Namespace", None)), _text(getattr(service, "XAddr", None))
                if ns and xaddr:
                    report.services[ns] = xaddr
        except Exception as exc:
            if classify(exc) in ("timeout", "unreachable"):
                raise CheckFailed("GetServices", classify(exc), exc) from exc
        try:
            caps = await self._call(device, "GetCapabilities", Category="All")
        except Exception as exc:
            if classify(exc) in ("timeout", "unreachable"):
                raise CheckFailed("GetCapabilities", classify(exc), exc) from exc
            return
        media = getattr(caps, "Media", None)
        media_xaddr = _text(getattr(media, "XAddr", None)) if media is not None else None
        if media_xaddr:
            report.services.setdefault(MEDIA_NS, media_xaddr)

    async def _media_step(self, media: Any, report: CheckReport, target: CameraTarget) -> None:
        """GetProfiles and GetStreamUri per profile; GetVideoSources to see NVR channels with no stream."""
        try:
            profiles = await self._call(media, "GetProfiles")
        except Exception as exc:
            if classify(exc) != "protocol":
                raise CheckFailed("GetProfiles", classify(exc), exc) from exc
            report.media_error = f"GetProfiles: {_describe(exc)}"
            return
        for prof in list(profiles or [])[:MAX_PROFILES]:
            vsc, vec = getattr(prof, "VideoSourceConfiguration", None), getattr(prof, "VideoEncoderConfiguration", None)
            resolution = getattr(vec, "Resolution", None) if vec is not None else None
            report.profiles.append(StreamProfile(
                token=str(prof.token), name=_text(getattr(prof, "Name", None)),
                source=_text(getattr(vsc, "SourceToken", None)) if vsc is not None else None,
                encoding=_text(getattr(vec, "Encoding", None)) if vec is not None else None,
                width=int(resolution.Width) if resolution is not None and resolution.Width is not None else None,
                height=int(resolution.Height) if resolution is not None and resolution.Height is not None else None))
        setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
        for profile in report.profiles:
            try:
                answer = await self._call(media, "GetStreamUri", StreamSetup=setup, ProfileToken=profile.token)
                uri = _text(getattr(answer, "Uri", None))
                profile.stream_uri = redact(uri) if uri else None
                if profile.stream_uri is None:
                    profile.error = "empty stream URI"
            except Exception as exc:
                if classify(exc) in ("timeout", "unreachable"):
                    raise CheckFailed(f"GetStreamUri {profile.token}", classify(exc), exc) from exc
                profile.error = _describe(exc)
        sources: list[str] = []
        try:
            for source in await self._call(media, "GetVideoSources") or []:
                token = _text(getattr(source, "token", None))
                if token and token not in sources:
                    sources.append(token)
        except Exception as exc:
            if classify(exc) in ("timeout", "unreachable"):
                raise CheckFailed("GetVideoSources", classify(exc), exc) from exc
        for profile in report.profiles:
            if profile.source and profile.source not in sources:
                sources.append(profile.source)
        if target.nvr or len(sources) > 1:
            report.channels = _channels(sources, report.profiles)

    async def _snapshot_step(self, media: Any, token: str, target: CameraTarget) -> SnapshotResult:
        """GetSnapshotUri and one fetch (digest or basic auth), judged by magic bytes and size, not kept."""
        try:
            answer = await self._call(media, "GetSnapshotUri", ProfileToken=token)
        except Exception as exc:
            if classify(exc) in ("timeout", "unreachable"):
                raise CheckFailed("GetSnapshotUri", classify(exc), exc) from exc
            return SnapshotResult(None, False, error=f"GetSnapshotUri: {_describe(exc)}")
        uri = _text(getattr(answer, "Uri", None))
        if uri is None:
            return SnapshotResult(None, False, error="empty snapshot URI")
        uri = redact(uri)  # we log in with the device's own credentials, never ones handed out in a URI
        try:
            async with asyncio.timeout(self.settings.snapshot_timeout_s):
                result = await self._fetch_snapshot(uri, target)
        except Exception as exc:
            result = SnapshotResult(uri, False, error=_describe(exc))
        return result

    async def _fetch_snapshot(self, uri: str, target: CameraTarget) -> SnapshotResult:
        """GET the image; answer a 401 with digest or basic as the camera asks; read at most the size cap."""
        assert self._session is not None
        cap = self.settings.snapshot_max_bytes
        async with self._session.get(uri, allow_redirects=False) as resp:
            status, challenge = resp.status, resp.headers.get("WWW-Authenticate", "")
            if status != 401:
                return await _judge_snapshot(uri, resp, cap, self.settings.snapshot_min_bytes)
            await resp.read()
        if not target.user:
            return SnapshotResult(uri, False, error="HTTP 401 and no credentials")
        user, password = target.user, target.password or ""
        if challenge.lower().startswith("digest"):
            middlewares = (aiohttp.DigestAuthMiddleware(user, password),)
            request = self._session.get(uri, allow_redirects=False, middlewares=middlewares)
        else:
            basic = {"Authorization": aiohttp.encode_basic_auth(user, password)}
            request = self._session.get(uri, allow_redirects=False, headers=basic)
        async with request as resp:
            return await _judge_snapshot(uri, resp, cap, self.settings.snapshot_min_bytes)


async def _judge_snapshot(uri: str, resp: aiohttp.ClientResponse, cap: int, minimum: int) -> SnapshotResult:
    """A real image: 200, JPEG or PNG magic bytes, a plausible size; the bytes go no further."""
    if resp.status != 200:
        return SnapshotResult(uri, False, error=f"HTTP {resp.status}")
    size, head = 0, b""
    async for chunk in resp.content.iter_chunked(65536):
        if len(head) < 8:
            head += chunk[: 8 - len(head)]
        size += len(chunk)
        if size > cap:
            return SnapshotResult(uri, False, size, error=f"larger than {cap} bytes")
    kind = "jpeg" if head.startswith(JPEG_MAGIC) else "png" if head.startswith(PNG_MAGIC) else None
    if kind is None:
        return SnapshotResult(uri, False, size, error="not an image (magic bytes)")
    if size < minimum:
        return SnapshotResult(uri, False, size, kind, error=f"only {size} bytes")
    return SnapshotResult(uri, True, size, kind)


def _channels(sources: list[str], profiles: list[StreamProfile]) -> list[ComponentStatus]:
    """NVR channels (video sources): up when one of its profiles gave a stream URI."""
    out = []
    for index, source in enumerate(sources, start=1):
        mine = [p for p in profiles if p.source == source]
        streams = [p.stream_uri for p in mine if p.stream_uri]
        data: dict[str, Any] = {"token": source, "profiles": [p.token for p in mine]}
        if streams:
            data["stream_uri"] = streams[0]
        else:
            data["error"] = next((p.error for p in mine if p.error), "no profile") or "no stream"
        out.append(ComponentStatus("channel", index, "up" if streams else "down", source, data))
    return out


def _faults(report: CheckReport, settings: CheckSettings) -> list[FaultCheck]:
    """What this round says about each camera fault; a check we could not make says nothing."""
    if not report.reachable:
        return [FaultCheck("camera.unreachable", True, detail={"error": report.error or "unreachable"})]
    checks = [FaultCheck("camera.unreachable", False)]
    if report.drift_s is not None:
        drifted = abs(report.drift_s) > settings.drift_threshold_s or report.clock_adjusted
        detail = ({"drift_s": round(report.drift_s, 1), "clock_adjusted": report.clock_adjusted,
                   "clock_fixed": report.clock_fixed} if drifted else {})
        checks.append(FaultCheck("camera.time_drift", drifted, detail=detail))
    if report.auth_ok is False:
        checks.append(FaultCheck("camera.auth_failed", True, detail={"error": report.error or "NotAuthorized"}))
        return checks
    if report.auth_ok:
        checks.append(FaultCheck("camera.auth_failed", False))
    if report.auth_ok is None or report.failure is not None:
        return checks  # a protocol error before the media checks: nothing more can be said
    if MEDIA_NS not in report.services:
        checks.append(FaultCheck("camera.no_stream", True, detail={"error": "no media service"}))
        return checks
    broken = [p.token for p in report.profiles if not p.stream_uri]
    dead_channels = [c.index for c in report.channels if c.status != "up"]
    no_stream = not report.profiles or not any(p.stream_uri for p in report.profiles) or bool(dead_channels)
    detail: dict[str, Any] = {}
    if no_stream:
        detail = ({"profiles_without_stream": broken} if report.profiles
                  else {"error": report.media_error or "no media profiles"})
        if dead_channels:
            detail["channels"] = dead_channels
    checks.append(FaultCheck("camera.no_stream", no_stream, detail=detail))
    if report.snapshot is not None:
        snap_detail = {} if report.snapshot.ok else {"error": report.snapshot.error or "failed"}
        checks.append(FaultCheck("camera.no_snapshot", not report.snapshot.ok, detail=snap_detail))
    return checks


def _wsdl_dir() -> str:
    """The WSDLs bundled with onvif-zeep-async."""
    return str(Path(onvif.__file__).parent / "wsdl")


async def check_one(target: CameraTarget, settings: CheckSettings | None = None,
                    clock: Callable[[], dt.datetime] = utcnow) -> CheckReport:
    """Check a single camera with a checker of its own (the CLI's path)."""
    async with OnvifChecker(settings, clock) as checker:
        return await checker.check(target)

