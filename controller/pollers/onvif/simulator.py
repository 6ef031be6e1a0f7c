"""Simulated ONVIF cameras and NVRs for the demo, the tests and the benchmark: real HTTP/SOAP on loopback.

Each camera listens on its own port and answers like the real server captured in
../shared/testdata/onvif (same element names, namespaces, fault codes and HTTP statuses), with what
real cameras add: WS-UsernameToken digest validation, a clock offset, a strict mode that rejects a
stale ``Created`` or a replayed nonce, slow/hanging/black-hole/dead modes, several video sources
(NVR mode) with dead channels, and a JPEG snapshot behind HTTP digest or basic auth.

Run ``python -m controller.pollers.onvif.simulator --cameras 5 --nvr-channels 4`` for the demo: it
prints one JSON line per device (``{"kind": ..., "port": ...}``) and serves until interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import datetime as dt
import hashlib
import json
import re
import secrets
import socket
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web
from lxml import etree

from controller.pollers.simthread import ThreadedSimulator

Mode = Literal["ok", "slow", "hang", "blackhole"]
SOAP12 = "http://www.w3.org/2003/05/soap-envelope"
WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
AUTH_EXEMPT = frozenset({"getsystemdateandtime", "getcapabilities", "getservices", "getservicecapabilities",
                         "getusers"})
MAX_BODY = 64 * 1024
NONCE_MEMORY = 1024

# A 64x48 JPEG made for the simulator (not the captured one): what a camera's snapshot endpoint serves.
SNAPSHOT_JPEG = base64.b64decode(
    "/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAA0JCgsKCA0LCgsODg0PEyAVExISEyccHhcgLikxMC4pLSwzOko+MzZGNywtQFdBRkxOUlNSMj5a"
    "YVpQYEpRUk//2wBDAQ4ODhMREyYVFSZPNS01T09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT09PT0//wAAR"
    "CAAwAEADASIAAhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQAAAF9AQIDAAQRBRIhMUEG"
    "E1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWG"
    "h4iJipKTlJWWl5iZmqKjpKWmp6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEAAwEBAQEB"
    "AQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSExBhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYk"
    "NOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElKU1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0"
    "tba3uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/9oADAMBAAIRAxEAPwCjRRXYVni8X9Xtpe5nCHMcfRXYUVx/2r/c"
    "/H/gGnsfM4+iuwrlbz/j9n/66N/OurC4z6w2uW1vMicOUhooortMwrsK4+uq+123/PxD/wB9ivJzSLlyWXf9Dai9yaioftdt/wA/EP8A32KP"
    "tdt/z8Q/99ivJ9nPsza6Jq5W8/4/Z/8Aro3866T7Xbf8/EP/AH2K5u7Ia7mZSCDIxBHfmvTyyMlOV0ZVXoiGiiivZMAooooAKKKKACiiigAo"
    "ooooA/9k="
)

_NS = {
    "SOAP-ENV": SOAP12,
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
    "tev": "http://www.onvif.org/ver10/events/wsdl",
    "tmd": "http://www.onvif.org/ver10/deviceIO/wsdl",
    "tr2": "http://www.onvif.org/ver20/media/wsdl",
    "trc": "http://www.onvif.org/ver10/recording/wsdl",
}


MOTION_TOPIC = "tns1:VideoSource/MotionAlarm"
TAMPER_TOPIC = "tns1:RuleEngine/TamperDetector/Tamper"


@dataclass
class _Subscription:
    """A PullPoint subscription of a simulated camera: where in the event log it is, when it expires."""

    number: int
    position: int
    expires: float
    initialized: bool = False


@dataclass
class SimCamera:
    """One simulated camera or NVR; its fields may be changed while it runs (tests flip modes)."""

    user: str = "admin"
    password: str = field(default="Passw0rd", repr=False)
    manufacturer: str = "ClassfleetSim"
    model: str = "SimCam-2"
    firmware: str = "2.4.1"
    serial: str = "SIM0001"
    hardware_id: str = "SIMHW2"
    clock_offset_s: float = 0.0
    ntp: bool = False  # DateTimeType NTP (a manual clock, as captured, by default)
    auth_all: bool = False  # like AXIS: a login even for GetSystemDateAndTime and the other exempt calls
    uri_credentials: bool = False  # hand out stream and snapshot URIs with user:password@ in them, as some do
    media_broken: bool = False  # GetProfiles fails (ActionFailed): a camera with no usable media config
    strict: bool = False
    strict_window_s: float = 10.0
    mode: Mode = "ok"
    delay_s: float = 0.0
    hang_s: float = 600.0
    channels: int = 1
    dead_channels: frozenset[int] = frozenset()
    snapshot_auth: Literal["digest", "basic", "none"] = "digest"
    snapshot_broken: bool = False
    recording: bool = True  # False: every recording job idle (an NVR that stopped recording)
    recording_service: bool | None = None  # None: NVRs offer the recording service, cameras do not
    requests: int = 0
    max_pull_hold_s: float = 60.0  # the real server caps a PullMessages Timeout at 60 s
    max_subscriptions: int = 8  # and keeps at most 8 subscriptions
    events: list[tuple[str, str, str, bool]] = field(default_factory=list)  # (topic, source, data item, state)
    _subs: dict[int, _Subscription] = field(default_factory=dict, repr=False)
    _next_sub: int = 1
    _nonces: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=NONCE_MEMORY),
                                             repr=False)
    _http_nonces: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=64),
                                                 repr=False)

    def tamper(self, tampered: bool, channel: int = 1) -> None:
        """Someone covers (True) or uncovers (False) a video source: a TamperDetector event."""
        self.events.append((TAMPER_TOPIC, self.profiles_sources()[channel - 1], "IsTamper", tampered))

    def motion(self, moving: bool, channel: int = 1) -> None:
        """Motion starts or stops on a video source: a MotionAlarm event, as the real server sends."""
        self.events.append((MOTION_TOPIC, self.profiles_sources()[channel - 1], "State", moving))

    def profiles_sources(self) -> list[str]:
        """The video source tokens, in channel order."""
        return list(dict.fromkeys(p[1] for p in self.profiles()))

    def initial_states(self) -> list[tuple[str, str, str, bool]]:
        """The current state of every property event, for a new subscription's first pull (Initialized)."""
        state: dict[tuple[str, str, str], bool] = {}
        for source in self.profiles_sources():
            state[(MOTION_TOPIC, source, "State")] = False
            state[(TAMPER_TOPIC, source, "IsTamper")] = False
        for topic, source, item, value in list(self.events):
            state[(topic, source, item)] = value
        return [(*key, value) for key, value in state.items()]

    @property
    def nvr(self) -> bool:
        """Several video sources: an NVR."""
        return self.channels > 1

    @property
    def records(self) -> bool:
        """Whether the recording service is offered (no real capture has one: simulator only)."""
        return self.nvr if self.recording_service is None else self.recording_service

    def now(self) -> dt.datetime:
        """The camera's own clock: the real one plus its offset."""
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset_s)

    def profiles(self) -> list[tuple[str, str, int, int, int]]:
        """(token, source token, channel, width, height): two streams on a camera, one per NVR channel."""
        if not self.nvr:
            return [("Profile_0", "VideoSourceToken", 1, 1920, 1080), ("Profile_1", "VideoSourceToken", 1, 640, 360)]
        return [(f"Profile_{c}", f"VideoSource_{c}", c, 1920, 1080) for c in range(1, self.channels + 1)]


def ws_digest(nonce_b64: str, created: str, password: str) -> str:
    """WS-UsernameToken PasswordDigest: Base64(SHA1(nonce bytes + Created text + password))."""
    raw = base64.b64decode(nonce_b64) + created.encode() + password.encode()
    return base64.b64encode(hashlib.sha1(raw).digest()).decode()


def _envelope(body: str, *prefixes: str) -> bytes:
    """A one-line SOAP 1.2 envelope with the captured server's prefixes."""
    decl = "".join(f' xmlns:{p}="{_NS[p]}"' for p in ("SOAP-ENV", *prefixes))
    return (f'<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope{decl}><SOAP-ENV:Body>{body}'
            "</SOAP-ENV:Body></SOAP-ENV:Envelope>").encode()


def not_authorized_fault() -> bytes:
    """The NotAuthorized fault, shaped like the real server's (env:Sender / ter:NotAuthorized), sent with 400."""
    return (b'<?xml version="1.0" encoding="utf-8"?><env:Envelope xmlns:env="http://www.w3.org/2003/05/soap-envelope" '
            b'xmlns:ter="http://www.onvif.org/ver10/error"><env:Body><env:Fault><env:Code><env:Value>env:Sender'
            b"</env:Value><env:Subcode><env:Value>ter:NotAuthorized</env:Value></env:Subcode></env:Code><env:Reason>"
            b'<env:Text xml:lang="en">Sender not Authorized</env:Text></env:Reason><env:Detail><env:Text>'
            b"The action requested requires authorization and the sender is not authorized.</env:Text></env:Detail>"
            b"</env:Fault></env:Body></env:Envelope>")


def action_failed_fault(reason: str) -> bytes:
    """Receiver / ter:Action / ter:ActionFailed, as the real server sends with 500 (a dead NVR channel here)."""
    return ('<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:ter="http://www.onvif.org/ver10/error"><SOAP-ENV:Body><SOAP-ENV:Fault><SOAP-ENV:Code>'
            "<SOAP-ENV:Value>SOAP-ENV:Receiver</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>ter:Action"
            "</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>ter:ActionFailed</SOAP-ENV:Value></SOAP-ENV:Subcode>"
            '</SOAP-ENV:Subcode></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang="en">Action failed'
            "</SOAP-ENV:Text></SOAP-ENV:Reason><SOAP-ENV:Detail><SOAP-ENV:Text>"
            f"{reason}</SOAP-ENV:Text></SOAP-ENV:Detail></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>").encode()


def _datetime_xml(when: dt.datetime) -> str:
    """tt:Time then tt:Date with unpadded numbers, as the real server writes them."""
    return (f"<tt:Time><tt:Hour>{when.hour}</tt:Hour><tt:Minute>{when.minute}</tt:Minute><tt:Second>{when.second}"
            f"</tt:Second></tt:Time><tt:Date><tt:Year>{when.year}</tt:Year><tt:Month>{when.month}</tt:Month>"
            f"<tt:Day>{when.day}</tt:Day></tt:Date>")


def _uri(uri: str) -> str:
    return (f"<trt:MediaUri><tt:Uri>{uri}</tt:Uri><tt:InvalidAfterConnect>false</tt:InvalidAfterConnect>"
            "<tt:InvalidAfterReboot>false</tt:InvalidAfterReboot><tt:Timeout>PT0S</tt:Timeout></trt:MediaUri>")


def _flags(prefix: str, *names: str) -> str:
    return "".join(f"<{prefix}:{n}>false</{prefix}:{n}>" for n in names)


class _Responder:
    """Builds each operation's answer for one camera; one method per operation, found by name."""

    def __init__(self, cam: SimCamera, base: str) -> None:
        self.cam = cam
        self.base = base

    def device_GetSystemDateAndTime(self, req: Any) -> bytes:
        now = self.cam.now()
        body = ("<tds:GetSystemDateAndTimeResponse><tds:SystemDateAndTime><tt:DateTimeType>"
                f"{'NTP' if self.cam.ntp else 'Manual'}</tt:DateTimeType>"
                "<tt:DaylightSavings>false</tt:DaylightSavings><tt:TimeZone><tt:TZ>ICT-7</tt:TZ></tt:TimeZone>"
                f"<tt:UTCDateTime>{_datetime_xml(now)}</tt:UTCDateTime><tt:LocalDateTime>"
                f"{_datetime_xml(now + dt.timedelta(hours=7))}</tt:LocalDateTime></tds:SystemDateAndTime>"
                "</tds:GetSystemDateAndTimeResponse>")
        return _envelope(body, "tds", "tt")

    def device_SetSystemDateAndTime(self, req: Any) -> bytes | tuple[int, bytes]:
        utc = next((el for el in req.iter() if isinstance(el.tag, str)
                    and etree.QName(el).localname == "UTCDateTime"), None)
        if utc is not None:
            try:
                parts = {name: int(_param(utc, name) or "") for name in ("Year", "Month", "Day", "Hour", "Minute",
                                                                          "Second")}
                given = dt.datetime(parts["Year"], parts["Month"], parts["Day"], parts["Hour"], parts["Minute"],
                                    parts["Second"], tzinfo=dt.UTC)
            except ValueError:
                return 500, action_failed_fault("invalid date and time")
            self.cam.clock_offset_s = (given - dt.datetime.now(dt.UTC)).total_seconds()
        return _envelope("<tds:SetSystemDateAndTimeResponse />", "tds")

    def device_GetDeviceInformation(self, req: Any) -> bytes:
        c = self.cam
        body = (f"<tds:GetDeviceInformationResponse><tds:Manufacturer>{c.manufacturer}</tds:Manufacturer>"
                f"<tds:Model>{c.model}</tds:Model><tds:FirmwareVersion>{c.firmware}</tds:FirmwareVersion>"
                f"<tds:SerialNumber>{c.serial}</tds:SerialNumber><tds:HardwareId>{c.hardware_id}</tds:HardwareId>"
                "</tds:GetDeviceInformationResponse>")
        return _envelope(body, "tds")

    def device_GetCapabilities(self, req: Any) -> bytes:
        b, n = self.base, self.cam.channels
        versions = "".join(f"<tt:SupportedVersions><tt:Major>{a}</tt:Major><tt:Minor>{m}</tt:Minor>"
                           "</tt:SupportedVersions>" for a, m in ((2, 60), (2, 40), (2, 0)))
        body = ("<tds:GetCapabilitiesResponse><tds:Capabilities><tt:Device>"
                f"<tt:XAddr>{b}/onvif/device_service</tt:XAddr><tt:Network/><tt:System>"
                "<tt:DiscoveryResolve>true</tt:DiscoveryResolve><tt:DiscoveryBye>true</tt:DiscoveryBye>"
                "<tt:RemoteDiscovery>false</tt:RemoteDiscovery>"
                + _flags("tt", "SystemBackup", "SystemLogging", "FirmwareUpgrade") + versions
                + "</tt:System><tt:IO/><tt:Security>"
                + _flags("tt", "TLS1.1", "TLS1.2", "OnboardKeyGeneration", "AccessPolicyConfig", "X.509Token",
                         "SAMLToken", "KerberosToken", "RELToken")
                + f"</tt:Security></tt:Device><tt:Events><tt:XAddr>{b}/onvif/events_service</tt:XAddr>"
                + _flags("tt", "WSSubscriptionPolicySupport", "WSPullPointSupport",
                         "WSPausableSubscriptionManagerInterfaceSupport")
                + f"</tt:Events><tt:Media><tt:XAddr>{b}/onvif/media_service</tt:XAddr><tt:StreamingCapabilities>"
                "<tt:RTPMulticast>false</tt:RTPMulticast><tt:RTP_TCP>true</tt:RTP_TCP>"
                "<tt:RTP_RTSP_TCP>true</tt:RTP_RTSP_TCP></tt:StreamingCapabilities></tt:Media><tt:Extension>"
                f"<tt:DeviceIO><tt:XAddr>{b}/onvif/deviceio_service</tt:XAddr><tt:VideoSources>{n}</tt:VideoSources>"
                "<tt:VideoOutputs>0</tt:VideoOutputs><tt:AudioSources>0</tt:AudioSources>"
                "<tt:AudioOutputs>0</tt:AudioOutputs><tt:RelayOutputs>0</tt:RelayOutputs></tt:DeviceIO>"
                "</tt:Extension></tds:Capabilities></tds:GetCapabilitiesResponse>")
        return _envelope(body, "tds", "tt")

    def device_GetServices(self, req: Any) -> bytes:
        include = (_param(req, "IncludeCapability") or "").lower() == "true"
        b, n = self.base, len(self.cam.profiles())
        services = [
            ("tds", "/onvif/device_service", (2, 60),
             '<tds:Capabilities><tds:Network IPFilter="false" ZeroConfiguration="false" IPVersion6="false" '
             'DynDNS="false" Dot11Configuration="false" Dot1XConfigurations="0" HostnameFromDHCP="false" NTP="1" '
             'DHCPv6="false"/><tds:Security TLS1.0="false" TLS1.1="false" TLS1.2="false" '
             'OnboardKeyGeneration="false" AccessPolicyConfig="false" DefaultAccessPolicy="false" Dot1X="false" '
             'RemoteUserHandling="false" X.509Token="false" SAMLToken="false" KerberosToken="false" '
             'UsernameToken="true" HttpDigest="true" RELToken="false" MaxUsers="8" MaxUserNameLength="32" '
             'MaxPasswordLength="32"/><tds:System DiscoveryResolve="true" DiscoveryBye="true" '
             'RemoteDiscovery="false" SystemBackup="false" SystemLogging="false" FirmwareUpgrade="false" '
             'HttpFirmwareUpgrade="false" HttpSystemBackup="false" HttpSystemLogging="false" '
             'HttpSupportInformation="false" StorageConfiguration="false"/></tds:Capabilities>'),
            ("tev", "/onvif/events_service", (2, 60),
             '<tev:Capabilities WSSubscriptionPolicySupport="false" WSPullPointSupport="false" '
             'WSPausableSubscriptionManagerInterfaceSupport="false"></tev:Capabilities>'),
            ("trt", "/onvif/media_service", (2, 60),
             f'<trt:Capabilities SnapshotUri="true"><trt:ProfileCapabilities MaximumNumberOfProfiles="{n}"/>'
             '<trt:StreamingCapabilities RTPMulticast="false" RTP_TCP="true" RTP_RTSP_TCP="true"/>'
             "</trt:Capabilities>"),
            ("tmd", "/onvif/deviceio_service", (2, 40),
             f'<tmd:Capabilities VideoSources="{self.cam.channels}" VideoOutputs="0" AudioSources="0" '
             'AudioOutputs="0" RelayOutputs="0" DigitalInputs="0" SerialPorts="0"></tmd:Capabilities>'),
            ("tr2", "/onvif/media2_service", (2, 40),
             '<tr2:Capabilities SnapshotUri="true" Rotation="false" VideoSourceMode="false" OSD="false" '
             'TemporaryOSDText="false" Mask="false" SourceMask="false" WebRTC="0"><tr2:ProfileCapabilities '
             f'ConfigurationsSupported="VideoSource VideoEncoder" MaximumNumberOfProfiles="{n}"/>'
             '<tr2:StreamingCapabilities RTSPStreaming="true" RTPMulticast="false" RTP_RTSP_TCP="true" '
             'NonAggregateControl="false" AutoStartMulticast="false" SecureRTSPStreaming="false"/>'
             "</tr2:Capabilities>"),
        ]
        if self.cam.records:
            services.append(("trc", "/onvif/recording_service", (2, 40),
                             '<trc:Capabilities DynamicRecordings="false" DynamicTracks="false" '
                             f'MaxRecordings="{self.cam.channels}" MaxRecordingJobs="{self.cam.channels}"/>'))
        parts = []
        for prefix, path, (major, minor), caps in services:
            capabilities = f"<tds:Capabilities>{caps}</tds:Capabilities>" if include else ""
            parts.append(f"<tds:Service><tds:Namespace>{_NS[prefix]}</tds:Namespace><tds:XAddr>{b}{path}</tds:XAddr>"
                         f"{capabilities}<tds:Version><tt:Major>{major}</tt:Major><tt:Minor>{minor}</tt:Minor>"
                         "</tds:Version></tds:Service>")
        prefixes = ("tds", "tt", "tev", "trt", "tmd", "tr2") if include else ("tds", "tt")
        if include and self.cam.records:
            prefixes = (*prefixes, "trc")
        return _envelope(f"<tds:GetServicesResponse>{''.join(parts)}</tds:GetServicesResponse>", *prefixes)

    def media_GetProfiles(self, req: Any) -> bytes | tuple[int, bytes]:
        if self.cam.media_broken:
            return 500, action_failed_fault("media configuration unavailable")
        parts = []
        for token, source, _channel, width, height in self.cam.profiles():
            parts.append(
                f'<trt:Profiles token="{token}" fixed="true"><tt:Name>{token}</tt:Name>'
                f'<tt:VideoSourceConfiguration token="{source}Config"><tt:Name>{source}Config</tt:Name>'
                f"<tt:UseCount>1</tt:UseCount><tt:SourceToken>{source}</tt:SourceToken>"
                f'<tt:Bounds x="0" y="0" width="{width}" height="{height}"/></tt:VideoSourceConfiguration>'
                f'<tt:VideoEncoderConfiguration token="{token}_Encoder"><tt:Name>{token}_Encoder</tt:Name>'
                "<tt:UseCount>1</tt:UseCount><tt:Encoding>H264</tt:Encoding>"
                f"<tt:Resolution><tt:Width>{width}</tt:Width><tt:Height>{height}</tt:Height></tt:Resolution>"
                "<tt:Quality>80</tt:Quality><tt:RateControl><tt:FrameRateLimit>25</tt:FrameRateLimit>"
                "<tt:EncodingInterval>1</tt:EncodingInterval><tt:BitrateLimit>4096</tt:BitrateLimit>"
                "</tt:RateControl><tt:H264><tt:GovLength>50</tt:GovLength><tt:H264Profile>Main</tt:H264Profile>"
                "</tt:H264><tt:Multicast><tt:Address><tt:Type>IPv4</tt:Type></tt:Address><tt:Port>0</tt:Port>"
                "<tt:TTL>0</tt:TTL><tt:AutoStart>false</tt:AutoStart></tt:Multicast>"
                "<tt:SessionTimeout>PT0S</tt:SessionTimeout></tt:VideoEncoderConfiguration></trt:Profiles>")
        return _envelope(f"<trt:GetProfilesResponse>{''.join(parts)}</trt:GetProfilesResponse>", "trt", "tt")

    def _profile(self, req: Any) -> tuple[str, str, int, int, int] | None:
        token = _param(req, "ProfileToken")
        return next((p for p in self.cam.profiles() if p[0] == token), None)

    def media_GetStreamUri(self, req: Any) -> bytes | tuple[int, bytes]:
        profile = self._profile(req)
        if profile is None:
            return 500, action_failed_fault("no such profile")
        if profile[2] in self.cam.dead_channels:
            return 500, action_failed_fault(f"video loss on channel {profile[2]}")
        host = self.base.split("//", 1)[1].rsplit(":", 1)[0]
        login = f"{self.cam.user}:{self.cam.password}@" if self.cam.uri_credentials else ""
        uri = f"rtsp://{login}{host}:8554/ch{profile[2]}_{profile[0].rsplit('_', 1)[1]}.h264"
        return _envelope(f"<trt:GetStreamUriResponse>{_uri(uri)}</trt:GetStreamUriResponse>", "trt", "tt")

    def media_GetSnapshotUri(self, req: Any) -> bytes | tuple[int, bytes]:
        profile = self._profile(req)
        if profile is None:
            return 500, action_failed_fault("no such profile")
        uri = f"{self.base}/snapshot/{profile[2]}.jpg"
        if self.cam.uri_credentials:
            uri = uri.replace("//", f"//{self.cam.user}:{self.cam.password}@", 1)
        return _envelope(f"<trt:GetSnapshotUriResponse>{_uri(uri)}</trt:GetSnapshotUriResponse>", "trt", "tt")

    def _job_state(self, channel: int) -> str:
        if channel in self.cam.dead_channels:
            return "Error"
        return "Active" if self.cam.recording else "Idle"

    def recording_GetRecordingJobs(self, req: Any) -> bytes:
        mode = "Active" if self.cam.recording else "Idle"
        items = "".join(f"<trc:JobItem><tt:JobToken>Job_{c}</tt:JobToken><tt:JobConfiguration><tt:RecordingToken>"
                        f"Recording_{c}</tt:RecordingToken><tt:Mode>{mode}</tt:Mode><tt:Priority>1</tt:Priority>"
                        "</tt:JobConfiguration></trc:JobItem>" for c in range(1, self.cam.channels + 1))
        return _envelope(f"<trc:GetRecordingJobsResponse>{items}</trc:GetRecordingJobsResponse>", "trc", "tt")

    def recording_GetRecordingJobState(self, req: Any) -> bytes | tuple[int, bytes]:
        token = _param(req, "JobToken") or ""
        channel = int(token.rsplit("_", 1)[-1]) if token.rsplit("_", 1)[-1].isdigit() else 0
        if not 1 <= channel <= self.cam.channels:
            return 500, action_failed_fault("no such recording job")
        body = (f"<trc:GetRecordingJobStateResponse><trc:State><tt:RecordingToken>Recording_{channel}"
                f"</tt:RecordingToken><tt:State>{self._job_state(channel)}</tt:State></trc:State>"
                "</trc:GetRecordingJobStateResponse>")
        return _envelope(body, "trc", "tt")

    def media_GetVideoSources(self, req: Any) -> bytes:
        seen: dict[str, tuple[int, int]] = {}
        for _token, source, _channel, width, height in self.cam.profiles():
            seen.setdefault(source, (width, height))
        parts = "".join(f'<trt:VideoSources token="{s}"><tt:Framerate>25</tt:Framerate><tt:Resolution>'
                        f"<tt:Width>{w}</tt:Width><tt:Height>{h}</tt:Height></tt:Resolution></trt:VideoSources>"
                        for s, (w, h) in seen.items())
        return _envelope(f"<trt:GetVideoSourcesResponse>{parts}</trt:GetVideoSourcesResponse>", "trt", "tt")


_EV_NS = {
    "wsa": "http://www.w3.org/2005/08/addressing",
    "wsa5": "http://www.w3.org/2005/08/addressing",
    "wsnt": "http://docs.oasis-open.org/wsn/b-2",
    "wstop": "http://docs.oasis-open.org/wsn/t-1",
    "tns1": "http://www.onvif.org/ver10/topics",
    "wsrf-rw": "http://docs.oasis-open.org/wsrf/rw-2",
    "ter": "http://www.onvif.org/ver10/error",
}
_NS.update(_EV_NS)


def _stamp(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def _event_envelope(action: str, body: str, *prefixes: str, header_extra: str = "") -> bytes:
    """An events-service answer: a WS-Addressing Action header, like the real server's."""
    decl = "".join(f' xmlns:{p}="{_NS[p]}"' for p in ("SOAP-ENV", *prefixes))
    return (f'<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope{decl}><SOAP-ENV:Header>{header_extra}'
            f"<wsa:Action>{action}</wsa:Action></SOAP-ENV:Header><SOAP-ENV:Body>{body}</SOAP-ENV:Body>"
            "</SOAP-ENV:Envelope>").encode()


def resource_unknown_fault(base: str) -> bytes:
    """Receiver / wsrf-rw:ResourceUnknownFault with WS-Addressing headers, sent with 500 (capture 21's shape)."""
    return ('<SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope" '
            'xmlns:wsa5="http://www.w3.org/2005/08/addressing" xmlns:wsrf-rw="http://docs.oasis-open.org/wsrf/rw-2" '
            'xmlns:ter="http://www.onvif.org/ver10/error"><SOAP-ENV:Header>'
            f'<wsa5:MessageID>urn:uuid:{secrets.token_hex(4)}-sim</wsa5:MessageID><wsa5:ReplyTo '
            f'SOAP-ENV:mustUnderstand="true"><wsa5:Address>{base}/onvif</wsa5:Address></wsa5:ReplyTo>'
            f'<wsa5:To SOAP-ENV:mustUnderstand="true">{base}/onvif/events_service</wsa5:To>'
            '<wsa5:Action SOAP-ENV:mustUnderstand="true">http://www.w3.org/2005/08/addressing/soap/fault'
            "</wsa5:Action></SOAP-ENV:Header><SOAP-ENV:Body><SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>"
            "SOAP-ENV:Receiver</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>wsrf-rw:ResourceUnknownFault"
            "</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>wsrf-rw:ResourceUnknownFault</SOAP-ENV:Value>"
            '</SOAP-ENV:Subcode></SOAP-ENV:Subcode></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text xml:lang="en">'
            "Resource unknown</SOAP-ENV:Text></SOAP-ENV:Reason><SOAP-ENV:Node>"
            "http://www.w3.org/2003/05/soap-envelope/node/ultimateReceiver</SOAP-ENV:Node><SOAP-ENV:Role>"
            "http://www.w3.org/2003/05/soap-envelope/role/ultimateReceiver</SOAP-ENV:Role><SOAP-ENV:Detail>"
            "<SOAP-ENV:Text>no such subscription</SOAP-ENV:Text></SOAP-ENV:Detail></SOAP-ENV:Fault>"
            "</SOAP-ENV:Body></SOAP-ENV:Envelope>").encode()


_DURATION = re.compile(r"^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+(?:\.\d+)?)S)?)?$")


def _duration_s(text: str | None, default: float) -> float:
    """An xsd:duration such as PT60S or PT1M (what clients send), in seconds."""
    match = _DURATION.match((text or "").strip())
    if not match or not any(match.groups()):
        return default
    days, hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def _notification(topic: str, source: str, item: str, value: bool, operation: str, when: dt.datetime) -> str:
    return ('<wsnt:NotificationMessage><wsnt:Topic Dialect="http://www.onvif.org/ver10/tev/topicExpression/'
            f'ConcreteSet">{topic}</wsnt:Topic><wsnt:Message><tt:Message UtcTime="{_stamp(when)}" '
            f'PropertyOperation="{operation}"><tt:Source><tt:SimpleItem Name="Source" Value="{source}"/>'
            f'</tt:Source><tt:Data><tt:SimpleItem Name="{item}" Value="{str(value).lower()}" /></tt:Data>'
            "</tt:Message></wsnt:Message></wsnt:NotificationMessage>")


EV_ACTION = "http://www.onvif.org/ver10/events/wsdl"
SM_ACTION = "http://docs.oasis-open.org/wsn/bw-2/SubscriptionManager"


SERVICE_PATHS = {"/onvif/device_service": "device", "/onvif/media_service": "media",
                 "/onvif/recording_service": "recording",
                 "/onvif/events_service": "events", "/onvif/deviceio_service": "deviceio",
                 "/onvif/media2_service": "media2"}


def _param(req: Any, name: str) -> str | None:
    """The text of the first element named ``name`` in the request operation (namespace ignored)."""
    for el in req.iter():
        if isinstance(el.tag, str) and etree.QName(el).localname == name:
            return (el.text or "").strip()
    return None


def _authorized(cam: SimCamera, envelope: Any) -> bool:
    """Validate the WS-UsernameToken digest; in strict mode also the Created window and nonce reuse."""
    token = envelope.find(f".//{{{WSSE}}}UsernameToken")
    if token is None:
        return False
    user, created = token.findtext(f"{{{WSSE}}}Username"), token.findtext(f"{{{WSU}}}Created")
    nonce, digest = token.findtext(f"{{{WSSE}}}Nonce"), token.findtext(f"{{{WSSE}}}Password")
    if user != cam.user or not created or not nonce or not digest:
        return False
    try:
        if ws_digest(nonce, created, cam.password) != digest:
            return False
        stamp = dt.datetime.fromisoformat(created.replace("Z", "+00:00"))
    except ValueError:
        return False
    if not cam.strict:
        return True
    if stamp.tzinfo is None or abs((stamp - cam.now()).total_seconds()) > cam.strict_window_s:
        return False
    if nonce in cam._nonces:
        return False
    cam._nonces.append(nonce)
    return True


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - HTTP digest (RFC 7616) MD5, as cameras do


def _snapshot_authorized(cam: SimCamera, request: web.Request) -> bool:
    """HTTP digest (MD5, qop=auth) or basic, as the camera is configured."""
    header = request.headers.get("Authorization", "")
    if cam.snapshot_auth == "none":
        return True
    if cam.snapshot_auth == "basic":
        if not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        except ValueError:
            return False
        return user == cam.user and password == cam.password
    if not header.startswith("Digest "):
        return False
    params = dict((k.strip(), v.strip().strip('"')) for k, _, v in
                  (part.partition("=") for part in _split_digest(header[7:])))
    if params.get("username") != cam.user or params.get("nonce") not in cam._http_nonces:
        return False
    if params.get("uri") != request.path_qs:
        return False
    ha1 = _md5(f"{cam.user}:{params.get('realm', '')}:{cam.password}")
    ha2 = _md5(f"{request.method}:{params['uri']}")
    if params.get("qop"):
        expected = _md5(f"{ha1}:{params['nonce']}:{params.get('nc', '')}:{params.get('cnonce', '')}:"
                        f"{params['qop']}:{ha2}")
    else:
        expected = _md5(f"{ha1}:{params['nonce']}:{ha2}")
    return secrets.compare_digest(expected, params.get("response", ""))


def _split_digest(text: str) -> list[str]:
    """Split a Digest header's comma-separated parameters, respecting quotes."""
    parts, current, quoted = [], [], False
    for ch in text:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    if current:
        parts.append("".join(current))
    return [p for p in parts if "=" in p]


class CameraSimulator(ThreadedSimulator):
    """Many simulated cameras, one loopback port each, served by one aiohttp app on one event loop."""

    thread_name = "ONVIF simulator"

    def __init__(self, host: str = "127.0.0.1") -> None:
        if not host.startswith("127."):
            raise ValueError("the simulator serves on loopback only")
        self.host = host
        self.cameras: dict[int, SimCamera] = {}
        self._sites: dict[int, web.TCPSite] = {}
        self._runner: web.AppRunner | None = None
        self._stopping: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- asyncio API (the simulator's own loop) --------------------------------------------------

    async def astart(self) -> None:
        """Set up the app; cameras are added with ``aadd``."""
        app = web.Application(client_max_size=MAX_BODY)
        app.router.add_post("/onvif/{service}", self._soap)
        app.router.add_get("/snapshot/{channel}.jpg", self._snapshot)
        app.router.add_get("/onvif/{service}", self._get_on_service)
        self._runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=0.2)
        await self._runner.setup()
        self._stopping = asyncio.Event()

    async def aadd(self, cam: SimCamera, port: int = 0, listening: bool = True) -> int:
        """Serve ``cam`` on ``port`` (0: a free one); ``listening=False`` registers it dead."""
        if port == 0:
            port = _free_port(self.host)
        self.cameras[port] = cam
        if listening:
            await self.arevive(port)
        return port

    async def akill(self, port: int) -> None:
        """Close the camera's port: connection refused, like a camera without power."""
        site = self._sites.pop(port, None)
        if site is not None:
            await site.stop()

    async def arevive(self, port: int) -> None:
        """Listen on the camera's port again."""
        if port in self._sites or self._runner is None:
            return
        site = web.TCPSite(self._runner, self.host, port, backlog=512, reuse_address=True)
        await site.start()
        self._sites[port] = site

    async def astop(self) -> None:
        """Release hanging handlers and close every port."""
        if self._stopping is not None:
            self._stopping.set()
        for port in list(self._sites):
            await self.akill(port)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    # -- thread API (tests, demo) ----------------------------------------------------------------

    def _release(self) -> None:
        """Hanging handlers are released before the loop stops."""
        if self._stopping is not None:
            self._stopping.set()

    # -- handlers --------------------------------------------------------------------------------

    def _camera(self, request: web.Request) -> tuple[int, SimCamera] | None:
        sock = request.transport.get_extra_info("sockname") if request.transport else None
        port = sock[1] if sock else 0
        cam = self.cameras.get(port)
        return (port, cam) if cam is not None else None

    async def _misbehave(self, cam: SimCamera, request: web.Request, reply: bytes) -> web.StreamResponse | None:
        """Slow, hanging and black-hole cameras; None when the camera behaves."""
        assert self._stopping is not None
        if cam.mode == "slow" and cam.delay_s > 0:
            await asyncio.sleep(cam.delay_s)
        elif cam.mode == "blackhole":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), cam.hang_s)
            return _reply(503, b"", "text/plain")  # only reached when the simulator stops
        elif cam.mode == "hang":
            resp = web.StreamResponse(status=200, headers={"Content-Type": "application/soap+xml",
                                                           "Content-Length": str(len(reply))})
            await resp.prepare(request)
            await resp.write(reply[: len(reply) // 2])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), cam.hang_s)
            return resp
        return None

    async def _soap(self, request: web.Request) -> web.StreamResponse:
        """Dispatch like the real server: parse, authenticate (unless exempt), then the operation."""
        found = self._camera(request)
        if found is None:
            raise web.HTTPNotFound()
        _port, cam = found
        cam.requests += 1
        service = SERVICE_PATHS.get(request.path)
        raw = await request.read()
        try:
            envelope = etree.fromstring(raw)
            op_el = envelope.find(f"{{{SOAP12}}}Body")[0]
            op = etree.QName(op_el).localname
        except (etree.XMLSyntaxError, TypeError, IndexError):
            return _reply(500, b"<html><body>500 Internal Server Error</body></html>", "text/html")
        if service is None:
            raise web.HTTPNotFound()
        exempt = service == "device" and op.lower() in AUTH_EXEMPT and not cam.auth_all
        if not exempt and not _authorized(cam, envelope):
            answer: bytes | tuple[int, bytes] = (400, not_authorized_fault())
        elif service == "events" and op in ("CreatePullPointSubscription", "PullMessages", "Renew", "Unsubscribe"):
            answer = await self._event(cam, request, op, op_el)
        else:
            answer = self._answer(cam, request, service, op, op_el)
        status, body = answer if isinstance(answer, tuple) else (200, answer)
        misbehaved = await self._misbehave(cam, request, body)
        if misbehaved is not None:
            return misbehaved
        return _reply(status, body)

    def _answer(self, cam: SimCamera, request: web.Request, service: str, op: str,
                op_el: Any) -> bytes | tuple[int, bytes]:
        handler = getattr(_Responder(cam, f"http://{request.host}"), f"{service}_{op}", None)
        if handler is None:  # unknown or unimplemented operation: an empty echo, as the real server answers
            ns = etree.QName(op_el).namespace
            prefix = next((p for p, u in _NS.items() if u == ns), "tds")
            return _envelope(f"<{prefix}:{op}Response />", prefix)
        result: bytes | tuple[int, bytes] = handler(op_el)
        return result

    async def _event(self, cam: SimCamera, request: web.Request, op: str, op_el: Any) -> bytes | tuple[int, bytes]:
        """PullPoint: create, pull (held until news or the Timeout), renew, unsubscribe; ?sub=N selects one."""
        base = f"http://{request.host}"
        now = dt.datetime.now(dt.UTC)
        loop_now = asyncio.get_running_loop().time()
        for number in [n for n, sub in cam._subs.items() if sub.expires < loop_now]:
            del cam._subs[number]
        if op == "CreatePullPointSubscription":
            if len(cam._subs) >= cam.max_subscriptions:
                return 500, action_failed_fault("too many subscriptions")
            life = _duration_s(_param(op_el, "InitialTerminationTime"), 60.0)
            sub = _Subscription(cam._next_sub, len(cam.events), loop_now + life)
            cam._subs[sub.number] = sub
            cam._next_sub += 1
            body = (f"<tev:CreatePullPointSubscriptionResponse><tev:SubscriptionReference><wsa:Address>{base}"
                    f"/onvif/events_service?sub={sub.number}</wsa:Address></tev:SubscriptionReference>"
                    f"<wsnt:CurrentTime>{_stamp(now)}</wsnt:CurrentTime><wsnt:TerminationTime>"
                    f"{_stamp(now + dt.timedelta(seconds=life))}</wsnt:TerminationTime>"
                    "</tev:CreatePullPointSubscriptionResponse>")
            return _event_envelope(f"{EV_ACTION}/EventPortType/CreatePullPointSubscriptionResponse", body,
                                   "wsa", "wsnt", "tev")
        number = int(request.query.get("sub", "0") or 0) if request.query.get("sub", "").isdigit() else 0
        sub = cam._subs.get(number)
        if sub is None:
            return 500, resource_unknown_fault(base)
        if op == "Unsubscribe":
            del cam._subs[number]
            return _event_envelope(f"{SM_ACTION}/UnsubscribeResponse", "<wsnt:UnsubscribeResponse/>", "wsa", "wsnt")
        if op == "Renew":
            life = _duration_s(_param(op_el, "TerminationTime"), 60.0)
            sub.expires = loop_now + life
            body = (f"<wsnt:RenewResponse><wsnt:TerminationTime>{_stamp(now + dt.timedelta(seconds=life))}"
                    f"</wsnt:TerminationTime><wsnt:CurrentTime>{_stamp(now)}</wsnt:CurrentTime></wsnt:RenewResponse>")
            header = (f"<wsa:MessageID>uuid:{secrets.token_hex(8)}</wsa:MessageID><wsa:RelatesTo>urn:uuid:sim"
                      '</wsa:RelatesTo><wsa:To SOAP-ENV:mustUnderstand="1">'
                      "http://www.w3.org/2005/08/addressing/anonymous</wsa:To>")
            return _event_envelope(f"{SM_ACTION}/RenewResponse", body, "wsa", "wsnt", header_extra=header)
        limit = int(_param(op_el, "MessageLimit") or 10)
        messages: list[str] = []
        if not sub.initialized:
            sub.initialized = True
            sub.position = len(cam.events)
            messages = [_notification(*state, "Initialized", now) for state in cam.initial_states()][:limit]
        else:
            assert self._stopping is not None
            deadline = loop_now + min(_duration_s(_param(op_el, "Timeout"), 10.0), cam.max_pull_hold_s)
            while len(cam.events) <= sub.position and asyncio.get_running_loop().time() < deadline:
                if self._stopping.is_set() or number not in cam._subs:
                    break
                await asyncio.sleep(0.05)
            fresh = cam.events[sub.position: sub.position + limit]
            sub.position += len(fresh)
            messages = [_notification(*event, "Changed", dt.datetime.now(dt.UTC)) for event in fresh]
        now = dt.datetime.now(dt.UTC)
        left = max(0.0, sub.expires - asyncio.get_running_loop().time())
        body = (f"<tev:PullMessagesResponse><tev:CurrentTime>{_stamp(now)}</tev:CurrentTime><tev:TerminationTime>"
                f"{_stamp(now + dt.timedelta(seconds=left))}</tev:TerminationTime>{''.join(messages)}"
                "</tev:PullMessagesResponse>")
        return _event_envelope(f"{EV_ACTION}/PullPointSubscription/PullMessagesResponse", body,
                               "wsa", "wstop", "wsnt", "tev", "tns1", "tt")

    async def _get_on_service(self, request: web.Request) -> web.StreamResponse:
        """GET on a SOAP endpoint: 200 with an HTML page, as the real server does."""
        return _reply(200, b"<html><head><title>Error</title></head><body>HTTP method not supported</body></html>",
                      "text/html")

    async def _snapshot(self, request: web.Request) -> web.StreamResponse:
        """The channel's JPEG behind digest or basic auth; a broken snapshot serves an HTML error page."""
        found = self._camera(request)
        if found is None:
            raise web.HTTPNotFound()
        _port, cam = found
        cam.requests += 1
        if not _snapshot_authorized(cam, request):
            if cam.snapshot_auth == "basic":
                challenge = 'Basic realm="classfleet-sim"'
            else:
                nonce = secrets.token_hex(16)
                cam._http_nonces.append(nonce)
                challenge = f'Digest realm="classfleet-sim", qop="auth", nonce="{nonce}", algorithm=MD5'
            return web.Response(status=401, body=b"unauthorized", headers={"WWW-Authenticate": challenge})
        channel = int(request.match_info["channel"]) if request.match_info["channel"].isdigit() else 0
        misbehaved = await self._misbehave(cam, request, SNAPSHOT_JPEG)
        if misbehaved is not None:
            return misbehaved
        if cam.snapshot_broken or channel in cam.dead_channels:
            return _reply(200, b"<html><body>no signal</body></html>", "text/html")
        return _reply(200, SNAPSHOT_JPEG, "image/jpeg")


def _reply(status: int, body: bytes, content_type: str = "application/soap+xml") -> web.Response:
    """A response with the real server's bare Content-type (no charset)."""
    return web.Response(status=status, body=body, headers={"Content-Type": content_type,
                                                           "Server": "classfleet-onvif-sim"})


def _free_port(host: str) -> int:
    """A free TCP port on ``host`` (the simulator binds it right after)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def running_simulator(*cameras: SimCamera) -> Iterator[tuple[CameraSimulator, list[int]]]:
    """A started simulator serving ``cameras``; yields it and their ports."""
    sim = CameraSimulator().start()
    try:
        ports = [sim.add(cam) for cam in cameras]
        yield sim, ports
    finally:
        sim.stop()


def fleet(cameras: int, nvr_channels: int = 0, dead_channels: frozenset[int] = frozenset(),
          user: str = "admin", password: str = "Passw0rd", serial_prefix: str = "SIM") -> list[SimCamera]:
    """A demo fleet: ``cameras`` cameras, plus one NVR with ``nvr_channels`` channels if asked."""
    out = [SimCamera(user=user, password=password, serial=f"{serial_prefix}{i:04d}") for i in range(1, cameras + 1)]
    if nvr_channels:
        out.append(SimCamera(user=user, password=password, model="SimNVR-16", serial=f"{serial_prefix}NVR1",
                             channels=nvr_channels, dead_channels=dead_channels))
    return out


async def _serve(args: argparse.Namespace) -> None:
    """The command line's server: start, print the ports as JSON lines, serve until SIGINT/SIGTERM."""
    sim = CameraSimulator(args.host)
    await sim.astart()
    cams = fleet(args.cameras, args.nvr_channels, frozenset(args.dead_channel), args.user, args.password,
                 args.serial_prefix)
    for i, cam in enumerate(cams):
        cam.clock_offset_s = args.clock_offset
        cam.strict = args.strict
        port = await sim.aadd(cam, args.port_base + i if args.port_base else 0)
        print(json.dumps({"kind": "nvr" if cam.nvr else "camera", "host": args.host, "port": port,
                          "serial": cam.serial, "channels": cam.channels}), flush=True)
    print(json.dumps({"ready": len(cams)}), flush=True)
    await sim.aserve_until_signalled()


def main(argv: list[str] | None = None) -> None:
    """``python -m controller.pollers.onvif.simulator``: a simulated fleet on loopback for the demo or bench."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=5)
    parser.add_argument("--nvr-channels", type=int, default=0, help="also one NVR with this many channels")
    parser.add_argument("--dead-channel", type=int, action="append", default=[], help="an NVR channel with no video")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port-base", type=int, default=0, help="consecutive ports from here (0: free ports)")
    parser.add_argument("--user", default="admin")
    parser.add_argument("--password", default="Passw0rd")
    parser.add_argument("--serial-prefix", default="SIM")
    parser.add_argument("--clock-offset", type=float, default=0.0, help="seconds every camera's clock is off")
    parser.add_argument("--strict", action="store_true", help="reject stale or replayed WS-Security timestamps")
    args = parser.parse_args(argv)
    if not 0 <= args.cameras <= 5000 or not 0 <= args.nvr_channels <= 64:
        parser.error("at most 5000 cameras and 64 NVR channels")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    sys.exit(main())
