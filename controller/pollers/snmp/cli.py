"""``classfleet snmp …``: technician commands for the SNMP poller."""

from __future__ import annotations

import asyncio
import ipaddress
import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from .decode import Snapshot
from .meaning import DeviceTracker, infer_uplink
from .poller import PollTarget, SnmpPoller, utcnow
from .service import parse_address
from .transport import AUTH_PROTOCOLS, PRIV_PROTOCOLS, PysnmpTransport, SnmpError, Target, V3Credentials

app = typer.Typer(help="SNMP: check devices as the poller sees them.", no_args_is_help=True)
err = Console(stderr=True)

MAX_PREFIX_HOSTS = 1024  # a /22


def _target(host: str, port: int, version: str, community: str, v3_user: str | None, v3_auth_key: str | None,
            v3_priv_key: str | None, v3_auth_protocol: str, v3_priv_protocol: str, timeout: float,
            retries: int) -> Target:
    """Build a target from the command line; v3 options select SNMPv3."""
    v3 = None
    if v3_user:
        if v3_auth_protocol.upper() not in AUTH_PROTOCOLS or v3_priv_protocol.upper() not in PRIV_PROTOCOLS:
            err.print(f"[red]auth protocol must be one of {AUTH_PROTOCOLS}, privacy one of {PRIV_PROTOCOLS}[/red]")
            raise typer.Exit(2)
        v3 = V3Credentials(v3_user, v3_auth_key, v3_priv_key, v3_auth_protocol.upper(), v3_priv_protocol.upper())
        version = "3"
    elif version not in ("1", "2c"):
        err.print("[red]--version must be 1 or 2c (SNMPv3 is chosen with --v3-user)[/red]")
        raise typer.Exit(2)
    return Target(host, port, version, community, v3, timeout_s=timeout, retries=retries)


def check_json(snap: Snapshot, target: Target) -> dict[str, Any]:
    """What ``check --json`` prints: identity, uptime, interfaces, PoE, neighbours, UPS, uplink."""
    uplink = infer_uplink(snap)
    return {
        "address": target.address, "version": target.version, "reachable": True,
        "identity": {"vendor": snap.vendor, "model": snap.model, "serial": snap.serial, "firmware": snap.firmware,
                     "kind": snap.kind, "sys_descr": snap.sys_descr, "sys_object_id": snap.sys_object_id,
                     "sys_name": snap.sys_name, "sys_location": snap.sys_location},
        "uptime_s": snap.uptime_s,
        "interfaces": [{"index": i.index, "name": i.name, "descr": i.descr, "alias": i.alias, "type": i.if_type,
                        "admin": i.admin, "status": i.oper, "speed_bps": i.speed_bps,
                        "in_octets": i.in_octets, "out_octets": i.out_octets, "counter_bits": i.counter_bits,
                        "in_errors": i.in_errors, "out_errors": i.out_errors} for i in snap.interfaces],
        "uplink": {"index": uplink.index, "name": uplink.name, "how": uplink.how} if uplink else None,
        "poe": {"ports": [_slots(p) for p in snap.poe_ports],
                "supplies": [_slots(p) for p in snap.poe_supplies]},
        "neighbours": [_slots(n) for n in snap.neighbours],
        "ups": _slots(snap.ups) if snap.ups else None,
    }


def _slots(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _human_bps(bps: int | None) -> str:
    if not bps:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if bps >= size:
            return f"{bps / size:g}{unit}"
    return str(bps)


def _human_bytes(n: int | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} B"


def _print_check(data: dict[str, Any]) -> None:
    """The human view of a check."""
    out = Console()
    ident = data["identity"]
    out.print(f"[bold]{data['address']}[/bold] (SNMP v{data['version']}): {ident['vendor'] or '?'} "
              f"{ident['model'] or '?'}  serial {ident['serial'] or '-'}  firmware {ident['firmware'] or '-'}")
    out.print(f"  {ident['sys_descr'] or ''}")
    uptime = data["uptime_s"]
    out.print(f"  uptime: {int(uptime // 86400)}d {int(uptime % 86400 // 3600)}h" if uptime is not None
              else "  uptime: unknown")
    if data["uplink"]:
        out.print(f"  uplink: {data['uplink']['name']} ({data['uplink']['how']})")
    rated = any(i.get("in_bps") is not None for i in data["interfaces"])
    table = Table("#", "name", "status", "speed", "in", "out", "errors", "alias",
                  *(("in bit/s", "out bit/s") if rated else ()))
    for i in data["interfaces"]:
        errors = None if i["in_errors"] is None and i["out_errors"] is None else \
            (i["in_errors"] or 0) + (i["out_errors"] or 0)
        status = i["status"] if i["admin"] != "down" else "disabled"
        colour = "green" if status == "up" else "red" if status == "down" else "dim"
        table.add_row(str(i["index"]), i["name"], f"[{colour}]{status}[/{colour}]", _human_bps(i["speed_bps"]),
                      _human_bytes(i["in_octets"]), _human_bytes(i["out_octets"]),
                      "-" if errors is None else str(errors), i["alias"] or "",
                      *((_human_bps(i["in_bps"]), _human_bps(i["out_bps"])) if rated else ()))
    out.print(table)
    if data["poe"]["ports"]:
        delivering = sum(1 for p in data["poe"]["ports"] if p["status"] == "delivering")
        out.print(f"  PoE: {delivering} of {len(data['poe']['ports'])} ports delivering power")
    for n in data["neighbours"]:
        out.print(f"  neighbour on {n['local_port_name'] or n['local_port'] or '?'}: {n['sys_name'] or '?'} "
                  f"port {n['port_id'] or '?'} ({n['chassis_id'] or '?'})")
    if data["ups"]:
        ups = data["ups"]
        out.print(f"  UPS: battery {ups['battery_status'] or '?'}, charge {ups['charge_pct']}%, "
                  f"runtime {ups['runtime_s']}s, on battery: {ups['on_battery']}")


Community = Annotated[str, typer.Option("--community", "-c", help="SNMPv1/v2c community")]
Version = Annotated[str, typer.Option("--version", "-v", help="1 or 2c (v3 is chosen by --v3-user)")]
V3User = Annotated[str | None, typer.Option(help="SNMPv3 user (selects v3)")]
V3AuthKey = Annotated[str | None, typer.Option(help="SNMPv3 auth pass phrase", envvar="CLASSFLEET_SNMP_AUTH_KEY")]
V3PrivKey = Annotated[str | None, typer.Option(help="SNMPv3 privacy pass phrase", envvar="CLASSFLEET_SNMP_PRIV_KEY")]
V3AuthProto = Annotated[str, typer.Option(help="MD5, SHA, SHA224, SHA256, SHA384, SHA512")]
V3PrivProto = Annotated[str, typer.Option(help="DES, AES, AES192, AES256")]
Timeout = Annotated[float, typer.Option(min=0.1, max=60, help="seconds per request")]
Retries = Annotated[int, typer.Option(min=0, max=10)]


@app.command()
def check(address: Annotated[str, typer.Argument(help="HOST or HOST:PORT")],
          community: Community = "public", version: Version = "2c", v3_user: V3User = None,
          v3_auth_key: V3AuthKey = None, v3_priv_key: V3PrivKey = None, v3_auth_protocol: V3AuthProto = "SHA",
          v3_priv_protocol: V3PrivProto = "AES",
          profile: Annotated[str, typer.Option(help="device class of modules.toml")] = "auto",
          timeout: Timeout = 2.0, retries: Retries = 1,
          rate: Annotated[float, typer.Option(min=0, max=300, help="read twice this many seconds apart to "
                                              "show traffic rates (0: counters only)")] = 0.0,
          as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """Read one device as the poller would and print what it would record."""
    try:
        host, port = parse_address(address)
    except ValueError:
        err.print(f"[red]bad address {address!r}: use HOST or HOST:PORT[/red]")
        raise typer.Exit(2) from None
    target = _target(host, port, version, community, v3_user, v3_auth_key, v3_priv_key, v3_auth_protocol,
                     v3_priv_protocol, timeout, retries)

    async def run() -> tuple[Snapshot, dict[int, dict[str, Any]]]:
        poller = SnmpPoller()
        pt = PollTarget(0, target, kind="switch", profile=profile, label=target.address)
        try:
            snap = await poller.read(pt)
            if not rate:
                return snap, {}
            tracker = DeviceTracker(0)
            tracker.observe(snap, utcnow())
            await asyncio.sleep(rate)
            snap = await poller.read(pt)
            result = tracker.observe(snap, utcnow())
            return snap, {c.index: c.data for c in result.components}
        finally:
            if isinstance(poller.transport, PysnmpTransport):
                poller.transport.close()

    try:
        snap, rates = asyncio.run(run())
    except SnmpError as exc:
        if as_json:
            typer.echo(json.dumps({"address": target.address, "version": target.version, "reachable": False,
                                   "error": exc.reason, "detail": exc.detail}))
        else:
            err.print(f"[red]{exc.reason}[/red]: {exc.detail}")
        raise typer.Exit(1) from None
    data = check_json(snap, target)
    for iface in data["interfaces"]:
        measured = rates.get(iface["index"], {})
        iface["in_bps"], iface["out_bps"] = measured.get("in_bps"), measured.get("out_bps")
    if as_json:
        typer.echo(json.dumps(data, ensure_ascii=False))
    else:
        _print_check(data)


@app.command()
def discover(cidr: Annotated[str, typer.Argument(help="range to sweep, e.g. 10.1.2.0/24")],
             community: Community = "public", version: Version = "2c", v3_user: V3User = None,
             v3_auth_key: V3AuthKey = None, v3_priv_key: V3PrivKey = None, v3_auth_protocol: V3AuthProto = "SHA",
             v3_priv_protocol: V3PrivProto = "AES",
             port: Annotated[int, typer.Option(min=1, max=65535, help="UDP port to ask")] = 161,
             concurrency: Annotated[int, typer.Option(min=1, max=1024, help="requests in flight")] = 128,
             timeout: Timeout = 1.0, retries: Retries = 0,
             force: Annotated[bool, typer.Option(help="allow ranges larger than a /22")] = False,
             school: Annotated[str | None, typer.Option(help="with --add: the school to register them in")] = None,
             add: Annotated[bool, typer.Option(help="register what answered as SNMP-watched devices")] = False,
             credential_ref: Annotated[str | None, typer.Option(
                 help="with --add: environment variable holding their credentials")] = None,
             as_json: Annotated[bool, typer.Option("--json", help="machine-readable output")] = False) -> None:
    """Sweep an address range for SNMP agents (bounded concurrency), list what answered, optionally add them."""
    if add and not school:
        err.print("[red]--add needs --school[/red]")
        raise typer.Exit(2)
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError as exc:
        err.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    if network.num_addresses > MAX_PREFIX_HOSTS and not force:
        err.print(f"[red]{cidr} has {network.num_addresses} addresses; more than a /22 needs --force[/red]")
        raise typer.Exit(2)
    hosts = [str(h) for h in (network.hosts() if network.num_addresses > 2 else network)]
    found = asyncio.run(_sweep(hosts, port, concurrency, lambda h: _target(
        h, port, version, community, v3_user, v3_auth_key, v3_priv_key, v3_auth_protocol, v3_priv_protocol,
        timeout, retries), show_progress=not as_json))
    if add and school:
        added = _add_devices(found, school, credential_ref)
        err.print(f"added {added} device(s) to {school}; {len(found) - added} were registered already")
    if as_json:
        typer.echo(json.dumps(found, ensure_ascii=False))
        return
    table = Table("address", "vendor", "model", "name", "description")
    for row in found:
        table.add_row(row["address"], row["vendor"] or "?", row["model"] or "?", row["sys_name"] or "",
                      (row["sys_descr"] or "")[:60])
    Console().print(table)
    err.print(f"{len(found)} of {len(hosts)} addresses answered")


async def _sweep(hosts: list[str], port: int, concurrency: int, make_target: Any,
                 show_progress: bool) -> list[dict[str, Any]]:
    """Ask every host for its system group, at most ``concurrency`` at once, with a progress bar."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    poller = SnmpPoller(concurrency=concurrency)
    found: list[dict[str, Any]] = []
    with Progress(TextColumn("sweeping"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[hits]} found"),
                  TimeElapsedColumn(), console=err, disable=not show_progress, transient=False) as progress:
        task = progress.add_task("sweep", total=len(hosts), hits=0)
        semaphore = asyncio.Semaphore(concurrency)

        async def one(host: str) -> None:
            target = make_target(host)
            async with semaphore:
                try:
                    snap = await poller.read(PollTarget(0, target, profile="system", label=target.address))
                except SnmpError:
                    snap = None
            if snap is not None and (snap.sys_object_id or snap.sys_descr):
                found.append({"address": target.address, "vendor": snap.vendor, "model": snap.model,
                              "kind": snap.kind, "sys_name": snap.sys_name, "sys_descr": snap.sys_descr,
                              "sys_object_id": snap.sys_object_id})
            progress.update(task, advance=1, hits=len(found))

        try:
            await asyncio.gather(*(one(h) for h in hosts))
        finally:
            if isinstance(poller.transport, PysnmpTransport):
                poller.transport.close()
    found.sort(key=lambda r: ipaddress.ip_address(r["address"].rsplit(":", 1)[0]))
    return found


def device_uid(address: str) -> str:
    """A stable device id from its address: ``10.1.2.3`` → ``snmp-10-1-2-3`` (the port too when not 161)."""
    host, port = parse_address(address)
    uid = "snmp-" + "".join(c if c.isalnum() else "-" for c in host.lower())
    return (uid if port == 161 else f"{uid}-{port}")[:64]


def _add_devices(found: list[dict[str, Any]], school: str, credential_ref: str | None) -> int:
    """Register answering agents in a school (unassigned, watched by SNMP); returns how many were new."""
    from sqlalchemy import insert, select

    from ...config import load_settings
    from ...store import db
    from ...store.models import DEVICE_KINDS, Device, School

    url = load_settings().effective_database_url
    db.upgrade(url)
    engine = db.make_engine(url)
    added = 0
    try:
        with engine.begin() as conn:
            if conn.scalar(select(School.id).where(School.id == school)) is None:
                err.print(f"[red]school {school!r} is not registered[/red]")
                raise typer.Exit(2)
            known = {row.uid for row in conn.execute(select(Device.uid).where(Device.school_id == school))}
            known_addresses = {row.mgmt_address for row in conn.execute(
                select(Device.mgmt_address).where(Device.school_id == school, Device.mgmt_address.is_not(None)))}
            for row in found:
                uid = device_uid(row["address"])
                if uid in known or row["address"] in known_addresses:
                    continue
                kind = row["kind"] if row["kind"] in DEVICE_KINDS else "switch"
                name = row["sys_name"] if row["sys_name"] and row["sys_name"] != "<private>" else None
                conn.execute(insert(Device).values(
                    school_id=school, uid=uid, kind=kind, name=name, vendor=row["vendor"], model=row["model"],
                    mgmt_address=row["address"], watched_by="snmp", credential_ref=credential_ref))
                added += 1
    finally:
        engine.dispose()
    return added
