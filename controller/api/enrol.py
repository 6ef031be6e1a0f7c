"""Enrolment endpoint: an agent exchanges a school's token for its id and MQTT credentials."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Request
from pydantic import BaseModel, Field

from ..enrolment import EnrolmentRefused, redeem
from .deps import SettingsDep

router = APIRouter(prefix="/api/v1", tags=["enrolment"])


class EnrolRequest(BaseModel):
    """What the enrolling agent sends."""

    token: Annotated[str, Field(min_length=8, max_length=128)]
    device: Annotated[str | None, Field(default=None, pattern=r"^[a-z0-9_-]{1,64}$")] = None
    hostname: Annotated[str | None, Field(default=None, max_length=200)] = None
    profile: Annotated[str | None, Field(default=None, pattern="^(pc|laptop|smart_board|other)$")] = None


class MqttCredentials(BaseModel):
    """Where and how the agent connects."""

    url: str
    username: str
    password: str


class EnrolResponse(BaseModel):
    """The enrolled identity; the password is shown this once."""

    school: str
    device: str
    mqtt: MqttCredentials


@router.post("/enrolments", response_model=EnrolResponse, status_code=201,
             responses={403: {"description": "token unknown, revoked, expired or used up"}})
def create_enrolment(body: EnrolRequest, request: Request, settings: SettingsDep) -> dict[str, Any]:
    """Redeem an enrolment token (one use of its quota) for a device id and MQTT credentials."""
    with request.app.state.sessions.begin() as session:
        try:
            result = redeem(session, body.token, device=body.device, hostname=body.hostname, profile=body.profile)
        except EnrolmentRefused as exc:
            raise HTTPException(403, detail=exc.reason) from None
    url = settings.public_mqtt_url or settings.mqtt_url or f"mqtt://{settings.host}:{settings.mqtt_port}"
    return {"school": result.school, "device": result.device,
            "mqtt": {"url": _without_user(url), "username": result.username, "password": result.password}}


def _without_user(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, "", "", ""))
