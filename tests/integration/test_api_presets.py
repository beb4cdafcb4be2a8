"""Issue 20: emergency presets over the API (`/api/v1/emergency-presets`), the same use case as the
panel's presets page (controller/usecases/presets.py): the caller's province's presets; a province
operator creates, changes and resets their province's; another province's operator neither sees
nor changes them (404, 403 for a write naming the province); a commune operator and a viewer of the
province read only (403); an anonymous client 401; bad fields a 422 in words; what the API stores
the panel's emergency form offers, and what the panel stores the API lists."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controller.db.models import Area, User
from controller.db.models_alerts import EmergencyPreset
from controller.web import accounts
from tests.integration.test_panel_presets import FLOOD_DEFAULT, edit_flood, field, login
from tests.support.browser import ADMIN_PW, PW, Panel, running_panel

URL = "/api/v1/emergency-presets"
KEYS = ["storm", "flood", "flash_flood", "fire", "epidemic", "all_clear"]
FLOOD = {"key": "flood", "label": "Lũ", "title": "Cảnh báo lũ sông Lô",
         "text": "Thông báo khẩn: Nước sông Lô lên nhanh. Bà con vùng bãi sông lên nơi cao ngay.",
         "led_text": "LŨ SÔNG LÔ - LÊN NƠI CAO NGAY", "voice": "vi-south", "repeat_hours": 1}  # fmt: skip


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def seed(panel: Panel) -> dict[str, Any]:
    """Phú Thọ (the panel's seed) and Lào Cai, each with a province operator; a commune operator of
    each; a viewer of Phú Thọ."""
    ids = panel.seed(stations_per_commune=1)
    with panel.rt.db.session() as s:
        lao_cai = Area(level="province", name="Tỉnh Lào Cai", code="15")
        bat_xat = Area(level="commune", kind="xa", name="Xã Bát Xát", parent=lao_cai)
        s.add_all([lao_cai, bat_xat])
        s.flush()
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        for name, role, area in [("tinh.phutho", "province", ids["province"]),
                                 ("tinh.laocai", "province", lao_cai.id),
                                 ("canbo.batxat", "commune", bat_xat.id),
                                 ("xem.phutho", "viewer", ids["province"])]:  # fmt: skip
            accounts.create_user(s, admin, name, PW, role, area)
        ids["lao_cai"] = lao_cai.id
    return ids


class Api:
    def __init__(self, panel: Panel, username: str | None, password: str = PW, lang: str = "vi") -> None:
        self.http = panel.client().http
        self.headers = {"Accept-Language": lang}
        if username is not None:
            self.headers |= panel.bearer(username, password) | {"Accept-Language": lang}

    def __getattr__(self, method: str) -> Any:
        return lambda url, **kw: getattr(self.http, method)(url, headers=self.headers, **kw)


def by_key(listing: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {p["key"]: p for p in listing}


def test_province_operator_creates_changes_and_resets_as_the_panel_shows(panel: Panel) -> None:
    ids = seed(panel)
    api = Api(panel, "tinh.phutho")
    r = api.get(URL)
    assert r.status_code == 200, r.text
    assert [p["key"] for p in r.json()] == KEYS
    flood = by_key(r.json())["flood"]
    assert flood["source"] == "builtin" and flood["id"] is None and flood["editable"] is True
    assert flood["province_id"] == ids["province"] and flood["text"].startswith(FLOOD_DEFAULT)
    assert flood["repeat_hours"] == 2 and flood["led_text"].startswith("CẢNH BÁO LŨ")

    made = api.post(URL, json=FLOOD)
    assert made.status_code == 201, made.text
    row = made.json()
    assert row["source"] == "province" and row["province_id"] == ids["province"] and row["id"] > 0
    assert row["title"] == "Cảnh báo lũ sông Lô" and row["voice"] == "vi-south" and row["repeat_hours"] == 1
    assert by_key(api.get(URL).json())["flood"] == row
    # The panel's emergency form (a commune operator of the province) offers the API's text.
    commune = login(panel, "canbo.hophoa")
    page = commune.http.get("/emergency?preset=flood").text
    assert field(page, "text") == FLOOD["text"] and field(page, "every_hours") == "1"
    assert "LŨ SÔNG LÔ - LÊN NƠI CAO NGAY" in commune.http.get("/emergency-presets").text

    again = api.post(URL, json=FLOOD | {"text": "Lần hai"})
    assert again.status_code == 409 and again.json()["code"] == "preset.exists", again.text
    assert "hãy sửa bản đó" in again.json()["detail"]

    higher = "Thông báo khẩn: Nước sông Lô đã vượt báo động 3."
    changed = api.patch(f"{URL}/{row['id']}", json={"text": higher, "repeat_hours": None})
    assert changed.status_code == 200, changed.text
    assert changed.json()["title"] == "Cảnh báo lũ sông Lô" and changed.json()["repeat_hours"] is None
    page = commune.http.get("/emergency?preset=flood").text
    assert field(page, "text") == higher

    # The panel's form changes the same row, the API lists it.
    assert edit_flood(login(panel, "tinh.phutho"), ids["province"]).status_code == 303  # type: ignore[attr-defined]
    listed = by_key(api.get(URL).json())["flood"]
    assert listed["id"] == row["id"] and listed["text"].startswith("Thông báo khẩn: Nước sông Lô lên nhanh")

    # Reset: the built-in text again, on the API and on the panel.
    assert api.delete(f"{URL}/{row['id']}").status_code == 204
    assert by_key(api.get(URL).json())["flood"]["source"] == "builtin"
    assert field(commune.http.get("/emergency?preset=flood").text, "text").startswith(FLOOD_DEFAULT)
    assert api.delete(f"{URL}/{row['id']}").status_code == 404

    # The panel's "Về mẫu mặc định" is the same reset: made through the API, reset on the panel.
    remade = api.post(URL, json=FLOOD).json()
    lao_cai = login(panel, "tinh.laocai")
    r = lao_cai.post_form("/emergency-presets/flood/reset", {"province_id": str(ids["province"])},
                          csrf_from="/emergency-presets")
    assert r.status_code == 403  # type: ignore[attr-defined]
    operator = login(panel, "tinh.phutho")
    page = operator.http.get("/emergency-presets").text
    assert 'id="reset-flood"' in page and 'id="reset-storm"' not in page
    r = operator.post_form("/emergency-presets/flood/reset", {"province_id": str(ids["province"])},
                           csrf_from="/emergency-presets")
    assert r.status_code == 303, r.text  # type: ignore[attr-defined]
    assert "Đã đưa mẫu về nội dung mặc định." in operator.http.get(r.headers["location"]).text  # type: ignore[attr-defined]
    assert by_key(api.get(URL).json())["flood"]["source"] == "builtin"
    assert api.patch(f"{URL}/{remade['id']}", json={"text": "x"}).status_code == 404
    r = operator.post_form("/emergency-presets/flood/reset", {"province_id": str(ids["province"])},
                           csrf_from="/emergency-presets")
    assert r.status_code == 404  # type: ignore[attr-defined]


def test_who_may_read_and_write(panel: Panel) -> None:
    ids = seed(panel)
    row = Api(panel, "tinh.phutho").post(URL, json=FLOOD).json()
    one = f"{URL}/{row['id']}"

    # Anonymous: 401 for everything.
    anon = Api(panel, None)
    for r in (anon.get(URL), anon.post(URL, json=FLOOD), anon.patch(one, json={"text": "x"}),
              anon.delete(one)):
        assert r.status_code == 401, r.text

    # Another province's operator: sees only their own (defaults), Phú Thọ's is not found.
    lao_cai = Api(panel, "tinh.laocai")
    own = by_key(lao_cai.get(URL).json())["flood"]
    assert own["source"] == "builtin" and own["province_id"] == ids["lao_cai"] and own["editable"] is True
    r = lao_cai.get(URL, params={"province_id": ids["province"]})
    assert r.status_code == 404 and r.json()["code"] == "preset.province_not_found"
    for r in (lao_cai.patch(one, json={"text": "Sửa của tỉnh khác"}), lao_cai.delete(one)):
        assert r.status_code == 404 and r.json()["code"] == "preset.id_not_found", r.text
    r = lao_cai.post(URL, json=FLOOD | {"province_id": ids["province"]})
    assert r.status_code == 403, r.text
    # ...and edits their own province's (a commune operator of Lào Cai sees that, not Phú Thọ's).
    assert lao_cai.post(URL, json=FLOOD | {"text": "Lũ ở Lào Cai"}).status_code == 201
    assert by_key(Api(panel, "canbo.batxat").get(URL).json())["flood"]["text"] == "Lũ ở Lào Cai"

    # A commune operator and a viewer of Phú Thọ read the province's version, never write.
    for who in ("canbo.hophoa", "xem.phutho"):
        api = Api(panel, who)
        listed = by_key(api.get(URL).json())["flood"]
        assert listed["id"] == row["id"] and listed["editable"] is False, who
        assert api.post(URL, json=FLOOD | {"key": "storm"}).status_code == 403, who
        assert api.patch(one, json={"text": "Sửa trái phép"}).status_code == 403, who
        assert api.delete(one).status_code == 403, who

    with panel.rt.db.session() as s:
        stored = {(r.area_id, r.key): r.text for r in s.scalars(select(EmergencyPreset))}
    assert stored == {(ids["province"], "flood"): FLOOD["text"], (ids["lao_cai"], "flood"): "Lũ ở Lào Cai"}


def test_admin_installation_wide_preset_and_bad_fields(panel: Panel) -> None:
    ids = seed(panel)
    admin = Api(panel, "admin", ADMIN_PW)
    made = admin.post(URL, json=FLOOD | {"key": "fire", "text": "Cháy: gọi 114."})  # no province: all
    assert made.status_code == 201 and made.json()["source"] == "installation", made.text
    assert made.json()["province_id"] is None
    lao_cai = Api(panel, "tinh.laocai")
    fire = by_key(lao_cai.get(URL).json())["fire"]
    assert fire["source"] == "installation" and fire["text"] == "Cháy: gọi 114."
    assert lao_cai.patch(f"{URL}/{made.json()['id']}", json={"text": "x"}).status_code == 403
    assert admin.get(URL, params={"province_id": ids["province"]}).json()[3]["text"] == "Cháy: gọi 114."

    api = Api(panel, "tinh.phutho")
    for body, code, words in [
        (FLOOD | {"led_text": "  "}, "preset.bad_fields", "chữ trên bảng điện tử"),
        (FLOOD | {"repeat_hours": 30}, "preset.bad_repeat", "Khoảng lặp lại phải từ 1 đến 24 giờ"),
        (FLOOD | {"voice": "robot"}, "preset.bad_voice", "robot"),
        (FLOOD | {"key": "tsunami"}, "preset.unknown_key", "storm, flood"),
    ]:
        r = api.post(URL, json=body)
        assert r.status_code == 422 and r.json()["code"] == code and words in r.json()["detail"], r.text
    r = api.post(URL, json=FLOOD | {"colour": "red"})
    assert r.status_code == 422 and r.json()["code"] == "request.invalid"
    row = api.post(URL, json=FLOOD).json()
    r = Api(panel, "tinh.phutho", lang="en").patch(f"{URL}/{row['id']}", json={"voice": "robot"})
    assert r.status_code == 422 and "There is no voice “robot”" in r.json()["detail"], r.text
    r = api.patch(f"{URL}/{row['id']}", json={"label": None, "title": "Lũ lớn"})  # null keeps the label
    assert r.status_code == 200 and r.json()["label"] == "Lũ" and r.json()["title"] == "Lũ lớn"
    assert api.patch(f"{URL}/999999", json={"text": "x"}).status_code == 404
