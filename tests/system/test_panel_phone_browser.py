"""Issue 20 in Chromium (Debian's, through Playwright), on a served panel, browser locale
en-US so that every date and time seen is the app's own format, not the browser's:

- at 390 px the links are behind "Menu" (aria-expanded), the emergency action stays in the
  header, tap targets are at least 44 px; the schedules page opens on the agenda with
  today's play and what happened; at 1366 px the links and the week grid (from today) show;
- dates and times on the schedules, play log, audit and report pages read dd/mm/yyyy, 24-hour;
- the month view at 390 px: whole weeks from Monday that fit the screen, today marked, a tap on
  today lists its plays, a coming bulletin moved with a typed day and 24-hour time;
- the manifest's icons load, the service worker is registered and controls the page; with
  the network gone a page navigation gets the offline page (never the old page) and an
  /api/ request fails instead of being answered from a cache.

Screenshots of every page (the menu's and the pages reached from them) at both widths go to
test-artifacts/panel/ (gitignored); a phone never scrolls a page sideways."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.support import agenda_data
from tests.support.agenda_data import LATER_TITLE, MIDNIGHT_TITLE, TZ
from tests.support.browser import PW, Panel, chromium, chromium_problem, open_menu, shot, skip_or_fail
from tests.support.served_panel import ServedPanel, served_panel

PHONE = {"width": 390, "height": 844}
WIDE = {"width": 1366, "height": 900}
MAIN_PAGES = ["/", "/stations", "/bulletins", "/schedules", "/playlog", "/alarms", "/reports"]
DATE_PAGES = ["/schedules", "/playlog", "/audit", "/reports"]
SUB_PAGES = ["/emergency", "/emergency-presets", "/bulletins/tts", "/schedules/new", "/schedules?view=month",
             "/library", "/stations-import", "/admin/areas", "/account/password", "/account/alerts"]
US_TIME = re.compile(r"\b\d{1,2}:\d{2}(:\d{2})?\s?(AM|PM|am|pm)\b")
ISO = re.compile(r"\b\d{4}-\d{2}-\d{2}(T|\b)")
SLASHED = re.compile(r"\b\d{1,4}/\d{1,2}(/\d{2,4})?\b")


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


async def _page(
    browser: Any, panel: ServedPanel, viewport: dict[str, int], username: str, password: str
) -> Any:
    context = await browser.new_context(base_url=panel.base_url, viewport=viewport, locale="en-US",
                                        timezone_id="America/New_York")  # fmt: skip
    page = await context.new_page()
    await page.goto("/login")
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', password)
    await page.click('button[type="submit"]')
    await page.wait_for_url(re.compile(r".*/$"))
    return page


async def _height(page: Any, selector: str) -> float:
    box = await page.locator(selector).first.bounding_box()
    assert box, f"{selector} is not laid out"
    return float(box["height"])


async def test_phone_menu_emergency_action_and_agenda(panel: ServedPanel, browser: Any) -> None:
    ids = Panel.seed(panel)  # type: ignore[arg-type]  # only needs .rt
    planted = agenda_data.plant(panel.rt, ids)
    page = await _page(browser, panel, PHONE, "canbo.hophoa", PW)

    menu, nav = page.locator("#menu-button"), page.locator("#site-menu nav")
    assert await menu.is_visible() and await menu.get_attribute("aria-expanded") == "false"
    assert not await nav.is_visible()
    assert await page.locator("#emergency-action").is_visible()
    assert await page.locator("#emergency-action").inner_text() == "Phát khẩn cấp"
    assert await _height(page, "#emergency-action") >= 44 and await _height(page, "#menu-button") >= 44
    await shot(page, "phone-390-menu-closed")

    await menu.click()
    assert await menu.get_attribute("aria-expanded") == "true" and await nav.is_visible()
    for link in await nav.locator("a").all():
        assert await link.is_visible()
        box = await link.bounding_box()
        assert box and box["height"] >= 44, await link.inner_text()
    await shot(page, "phone-390-menu-open")
    await page.keyboard.press("Escape")
    assert await menu.get_attribute("aria-expanded") == "false" and not await nav.is_visible()

    await open_menu(page)
    await page.click('#site-menu nav a[href="/schedules"]')
    await page.wait_for_url("**/schedules")
    agenda = page.locator("#agenda")
    assert await agenda.is_visible() and not await page.locator("#week-grid").is_visible()
    today = await page.locator("#agenda-today li").first.inner_text()
    assert "00:00" in today and MIDNIGHT_TITLE in today and "Đã phát ở 1 trạm." in today
    day = planted["today"].strftime("%d/%m/%Y")
    assert f"Hôm nay · {day}" in await agenda.inner_text()
    await shot(page, "phone-390-schedules-agenda")
    for path in MAIN_PAGES:
        await page.goto(path)
        await shot(page, f"phone-390{path.replace('/', '-') if path != '/' else '-dashboard'}")

    wide = await _page(browser, panel, WIDE, "canbo.hophoa", PW)
    assert not await wide.locator("#menu-button").is_visible()
    assert (
        await wide.locator("#site-menu nav").is_visible()
        and await wide.locator("#emergency-action").is_visible()
    )
    await wide.goto("/schedules")
    assert await wide.locator("#week-grid").is_visible() and not await wide.locator("#agenda").is_visible()
    first_day = await wide.locator("#week-grid thead th").nth(1).inner_text()
    assert first_day.startswith("Hôm nay") and planted["today"].strftime("%d/%m") in first_day
    past = wide.locator("#week-grid .slot-past", has_text=MIDNIGHT_TITLE).first
    assert await past.is_visible()
    for path in MAIN_PAGES:
        await wide.goto(path)
        await shot(wide, f"wide-1366{path.replace('/', '-') if path != '/' else '-dashboard'}")


async def test_phone_month_view_tap_today_and_move_a_bulletin(panel: ServedPanel, browser: Any) -> None:
    """The calendar at 390 px (issue 20 item 4): the switch to "Tháng", a grid of whole weeks
    from Monday that fits the screen, today marked; tapping today lists its plays with what
    happened; the coming bulletin's "Đổi giờ" form takes a day and a 24-hour time."""
    ids = Panel.seed(panel)  # type: ignore[arg-type]
    planted = agenda_data.plant(panel.rt, ids)
    page = await _page(browser, panel, PHONE, "canbo.hophoa", PW)
    await page.goto("/schedules")
    switch = page.locator("#view-switch a")
    assert await switch.count() == 3
    for link in await switch.all():
        box = await link.bounding_box()
        assert box and box["height"] >= 44 and box["width"] >= 44, await link.inner_text()
    await page.click("#view-month")
    await page.wait_for_url("**/schedules?view=month*")
    grid = page.locator("#month-grid")
    assert await grid.is_visible()
    assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scroll
    assert await page.locator("#month-grid thead th").first.inner_text() == "T2"
    today = planted["today"]
    cell = page.locator(f'#month-grid td[data-day="{today:%d/%m/%Y}"]')
    assert "today" in (await cell.get_attribute("class") or "")
    assert await cell.get_attribute("aria-current") == "date"
    for link in await page.locator("#month-grid a.day-link").all():
        box = await link.bounding_box()
        assert box and box["height"] >= 44 and box["width"] >= 44
    await shot(page, "phone-390-schedules-month")

    await page.click("#month-prev")  # another month first ...
    await page.wait_for_url("**month=*")
    assert not await page.locator("#day-list").count()
    await page.click("#month-now")  # ... then back, and tap today
    await page.wait_for_url("**/schedules?view=month*")
    await page.locator(f'#month-grid td[data-day="{today:%d/%m/%Y}"] a.day-link').click()
    await page.wait_for_url(f"**day={today.isoformat()}*")
    title = await page.locator("#day-title").inner_text()
    assert today.strftime("%d/%m/%Y") in title and "Hôm nay" in title
    first = await page.locator("#day-list li").first.inner_text()
    assert "00:00" in first and MIDNIGHT_TITLE in first and "Đã phát ở 1 trạm." in first
    await shot(page, "phone-390-schedules-month-today")

    # The bulletin in an hour: "Đổi giờ", a day and a 24-hour time typed, the month again.
    later = planted["later"].astimezone(TZ)
    move = page.locator("#day-list a.move-link")
    if later.date() != today:  # past 23:00 the bulletin is tomorrow's
        await page.goto(f"/schedules?view=month&day={later.date().isoformat()}#day")
    box = await move.first.bounding_box()
    assert box and box["height"] >= 44
    await move.first.click()
    await page.wait_for_url("**/move")
    assert await page.locator("#move-clock").input_value() == later.strftime("%H:%M")
    moved = later + timedelta(hours=1)
    await page.fill("#move-day", moved.strftime("%d/%m/%Y"))
    await page.fill("#move-clock", moved.strftime("%H:%M"))
    await shot(page, "phone-390-move-bulletin")
    await page.click("#move-submit")
    await page.wait_for_url(f"**day={moved.date().isoformat()}*")
    assert "Đã đổi giờ phát" in await page.locator("main").inner_text()
    listed = await page.locator("#day-list").inner_text()
    assert f"{moved:%H:%M}" in listed and LATER_TITLE in listed

    wide = await _page(browser, panel, WIDE, "canbo.hophoa", PW)
    await wide.goto("/schedules?view=month")
    assert await wide.locator("#month-grid .day-first").first.is_visible()  # titles, not only counts
    await shot(wide, "wide-1366-schedules-month")


async def test_dates_and_times_are_the_apps_own_in_an_english_browser(
    panel: ServedPanel, browser: Any
) -> None:
    ids = Panel.seed(panel)  # type: ignore[arg-type]
    agenda_data.plant(panel.rt, ids)
    page = await _page(browser, panel, WIDE, "admin", panel.admin_password)  # audit: the login is there
    for path in DATE_PAGES:
        await page.goto(path)
        values = await page.eval_on_selector_all(
            "main input:not([type=hidden])", "els => els.map(e => e.value)"
        )
        text = await page.locator("main").inner_text() + "\n" + "\n".join(values)
        assert not US_TIME.search(text), (path, US_TIME.search(text))
        assert not ISO.search(text), (path, ISO.search(text))
        for m in SLASHED.finditer(text):
            assert re.fullmatch(r"\d{2}/\d{2}(/\d{4})?", m.group(0)), (path, m.group(0))
            d, mo = (int(x) for x in m.group(0).split("/")[:2])
            assert 1 <= d <= 31 and 1 <= mo <= 12, (path, m.group(0))
        assert re.search(r"\b\d{2}/\d{2}/\d{4}\b", text), f"{path} shows no date at all"
    # No field whose look the browser's language decides, on any form with a day or a time.
    for path in [*DATE_PAGES, "/schedules/new", "/bulletins", "/led"]:
        await page.goto(path)
        native = await page.locator(
            "input[type=date], input[type=time], input[type=datetime-local], "
            "input[type=month], input[type=week]"
        ).count()
        assert native == 0, path
    # A day typed the Vietnamese way filters; a wrong one gets a clear 422 in Vietnamese.
    today = datetime.now(TZ).strftime("%d/%m/%Y")
    await page.goto("/audit")
    await page.fill('#audit-filters input[name="start"]', today)
    await page.click("#audit-filters button[type=submit]")
    assert "đăng nhập" in (await page.locator("#audit-table").inner_text()).lower()
    bad = await page.goto("/audit?start=31/02/2026")
    assert bad and bad.status == 422
    assert "Ngày không hợp lệ" in await page.locator("main").inner_text()


async def test_installable_service_worker_and_offline_page(panel: ServedPanel, browser: Any) -> None:
    Panel.seed(panel)  # type: ignore[arg-type]
    page = await _page(browser, panel, PHONE, "canbo.hophoa", PW)
    manifest = await page.evaluate("""async () => {
        const href = document.querySelector('link[rel="manifest"]').href;
        const m = await (await fetch(href)).json();
        const icons = await Promise.all(m.icons.map(i => new Promise(ok => {
            const img = new Image(); img.onload = () => ok(img.naturalWidth + "x" + img.naturalHeight);
            img.onerror = () => ok("broken"); img.src = i.src; })));
        const sizes = m.icons.map(i => i.sizes);
        return {name: m.name, start_url: m.start_url, display: m.display, sizes, icons};
    }""")
    assert manifest["name"] == "Truyền thanh cơ sở" and manifest["display"] == "standalone"
    assert manifest["start_url"] == "/" and manifest["icons"] == manifest["sizes"]

    script = await page.evaluate("navigator.serviceWorker.ready.then(r => r.active.scriptURL)")
    assert script == f"{panel.base_url}/sw.js"
    await page.goto("/schedules")  # now under the worker's control
    assert await page.evaluate("navigator.serviceWorker.controller !== null")
    assert await page.evaluate("fetch('/api/v1/health').then(r => r.status)") in (200, 401, 404)
    cached = await page.evaluate("""async () => {
        const out = [];
        for (const key of await caches.keys())
            for (const req of await (await caches.open(key)).keys()) out.push(new URL(req.url).pathname);
        return out; }""")
    assert "/offline" in cached and not [u for u in cached if u.startswith("/api/") or u == "/schedules"], (
        cached
    )

    await page.context.set_offline(True)
    await page.goto("/schedules")
    assert await page.locator("#offline h1").inner_text() == "Bảng điều khiển đang ngoại tuyến"
    assert not await page.locator("#agenda").count()  # never the old page as if current
    await shot(page, "phone-390-offline")
    api = await page.evaluate("fetch('/api/v1/health').then(r => 'answered ' + r.status, e => 'failed')")
    assert api == "failed"
    await page.context.set_offline(False)
    await page.goto("/schedules")
    assert await page.locator("#agenda").is_visible()


async def test_every_page_of_the_menu_at_both_widths(panel: ServedPanel, browser: Any) -> None:
    """Every page the menu offers an admin (who sees them all), at 390 px and at 1366 px: it opens
    with its heading, a phone never has to scroll it sideways (wide tables scroll inside their own
    box), and its screenshot is kept under test-artifacts/panel/ for review."""
    seeded = Panel.seed(panel)  # type: ignore[arg-type]
    for label, viewport in (("phone-390", PHONE), ("wide-1366", WIDE)):
        page = await _page(browser, panel, viewport, "admin", panel.admin_password)
        links = await page.eval_on_selector_all(
            "#site-menu nav a[href^='/']", "els => [...new Set(els.map(a => a.getAttribute('href')))]")
        assert len(links) >= 12, links
        # ...and the pages reached from them (a form, a library, a station, the month).
        station = f"/stations/{next(iter(seeded['devices'].values()))[0]}"
        links += [p for p in [*SUB_PAGES, station] if p not in links]
        sideways: dict[str, int] = {}
        for path in links:
            answer = await page.goto(path)
            assert answer is not None and answer.status == 200, (path, answer and answer.status)
            assert await page.locator("main h1, h1").first.is_visible(), path
            width = await page.evaluate("document.documentElement.scrollWidth")
            if width > viewport["width"] + 1:
                sideways[path] = width
            name = path.strip("/").replace("/", "-").replace("?view=", "-") or "dashboard"
            await shot(page, f"all-{label}-{name}")
        assert not sideways, f"pages wider than the {label} screen: {sideways}"
        await page.context.close()
