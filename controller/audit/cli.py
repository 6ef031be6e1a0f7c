"""Typer apps the main CLI mounts: ``classfleet import inventory|plan FILE`` and ``classfleet report audit``."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from sqlalchemy.orm import Session

from .export import render
from .i18n import tr
from .validation import ImportResult

import_app = typer.Typer(help="Import the inventory or the equipment plan from CSV/XLSX.", no_args_is_help=True)
report_app = typer.Typer(help="Reports: the equipment audit.", no_args_is_help=True)
err = Console(stderr=True)

PROGRESS_FROM_ROWS = 1000  # a bar only for large files
MAX_ERRORS_SHOWN = 200
FileArg = Annotated[Path, typer.Argument(exists=True, dir_okay=False, readable=True, help="a .csv or .xlsx file")]
LangOpt = Annotated[str, typer.Option(help="language of messages and headers: vi or en")]
ActorOpt = Annotated[str, typer.Option(help="who imports, for the audit log")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print the result as JSON")]


def _url() -> str:
    """The configured database, migrated (imports and reports need the current schema)."""
    from ..config import ConfigError, load_settings
    from ..store import db

    try:
        settings = load_settings()
    except ConfigError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    url = settings.effective_database_url
    db.upgrade(url)
    return url


def _lang(lang: str) -> str:
    if lang not in ("vi", "en"):
        err.print("[red]--lang must be vi or en[/red]")
        raise typer.Exit(2)
    return lang


def _run(importer: Callable[..., ImportResult], file: Path, lang: str, actor: str, as_json: bool) -> None:
    """Run an import with a progress bar on large files, then report; exit 1 when the file had errors."""
    from ..store import db

    lang = _lang(lang)
    engine = db.make_engine(_url())
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                  console=err, transient=True) as bar:
        task = bar.add_task(file.name, total=None, visible=False)

        def progress(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total, visible=total >= PROGRESS_FROM_ROWS)

        with Session(engine) as session:
            result = importer(session, file, actor=actor, progress=progress)
    engine.dispose()
    if as_json:
        typer.echo(json.dumps(result.as_dict(lang), ensure_ascii=False, indent=2))
    else:
        for e in result.errors[:MAX_ERRORS_SHOWN]:
            err.print(e.text(lang), markup=False, highlight=False)
        if len(result.errors) > MAX_ERRORS_SHOWN:
            err.print(tr(lang, "import.more", count=len(result.errors) - MAX_ERRORS_SHOWN))
        (err if result.errors else Console()).print(result.summary(lang), markup=False, highlight=False)
    if result.errors:
        raise typer.Exit(1)


@import_app.command("inventory")
def import_inventory_cmd(file: FileArg, lang: LangOpt = "vi", actor: ActorOpt = "cli",
                         as_json: JsonOpt = False) -> None:
    """Districts, schools, rooms and manually tracked devices; all or nothing, safe to run again."""
    from .importer import import_inventory

    _run(import_inventory, file, lang, actor, as_json)


@import_app.command("plan")
def import_plan_cmd(file: FileArg, lang: LangOpt = "vi", actor: ActorOpt = "cli", as_json: JsonOpt = False) -> None:
    """Planned counts per school × room kind × device kind; all or nothing, safe to run again."""
    from .plan import import_plan

    _run(import_plan, file, lang, actor, as_json)


@report_app.callback()
def report_callback() -> None:
    """Reports from the store (a callback keeps ``audit`` a subcommand while it is the only one)."""


@report_app.command("audit")
def report_audit_cmd(
    output: Annotated[Path, typer.Option(help="where to write the report")],
    format: Annotated[str, typer.Option(help="csv, xlsx or json")] = "xlsx",  # noqa: A002
    days: Annotated[int, typer.Option(min=1, max=3650, help="'seen' means within this many days")] = 30,
    warranty_days: Annotated[int, typer.Option(min=0, max=3650, help="list warranties ending this soon")] = 90,
    lang: LangOpt = "vi",
    school: Annotated[str | None, typer.Option(help="only this school")] = None,
    district: Annotated[str | None, typer.Option(help="only this district's schools")] = None,
) -> None:
    """The equipment plan against registered, seen and healthy devices, per school, district and in total."""
    from ..config import load_settings
    from ..store import db
    from .report import build_report

    lang = _lang(lang)
    if format not in ("csv", "xlsx", "json"):
        err.print("[red]--format must be csv, xlsx or json[/red]")
        raise typer.Exit(2)
    engine = db.make_engine(_url())
    with Session(engine) as session:
        report = build_report(session, dt.datetime.now(dt.UTC), load_settings().offline_after_s, days=days,
                              warranty_days=warranty_days, school=school, district=district)
    engine.dispose()
    output.write_bytes(render(report, format, lang))
    t = report.totals
    err.print(f"{output}: {len(report.schools)} {tr(lang, 'school').lower()}; {tr(lang, 'planned')} {t.planned}, "
              f"{tr(lang, 'registered')} {t.registered}, {tr(lang, 'seen', days=days)} {t.seen}, "
              f"{tr(lang, 'missing_count')} {t.missing}, {tr(lang, 'unplanned_count')} {t.unplanned}",
              markup=False, highlight=False)


@report_app.command("availability")
def report_availability_cmd(
    start: Annotated[str, typer.Option("--from", help="start, e.g. 2026-11-23 or 2026-11-23T07:00+07:00")],
    end: Annotated[str, typer.Option("--to", help="end (exclusive)")],
    output: Annotated[Path | None, typer.Option(help="write JSON here (default: print a table)")] = None,
    school: Annotated[str | None, typer.Option(help="only this school")] = None,
) -> None:
    """Share of school hours devices were working, per school and room kind; incidents per device; MTTR."""
    from ..config import load_settings
    from ..store import db
    from .availability import build_availability

    def when(text: str) -> dt.datetime:
        value = dt.datetime.fromisoformat(text)
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone(dt.timedelta(hours=7)))

    engine = db.make_engine(_url())
    with Session(engine) as session:
        report = build_availability(session, when(start), when(end), load_settings().offline_after_s, school=school)
    engine.dispose()
    if output is not None:
        output.write_text(report.model_dump_json(indent=2))
        return
    for row in report.rows:
        mttr = f"{row.mttr_hours:.1f} h" if row.mttr_hours is not None else "-"
        typer.echo(f"{row.school:<24} {row.room_kind:<16} {row.devices:>5} devices  {row.availability:7.2%}  "
                   f"{row.incidents_per_device:.2f} incidents/device  MTTR {mttr}")
