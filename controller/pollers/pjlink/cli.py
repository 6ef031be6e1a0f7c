"""``classfleet pjlink …``: technician commands for the PJLink poller."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

from .check import CheckReport, CheckSettings, ProjectorTarget, check_one
from .protocol import input_name

app = typer.Typer(help="PJLink: check projectors as the poller sees them.", no_args_is_help=True)


@app.callback()
def _group() -> None:
    """PJLink: check projectors as the poller sees them."""


def render(report: CheckReport) -> str:
    """The report as a technician reads it: verdict, identity, power, input, lamps, error flags, faults."""
    if report.failure == "auth":
        verdict = f"LOGIN REFUSED ({report.error})"
    elif report.reachable:
        verdict = "reachable"
    else:
        verdict = f"UNREACHABLE ({report.error})"
    lines = [f"projector {report.host}:{report.port}: {verdict}"]
    if report.pjlink_class is not None:
        auth = "password" if report.auth_required else "no password"
        named = f", name {report.name!r}" if report.name else ""
        lines.append(f"  PJLink class {report.pjlink_class}, {auth}{named}")
    if report.identity:
        ident = report.identity
        lines.append(f"  identity: {ident.get('vendor', '?')} {ident.get('model', '?')}, serial "
                     f"{ident.get('serial', '?')}, firmware {ident.get('firmware', '?')}")
    if report.power is not None:
        lines.append(f"  power: {report.power}" + (f", input {input_name(report.input)} ({report.input})"
                                                   if report.input else ""))
    if report.lamps == []:
        lines.append("  lamps: none (no lamp to report)")
    for lamp in report.lamps or []:
        state = "END OF LIFE" if lamp.end_of_life else "ok"
        lines.append(f"  lamp {lamp.index}: {lamp.hours} h of {lamp.threshold_h} h, {'lit' if lamp.lit else 'off'}"
                     f", {state}")
    if report.errors is not None:
        raised = [f"{k} {v.upper()}" for k, v in report.errors.items() if v != "ok"]
        lines.append("  error status: " + (", ".join(raised) if raised else "all ok"))
    if report.refused:
        lines.append("  refused: " + ", ".join(f"{c} {e}" for c, e in sorted(report.refused.items())))
    active = report.active_faults()
    lines.append("  faults: " + (", ".join(active) if active else "none"))
    return "\n".join(lines)


@app.command("check")
def check(
    address: Annotated[str, typer.Argument(help="HOST or HOST:PORT (port 4352 by default)")],
    password: Annotated[str | None, typer.Option(
        "--password", "-p", envvar="CLASSFLEET_PJLINK_PASSWORD", show_envvar=True,
        help="PJLink password (better: the environment variable, so it stays out of shell history)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False,
    timeout: Annotated[float, typer.Option(help="seconds to wait for each answer")] = 5.0,
) -> None:
    """What the poller would record for one projector: identity, power, input, lamps, error flags and faults."""
    try:
        target = ProjectorTarget.parse(address, password)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    settings = CheckSettings(connect_timeout_s=min(timeout, 3.0), read_timeout_s=timeout,
                             check_timeout_s=max(30.0, timeout * 4), max_concurrency=1)
    report = asyncio.run(check_one(target, settings))
    typer.echo(json.dumps(report.to_dict(), indent=2, default=str) if as_json else render(report))
    raise typer.Exit(0 if report.reachable and not report.active_faults() else 1)
