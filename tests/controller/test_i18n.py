"""The gettext catalogues: every key in both languages, translated, with the same placeholders, and compilable."""

from __future__ import annotations

import io
import re
import string

import pytest
from babel.messages.mofile import read_mo, write_mo
from babel.messages.pofile import read_po

from controller.i18n import DOMAINS, LANGS, catalogue, catalogue_path


def _entries(domain: str, lang: str):
    with catalogue_path(domain, lang).open("rb") as po:
        return [m for m in read_po(po, locale=lang, domain=domain) if m.id]


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


@pytest.mark.parametrize("domain", DOMAINS)
def test_both_languages_have_the_same_keys_and_every_entry_is_translated(domain):
    keys = {}
    for lang in LANGS:
        entries = _entries(domain, lang)
        untranslated = [m.id for m in entries if not m.string or m.fuzzy]
        assert not untranslated, (domain, lang, untranslated)
        keys[lang] = {m.id for m in entries}
        assert len(keys[lang]) == len(entries), "duplicate keys"
    assert keys["vi"] == keys["en"], keys["vi"] ^ keys["en"]


@pytest.mark.parametrize("domain", DOMAINS)
def test_placeholders_match_between_languages(domain):
    vi, en = catalogue(domain, "vi"), catalogue(domain, "en")
    mismatched = {key: (sorted(_fields(vi[key])), sorted(_fields(en[key]))) for key in en
                  if _fields(vi[key]) != _fields(en[key])}
    assert not mismatched


@pytest.mark.parametrize("domain", DOMAINS)
def test_vietnamese_entries_show_translators_the_english_source(domain):
    en = catalogue(domain, "en")
    stale = [m.id for m in _entries(domain, "vi") if " ".join(m.auto_comments) != f"en: {en[m.id]}"]
    assert not stale, f"refresh the '#. en: …' comments of {stale}"


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("domain", DOMAINS)
def test_catalogues_compile_to_mo(domain, lang):
    with catalogue_path(domain, lang).open("rb") as po:
        messages = read_po(po, locale=lang, domain=domain)
    buffer = io.BytesIO()
    write_mo(buffer, messages)
    buffer.seek(0)
    compiled = read_mo(buffer)
    assert {m.id: m.string for m in compiled if m.id} == catalogue(domain, lang)
    assert re.fullmatch(r"[a-z]{2}", lang)
