"""Issue 19: admins import a province from the packages in the panel, through the same use-case
as the API (`POST /api/v1/areas/import`) and `communecast areas import`; a dry run saves
nothing, a second import changes nothing, an unknown province is a clear 422, and nobody but
an admin can do it. Both databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from controller.db.models import Area
from tests.support.browser import ADMIN_PW, PW, Panel, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def _communes(panel: Panel) -> int:
    with panel.rt.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Area).where(Area.level == "commune")) or 0)


def test_admin_imports_phu_tho_in_the_panel_and_others_cannot(panel: Panel) -> None:
    panel.seed(stations_per_commune=1)
    before = _communes(panel)
    admin = panel.client()
    admin.login("admin", ADMIN_PW)

    trial = admin.post_form("/admin/areas/import", {"province": "25", "dry_run": "1"},
                            csrf_from="/admin/areas")
    assert trial.status_code == 200 and "Thử nhập (chưa lưu gì)" in trial.text
    assert "Xã Tam Dương (8869)" in trial.text and _communes(panel) == before

    done = admin.post_form("/admin/areas/import", {"province": "Phú Thọ"}, csrf_from="/admin/areas")
    assert done.status_code == 200 and 'id="import-result"' in done.text
    assert _communes(panel) == before + 148
    page = admin.http.get("/admin/areas").text
    assert "Tỉnh Phú Thọ" in page and f">{before + 148}<" in page.replace(" ", "")  # with the 3 seeded

    again = admin.post_form("/admin/areas/import", {"province": "25"}, csrf_from="/admin/areas")
    assert "Tạo mới 0, cập nhật 0" in again.text and _communes(panel) == before + 148

    unknown = admin.post_form("/admin/areas/import", {"province": "Vĩnh Phúc"}, csrf_from="/admin/areas")
    assert unknown.status_code == 422 and "Không có tỉnh, thành phố" in unknown.text

    operator = panel.client()
    operator.login("canbo.huyen", PW)
    assert operator.http.get("/admin/areas").status_code == 403
    refused = operator.post_form("/admin/areas/import", {"province": "25"})
    assert refused.status_code == 403
    anonymous = panel.client()
    assert anonymous.http.get("/admin/areas", follow_redirects=False).status_code in (303, 401)


def test_the_api_imports_for_admins_only(panel: Panel) -> None:
    panel.seed(stations_per_commune=1)
    admin = panel.client()
    token = admin.http.post("/api/v1/auth/token", data={"username": "admin", "password": ADMIN_PW}).json()
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    dry = admin.http.post("/api/v1/areas/import", json={"province": "25", "dry_run": True}, headers=headers)
    # The seeded Tỉnh Phú Thọ (code 25) is found, not duplicated; its 148 communes are new.
    assert dry.status_code == 200 and dry.json()["created"] == 148 and dry.json()["dry_run"] is True
    op = panel.client()
    op_token = op.http.post("/api/v1/auth/token", data={"username": "canbo.hophoa", "password": PW}).json()
    refused = op.http.post("/api/v1/areas/import", json={"province": "25"},
                           headers={"Authorization": f"Bearer {op_token['access_token']}"})
    assert refused.status_code == 403
    bad = admin.http.post("/api/v1/areas/import", json={"province": "Atlantis"}, headers=headers)
    assert bad.status_code == 422 and "Atlantis" in bad.json()["detail"]
