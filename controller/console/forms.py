"""Console forms: incident acknowledge / resolve / comment, sending a command (to a device, a room or a school,
now or at a time in the school's zone) with a confirmation step, and a school's maintenance windows.

Each POST checks the session's CSRF token first, then ``check_write`` on the id it names (404 outside
the user's schools, 403 for a read-only role), and goes through ``controller.incidents`` or
``controller.commands``, so the console and the API apply the same rules and write the same audit log.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from .. import incidents as workflow
from ..api.deps import NowDep, check_write
from ..auth import Principal
from ..commands import ACTIONS, CommandError, Target, create_commands
from ..store.models import DEVICE_KINDS, Device, Incident, MaintenanceWindow, Room, School
from .common import Formats, LangDep, check_csrf, flash, render, safe_next, zone
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
    """A user mistake in a form: an i18n key and its values, shown on the page it came from."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key, self.values = key, values


@dataclass(frozen=True, slots=True)
class _Order:
    """A checked command target: whom it is for, how to name it, its school's zone, and where to go back to."""

    target: Target
    label: str
    back: str
    tz: str  # the school's time zone: scheduled times are read and shown in it


MAX_AHEAD = dt.timedelta(days=30)  # a command scheduled further ahead is more likely a typo in the year
PAST_SLACK = dt.timedelta(minutes=1)  # the time it takes to fill in the form


def _order(session: Session, principal: Principal, lang: str, target_type: str, target_id: str,
           kind: str) -> _Order:
    """Check the target against the principal's schools: 404 outside them, 403 for a read-only role."""
    t = translator(lang)
    if kind and kind not in DEVICE_KINDS:
        raise HTTPException(422, detail=f"kind must be one of: {', '.join(DEVICE_KINDS)}")
    numeric = int(target_id) if target_id.isdigit() and len(target_id) < 10 else 0
    if target_type == "device":
        device = session.get(Device, numeric) if numeric else None
        check_write(principal, device.school_id if device else None, f"device {target_id}")
        assert device is not None
        school = session.get(School, device.school_id)
        assert school is not None
        return _Order(Target(device_id=device.id), t["target.device"].format(name=device.name or device.uid),
                      f"/console/devices/{device.id}", school.timezone)
    suffix = t["target.kind"].format(kind=t.get(f"devkind.{kind}", kind)) if kind else ""
    if target_type == "room":
        room = session.get(Room, numeric) if numeric else None
        check_write(principal, room.school_id if room else None, f"room {target_id}")
        assert room is not None
        school = session.get(School, room.school_id)
        assert school is not None
        return _Order(Target(room_id=room.id, kind=kind or None), t["target.room"].format(name=room.name) + suffix,
                      f"/console/rooms/{room.id}", school.timezone)
    school = session.get(School, target_id)
    check_write(principal, school.id if school else None, f"school {target_id}")
    assert school is not None
    return _Order(Target(school_id=school.id, kind=kind or None),
                  t["target.school"].format(name=school.name) + suffix, f"/console/schools/{school.id}",
                  school.timezone)


def _local_time(value: str, tz_name: str) -> dt.datetime | None:
    """A ``datetime-local`` field's value, read in the school's zone; None when empty."""
    value = value.strip()
    if not value:
        return None
    try:
        naive = dt.datetime.fromisoformat(value)
    except ValueError:
        raise _FormError("form.bad_time", value=value) from None
    if naive.tzinfo is not None:
        raise _FormError("form.bad_time", value=value)
    return naive.replace(tzinfo=zone(tz_name))


def _schedule(value: str, order: _Order, now: dt.datetime) -> dt.datetime | None:
    """``not_before`` from the form: a time in the school's zone, not in the past, at most 30 days ahead."""
    when = _local_time(value, order.tz)
    if when is None:
        return None
    if when < now - PAST_SLACK:
        raise _FormError("send.past")
    if when > now + MAX_AHEAD:
        raise _FormError("send.too_far")
    return when


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
            expires_min: int, not_before: dt.datetime | None, now: dt.datetime) -> int:
    """Queue the commands through ``controller.commands`` (the API's path too); how many were made."""
    try:
        made = create_commands(session, order.target, action, args, expires_in=dt.timedelta(minutes=expires_min),
                               not_before=not_before, actor=principal.name, now=now)
    except CommandError as exc:
        if "no agent-managed device" in str(exc):
            raise _FormError("send.no_target") from None
        if "no smart-plug device" in str(exc):
            raise _FormError("send.no_plug") from None
        raise _FormError("send.bad", reason=str(exc)) from None
    except ValueError as exc:
        raise _FormError("send.bad", reason=str(exc)) from None
    return len(made)


TargetType = Annotated[str, Form(pattern="^(|device|room|school)$")]
TargetId = Annotated[str, Form(max_length=64)]
Scope = Annotated[str, Form(pattern="^(|(device|room|school):[a-z0-9_-]{1,64})$")]


def _target(scope: str, target_type: str, target_id: str) -> tuple[str, str]:
    """The form's scope choice (``room:12``) or, from the confirmation page, its two fields."""
    if scope:
        kind, _, ident = scope.partition(":")
        return kind, ident
    if not target_type or not target_id:
        raise HTTPException(422, detail="name a target: scope, or target_type and target_id")
    return target_type, target_id
Kind = Annotated[str, Form(max_length=32)]
Action = Annotated[str, Form(max_length=32)]
Text = Annotated[str, Form(max_length=500)]
Delay = Annotated[int, Form(ge=0, le=86400)]
Expires = Annotated[int, Form(ge=1, le=43200)]
LocalTime = Annotated[str, Form(max_length=32)]


@router.post("/console/commands/review", response_class=HTMLResponse)
def review_command(request: Request, principal: ConsolePrincipal, now: NowDep, lang: LangDep,
                   action: Action, target_type: TargetType = "", target_id: TargetId = "", scope: Scope = "",
                   text: Text = "", kind: Kind = "",
                   delay_s: Delay = 60, expires_min: Expires = 60, not_before: LocalTime = "", csrf: Csrf = None,
                   next: Next = None) -> Any:  # noqa: A002
    """The confirmation step: what will be sent to how many devices, when, until when; nothing is stored yet."""
    check_csrf(request, csrf)
    target_type, target_id = _target(scope, target_type, target_id)
    with request.app.state.sessions() as session:
        order = _order(session, principal, lang, target_type, target_id, kind)
        back = safe_next(next, order.back)
        try:
            when = _schedule(not_before, order, now)
            count = _create(session, order, action, _args(action, text, delay_s), principal, expires_min, when,
                            now)  # a dry run: rolled back below
        except _FormError as exc:
            flash(request, exc.key, **exc.values)
            return RedirectResponse(back, status_code=303)
        finally:
            session.rollback()
    t = translator(lang)
    formats = Formats(lang, order.tz, now=now)
    expires = (when or now) + dt.timedelta(minutes=expires_min)
    schedule = (t["send.at"].format(when=formats.when(when)) if when else t["send.now"]) + " " + \
        t["send.until"].format(when=formats.when(expires))
    return render(request, "confirm.html", lang, principal, page_zone=order.tz, order=order,
                  count=count, back=back, schedule=schedule,
                  question=t["send.confirm_text"].format(action=t[f"action.{action}"], n=count, target=order.label),
                  fields={"target_type": target_type, "target_id": target_id, "kind": kind, "action": action,
                          "text": text, "delay_s": delay_s, "expires_min": expires_min, "not_before": not_before,
                          "next": back})


@router.post("/console/commands")
def send_command(request: Request, principal: ConsolePrincipal, now: NowDep, lang: LangDep,
                 action: Action, target_type: TargetType = "", target_id: TargetId = "", scope: Scope = "",
                 text: Text = "", kind: Kind = "",
                 delay_s: Delay = 60, expires_min: Expires = 60, not_before: LocalTime = "", csrf: Csrf = None,
                 next: Next = None) -> Any:  # noqa: A002
    """Queue the confirmed command and go back to the page the form was on, where it shows as pending."""
    check_csrf(request, csrf)
    target_type, target_id = _target(scope, target_type, target_id)
    with request.app.state.sessions.begin() as session:
        order = _order(session, principal, lang, target_type, target_id, kind)
        back = safe_next(next, order.back)
        try:
            when = _schedule(not_before, order, now)
            count = _create(session, order, action, _args(action, text, delay_s), principal, expires_min, when, now)
            if when:
                flash(request, "send.scheduled", n=count, when=Formats(lang, order.tz).when(when))
            else:
                flash(request, "send.done", n=count)
        except _FormError as exc:  # raised before anything was added
            flash(request, exc.key, **exc.values)
    return RedirectResponse(back, status_code=303)


@router.post("/console/schools/{school_id}/maintenance")
def add_window_form(school_id: str, request: Request, principal: ConsolePrincipal, now: NowDep,
                    starts_at: LocalTime = "", ends_at: LocalTime = "",
                    reason: Annotated[str, Form(max_length=200)] = "", csrf: Csrf = None) -> Any:
    """Plan a quiet time (times in the school's zone) through ``controller.incidents``, the API's path too."""
    check_csrf(request, csrf)
    back = f"/console/schools/{school_id}/maintenance"
    with request.app.state.sessions.begin() as session:
        school = session.get(School, school_id)
        check_write(principal, school.id if school else None, f"school {school_id}")
        assert school is not None
        try:
            starts, ends = _local_time(starts_at, school.timezone), _local_time(ends_at, school.timezone)
            if starts is None or ends is None:
                raise _FormError("maint.need_times")
            if ends <= starts:
                raise _FormError("maint.order")
            if ends <= now:
                raise _FormError("maint.ended")
            window = workflow.add_maintenance_window(session, school.id, starts, ends, reason.strip() or None,
                                                     principal.name)
            session.flush()
            flash(request, "maint.added", id=window.id)
        except _FormError as exc:
            flash(request, exc.key, **exc.values)
    return RedirectResponse(back, status_code=303)


@router.post("/console/maintenance/{window_id}/delete")
def remove_window_form(window_id: int, request: Request, principal: ConsolePrincipal, now: NowDep,
                       csrf: Csrf = None) -> Any:
    """Remove a window of a school the principal may change (404 outside their schools)."""
    check_csrf(request, csrf)
    with request.app.state.sessions.begin() as session:
        window = session.get(MaintenanceWindow, window_id)
        check_write(principal, window.school_id if window else None, f"maintenance window {window_id}")
        assert window is not None
        school_id = window.school_id
        workflow.remove_maintenance_window(session, window_id, principal.name, now)
        flash(request, "maint.removed", id=window_id)
    return RedirectResponse(f"/console/schools/{school_id}/maintenance", status_code=303)
