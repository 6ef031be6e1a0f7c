"""``classfleet import timetable FILE`` and ``classfleet report energy``, added to the audit's Typer apps."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from ..audit.cli import ActorOpt, FileArg, JsonOpt, LangOpt, _lang, _run, _url, err, import_app, report_app
from ..audit.i18n import tr

VN = dt.timezone(dt.timedelta(hours=7))


@import_app.command("timetable")
def import_timetable_cmd(file: FileArg, lang: LangOpt = "vi", actor: ActorOpt = "cli",
                         as_json: JsonOpt = False) -> None:
    """School days and hours, per-weekday hours and holidays (Tết …); all or nothing, safe to run again."""
    from .timetable_import import import_timetable

    _run(import_timetable, file, lang, actor, as_json)


def when(text: str) -> dt.datetime:
    """A date or a date and time; without a zone, Vietnam's (+07:00)."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        err.print(f"[red]not a date or time: {text!r} (e.g. 2026-11-23 or 2026-11-23T07:00+07:00)[/red]")
        raise typer.Exit(2) from None
    return value if value.tzinfo else value.replace(tzinfo=VN)


@report_app.command("energy")
def report_energy_cmd(
    start: Annotated[str, typer.Option("--from", help="start, e.g. 2026-11-23 (midnight, +07:00 unless given)")],
    end: Annotated[str, typer.Option("--to", help="end (exclusive), e.g. 2026-11-30")],
    output: Annotated[Path, typer.Option(help="where to write the report")],
    format: Annotated[str, typer.Option(help="csv, xlsx or json")] = "xlsx",  # noqa: A002
    school: Annotated[str | None, typer.Option(help="only this school")] = None,
    lang: LangOpt = "vi",
) -> None:
    """Devices on outside school hours, per school and room: hours, kWh and how the energy is known."""
    from ..config import load_settings
    from ..store import db
    from .export import render
    from .report import MAX_PERIOD, build_energy

    lang = _lang(lang)
    if format not in ("csv", "xlsx", "json"):
        err.print("[red]--format must be csv, xlsx or json[/red]")
        raise typer.Exit(2)
    a, b = when(start), when(end)
    if b <= a or b - a > MAX_PERIOD:
        err.print("[red]--to must be after --from, at most 400 days later[/red]")
        raise typer.Exit(2)
    settings = load_settings()
    engine = db.make_engine(_url())
    with Session(engine) as session:
        report = build_energy(session, a, b, nominal_w=settings.energy_nominal_w,
                              offline_after_s=settings.offline_after_s, poll_gap_s=settings.energy_poll_gap_s,
                              school=school)
    engine.dispose()
    output.write_bytes(render(report, format, lang))
    err.print(f"{output}: " + tr(lang, "energy.summary", devices=len(report.rows),
                                 hours=round(sum(r.hours for r in report.rows), 2),
                                 kwh=round(sum(r.kwh for r in report.rows), 2)), markup=False, highlight=False)
