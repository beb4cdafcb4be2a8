"""Issue 7 acceptance in a real browser: Debian's Chromium, headless, driven by Playwright,
against a real system (private Mosquitto, controller subprocess, simulated stations).
Screenshots are kept under test-artifacts/panel/ (gitignored).

An admin creates accounts in the panel; a commune operator watches the dashboard update
live, uploads a bulletin, previews it, schedules it; an approver approves it; it plays on
the simulated station of their commune (not on the other commune's) at the instant typed
in local time, and shows as played in the play log. A viewer
sees no send buttons, and both the panel and the API refuse the action. Vietnamese text
renders with its diacritics and the English switch works on every page."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from testkit.harness import System
from tests.support.audio import chirp
from tests.support.browser import chromium, chromium_problem, open_menu, shot, skip_or_fail

PW = "mat-khau-an-toan-7"
PAGES = ["/", "/stations", "/bulletins", "/approvals", "/playlog", "/admin/users", "/account/password"]


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    async with chromium() as b:
        yield b


@pytest.fixture
async def sqlite_system(tmp_path: Path) -> AsyncIterator[System]:
    """One whole system on SQLite (the panel's SQL is covered on both backends in-process)."""
    if chromium_problem():  # do not pay for a system start just to skip
        skip_or_fail(chromium_problem() or "")
    sys_ = System(tmp_path / "system", f"sqlite:///{tmp_path / 'controller.db'}")
    try:
        await sys_.start()
        yield sys_
    finally:
        await sys_.stop()


async def login(browser: Any, base_url: str, username: str, password: str) -> Any:
    context = await browser.new_context(base_url=base_url, viewport={"width": 412, "height": 915},
                                        locale="vi-VN")  # a phone screen
    page = await context.new_page()
    await page.goto("/login")
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', password)
    await page.click('button[type="submit"]')
    await page.wait_for_url(re.compile(r".*/$"))
    return page


async def test_operator_uploads_sends_and_sees_proof_of_play(
    sqlite_system: System, browser: Any, tmp_path: Path
) -> None:
    system = sqlite_system
    hop_hoa, kim_long = system.communes[0], system.communes[1]

    # Admin: log in on the form, create a commune operator and a viewer in the users page.
    admin = await login(browser, system.base_url, "admin", system.admin_password)
    await admin.goto("/admin/users")
    accounts = [("canbo.hophoa", "commune", str(hop_hoa["id"])), ("duyet", "approver", ""),
                ("nguoixem", "viewer", "")]
    for username, role, area in accounts:
        await admin.fill('#user-form input[name="username"]', username)
        await admin.fill('#user-form input[name="password"]', PW)
        await admin.select_option('#user-form select[name="role"]', role)
        await admin.select_option('#user-form select[name="area_id"]', area)
        await admin.click('#user-form button[type="submit"]')
        await admin.wait_for_selector("text=Đã tạo tài khoản.")
    await shot(admin, "01-admin-users")
    assert await admin.locator("#user-table").inner_text() >= ""
    assert "Xã Hợp Hòa" in await admin.locator("#user-table").inner_text()

    # Operator: the dashboard is open before any station exists; it updates live (SSE).
    op = await login(browser, system.base_url, "canbo.hophoa", PW)
    assert await op.locator("#count-total").inner_text() == "0"
    stations = await system.add_stations(2)  # round robin: one in Hợp Hòa, one in Kim Long
    mine = next(s for s in stations if s.config.groups.get("commune") == hop_hoa["id"])
    other = next(s for s in stations if s.config.groups.get("commune") == kim_long["id"])
    await op.wait_for_function("() => document.getElementById('count-online').textContent === '1'",
                               timeout=20000)
    assert await op.locator("#count-total").inner_text() == "1"  # only their own commune
    await shot(op, "02-operator-dashboard-live")

    # Upload a bulletin, preview it in the browser's own player.
    await op.goto("/bulletins")
    await op.set_input_files("#upload-file", str(chirp(tmp_path / "thong-bao.mp3", seconds=2.0)))
    await op.click('#upload-form button[type="submit"]')
    await op.wait_for_selector("text=Đã tải lên bản tin.")
    src = await op.locator("#preview").get_attribute("src")
    assert src and re.fullmatch(r"/media/[0-9a-f]{64}", src)
    duration = await op.wait_for_function(
        "() => { const a = document.getElementById('preview'); "
        "return a.readyState >= 1 && isFinite(a.duration) && a.duration > 0 ? a.duration : null; }",
        timeout=15000,
    )
    assert 1.5 < await duration.json_value() < 2.5  # the browser decoded the stored Opus file
    await shot(op, "03-operator-bulletin-preview")

    # Send it to "all" (all of *their* stations) a little ahead, typed in local time (UTC+7).
    start = datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")).replace(microsecond=0) + timedelta(seconds=20)
    await op.fill('#send-form input[name="title"]', "Thông báo lịch tiêm chủng đợt 2")
    await op.fill('#send-form input[name="start_local"]', start.strftime("%d/%m/%Y %H:%M:%S"))
    await op.click("#send-button")
    await op.wait_for_url(re.compile(r".*/playlog\?broadcast_id=\d+.*"))
    # A commune operator's bulletin waits for an approver.
    assert await op.locator("#awaiting-approval").count() == 1
    assert start.strftime("%d/%m/%Y %H:%M:%S") in await op.locator("#broadcast-summary").inner_text()
    await shot(op, "04-operator-sent-awaiting-approval")

    approver = await login(browser, system.base_url, "duyet", PW)
    await approver.goto("/approvals")
    assert "Thông báo lịch tiêm chủng đợt 2" in await approver.locator("main").inner_text()
    await shot(approver, "05-approver-queue")
    await approver.click(".approve-button")
    await approver.wait_for_selector("text=Đã duyệt.")
    played = await mine.sink.wait_for(lambda p: True, timeout=40)
    assert played.completed and abs(played.started_at - start.timestamp()) < 0.1

    # The operator's play-log page refreshes by itself until every station has reported.
    await op.locator("#playlog-table").filter(has_text="Đã phát").wait_for(timeout=30000)
    await op.wait_for_load_state()
    await op.locator("[data-refresh]").wait_for(state="detached", timeout=15000)  # and then stops
    text = await op.locator("#playlog-table").inner_text()
    assert "Thông báo lịch tiêm chủng đợt 2" in text and mine.config.uid not in text
    assert "Cụm loa" in text or "–" in text  # the station's name is shown
    await shot(op, "06-operator-play-log")
    assert other.sink.playbacks == []  # the other commune's station stayed silent

    # The station list shows only the operator's station; its page shows the play history.
    await op.goto("/stations")
    listing = await op.locator("#station-table").inner_text()
    assert "Trực tuyến" in listing and "Xã Hợp Hòa" in listing and "Xã Kim Long" not in listing
    await op.click("#station-table a")
    await op.wait_for_url(re.compile(rf".*/stations/{mine.device_id}$"))
    detail = await op.locator("main").inner_text()
    assert "Thông báo lịch tiêm chủng đợt 2" in detail and "Đã phát" in detail and "Phát xong" in detail
    await shot(op, "06b-operator-station-detail")
    await op.goto("/playlog")

    # Vietnamese renders with its diacritics: the glyphs exist in the page's font (no
    # fallback boxes), so "ệ" is drawn about as wide as "e", not as a wide missing-glyph box.
    widths = await op.evaluate(
        "() => { const c = document.createElement('canvas').getContext('2d');"
        " c.font = getComputedStyle(document.body).font;"
        " return ['e','ệ','o','ợ','ư','ữ','đ','d'].map(ch => c.measureText(ch).width); }"
    )
    for plain, marked in [(0, 1), (2, 3), (4, 5), (7, 6)]:
        assert abs(widths[marked] - widths[plain]) <= widths[plain] * 0.35, widths
    assert (await op.locator("h1").inner_text()) == "Nhật ký phát"

    # Viewer: no send or upload controls; the server and the API both refuse.
    viewer = await login(browser, system.base_url, "nguoixem", PW)
    await viewer.goto("/bulletins")
    assert await viewer.locator("#send-button").count() == 0
    assert await viewer.locator("#upload-form").count() == 0
    assert await viewer.locator("#preview").count() == 1  # listening is allowed
    await shot(viewer, "07-viewer-bulletins")
    csrf = await viewer.locator('input[name="csrf"]').first.get_attribute("value")
    sha = src.rsplit("/", 1)[1]
    refused = await viewer.request.post("/bulletins/send", form={
        "csrf": csrf or "", "title": "x", "media_sha256": sha, "target": "all"})
    assert refused.status == 403
    async with httpx.AsyncClient(base_url=system.base_url) as http:
        token = (await http.post("/api/v1/auth/token", data={"username": "nguoixem", "password": PW})).json()
        bearer = {"Authorization": f"Bearer {token['access_token']}"}
        api = await http.post("/api/v1/broadcasts", headers=bearer,
                              json={"title": "x", "media_sha256": sha, "targets": {"all": True}})
    assert api.status_code == 403
    assert len(mine.sink.playbacks) == 1  # nothing more played

    # English switch on every page (admin sees them all), and back.
    for path in PAGES:
        await admin.goto(path)
        await open_menu(admin)
        await admin.click("#lang-en")
        await admin.wait_for_selector("#lang-vi", state="attached")
        assert admin.url.endswith(path), (admin.url, path)
        await open_menu(admin)
        nav = await admin.locator("header").inner_text()
        assert "Play log" in nav and "Log out" in nav and "Nhật ký phát" not in nav, path
        if path == "/":
            await shot(admin, "08-admin-dashboard-english")
        await admin.click("#lang-vi")
        await admin.wait_for_selector("#lang-en", state="attached")
        await open_menu(admin)
        assert "Nhật ký phát" in await admin.locator("header").inner_text()
