"""Issue 20 items 2 and 4 over HTTP in process: what the page gives the date picker and the
calendar's drag and drop (static/datepicker.js, static/calendar-drag.js), and the JSON answer
of the "Đổi giờ" route the drop posts to (the same route, CSRF check and use case as the form).
In Chromium: tests/system/test_panel_picker_drag_browser.py."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from controller.db.statuses import BroadcastStatus
from controller.web.i18n import catalog_ids
from tests.support import agenda_data, calendar_data
from tests.support.agenda_data import MIDNIGHT_TITLE, TZ
from tests.support.browser import PW, Panel, PanelClient, running_panel
from tests.support.calendar_data import local

JSON = {"Accept": "application/json"}


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def _login(panel: Panel, username: str) -> PanelClient:
    c = panel.client()
    c.login(username, panel.settings.admin_password if username == "admin" else PW)
    return c


def _drop(c: PanelClient, broadcast_id: int, day: str, clock: str, *, csrf: str | None = None) -> Any:
    body = {"csrf": c.csrf("/schedules") if csrf is None else csrf, "day": day, "clock": clock}
    return c.http.post(f"/schedules/broadcasts/{broadcast_id}/move", data=body, headers=JSON,
                       follow_redirects=False)  # fmt: skip


def _movable(page: str) -> list[str]:
    return re.findall(r'class="[^"]*\bmovable\b[^"]*" data-move="([^"]+)"', page)


def test_picker_words_in_the_page_language(panel: Panel) -> None:
    panel.seed(stations_per_commune=1)
    c = _login(panel, "canbo.hophoa")
    page = c.http.get("/reports").text
    words = re.search(r'<div id="date-picker-words"[^>]*>', page, re.S)
    assert words, page[:1000]
    tag = html.unescape(words.group(0))
    assert 'data-tz="Asia/Ho_Chi_Minh"' in tag
    assert 'data-days="T2|T3|T4|T5|T6|T7|CN"' in tag
    assert "data-months=\"Tháng 1|Tháng 2|" in tag and "|Tháng 12\"" in tag
    assert 'data-title="{month} năm {year}"' in tag and 'data-label="Chọn ngày"' in tag
    assert '<script src="/panel-static/datepicker.js" defer></script>' in page
    assert 'class="date-text" data-picker="date"' in page
    c.http.get("/lang", params={"to": "en", "next": "/reports"})
    tag = html.unescape(re.search(r'<div id="date-picker-words"[^>]*>', c.http.get("/reports").text).group(0))
    assert "data-months=\"January|February|" in tag and 'data-title="{month} {year}"' in tag
    assert 'data-label="Choose a day"' in tag and 'data-close="Close"' in tag
    assert c.http.get("/panel-static/datepicker.js").status_code == 200
    assert c.http.get("/panel-static/calendar-drag.js").status_code == 200


def test_only_coming_one_off_bulletins_are_draggable(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    planted = agenda_data.plant(panel.rt, ids)  # a daily schedule at 00:00 and a bulletin in an hour
    sha = calendar_data.media(panel.rt)
    today = planted["today"]
    tomorrow = today + timedelta(days=1)
    coming = calendar_data.bulletin(panel.rt, ids, sha, "Họp dân", local(tomorrow, 10), [ids["hop_hoa"]])
    two_hours_ago = datetime.now(TZ) - timedelta(hours=2)
    gone = calendar_data.bulletin(panel.rt, ids, sha, "Đã phát sáng nay", two_hours_ago, [ids["hop_hoa"]])
    op = _login(panel, "canbo.hophoa")
    month = op.http.get("/schedules", params={"view": "month", "day": tomorrow.isoformat()}).text
    moves = _movable(month)
    assert f"/schedules/broadcasts/{coming}/move" in moves
    assert f"/schedules/broadcasts/{gone}/move" not in moves  # past
    assert not [m for m in moves if "/schedules/" not in m or "/edit" in m]  # no recurring occurrence
    assert 'data-drop="day"' in month and 'id="drag-words"' in month
    assert '<script src="/panel-static/calendar-drag.js" defer></script>' in month
    # The schedule's 00:00 slot is in the grid, but never movable.
    assert MIDNIGHT_TITLE in month
    assert not re.search(r'movable[^>]*>\d\d:\d\d ' + re.escape(MIDNIGHT_TITLE), month)
    week = op.http.get("/schedules", params={"view": "week"}).text
    assert re.search(r'<td data-drop="slot" data-day="\d\d/\d\d/\d{4}" data-hour="\d\d">', week)
    assert f"/schedules/broadcasts/{coming}/move" in _movable(week)
    assert f"/schedules/broadcasts/{gone}/move" not in _movable(week)
    # A viewer may not send: nothing to drag, no drop script.
    viewer = _login(panel, "nguoixem").http.get("/schedules", params={"view": "month"}).text
    assert not _movable(viewer) and 'id="drag-words"' not in viewer


def test_a_drop_answers_json_through_the_same_route(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    sha = calendar_data.media(panel.rt)
    today = datetime.now(TZ).date()
    tomorrow, after = today + timedelta(days=1), today + timedelta(days=2)
    hop_hoa = ids["hop_hoa"]
    mine = calendar_data.bulletin(panel.rt, ids, sha, "Lịch tiêm phòng", local(tomorrow, 10), [hop_hoa])
    xuan_hoa = [ids["xuan_hoa"]]
    other = calendar_data.bulletin(panel.rt, ids, sha, "Riêng Xuân Hòa", local(tomorrow, 10), xuan_hoa)
    calendar_data.policy(panel.rt, hop_hoa, hours=("06:00", "20:00"), per_day=30)
    op = _login(panel, "canbo.hophoa")
    before = calendar_data.start_of(panel.rt, mine)

    # Refusals: the use case's words in Vietnamese, the status the form page gets, nothing changed.
    r = _drop(op, mine, f"{today - timedelta(days=1):%d/%m/%Y}", "10:00")
    assert r.status_code == 422 and r.json()["ok"] is False and "đã qua" in r.json()["message"], r.text
    r = _drop(op, mine, f"{after:%d/%m/%Y}", "21:30")
    assert r.status_code == 422 and "06:00–20:00" in r.json()["message"]
    r = _drop(op, mine, "31/02/2027", "10:00")
    assert r.status_code == 422 and r.json()["message"].startswith("Ngày không hợp lệ")
    r = _drop(op, other, f"{after:%d/%m/%Y}", "10:00")
    assert r.status_code == 404 and r.json()["message"] == f"Không tìm thấy bản tin phát số {other}."
    r = _drop(op, mine, f"{after:%d/%m/%Y}", "10:00", csrf="wrong")  # the form's CSRF check too
    assert r.status_code in (400, 403) and calendar_data.start_of(panel.rt, mine) == before
    assert calendar_data.start_of(panel.rt, mine) == before

    # English page, English words (the keyed message from the catalogue).
    op.http.get("/lang", params={"to": "en", "next": "/schedules"})
    r = _drop(op, mine, f"{today - timedelta(days=1):%d/%m/%Y}", "10:00")
    assert r.status_code == 422 and "đã qua" not in r.json()["message"]
    op.http.get("/lang", params={"to": "vi", "next": "/schedules"})

    # Accepted: the new start, where to look, the notice (a draft: the operator may not approve).
    r = _drop(op, mine, f"{after:%d/%m/%Y}", "10:00")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["ok"] is True and body["ok_key"] == "broadcast_moved_draft"
    assert body["location"] == f"/schedules?view=month&month={after:%Y-%m}&day={after.isoformat()}" \
                               "&ok=broadcast_moved_draft#day"
    assert datetime.fromisoformat(body["start"]) == local(after, 10)
    assert body["notice"].startswith("Đã đổi giờ phát.")
    assert calendar_data.start_of(panel.rt, mine) == (local(after, 10), BroadcastStatus.DRAFT)


def test_new_words_have_english() -> None:
    english = catalog_ids("en")
    for word in ("Tháng 1", "Tháng 12", "{month} năm {year}", "Chọn ngày", "Đóng", "Kéo sang ngày khác",
                 "Kéo sang ngày khác để đổi ngày phát", "Đang đổi giờ phát…",
                 "Không đổi được giờ phát. Hãy thử lại hoặc dùng nút “Đổi giờ”."):
        assert word in english, word
