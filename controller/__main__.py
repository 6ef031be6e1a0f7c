"""``python -m controller`` is the ``classfleet`` command."""

from .cli import main

main()
