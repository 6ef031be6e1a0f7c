"""The poll declarations of ``modules.toml``: which scalars and table columns each device class reads,
and the sysObjectID → vendor/model map. Data, not code, so a new device class needs no release."""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .transport import Oid, parse_oid

DEFAULT_PATH = Path(__file__).with_name("modules.toml")


@dataclass(frozen=True, slots=True)
class Module:
    """One module: scalars to GET and tables (column name → column OID) to walk."""

    name: str
    scalars: dict[str, Oid] = field(default_factory=dict)
    tables: dict[str, dict[str, Oid]] = field(default_factory=dict)
    every_s: float = 0.0  # 0: every poll; else re-read at most this often (identity changes rarely)

    @property
    def names(self) -> set[str]:
        """Every scalar and column name this module reads."""
        return set(self.scalars) | {c for cols in self.tables.values() for c in cols}


@dataclass(frozen=True, slots=True)
class VendorEntry:
    """What a sysObjectID prefix says about the device."""

    vendor: str | None = None
    model: str | None = None
    kind: str | None = None
    model_from_descr: str | None = None


@dataclass(frozen=True, slots=True)
class Catalogue:
    """All modules, the device classes built from them, and the vendor map."""

    modules: dict[str, Module]
    classes: dict[str, tuple[str, ...]]
    vendors: dict[Oid, VendorEntry]

    def modules_for(self, profile: str | None, kind: str | None = None) -> list[Module]:
        """The modules of a poll profile, else of the device kind's class, else ``default``."""
        for name in (profile, kind, "default"):
            if name and name in self.classes:
                return [self.modules[m] for m in self.classes[name]]
        return [self.modules[m] for m in self.classes.get("default", ("system",))]

    def vendor_for(self, sys_object_id: str | None) -> VendorEntry:
        """Merge the entries of every matching prefix, the longest (most specific) last."""
        if not sys_object_id:
            return VendorEntry()
        try:
            oid = parse_oid(sys_object_id)
        except ValueError:
            return VendorEntry()
        merged: dict[str, str | None] = {}
        for n in range(1, len(oid) + 1):
            entry = self.vendors.get(oid[:n])
            if entry is not None:
                merged.update({k: v for k, v in (("vendor", entry.vendor), ("model", entry.model),
                                                 ("kind", entry.kind),
                                                 ("model_from_descr", entry.model_from_descr)) if v})
        return VendorEntry(**merged)


def load(path: Path = DEFAULT_PATH) -> Catalogue:
    """Parse and check a modules file: every class names known modules, every OID parses."""
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    modules: dict[str, Module] = {}
    for name, body in data.get("modules", {}).items():
        scalars = {k: parse_oid(v) for k, v in body.get("scalars", {}).items()}
        tables = {t: {k: parse_oid(v) for k, v in cols.items()} for t, cols in body.get("tables", {}).items()}
        modules[name] = Module(name, scalars, tables, float(body.get("every_s", 0)))
    classes: dict[str, tuple[str, ...]] = {}
    for name, members in data.get("classes", {}).items():
        unknown = [m for m in members if m not in modules]
        if unknown:
            raise ValueError(f"{path}: class {name!r} names unknown modules {unknown}")
        classes[name] = tuple(members)
    vendors: dict[Oid, VendorEntry] = {}
    for prefix, entry in data.get("vendors", {}).items():
        if entry.get("model_from_descr"):
            re.compile(entry["model_from_descr"])
        vendors[parse_oid(prefix)] = VendorEntry(entry.get("vendor"), entry.get("model"), entry.get("kind"),
                                                 entry.get("model_from_descr"))
    return Catalogue(modules, classes, vendors)


@lru_cache(maxsize=1)
def default_catalogue() -> Catalogue:
    """The shipped ``modules.toml``, parsed once."""
    return load()
