"""The audit's texts (import errors, report headers), from the ``audit`` gettext catalogues."""

from __future__ import annotations

from ..i18n import domain_texts

LANGS = ("vi", "en")

TEXTS: dict[str, dict[str, str]] = domain_texts("audit")


def texts(lang: str) -> dict[str, str]:
    """The texts of ``lang``; Vietnamese for anything unknown, as the console does."""
    return TEXTS.get(lang, TEXTS["vi"])


def tr(lang: str, key: str, **values: object) -> str:
    """One text, formatted; falls back to the key so a missing text never hides an error."""
    template = texts(lang).get(key, key)
    try:
        return template.format(**values)
    except (KeyError, IndexError):
        return template
