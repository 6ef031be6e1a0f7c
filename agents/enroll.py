"""``classfleet-agent enroll``: exchange a school's token for this machine's id and credentials.

Plain ``urllib`` (no HTTP library on the agent side); the result is written to the agent's
config file with mode 0600, since it holds the MQTT password.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

from .config import write_config


class EnrolmentError(Exception):
    """Enrolment did not succeed; the message says why."""


def enroll(controller: str, token: str, config_path: Path, *, profile: str | None = None,
           device: str | None = None, state_dir: Path | None = None, timeout: float = 30.0) -> Path:
    """Redeem ``token`` at ``controller`` and write the agent's config file; returns its path."""
    if device is None:
        from .identity import derive_device_id
        from .platform import current_platform

        device = derive_device_id(current_platform().identity_sources())
    body = {"token": token, "hostname": socket.gethostname(), "profile": profile, "device": device}
    request = urllib.request.Request(
        controller.rstrip("/") + "/api/v1/enrolments", method="POST",
        data=json.dumps({k: v for k, v in body.items() if v is not None}).encode(),
        headers={"Content-Type": "application/json", "Accept": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - URL given by the admin
            answer = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        try:
            reason = json.loads(exc.read()).get("detail", exc.reason)
        except ValueError:
            reason = exc.reason
        raise EnrolmentError(f"the controller refused ({exc.code}): {reason}") from None
    except (urllib.error.URLError, OSError) as exc:
        raise EnrolmentError(f"cannot reach the controller at {controller}: {exc}") from None
    mqtt = answer["mqtt"]
    url = urlsplit(mqtt["url"])
    broker_url = f"{url.scheme}://{mqtt['username']}@{url.hostname}" + (f":{url.port}" if url.port else "")
    data: dict[str, object] = {"school": answer["school"], "device": answer["device"],
                               "broker": {"url": broker_url, "password": mqtt["password"]},
                               "agent": {"profile": profile or "pc"}}
    if state_dir is not None:
        data["agent"] = {**data["agent"], "state_dir": str(state_dir)}  # type: ignore[dict-item]
    write_config(config_path, data)
    return config_path
