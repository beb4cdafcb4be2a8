"""The one gettext catalogue per language, compiled in memory at start-up.

Two kinds of msgid share it:

* the panel writes Vietnamese source text as the msgid (templates, `controller/web/*.py`);
* code that names a message by key (`t("media.too_large", lang, limit=...)`, API errors)
  finds the key in the Vietnamese catalogue, whose msgstr is the Vietnamese text.

English is always translated from the Vietnamese text, so a sentence that both the panel
and an API error show has one English entry, whichever way it is reached. Where a keyed
message needs another English for the same Vietnamese (a report's column "Trạng thái" is
"Status", the panel's is "State"), its English entry carries the key as msgctxt.

Each language folder may hold several .po files (a feature's own file means fewer edit
clashes); they are merged into one catalogue here, and no .mo build artefact is committed.
"""

from __future__ import annotations

import gettext
import io
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

LANGS = ("vi", "en")
SOURCE_LANG = "vi"
CATALOGUE_DIR = Path(__file__).resolve().parent


def read_catalogue(lang: str) -> Catalog:
    """messages.po plus every other *.po of the language folder, as one catalogue."""
    folder = CATALOGUE_DIR / lang / "LC_MESSAGES"
    catalog = Catalog(locale=lang)
    main = folder / "messages.po"
    files = ([main] if main.exists() else []) + sorted(p for p in folder.glob("*.po") if p != main)
    for path in files:
        with path.open("rb") as fh:
            for message in read_po(fh, locale=lang):
                if message.id and catalog.get(message.id, context=message.context) is None:
                    catalog[message.id] = message
    return catalog


@cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalogue of `lang` (any other language: Vietnamese)."""
    lang = lang if lang in LANGS else SOURCE_LANG
    if not (CATALOGUE_DIR / lang / "LC_MESSAGES").is_dir():
        return gettext.NullTranslations()
    buf = io.BytesIO()
    write_mo(buf, read_catalogue(lang))
    buf.seek(0)
    return gettext.GNUTranslations(buf)


@cache
def message_keys() -> frozenset[str]:
    """Every key `t()` knows: the msgids of the Vietnamese catalogue."""
    return frozenset(str(m.id) for m in read_catalogue(SOURCE_LANG) if m.id and m.string)


def translated_ids(lang: str = "en") -> set[str]:
    """Every msgid with a non-empty translation in `lang` (the tests check sources against it)."""
    return {str(m.id) for m in read_catalogue(lang) if m.id and m.string and not m.context}


def source_text(key: str) -> str:
    """The Vietnamese text of a message key; KeyError for a key no catalogue has."""
    if key not in message_keys():
        raise KeyError(key)
    return translations(SOURCE_LANG).gettext(key)


def translate(text: str, lang: str, key: str | None = None) -> str:
    """Vietnamese source text in `lang` (itself when there is no translation); with the `key`
    it came from, an entry whose msgctxt is that key wins over the plain one."""
    if lang == SOURCE_LANG:
        return text
    tr = translations(lang)
    if key is not None:
        found = tr.pgettext(key, text)
        if found != text:
            return found
    return tr.gettext(text)
