"""Operator messages for schedules, approval, broadcast policy and reports."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "schedule.not_found": ("Không tìm thấy lịch phát số {id}.", "Schedule {id} was not found."),
    "schedule.bad_rule": (
        "Quy tắc lặp “{rule}” không hợp lệ (RFC 5545): {error}.",
        "The recurrence rule “{rule}” is not valid (RFC 5545): {error}.",
    ),
    "schedule.too_frequent": (
        "Quy tắc “{rule}” lặp dày hơn mỗi giờ; loa truyền thanh chỉ nhận lịch theo giờ, ngày, "
        "tuần, tháng, năm.",
        "The rule “{rule}” repeats more often than hourly; loudspeakers take hourly, daily, weekly, "
        "monthly or yearly rules.",
    ),
    "schedule.duplicate_key": (
        "Quy tắc “{rule}” có khóa {part} lặp lại; mỗi khóa chỉ được ghi một lần.",
        "The rule “{rule}” repeats the key {part}; each key may be given once.",
    ),
    "schedule.too_close": (
        "Quy tắc “{rule}” có hai lần phát chỉ cách nhau {minutes} phút; các lần phát phải cách nhau "
        "ít nhất 1 giờ.",
        "The rule “{rule}” has two plays only {minutes} minutes apart; plays must be at least "
        "1 hour apart.",
    ),
    "schedule.too_many_per_day": (
        "Quy tắc “{rule}” phát quá {limit} lần trong một ngày.",
        "The rule “{rule}” plays more than {limit} times in a day.",
    ),
    "schedule.desired_state_too_big": (
        "Lịch của trạm {station} sẽ quá lớn ({kib} KiB, tối đa {limit_kib} KiB); hãy giảm số lần phát "
        "hoặc số lịch nhắm tới trạm này.",
        "The schedule of station {station} would be too big ({kib} KiB, at most {limit_kib} KiB); "
        "play less often or target this station with fewer schedules.",
    ),
    "schedule.bad_timezone": ("Múi giờ “{timezone}” không tồn tại.", "Unknown time zone “{timezone}”."),
    "schedule.bad_window": (
        "Khoảng thời gian xem trước không hợp lệ (từ phải trước đến, tối đa 800 ngày).",
        "The preview window is not valid (from before to, at most 800 days).",
    ),
    "approval.forbidden": (
        "Bạn không có quyền duyệt nội dung cho khu vực này.",
        "You may not approve content for this area.",
    ),
    "approval.not_draft": (
        "Chỉ duyệt được nội dung đang chờ duyệt (trạng thái hiện tại: {status}).",
        "Only drafts can be approved (current status: {status}).",
    ),
    "approval.start_passed": (
        "Giờ phát {start_at} đã qua; hãy tạo lại bản tin với giờ mới.",
        "The start time {start_at} has passed; create the bulletin again with a new time.",
    ),
    "policy.no_commune": ("Không tìm thấy xã/phường số {id}.", "Commune {id} was not found."),
    "policy.outside_hours": (
        "{commune} chỉ cho phép phát trong khung giờ {windows}; lịch phát lúc {at} nằm ngoài khung giờ này.",
        "{commune} allows broadcasts only within {windows}; the play at {at} is outside these hours.",
    ),
    "policy.outside_days": (
        "{commune} chỉ cho phép phát vào các ngày {days}; lịch phát lúc {at} rơi vào ngày không được phép.",
        "{commune} allows broadcasts only on {days}; the play at {at} falls on a day that is not allowed.",
    ),
    "policy.session_too_long": (
        "{commune} cho phép tối đa {limit} phút mỗi buổi phát; bản tin này dài {minutes} phút.",
        "{commune} allows at most {limit} minutes per session; this bulletin is {minutes} minutes long.",
    ),
    "policy.day_too_long": (
        "{commune} cho phép tối đa {limit} phút mỗi ngày; ngày {day} sẽ có {minutes} phút.",
        "{commune} allows at most {limit} minutes per day; {day} would have {minutes} minutes.",
    ),
    "policy.override_forbidden": (
        "Lịch phát vi phạm quy định phát thanh và bạn không có quyền cho phép ngoại lệ.",
        "The schedule breaks the broadcast policy and you may not override it.",
    ),
    "report.bad_format": (
        "Định dạng báo cáo phải là csv hoặc xlsx.", "The report format must be csv or xlsx."
    ),
}
