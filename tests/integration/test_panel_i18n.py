"""Vietnamese first, English on request (issue 7): every panel string has an English
translation in the Babel catalog, and the switch turns every page into English."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from controller.web import lateness
from controller.web import panel as panel_module
from controller.web.i18n import catalog_ids, gettext_for
from tests.support.browser import Panel, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p

TEMPLATES = Path(panel_module.__file__).parent / "templates"
WEB = Path(panel_module.__file__).parent
MSGID = re.compile(r'''_\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')''')
# Vietnamese messages the views hand to templates as (msgid, params) or plain msgids.
PY_MSGID = re.compile(r'(?:\(|AccountError\(|return |= )"([^"]*[À-ỹĐđ][^"]*)"')
PAGES = ["/", "/stations", "/bulletins", "/approvals", "/playlog", "/admin/users", "/account/password"]


def _template_ids() -> set[str]:
    found = set()
    for path in TEMPLATES.glob("*.html"):
        for m in MSGID.finditer(path.read_text()):
            found.add(m.group(1) if m.group(1) is not None else m.group(2))
    return found


def test_every_panel_string_has_an_english_translation() -> None:
    english = catalog_ids("en")
    wanted = _template_ids()
    for name in ("routes.py", "sessions.py", "accounts.py", "__init__.py"):
        wanted |= {m.group(1) for m in PY_MSGID.finditer((WEB / name).read_text()) if "{" not in m.group(1)
                   or m.group(1).count("{") == m.group(1).count("}")}
    wanted |= {lateness.HOW_LATE, lateness.NOT_STARTED}
    for table in (panel_module.ROLE_NAMES, panel_module.PLAY_STATUS, panel_module.NOTICES,
                  panel_module.EVENT_KINDS, lateness.CAUSES):
        wanted |= set(table.values())
    missing = sorted(w for w in wanted if w not in english)
    assert not missing, f"no English for: {missing}"
    _ = gettext_for("en")
    assert _("Trang {page}/{pages}", page=2, pages=5) == "Page 2 of 5"
    assert gettext_for("vi")("Trạm loa") == "Trạm loa"


def test_language_switch_works_on_every_page(panel: Panel) -> None:
    panel.seed(stations_per_commune=1)
    c = panel.client()
    c.login("admin", panel.settings.admin_password)
    for path in PAGES:
        vi = c.http.get(path)
        assert vi.status_code == 200, path
        assert '<html lang="vi">' in vi.text and "Nhật ký phát" in vi.text and "Đăng xuất" in vi.text
        switch = re.search(r'id="lang-en" href="([^"]+)"', vi.text)
        assert switch, f"no English switch on {path}"
        r = c.http.get(switch.group(1).replace("&amp;", "&"), follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == path
        en = c.http.get(path)
        assert '<html lang="en">' in en.text, path
        assert "Play log" in en.text and "Log out" in en.text and "Nhật ký phát" not in en.text, path
        back = re.search(r'id="lang-vi" href="([^"]+)"', en.text)
        assert back, f"no Vietnamese switch on {path}"
        c.http.get(back.group(1).replace("&amp;", "&"))
    login = panel.client()
    login.http.cookies.set("cc_lang", "en")
    page = login.http.get("/login").text
    assert "Username" in page and "Tên đăng nhập" not in page
    # An open redirect through the switch is not possible.
    r = c.http.get("/lang?to=en&next=//evil.example/", follow_redirects=False)
    assert r.headers["location"] == "/"
