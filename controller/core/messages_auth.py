"""Login messages (controller/services/auth.py)."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "auth.throttled": (
        "Đăng nhập sai quá nhiều lần. Vui lòng chờ {seconds} giây rồi thử lại.",
        "Too many failed logins. Please wait {seconds} seconds and try again.",
    ),
}
