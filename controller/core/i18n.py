"""Operator-facing messages: Vietnamese first, English on request (Accept-Language).

Core messages are below; each feature adds its own in `controller/core/messages_<feature>.py`
(a module-level `MESSAGES: dict[str, tuple[vi, en]]`), merged here at import.
"""

from __future__ import annotations

import importlib
import pkgutil

import controller.core

MESSAGES: dict[str, tuple[str, str]] = {
    "auth.required": (
        "Cần đăng nhập để dùng chức năng này.",
        "You need to log in to use this.",
    ),
    "auth.bad_credentials": (
        "Sai tên đăng nhập hoặc mật khẩu.",
        "Wrong username or password.",
    ),
    "auth.forbidden": (
        "Tài khoản của bạn không có quyền thực hiện thao tác này.",
        "Your account is not allowed to do this.",
    ),
    "media.empty": (
        "Tệp tải lên rỗng (0 byte). Hãy chọn một tệp âm thanh.",
        "The uploaded file is empty (0 bytes). Please choose an audio file.",
    ),
    "media.too_large": (
        "Tệp quá lớn: tối đa {limit}.",
        "The file is too large: at most {limit}.",
    ),
    "media.not_audio": (
        "Tệp \u201c{name}\u201d không phải là âm thanh (chấp nhận mp3, wav, ogg, m4a/aac).",
        "\u201c{name}\u201d is not an audio file (mp3, wav, ogg, m4a/aac are accepted).",
    ),
    "media.too_short": (
        "Âm thanh quá ngắn (dưới {min_s} giây).",
        "The audio is too short (under {min_s} seconds).",
    ),
    "media.not_found": (
        "Không tìm thấy tệp âm thanh {sha256}.",
        "Audio file {sha256} was not found.",
    ),
    "broadcast.no_targets": (
        "Không có trạm loa nào khớp với vùng đã chọn.",
        "No loudspeaker station matches the chosen targets.",
    ),
    "broadcast.in_past": (
        "Thời điểm phát đã qua ({start_at}). Hãy chọn thời điểm trong tương lai hoặc để trống "
        "để phát ngay.",
        "The start time has passed ({start_at}). Pick a future time, or leave it empty to play "
        "now.",
    ),
    "broadcast.not_found": (
        "Không tìm thấy bản tin phát {id}.",
        "Broadcast {id} was not found.",
    ),
    "broadcast.bad_targets": (
        "Đích phát không hợp lệ: dùng {{\"all\": true}}, {{\"devices\": [...]}} hoặc "
        "{{\"communes\": [...]}}.",
        "Invalid targets: use {{\"all\": true}}, {{\"devices\": [...]}} or "
        "{{\"communes\": [...]}}.",
    ),
    "area.not_found": (
        "Không tìm thấy đơn vị hành chính {id}.",
        "Area {id} was not found.",
    ),
    "device.not_found": ("Không tìm thấy trạm {id}.", "Station {id} was not found."),
    "request.invalid": ("Dữ liệu gửi lên không hợp lệ.", "The request is not valid."),
}



def _load_feature_messages() -> None:
    for info in pkgutil.iter_modules(controller.core.__path__):
        if info.name.startswith("messages_"):
            module = importlib.import_module(f"controller.core.{info.name}")
            for key, pair in module.MESSAGES.items():
                if key in MESSAGES:
                    raise RuntimeError(f"message key {key!r} defined twice")
                MESSAGES[key] = pair


_load_feature_messages()


def human_size(n: int) -> str:
    """Sizes as operators read them (1 MB = 1024 KB)."""
    if n >= 2**20:
        return f"{n / 2**20:.0f} MB" if n % 2**20 == 0 else f"{n / 2**20:.1f} MB"
    return f"{max(n // 1024, 1)} KB"


def pick_lang(accept_language: str | None) -> str:
    if not accept_language:
        return "vi"
    for part in accept_language.split(","):
        tag = part.split(";")[0].strip().lower()
        if tag.startswith("vi"):
            return "vi"
        if tag.startswith("en"):
            return "en"
    return "vi"


def t(key: str, lang: str = "vi", **params: object) -> str:
    vi, en = MESSAGES[key]
    return (en if lang == "en" else vi).format(**params)
