"""Issue 20 items 2 and 4 in Chromium (Debian's, through Playwright) on a served panel, browser
locale en-US (so an mm/dd/yyyy or AM/PM anywhere would be the browser's, not the app's):

- the app's own date picker (static/datepicker.js): it opens on a tap of a dd/mm/yyyy field,
  a month from Monday (T2 … CN) with today (Asia/Ho_Chi_Minh) marked, month names in the page's
  language, previous/next month, 44 px days on a 390 px phone; a tapped day is written
  dd/mm/yyyy (a typed time after it kept), Escape and a tap outside close it, typing still works,
  and the server takes what it wrote; in English the month is "January 2027" and the field
  still reads dd/mm/yyyy;
- drag and drop in the month view (static/calendar-drag.js): a coming one-off bulletin dragged
  with the mouse to another day lands there (the page, and GET /api/v1/broadcasts/{id} says the
  new start); dragged by a finger (touch events) from the day's list onto a past day, the
  server's refusal is shown in Vietnamese, the item is back and nothing changed; in the week
  view, dragged into another hour.

Screenshots go to test-artifacts/panel/ (gitignored)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from controller.db.models import Broadcast
from controller.web.pagekit import monday_of
from tests.support import agenda_data, calendar_data
from tests.support.agenda_data import LATER_TITLE, TZ
from tests.support.browser import PW, Panel, chromium, chromium_problem, shot, skip_or_fail
from tests.support.served_panel import ServedPanel, served_panel

PHONE = {"width": 390, "height": 844}
TALL_PHONE = {"width": 390, "height": 1200}  # the grid and the day's list on one screen
WIDE = {"width": 1366, "height": 900}
USER = "canbo.hophoa"


@pytest.fixture
async def panel(tmp_path: Path) -> AsyncIterator[ServedPanel]:
    if chromium_problem():
        skip_or_fail(chromium_problem() or "")
    async with served_panel(tmp_path, f"sqlite:///{tmp_path / 'panel.db'}") as p:
        yield p


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as b:
        yield b


async def _page(browser: Any, panel: ServedPanel, viewport: dict[str, int], *, touch: bool = False) -> Any:
    context = await browser.new_context(base_url=panel.base_url, viewport=viewport, locale="en-US",
                                        timezone_id="America/New_York", has_touch=touch)  # fmt: skip
    page = await context.new_page()
    await page.goto("/login")
    await page.fill('input[name="username"]', USER)
    await page.fill('input[name="password"]', PW)
    await page.click('button[type="submit"]')
    await page.wait_for_url(re.compile(r".*/$"))
    return page


def _next_month(day: date) -> date:
    return (day.replace(day=1) + timedelta(days=32)).replace(day=1)


async def test_the_apps_own_date_picker_writes_dd_mm_yyyy(panel: ServedPanel, browser: Any) -> None:
    Panel.seed(panel)  # type: ignore[arg-type]
    calendar_data.media(panel.rt)  # a recording, so /bulletins shows its send form (a day and a time)
    page = await _page(browser, panel, PHONE, touch=True)
    today = datetime.now(TZ).date()
    await page.goto("/reports")
    field = page.locator('input.date-text[name="start"]')
    picker = page.locator("#date-picker")
    await field.fill("")
    await field.tap()
    assert await picker.is_visible()
    assert await field.get_attribute("aria-expanded") == "true"
    title = page.locator("#date-picker .dp-title")
    assert await title.inner_text() == f"Tháng {today.month} năm {today.year}"
    heads = await page.locator("#date-picker thead th").all_inner_texts()
    assert heads == ["T2", "T3", "T4", "T5", "T6", "T7", "CN"]
    marked = page.locator('#date-picker .dp-day[aria-current="date"]')
    assert await marked.count() == 1
    assert await marked.get_attribute("aria-label") == today.strftime("%d/%m/%Y")
    first = await page.locator("#date-picker tbody .dp-day").first.get_attribute("data-ymd")
    assert first and date.fromisoformat(first) == monday_of(today.replace(day=1))  # Monday first
    for b in await page.locator("#date-picker button").all():
        box = await b.bounding_box()
        assert box and box["width"] >= 44 and box["height"] >= 44, await b.inner_text()
    box = await picker.bounding_box()
    assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
    await shot(page, "phone-390-date-picker")

    # Next month, day 3 (a day number that is also a month number: dd/mm, never mm/dd).
    nxt = _next_month(today)
    await page.locator("#date-picker .dp-next").tap()
    assert await title.inner_text() == f"Tháng {nxt.month} năm {nxt.year}"
    await page.locator(f'#date-picker .dp-day[data-ymd="{nxt.replace(day=3).isoformat()}"]').tap()
    assert await field.input_value() == f"03/{nxt.month:02d}/{nxt.year}"
    assert not await picker.is_visible()

    # Escape closes; a tap outside closes; typing still works, and the grid follows it.
    await page.locator("h1").first.tap()
    await field.tap()
    assert await picker.is_visible()
    await page.keyboard.press("Escape")
    assert not await picker.is_visible()
    await field.tap()
    assert await picker.is_visible()
    await page.locator("h1").first.tap()
    assert not await picker.is_visible()
    end = page.locator('input.date-text[name="end"]')
    await end.tap()
    await end.fill("")
    await end.type("02/09/2")
    assert await picker.is_visible()
    await end.type("026")  # the whole day typed: the picker steps aside
    assert await end.input_value() == "02/09/2026" and not await picker.is_visible()
    await end.tap()  # and opens again on the month typed
    assert await picker.is_visible() and await title.inner_text() == "Tháng 9 năm 2026"
    await page.keyboard.press("Escape")
    # The server reads what the picker wrote (a wrong day would be a 422 page).
    await field.fill(today.replace(day=1).strftime("%d/%m/%Y"))
    await end.fill(today.strftime("%d/%m/%Y"))
    assert not await picker.is_visible()  # both days typed whole: nothing covers the form
    async with page.expect_navigation() as nav:
        await field.evaluate("el => el.form.requestSubmit()")
    response = await nav.value
    assert response and response.status == 200
    kept = await page.locator('input.date-text[name="start"]').input_value()
    assert kept == today.replace(day=1).strftime("%d/%m/%Y")

    # A day and a time: the picker changes the day, the typed time stays.
    await page.goto("/bulletins")
    when = page.locator('input.date-text[name="start_local"]')
    await when.fill("01/01/2030 07:30")
    await page.locator("h1").first.tap()
    await when.tap()
    assert await title.inner_text() == "Tháng 1 năm 2030"
    await page.locator('#date-picker .dp-day[data-ymd="2030-01-05"]').tap()
    assert await when.input_value() == "05/01/2030 07:30"

    # English: the month's name changes, the field's format does not.
    await page.goto("/lang?to=en&next=/reports")
    await page.locator('input.date-text[name="start"]').fill("")
    await page.locator('input.date-text[name="start"]').tap()
    assert await title.inner_text() == f"{today:%B} {today.year}"
    await page.locator("#date-picker .dp-next").tap()
    await page.locator(f'#date-picker .dp-day[data-ymd="{nxt.replace(day=3).isoformat()}"]').tap()
    written = await page.locator('input.date-text[name="start"]').input_value()
    assert written == f"03/{nxt.month:02d}/{nxt.year}"
    await shot(page, "phone-390-date-picker-en")


def _grid(first: date) -> tuple[date, date]:
    """The month view's first and last day for the month of `first` (whole weeks from Monday)."""
    last = _next_month(first) - timedelta(days=1)
    return monday_of(first.replace(day=1)), monday_of(last) + timedelta(days=6)


def _month_with(*days: date) -> date:
    """A month whose grid shows all these days."""
    for d in days:
        lo, hi = _grid(d.replace(day=1))
        if all(lo <= x <= hi for x in days):
            return d.replace(day=1)
    raise AssertionError(f"no month grid holds {days}")


def _fits(*days: date) -> bool:
    try:
        _month_with(*days)
    except AssertionError:
        return False
    return True


async def _api_start(panel: ServedPanel, broadcast_id: int) -> datetime:
    async with httpx.AsyncClient(base_url=panel.base_url) as http:
        token = (await http.post("/api/v1/auth/token", data={"username": USER, "password": PW})).json()
        r = await http.get(f"/api/v1/broadcasts/{broadcast_id}",
                           headers={"Authorization": f"Bearer {token['access_token']}"})  # fmt: skip
        assert r.status_code == 200, r.text
        return datetime.fromisoformat(r.json()["start_at"].replace("Z", "+00:00"))


async def _touch_drag(page: Any, source: Any, target: Any) -> None:
    """A finger: touch start on `source`, moves, touch end on `target` (Chromium turns them into
    pointer events of type "touch")."""
    a, b = await source.bounding_box(), await target.bounding_box()
    assert a and b
    x0, y0 = a["x"] + a["width"] / 2, a["y"] + a["height"] / 2
    x1, y1 = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
    cdp = await page.context.new_cdp_session(page)
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x0, "y": y0}]})
    for i in range(1, 11):
        x, y = x0 + (x1 - x0) * i / 10, y0 + (y1 - y0) * i / 10
        await cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [{"x": x, "y": y}]})
    await cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


async def test_drag_a_bulletin_to_another_day_and_a_refused_drop(panel: ServedPanel, browser: Any) -> None:
    ids = Panel.seed(panel)  # type: ignore[arg-type]
    planted = agenda_data.plant(panel.rt, ids)
    with panel.rt.db.session() as s:
        bid = s.scalars(select(Broadcast.id).where(Broadcast.title == LATER_TITLE)).one()
    later = planted["later"].astimezone(TZ)
    src = later.date()
    days = next(n for n in (2, 1, 3) if _fits(src, src + timedelta(days=n)))
    dst = src + timedelta(days=days)
    month = _month_with(src, dst)

    # The mouse, on a wide screen: the bulletin's line in its day's cell, dropped two days later.
    page = await _page(browser, panel, WIDE)
    await page.goto(f"/schedules?view=month&month={month:%Y-%m}#month")
    item = page.locator(f'#month-grid td[data-day="{src:%d/%m/%Y}"] .slot.movable', has_text=LATER_TITLE)
    target = page.locator(f'#month-grid td[data-day="{dst:%d/%m/%Y}"]')
    assert await item.count() == 1
    # A recurring occurrence is not draggable.
    assert not await page.locator("#month-grid .slot.movable", has_text=agenda_data.MIDNIGHT_TITLE).count()
    a, b = await item.bounding_box(), await target.bounding_box()
    assert a and b
    await page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=12)
    assert "drop-over" in (await target.get_attribute("class") or "")
    await shot(page, "wide-1366-month-dragging")
    await page.mouse.up()
    await page.wait_for_url(f"**day={dst.isoformat()}*")
    assert "Đã đổi giờ phát" in await page.locator("main").inner_text()
    moved = page.locator(f'#month-grid td[data-day="{dst:%d/%m/%Y}"] .slot', has_text=LATER_TITLE)
    assert await moved.count() == 1 and f"{later:%H:%M}" in await moved.inner_text()
    left = page.locator(f'#month-grid td[data-day="{src:%d/%m/%Y}"] .slot', has_text=LATER_TITLE)
    assert not await left.count()
    assert LATER_TITLE in await page.locator("#day-list").inner_text()
    new_start = later + timedelta(days=days)
    assert await _api_start(panel, bid) == new_start
    await shot(page, "wide-1366-month-dropped")

    # The week view: the same bulletin dragged into another hour of its day (05-21 always shown).
    hour = 10 if later.hour != 10 else 11
    await page.goto(f"/schedules?view=week&week={dst.isoformat()}#week")
    item = page.locator("#week-grid .slot.movable", has_text=LATER_TITLE)
    slot = page.locator(f'#week-grid td[data-day="{dst:%d/%m/%Y}"][data-hour="{hour:02d}"]')
    assert await item.count() == 1 and await slot.count() == 1
    a, b = await item.bounding_box(), await slot.bounding_box()
    assert a and b
    await page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    await page.mouse.down()
    await page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=12)
    await page.mouse.up()
    await page.wait_for_url("**ok=broadcast_moved*")
    assert "view=week" in page.url
    assert LATER_TITLE in await slot.inner_text()
    new_start = new_start.replace(hour=hour)
    assert await _api_start(panel, bid) == new_start
    await shot(page, "wide-1366-week-dropped")

    # A finger on a phone: the day's list has a drag handle; dropped on a past day it is refused
    # (the server's words, in Vietnamese), the line is back, nothing changed.
    today = datetime.now(TZ).date()
    past = today - timedelta(days=1)
    try:
        month = _month_with(dst, past)
    except AssertionError:  # today is a Monday the 1st and dst the 2nd or 3rd: no grid shows yesterday
        pytest.skip("no month grid shows both yesterday and the bulletin's new day today")
    phone = await _page(browser, panel, TALL_PHONE, touch=True)
    await phone.goto(f"/schedules?view=month&month={month:%Y-%m}&day={dst.isoformat()}#month")
    handle = phone.locator("#day-list .drag-handle", has_text="Kéo sang ngày khác")
    assert await handle.count() == 1 and await handle.is_visible()
    hb = await handle.bounding_box()
    assert hb and hb["height"] >= 44
    await _touch_drag(phone, handle, phone.locator(f'#month-grid td[data-day="{past:%d/%m/%Y}"]'))
    status = phone.locator("#drag-status.error")  # "busy" first, then the server's answer
    await status.wait_for(state="visible")
    said = await status.inner_text()
    assert "đã qua" in said and "Hãy chọn một thời điểm trong tương lai" in said, said
    assert phone.url.endswith("#month") and "ok=" not in phone.url  # the page stayed
    assert await handle.is_visible()
    assert await _api_start(panel, bid) == new_start
    await shot(phone, "phone-390-month-drop-refused")
    await phone.reload()  # a fresh page: Chromium's tap detection after the synthetic touch drag
    await phone.locator("#day-list .drag-handle").tap()  # a tap (no drag) on the handle: the "Đổi giờ" form
    await phone.wait_for_url(f"**/schedules/broadcasts/{bid}/move")
