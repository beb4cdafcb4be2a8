"""Operator messages for remote diagnostics and agent updates."""

MESSAGES: dict[str, tuple[str, str]] = {
    "diag.unknown_action": (
        "Không có thao tác chẩn đoán \u201c{action}\u201d. Các thao tác được phép: {allowed}.",
        "There is no diagnostic \u201c{action}\u201d. Allowed: {allowed}.",
    ),
    "diag.bad_params": (
        "Tham số cho thao tác \u201c{action}\u201d không hợp lệ: {error}",
        "Invalid parameters for \u201c{action}\u201d: {error}",
    ),
    "diag.not_found": (
        "Không tìm thấy lệnh chẩn đoán {id} của thiết bị này.",
        "Diagnostic command {id} was not found for this device.",
    ),
    "diag.device_not_found": ("Không tìm thấy thiết bị {id}.", "Device {id} was not found."),
    "diag.not_for_kind": (
        "Thao tác \u201c{action}\u201d không dùng được cho loại thiết bị \u201c{kind}\u201d.",
        "\u201c{action}\u201d does not apply to a device of kind \u201c{kind}\u201d.",
    ),
    "ops.broker_down": (
        "Chưa kết nối được máy chủ MQTT nên chưa gửi được lệnh. Hãy thử lại sau ít phút.",
        "The MQTT broker is not connected, so the command was not sent. Try again in a few minutes.",
    ),
    "ops.forbidden_area": (
        "Thiết bị {id} nằm ngoài khu vực bạn được phép thao tác.",
        "Device {id} is outside the area you may act on.",
    ),
    "update.not_a_wheel": (
        "Tệp \u201c{name}\u201d không phải gói wheel của communecast (*.whl).",
        "\u201c{name}\u201d is not a communecast wheel (*.whl).",
    ),
    "update.bad_version": (
        "Số phiên bản \u201c{version}\u201d không hợp lệ (ví dụ đúng: 0.2.0).",
        "The version \u201c{version}\u201d is not valid (for example: 0.2.0).",
    ),
    "update.exists": (
        "Phiên bản {version} đã có. Mỗi phiên bản chỉ tải lên một lần.",
        "Version {version} already exists. Each version is uploaded once.",
    ),
    "update.too_large": ("Tệp quá lớn: tối đa {limit}.", "The file is too large: at most {limit}."),
    "update.not_found": ("Không tìm thấy bản cập nhật {id}.", "Update {id} was not found."),
    "update.no_targets": (
        "Không có thiết bị nào khớp với lựa chọn triển khai.",
        "No device matches the rollout selection.",
    ),
    "update.bad_selection": (
        "Hãy chọn đúng một cách triển khai: theo phần trăm (1–100), theo khu vực, hoặc danh sách thiết bị.",
        "Choose exactly one way to roll out: a percentage (1–100), an area, or a list of devices.",
    ),
}
