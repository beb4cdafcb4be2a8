"""Operator messages for LED boards."""

MESSAGES: dict[str, tuple[str, str]] = {
    "led.no_targets": (
        "Không có bảng điện tử nào khớp với vùng đã chọn.",
        "No LED board matches the chosen targets.",
    ),
    "led.bad_window": (
        "Thời điểm kết thúc ({end_at}) phải sau thời điểm bắt đầu ({start_at}).",
        "The end time ({end_at}) must be after the start time ({start_at}).",
    ),
    "led.in_past": (
        "Thời điểm kết thúc đã qua ({end_at}). Hãy chọn thời điểm trong tương lai.",
        "The end time has passed ({end_at}). Pick a future time.",
    ),
    "led.recurrence_incomplete": (
        "Thông báo lặp lại cần đủ quy tắc lặp (rrule), thời điểm bắt đầu (dtstart, giờ địa phương) "
        "và số phút hiển thị mỗi lần (show_minutes).",
        "Recurring text needs a rule (rrule), a local start (dtstart) and minutes shown each time "
        "(show_minutes).",
    ),
    "led.recurrence_with_window": (
        "Thông báo lặp lại không dùng start_at/end_at; hãy dùng dtstart, until và show_minutes.",
        "Recurring text does not take start_at/end_at; use dtstart, until and show_minutes.",
    ),
    "led.not_found": ("Không tìm thấy thông báo bảng điện tử {id}.", "LED message {id} was not found."),
    "led.not_a_board": ("Thiết bị {id} không phải bảng điện tử.", "Device {id} is not an LED board."),
    "led.text_only": (
        "\u201c{name}\u201d ({protocol}) chỉ hiển thị chữ không dấu. Bảng sẽ hiện: \u201c{shown}\u201d "
        "(các ký tự bị đổi: {replaced}).",
        "\u201c{name}\u201d ({protocol}) shows text without Vietnamese diacritics. It will show: "
        "\u201c{shown}\u201d (characters changed: {replaced}).",
    ),
    "led.unknown_board": (
        "Chưa biết loại bộ điều khiển của \u201c{name}\u201d (bảng chưa kết nối lần nào); nếu là bảng "
        "chỉ hiển thị chữ, bảng sẽ hiện: \u201c{shown}\u201d.",
        "\u201c{name}\u201d has not reported its controller type yet (never connected); if it is a "
        "text-only board it will show: \u201c{shown}\u201d.",
    ),
}
