"""``classfleet onvif …``: technician commands for the ONVIF poller."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from .check import CameraTarget, CheckReport, CheckSettings, check_one

app = typer.Typer(help="ONVIF: check devices as the poller sees them.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """ONVIF: check devices as the poller sees them."""


def render(report: CheckReport) -> str:
    """The report as a technician reads it: verdict, identity, clock, streams, snapshot, faults."""
    lines = [f"camera {report.host}:{report.port}: "
             + ("reachable" if report.reachable else f"UNREACHABLE ({report.error})")]
    if report.identity:
        ident = report.identity
        lines.append(f"  identity: {ident.get('vendor', '?')} {ident.get('model', '?')}, firmware "
                     f"{ident.get('firmware', '?')}, serial {ident.get('serial', '?')}")
    if report.drift_s is not None:
        note = " (login needed the camera's clock)" if report.clock_adjusted else ""
        lines.append(f"  clock drift: {report.drift_s:+.1f} s{note}")
    if report.auth_ok is False:
        lines.append(f"  login: REFUSED ({report.error})")
    for p in report.profiles:
        size = f" {p.width}x{p.height}" if p.width and p.height else ""
        lines.append(f"  profile {p.token} ({p.encoding or '?'}{size}, source {p.source}): "
                     + (p.stream_uri or f"NO STREAM ({p.error})"))
    for c in report.channels:
        recording = f", recording {c.data['recording']}" if "recording" in c.data else ""
        lines.append(f"  channel {c.index} ({c.name}): {c.status}{recording}")
    if report.recording is not None and not report.channels:
        states = ", ".join(f"{job['job']}: {job['state']}" for job in report.recording) or "no jobs"
        lines.append(f"  recording: {states}")
    if report.snapshot is not None:
        s = report.snapshot
        lines.append(f"  snapshot: {s.uri}: " + (f"ok, {s.kind}, {s.size} bytes" if s.ok else f"FAILED ({s.error})"))
    active = report.active_faults()
    lines.append("  faults: " + (", ".join(active) if active else "none"))
    return "\n".join(lines)


@app.command("check")
def check(
    address: Annotated[str, typer.Argument(help="HOST or HOST:PORT (port 80 by default)")],
    user: Annotated[str, typer.Option("--user", "-u", help="ONVIF user")],
    password: Annotated[str | None, typer.Option(
        "--password", "-p", envvar="CLASSFLEET_ONVIF_PASSWORD", show_envvar=True,
        help="ONVIF password (better: the environment variable, so it stays out of shell history)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    timeout: Annotated[float, typer.Option(help="seconds per call")] = 5.0,
    no_snapshot: Annotated[bool, typer.Option("--no-snapshot", help="skip the snapshot fetch")] = False,
) -> None:
    """What the poller would record for one camera: identity, clock drift, streams, snapshot and faults."""
    try:
        target = CameraTarget.parse(address, user, password)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    settings = CheckSettings(call_timeout_s=timeout, connect_timeout_s=min(timeout, 3.0),
                             check_timeout_s=max(30.0, timeout * 6), snapshot=not no_snapshot, max_concurrency=1)
    report = asyncio.run(check_one(target, settings))
    typer.echo(json.dumps(report.to_dict(), indent=2, default=str) if as_json else render(report))
    raise typer.Exit(0 if report.reachable and not report.active_faults() else 1)
