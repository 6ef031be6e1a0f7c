"""``classfleet-agent``: run the agent, or print what it would report (argparse: the agent stays light)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

from classfleet_wire import is_valid_id


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="classfleet-agent", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="connect to the broker and report until stopped")
    run.add_argument("--school", required=True, help="school id, e.g. thpt-le-loi")
    run.add_argument("--device", required=True, help="device id, e.g. lab1-pc07")
    run.add_argument("--broker", default="mqtt://127.0.0.1:1883", help="mqtt://[user@]host[:port]")
    run.add_argument("--password-file", type=Path, help="file holding the MQTT password")
    run.add_argument("--tls-ca", help="CA certificate for mqtts://")
    run.add_argument("--profile", default="pc", choices=["pc", "laptop", "smart_board", "other"])
    run.add_argument("--state-dir", type=Path, default=Path("/var/lib/classfleet-agent"))
    run.add_argument("--heartbeat", type=float, default=60.0, help="seconds between heartbeats")
    run.add_argument("--allow-power-commands", action="store_true", help="allow remote reboot/shutdown")
    run.add_argument("-v", "--verbose", action="store_true")
    sub.add_parser("facts", help="print this machine's heartbeat figures and inventory as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``classfleet-agent``."""
    args = _parser().parse_args(argv)
    if args.command == "facts":
        from .facts import PsutilFacts

        facts = PsutilFacts()
        print(json.dumps({"heartbeat": facts.heartbeat(), "inventory": facts.inventory()}, indent=2, default=str))
        return 0
    for name in ("school", "device"):
        if not is_valid_id(getattr(args, name)):
            print(f"classfleet-agent: --{name} must match [a-z0-9_-]{{1,64}}", file=sys.stderr)
            return 2
    broker = urlsplit(args.broker)
    if broker.scheme not in ("mqtt", "mqtts") or not broker.hostname:
        print("classfleet-agent: --broker must look like mqtt://host:port", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from .core import Agent, AgentConfig
    from .facts import PsutilFacts

    password = args.password_file.read_text().strip() if args.password_file else None
    config = AgentConfig(
        school=args.school, device=args.device, host=broker.hostname,
        port=broker.port or (8883 if broker.scheme == "mqtts" else 1883), username=broker.username,
        password=password, tls_ca=args.tls_ca, profile=args.profile, state_dir=args.state_dir,
        heartbeat_interval_s=args.heartbeat, allow_power_commands=args.allow_power_commands,
    )
    agent = Agent(config, PsutilFacts())
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    logging.getLogger(__name__).info("agent %s/%s session %d → %s", args.school, args.device, agent.session,
                                     args.broker)
    agent.run(stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
