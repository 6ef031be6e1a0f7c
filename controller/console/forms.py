"""Console forms: incident acknowledge / resolve / comment, and sending a command with a confirmation step.

Each POST checks the session's CSRF token first, then ``check_write`` on the id it names (404 outside
the user's schools, 403 for a read-only role), and goes through ``controller.incidents`` or
``controller.commands``, so the console and the API apply the same rules and write the same audit log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from .. import incidents as workflow
from ..api.deps import NowDep, check_write
from ..auth import Principal
from ..commands import ACTIONS, CommandError, Target, create_commands
from ..store.models import Device, Incident, Room
from .common import LangDep, check_csrf, flash, render, safe_next
from .i18n import translator
from .login import ConsolePrincipal

router = APIRouter(include_in_schema=False)
Csrf = Annotated[str | None, Form(max_length=100)]
Next = Annotated[str | None, Form(max_length=500)]


def _incident_change(request: Request, principal: Principal, incident_id: int, csrf: str | None, next_url: str | None,
                     done_key: str, fn: Any, *args: Any) -> RedirectResponse:
    """Run one workflow step on an incident the principal may change, then go back where the form was."""
    check_csrf(request, csrf)
    with request.app.state.sessions.begin() as session:
        incident = session.get(Incident, incident_id)
        check_write(principal, incident.school_id if incident else None, f"incident {incident_id}")
        try:
            fn(session, incident_id, principal.name, *args)
            flash(request, done_key, id=incident_id)
        except workflow.WorkflowError as exc:  # raised before anything changed
            flash(request, "inc.refused", reason=str(exc))
    return RedirectResponse(safe_next(next_url, f"/console/incidents/{incident_id}"), status_code=303)


@router.post("/console/incidents/{incident_id}/acknowledge")
def acknowledge_form(incident_id: int, request: Request, principal: ConsolePrincipal, now: NowDep, csrf: Csrf = None,
                     next: Next = None, take: Annotated[str | None, Form(max_length=5)] = None) -> Any:  # noqa: A002
    """Acknowledge (and, with ``take``, assign to oneself)."""
    assignee = principal.name if take else None
    return _incident_change(request, principal, incident_id, csrf, next, "inc.acked",
                            lambda s, i, a: workflow.acknowledge(s, i, a, assignee, now))


@router.post("/console/incidents/{incident_id}/resolve")
def resolve_form(incident_id: int, request: Request, principal: ConsolePrincipal, now: NowDep, csrf: Csrf = None,
                 next: Next = None) -> Any:  # noqa: A002
    """Resolve by hand."""
    return _incident_change(request, principal, incident_id, csrf, next, "inc.resolved_msg",
                            lambda s, i, a: workflow.resolve(s, i, a, now))


@router.post("/console/incidents/{incident_id}/comment")
def comment_form(incident_id: int, request: Request, principal: ConsolePrincipal, now: NowDep,
                 text: Annotated[str, Form(max_length=4000)] = "", csrf: Csrf = None,
                 next: Next = None) -> Any:  # noqa: A002
    """Add a note."""
    return _incident_change(request, principal, incident_id, csrf, next, "inc.commented",
                            lambda s, i, a: workflow.comment(s, i, a, text, now))


class _FormError(Exception):
    """A user mistake in the command form: an i18n key and its values, shown on the page it came from."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key, self.values = key, values


@dataclass(frozen=True, slots=True)
class _Order:
    """A checked command target: whom it is for, how to name it, and where to go back to."""

    target: Target
    label: str
    back: str


def _order(session: Session, principal: Principal, lang: str, target_type: str, target_id: int) -> _Order:
    """Check the target against the principal's schools: 404 outside them, 403 for a read-only role."""
    t = translator(lang)
    if target_type == "device":
        device = session.get(Device, target_id)
        check_write(principal, device.school_id if device else None, f"device {target_id}")
        assert device is not None
        return _Order(Target(device_id=device.id), t["target.device"].format(name=device.name or device.uid),
                      f"/console/devices/{device.id}")
    room = session.get(Room, target_id)
    check_write(principal, room.school_id if room else None, f"room {target_id}")
    assert room is not None
    return _Order(Target(room_id=room.id), t["target.room"].format(name=room.name), f"/console/rooms/{room.id}")


def _args(action: str, text: str, delay_s: int) -> dict[str, Any]:
    """The command's arguments from the form's fields, as the agent's handlers read them."""
    if action not in ACTIONS:
        raise _FormError("send.bad", reason=action)
    text = text.strip()
    if action == "message":
        if not text:
            raise _FormError("send.need_text")
        return {"text": text}
    if action in ("reboot", "shutdown"):
        return {"delay_s": delay_s, **({"notice": text} if text else {})}
    return {}


def _create(session: Session, order: _Order, action: str, args: dict[str, Any], principal: Principal,
            expires_min: int, now: dt.datetime) -> int:
    """Queue the commands through ``controller.commands`` (the API's path too); how many were made."""
    try:
        made = create_commands(session, order.target, action, args,
                               expires_in=dt.timedelta(minutes=expires_min), actor=principal.name, now=now)
    except CommandError as exc:
        if "no agent-managed device" in str(exc):
            raise _FormError("send.no_target") from None
        raise _FormError("send.bad", reason=str(exc)) from None
    except ValueError as exc:
        raise _FormError("send.bad", reason=str(exc)) from None
    return len(made)


TargetType = Annotated[str, Form(pattern="^(device|room)$")]
Action = Annotated[str, Form(max_length=32)]
Text = Annotated[str, Form(max_length=500)]
Delay = Annotated[int, Form(ge=0, le=86400)]
Expires = Annotated[int, Form(ge=1, le=43200)]


@router.post("/console/commands/review", response_class=HTMLResponse)
def review_command(request: Request, principal: ConsolePrincipal, now: NowDep, lang: LangDep,
                   target_type: TargetType, target_id: Annotated[int, Form()], action: Action, text: Text = "",
                   delay_s: Delay = 60, expires_min: Expires = 60, csrf: Csrf = None) -> Any:
    """The confirmation step: what will be sent to how many devices; nothing is stored yet."""
    check_csrf(request, csrf)
    with request.app.state.sessions() as session:
        order = _order(session, principal, lang, target_type, target_id)
        try:
            count = _create(session, order, action, _args(action, text, delay_s), principal, expires_min,
                            now)  # a dry run: rolled back below
        except _FormError as exc:
            flash(request, exc.key, **exc.values)
            return RedirectResponse(order.back, status_code=303)
        finally:
            session.rollback()
    t = translator(lang)
    return render(request, "confirm.html", lang, principal, order=order, count=count,
                  question=t["send.confirm_text"].format(action=t[f"action.{action}"], n=count, target=order.label),
                  fields={"target_type": target_type, "target_id": target_id, "action": action, "text": text,
                          "delay_s": delay_s, "expires_min": expires_min})


@router.post("/console/commands")
def send_command(request: Request, principal: ConsolePrincipal, now: NowDep, lang: LangDep,
                 target_type: TargetType, target_id: Annotated[int, Form()], action: Action, text: Text = "",
                 delay_s: Delay = 60, expires_min: Expires = 60, csrf: Csrf = None) -> Any:
    """Queue the confirmed command and go back to the device or room page, where it shows as pending."""
    check_csrf(request, csrf)
    with request.app.state.sessions.begin() as session:
        order = _order(session, principal, lang, target_type, target_id)
        try:
            count = _create(session, order, action, _args(action, text, delay_s), principal, expires_min, now)
            flash(request, "send.done", n=count)
        except _FormError as exc:  # raised before anything was added
            flash(request, exc.key, **exc.values)
    return RedirectResponse(order.back, status_code=303)
