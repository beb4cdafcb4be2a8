"""Operator messages for streamed broadcasts: live voice and radio relays (docs/live.md)."""

MESSAGES: dict[str, tuple[str, str]] = {
    "live.not_found": ("Không tìm thấy phiên phát trực tiếp {id}.", "Live session {id} was not found."),
    "live.ended": ("Phiên phát trực tiếp {id} đã kết thúc.", "Live session {id} has ended."),
    "live.bad_frame": (
        "Dữ liệu âm thanh không hợp lệ: cần PCM 16 bit, một kênh, 16 kHz.",
        "Invalid audio data: 16-bit mono PCM at 16 kHz is expected.",
    ),
    "live.bad_priority": (
        "Phát trực tiếp chỉ dùng mức ưu tiên thông thường, ưu tiên hoặc khẩn cấp.",
        "Live voice uses the normal, priority or emergency level only.",
    ),
    "live.forbidden": (
        "Phiên phát trực tiếp {id} phát tới loa ở {names}, ngoài địa bàn của bạn: chỉ người tạo phiên "
        "hoặc người phụ trách mọi loa của phiên được xem, nói vào hoặc kết thúc phiên.",
        "Live session {id} reaches stations in {names}, outside your area: only its creator or someone "
        "responsible for every one of its stations may view it, speak into it or end it.",
    ),
    "live.needs_approval": (
        "Phát trực tiếp ở mức thông thường hoặc ưu tiên cần người có quyền duyệt cho mọi xã được "
        "chọn; phát trực tiếp không thể chờ duyệt. Hãy nhờ người duyệt phát, hoặc dùng mức khẩn cấp "
        "khi thật sự khẩn cấp.",
        "Normal or priority live voice needs someone who may approve content for every chosen commune; "
        "live audio cannot wait for approval. Ask an approver to go live, or use emergency when it "
        "truly is one.",
    ),
    "relay.forbidden": (
        "Lịch tiếp sóng {id} phát tới loa ở {names}, ngoài địa bàn của bạn: chỉ người tạo hoặc người "
        "phụ trách mọi loa của lịch được hủy.",
        "Relay {id} reaches stations in {names}, outside your area: only its creator or someone "
        "responsible for every one of its stations may cancel it.",
    ),
    "relay.not_found": ("Không tìm thấy lịch tiếp sóng {id}.", "Relay {id} was not found."),
    "relay.source_not_allowed": (
        "Nguồn phát \u201c{url}\u201d không nằm trong danh sách nguồn tiếp sóng được phép "
        "(COMMUNECAST_RELAY_SOURCES). Hãy chọn một nguồn đã được quản trị viên cho phép.",
        "The source \u201c{url}\u201d is not in the allowed relay sources (COMMUNECAST_RELAY_SOURCES). "
        "Pick a source an administrator has allowed.",
    ),
    "relay.bad_window": (
        "Thời điểm kết thúc ({end_at}) phải sau thời điểm bắt đầu ({start_at}), tối đa {hours} giờ.",
        "The end time ({end_at}) must be after the start time ({start_at}), at most {hours} hours later.",
    ),
    "relay.in_past": (
        "Thời điểm kết thúc đã qua ({end_at}). Hãy chọn thời điểm trong tương lai.",
        "The end time has passed ({end_at}). Pick a future time.",
    ),
    "relay.filler_missing": (
        "Đã chọn phát âm thanh đệm khi mất sóng nhưng chưa chọn tệp âm thanh đệm nào.",
        "Filler was chosen for dead air, but no filler audio was given.",
    ),
    "relay.bad_priority": (
        "Tiếp sóng dùng mức ưu tiên \u201ctiếp sóng\u201d hoặc \u201cnhạc nền\u201d (thấp hơn bản tin "
        "thông thường).",
        "A relay uses the \u201crelay\u201d or \u201cfiller\u201d level (below normal bulletins).",
    ),
}
