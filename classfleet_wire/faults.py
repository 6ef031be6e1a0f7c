"""The fault-code registry: one place that the agent, pollers, console and notifications all read.

Each code has a default severity, a Vietnamese and an English text, and how it clears.
Codes are namespaced (``area.condition``); an agent newer than the controller may send a
code the registry does not know yet: it is kept, with the text of its namespace's default.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["info", "warning", "critical"]
ClearedBy = Literal["event", "poll", "heartbeat", "manual"]
SEVERITY_ORDER: dict[str, int] = {"info": 0, "warning": 1, "critical": 2}


@dataclass(frozen=True, slots=True)
class FaultCode:
    """One registered fault code."""

    code: str
    severity: Severity
    text_vi: str
    text_en: str
    cleared_by: ClearedBy

    def text(self, lang: str) -> str:
        """The description in ``lang`` (``vi`` or ``en``), English for anything else."""
        return self.text_vi if lang.startswith("vi") else self.text_en


_CODES: tuple[FaultCode, ...] = (
    FaultCode("agent.offline", "critical", "Máy không còn kết nối", "Agent offline", "heartbeat"),
    FaultCode("disk.low", "warning", "Ổ đĩa sắp đầy", "Disk space low", "event"),
    FaultCode("mem.high", "warning", "Bộ nhớ sử dụng cao", "Memory usage high", "event"),
    FaultCode("cpu.overheat", "critical", "CPU quá nóng", "CPU overheating", "event"),
    FaultCode("battery.worn", "warning", "Pin đã chai", "Battery worn out", "event"),
    FaultCode("display.missing", "critical", "Không nhận màn hình", "Display not detected", "event"),
    FaultCode("touch.missing", "critical", "Không nhận cảm ứng", "Touch input not detected", "event"),
    FaultCode("service.down", "warning", "Dịch vụ không chạy", "Service not running", "event"),
    FaultCode("time.skew", "warning", "Đồng hồ máy bị lệch", "Clock skew", "heartbeat"),
    FaultCode("switch.unreachable", "critical", "Không liên lạc được switch", "Switch unreachable", "poll"),
    FaultCode("switch.uplink_down", "critical", "Đường uplink của switch bị mất", "Switch uplink down", "poll"),
    FaultCode("switch.rebooted", "info", "Switch vừa khởi động lại", "Switch rebooted", "poll"),
    FaultCode("switch.port_errors", "warning", "Cổng switch có nhiều lỗi", "Switch port errors high", "poll"),
    FaultCode("ups.unreachable", "critical", "Không liên lạc được bộ lưu điện (UPS)", "UPS unreachable", "poll"),
    FaultCode("ups.on_battery", "warning", "Mất điện lưới, UPS đang chạy bằng pin", "UPS on battery", "poll"),
    FaultCode("ups.battery_low", "critical", "Pin UPS sắp cạn", "UPS battery low", "poll"),
    FaultCode("ups.replace_battery", "warning", "Cần thay pin UPS", "UPS battery needs replacing", "poll"),
    FaultCode("device.unreachable", "critical", "Không liên lạc được thiết bị", "Device unreachable", "poll"),
    FaultCode("school.upstream_down", "critical", "Mất kết nối mạng của trường", "School uplink down", "poll"),
    FaultCode("camera.unreachable", "critical", "Không liên lạc được camera", "Camera unreachable", "poll"),
    FaultCode("camera.auth_failed", "critical", "Camera từ chối đăng nhập", "Camera login refused", "poll"),
    FaultCode("camera.time_drift", "warning", "Đồng hồ camera bị lệch", "Camera clock drift", "poll"),
    FaultCode("camera.no_stream", "critical", "Camera không có luồng video", "Camera has no stream", "poll"),
    FaultCode("camera.no_snapshot", "warning", "Camera không chụp được ảnh", "Camera snapshot failed", "poll"),
    FaultCode("camera.tamper", "critical", "Camera bị che hoặc xoay", "Camera tampered", "event"),
    FaultCode("camera.not_recording", "warning", "Đầu ghi không ghi hình", "Camera not recording", "poll"),
    FaultCode("projector.unreachable", "critical", "Không liên lạc được máy chiếu", "Projector unreachable", "poll"),
    FaultCode(
        "projector.lamp_end_of_life", "warning", "Bóng đèn máy chiếu sắp hết tuổi thọ",
        "Projector lamp at end of life", "poll",
    ),
    FaultCode("projector.auth_failed", "critical", "Máy chiếu từ chối đăng nhập PJLink",
              "Projector refused the PJLink login", "poll"),
    FaultCode("projector.error.fan", "warning", "Quạt máy chiếu bị lỗi", "Projector fan fault", "poll"),
    FaultCode("projector.error.lamp", "warning", "Bóng đèn máy chiếu bị lỗi", "Projector lamp fault", "poll"),
    FaultCode("projector.error.temperature", "warning", "Máy chiếu quá nóng", "Projector temperature fault", "poll"),
    FaultCode("projector.error.cover", "warning", "Nắp máy chiếu đang mở", "Projector cover open", "poll"),
    FaultCode("projector.error.filter", "warning", "Lưới lọc máy chiếu cần vệ sinh",
              "Projector filter needs cleaning", "poll"),
    FaultCode("projector.error.other", "warning", "Máy chiếu báo lỗi khác", "Projector reports another fault", "poll"),
    FaultCode("aircon.offline", "warning", "Ổ cắm điều hòa mất kết nối", "Air-conditioner plug offline", "poll"),
)

REGISTRY: dict[str, FaultCode] = {c.code: c for c in _CODES}


def lookup(code: str, severity: Severity | None = None) -> FaultCode:
    """The registered code, or a generic entry for a code this version does not know yet."""
    known = REGISTRY.get(code)
    if known is not None:
        return known
    return FaultCode(
        code, severity or "warning", f"Lỗi chưa đăng ký: {code}", f"Unregistered fault: {code}", "event"
    )
