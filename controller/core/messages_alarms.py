"""Operator messages for station health: alarms, telemetry queries, notifications."""

MESSAGES: dict[str, tuple[str, str]] = {
    "alarm.not_found": ("Không tìm thấy cảnh báo {id}.", "Alarm {id} was not found."),
    "alarm.already_resolved": (
        "Cảnh báo {id} đã được giải quyết lúc {resolved_at}; không cần xác nhận nữa.",
        "Alarm {id} was already resolved at {resolved_at}; there is nothing to acknowledge.",
    ),
    "alarm.bad_state": (
        "Trạng thái \u201c{state}\u201d không hợp lệ; dùng open, acknowledged, active hoặc resolved.",
        "State \u201c{state}\u201d is not valid; use open, acknowledged, active or resolved.",
    ),
    "telemetry.bad_metric": (
        "Chỉ số \u201c{metric}\u201d không có; các chỉ số: {known}.",
        "There is no metric \u201c{metric}\u201d; known metrics: {known}.",
    ),
    "telemetry.bad_step": (
        "Bước \u201c{step}\u201d không hợp lệ; dùng: {known}.",
        "Step \u201c{step}\u201d is not valid; use one of: {known}.",
    ),
    "telemetry.bad_range": (
        "Thời điểm kết thúc phải sau thời điểm bắt đầu, và cả hai phải có múi giờ "
        "(ví dụ 2026-11-26T05:30:00+07:00).",
        "The end must be after the start, and both need a UTC offset (e.g. 2026-11-26T05:30:00+07:00).",
    ),
    "telemetry.too_many_points": (
        "Khoảng thời gian quá dài cho bước \u201c{step}\u201d ({points} điểm, tối đa {max}). "
        "Hãy chọn bước lớn hơn hoặc để step=auto.",
        "The range is too long for step \u201c{step}\u201d ({points} points, at most {max}). "
        "Choose a larger step or use step=auto.",
    ),
    # Alarm kinds, as operators read them.
    "alarm.kind.offline": ("Trạm mất kết nối", "Station offline"),
    "alarm.kind.mains_loss": ("Mất điện lưới", "Mains power lost"),
    "alarm.kind.speaker_line": ("Đứt dây loa", "Speaker line cut"),
    "alarm.kind.overheating": ("Tủ thiết bị quá nóng", "Cabinet overheating"),
    "alarm.kind.clock_offset": ("Đồng hồ trạm lệch", "Station clock off"),
    "alarm.kind.disk_low": ("Sắp hết dung lượng thẻ nhớ", "Disk space low"),
    "alarm.kind.led_unreachable": ("Mất liên lạc bộ điều khiển bảng LED", "LED board controller unreachable"),
    "alarm.kind.missed_broadcast": ("Bỏ lỡ bản tin", "Missed broadcast"),
    # Notifications (e-mail subject and text, webhook "text").
    "alarm.notify.opened": (
        "[communecast] Cảnh báo: {kind_name} – {device}",
        "[communecast] Alarm: {kind_name} – {device}",
    ),
    "alarm.notify.acknowledged": (
        "[communecast] Đã tiếp nhận: {kind_name} – {device}",
        "[communecast] Acknowledged: {kind_name} – {device}",
    ),
    "alarm.notify.resolved": (
        "[communecast] Đã khắc phục: {kind_name} – {device}",
        "[communecast] Resolved: {kind_name} – {device}",
    ),
    "alarm.notify.body": (
        "Trạm: {device} (mã {uid})\nSự cố: {kind_name}\nTrạng thái: {state}\nBắt đầu: {opened_at}\n"
        "{resolved_line}Chi tiết: {detail}",
        "Station: {device} (uid {uid})\nFault: {kind_name}\nState: {state}\nOpened: {opened_at}\n"
        "{resolved_line}Detail: {detail}",
    ),
    "alarm.notify.resolved_line": ("Kết thúc: {resolved_at}\n", "Resolved: {resolved_at}\n"),
}
