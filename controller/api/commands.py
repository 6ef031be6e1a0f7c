"""Commands API: send an allow-listed command to a device, a room or a school; read the ledger.

Only admins and technicians of the target's school may send; everyone reads only their schools'.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import func, select

from ..commands import ACTIONS, CommandError, Target, create_commands
from ..store.models import COMMAND_STATES, Command, Device, Room, School
from .deps import MAX_ID, IdQuery, NowDep, Offset, PrincipalDep, SessionDep, check_write
from .schemas import ListPublic

router = APIRouter(prefix="/api/v1", tags=["commands"])


class CommandCreate(BaseModel):
    """A command for one device, every device of a room, or of a school (optionally one kind)."""

    device_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    room_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    school: str | None = Field(default=None, pattern=r"^[a-z0-9_-]{1,64}$")
    kind: str | None = Field(default=None, max_length=32)
    action: str = Field(description=f"one of {', '.join(ACTIONS)}; power_off and power_on go to smart plugs "
                                    "(air conditioners), the others to agent-managed devices")
    args: dict[str, Any] = Field(default_factory=dict)
    not_before: dt.datetime | None = Field(default=None, description="wait until then (e.g. 17:30 today)")
    expires_in_s: int = Field(default=3600, ge=10, le=30 * 86400)

    @model_validator(mode="after")
    def _one_target(self) -> CommandCreate:
        if sum(x is not None for x in (self.device_id, self.room_id, self.school)) != 1:
            raise ValueError("give exactly one of device_id, room_id, school")
        if self.not_before is not None and self.not_before.tzinfo is None:
            raise ValueError("not_before needs a time zone (e.g. 2026-12-01T17:30:00+07:00)")
        return self


class CommandPublic(BaseModel):
    """One command in the ledger."""

    model_config = ConfigDict(from_attributes=True)
    id: str
    device_id: int
    action: str
    args: dict[str, Any]
    state: str
    not_before: dt.datetime | None
    expires: dt.datetime
    created_at: dt.datetime
    created_by: str | None
    updated_at: dt.datetime | None
    detail: str | None


@router.post("/commands", response_model=list[CommandPublic], status_code=201,
             responses={401: {"description": "no or wrong API token"}, 403: {"description": "commands disabled"},
                        422: {"description": "invalid command or target"}})
def create_command(body: CommandCreate, request: Request, now: NowDep, principal: PrincipalDep) -> Any:
    """Queue a command for each device of the target; each goes out when due and its device is online."""
    with request.app.state.sessions.begin() as session:
        if body.device_id is not None:
            device = session.get(Device, body.device_id)
            check_write(principal, device.school_id if device else None, f"device {body.device_id}")
        elif body.room_id is not None:
            room = session.get(Room, body.room_id)
            check_write(principal, room.school_id if room else None, f"room {body.room_id}")
        else:
            known = session.get(School, body.school)
            check_write(principal, known.id if known else None, f"school {body.school}")
        actor = principal.name
        try:
            commands = create_commands(
                session, Target(body.device_id, body.room_id, body.school, body.kind), body.action, body.args,
                expires_in=dt.timedelta(seconds=body.expires_in_s), not_before=body.not_before, actor=actor, now=now)
        except (CommandError, ValueError) as exc:
            raise HTTPException(422, detail=str(exc)) from None
    return commands


@router.get("/commands", response_model=ListPublic[CommandPublic])
def read_commands(session: SessionDep, principal: PrincipalDep, device_id: IdQuery = None,
                  state: str | None = None,
                  limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                  offset: Offset = 0) -> dict[str, Any]:
    """The command ledger, newest first, optionally of one device or in one state."""
    if state is not None and state not in COMMAND_STATES:
        raise HTTPException(422, detail=f"state must be one of: {', '.join(COMMAND_STATES)}")
    query = (select(Command).join(Device, Device.id == Command.device_id).where(principal.scope(Device.school_id))
             .order_by(Command.created_at.desc(), Command.id))
    if device_id is not None:
        query = query.where(Command.device_id == device_id)
    if state is not None:
        query = query.where(Command.state == state)
    total = session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0
    items = session.scalars(query.limit(limit).offset(offset)).all()
    return {"items": items, "total": total, "limit": limit, "offset": offset}
