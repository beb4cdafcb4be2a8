"""Panel language: Vietnamese source strings, English from a Babel message catalog.

Templates and views write Vietnamese (with full diacritics) as the msgid; the English
catalog `i18n/en/LC_MESSAGES/messages.po` translates it. The .po file is compiled in
memory at start-up (Babel's reader and MO writer), so no build artefact is committed.
The choice is a cookie (`cc_lang`), switched by `/lang?to=en`; default Vietnamese.
"""

from __future__ import annotations

import gettext
import io
from datetime import datetime
from functools import cache
from pathlib import Path
from zoneinfo import ZoneInfo

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGS = ("vi", "en")
CATALOG_DIR = Path(__file__).resolve().parent / "i18n"
LANG_COOKIE = "cc_lang"


@cache
def translations(lang: str) -> gettext.NullTranslations:
    po = CATALOG_DIR / lang / "LC_MESSAGES" / "messages.po"
    if lang == "vi" or not po.exists():
        return gettext.NullTranslations()
    catalog = _read_catalog(lang)
    buf = io.BytesIO()
    write_mo(buf, catalog)
    buf.seek(0)
    return gettext.GNUTranslations(buf)


def catalog_ids(lang: str = "en") -> set[str]:
    """Every msgid with a non-empty translation (the tests check templates against it)."""
    return {str(m.id) for m in _read_catalog(lang) if m.id and m.string}


def _read_catalog(lang: str) -> Catalog:
    """messages.po plus every other *.po beside it (a feature's own catalog, fewer edit clashes)."""
    folder = CATALOG_DIR / lang / "LC_MESSAGES"
    with (folder / "messages.po").open("rb") as fh:
        catalog = read_po(fh, locale=lang)
    for extra in sorted(folder.glob("*.po")):
        if extra.name == "messages.po":
            continue
        with extra.open("rb") as fh:
            for message in read_po(fh, locale=lang):
                if message.id and message.id not in catalog:
                    catalog[message.id] = message
    return catalog


def gettext_for(lang: str):  # type: ignore[no-untyped-def]
    tr = translations(lang if lang in LANGS else "vi")

    def _(message: str, **params: object) -> str:
        text = tr.gettext(message)
        return text.format(**params) if params else text

    return _


def fmt_dt(value: datetime | None, tz: str, *, seconds: bool = False) -> str:
    """dd/mm/yyyy HH:MM in the operator's time zone (Asia/Ho_Chi_Minh)."""
    if value is None:
        return "—"
    local = value.astimezone(ZoneInfo(tz))
    return local.strftime("%d/%m/%Y %H:%M:%S" if seconds else "%d/%m/%Y %H:%M")
