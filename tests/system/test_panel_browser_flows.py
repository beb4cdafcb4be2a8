"""Issue 7 acceptance, second slice, in a real browser (Debian's Chromium, headless, phone
screen 390x844) against a real system (private Mosquitto, controller subprocess, simulated
stations). Screenshots: test-artifacts/panel/flow-*.png (gitignored).

1. A technician creates a station in the panel, sees its one-time enrollment code and QR,
   enrolls a simulated agent with that code, watches the page say it is online, and runs
   a test tone that the station plays.
2. A commune operator types a Vietnamese bulletin, previews the synthesized voice in the
   browser, schedules it in the week editor (recurrence said back in plain Vietnamese); an
   approver approves; it plays on the simulated stations of that commune (not elsewhere)
   and shows, with its title, as played in the play log.
3. The operator sends an emergency: the confirmation says back areas, text and repeat rule,
   the progress page counts both stations on air, cancel stops it.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from device_agents.enroll import enroll, load
from firmware_sim.bench import start_simulated_station
from testkit.harness import System
from tests.support.browser import PanelClient, chromium, chromium_problem, open_menu, shot, skip_or_fail

PW = "mat-khau-an-toan-8"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
PHONE = {"width": 390, "height": 844}
BULLETIN = "Thông báo: ngày 02/09 tổ chức họp dân lúc 19 giờ tại nhà văn hoá thôn Đông."


@pytest.fixture
async def system(tmp_path: Path) -> AsyncIterator[System]:
    if chromium_problem():  # do not pay for a system start just to skip
        skip_or_fail(chromium_problem() or "")
    sys_ = System(tmp_path / "system", f"sqlite:///{tmp_path / 'controller.db'}")
    try:
        await sys_.start()
        yield sys_
    finally:
        await sys_.stop()


async def login(browser: Any, base_url: str, username: str, password: str) -> Any:
    context = await browser.new_context(base_url=base_url, viewport=PHONE, locale="vi-VN")
    page = await context.new_page()
    await page.goto("/login")
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', password)
    await page.click('button[type="submit"]')
    await page.wait_for_url(re.compile(r".*/$"))
    return page


def create_accounts(system: System) -> None:
    """Through the admin's users form (HTTP, like a browser would post it)."""
    hop_hoa = system.communes[0]["id"]
    with httpx.Client(base_url=system.base_url, timeout=30) as http:
        admin = PanelClient(http)
        admin.login("admin", system.admin_password)
        for username, role, area in (
            ("canbo.hophoa", "commune", str(hop_hoa)),
            ("duyet", "approver", ""),
            ("kythuat", "technician", ""),
        ):
            r = admin.post_form(
                "/admin/users",
                {"username": username, "password": PW, "role": role, "area_id": area},
                csrf_from="/admin/users",
            )
            assert r.status_code == 303, r.text[:500]


async def test_technician_enrolls_and_tests_operator_schedules_tts_approver_approves(
    system: System, tmp_path: Path
) -> None:
    hop_hoa = system.communes[0]
    create_accounts(system)
    stations = await system.add_stations(2)  # round robin: one in Hợp Hòa, one in Kim Long
    mine = next(s for s in stations if s.config.groups.get("commune") == hop_hoa["id"])
    other = next(s for s in stations if s is not mine)
    async with chromium() as browser:
        # -- 1. technician: create, enroll, online, test tone --------------------------------------
        tech = await login(browser, system.base_url, "kythuat", PW)
        await open_menu(tech)
        await tech.click('nav a[href="/ops"]')
        await tech.fill('#station-form input[name="name"]', "Cụm loa thôn Đông")
        await tech.select_option('#station-form select[name="commune_id"]', str(hop_hoa["id"]))
        await tech.click("#create-station")
        code = (await tech.locator("#enrollment-code").inner_text()).strip()
        assert re.fullmatch(r"[A-Z0-9]{5}-[A-Z0-9]{5}", code)
        assert await tech.locator(".qr-box svg").count() == 1
        assert code in await tech.locator("#enroll-command").inner_text()
        await shot(tech, "flow-01-technician-code-qr")
        device_path = await tech.locator("#station-state").get_attribute("data-poll") or ""
        device_id = int(device_path.split("/")[3])

        command = await tech.locator("#enroll-command").inner_text()
        fingerprint = command.split("--key-fingerprint")[1].split()[0]  # the QR carries it too
        enrolled = await enroll(system.base_url, code, tmp_path / "pi", key_fingerprint=fingerprint)
        assert enrolled.config.groups.get("commune") == hop_hoa["id"]
        new_station = await start_simulated_station(load(tmp_path / "pi"))
        try:
            await tech.locator("#station-state .pill.ok").wait_for(timeout=20000)  # the page polls
            await shot(tech, "flow-02-technician-online")
            await tech.click("#diag-test_tone")
            await tech.wait_for_url(re.compile(rf".*/ops/stations/{device_id}\?ok=diag_sent"))
            tone = await new_station.hardware.sink.wait_for(lambda p: p.files == (), timeout=15)  # type: ignore[union-attr]
            assert tone.completed
            await tech.locator("#diag-results .diag-state-done").first.wait_for(timeout=20000)
            await shot(tech, "flow-03-technician-test-tone")

            # -- 2. operator: TTS preview, schedule, approval, play, play log ---------------------
            op = await login(browser, system.base_url, "canbo.hophoa", PW)
            await open_menu(op)
            await op.click('nav a[href="/bulletins"]')
            await op.click("#tts-link")
            await op.fill('#tts-form input[name="title"]', "Họp dân thôn Đông")
            await op.fill("#tts-text", BULLETIN)
            await op.click("#tts-preview-button")
            duration = await op.wait_for_function(
                "() => { const a = document.getElementById('tts-preview'); "
                "return a && a.readyState >= 1 && isFinite(a.duration) && a.duration > 0 "
                "? a.duration : null; }",
                timeout=30000,
            )
            seconds = await duration.json_value()
            assert 2 < seconds < 20  # the browser decoded the synthesized, stored Opus file
            await shot(op, "flow-04-operator-tts-preview")

            await op.click("#tts-schedule")
            await op.wait_for_url(re.compile(r".*/schedules/new\?media=[0-9a-f]{64}"))
            start = datetime.now(TZ).replace(microsecond=0) + timedelta(seconds=25)
            if start.second == 0:  # the description drops ":00" seconds; keep the check exact
                start += timedelta(seconds=1)
            await op.fill('#schedule-form input[name="title"]', "Họp dân thôn Đông")
            for box in await op.locator('#schedule-form input[name="days"]').all():
                if await box.get_attribute("value") != str(start.weekday()):
                    await box.uncheck()
            await op.fill('#schedule-form input[name="times"]', start.strftime("%H:%M:%S"))
            await op.fill('#schedule-form input[name="until_date"]', start.strftime("%d/%m/%Y"))
            await op.click("#schedule-check-button")
            description = await op.locator("#schedule-description").inner_text()
            weekday = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")[
                start.weekday()
            ]
            assert description.startswith(f"{weekday} lúc {start:%H:%M:%S}"), description
            assert f"đến hết ngày {start:%d/%m/%Y}" in description
            assert await op.locator("#week-grid .slot-mine").count() == 1
            await shot(op, "flow-05-operator-schedule-check-week")
            await op.click("#schedule-save-button")
            await op.wait_for_url(re.compile(r".*/schedules\?ok=schedule_draft.*"))
            await shot(op, "flow-06-operator-schedule-awaiting-approval")

            approver = await login(browser, system.base_url, "duyet", PW)
            await approver.goto("/schedules")
            assert "Họp dân thôn Đông" in await approver.locator("#schedule-drafts").inner_text()
            await approver.click(".approve-schedule")
            await approver.wait_for_url(re.compile(r".*ok=schedule_approved"))
            await shot(approver, "flow-07-approver-approved")
            assert datetime.now(TZ) < start, "approval came after the start: the flow is too slow"

            played = await mine.sink.wait_for(lambda p: p.files != (), timeout=60)
            assert played.completed and abs(played.started_at - start.timestamp()) < 0.2
            also = await new_station.hardware.sink.wait_for(lambda p: p.files != (), timeout=30)  # type: ignore[union-attr]
            assert abs(also.started_at - played.started_at) < 0.1  # both Hợp Hòa stations, together
            assert not [p for p in other.sink.playbacks if p.files]  # Kim Long stayed silent

            await op.goto("/playlog")
            table = op.locator("#playlog-table")
            for _ in range(20):  # proof of play arrives right after the end of playback
                if (
                    await table.filter(has_text="Đã phát").count()
                ) and "Họp dân thôn Đông" in await table.inner_text():
                    break
                await op.wait_for_timeout(500)
                await op.reload()
            text = await table.inner_text()
            assert "Họp dân thôn Đông" in text and "Đã phát" in text
            await shot(op, "flow-08-operator-play-log")

            # -- 3. the same operator: emergency, confirmation, live progress, cancel -------------
            await op.click("#emergency-action")  # in the header, one tap away (not behind the menu)
            await op.fill("#emergency-text", "Bão số 3 sắp đổ bộ. Người dân ở trong nhà.")
            await op.check('#emergency-form input[name="repeat"][value="hours"]')
            await op.click("#emergency-next")
            assert "Xã Hợp Hòa (2 trạm)" in await op.locator("#confirm-areas").inner_text()
            assert await op.locator("#confirm-repeat").inner_text() == "2 giờ một lần, cho đến khi hủy"
            await shot(op, "flow-09-operator-emergency-confirm")
            await op.click("#emergency-start")
            await op.wait_for_url(re.compile(r".*/emergency/\d+$"))
            await op.wait_for_function(
                "() => document.getElementById('on-air').textContent === '2'", timeout=30000
            )  # the page polls the per-station states: both stations on air
            assert await op.locator("#total").inner_text() == "2"
            await shot(op, "flow-10-operator-emergency-progress")
            await op.click("#emergency-cancel")
            await op.locator("#emergency-cancelled").wait_for(timeout=10000)
            assert not [p for p in other.sink.playbacks if p.files]  # Kim Long never heard it
        finally:
            await new_station.stop()
