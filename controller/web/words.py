"""Raw values put in words for a person (issue 20): a station's reason for a play that did
not go as planned, and the audit log's object and details.

Why: the panel must never show a status value, a Python repr (`automatic=True`) or a bare
hash as text. Stations and services record short technical values (they are for programs
and the API); the page says them as sentences in its language and keeps the raw value only
as a tooltip. Unknown values get a generic phrase, never the raw text.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from controller.i18n import formats

Gettext = Callable[..., str]

# what a station (or the controller) gives as the reason, by its start
PLAY_REASONS = {
    "offline": "Trạm mất kết nối.",
    "station offline": "Trạm mất kết nối khi gửi lệnh.",
    "rejected": "Trạm từ chối lệnh.",
    "not_sent": "Chưa gửi được lệnh tới trạm.",
    "start passed": "Đã quá giờ phát khi trạm sẵn sàng.",
    "stream window passed": "Đã hết khung giờ tiếp sóng trước khi phát được.",
    "agent_restart": "Phần mềm của trạm khởi động lại giữa chừng.",
    "preempted": "Nhường cho bản tin ưu tiên hơn.",
    "emergency": "Nhường cho phát khẩn cấp.",
    "cancelled": "Lệnh phát đã bị huỷ.",
    "stopped": "Bị dừng giữa chừng.",
    "media:": "Lỗi tệp âm thanh trên trạm.",
    "audio:": "Lỗi thiết bị âm thanh của trạm.",
    "dead_air": "Nguồn tiếp sóng bị im lặng.",
}
OTHER_REASON = "Trạm báo một lỗi kỹ thuật khác."

AUDIT_OBJECTS = {
    "broadcast": "Lệnh phát số {id}",
    "schedule": "Lịch phát số {id}",
    "device": "Trạm số {id}",
    "user": "Tài khoản số {id}",
    "alarm": "Cảnh báo số {id}",
    "led_message": "Nội dung bảng điện tử số {id}",
    "area": "Địa bàn số {id}",
    "commune": "Quy định phát của xã số {id}",
    "media": "Tệp âm thanh",
    "cap_alert": "Cảnh báo CAP số {id}",
    "update": "Bản cập nhật phần mềm số {id}",
}
OTHER_OBJECT = "Đối tượng số {id}"
# audit detail keys worth reading; the rest (ids, hashes, rules, targets) stay in the tooltip
AUDIT_LABELS = {
    "title": "Tiêu đề",
    "name": "Tên",
    "username": "Tên đăng nhập",
    "role": "Vai trò",
    "priority": "Mức ưu tiên",
    "status": "Trạng thái",
    "start_at": "Thời điểm phát",
    "previous_start_at": "Thời điểm phát trước khi đổi",
    "end_at": "Kết thúc",
    "dtstart": "Bắt đầu",
    "until": "Đến",
    "expires_at": "Hết hạn",
    "reason": "Lý do",
    "why": "Lý do",
    "note": "Ghi chú",
    "text": "Nội dung",
    "automatic": "Tự động",
    "stations": "Số trạm",
    "devices": "Số trạm",
    "boards": "Số bảng",
    "led_boards": "Số bảng",
    "version": "Phiên bản",
    "voice": "Giọng đọc",
    "kind": "Loại",
    "code": "Mã",
    "percent": "Tỉ lệ (%)",
    "ok": "Thành công",
    "error": "Lỗi",
}
VALUES = {
    "normal": "Thông thường", "priority": "Ưu tiên", "emergency": "Khẩn cấp",
    "scheduled": "Đã lên lịch", "draft": "Chờ duyệt", "active": "Đang áp dụng", "cancelled": "Đã huỷ",
    "deleted": "Đã xoá", "open": "Đang mở", "acknowledged": "Đã xác nhận", "resolved": "Đã xử lý",
    "played": "Đã phát", "missed": "Bị lỡ", "interrupted": "Bị ngắt", "failed": "Lỗi", "playing": "Đang phát",
    "pending": "Đang chờ", "acked": "Đã nhận lệnh", "speaker": "Cụm loa", "led": "Bảng điện tử",
    "offline": "Mất kết nối", "operator": "Cán bộ", "province": "Cấp tỉnh", "group": "Cụm xã",
    "commune": "Cấp xã", "admin": "Quản trị hệ thống", "approver": "Người duyệt nội dung",
    "technician": "Kỹ thuật viên", "viewer": "Người xem", "district": "Cụm xã", "stream": "Tiếp sóng",
}  # fmt: skip
YES, NO = "có", "không"
ISO = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}")
HEX = re.compile(r"[0-9a-fA-F]{16,}")


def play_reason(reason: str | None, _: Gettext) -> str:
    """A play log row's reason as a sentence ("" when none)."""
    if not reason:
        return ""
    low = reason.strip().lower()
    for start, text in PLAY_REASONS.items():
        if low.startswith(start):
            return _(text)
    return _(OTHER_REASON)


def audit_object(kind: str, object_id: object, _: Gettext) -> str:
    return _(AUDIT_OBJECTS.get(kind, OTHER_OBJECT), id=object_id if object_id is not None else "—")


def audit_detail(detail: Mapping[str, Any] | None, zone: ZoneInfo, _: Gettext) -> list[tuple[str, str]]:
    """(label, value) pairs a person reads, in the page's language; what has no words is left out."""
    out = []
    for key, label in AUDIT_LABELS.items():
        value = _value((detail or {}).get(key), zone, _)
        if value:
            out.append((_(label), value))
    return out


def _value(value: Any, zone: ZoneInfo, _: Gettext) -> str:
    if value is None or value == "" or isinstance(value, dict):
        return ""
    if isinstance(value, bool):
        return _(YES) if value else _(NO)
    if isinstance(value, int | float):
        return formats.number(value)
    if isinstance(value, list):
        return formats.number(len(value))
    text = str(value)
    if text in VALUES:
        return _(VALUES[text])
    if ISO.match(text):
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return ""
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=zone)  # schedules keep local wall time
        return formats.date_time(moment, zone)
    if HEX.fullmatch(text):
        return ""  # a hash: the tooltip has it
    return text if len(text) <= 80 else text[:79] + "…"
