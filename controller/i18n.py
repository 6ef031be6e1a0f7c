"""User-visible texts from gettext catalogues: ``controller/locale/<lang>/LC_MESSAGES/<domain>.po``.

Message ids are stable keys (``health.ok``), the monolingual-PO style that Poedit and Weblate support with the
English catalogue as the base: rewording the English text does not orphan the Vietnamese one, and each Vietnamese
entry carries the English source as a translator comment. Catalogues are read with Babel once per process; an
entry that is empty or fuzzy is not a translation, and the tests fail on it rather than showing a key.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from babel.messages.pofile import read_po

LOCALE_DIR = Path(__file__).resolve().parent / "locale"
LANGS = ("vi", "en")
DEFAULT_LANG = "vi"  # the default audience
DOMAINS = ("console", "audit")


def catalogue_path(domain: str, lang: str) -> Path:
    """Where the catalogue of ``domain`` in ``lang`` lives."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{domain}.po"


@cache
def catalogue(domain: str, lang: str) -> dict[str, str]:
    """The translated entries of one catalogue, key → text."""
    with catalogue_path(domain, lang).open("rb") as po:
        messages = read_po(po, locale=lang, domain=domain)
    return {str(m.id): str(m.string) for m in messages if m.id and m.string and not m.fuzzy}


def domain_texts(domain: str) -> dict[str, dict[str, str]]:
    """Every language's texts of one domain."""
    return {lang: catalogue(domain, lang) for lang in LANGS}
