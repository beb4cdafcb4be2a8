"""The stations map and moving a station (issue 20), over HTTP in process: the page and its
JSON show the caller's stations only (another commune's positions never leave the server),
anonymous callers get 401 / the login page, bad input a Vietnamese 4xx, and only a
technician or admin of the station's area may move it. The browser flow (Leaflet markers,
click-through, "use my location") is tests/system/test_panel_map_browser.py."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from controller.db.models import AuditEntry, Device, User
from controller.web import accounts
from tests.support.browser import PW, Panel, PanelClient, running_panel


@pytest.fixture
def lite(tmp_path: Path) -> Iterator[Panel]:
    with running_panel(tmp_path, f"sqlite:///{tmp_path / 'panel.db'}") as p:
        yield p


def _login(panel: Panel, username: str) -> PanelClient:
    c = panel.client()
    c.login(username, panel.settings.admin_password if username == "admin" else PW)
    return c


def _names(panel: Panel, commune_id: int) -> list[str]:
    with panel.rt.db.session() as s:
        return list(s.scalars(select(Device.name).where(Device.commune_id == commune_id)))


def test_the_map_shows_only_the_callers_stations(lite: Panel) -> None:
    ids = lite.seed(stations_per_commune=2)
    mine, theirs = _names(lite, ids["hop_hoa"]), _names(lite, ids["xuan_hoa"])
    op = _login(lite, "canbo.hophoa")
    page = op.http.get("/map")
    assert page.status_code == 200
    assert all(n in page.text for n in mine) and not any(n in page.text for n in theirs)
    assert page.text.count('class="plain-marker"') == 2  # the SVG map without tiles or script
    data = op.http.get("/map/stations.json").json()
    assert sorted(st["name"] for st in data["stations"]) == sorted(mine)
    assert {st["state"] for st in data["stations"]} == {"offline"}
    # Asking for another commune gives nothing, not "exists but not yours".
    assert op.http.get(f"/map/stations.json?commune={ids['xuan_hoa']}").json()["stations"] == []
    assert op.http.get(f"/map?commune={ids['xuan_hoa']}").text.count('class="plain-marker"') == 0
    # The admin sees all six, and the commune filter narrows them.
    admin = _login(lite, "admin")
    assert len(admin.http.get("/map/stations.json").json()["stations"]) == 6
    only = admin.http.get(f"/map/stations.json?commune={ids['xuan_hoa']}").json()["stations"]
    assert sorted(st["name"] for st in only) == sorted(theirs)
    assert {st["href"] for st in only} == {f"/stations/{i}" for i in ids["devices"][ids["xuan_hoa"]]}
    # Bad input: a clear 422 in Vietnamese (and English in the body), never a 500.
    bad = op.http.get("/map/stations.json?commune=abc")
    assert bad.status_code == 422 and "Mã xã không hợp lệ" in bad.json()["detail"]
    assert "Invalid commune" in bad.json()["detail_en"]
    assert op.http.get("/map?commune=-3").status_code == 422
    # Anonymous: 401 on the JSON, the login page for the page.
    anon = lite.client()
    assert anon.http.get("/map/stations.json").status_code == 401
    r = anon.http.get("/map", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"].startswith("/login")


def test_moving_a_station_is_for_technicians_of_its_area(lite: Panel) -> None:
    ids = lite.seed(stations_per_commune=1)
    station = ids["devices"][ids["hop_hoa"]][0]
    with lite.rt.db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        accounts.create_user(s, admin, "kythuat.xuanhoa", PW, "technician", ids["xuan_hoa"])
    where = f"/ops/stations/{station}/position"
    page = f"/ops/stations/{station}"
    # Commune operator and viewer may not move stations; a technician of another commune neither.
    assert _login(lite, "canbo.hophoa").post_form(where, {"lat": "21.1", "lon": "105.1"}).status_code == 403
    assert _login(lite, "nguoixem").post_form(where, {"lat": "21.1", "lon": "105.1"}).status_code == 403
    other = _login(lite, "kythuat.xuanhoa")
    assert other.http.get(page).status_code == 404  # not even its page
    assert other.post_form(where, {"lat": "21.1", "lon": "105.1"}, csrf_from="/ops").status_code == 403
    assert lite.client().http.post(where, data={"lat": "21", "lon": "105"}).status_code in (401, 403)
    tech = _login(lite, "kythuat")
    form = tech.http.get(page).text
    assert 'id="position-form"' in form and "Dùng vị trí của tôi" in form
    # Bad input: a Vietnamese 422 on the page, nothing stored.
    r = tech.post_form(where, {"lat": "abc", "lon": "105"}, csrf_from=page)
    assert r.status_code == 422 and "Hãy nhập vĩ độ và kinh độ" in r.text
    r = tech.post_form(where, {"lat": "95", "lon": "105"}, csrf_from=page)
    assert r.status_code == 422 and "vĩ độ từ -90 đến 90" in r.text
    assert tech.post_form("/ops/stations/999999/position", {"lat": "1", "lon": "1"}).status_code == 404
    # A decimal comma as people type it; then the map shows the new place.
    r = tech.post_form(where, {"lat": "21,30451", "lon": "105,48212"}, csrf_from=page)
    assert r.status_code == 303 and "position_saved" in r.headers["location"]
    with lite.rt.db.session() as s:
        moved = s.get(Device, station)
        assert moved is not None and (moved.lat, moved.lon) == (21.30451, 105.48212)
        assert s.scalars(select(AuditEntry).where(AuditEntry.action == "device.position")).one()
    marker = next(m for m in tech.http.get("/map/stations.json").json()["stations"] if m["id"] == station)
    assert (marker["lat"], marker["lon"]) == (21.30451, 105.48212)


def test_report_bars_read_the_vietnamese_way(lite: Panel) -> None:
    from datetime import UTC, datetime, timedelta

    from controller.db.models import PlayLog
    from controller.db.models_health import Alarm

    ids = lite.seed(stations_per_commune=2)
    now = datetime.now(UTC)
    first, second = ids["devices"][ids["hop_hoa"]]
    with lite.rt.db.session() as s:
        for d in (first, second):
            device = s.get(Device, d)
            assert device is not None
            device.created_at = now - timedelta(days=30)
        for i in range(2):  # 2 plays of 75 s: 2,5 minutes
            s.add(
                PlayLog(
                    device_id=first,
                    item_id=f"b{i}",
                    status="played",
                    started_at=now - timedelta(minutes=10),
                    finished_at=now - timedelta(minutes=8, seconds=45),
                )
            )
        s.add(
            Alarm(
                device_id=first,
                kind="offline",
                state="resolved",
                active_key=None,
                opened_at=now - timedelta(days=2),
                resolved_at=now - timedelta(days=1, hours=12),
            )
        )
        s.add(
            Alarm(
                device_id=ids["devices"][ids["xuan_hoa"]][0],
                kind="offline",
                state="open",
                active_key="x:offline",
                opened_at=now - timedelta(days=3),
            )
        )
        s.commit()
    start = (now - timedelta(days=9)).date().isoformat()
    page = _login(lite, "canbo.hophoa").http.get(f"/reports?start={start}")
    assert page.status_code == 200
    minutes = page.text[page.text.index('id="minutes-bars"') :]
    assert re.search(r'class="bar-value"[^>]*>2,5 phút</text>', minutes[: minutes.index("</figure>")])
    bars = page.text[page.text.index('id="availability-bars"') :]
    bars = bars[: bars.index("</figure>")]
    values = re.findall(r'class="bar-value"[^>]*>([^<]+)</text>', bars)
    assert len(values) == 2 and values[1] == "100 %"  # the least available first
    assert re.fullmatch(r"9\d,\d %", values[0]), values  # 12 h offline in about 9 days: a decimal comma
    assert f'href="/stations/{first}"' in bars and "Xuân Hòa" not in bars
    english = _login(lite, "canbo.hophoa")
    english.http.get("/lang?to=en&next=/reports")
    in_english = english.http.get(f"/reports?start={start}").text
    assert re.search(r'class="bar-value"[^>]*>2\.5 min</text>', in_english)
