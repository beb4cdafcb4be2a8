"""Phone first, installable (issue 20): the header menu and the emergency action, the web
app manifest, the service worker and the offline page (served, with headers that allow
them), and the schedules page's agenda "Hôm nay / Sắp tới" with the week view from today,
over HTTP in process. The same in Chromium: tests/system/test_panel_phone_browser.py."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from controller.web import agenda as agenda_view
from controller.web.i18n import catalog_ids
from tests.support import agenda_data
from tests.support.agenda_data import LATER_TITLE, MIDNIGHT_TITLE, OTHER_TITLE, TZ
from tests.support.browser import PW, Panel, PanelClient, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def _login(panel: Panel, username: str) -> PanelClient:
    c = panel.client()
    c.login(username, panel.settings.admin_password if username == "admin" else PW)
    return c


def _agenda(html: str, list_id: str) -> str:
    m = re.search(rf'<ul class="agenda" id="{list_id}">(.*?)</ul>', html, re.S)
    assert m, f"no {list_id} in the page"
    return m.group(1)


def test_manifest_worker_and_offline_page_are_served_to_anyone_without_data(panel: Panel) -> None:
    anonymous = panel.client().http
    r = anonymous.get("/manifest.webmanifest")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/manifest+json")
    m = json.loads(r.text)
    assert m["name"] == "Truyền thanh cơ sở" and m["short_name"] and m["start_url"] == "/"
    assert m["display"] == "standalone" and m["theme_color"].startswith("#") and m["scope"] == "/"
    sizes = set()
    for icon in m["icons"]:
        png = anonymous.get(icon["src"])
        assert png.status_code == 200 and png.headers["content-type"] == "image/png", icon
        w, h = Image.open(io.BytesIO(png.content)).size
        assert f"{w}x{h}" == icon["sizes"], icon
        sizes.add(icon["sizes"])
    assert {"192x192", "512x512"} <= sizes

    sw = anonymous.get("/sw.js")
    assert sw.status_code == 200 and "javascript" in sw.headers["content-type"]
    assert sw.headers["cache-control"] == "no-cache"  # a new release's worker is picked up
    assert '"/offline"' in sw.text and '"/api/"' in sw.text
    offline = anonymous.get("/offline")
    assert offline.status_code == 200 and "Bảng điều khiển đang ngoại tuyến" in offline.text
    # Pages allow the worker and the manifest, nothing wider.
    csp = anonymous.get("/login").headers["content-security-policy"]
    assert "worker-src 'self'" in csp and "manifest-src 'self'" in csp and "*" not in csp


def test_worker_and_offline_page_hold_no_user_data(panel: Panel) -> None:
    panel.seed(stations_per_commune=1)
    op = _login(panel, "canbo.hophoa")
    for path in ("/offline", "/sw.js", "/manifest.webmanifest"):
        body = op.http.get(path).text
        assert "canbo.hophoa" not in body and "csrf" not in body, path


def test_header_keeps_the_emergency_action_and_a_menu_button(panel: Panel) -> None:
    panel.seed(stations_per_commune=1)
    home = _login(panel, "canbo.hophoa").http.get("/").text
    assert 'id="emergency-action"' in home and ">Phát khẩn cấp<" in home
    assert re.search(r'<button type="button" class="menu-button" id="menu-button" aria-expanded="false" '
                     r'aria-controls="site-menu">', home)  # fmt: skip
    assert '<div class="menu" id="site-menu">' in home and '<script src="/panel-static/shell.js">' in home
    assert '<link rel="manifest" href="/manifest.webmanifest">' in home
    # A viewer may not start an emergency: no action in the header (the page is a 403 too).
    viewer = _login(panel, "nguoixem")
    assert 'id="emergency-action"' not in viewer.http.get("/").text
    assert viewer.http.get("/emergency").status_code == 403
    # Logged out: no menu, no action.
    login = panel.client().http.get("/login").text
    assert 'id="menu-button"' not in login and 'id="emergency-action"' not in login


def test_agenda_lists_today_and_upcoming_with_what_happened_in_the_callers_area(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    planted = agenda_data.plant(panel.rt, ids)
    today = planted["today"].strftime("%d/%m/%Y")

    op = _login(panel, "canbo.hophoa")  # Hợp Hòa only
    page = op.http.get("/schedules")
    assert page.status_code == 200
    assert f"Hôm nay · {today}" in page.text
    todays = _agenda(page.text, "agenda-today")
    first = re.search(r'<li class="past" data-at="([^"]+)">(.*?)</li>', todays, re.S)
    assert first and first.group(1) == f"{today} 00:00", todays
    assert MIDNIGHT_TITLE in first.group(2) and "Tất cả các trạm" in first.group(2)
    # What happened, on the operator's stations only: Xuân Hòa's missed play is not theirs.
    assert "Đã phát ở 1 trạm." in first.group(2) and "Bị lỡ" not in first.group(2)
    later_local = planted["later"].astimezone(TZ)
    assert LATER_TITLE in page.text and later_local.strftime("%H:%M") in page.text
    assert OTHER_TITLE not in page.text  # another commune's bulletin
    assert "Sắp phát" in page.text and "Xã Hợp Hòa" in page.text

    # The province's approver sees both communes' outcome; in English on request.
    approver = _login(panel, "duyet")
    approver.http.get("/lang?to=en&next=/schedules")
    english = _agenda(approver.http.get("/schedules").text, "agenda-today")
    assert "Played at 1 stations; Missed at 1 stations." in english and "All stations" in english

    # The week grid starts today, today's past slot is marked past.
    grid = page.text[page.text.index('id="week-grid"') :]
    heads = re.findall(r"<th(?!ead)(?! class=\"hour\")([^>]*)>", grid[: grid.index("</thead>")])
    assert len(heads) == 7 and heads[0] == ' class="today" aria-current="date"', heads
    assert re.search(r'slot slot-other slot-past" title="' + MIDNIGHT_TITLE, grid)
    assert f'title="{LATER_TITLE}"' in grid and OTHER_TITLE not in grid  # one-off bulletins too, in the area

    # Anonymous: to the login page.
    r = panel.client().http.get("/schedules", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_agenda_view_choice_is_a_closed_list(panel: Panel) -> None:
    panel.seed(stations_per_commune=1)
    op = _login(panel, "canbo.hophoa")
    for view in ("week", "agenda", "<script>", "x" * 300):
        r = op.http.get("/schedules", params={"view": view, "week": "not-a-day"})
        assert r.status_code == 200 and "<script>" not in r.text.split("<main>")[1]
        assert ('class="view-week"' in r.text) is (view == "week")


def test_agenda_words_have_english() -> None:
    english = catalog_ids("en")
    wanted = {
        *agenda_view.OUTCOME.values(),
        agenda_view.NO_REPORT,
        agenda_view.COMING,
        agenda_view.AWAITING,
        agenda_view.ALL_STATIONS,
        agenda_view.OTHER_COMMUNES,
        agenda_view.CHOSEN_STATIONS,
        agenda_view.TAGGED,
        agenda_view.SCHEDULED,
        agenda_view.ONE_OFF,
        *agenda_view.PRIORITY.values(),
    }
    assert sorted(w for w in wanted if w not in english) == []


def test_days_and_times_are_typed_the_vietnamese_way_and_wrong_ones_get_a_clear_422(panel: Panel) -> None:
    panel.seed(stations_per_commune=1)
    admin = _login(panel, "admin")
    for path in ("/reports", "/audit", "/schedules/new", "/bulletins", "/led", "/account/alerts", "/library"):
        page = admin.http.get(path).text
        assert not re.search(r'type="(date|time|datetime-local|month|week)"', page), path
    reports = admin.http.get("/reports", params={"start": "01/12/2026", "end": "06/12/2026"})
    assert reports.status_code == 200 and 'value="01/12/2026"' in reports.text
    assert "start=2026-12-01&amp;end=2026-12-06" in reports.text  # the export links keep ISO days
    for path, params in (
        ("/reports", {"start": "31/02/2026"}),
        ("/audit", {"end": "12/31/2026"}),
        ("/reports/play-log.csv", {"start": "hôm qua"}),
        ("/audit", {"start": "1/2/26"}),
    ):
        r = admin.http.get(path, params=params)
        assert (
            r.status_code == 422 and "Ngày không hợp lệ. Hãy viết ngày theo dạng ngày/tháng/năm" in r.text
        ), path
    admin.http.get("/lang?to=en&next=/")
    r = admin.http.get("/audit", params={"start": "2026/12/01"})
    assert r.status_code == 422 and "dd/mm/yyyy, e.g. 02/09/2026" in r.text
    admin.http.get("/lang?to=vi&next=/")

    op = _login(panel, "canbo.hophoa")
    for typed in ("31/02/2026 07:30", "06/12/2026 7:30 PM", "06/12/2026 25:00"):
        r = op.post_form(
            "/bulletins/send",
            {
                "title": "Thử",
                "media_sha256": "0" * 64,
                "target": "all",
                "start_local": typed,
                "priority": "normal",
            },
            csrf_from="/bulletins",
        )
        assert (
            r.status_code == 422 and "Thời điểm không hợp lệ. Hãy viết ngày/tháng/năm giờ:phút" in r.text
        ), typed
