"""The stations map in Debian's Chromium (issue 20), tiles off as on this machine: every
station of the operator's commune is a marker with its name (Leaflet from npm when
installed, the server's SVG otherwise), none of another commune; a marker opens its
station; a technician's "use my location" (a fixed geolocation granted to the context)
fills the position and saving moves the station. Screenshots test-artifacts/panel/map-*.png.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from controller.db.models import Device
from controller.web import vendor
from tests.support.browser import PW, Panel, chromium, chromium_problem, shot, skip_or_fail
from tests.support.served_panel import ServedPanel, served_panel

PHONE = {"width": 412, "height": 915}
HERE = {"latitude": 21.40123, "longitude": 105.61234}


async def _login(context: Any, username: str, password: str) -> Any:
    page = await context.new_page()
    await page.goto("/login")
    await page.fill('input[name="username"]', username)
    await page.fill('input[name="password"]', password)
    await page.click('button[type="submit"]')
    await page.wait_for_url(re.compile(r".*/$"))
    return page


def _stations(panel: ServedPanel, commune_id: int) -> list[tuple[int, str]]:
    with panel.rt.db.session() as s:
        return list(s.execute(select(Device.id, Device.name).where(Device.commune_id == commune_id)).tuples())


async def test_map_markers_click_through_and_use_my_location(tmp_path: Path) -> None:
    if chromium_problem():
        skip_or_fail(chromium_problem() or "")
    from playwright.async_api import expect

    async with served_panel(tmp_path, f"sqlite:///{tmp_path / 'c.db'}") as panel:
        ids = Panel.seed(panel, stations_per_commune=2)  # type: ignore[arg-type]  # needs only .rt
        mine, theirs = _stations(panel, ids["hop_hoa"]), _stations(panel, ids["xuan_hoa"])
        async with chromium() as browser:
            context = await browser.new_context(base_url=panel.base_url, viewport=PHONE, locale="vi-VN")
            page = await _login(context, "canbo.hophoa", PW)
            await page.goto("/map")
            if vendor.available():  # Leaflet from npm: markers on a plain background (no tiles)
                await expect(page.locator("#station-map")).to_have_attribute("data-ready", str(len(mine)))
                markers = page.locator("#station-map .mk")
                await expect(markers).to_have_count(len(mine))
            else:  # no npm files: the server's SVG map
                markers = page.locator("#plain-map .plain-marker")
                await expect(markers).to_have_count(len(mine))
            for _id, name in mine:
                await expect(markers.filter(has_text=name)).to_be_visible()
            for _id, name in theirs:
                await expect(page.get_by_text(name)).to_have_count(0)
            await shot(page, "map-01-commune")
            first_id, first_name = mine[0]
            await markers.filter(has_text=first_name).first.click()
            await page.wait_for_url(re.compile(rf".*/stations/{first_id}$"))
            await expect(page.locator("h1")).to_have_text(first_name)
            # The JSON behind the map, from the operator's own browser: their commune only.
            data = await page.evaluate("fetch('/map/stations.json').then(r => r.json())")
            assert sorted(st["id"] for st in data["stations"]) == sorted(i for i, _n in mine)
            await context.close()

            tech = await browser.new_context(base_url=panel.base_url, viewport=PHONE, locale="vi-VN",
                                             geolocation=HERE, permissions=["geolocation"])  # fmt: skip
            page = await _login(tech, "kythuat", PW)
            await page.goto(f"/ops/stations/{first_id}")
            await page.click("#pos-geolocate")
            await expect(page.locator("#pos-lat")).to_have_value("21.401230")
            await expect(page.locator("#pos-lon")).to_have_value("105.612340")
            await shot(page, "map-02-use-my-location")
            await page.click("#save-position")
            await page.wait_for_url(re.compile(rf".*/ops/stations/{first_id}\?ok=position_saved"))
            await expect(page.locator(".notice")).to_have_text("Đã lưu vị trí trạm.")
            await tech.close()
        with panel.rt.db.session() as s:
            moved = s.get(Device, first_id)
            assert moved is not None and (moved.lat, moved.lon) == (21.40123, 105.61234)
