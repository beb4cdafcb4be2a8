"""Operator messages for requests refused as a whole: too large, not authenticated before the
body was read, or conflicting with a row that already exists (issue 16)."""

MESSAGES: dict[str, tuple[str, str]] = {
    "request.too_large": (
        "Dữ liệu gửi lên quá lớn: tối đa {limit} cho địa chỉ này.",
        "The request body is too large: at most {limit} for this address.",
    ),
    "request.conflict": (
        "Dữ liệu trùng với một bản ghi đã có (mã, tên hoặc số hiệu đã được dùng).",
        "This conflicts with an existing record (a code, name or number already in use).",
    ),
    "area.code_taken": (
        "Mã đơn vị hành chính \u201c{code}\u201d đã được dùng cho một địa bàn khác.",
        "The administrative code \u201c{code}\u201d is already used by another area.",
    ),
}
