"""Open alarms on the dashboard (docs/panel.md): a count and the five newest, only from the
user's area, rendered with the page and kept live by the same SSE stream as the counts;
on SQLite and PostgreSQL, through a real HTTP server; the page's script in Chromium."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from controller.db.models import Area, Device, User
from controller.db.models_health import Alarm
from controller.web import accounts
from tests.support.browser import chromium, chromium_problem, shot
from tests.support.served_panel import ServedPanel, served_panel

PW = "mat-khau-an-toan-9"
PHONE = {"width": 412, "height": 915}


def seed(panel: ServedPanel) -> dict[str, int]:
    with panel.rt.db.session() as s:
        province = Area(level="province", name="Tỉnh Phú Thọ")
        hop_hoa = Area(level="commune", name="Xã Hợp Hòa", parent=province)
        xuan_hoa = Area(level="commune", name="Xã Xuân Hòa")
        s.add_all([province, hop_hoa, xuan_hoa])
        s.flush()
        mine = Device(uid="spk-hh1", name="Cụm loa chợ Hợp Hòa", kind="speaker", commune_id=hop_hoa.id,
                      reported={})  # fmt: skip
        other = Device(uid="spk-xh1", name="Cụm loa Xuân Hòa", kind="speaker", commune_id=xuan_hoa.id,
                       reported={})  # fmt: skip
        s.add_all([mine, other])
        s.flush()
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        accounts.create_user(s, admin, "canbo.hophoa", PW, "commune", hop_hoa.id)
        return {"mine": mine.id, "other": other.id}


def open_alarm(panel: ServedPanel,
               device_id: int, kind: str, *, state: str = "open", ago_min: int = 0) -> int:
    opened = datetime.now(UTC) - timedelta(minutes=ago_min)
    with panel.rt.db.session() as s:
        a = Alarm(device_id=device_id, kind=kind, state=state, opened_at=opened,
                  active_key=None if state == "resolved" else f"{device_id}:{kind}")
        s.add(a)
        s.flush()
        return a.id


async def counts_events(http: httpx.AsyncClient) -> AsyncIterator[dict[str, Any]]:
    async with http.stream("GET", "/panel/stream") as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        event = None
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "counts":
                yield json.loads(line[6:])


@pytest.fixture
async def panel(tmp_path: Path, database_url: str) -> AsyncIterator[ServedPanel]:
    async with served_panel(tmp_path, database_url) as p:
        yield p


async def test_dashboard_shows_open_alarms_of_the_area_live(panel: ServedPanel, database_url: str) -> None:
    ids = seed(panel)
    open_alarm(panel, ids["mine"], "mains_loss", ago_min=30)
    open_alarm(panel, ids["mine"], "overheating", state="resolved", ago_min=20)  # resolved: not shown
    open_alarm(panel, ids["other"], "offline", ago_min=10)  # another commune's
    async with httpx.AsyncClient(base_url=panel.base_url, timeout=15) as op, \
            httpx.AsyncClient(base_url=panel.base_url, timeout=15) as admin:
        await panel.login(op, "canbo.hophoa", PW)
        await panel.login(admin, "admin", panel.admin_password)
        home = (await op.get("/")).text
        assert re.search(r'id="alarm-count" class="pill bad">1<', home)
        assert "Mất điện lưới" in home and "Cụm loa chợ Hợp Hòa" in home
        assert "Trạm mất kết nối" not in home and "Tủ thiết bị quá nóng" not in home
        assert re.search(r'id="alarm-count" class="pill bad">2<', (await admin.get("/")).text)

        # Live: the commune operator's stream carries their alarms only, newest first.
        events = counts_events(op)
        first = await anext(events)
        assert first["alarms"]["active"] == 1 and first["alarms"]["unacknowledged"] == 1
        assert [a["kind"] for a in first["alarms"]["newest"]] == ["Mất điện lưới"]
        open_alarm(panel, ids["other"], "mains_loss")
        open_alarm(panel, ids["mine"], "speaker_line")
        update = await anext(events)  # the stream looks every 2 s and sends what changed
        assert update["alarms"]["active"] == 2
        assert [a["kind"] for a in update["alarms"]["newest"]] == ["Đứt dây loa", "Mất điện lưới"]
        assert update["alarms"]["newest"][0]["device"] == "Cụm loa chợ Hợp Hòa"
        assert update["alarms"]["newest"][0]["state_label"] == "Đang mở"
        await events.aclose()

    if not database_url.startswith("sqlite") or chromium_problem():
        return  # the page's script once, in a real browser
    async with chromium() as browser:
        context = await browser.new_context(base_url=panel.base_url, viewport=PHONE, locale="vi-VN")
        page = await context.new_page()
        await page.goto("/login")
        await page.fill('input[name="username"]', "canbo.hophoa")
        await page.fill('input[name="password"]', PW)
        await page.click('button[type="submit"]')
        await page.wait_for_url(re.compile(r".*/$"))
        from playwright.async_api import expect

        await expect(page.locator("#alarm-count")).to_have_text("2")
        await expect(page.locator("#live.on")).to_have_count(1, timeout=10000)  # the stream is open
        open_alarm(panel, ids["mine"], "disk_low")
        await expect(page.locator("#alarm-count")).to_have_text("3", timeout=10000)
        await expect(page.locator("#alarm-rows tr").first).to_contain_text("Sắp hết dung lượng thẻ nhớ")
        await expect(page.locator("#alarm-rows tr")).to_have_count(3)
        await shot(page, "dashboard-alarms")
