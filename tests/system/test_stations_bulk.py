"""Issue 20, item 5, end to end: a bulk test tone chosen on the panel's station list is heard on
every selected (simulated) horn; a technician of another commune selecting the same stations is
refused as a whole and nothing is sent to any of them.

Whole system (private Mosquitto with auth, controller process, three simulated stations with
their audio sinks), driven through the panel's own forms over HTTP (session cookie and CSRF).
"""

from __future__ import annotations

import re

import httpx
import pytest

from testkit.harness import System
from testkit.waiting import eventually
from tests.support.served_panel import panel_login

PW = "mat-khau-ky-thuat-1"


def _csrf(html: str) -> str:
    m = re.search(r'name="csrf" value="([^"]+)"', html)
    assert m, "page without CSRF field"
    return m.group(1)


async def _bulk(http: httpx.AsyncClient, ids: list[int], action: str) -> httpx.Response:
    page = await http.get("/stations")
    assert page.status_code == 200
    return await http.post("/stations/bulk", data={"csrf": _csrf(page.text), "action": action, "ids": ids})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_bulk_test_tone_heard_on_every_horn_and_refused_outside_the_area(system: System) -> None:
    stations = await system.add_stations(3)  # Hợp Hòa, Kim Long, Hợp Hòa
    ids = [st.device_id for st in stations]
    await eventually(lambda: system.api_json("GET", "/api/v1/devices"),
                     lambda ds: sum(d["online"] for d in ds) == 3, timeout=20, what="three stations online")
    province = next(a for a in await system.api_json("GET", "/api/v1/areas") if a["level"] == "province")
    other = await system.api_json("POST", "/api/v1/areas", json={
        "level": "commune", "parent_id": province["id"], "name": "Xã Xuân Hòa"})

    async with httpx.AsyncClient(base_url=system.base_url, timeout=30) as admin, \
            httpx.AsyncClient(base_url=system.base_url, timeout=30) as tech:
        await panel_login(admin, "admin", system.admin_password)
        admin.follow_redirects = tech.follow_redirects = True  # after the login's own 303
        users = await admin.get("/admin/users")
        made = await admin.post("/admin/users", data={
            "csrf": _csrf(users.text), "username": "kythuat.xuanhoa", "password": PW,
            "role": "technician", "area_id": other["id"]})  # fmt: skip
        assert made.status_code in (200, 303) and "kythuat.xuanhoa" in made.text
        tech.follow_redirects = False
        await panel_login(tech, "kythuat.xuanhoa", PW)
        tech.follow_redirects = True

        # The other commune's technician sees none of them and a crafted selection is refused whole.
        assert "0 trạm" in (await tech.get("/stations")).text
        refused = await _bulk(tech, ids, "test_tone")
        assert refused.status_code == 403
        assert "3 trạm đã chọn nằm ngoài địa bàn được giao" in refused.text
        assert "Không trạm nào bị tác động." in refused.text
        for st in stations:
            assert await system.api_json("GET", f"/api/v1/devices/{st.device_id}/diagnostics") == []

        # The admin ticks the three and sends a test tone: each horn sounds it.
        page = (await admin.get("/stations")).text
        assert all(f'name="ids" value="{i}"' in page for i in ids)
        sent = await _bulk(admin, ids, "test_tone")
        assert sent.status_code == 200 and "Đã gửi lệnh phát tiếng thử tới 3 trạm." in sent.text
        for st in stations:
            tone = await st.sink.wait_for(lambda p: p.files == (), timeout=15)
            assert tone.completed and tone.duration_s > 0.9
        results = [await eventually(
            lambda st=st: system.api_json("GET", f"/api/v1/devices/{st.device_id}/diagnostics"),
            lambda rows: len(rows) == 1 and rows[0]["state"] != "pending", timeout=15,
            what=f"result of {st.uid}") for st in stations]  # fmt: skip
        assert all(rows[0]["state"] == "done" and rows[0]["action"] == "test_tone"
                   for rows in results), results
        # Exactly one tone per horn: the refused request never reached any of them.
        assert all(sum(p.files == () for p in st.sink.playbacks) == 1 for st in stations)
