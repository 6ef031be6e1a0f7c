"""User-facing console texts in Vietnamese and English; one dictionary per language."""

from __future__ import annotations

TEXTS: dict[str, dict[str, str]] = {
    "vi": {
        "title": "Tổng quan thiết bị",
        "school": "Trường",
        "devices": "Thiết bị",
        "health.ok": "Hoạt động tốt",
        "health.degraded": "Cần chú ý",
        "health.faulty": "Hỏng",
        "health.offline": "Mất kết nối",
        "health.unreachable_upstream": "Mất mạng trường",
        "health.unknown": "Chưa có tin",
        "problems": "Thiết bị cần xử lý",
        "none": "Không có thiết bị nào cần xử lý.",
        "device": "Thiết bị",
        "kind": "Loại",
        "room": "Phòng",
        "health": "Tình trạng",
        "last_seen": "Lần cuối thấy",
        "faults": "Lỗi đang mở",
        "unassigned": "chưa xếp phòng",
        "total": "Tổng",
        "api": "API và tài liệu",
        "other_lang": "English",
        "login.title": "Đăng nhập",
        "login.username": "Tên đăng nhập",
        "login.password": "Mật khẩu",
        "login.submit": "Đăng nhập",
        "login.failed": "Sai tên đăng nhập hoặc mật khẩu.",
        "logout": "Đăng xuất",
    },
    "en": {
        "title": "Fleet overview",
        "school": "School",
        "devices": "Devices",
        "health.ok": "OK",
        "health.degraded": "Degraded",
        "health.faulty": "Faulty",
        "health.offline": "Offline",
        "health.unreachable_upstream": "School uplink down",
        "health.unknown": "Not heard from",
        "problems": "Devices that need attention",
        "none": "No device needs attention.",
        "device": "Device",
        "kind": "Kind",
        "room": "Room",
        "health": "Health",
        "last_seen": "Last seen",
        "faults": "Open faults",
        "unassigned": "unassigned",
        "total": "Total",
        "api": "API and docs",
        "other_lang": "Tiếng Việt",
        "login.title": "Log in",
        "login.username": "User name",
        "login.password": "Password",
        "login.submit": "Log in",
        "login.failed": "Wrong user name or password.",
        "logout": "Log out",
    },
}


def translator(lang: str) -> dict[str, str]:
    """The texts of ``lang``, Vietnamese for anything unknown (the default audience)."""
    return TEXTS.get(lang, TEXTS["vi"])
