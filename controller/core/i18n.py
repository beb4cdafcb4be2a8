"""Operator-facing messages by key: Vietnamese first, English on request (Accept-Language).

The texts live in the one gettext catalogue of `controller/i18n/` (the key's Vietnamese in
`vi/LC_MESSAGES/messages.po`, its English translated from that Vietnamese in `en/`), the
same catalogue the panel reads, so a sentence is written once. A new message is a new
entry there, never a string in code.
"""

from __future__ import annotations

from controller.i18n.catalogue import message_keys, source_text, translate


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


def has_message(key: str) -> bool:
    """Whether `key` names a message (callers showing a key-or-fallback ask first)."""
    return key in message_keys()


def t(key: str, lang: str = "vi", /, **params: object) -> str:
    """The message `key` in `lang` ("en", else Vietnamese), its {placeholders} filled.

    KeyError for an unknown key, as a typo should fail loudly in tests."""
    return translate(source_text(key), "en" if lang == "en" else "vi", key).format(**params)
