"""``classfleet-agent``: enrol, run, or print what the agent would report (argparse: the agent stays light)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from .config import DEFAULT_CONFIG_PATH, AgentConfig, AgentConfigError, load_config


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="classfleet-agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="connect to the broker and report until stopped")
    run.add_argument("--config", type=Path, default=None,
                     help=f"config file (default {DEFAULT_CONFIG_PATH} if it exists)")
    run.add_argument("--school", help="school id, e.g. thcs-le-loi (overrides the config file)")
    run.add_argument("--device", help="device id, e.g. lab1-pc07 (overrides the config file)")
    run.add_argument("--broker", help="mqtt://[user@]host[:port]")
    run.add_argument("--password-file", type=Path, help="file holding the MQTT password")
    run.add_argument("--tls-ca", help="CA certificate for mqtts://")
    run.add_argument("--profile", choices=["pc", "laptop", "smart_board", "other"])
    run.add_argument("--state-dir", type=Path, help="spool and session counter [/var/lib/classfleet-agent]")
    run.add_argument("--heartbeat", type=float, help="seconds between heartbeats [60]")
    run.add_argument("--dry-run", action="store_true", default=None,
                     help="record power and notice commands instead of running them")
    run.add_argument("-v", "--verbose", action="store_true")
    enroll = sub.add_parser("enroll", help="exchange an enrolment token for this machine's id and credentials")
    enroll.add_argument("--controller", required=True, help="controller URL, e.g. https://classfleet.example")
    enroll.add_argument("--token", required=True, help="enrolment token from 'classfleet enroll-token create'")
    enroll.add_argument("--config", type=Path, default=DEFAULT_CONFIG_PATH, help="where to write the config")
    enroll.add_argument("--profile", choices=["pc", "laptop", "smart_board", "other"], default=None)
    enroll.add_argument("--device", help="device id to ask for (default: derived from this machine)")
    enroll.add_argument("--state-dir", type=Path, default=Path("/var/lib/classfleet-agent"))
    sub.add_parser("facts", help="print this machine's heartbeat figures and inventory as JSON")
    return parser


def _run_config(args: argparse.Namespace) -> AgentConfig:
    overrides: dict[str, object] = {
        "school": args.school, "device": args.device, "tls_ca": args.tls_ca, "profile": args.profile,
        "state_dir": args.state_dir, "heartbeat_interval_s": args.heartbeat, "dry_run": args.dry_run,
    }
    if args.broker:
        broker = urlsplit(args.broker)
        if broker.scheme not in ("mqtt", "mqtts") or not broker.hostname:
            raise AgentConfigError("--broker must look like mqtt://host:port")
        overrides.update(host=broker.hostname, port=broker.port or (8883 if broker.scheme == "mqtts" else 1883),
                         username=broker.username)
    if args.password_file:
        overrides["password"] = args.password_file.read_text().strip()
    path = args.config or (DEFAULT_CONFIG_PATH if DEFAULT_CONFIG_PATH.exists() else None)
    if path is not None:
        return load_config(path, **overrides)
    overrides.setdefault("state_dir", None)
    if overrides["state_dir"] is None:
        overrides["state_dir"] = Path("/var/lib/classfleet-agent")
    try:
        return AgentConfig(**{k: v for k, v in overrides.items() if v is not None})
    except Exception as exc:
        raise AgentConfigError(f"invalid settings: {exc}") from None


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``classfleet-agent``."""
    args = _parser().parse_args(argv)
    from .platform import current_platform

    if args.command == "facts":
        machine = current_platform()
        print(json.dumps({"heartbeat": machine.heartbeat(), "live": machine.live_facts([]),
                          "identity": machine.identity_sources().as_dict(), "inventory": machine.inventory()},
                         indent=2, default=str))
        return 0
    if args.command == "enroll":
        from .enroll import EnrolmentError, enroll

        try:
            path = enroll(args.controller, args.token, args.config, profile=args.profile, device=args.device,
                          state_dir=args.state_dir)
        except EnrolmentError as exc:
            print(f"classfleet-agent: enrolment failed: {exc}", file=sys.stderr)
            return 1
        print(f"enrolled; configuration written to {path} (mode 0600)")
        return 0
    try:
        config = _run_config(args)
    except AgentConfigError as exc:
        print(f"classfleet-agent: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .core import Agent, exec_self

    agent = Agent(config, current_platform())
    stop, reload = threading.Event(), threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, lambda *_: reload.set())
    logging.getLogger(__name__).info("agent %s/%s session %d → %s:%d", config.school, config.device, agent.session,
                                     config.host, config.port)
    agent.run(stop, reload)
    if agent.restart_requested.is_set() and not stop.is_set():
        exec_self()
    return 0


if __name__ == "__main__":
    sys.exit(main())
