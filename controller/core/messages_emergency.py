"""Operator messages for emergency broadcasts (docs/emergency.md)."""

MESSAGES: dict[str, tuple[str, str]] = {
    "emergency.fields_need_priority": (
        "Chỉ bản tin khẩn cấp (\u201cemergency\u201d) hoặc ưu tiên (\u201cpriority\u201d) mới được dùng "
        "{fields}. Bản tin mức \u201c{priority}\u201d hãy dùng lịch phát định kỳ.",
        "Only an emergency or priority broadcast may use {fields}. For a \u201c{priority}\u201d "
        "broadcast use a recurring schedule.",
    ),
    "emergency.no_audio": (
        "Bản tin khẩn cấp cần âm thanh: chọn tệp âm thanh hoặc nhập nội dung (\u201ctext\u201d) để "
        "đọc bằng giọng nói tổng hợp.",
        "An emergency needs audio: choose an audio file or give \u201ctext\u201d to be read out by "
        "text-to-speech.",
    ),
    "emergency.forbidden_area": (
        "Tài khoản của bạn không được phát khẩn cấp tới {area}.",
        "Your account may not send an emergency broadcast to {area}.",
    ),
    "emergency.priority_needs_approval": (
        "Bản tin ưu tiên có lặp lại hoặc chữ trên bảng điện tử phải do người có quyền duyệt gửi.",
        "A priority broadcast with a repeat or LED text must be sent by someone who may approve it.",
    ),
    "emergency.not_emergency": (
        "Bản tin {id} không phải bản tin khẩn cấp.",
        "Broadcast {id} is not an emergency broadcast.",
    ),
    "emergency.broker_down": (
        "Không gửi được lệnh phát khẩn cấp: mất kết nối tới máy chủ MQTT. Bản tin đã được lưu; "
        "hãy thử lại ngay.",
        "The emergency could not be sent: the MQTT broker is unreachable. It was recorded; "
        "try again now.",
    ),
}
