"""Row validation shared by the imports: pydantic row models, errors by row and column in vi or en."""

from __future__ import annotations

import contextlib
import datetime as dt
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ValidationError
from pydantic_core import PydanticCustomError
from sqlalchemy.orm import Session

from .i18n import tr
from .tabular import Table, TableError, read_table

ID_RE = re.compile(r"^[a-z0-9_-]{1,64}$")  # the wire contract's ids: they become MQTT topic levels
DMY_RE = re.compile(r"^(\d{1,2})[/.-](\d{1,2})[/.-](\d{4})$")
Progress = Callable[[int, int], None]
MAX_CHANGES = 1000  # changes listed in a result (a preview shows what a file would do; counts stay exact)
SCOPE_CODES = ("scope_school", "scope_district")


@dataclass(frozen=True)
class RowError:
    """One problem: spreadsheet row and column (None for the whole file), an i18n code and its values."""

    row: int | None
    column: str | None
    code: str
    values: dict[str, Any] = field(default_factory=dict)

    def text(self, lang: str = "vi") -> str:
        """The error as the user reads it, e.g. "Dòng 5, cột 'kind': …"."""
        message = tr(lang, self.code, **self.values)
        if self.row is None:
            return tr(lang, "err.file", message=message)
        return tr(lang, "err.location", row=self.row, column=self.column or "", message=message)


@dataclass
class ImportResult:
    """What an import did: rows read, created/updated per entity, unchanged rows, and the errors if any."""

    rows: int = 0
    created: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)
    unchanged: int = 0
    errors: list[RowError] = field(default_factory=list)
    dry_run: bool = False  # validated and applied, then rolled back: what importing would do
    changes: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_CHANGES creations/updates

    @property
    def ok(self) -> bool:
        """True when the file was (or, in a dry run, would be) imported: no errors."""
        return not self.errors

    @property
    def refused(self) -> bool:
        """True when rows name schools (or districts) the importing user may not change."""
        return any(e.code in SCOPE_CODES for e in self.errors)

    def note_change(self, entity: str, action: str, key: tuple[Any, ...], fields: dict[str, Any]) -> None:
        """Remember one creation or update for the preview (bounded)."""
        if len(self.changes) < MAX_CHANGES:
            self.changes.append({"entity": entity, "action": action, "key": "/".join(str(k) for k in key),
                                 "fields": {k: _show(v) for k, v in fields.items()}})

    @property
    def changed(self) -> int:
        """Rows that created or updated something."""
        return sum(self.created.values()) + sum(self.updated.values())

    def summary(self, lang: str = "vi") -> str:
        """One line for the user."""
        if self.errors:
            return tr(lang, "import.errors", count=len(self.errors))
        return tr(lang, "import.preview" if self.dry_run else "import.done", rows=self.rows,
                  created=sum(self.created.values()), updated=sum(self.updated.values()), unchanged=self.unchanged)

    def as_dict(self, lang: str = "vi") -> dict[str, Any]:
        """JSON-friendly form (API, CLI --json)."""
        return {"ok": self.ok, "dry_run": self.dry_run, "rows": self.rows, "created": self.created,
                "updated": self.updated, "unchanged": self.unchanged, "summary": self.summary(lang),
                "errors": [{"row": e.row, "column": e.column, "code": e.code, "message": e.text(lang)}
                           for e in self.errors],
                "changes": self.changes}


def _show(value: Any) -> Any:
    """A changed value as JSON and a page show it (dates as ISO text)."""
    return value.isoformat() if isinstance(value, dt.date) else value


class _RollBack(Exception):
    """Ends a dry run's transaction."""


@contextlib.contextmanager
def transaction(session: Session, dry_run: bool) -> Iterator[None]:
    """One transaction for an import: committed, or in a dry run rolled back once the body has run (so a
    preview runs exactly the statements the import would, and leaves nothing behind)."""
    try:
        with session.begin():
            yield
            if dry_run:
                raise _RollBack
    except _RollBack:
        pass


# --- field validators used by the row models (raise coded errors the texts know) ---

def check_id(value: str) -> str:
    """An id that can be an MQTT topic level."""
    if not ID_RE.fullmatch(value):
        raise PydanticCustomError("bad_id", "bad_id", {"value": value})
    return value


def check_choice(value: str, choices: Sequence[str]) -> str:
    """One of a fixed set of kinds."""
    if value not in choices:
        raise PydanticCustomError("choice", "choice", {"value": value, "choices": ", ".join(choices)})
    return value


def check_timezone(value: str) -> str:
    """An IANA time zone name."""
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise PydanticCustomError("timezone", "timezone", {"value": value}) from None
    return value


def parse_date(value: Any) -> Any:
    """Accept DD/MM/YYYY (how Vietnamese spreadsheets write dates) besides ISO dates and date cells."""
    if isinstance(value, str) and (m := DMY_RE.fullmatch(value)):
        try:
            return dt.date(int(m[3]), int(m[2]), int(m[1]))
        except ValueError:
            raise PydanticCustomError("date", "date", {"value": value}) from None
    return value


def _error(row: int, err: Any, fallback_column: str) -> RowError:
    """Map one pydantic error to a coded RowError."""
    column = str(err["loc"][0]) if err["loc"] else fallback_column
    kind: str = err["type"]
    value = err.get("input")
    ctx = err.get("ctx") or {}
    if kind in ("missing", "bad_id", "choice", "timezone", "date", "warranty_before_purchase", "plug_address"):
        values = dict(ctx) if ctx else {}
        values.setdefault("value", value)
        return RowError(row, column, kind, values)
    if kind == "string_too_long":
        return RowError(row, column, "too_long", {"max": ctx.get("max_length")})
    if kind.startswith("date"):
        return RowError(row, column, "date", {"value": value})
    if kind.startswith("int") or kind.startswith("greater_than"):
        return RowError(row, column, "int", {"value": value})
    return RowError(row, column, "invalid", {"value": value})


def validate_row(model: type[BaseModel], row: int, cells: dict[str, Any], record: str | None = None,
                 fallback_column: str = "") -> tuple[BaseModel | None, list[RowError]]:
    """Validate one row's cells against ``model``; filled cells the model does not use are errors too."""
    errors = [RowError(row, col, "not_allowed", {"record": record})
              for col, value in cells.items()
              if value is not None and col not in model.model_fields and col != "record"]
    data = {k: v for k, v in cells.items() if k in model.model_fields and v is not None}
    try:
        obj = model.model_validate(data)
    except ValidationError as exc:
        errors += [_error(row, e, fallback_column) for e in exc.errors(include_url=False)]
        return None, errors
    return (None if errors else obj), errors


def load_table(path: Path | str, data: bytes | None, result: ImportResult) -> Table | None:
    """The file's table with ``result.rows`` counted, or None with why it cannot be read in ``result.errors``."""
    try:
        table = read_table(path, data)
    except TableError as exc:
        result.errors.append(RowError(None, None, exc.code, dict(exc.values)))
        return None
    result.rows = len(table.rows)
    return table


def check_columns(table: Table, required: Sequence[str], allowed: Sequence[str]) -> list[RowError]:
    """Header problems: a required column missing, or a column we do not know (probably a typo)."""
    errors = [RowError(None, c, "missing_column", {"column": c}) for c in required if c not in table.columns]
    errors += [RowError(None, c, "unknown_column", {"column": c}) for c in table.columns
               if c and c not in allowed]
    return errors
