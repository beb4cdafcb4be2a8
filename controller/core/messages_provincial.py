"""Operator messages for the provincial reporting connector (docs/provincial.md)."""

from __future__ import annotations

_KEEP_VI = " Dữ liệu vẫn nằm trong hàng đợi và sẽ được gửi lại, không mất bản ghi nào."
_KEEP_EN = " The data stays queued and will be sent again; nothing is lost."

MESSAGES: dict[str, tuple[str, str]] = {
    "provincial.login_failed": (
        "Hệ thống thông tin nguồn của tỉnh từ chối đăng nhập của tài khoản “{username}” (HTTP {status}): "
        "kiểm tra tên đăng nhập và mật khẩu (COMMUNECAST_PROVINCIAL_USERNAME, "
        "COMMUNECAST_PROVINCIAL_PASSWORD_FILE)." + _KEEP_VI,
        "The province's source system refused the login of account “{username}” (HTTP {status}): check the "
        "username and password (COMMUNECAST_PROVINCIAL_USERNAME, COMMUNECAST_PROVINCIAL_PASSWORD_FILE)."
        + _KEEP_EN,
    ),
    "provincial.no_credentials": (
        "Chưa cấu hình tài khoản đăng nhập Hệ thống thông tin nguồn của tỉnh "
        "(COMMUNECAST_PROVINCIAL_USERNAME và mật khẩu)." + _KEEP_VI,
        "No account is configured for the province's source system (COMMUNECAST_PROVINCIAL_USERNAME and "
        "a password)." + _KEEP_EN,
    ),
    "provincial.password_unreadable": (
        "Không đọc được tệp mật khẩu {path}: {error}." + _KEEP_VI,
        "Cannot read the password file {path}: {error}." + _KEEP_EN,
    ),
    "provincial.bad_login_reply": (
        "Trả lời đăng nhập của tỉnh không có trường mã truy cập “{field}” "
        "(COMMUNECAST_PROVINCIAL_TOKEN_FIELD)." + _KEEP_VI,
        "The province's login reply has no token field “{field}” (COMMUNECAST_PROVINCIAL_TOKEN_FIELD)."
        + _KEEP_EN,
    ),
    "provincial.unreachable": (
        "Không kết nối được Hệ thống thông tin nguồn của tỉnh ({what}): {error}." + _KEEP_VI,
        "Cannot reach the province's source system ({what}): {error}." + _KEEP_EN,
    ),
    "provincial.unauthorized": (
        "Tỉnh vẫn từ chối mã truy cập ngay sau khi đăng nhập lại ({what}): kiểm tra quyền của tài khoản."
        + _KEEP_VI,
        "The province still refuses the token right after a new login ({what}): check the account's "
        "rights." + _KEEP_EN,
    ),
    "provincial.rejected": (
        "Hệ thống thông tin nguồn của tỉnh trả lời HTTP {status} cho {what}: {detail}." + _KEEP_VI,
        "The province's source system answered HTTP {status} to {what}: {detail}." + _KEEP_EN,
    ),
}
