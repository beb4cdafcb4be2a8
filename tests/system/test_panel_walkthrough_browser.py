"""Issue 20's phone walk-through, end to end in Chromium (Debian's, through Playwright) at 390 px
with the browser's language en-US (so every date and time seen is the app's own format):

  A commune operator on a 390 px screen logs in, opens the menu, picks "Xã Tam Dương" from a
  search list, sends a TTS bulletin from a preset and sees it in today's agenda; after it plays
  the agenda marks it played.

Against a real system: a private Mosquitto, the controller as its own process, two simulated
stations (one in Xã Tam Dương, one in Xã Tam Dương Bắc; both communes, their codes and former
names from the `vietnam-provinces` / `vietnamadminunits` packages, as `communecast areas import`
takes them). A commune operator's bulletin waits for an approver (docs/panel.md): the province's
approver approves it on their own phone, then it plays on the Tam Dương station only, its proof
of play comes back over MQTT, and the operator's agenda says "Đã phát ở 1 trạm.". Every wait has
a deadline. Screenshots: test-artifacts/panel/walk-*.png (gitignored)."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from controller.services.area_import import province_units
from testkit.harness import System
from testkit.waiting import eventually
from tests.support.browser import PanelClient, chromium, chromium_problem, open_menu, shot, skip_or_fail

PW = "mat-khau-an-toan-20"
TZ = ZoneInfo("Asia/Ho_Chi_Minh")
PHONE = {"width": 390, "height": 844}
TAM_DUONG, TAM_DUONG_BAC = "8869", "8872"  # Tỉnh Phú Thọ (25) since 1 July 2025
PRESET = "all_clear"  # "Hết cảnh báo": a normal bulletin, not an emergency
TITLE = "Hết cảnh báo"
LEAD_S = 40  # from sending to the start: time for the approver (a draft can not be approved late)
US_TIME = re.compile(r"\b\d{1,2}:\d{2}(:\d{2})?\s?(AM|PM|am|pm)\b")


def _communes() -> list[dict[str, Any]]:
    """POST /api/v1/areas bodies for the two communes, from the packages (never typed by hand)."""
    _province, units = province_units("25")
    by_code = {u.code: u for u in units}
    return [{"name": by_code[c].name, "code": c, "kind": by_code[c].kind,
             "former_names": list(by_code[c].former_names)} for c in (TAM_DUONG, TAM_DUONG_BAC)]  # fmt: skip


# The walk is the panel's; the database's part in it is covered by every other system test on both.
pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
async def system(tmp_path: Path, database_url: str) -> AsyncIterator[System]:
    if chromium_problem():  # do not pay for a system start just to skip
        skip_or_fail(chromium_problem() or "")
    sys_ = System(tmp_path / "system", database_url, commune_specs=_communes())
    try:
        await sys_.start()
        yield sys_
    finally:
        await sys_.stop()


def _accounts(system: System, tam_duong: dict[str, Any]) -> None:
    """The commune operator of Xã Tam Dương and the province's approver, through the admin's form."""
    with httpx.Client(base_url=system.base_url, timeout=30) as http:
        admin = PanelClient(http)
        admin.login("admin", system.admin_password)
        for username, role, area in (("canbo.tamduong", "commune", tam_duong["id"]),
                                     ("duyet.phutho", "approver", tam_duong["parent_id"])):  # fmt: skip
            r = admin.post_form("/admin/users", {"username": username, "password": PW, "role": role,
                                                 "area_id": str(area)}, csrf_from="/admin/users")  # fmt: skip
            assert r.status_code == 303, r.text[:500]


async def _phone(browser: Any, base_url: str, username: str) -> Any:
    context = await browser.new_context(base_url=base_url, viewport=PHONE, locale="en-US",
                                        timezone_id="America/New_York")  # fmt: skip
    page = await context.new_page()
    await page.goto("/login")
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', PW)
    await page.click('button[type="submit"]')
    await page.wait_for_url(re.compile(r".*/$"))
    return page


async def _past_midnight_soon() -> None:
    """The walk-through is about *today's* agenda: a run started in the last minutes of a day
    (Việt Nam time) waits for the next day rather than see its bulletin move to tomorrow."""
    now = datetime.now(TZ)
    midnight = datetime.combine(now.date() + timedelta(days=1), datetime.min.time(), TZ)
    if midnight - now < timedelta(minutes=3):
        await asyncio.sleep((midnight - now).total_seconds() + 2)


def _agenda_line(page: Any, bc_id: int) -> Any:
    """Today's agenda row of the broadcast (its link goes to the broadcast's play log)."""
    return page.locator(f'#agenda-today li:has(a[href="/playlog?broadcast_id={bc_id}"])')


async def test_commune_operator_sends_a_preset_tts_bulletin_on_a_phone_and_the_agenda_marks_it_played(
    system: System, tmp_path: Path
) -> None:
    from playwright.async_api import expect

    await _past_midnight_soon()
    communes = {c["code"]: c for c in system.communes}
    tam_duong, tam_duong_bac = communes[TAM_DUONG], communes[TAM_DUONG_BAC]
    assert tam_duong["name"] == "Xã Tam Dương"
    _accounts(system, tam_duong)
    stations = await system.add_stations(2)  # round robin: one per commune
    mine = next(s for s in stations if s.config.groups.get("commune") == tam_duong["id"])
    other = next(s for s in stations if s.config.groups.get("commune") == tam_duong_bac["id"])

    async with chromium() as browser:
        # -- log in on the phone, open the menu, go to the bulletins --------------------------------
        op = await _phone(browser, system.base_url, "canbo.tamduong")
        menu = op.locator("#menu-button")
        await expect(menu).to_have_attribute("aria-expanded", "false")
        await open_menu(op)
        await expect(menu).to_have_attribute("aria-expanded", "true")
        await shot(op, "walk-01-menu-open")
        await op.click('#site-menu nav a[href="/bulletins"]')
        await op.wait_for_url("**/bulletins")

        # -- a TTS bulletin from a preset: fill, hear it synthesized -------------------------------
        await op.click("#tts-link")
        await op.wait_for_url("**/bulletins/tts")
        await op.click(f'#tts-presets a[data-preset="{PRESET}"]')
        await op.wait_for_url(f"**/bulletins/tts?preset={PRESET}")
        await expect(op.locator('#tts-form input[name="title"]')).to_have_value(TITLE)
        text = await op.locator("#tts-text").input_value()
        assert text.startswith("Thông báo: Tình huống khẩn cấp đã qua"), text
        await shot(op, "walk-02-tts-from-preset")
        await op.click("#tts-preview-button")
        await expect(op.locator("#tts-preview")).to_be_visible(timeout=60000)
        await expect(op.locator("#tts-title")).to_have_text(TITLE)
        await shot(op, "walk-03-tts-synthesized")
        await op.click('#tts-result a[href^="/bulletins?media="]')  # "Gửi phát một lần"
        await op.wait_for_url(re.compile(r".*/bulletins\?media=[0-9a-f]{64}$"))

        # -- pick "Xã Tam Dương" from the search list, set the start, send --------------------------
        await op.fill('#send-form input[name="title"]', TITLE)
        await op.fill("#send-form .picker-q", "tam duong")  # no diacritics: found all the same
        result = op.locator(f'#send-form .picker-results input[value="commune:{tam_duong["id"]}"]')
        await expect(result).to_be_visible(timeout=10000)
        labels = await op.locator("#send-form .picker-results label").all_inner_texts()
        assert any("Xã Tam Dương (8869)" in x for x in labels), labels
        assert not any("Tam Dương Bắc" in x for x in labels), labels  # another commune: not offered
        await shot(op, "walk-04-search-list")
        await result.check()
        chip = op.locator(f'#send-form .picker-picked input[value="commune:{tam_duong["id"]}"]')
        await expect(chip).to_be_checked()
        await expect(op.locator('#send-form input[name="target"][value="picked"]')).to_be_checked()
        start = (datetime.now(TZ) + timedelta(seconds=LEAD_S)).replace(microsecond=0)
        await op.fill('#send-form input[name="start_local"]', start.strftime("%d/%m/%Y %H:%M:%S"))
        await shot(op, "walk-05-send-form")
        await op.click("#send-button")
        await op.wait_for_url(re.compile(r".*/playlog\?broadcast_id=\d+&ok=draft$"))
        bc_id = int(re.search(r"broadcast_id=(\d+)", op.url).group(1))  # type: ignore[union-attr]
        summary = await op.locator("#broadcast-summary").inner_text()
        assert "1 trạm nhận lệnh" in summary and "Chờ duyệt" in summary, summary

        # -- today's agenda, through the menu: there, waiting for approval --------------------------
        await open_menu(op)
        await op.click('#site-menu nav a[href="/schedules"]')
        await op.wait_for_url("**/schedules")
        await expect(op.locator("#agenda")).to_be_visible()
        await expect(op.locator("#agenda h2").first).to_have_text(f"Hôm nay · {start:%d/%m/%Y}")
        line = _agenda_line(op, bc_id)
        await expect(line).to_have_count(1)
        await expect(line.locator(".when")).to_have_text(start.strftime("%H:%M"))  # 24-hour, Việt Nam time
        await expect(line.locator(".where")).to_have_text("Xã Tam Dương")
        await expect(line.locator(".outcome")).to_have_text("Chờ duyệt: chỉ phát khi được duyệt.")
        await expect(line).to_contain_text(TITLE)
        await shot(op, "walk-06-agenda-awaiting-approval")

        # -- the province's approver approves it on their phone --------------------------------------
        approver = await _phone(browser, system.base_url, "duyet.phutho")
        await open_menu(approver)
        await approver.click('#site-menu nav a[href="/approvals"]')
        draft = approver.locator(f'section.draft[data-broadcast="{bc_id}"]')
        await expect(draft).to_contain_text(TITLE)
        await expect(draft).to_contain_text(f"{start:%d/%m/%Y %H:%M:%S}")
        await draft.locator(".approve-button").click()
        await approver.wait_for_url(re.compile(rf".*/playlog\?broadcast_id={bc_id}&ok=approved$"))
        await shot(approver, "walk-07-approver-approved")
        assert datetime.now(TZ) < start, "approved after the start: the walk-through ran too slowly"

        await op.reload()
        await expect(line.locator(".outcome")).to_have_text("Sắp phát")

        # -- it plays on the Tam Dương station at its time; proof of play comes back ------------------
        left = (start - datetime.now(TZ)).total_seconds()
        played = await mine.sink.wait_for(lambda p: p.files != (), timeout=left + 60)
        assert played.completed and abs(played.started_at - start.timestamp()) < 0.5
        proof = [(mine.device_id, "played")]
        await eventually(lambda: system.api_json("GET", f"/api/v1/play-log?broadcast_id={bc_id}"),
                         lambda rows: [(r["device_id"], r["status"]) for r in rows] == proof,
                         timeout=30, interval=0.2, what="the station's proof of play")  # fmt: skip
        assert not [p for p in other.sink.playbacks if p.files]  # Xã Tam Dương Bắc stayed silent

        # -- the agenda marks it played --------------------------------------------------------------
        async def outcome() -> str:
            await op.reload()
            return str(await line.locator(".outcome").inner_text())

        said = await eventually(outcome, lambda s: s == "Đã phát ở 1 trạm.", timeout=20, interval=0.5,
                                what="the agenda to say it played")  # fmt: skip
        assert said == "Đã phát ở 1 trạm."
        assert "past" in (await line.get_attribute("class") or "")
        agenda = await op.locator("#agenda").inner_text()
        assert not US_TIME.search(agenda), US_TIME.search(agenda)  # the app's 24-hour clock, not en-US's
        await shot(op, "walk-08-agenda-played")
