"""The calendar (issue 20 item 4) over HTTP in process, on SQLite and PostgreSQL: the schedules
page's month view (weeks from Monday, today marked, month by month, the caller's area only,
past days marked from the play log, a tapped day listed in full) and moving a one-off bulletin
from it ("Đổi giờ": dd/mm/yyyy and 24-hour HH:MM typed, the same use case as
PATCH /api/v1/broadcasts/{id}: area, right, policy, approval, the stations told again).
The API side: tests/integration/test_api_broadcast_move.py; in Chromium at 390 px:
tests/system/test_panel_phone_browser.py."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controller.db.models import AuditEntry
from controller.db.models_dispatch import DispatchQueue
from controller.db.statuses import BroadcastStatus, PlayStatus
from controller.services.broadcasts import item_id_for
from controller.services.recurrence import item_id
from controller.web import calendar
from controller.web.i18n import catalog_ids
from tests.support import agenda_data, calendar_data
from tests.support.agenda_data import MIDNIGHT_TITLE, OTHER_TITLE, TZ
from tests.support.browser import PW, Panel, PanelClient, running_panel
from tests.support.calendar_data import local

STORM = "Khẩn cấp: bão số 3"
XUAN_HOA_ONLY = "Thông báo riêng Xuân Hòa hôm qua"


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def _login(panel: Panel, username: str) -> PanelClient:
    c = panel.client()
    c.login(username, panel.settings.admin_password if username == "admin" else PW)
    return c


def _cell(page: str, day: date) -> str:
    cell = rf'<td class="([^"]*)" data-day="{day:%d/%m/%Y}" data-count="(\d+)"([^>]*)>(.*?)</td>'
    m = re.search(cell, page, re.S)
    assert m, f"no cell for {day} in the month grid"
    return m.group(0)


def _count(cell: str) -> int:
    m = re.search(r'data-count="(\d+)"', cell)
    assert m
    return int(m.group(1))


def _marks(cell: str) -> dict[str, int]:
    found = re.findall(r'<span class="mark mark-(\w+)" title="[^"]*">(\d+)</span>', cell)
    return {v: int(n) for v, n in found}


def _day_list(page: str) -> str:
    m = re.search(r'<ul class="agenda" id="day-list">(.*?)</ul>', page, re.S)
    assert m, "no day list on the page"
    return m.group(1)


def _plant_past(panel: Panel, ids: dict[str, Any], planted: dict[str, Any]) -> dict[str, Any]:
    """Yesterday: the midnight schedule missed at the Hợp Hòa station, a storm emergency cut
    short there (then stopped: cancelled), and a bulletin for Xuân Hòa only that played."""
    yesterday = planted["today"] - timedelta(days=1)
    hop_hoa, xuan_hoa = ids["devices"][ids["hop_hoa"]][0], ids["devices"][ids["xuan_hoa"]][0]
    sha = calendar_data.media(panel.rt)
    midnight = local(yesterday, 0)
    calendar_data.played(panel.rt, hop_hoa, item_id(planted["schedule"], midnight), PlayStatus.MISSED)
    storm = calendar_data.bulletin(panel.rt, ids, sha, STORM, local(yesterday, 8), [ids["hop_hoa"]],
                                   status=BroadcastStatus.CANCELLED, priority="emergency", emergency=True)
    calendar_data.played(panel.rt, hop_hoa, item_id_for(storm), PlayStatus.INTERRUPTED, broadcast_id=storm,
                         at=local(yesterday, 8))  # fmt: skip
    other = calendar_data.bulletin(panel.rt, ids, sha, XUAN_HOA_ONLY, local(yesterday, 9), [ids["xuan_hoa"]])
    calendar_data.played(panel.rt, xuan_hoa, item_id_for(other), PlayStatus.PLAYED, broadcast_id=other)
    return {"yesterday": yesterday, "storm": storm, "sha": sha}


def test_month_shows_the_callers_plays_by_day_and_what_happened(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    planted = agenda_data.plant(panel.rt, ids)
    past = _plant_past(panel, ids, planted)
    today, yesterday = planted["today"], past["yesterday"]
    later_day = planted["later"].astimezone(TZ).date()

    op = _login(panel, "canbo.hophoa")  # Hợp Hòa only
    page = op.http.get("/schedules", params={"view": "month"})
    assert page.status_code == 200
    text = page.text
    assert 'class="view-month"' in text and 'id="view-month" aria-current="page"' in text
    assert f"Tháng {today:%m/%Y}" in text
    # Today's cell is marked; the midnight play and, when still today, the bulletin in an hour.
    cell = _cell(text, today)
    assert " today" in cell and 'aria-current="date"' in cell
    assert _count(cell) == 1 + (later_day == today)
    assert _marks(cell).get("played") == 1  # at 00:00 the operator's station played it
    assert OTHER_TITLE not in text and XUAN_HOA_ONLY not in text  # Xuân Hòa's plays are not theirs
    # Today is listed under the grid (the page opens on it), with its "Đổi giờ" link if it is today.
    listed = _day_list(text)
    assert MIDNIGHT_TITLE in listed and "Đã phát ở 1 trạm." in listed and "Bị lỡ" not in listed
    # The grid: whole weeks from Monday (Thứ Hai) to Sunday.
    grid = text[text.index('id="month-grid"') : text.index("</table>", text.index('id="month-grid"'))]
    days = [datetime.strptime(d, "%d/%m/%Y").date() for d in re.findall(r'data-day="([^"]+)"', grid)]
    assert len(days) % 7 == 0 and 28 <= len(days) <= 42 and days[0].weekday() == 0
    assert days == [days[0] + timedelta(days=i) for i in range(len(days))]
    assert today.replace(day=1) in days and '<th scope="col"><abbr title="Thứ Hai">T2</abbr>' in grid

    # Yesterday (tapped: ?day=), from the play log on the operator's station only.
    r = op.http.get("/schedules", params={"view": "month", "day": yesterday.isoformat()})
    assert r.status_code == 200
    cell = _cell(r.text, yesterday)
    assert " past" in cell and " selected" in cell
    assert _count(cell) == 2 and _marks(cell) == {"missed": 1, "interrupted": 1}, cell
    listed = _day_list(r.text)
    assert f"{yesterday:%d/%m/%Y}" in r.text[r.text.index('id="day-title"') :][:200]
    assert MIDNIGHT_TITLE in listed and "Bị lỡ ở 1 trạm." in listed and "Đã phát" not in listed
    assert STORM in listed and "Bị ngắt ở 1 trạm." in listed  # an emergency, stopped after it played
    assert "Đổi giờ" not in listed and XUAN_HOA_ONLY not in r.text

    # The province's approver sees Xuân Hòa too: the midnight play missed there, its bulletin played.
    approver = _login(panel, "duyet")
    seen = approver.http.get("/schedules", params={"view": "month", "day": yesterday.isoformat()}).text
    assert XUAN_HOA_ONLY in _day_list(seen)
    assert _marks(_cell(seen, yesterday)) == {"played": 1, "missed": 1, "interrupted": 1}


def test_month_navigation_and_parameters(panel: Panel) -> None:
    panel.seed(stations_per_commune=1)
    op = _login(panel, "canbo.hophoa")
    now = op.http.get("/schedules", params={"view": "month"}).text
    first = datetime.now(TZ).date().replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    prev = (first - timedelta(days=1)).replace(day=1)
    assert f'href="/schedules?view=month&amp;month={nxt:%Y-%m}#month"' in now
    assert f'href="/schedules?view=month&amp;month={prev:%Y-%m}#month"' in now
    later = op.http.get("/schedules", params={"view": "month", "month": f"{nxt:%Y-%m}"}).text
    assert f"Tháng {nxt:%m/%Y}" in later and 'id="day-hint"' in later  # no day chosen there yet
    assert f'month={(nxt + timedelta(days=32)).replace(day=1):%Y-%m}#month' in later
    assert f'month={first:%Y-%m}#month' in later  # back to this month from the next one
    # A day's cell links to that day's list; a day alone picks its month.
    assert f'href="/schedules?view=month&amp;month={nxt:%Y-%m}&amp;day={nxt.isoformat()}#day"' in later
    chosen = op.http.get("/schedules", params={"view": "month", "day": "15/12/2030"}).text
    assert "Tháng 12/2030" in chosen and "Ngày này không có lượt phát nào." in chosen
    assert "Chủ nhật 15/12/2030" in chosen  # the day's heading, the app's own format
    # Nonsense falls back to this month, never an error or an echo.
    for bad in ({"month": "2026-13"}, {"month": "<script>"}, {"month": "9999-01"}, {"day": "31/02/2026"},
                {"day": "x" * 300}):
        r = op.http.get("/schedules", params={"view": "month", **bad})
        assert r.status_code == 200 and f"Tháng {first:%m/%Y}" in r.text, bad
        assert "<script>" not in r.text.split("<main>")[1]
    # The switch: three views, each one a link of at least a finger's size (CSS), in English too.
    assert re.search(r'<nav class="view-switch" id="view-switch"', now)
    op.http.get("/lang?to=en&next=/")
    english = op.http.get("/schedules", params={"view": "month"}).text
    assert ">Month<" in english and ">Week<" in english and ">Agenda<" in english
    assert f"Month {first:%m/%Y}" in english and ">Mon</abbr>" in english


def test_month_words_have_english() -> None:
    english = catalog_ids("en")
    wanted = {*calendar.VERDICTS.values(), *calendar.SHORT_DAYS, calendar.MONTH_TITLE, calendar.PLAYS,
              calendar.MORE, calendar.NOTHING}  # fmt: skip
    assert sorted(w for w in wanted if w not in english) == []


# -- moving a one-off bulletin ----------------------------------------------------------------------
def _queued(panel: Panel) -> list[int]:
    with panel.rt.db.session() as s:
        return sorted(s.scalars(select(DispatchQueue.device_id)))


def _minus(after: list[int], before: list[int]) -> list[int]:
    """The rows `after` holds beyond `before` (sorted lists of device ids, a multiset)."""
    rest = list(after)
    for d in before:
        rest.remove(d)
    return rest


def _move(c: PanelClient, broadcast_id: int, day: str, clock: str, reason: str = "") -> Any:
    path = f"/schedules/broadcasts/{broadcast_id}/move"
    return c.post_form(path, {"day": day, "clock": clock, "override_reason": reason}, csrf_from="/schedules")


def _error(page: str) -> str:
    m = re.search(r'<p class="error" role="alert"(?: id="move-(?:error|blocked)")?>(.*?)</p>', page, re.S)
    assert m, page[:2000]
    return html.unescape(m.group(1))


def test_moving_a_bulletin_from_the_calendar(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=2)
    sha = calendar_data.media(panel.rt)
    admin_id = calendar_data.user_id(panel.rt, "admin")
    tomorrow = datetime.now(TZ).date() + timedelta(days=1)
    hop_hoa = ids["hop_hoa"]
    stations = sorted(ids["devices"][hop_hoa])
    bc = calendar_data.bulletin(panel.rt, ids, sha, "Họp dân", local(tomorrow, 10), [hop_hoa], by=admin_id)

    # The day's list links to the form; the form says the time the app's way.
    op = _login(panel, "canbo.hophoa")
    listed = op.http.get("/schedules", params={"view": "month", "day": tomorrow.isoformat()}).text
    assert f'href="/schedules/broadcasts/{bc}/move"' in _day_list(listed)
    form = op.http.get(f"/schedules/broadcasts/{bc}/move")
    assert form.status_code == 200 and 'id="move-form"' in form.text
    assert f"{tomorrow:%d/%m/%Y} 10:00" in form.text and f'value="{tomorrow:%d/%m/%Y}"' in form.text
    assert 'value="10:00"' in form.text and not re.search(r'type="(date|time|datetime-local)"', form.text)

    # The admin (who may approve) moves it: it stays on air, its stations are told again.
    admin = _login(panel, "admin")
    before = _queued(panel)
    r = _move(admin, bc, f"{tomorrow:%d/%m/%Y}", "11:30")
    assert r.status_code == 303, r.text[:500]
    back = f"/schedules?view=month&month={tomorrow:%Y-%m}&day={tomorrow.isoformat()}&ok=broadcast_moved#day"
    assert r.headers["location"] == back
    assert calendar_data.start_of(panel.rt, bc) == (local(tomorrow, 11, 30), BroadcastStatus.SCHEDULED)
    assert _minus(_queued(panel), before) == stations  # one dispatch row per station, same transaction
    done = admin.http.get(r.headers["location"]).text
    assert "Đã đổi giờ phát. Các trạm sẽ nhận giờ mới." in done and "11:30" in _day_list(done)
    with panel.rt.db.session() as s:
        audit = s.scalars(select(AuditEntry).where(AuditEntry.action == "broadcast.reschedule")).one()
        assert audit.object_id == str(bc)
        assert audit.detail["previous_start_at"] == local(tomorrow, 10).isoformat()

    # The commune's operator (no approval right) moves it to the next day: a draft again,
    # and its stations drop it from their horizon until an approver says yes.
    before = _queued(panel)
    r = _move(op, bc, f"{tomorrow + timedelta(days=1):%d/%m/%Y}", "7:05")
    assert r.status_code == 303 and "ok=broadcast_moved_draft" in r.headers["location"], r.text[:500]
    assert calendar_data.start_of(panel.rt, bc) == (local(tomorrow + timedelta(days=1), 7, 5),
                                                    BroadcastStatus.DRAFT)  # fmt: skip
    assert _minus(_queued(panel), before) == stations


def test_moves_refused_leave_the_bulletin_as_it_was(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    sha = calendar_data.media(panel.rt)
    today = datetime.now(TZ).date()
    tomorrow, after = today + timedelta(days=1), today + timedelta(days=2)
    hop_hoa = ids["hop_hoa"]
    b = calendar_data.bulletin  # shorter lines below
    mine = b(panel.rt, ids, sha, "Lịch tiêm phòng", local(tomorrow, 10), [hop_hoa])
    b(panel.rt, ids, sha, "Họp tổ dân phố", local(after, 9), [hop_hoa])
    xuan_hoa = b(panel.rt, ids, sha, "Riêng Xuân Hòa", local(tomorrow, 10), [ids["xuan_hoa"]])
    everyone = b(panel.rt, ids, sha, "Toàn tỉnh", local(after, 15), None)
    started = b(panel.rt, ids, sha, "Đang phát", datetime.now(TZ) - timedelta(minutes=1), [hop_hoa])
    cancelled = b(panel.rt, ids, sha, "Đã thôi", local(tomorrow, 12), [hop_hoa],
                  status=BroadcastStatus.CANCELLED)
    storm = b(panel.rt, ids, sha, "Bão số 3", local(tomorrow, 13), [hop_hoa], priority="emergency",
              emergency=True)
    calendar_data.policy(panel.rt, hop_hoa, hours=("06:00", "20:00"), per_day=3)  # two bulletins: 4 minutes
    kept = (mine, xuan_hoa, everyone, started, cancelled, storm)
    rows = {i: calendar_data.start_of(panel.rt, i) for i in kept}
    op = _login(panel, "canbo.hophoa")
    day = f"{tomorrow:%d/%m/%Y}"

    # Another commune's bulletin does not exist for them; one reaching beyond their area is a 403.
    assert op.http.get(f"/schedules/broadcasts/{xuan_hoa}/move").status_code == 404
    r = _move(op, xuan_hoa, day, "11:00")
    assert r.status_code == 404 and f"Không tìm thấy bản tin phát số {xuan_hoa}." in r.text
    r = _move(op, everyone, day, "16:00")
    assert r.status_code == 403 and "địa bàn" in _error(r.text)
    # A viewer may not move anything (the panel's 403 page).
    assert _login(panel, "nguoixem").http.get(f"/schedules/broadcasts/{mine}/move").status_code == 403

    # Started, cancelled, an emergency: the form page says why at once, a post gets the same words.
    for bid, words in ((started, "đã đến giờ phát"), (cancelled, "đã bị huỷ"), (storm, "phát khẩn cấp")):
        page = op.http.get(f"/schedules/broadcasts/{bid}/move")
        assert page.status_code == 200 and 'id="move-blocked"' in page.text
        assert 'id="move-form"' not in page.text
        assert words in _error(page.text), bid
        r = _move(op, bid, day, "11:00")
        assert r.status_code == 409 and words in _error(r.text), (bid, r.text[:300])

    # The commune's policy: outside its hours, or over its minutes a day with the other bulletin.
    r = _move(op, mine, day, "21:30")
    assert r.status_code == 422 and "06:00–20:00" in _error(r.text) and "<details open>" in r.text
    r = _move(op, mine, f"{after:%d/%m/%Y}", "11:00")
    assert r.status_code == 422 and "tối đa 3 phút mỗi ngày" in _error(r.text)
    # A time in the past.
    r = _move(op, mine, f"{today - timedelta(days=1):%d/%m/%Y}", "10:00")
    assert r.status_code == 422 and "đã qua" in _error(r.text)
    # Days and times typed wrong: a 422 saying how to write them, what was typed kept.
    bad_day, bad_time = "Ngày không hợp lệ", "Giờ không hợp lệ"
    for typed_day, clock, words in (("31/02/2027", "10:00", bad_day), ("12/31/2027", "10:00", bad_day),
                                    (day, "7:30 PM", bad_time), (day, "25:00", bad_time),
                                    (day, "0730", bad_time), ("", "10:00", bad_day),
                                    ("01/01/0001", "00:00", bad_day)):
        r = _move(op, mine, typed_day, clock)
        assert r.status_code == 422 and words in _error(r.text), (typed_day, clock)
        assert f'value="{html.escape(clock)}"' in r.text
    assert {i: calendar_data.start_of(panel.rt, i) for i in rows} == rows  # nothing changed
    with panel.rt.db.session() as s:
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "broadcast.reschedule")).all() == []

    # Within the same day its own two minutes do not count twice: the move is allowed.
    r = _move(op, mine, day, "11:00")
    assert r.status_code == 303, _error(r.text)
    assert calendar_data.start_of(panel.rt, mine)[0] == local(tomorrow, 11)
