"""``classfleet onvif …``: technician commands for the ONVIF poller."""

from __future__ import annotations

import typer

app = typer.Typer(help="ONVIF: check devices as the poller sees them.", no_args_is_help=True)
