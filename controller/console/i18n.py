"""The console's texts, from the ``console`` gettext catalogues (see ``controller.i18n``)."""

from __future__ import annotations

from ..i18n import domain_texts

TEXTS: dict[str, dict[str, str]] = domain_texts("console")


def translator(lang: str) -> dict[str, str]:
    """The texts of ``lang``, Vietnamese for anything unknown (the default audience)."""
    return TEXTS.get(lang, TEXTS["vi"])
