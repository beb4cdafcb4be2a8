"""Every user-facing message and how dates, times and numbers are shown to people.

One gettext catalogue per language lives beside this file (`<lang>/LC_MESSAGES/*.po`, merged
into one catalogue at start-up by `catalogue.py`); `formats.py` formats for a locale with Babel.
`controller/core/i18n.py` (`t(key, lang)`, API errors) and `controller/web/i18n.py` (the
panel's `_()`) are thin fronts over these two modules.
"""
