"""Issue 20 item 8 acceptance (emergency presets): the emergency form offers the province's presets,
choosing "Lũ" fills text, voice, repeat and LED text; a province operator edits their province's;
another province's operator can neither see nor edit them; a viewer or commune operator cannot edit;
bad input is a clear 422 in Vietnamese (and English)."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from controller.db.models import Area, User
from controller.db.models_alerts import EmergencyPreset
from controller.db.models_emergency import EmergencyBroadcast
from controller.db.models_led import LedMessageRow
from controller.services import devices
from controller.web import accounts
from tests.support.browser import PW, Panel, PanelClient, running_panel

FLOOD_DEFAULT = "Thông báo khẩn: Mực nước sông đang lên nhanh"


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def seed(panel: Panel) -> dict[str, int]:
    ids = panel.seed(stations_per_commune=1)
    with panel.rt.db.session() as s:
        lao_cai = Area(level="province", name="Tỉnh Lào Cai", code="15")
        bat_xat = Area(level="commune", kind="xa", name="Xã Bát Xát", parent=lao_cai)
        s.add_all([lao_cai, bat_xat])
        s.flush()
        admin = s.scalars(select(User).where(User.username == "admin")).one()
        for name, role, area in [("tinh.phutho", "province", ids["province"]),
                                 ("tinh.laocai", "province", lao_cai.id),
                                 ("canbo.batxat", "commune", bat_xat.id)]:  # fmt: skip
            accounts.create_user(s, admin, name, PW, role, area)
        ids["lao_cai"] = lao_cai.id
    return ids


def login(panel: Panel, username: str) -> PanelClient:
    c = panel.client()
    c.login(username, PW)
    return c


def field(page: str, name: str) -> str:
    m = re.search(rf'name="{name}"[^>]*value="([^"]*)"', page) or re.search(
        rf'<textarea name="{name}"[^>]*>([^<]*)</textarea>', page
    )
    assert m, f"no field {name}"
    return html.unescape(m.group(1))


def edit_flood(c: PanelClient, province_id: int | str, **changes: str) -> object:
    data = {"province_id": str(province_id), "label": "Lũ", "title": "Cảnh báo lũ sông Lô",
            "text": "Thông báo khẩn: Nước sông Lô lên nhanh. Bà con vùng bãi sông lên nơi cao ngay.",
            "led_text": "LŨ SÔNG LÔ - LÊN NƠI CAO NGAY", "voice": "vi-north", "repeat": "hours",
            "repeat_hours": "1", **changes}  # fmt: skip
    return c.post_form("/emergency-presets/flood", data, csrf_from="/emergency-presets")


def test_choosing_flood_fills_the_form(panel: Panel) -> None:
    ids = seed(panel)
    c = login(panel, "canbo.hophoa")
    form = c.http.get("/emergency").text
    buttons = re.findall(r'class="preset-button[^"]*" href="/emergency\?preset=(\w+)"[^>]*>([^<]+)</a>', form)
    assert [html.unescape(label) for _k, label in buttons] == [
        "Bão",
        "Lũ",
        "Lũ quét, sạt lở đất",
        "Cháy",
        "Dịch bệnh",
        "Hết cảnh báo",
    ]
    page = c.http.get("/emergency?preset=flood").text
    assert field(page, "title") == "Cảnh báo lũ"
    assert field(page, "text").startswith(FLOOD_DEFAULT)
    assert field(page, "led_text") == "CẢNH BÁO LŨ - ĐẾN NƠI CAO, KHÔNG QUA NGẦM TRÀN"
    assert re.search(r'value="hours" checked', page) and field(page, "every_hours") == "2"
    assert re.search(r'<option value="vi-north" selected', page)
    # Next tap: the confirmation says it back, the LED line included.
    r = c.post_form("/emergency/confirm", {"title": field(page, "title"), "text": field(page, "text"),
                    "led_text": field(page, "led_text"), "voice": "vi-north", "target": "all",
                    "repeat": "hours", "every_hours": "2"}, csrf_from="/emergency")  # fmt: skip
    assert r.status_code == 200, r.text[:400]
    assert "CẢNH BÁO LŨ - ĐẾN NƠI CAO" in r.text and 'name="led_text"' in r.text
    # Last tap: the boards of the area show the preset's short line, the speakers read the text.
    with panel.rt.db.session() as s:
        board = devices.DeviceCreate(name="Bảng LED chợ", kind="led", commune_id=ids["hop_hoa"])
        devices.create(s, board, None)
    r = c.post_form("/emergency/start", {"title": field(page, "title"), "text": field(page, "text"),
                    "led_text": field(page, "led_text"), "voice": "vi-north", "target": "all",
                    "repeat": "none", "confirmed": "yes"}, csrf_from="/emergency")  # fmt: skip
    assert r.status_code in (303, 503), r.text[:400]  # type: ignore[attr-defined]
    with panel.rt.db.session() as s:
        boards = list(s.scalars(select(LedMessageRow.text).where(LedMessageRow.source == "emergency")))
        spoken = list(s.scalars(select(EmergencyBroadcast.text)))
    assert boards == ["CẢNH BÁO LŨ - ĐẾN NƠI CAO, KHÔNG QUA NGẦM TRÀN"]
    assert spoken[0].startswith(FLOOD_DEFAULT)


def test_province_operator_edits_and_only_their_province_sees_it(panel: Panel) -> None:
    ids = seed(panel)
    phu_tho = login(panel, "tinh.phutho")
    assert 'action="/emergency-presets/flood"' in phu_tho.http.get("/emergency-presets").text
    r = edit_flood(phu_tho, ids["province"])
    assert r.status_code == 303, r.text[:400]  # type: ignore[attr-defined]
    # A commune operator of Phú Thọ gets the edited preset, read-only on the presets page.
    commune = login(panel, "canbo.hophoa")
    page = commune.http.get("/emergency?preset=flood").text
    assert (
        field(page, "text").startswith("Thông báo khẩn: Nước sông Lô") and field(page, "every_hours") == "1"
    )
    listing = commune.http.get("/emergency-presets").text
    assert 'id="presets-read-only"' in listing and 'action="/emergency-presets/' not in listing
    # Lào Cai's people still get the defaults, and cannot see or edit Phú Thọ's.
    bat_xat = login(panel, "canbo.batxat")
    assert field(bat_xat.http.get("/emergency?preset=flood").text, "text").startswith(FLOOD_DEFAULT)
    lao_cai = login(panel, "tinh.laocai")
    assert lao_cai.http.get(f"/emergency-presets?province_id={ids['province']}").status_code == 404
    r = edit_flood(lao_cai, ids["province"], text="Nội dung của tỉnh khác")
    assert r.status_code == 403  # type: ignore[attr-defined]
    # A viewer and a commune operator cannot edit either; an anonymous client is sent to log in.
    for who in ("nguoixem", "canbo.hophoa"):
        assert edit_flood(login(panel, who), ids["province"], text="Sửa trái phép").status_code == 403  # type: ignore[attr-defined]
    anon = panel.client()
    assert anon.http.get("/emergency-presets", follow_redirects=False).status_code in (302, 303)
    anon_post = anon.http.post("/emergency-presets/flood", data={"text": "x"}, follow_redirects=False)
    assert anon_post.status_code in (302, 303, 401, 403)
    with panel.rt.db.session() as s:
        rows = list(s.scalars(select(EmergencyPreset)))
    assert [(r.area_id, r.key, r.text[:26]) for r in rows] == [
        (ids["province"], "flood", "Thông báo khẩn: Nước sông ")
    ]


def test_bad_preset_is_a_clear_422(panel: Panel) -> None:
    ids = seed(panel)
    c = login(panel, "tinh.phutho")
    r = edit_flood(c, ids["province"], repeat_hours="30")
    assert r.status_code == 422 and "Khoảng lặp lại phải từ 1 đến 24 giờ" in r.text  # type: ignore[attr-defined]
    r = edit_flood(c, ids["province"], led_text="  ")
    assert r.status_code == 422 and "chữ trên bảng điện tử" in r.text  # type: ignore[attr-defined]
    c.http.get("/lang?to=en")
    r = edit_flood(c, ids["province"], voice="robot")
    assert r.status_code == 422 and "There is no voice “robot”" in r.text  # type: ignore[attr-defined]
    assert edit_flood(c, 999999).status_code == 404  # type: ignore[attr-defined]


def test_a_preset_fills_a_normal_tts_bulletin(panel: Panel) -> None:
    """The same presets start a normal typed bulletin (/bulletins/tts): an all-clear or an epidemic
    advice is sent or scheduled like any bulletin, not as an emergency (issue 20 walk-through)."""
    ids = seed(panel)
    assert edit_flood(login(panel, "tinh.phutho"), ids["province"]).status_code == 303  # type: ignore[attr-defined]
    c = login(panel, "canbo.hophoa")
    page = c.http.get("/bulletins/tts").text
    keys = re.findall(r'class="preset-button[^"]*" href="/bulletins/tts\?preset=(\w+)"', page)
    assert keys == ["storm", "flood", "flash_flood", "fire", "epidemic", "all_clear"]
    assert "<textarea" in page and field(page, "text") == ""
    page = c.http.get("/bulletins/tts?preset=all_clear").text
    assert field(page, "title") == "Hết cảnh báo" and field(page, "preset") == "all_clear"
    assert field(page, "text").startswith("Thông báo: Tình huống khẩn cấp đã qua")
    assert re.search(r'<option value="vi-north" selected', page) and 'aria-current="true"' in page
    # The province's own version, as on the emergency form; an unknown key fills nothing.
    flood = field(c.http.get("/bulletins/tts?preset=flood").text, "text")
    assert flood.startswith("Thông báo khẩn: Nước sông Lô")
    assert field(c.http.get("/bulletins/tts?preset=robot").text, "text") == ""
    c.http.get("/lang?to=en")
    assert "Start from a preset:" in c.http.get("/bulletins/tts").text
