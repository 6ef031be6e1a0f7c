"""``classfleet snmp …``: technician commands for the SNMP poller."""

from __future__ import annotations

import typer

app = typer.Typer(help="SNMP: check devices as the poller sees them.", no_args_is_help=True)
