"""``classfleet``: run the controller or the demo, manage the database schema."""

from __future__ import annotations

import logging
import os
import sys
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console

from .audit.cli import import_app, report_app
from .broker import BrokerError, free_port, port_is_free
from .config import ConfigError, Settings, load_settings
from .energy import cli as energy_cli  # noqa: F401  (adds import timetable, report energy)
from .pollers.onvif import cli as onvif_cli
from .pollers.pjlink import cli as pjlink_cli
from .pollers.snmp import cli as snmp_cli

if TYPE_CHECKING:
    from .runtime import Controller

app = typer.Typer(help="classfleet: smart-classroom device fleet manager.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(import_app, name="import")
app.add_typer(report_app, name="report")
app.add_typer(snmp_cli.app, name="snmp")
app.add_typer(onvif_cli.app, name="onvif")
app.add_typer(pjlink_cli.app, name="pjlink")
console = Console(stderr=True)

HostOpt = Annotated[str | None, typer.Option(help="API bind address [default: 127.0.0.1]")]
PortOpt = Annotated[int | None, typer.Option(help="API port [default: 8080, or a free one if taken]")]
MqttPortOpt = Annotated[int | None, typer.Option(
    help="private broker port [default: 1883, or a free one if taken]")]
DataDirOpt = Annotated[Path | None, typer.Option(help="where the SQLite file and broker state live")]


def _settings(**overrides: object) -> Settings:
    try:
        return load_settings(**overrides)
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


def _logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("alembic").setLevel(logging.WARNING)  # migrations say enough through our own log


def _pick_ports(settings: Settings, port_given: bool, mqtt_port_given: bool) -> Settings:
    """Keep the default ports when free; say so and pick free ones when they are taken."""
    updates: dict[str, int] = {}
    if not port_is_free(settings.port, settings.host if settings.host != "0.0.0.0" else "127.0.0.1"):
        if port_given:
            console.print(f"[red]port {settings.port} is already in use; choose another with --port[/red]")
            raise typer.Exit(2)
        updates["port"] = free_port()
        console.print(f"[yellow]port {settings.port} is taken; using {updates['port']} for the API[/yellow]")
    if settings.mqtt_url is None and not port_is_free(settings.mqtt_port):
        if mqtt_port_given:
            console.print(f"[red]MQTT port {settings.mqtt_port} is already in use (another Mosquitto?); "
                          "choose another with --mqtt-port[/red]")
            raise typer.Exit(2)
        updates["mqtt_port"] = free_port()
        console.print(f"[yellow]MQTT port {settings.mqtt_port} is taken (another Mosquitto?); the private "
                      f"broker uses {updates['mqtt_port']}[/yellow]")
    return settings.model_copy(update=updates) if updates else settings


def _given(flag: object, env: str) -> bool:
    return flag is not None or env in os.environ


def _start(settings: Settings, port: int | None, mqtt_port: int | None) -> Controller:
    """Settle the ports, then start the controller's parts; a broker problem ends with its message."""
    from .runtime import Controller

    settings = _pick_ports(settings, _given(port, "CLASSFLEET_PORT"), _given(mqtt_port, "CLASSFLEET_MQTT_PORT"))
    _logging(settings.log_level)
    ctl = Controller(settings)
    try:
        ctl.start()
    except BrokerError as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(1) from None
    return ctl


@app.command()
def controller(host: HostOpt = None, port: PortOpt = None, mqtt_port: MqttPortOpt = None,
               data_dir: DataDirOpt = None) -> None:
    """Run the controller: API, MQTT ingest and (without CLASSFLEET_MQTT_URL) a private Mosquitto."""
    from .runtime import serve

    ctl = _start(_settings(host=host, port=port, mqtt_port=mqtt_port, data_dir=data_dir), port, mqtt_port)
    settings = ctl.settings

    def banner() -> None:
        console.print(f"classfleet controller: console http://{settings.host}:{settings.port}/console, "
                      f"API http://{settings.host}:{settings.port}/api/v1  "
                      f"(docs /docs, metrics /metrics); data in {settings.data_dir}")

    try:
        serve(settings, ctl, banner)
    finally:
        ctl.stop()


@app.command()
def demo(host: HostOpt = None, port: PortOpt = None, mqtt_port: MqttPortOpt = None, data_dir: DataDirOpt = None,
         agents: Annotated[int, typer.Option(min=1, max=5000, help="simulated agents")] = 200,
         schools: Annotated[int, typer.Option(min=1, max=100)] = 2,
         rooms: Annotated[int, typer.Option(min=1, max=200, help="rooms per school")] = 10,
         heartbeat: Annotated[float, typer.Option(min=1, help="seconds between heartbeats")] = 10.0) -> None:
    """Run the controller with its private broker and a simulated fleet of real agents."""
    from .demo import SimulatedFleet, seed_fleet
    from .runtime import serve

    data_dir = data_dir or Path(tempfile.mkdtemp(prefix="classfleet-demo-"))
    ctl = _start(_settings(host=host, port=port, mqtt_port=mqtt_port, data_dir=data_dir,
                           offline_after_s=max(3.5 * heartbeat, 15.0), mqtt_url="", onvif_interval_s=0, auth=False,
                           pjlink_interval_s=0, snmp_interval_s=0),
                 port, mqtt_port)
    settings = ctl.settings
    assert ctl.engine is not None and ctl.broker is not None
    devices = seed_fleet(ctl.engine, schools=schools, rooms_per_school=rooms, agents=agents)
    fleet = SimulatedFleet(devices, "127.0.0.1", ctl.broker.port, heartbeat_interval_s=heartbeat)
    fleet.start()
    # A corridor camera system: 4 cameras and a 4-channel NVR, simulated over real HTTP/SOAP.
    from .pollers.onvif.demo import start_demo_cameras
    from .pollers.onvif.service import OnvifPoller

    cameras = start_demo_cameras(ctl.engine, "demo-school-1", cameras=4, nvr_channels=4)
    ctl.add_poller(OnvifPoller(ctl.engine, interval_s=30, environ=cameras.environ))
    # And projectors over PJLink: a worn lamp, a fan error, a changed password, an old class 1 one.
    from .pollers.pjlink.demo import start_demo_projectors
    from .pollers.pjlink.service import PJLinkPoller

    projectors = start_demo_projectors(ctl.engine, "demo-school-1", n=4)
    ctl.add_poller(PJLinkPoller(ctl.engine, interval_s=30, environ=projectors.environ))
    # And the school's network over SNMP (snmpsim): a core switch (the uplink) and a 24-port access switch.
    from .demo import start_demo_switches
    from .pollers.snmp.service import SnmpPollerService

    switches = None
    try:
        switches = start_demo_switches(ctl.engine, "demo-school-1", settings.data_dir / "switches")
    except RuntimeError as exc:
        console.print(f"[yellow]demo: no simulated switches: {exc}[/yellow]")
    else:
        ctl.add_poller(SnmpPollerService(ctl.engine, interval_s=15, env=switches.environ))
    # And air conditioners on smart plugs (2 Tasmota, 1 Shelly) with a 17:30 power_off schedule.
    from .demo import start_demo_plugs

    plugs = start_demo_plugs(ctl.engine, sorted({d.school for d in devices}), "127.0.0.1", ctl.broker.port)

    def banner() -> None:
        base = f"http://{settings.host}:{settings.port}"
        console.print(f"\n[bold green]classfleet demo[/bold green]: {len(devices)} simulated agents in "
                      f"{schools} schools, 4 ONVIF cameras, an NVR, 4 PJLink projectors"
                      f"{', 2 SNMP switches' if switches else ''}, {len(plugs.plugs)} smart plugs, broker "
                      f"mqtt://127.0.0.1:{ctl.broker.port}")  # type: ignore[union-attr]
        console.print(f"  console: {base}/console   (English: {base}/console?lang=en)")
        console.print(f"  devices: {base}/api/v1/devices?limit=500")
        console.print(f"  API docs: {base}/docs    metrics: {base}/metrics")
        console.print(f"  data: {settings.data_dir}    stop with Ctrl+C")
        console.print("  [yellow]demo: authentication is off (loopback only); never run a real site so[/yellow]\n")

    try:
        serve(settings, ctl, banner)
    finally:
        fleet.stop()
        plugs.stop()
        ctl.stop()
        cameras.stop()
        projectors.stop()
        if switches is not None:
            switches.stop()


@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Argument(help="target revision")] = "head") -> None:
    """Bring the database schema up to date (safe to run again)."""
    from .store import db

    settings = _settings()
    url = settings.effective_database_url
    db.upgrade(url, revision)
    console.print(f"database at revision {db.current_revision(db.make_engine(url))}")


@db_app.command("current")
def db_current() -> None:
    """Print the schema revision of the database and the newest one this version ships."""
    from .store import db

    settings = _settings()
    engine = db.make_engine(settings.effective_database_url)
    typer.echo(f"database: {db.current_revision(engine) or 'empty'}; code: {db.head_revision()}")


user_app = typer.Typer(help="Users of the console and the API.", no_args_is_help=True)
app.add_typer(user_app, name="user")


@user_app.command("create")
def user_create(
    username: str,
    role: Annotated[str, typer.Option(help="admin, technician or auditor")],
    school: Annotated[list[str] | None, typer.Option(help="a school the user may see (repeatable)")] = None,
    district: Annotated[str | None, typer.Option(help="every school of this district")] = None,
    all_schools: Annotated[bool, typer.Option(help="every school (department staff)")] = False,
) -> None:
    """Add a user; the password is asked for (or read from CLASSFLEET_NEW_PASSWORD)."""
    from sqlalchemy.orm import Session

    from .auth import create_user
    from .store import db

    password = os.environ.get("CLASSFLEET_NEW_PASSWORD") or typer.prompt("password", hide_input=True,
                                                                         confirmation_prompt=True)
    settings = _settings()
    db.upgrade(settings.effective_database_url)
    with Session(db.make_engine(settings.effective_database_url)) as session, session.begin():
        try:
            create_user(session, username, password, role, schools=school or [], district=district,
                        all_schools=all_schools)
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    console.print(f"user {username} ({role}) created")


@user_app.command("token")
def user_token(username: str, name: Annotated[str, typer.Option(help="what the token is for")] = "cli") -> None:
    """Issue an API token for a user (shown once; only its hash is kept)."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from .auth import create_token
    from .store import db
    from .store.models import User

    settings = _settings()
    with Session(db.make_engine(settings.effective_database_url)) as session, session.begin():
        user = session.scalar(select(User).where(User.username == username))
        if user is None:
            console.print(f"[red]no user {username!r}[/red]")
            raise typer.Exit(2)
        typer.echo(create_token(session, user, name))


token_app = typer.Typer(help="Enrolment tokens for agents.", no_args_is_help=True)
app.add_typer(token_app, name="enroll-token")
device_app = typer.Typer(help="Devices.", no_args_is_help=True)
app.add_typer(device_app, name="device")


@token_app.command("create")
def enroll_token_create(
    school: Annotated[str, typer.Option(help="the school the enrolled machines belong to")],
    uses: Annotated[int, typer.Option(min=1, max=100_000, help="how many machines may use it")] = 1,
    expires: Annotated[str, typer.Option(help="validity, e.g. 30d, 12h, 90m")] = "7d",
    note: Annotated[str | None, typer.Option(help="what it is for, e.g. 'lab image 2026'")] = None,
) -> None:
    """Issue a token (shown once) for 'classfleet-agent enroll --token …'."""
    from sqlalchemy.orm import Session

    from .enrolment import create_token, parse_duration
    from .store import db

    settings = _settings()
    try:
        valid_for = parse_duration(expires)
    except ValueError as exc:
        console.print(f"[red]--expires: {exc}[/red]")
        raise typer.Exit(2) from None
    db.upgrade(settings.effective_database_url)
    with Session(db.make_engine(settings.effective_database_url)) as session, session.begin():
        try:
            issued = create_token(session, school, uses=uses, valid_for=valid_for, note=note)
        except ValueError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    typer.echo(issued.token)
    console.print(f"school {issued.school}: {issued.max_uses} use(s) until {issued.expires_at:%Y-%m-%d %H:%M} UTC; "
                  "it is shown only now")


@device_app.command("revoke")
def device_revoke(school: str, device: str) -> None:
    """Revoke a device's MQTT credentials (it must enrol again)."""
    from sqlalchemy.orm import Session

    from .enrolment import revoke_device
    from .store import db

    settings = _settings()
    with Session(db.make_engine(settings.effective_database_url)) as session, session.begin():
        if not revoke_device(session, school, device):
            console.print(f"[yellow]{school}/{device} has no active credentials[/yellow]")
            raise typer.Exit(1)
    console.print(f"revoked {school}/{device}")


@device_app.command("plug-credential")
def device_plug_credential(school: str, device: str) -> None:
    """A new MQTT login for a registered smart plug (Tasmota, Shelly): printed once; then run 'broker acl'."""
    from sqlalchemy.orm import Session

    from .broker_acl import PlugCredentialError, issue_plug_credential
    from .store import db

    settings = _settings()
    with Session(db.make_engine(settings.effective_database_url)) as session, session.begin():
        try:
            username, password = issue_plug_credential(session, school, device)
        except PlugCredentialError as exc:
            console.print(f"[red]{exc}[/red]")
            raise typer.Exit(2) from None
    typer.echo(f"user: {username}\npassword: {password}")


broker_app = typer.Typer(help="The production broker: access control, and draining a removed replica's session.",
                         no_args_is_help=True)
app.add_typer(broker_app, name="broker")


@broker_app.command("acl")
def broker_acl(
    out_dir: Annotated[Path, typer.Option(help="where to write classfleet.passwd and classfleet.acl")],
    controller_user: Annotated[str, typer.Option(help="the controller's MQTT user")] = "classfleet-controller",
    reload_pid_file: Annotated[Path | None, typer.Option(help="mosquitto's pid file: SIGHUP it after writing")] = None,
) -> None:
    """Write Mosquitto's password and ACL files from the enrolled devices (the controller's password is
    CLASSFLEET_MQTT_PASSWORD)."""
    from sqlalchemy.orm import Session

    from .broker_acl import write
    from .store import db

    settings = _settings()
    if settings.mqtt_password is None:
        console.print("[red]set CLASSFLEET_MQTT_PASSWORD: the controller's own MQTT password[/red]")
        raise typer.Exit(2)
    with Session(db.make_engine(settings.effective_database_url)) as session:
        files = write(session, out_dir, controller_user, settings.mqtt_password.get_secret_value(), reload_pid_file)
    console.print(f"wrote {files.password_file} and {files.acl_file} ({files.devices} devices)")


@broker_app.command("drain")
def broker_drain(
    client_id: Annotated[str, typer.Argument(help="the removed replica's MQTT client id (classfleet-controller-2)")],
    quiet: Annotated[float, typer.Option(help="done once nothing has arrived for this many seconds")] = 5.0,
    timeout: Annotated[float, typer.Option(help="give up (keeping the session) after this many seconds")] = 900.0,
) -> None:
    """Before scaling replicas down for good: store what a stopped replica's broker session holds, then end
    the session so the broker stops dealing it messages. Uses this controller's settings (broker, database)."""
    from .drain import DrainRefused, drain_session

    settings = _settings()
    try:
        with console.status(f"draining {client_id}'s session…"):
            result = drain_session(settings, client_id, quiet_s=quiet, timeout_s=timeout)
    except (DrainRefused, ConnectionError) as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if not result.ended:
        console.print(f"[yellow]{client_id}: stored {result.stored} messages, but the session was not empty after "
                      f"{timeout:g} s (a large backlog, or the store slow or away); it is kept, nothing lost: run "
                      "this again[/yellow]")
        raise typer.Exit(1)
    console.print(f"{client_id}: stored {result.stored} messages from its session; the broker has forgotten the "
                  "session, so the live replicas get every new message")


@app.command()
def version() -> None:
    """Print the classfleet version."""
    from . import __version__

    typer.echo(__version__)


def main() -> None:
    """Entry point of ``classfleet``."""
    try:
        app()
    except ConfigError as exc:
        console.print(f"[red]{exc}[/red]")
        sys.exit(2)
