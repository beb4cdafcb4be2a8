"""Panel language: Vietnamese source strings, English from the gettext catalogue.

Templates and views write Vietnamese (with full diacritics) as the msgid; the English
catalogue (`controller/i18n/en/LC_MESSAGES/*.po`, shared with the API's keyed messages,
see controller/i18n/catalogue.py) translates it, compiled in memory at start-up.
The choice is a cookie (`cc_lang`), switched by `/lang?to=en`; default Vietnamese.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from controller.i18n import formats
from controller.i18n.catalogue import LANGS, translated_ids, translations

__all__ = ["LANGS", "LANG_COOKIE", "catalog_ids", "fmt_dt", "gettext_for", "translations"]

LANG_COOKIE = "cc_lang"


def catalog_ids(lang: str = "en") -> set[str]:
    """Every msgid with a non-empty translation (the tests check templates against it)."""
    return translated_ids(lang)


def gettext_for(lang: str) -> Callable[..., str]:
    tr = translations(lang if lang in LANGS else "vi")

    def _(message: str, **params: object) -> str:
        text = tr.gettext(message)
        return text.format(**params) if params else text

    return _


def fmt_dt(value: datetime | None, tz: str, *, seconds: bool = False, lang: str = "vi") -> str:
    """dd/mm/yyyy HH:MM in the operator's time zone (Settings.timezone)."""
    return formats.date_time(value, tz, seconds=seconds, lang=lang)
