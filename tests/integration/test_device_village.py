"""Issue 19: a station keeps its commune and may name the village it stands in: at creation,
later (PUT /api/v1/devices/{id}/village), and from a CSV import (by name, diacritics ignored,
or code); a village of another commune is refused; only technicians and admins of the station's
commune may set it; the station page shows it. Both databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from controller.db.models import Area, Device, User
from controller.web import accounts
from tests.support.browser import ADMIN_PW, PW, Panel, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def _token(panel: Panel, username: str, password: str = PW) -> dict[str, str]:
    return panel.bearer(username, password)


def test_a_station_names_its_village_and_only_its_own_communes(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    with panel.rt.db.session() as s:
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        thon = Area(level="village", name="Thôn Đồng Bùa", code="T01", parent_id=ids["hop_hoa"])
        other = Area(level="village", name="Thôn Bá Hạ", parent_id=ids["kim_long"])
        s.add_all([thon, other])
        s.flush()
        thon_id, other_id = thon.id, other.id
        accounts.create_user(s, admin, "kythuat.hophoa", PW, "technician", ids["hop_hoa"])
        accounts.create_user(s, admin, "kythuat.kimlong", PW, "technician", ids["kim_long"])
    http = panel.client().http
    tech, far, viewer = (_token(panel, "kythuat.hophoa"), _token(panel, "kythuat.kimlong"),
                         _token(panel, "nguoixem"))  # fmt: skip

    body = {"name": "Cụm loa Đồng Bùa", "kind": "speaker", "commune_id": ids["hop_hoa"],
            "village_id": thon_id}
    made = http.post("/api/v1/devices", json=body, headers=tech)
    assert made.status_code == 201, made.text
    assert made.json()["village_id"] == thon_id
    wrong = http.post("/api/v1/devices", json={**body, "name": "Sai thôn", "village_id": other_id},
                      headers=tech)
    assert wrong.status_code == 422 and "không thuộc xã" in wrong.json()["detail"]

    station = ids["devices"][ids["hop_hoa"]][0]
    assert http.put(f"/api/v1/devices/{station}/village", json={"village_id": thon_id},
                    headers=tech).json()["village_id"] == thon_id
    assert http.put(f"/api/v1/devices/{station}/village", json={"village_id": other_id},
                    headers=tech).status_code == 422
    assert http.put(f"/api/v1/devices/{station}/village", json={"village_id": None},
                    headers=far).status_code == 403
    assert http.put(f"/api/v1/devices/{station}/village", json={"village_id": None},
                    headers=viewer).status_code == 403
    with panel.rt.db.session() as s:
        assert s.get(Device, station).village_id == thon_id  # nothing changed by the refusals

    page = panel.client()
    page.login("admin", ADMIN_PW)
    assert "Thôn Đồng Bùa" in page.http.get(f"/stations/{station}").text

    csv = ("name,kind,commune_id,village\n"
           f"Cụm loa thôn,speaker,{ids['hop_hoa']},thon dong bua\n"
           f"Cụm loa mã,speaker,{ids['hop_hoa']},T01\n").encode()
    imported = http.post("/api/v1/devices/import", files={"file": ("tram.csv", csv)}, headers=tech)
    assert imported.status_code in (200, 201), imported.text
    bad = ("name,kind,commune_id,village\n"
           f"Cụm loa sai,speaker,{ids['hop_hoa']},Thôn Bá Hạ\n").encode()
    refused = http.post("/api/v1/devices/import", files={"file": ("tram.csv", bad)}, headers=tech)
    assert refused.status_code == 422 and "village" in refused.text and "2" in refused.text
    with panel.rt.db.session() as s:
        villages = [d.village_id for d in s.scalars(select(Device).where(Device.name.like("Cụm loa %")))
                    if d.name in ("Cụm loa thôn", "Cụm loa mã")]
    assert villages == [thon_id, thon_id]
