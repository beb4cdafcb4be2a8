"""Dates and times as people read them, formatted by Babel for the locale.

Vietnamese practice, kept in English too so an operator switching language reads the same
figures: day/month/year and a 24-hour clock, in the zone the caller passes in (from
Settings.timezone), never a zone of its own. The patterns are CLDR patterns (Babel's), not
strftime, so a locale's digits and calendar come from one place.
"""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal

DATE_TIME = "dd/MM/yyyy HH:mm"
DATE_TIME_SECONDS = "dd/MM/yyyy HH:mm:ss"
TIME_DATE = "HH:mm dd/MM/yyyy"  # an instant inside a sentence ("đã dùng lúc 07:30 05/12/2026")
MONTH = "MM/yyyy"
DAY = "dd/MM/yyyy"
EMPTY = "—"


def zone(tz: str | ZoneInfo) -> ZoneInfo:
    return tz if isinstance(tz, ZoneInfo) else ZoneInfo(tz)


def _format(value: datetime, pattern: str, tz: str | ZoneInfo, lang: str) -> str:
    return format_datetime(value.astimezone(zone(tz)), pattern, locale=lang if lang in ("vi", "en") else "vi")


def date_time(value: datetime | None, tz: str | ZoneInfo, *, seconds: bool = False, lang: str = "vi",
              empty: str = EMPTY) -> str:
    """dd/mm/yyyy HH:MM[:SS] in `tz`; `empty` for no value."""
    if value is None:
        return empty
    return _format(value, DATE_TIME_SECONDS if seconds else DATE_TIME, tz, lang)


def time_date(value: datetime, tz: str | ZoneInfo, lang: str = "vi") -> str:
    """HH:MM dd/mm/yyyy in `tz`: how a message puts an instant in a sentence."""
    return _format(value, TIME_DATE, tz, lang)


def month(value: datetime, tz: str | ZoneInfo, lang: str = "vi") -> str:
    """mm/yyyy of the local month `value` falls in."""
    return _format(value, MONTH, tz, lang)


def day(value: date, lang: str = "vi") -> str:
    """dd/mm/yyyy of a calendar day (already local: no zone)."""
    return format_date(value, DAY, locale=lang if lang in ("vi", "en") else "vi")


def number(value: float | int | None, digits: int | None = None, *, empty: str = EMPTY) -> str:
    """1.234,5: thousands dot, decimal comma (Vietnamese practice, Babel's `vi` symbols), in
    English too, as the dates: an operator switching language reads the same figures.
    `digits` fixes the decimals shown (None: as many as the value has, at most 3)."""
    if value is None:
        return empty
    decimals = ".###" if digits is None else "." + "0" * digits if digits > 0 else ""
    pattern = "#,##0" + decimals
    return format_decimal(value, format=pattern, locale="vi")
