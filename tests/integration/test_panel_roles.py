"""Roles scoped by area (issue 7): the panel shows only what a role may do and the server
refuses the rest (403), the API refuses the same; operators act only inside their area.
Also the station list (filters, search, pagination) and the dashboard counts."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from controller.core.permissions import MATRIX, Action, can_act_on_area, communes_in_scope, roles_with
from controller.db.models import Broadcast, Delivery, Device, Media, User
from tests.support.browser import PW, Panel, PanelClient, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p

SEND_MARKERS = ('id="send-form"', 'id="upload-form"', "Gửi lệnh phát")


def _media(panel: Panel) -> str:
    sha = secrets.token_hex(32)
    with panel.rt.db.session() as s:
        s.add(Media(sha256=sha, original_name="thong-bao.mp3", content_type="audio/ogg", size=1000,
                    duration_s=2.0, codec="opus", source_sha256=sha))
    return sha


def _send(c: PanelClient, sha: str, **target: str | list[str]) -> object:
    data = {"title": "Thông báo lịch tiêm chủng", "media_sha256": sha, "priority": "normal", **target}
    return c.post_form("/bulletins/send", data, csrf_from="/bulletins")


def _deliveries(panel: Panel, broadcast_id: int) -> set[int]:
    with panel.rt.db.session() as s:
        return set(s.scalars(select(Delivery.device_id).where(Delivery.broadcast_id == broadcast_id)))


@pytest.mark.parametrize("username", ["nguoixem", "duyet", "kythuat"])
def test_roles_without_send_see_no_buttons_and_are_refused(panel: Panel, username: str) -> None:
    panel.seed(stations_per_commune=1)
    sha = _media(panel)
    c = panel.client()
    c.login(username, PW)
    page = c.http.get("/bulletins")
    assert page.status_code == 200
    for marker in SEND_MARKERS:
        assert marker not in page.text, f"{username} sees {marker}"
    assert f'src="/media/{sha}"' in page.text  # everyone may listen to bulletins
    r = _send(c, sha, target="all")
    assert r.status_code == 403 and "không có quyền" in r.text
    r = c.post_form("/bulletins/upload", csrf_from="/bulletins", files={"file": ("a.wav", b"RIFF....")})
    assert r.status_code == 403
    with panel.rt.db.session() as s:
        assert s.scalar(select(Delivery.id).limit(1)) is None  # nothing was sent
    # The API refuses the same action for the same account.
    token = c.http.post("/api/v1/auth/token", data={"username": username, "password": PW}).json()
    api = c.http.post("/api/v1/broadcasts", headers={"Authorization": f"Bearer {token['access_token']}"},
                      json={"title": "x", "media_sha256": sha, "targets": {"all": True}})
    assert api.status_code == 403


def test_commune_operator_acts_only_in_their_commune(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=2)
    sha = _media(panel)
    c = panel.client()
    c.login("canbo.hophoa", PW)
    page = c.http.get("/bulletins").text
    assert all(m in page for m in SEND_MARKERS)
    assert "Xã Hợp Hòa" in page and "Xã Xuân Hòa" not in page  # only their own commune to choose

    stations = c.http.get("/stations").text
    assert "2 trạm" in stations and "Xã Xuân Hòa" not in stations
    foreign = ids["devices"][ids["xuan_hoa"]][0]
    assert c.http.get(f"/stations/{foreign}").status_code == 404
    dash = c.http.get("/").text
    assert "Xã Hợp Hòa" in dash and "Xã Kim Long" not in dash

    # "All" from a commune operator means all of *their* stations.
    r = _send(c, sha, target="all")
    assert r.status_code == 303, r.text
    bc_id = int(re.search(r"broadcast_id=(\d+)", r.headers["location"]).group(1))
    assert _deliveries(panel, bc_id) == set(ids["devices"][ids["hop_hoa"]])
    log = c.http.get(r.headers["location"]).text
    # A commune operator may not approve content: it waits for an approver (docs/panel.md).
    assert "Bản tin sẽ được phát khi người có quyền duyệt." in log and "2 trạm nhận lệnh" in log
    assert "Chờ duyệt" in log

    assert _send(c, sha, target="communes", communes=[str(ids["xuan_hoa"])]).status_code == 403
    with panel.rt.db.session() as s:
        foreign_uid = s.get(Device, foreign).uid
    assert _send(c, sha, target="stations", stations=foreign_uid).status_code == 403
    own = ids["devices"][ids["hop_hoa"]][1]
    r = _send(c, sha, target="stations", stations=str(own))
    assert r.status_code == 303
    assert _deliveries(panel, int(r.headers["location"].split("=")[1].split("&")[0])) == {own}
    # Forms without the CSRF token are refused whatever the role.
    r = c.http.post("/bulletins/send", data={"title": "x", "media_sha256": sha, "target": "all"},
                    follow_redirects=False)
    assert r.status_code == 403
    # A bad form says what is wrong, in Vietnamese, and keeps what was typed.
    r = _send(c, sha, target="")
    assert r.status_code == 422 and "Hãy chọn nơi phát" in r.text and "Thông báo lịch tiêm chủng" in r.text


def test_group_operator_covers_its_communes_only(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    sha = _media(panel)
    c = panel.client()
    c.login("canbo.huyen", PW)
    r = _send(c, sha, target="communes", communes=[str(ids["hop_hoa"]), str(ids["kim_long"])])
    assert r.status_code == 303
    bc_id = int(r.headers["location"].split("=")[1].split("&")[0])
    assert _deliveries(panel, bc_id) == set(ids["devices"][ids["hop_hoa"]] + ids["devices"][ids["kim_long"]])
    assert _send(c, sha, target="communes", communes=[str(ids["xuan_hoa"])]).status_code == 403
    # The send form offers their group of communes (docs/areas.md), not the other group.
    page = c.http.get("/bulletins").text
    assert "Khu vực Tam Dương (huyện cũ)" in page and "Khu vực Lập Thạch (huyện cũ)" not in page
    r = _send(c, sha, target="groups", groups=[str(ids["district"])])
    assert r.status_code == 303
    bc_id = int(r.headers["location"].split("=")[1].split("&")[0])
    assert _deliveries(panel, bc_id) == set(ids["devices"][ids["hop_hoa"]] + ids["devices"][ids["kim_long"]])
    assert _send(c, sha, target="groups", groups=[str(ids["other_group"])]).status_code == 403


def test_permission_matrix_and_area_check(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=0)
    assert Action.USER_MANAGE in MATRIX["admin"] and Action.USER_MANAGE not in MATRIX["province"]
    assert "viewer" not in roles_with(Action.BROADCAST_SEND)
    assert set(roles_with(Action.BROADCAST_APPROVE)) >= {"approver", "province", "admin"}
    assert "technician" in roles_with(Action.DEVICE_MANAGE)
    assert "commune" not in roles_with(Action.DEVICE_MANAGE)
    with panel.rt.db.session() as s:
        users = {u.username: u for u in s.scalars(select(User))}
        district = users["canbo.huyen"]
        assert can_act_on_area(s, district, Action.BROADCAST_SEND, ids["hop_hoa"])
        assert not can_act_on_area(s, district, Action.BROADCAST_SEND, ids["xuan_hoa"])
        assert not can_act_on_area(s, district, Action.USER_MANAGE, ids["hop_hoa"])
        assert communes_in_scope(s, district) == {ids["hop_hoa"], ids["kim_long"]}
        assert communes_in_scope(s, users["duyet"]) == {ids["hop_hoa"], ids["kim_long"], ids["xuan_hoa"]}
        assert communes_in_scope(s, users["admin"]) is None


def test_station_list_filters_search_and_pages(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=40)
    with panel.rt.db.session() as s:
        for dev_id in ids["devices"][ids["kim_long"]][:7]:
            d = s.get(Device, dev_id)
            d.online = True
            d.reported = {"online": True, "playing": "b9"} if dev_id % 2 else {"online": True}
    c = panel.client()
    c.login("admin", panel.settings.admin_password)
    first = c.http.get("/stations").text
    assert "120 trạm" in first and "Trang 1/3" in first and first.count('href="/stations/') == 50
    last = c.http.get("/stations?page=3").text
    assert "Trang 3/3" in last and last.count('href="/stations/') == 20
    found = c.http.get("/stations", params={"q": "cụm loa 12 – xã kim"}).text
    assert "1 trạm" in found and "Cụm loa 12 – Xã Kim Long" in found
    online = c.http.get("/stations?state=online").text
    assert "7 trạm" in online
    playing = sum(1 for i in ids["devices"][ids["kim_long"]][:7] if i % 2)
    assert f"{playing} trạm" in c.http.get("/stations?state=playing").text
    assert "113 trạm" in c.http.get("/stations?state=offline").text
    assert "40 trạm" in c.http.get(f"/stations?commune={ids['xuan_hoa']}").text
    dash = c.http.get("/").text
    assert re.search(r'id="count-online">7<', dash) and re.search(r'id="count-total">120<', dash)
    assert re.search(rf'id="count-playing">{playing}<', dash)
    assert dash.count("<circle") >= 3  # the offline map plot
    detail = c.http.get(f"/stations/{ids['devices'][ids['kim_long']][0]}").text
    assert "Lịch sử phát" in detail and "Sự kiện gần đây" in detail


def test_drafts_wait_for_an_approver_of_the_area(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    sha = _media(panel)
    op = panel.client()
    op.login("canbo.hophoa", PW)
    assert 'href="/approvals"' not in op.http.get("/").text
    later = (datetime.now(ZoneInfo("Asia/Ho_Chi_Minh")) + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%S")
    r = _send(op, sha, target="all", start_local=later)
    assert r.status_code == 303 and "ok=draft" in r.headers["location"]
    bc_id = int(r.headers["location"].split("=")[1].split("&")[0])
    with panel.rt.db.session() as s:
        assert s.get(Broadcast, bc_id).status == "draft"
    # Roles without approval rights: no link, no page, no approving.
    viewer = panel.client()
    viewer.login("nguoixem", PW)
    assert viewer.http.get("/approvals").status_code == 403
    r = viewer.http.post(f"/approvals/{bc_id}/approve", data={"csrf": viewer.csrf()}, follow_redirects=False)
    assert r.status_code == 403
    # The approver of the province sees the draft with its audio and approves it.
    approver = panel.client()
    approver.login("duyet", PW)
    queue = approver.http.get("/approvals").text
    assert "Thông báo lịch tiêm chủng" in queue and f'src="/media/{sha}"' in queue
    assert "canbo.hophoa" in queue  # who sent it
    r = approver.post_form(f"/approvals/{bc_id}/approve", csrf_from="/approvals")
    assert r.status_code == 303 and "ok=approved" in r.headers["location"]
    with panel.rt.db.session() as s:
        assert s.get(Broadcast, bc_id).status == "scheduled"
    assert "Không có bản tin nào chờ duyệt." in approver.http.get("/approvals").text
    # The admin's own broadcast airs at once (approved on creation).
    admin = panel.client()
    admin.login("admin", panel.settings.admin_password)
    r = _send(admin, sha, target="communes", communes=[str(ids["xuan_hoa"])])
    assert r.status_code == 303 and "ok=sent" in r.headers["location"]
