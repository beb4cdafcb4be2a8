"""What a text-only board can show of Vietnamese text, said before sending (never a surprise).

Alpha and BX-5K text paths carry single-byte characters from the board's own fonts; the
Vietnamese tone and vowel marks do not survive. We strip them the way people write
Vietnamese without diacritics ("Chuyển đổi số" -> "Chuyen doi so") and report it.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

_SPECIAL = {"đ": "d", "Đ": "D", "–": "-", "—": "-", "“": '"', "”": '"', "‘": "'", "’": "'", "…": "..."}


@dataclass(frozen=True)
class Transliteration:
    text: str  # exactly what the board will show
    lossy: bool  # True when something of the original is not on the board
    replaced: str  # the distinct characters that were changed or dropped


def to_board_ascii(text: str) -> Transliteration:
    out: list[str] = []
    replaced: list[str] = []
    for ch in text:
        if ch in _SPECIAL:
            out.append(_SPECIAL[ch])
            replaced.append(ch)
            continue
        if 0x20 <= ord(ch) < 0x7F:
            out.append(ch)
            continue
        base = "".join(c for c in unicodedata.normalize("NFD", ch) if not unicodedata.combining(c))
        base = base if base and all(0x20 <= ord(c) < 0x7F for c in base) else "?"
        if ch in "\t\n\r":
            base = " "
        out.append(base)
        replaced.append(ch)
    distinct = "".join(dict.fromkeys(replaced))
    return Transliteration("".join(out), bool(replaced), distinct)
