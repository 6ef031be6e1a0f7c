"""Every console text exists in Vietnamese and English: static keys used by the templates and the keys built
from the store's vocabularies (health, kinds, states, actions, roles)."""

from __future__ import annotations

import re
from pathlib import Path

from controller.commands import ACTIONS
from controller.console.i18n import TEXTS
from controller.store.models import (
    COMMAND_STATES,
    DEVICE_KINDS,
    HEALTH_STATES,
    INCIDENT_STATES,
    LIFECYCLES,
    ROLES,
    ROOM_KINDS,
)

TEMPLATES = Path(__file__).resolve().parents[3] / "controller" / "console" / "templates"


def test_both_languages_have_the_same_keys():
    assert set(TEXTS["vi"]) == set(TEXTS["en"])


def test_every_key_the_templates_and_vocabularies_need_is_there():
    used: set[str] = set()
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        used |= set(re.findall(r"t\['([a-z_.]+)'\]", text))
        used |= {k for k in re.findall(r"\bt\.([a-z_]+)\b", text) if k not in ("get", "format")}
    used |= {f"health.{h}" for h in HEALTH_STATES} | {f"roomkind.{k}" for k in ROOM_KINDS}
    used |= {f"devkind.{k}" for k in DEVICE_KINDS} | {f"cmdstate.{s}" for s in COMMAND_STATES}
    used |= {f"inc.state.{s}" for s in ("active", *INCIDENT_STATES)} | {f"action.{a}" for a in ACTIONS}
    used |= {f"role.{r}" for r in ROLES} | {f"lifecycle.{x}" for x in LIFECYCLES}
    used |= {f"severity.{s}" for s in ("info", "warning", "critical")}
    for lang in ("vi", "en"):
        missing = sorted(used - set(TEXTS[lang]))
        assert not missing, (lang, missing)
