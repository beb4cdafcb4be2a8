"""Operator and technician messages for enrollment, retire and CSV import."""

from __future__ import annotations

MESSAGES: dict[str, tuple[str, str]] = {
    "enroll.code_malformed": (
        "Mã kích hoạt không đúng dạng: cần 10 ký tự chữ và số (ví dụ K7QM2-XW9RT).",
        "The enrollment code is not well formed: it has 10 letters and digits (e.g. K7QM2-XW9RT).",
    ),
    "enroll.code_unknown": (
        "Mã kích hoạt không đúng. Hãy kiểm tra lại từng ký tự hoặc xin mã mới.",
        "This enrollment code is not valid. Check each character or ask for a new code.",
    ),
    "enroll.code_used": (
        "Mã kích hoạt này đã được dùng lúc {used_at}. Mỗi mã chỉ dùng một lần: hãy xin mã mới.",
        "This enrollment code was already used at {used_at}. Each code works once: ask for a new one.",
    ),
    "enroll.code_expired": (
        "Mã kích hoạt đã hết hạn lúc {expires_at}. Hãy xin mã mới.",
        "This enrollment code expired at {expires_at}. Ask for a new one.",
    ),
    "enroll.code_revoked": (
        "Mã kích hoạt này đã bị thay bằng mã mới hơn hoặc bị hủy. Hãy dùng mã mới nhất.",
        "This enrollment code was replaced by a newer one or withdrawn. Use the latest code.",
    ),
    "enroll.device_retired": (
        "Trạm {uid} đã ngừng sử dụng, không thể kích hoạt.",
        "Station {uid} has been retired and cannot be enrolled.",
    ),
    "enroll.too_many_attempts": (
        "Nhập sai mã quá nhiều lần. Hãy thử lại sau {minutes} phút.",
        "Too many wrong codes. Try again in {minutes} minutes.",
    ),
    "enroll.broker_unavailable": (
        "Không cập nhật được tài khoản trạm trên máy chủ MQTT. Chưa có gì thay đổi; hãy thử lại.",
        "Could not update the station's account on the MQTT broker. Nothing changed; try again.",
    ),
    "device.retired": (
        "Trạm {id} đã ngừng sử dụng.",
        "Station {id} has been retired.",
    ),
    "device.csv_invalid": (
        "Tệp CSV có lỗi, chưa nhập trạm nào. Xem danh sách lỗi theo dòng.",
        "The CSV file has errors; no station was imported. See the errors by line.",
    ),
    "device.csv_unreadable": (
        "Không đọc được tệp CSV: cần mã hóa UTF-8 và dòng tiêu đề có cột name, kind, commune_id "
        "(hoặc commune_code).",
        "Could not read the CSV file: it must be UTF-8 with a header row naming name, kind, "
        "commune_id (or commune_code).",
    ),
    "device.csv_too_large": (
        "Tệp CSV quá lớn: tối đa {limit} trạm mỗi lần.",
        "The CSV file is too large: at most {limit} stations at once.",
    ),
}
