"""Area scope on the API (issue 7, two-tier areas issue 19): a commune operator may not schedule
or put LED text outside their commune (403 with a Vietnamese message), a group operator (the
former district operator) covers the communes of their group only, admins and unscoped accounts
everywhere; `require_targets_in_scope` is the one check (controller/core/permissions.py) that
schedules, LED messages and broadcasts call."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.core.errors import UserError
from controller.core.permissions import require_targets_in_scope
from controller.db.models import Media, User
from controller.services import devices
from controller.services.targets import Targets
from tests.support.browser import PW, Panel, running_panel


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def _token(panel: Panel, username: str, password: str = PW) -> dict[str, str]:
    return panel.bearer(username, password)


def _media(panel: Panel) -> str:
    sha = secrets.token_hex(32)
    with panel.rt.db.session() as s:
        s.add(Media(sha256=sha, original_name="thong-bao.mp3", content_type="audio/ogg", size=1000,
                    duration_s=2.0, codec="opus", source_sha256=sha))
    return sha


def _schedule(sha: str, targets: dict[str, Any]) -> dict[str, Any]:
    return {"title": "Bản tin sáng", "media": [sha], "rrule": "FREQ=DAILY;BYHOUR=6;BYMINUTE=0",
            "dtstart": "2030-01-01T00:00:00", "targets": targets}


def test_schedules_and_led_api_refuse_targets_outside_the_area(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    sha = _media(panel)
    with panel.rt.db.session() as s:
        for commune in (ids["hop_hoa"], ids["xuan_hoa"]):
            board = devices.DeviceCreate(name="Bảng điện tử UBND", kind="led", commune_id=commune)
            devices.create(s, board, None)
    http = panel.client().http
    commune_op, district_op = _token(panel, "canbo.hophoa"), _token(panel, "canbo.huyen")
    other = ids["devices"][ids["xuan_hoa"]][0]

    def post(targets: dict[str, Any], who: dict[str, str]) -> Any:
        return http.post("/api/v1/schedules", json=_schedule(sha, targets), headers=who)

    def led(targets: dict[str, Any], who: dict[str, str]) -> Any:
        body = {"text": "Họp dân lúc 19:00", "dry_run": True, "targets": targets}
        return http.post("/api/v1/led-messages", json=body, headers=who)

    for targets in ({"communes": [ids["xuan_hoa"]]}, {"devices": [other]}, {"all": True},
                    {"districts": [ids["district"]]}, {"groups": [ids["district"]]}):
        r = post(targets, commune_op)
        assert r.status_code == 403, (targets, r.text)
        assert r.json()["code"].startswith("scope.") and "địa bàn" in r.json()["detail"], r.text
    r = post({"communes": [ids["xuan_hoa"]]}, commune_op)
    assert "Xã Xuân Hòa" in r.json()["detail"]  # says which area is outside
    ok = post({"communes": [ids["hop_hoa"]]}, commune_op)
    assert ok.status_code == 201, ok.text

    # The group operator (a former district): both communes of the group, nothing else.
    ok = post({"groups": [ids["district"]]}, district_op)
    assert ok.status_code == 201, ok.text
    assert "deprecation" not in ok.headers
    assert ok.json()["targets"] == {"groups": [ids["district"]]}
    # `districts` still works for one release (the same ids are groups), with a deprecation note.
    old = post({"districts": [ids["district"]]}, district_op)
    assert old.status_code == 201, old.text
    assert old.headers["deprecation"] == "true" and "targets.groups" in old.headers["warning"]
    assert old.json()["targets"] == {"groups": [ids["district"]]}
    for targets in ({"communes": [ids["xuan_hoa"]]}, {"groups": [ids["other_group"]]}, {"all": True},
                    {"groups": [ids["district"]], "communes": [ids["xuan_hoa"]]}):
        r = post(targets, district_op)
        assert r.status_code == 403, (targets, r.text)
    # Editing or deleting a schedule of another area is refused the same way.
    admin = _token(panel, "admin", panel.settings.admin_password)
    theirs = post({"communes": [ids["xuan_hoa"]]}, admin)
    assert theirs.status_code == 201, theirs.text
    sid = theirs.json()["id"]
    assert http.delete(f"/api/v1/schedules/{sid}", headers=commune_op).status_code == 403
    moved = _schedule(sha, {"communes": [ids["hop_hoa"]]})
    assert http.put(f"/api/v1/schedules/{sid}", json=moved, headers=commune_op).status_code == 403

    r = led({"communes": [ids["xuan_hoa"]]}, commune_op)
    assert r.status_code == 403 and "địa bàn" in r.json()["detail"]
    r = led({"communes": [ids["hop_hoa"]]}, commune_op)
    assert r.status_code == 200, r.text
    r = led({"all": True}, admin)
    assert r.status_code == 200, r.text
    # Roles without schedule.edit / led.compose are refused whatever the targets.
    for username in ("nguoixem", "kythuat", "duyet"):
        who = _token(panel, username)
        assert post({"communes": [ids["hop_hoa"]]}, who).status_code == 403, username
        assert led({"communes": [ids["hop_hoa"]]}, who).status_code == 403, username


def test_require_targets_in_scope_per_role(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    cases = {
        "admin": {"all": True, "xuan": True, "own": True},
        "canbo.hophoa": {"all": False, "xuan": False, "own": True},
        "canbo.huyen": {"all": False, "xuan": False, "own": True},
        "nguoixem": {"all": True, "xuan": True, "own": True},  # unscoped: the role check is elsewhere
    }
    targets = {"all": Targets(all=True), "xuan": Targets(communes=[ids["xuan_hoa"]]),
               "own": Targets(communes=[ids["hop_hoa"]])}
    with panel.rt.db.session() as s:
        for username, want in cases.items():
            user = s.query(User).filter_by(username=username).one()
            for name, t in targets.items():
                try:
                    require_targets_in_scope(s, user, t)
                    allowed = True
                except UserError as exc:
                    assert exc.status == 403
                    allowed = False
                assert allowed is want[name], (username, name)


def test_broadcasts_api_refuses_sending_or_cancelling_outside_the_area(panel: Panel) -> None:
    """The broadcast route (normal and emergency) runs the same scope check before anything is
    stored or sent; cancelling another area's broadcast is refused too."""
    ids = panel.seed(stations_per_commune=1)
    sha = _media(panel)
    http = panel.client().http
    commune_op, admin = _token(panel, "canbo.hophoa"), _token(panel, "admin", panel.settings.admin_password)
    start = "2030-01-01T06:00:00+07:00"
    for priority in ("normal", "emergency"):
        body = {"title": "Thông báo", "media_sha256": sha, "targets": {"communes": [ids["xuan_hoa"]]},
                "priority": priority, "start_at": start}
        r = http.post("/api/v1/broadcasts", json=body, headers=commune_op)
        assert r.status_code == 403 and "địa bàn" in r.json()["detail"], (priority, r.text)
    assert http.get("/api/v1/broadcasts", headers=admin).json() == []  # nothing was stored
    theirs = http.post("/api/v1/broadcasts", headers=admin, json={
        "title": "Thông báo", "media_sha256": sha, "targets": {"communes": [ids["xuan_hoa"]]},
        "start_at": start})
    assert theirs.status_code == 201, theirs.text
    r = http.post(f"/api/v1/broadcasts/{theirs.json()['id']}/cancel", headers=commune_op)
    assert r.status_code == 403
    kept = http.get(f"/api/v1/broadcasts/{theirs.json()['id']}", headers=admin).json()
    assert kept["status"] != "cancelled"


@pytest.mark.parametrize("priority", ["normal", "emergency"])
def test_a_broadcast_reaching_two_communes_shows_each_operator_only_their_stations(
    panel: Panel, priority: str
) -> None:
    """GET /broadcasts/{id} of a broadcast reaching Hợp Hòa and Xuân Hòa: the Hợp Hòa operator
    may read it (it reaches them) but sees only Hợp Hòa's stations (deliveries, per-station
    states, counts); the names and states of another commune's stations are not theirs to read."""
    ids = panel.seed(stations_per_commune=2)
    sha = _media(panel)
    http = panel.client().http
    commune_op, admin = _token(panel, "canbo.hophoa"), _token(panel, "admin", panel.settings.admin_password)
    sent = http.post("/api/v1/broadcasts", headers=admin, json={
        "title": "Thông báo chung", "media_sha256": sha,
        "targets": {"communes": [ids["hop_hoa"], ids["xuan_hoa"]]},
        "start_at": "2030-01-01T06:00:00+07:00"})  # fmt: skip
    assert sent.status_code == 201, sent.text
    if priority == "emergency":  # no broker here: its emergency record as emergency.start writes it
        from controller.db.models_emergency import EmergencyBroadcast

        with panel.rt.db.session() as s:
            s.add(EmergencyBroadcast(broadcast_id=sent.json()["id"], text="Bão số 3", lead_ms=1500.0))
    url = f"/api/v1/broadcasts/{sent.json()['id']}"
    everything = http.get(url, headers=admin).json()
    mine = http.get(url, headers=commune_op).json()
    own, other = set(ids["devices"][ids["hop_hoa"]]), set(ids["devices"][ids["xuan_hoa"]])
    assert {x["device_id"] for x in everything["station_states"]} == own | other
    assert {x["device_id"] for x in mine["station_states"]} == own
    assert sum(mine["counts"].values()) == len(own)
    assert {x["device_id"] for x in mine.get("stations", [])} <= own
    assert len(mine.get("stations", [])) == len(own)
    assert (mine["emergency"] is not None) is (priority == "emergency")


def test_panel_follows_the_apis_rule_for_the_callers_own_broadcast(panel: Panel) -> None:
    """A broadcast is visible when it reaches the caller's area or the caller sent it, on the
    API and on the panel's play-log page alike (the panel used to check the stations only)."""
    ids = panel.seed(stations_per_commune=1)
    sha = _media(panel)
    http = panel.client().http
    commune_op, admin = _token(panel, "canbo.hophoa"), _token(panel, "admin", panel.settings.admin_password)
    made = []
    for title in ("Của cán bộ", "Của người khác"):
        r = http.post("/api/v1/broadcasts", headers=admin, json={
            "title": title, "media_sha256": sha, "targets": {"communes": [ids["xuan_hoa"]]},
            "start_at": "2030-01-01T06:00:00+07:00"})
        assert r.status_code == 201, r.text
        made.append(r.json()["id"])
    with panel.rt.db.session() as s:  # sent by the operator, e.g. before they moved to Hợp Hòa
        from controller.db.models import Broadcast

        op = s.query(User).filter_by(username="canbo.hophoa").one()
        s.get(Broadcast, made[0]).created_by = op.id
        s.commit()
    web = panel.client()
    web.login("canbo.hophoa", PW)
    for broadcast_id, found in zip(made, (True, False), strict=True):
        assert http.get(f"/api/v1/broadcasts/{broadcast_id}", headers=commune_op).status_code == (
            200 if found else 404)
        page = web.http.get(f"/playlog?broadcast_id={broadcast_id}")
        assert page.status_code == 200
        assert ('id="broadcast-summary"' in page.text) is found, broadcast_id


def test_areas_and_lists_follow_the_scope_and_codes_name_communes(panel: Panel) -> None:
    """A commune operator's lists show only their commune; a group operator's the communes of
    their group; targets may name communes and groups by official code."""
    ids = panel.seed(stations_per_commune=1)
    with panel.rt.db.session() as s:
        from controller.db.models import Area

        s.get(Area, ids["hop_hoa"]).code = "08869"
        s.get(Area, ids["kim_long"]).code = "8872"
        s.get(Area, ids["hop_hoa"]).former_names = ["Thị trấn Hợp Hòa (Huyện Tam Dương, Tỉnh Vĩnh Phúc)"]
        s.commit()
    sha = _media(panel)
    http = panel.client().http
    commune_op, group_op = _token(panel, "canbo.hophoa"), _token(panel, "canbo.huyen")
    admin = _token(panel, "admin", panel.settings.admin_password)

    def communes(who: dict[str, str]) -> set[int]:
        return {a["id"] for a in http.get("/api/v1/areas?level=commune", headers=who).json()}

    assert communes(commune_op) == {ids["hop_hoa"]}
    found = http.get("/api/v1/areas", params={"level": "commune", "q": "HOP HOA"}, headers=admin).json()
    assert [a["id"] for a in found] == [ids["hop_hoa"]]  # current and former names, any diacritics
    found = http.get("/api/v1/areas", params={"q": "thi tran hop hoa"}, headers=admin).json()
    assert [(a["id"], a["level"], a["former_names"]) for a in found] == [
        (ids["hop_hoa"], "commune", ["Thị trấn Hợp Hòa (Huyện Tam Dương, Tỉnh Vĩnh Phúc)"])]
    assert communes(group_op) == {ids["hop_hoa"], ids["kim_long"]}
    assert communes(admin) == {ids["hop_hoa"], ids["kim_long"], ids["xuan_hoa"]}
    seen = {d["commune_id"] for d in http.get("/api/v1/devices", headers=commune_op).json()}
    assert seen == {ids["hop_hoa"]}
    assert {d["commune_id"] for d in http.get("/api/v1/devices", headers=group_op).json()} == {
        ids["hop_hoa"], ids["kim_long"]}
    mine = http.get("/api/v1/areas", headers=group_op).json()
    assert {a["id"] for a in mine if a["level"] == "group"} == {ids["district"]}
    group = next(a for a in mine if a["id"] == ids["district"])
    old = http.get("/api/v1/areas?level=district", headers=group_op)  # deprecated: the groups
    assert old.headers["deprecation"] == "true" and [a["id"] for a in old.json()] == [ids["district"]]
    assert group["commune_ids"] == sorted([ids["hop_hoa"], ids["kim_long"]])

    def post(targets: dict[str, Any], who: dict[str, str]) -> Any:
        return http.post("/api/v1/schedules", json=_schedule(sha, targets), headers=who)

    ok = post({"communes": ["8869"]}, commune_op)  # the official code, leading zero or not
    assert ok.status_code == 201, ok.text
    assert ok.json()["targets"] == {"communes": [ids["hop_hoa"]]}  # stored as ids
    assert post({"communes": ["8872"]}, commune_op).status_code == 403
    unknown = post({"communes": ["99999"]}, admin)
    assert unknown.status_code == 422 and "99999" in unknown.json()["detail"]


def test_post_areas_two_tier_and_the_deprecated_district(panel: Panel) -> None:
    """A commune directly under its province, a group with member communes (by id or code); a
    pre-2025 client's district becomes a group and its commune a member (with a note)."""
    panel.seed(stations_per_commune=0)
    http = panel.client().http
    admin = _token(panel, "admin", panel.settings.admin_password)

    def post(body: dict[str, Any], who: dict[str, str] = admin) -> Any:
        return http.post("/api/v1/areas", json=body, headers=who)

    province = post({"level": "province", "name": "Tỉnh Quảng Ninh", "code": "22"}).json()
    pid = province["id"]
    coastal = post({"level": "commune", "name": "Đặc khu Vân Đồn", "code": "7192", "parent_id": pid})
    assert coastal.status_code == 201, coastal.text
    assert coastal.json()["kind"] == "dac_khu" and coastal.json()["parent_id"] == province["id"]
    ward = post({"level": "commune", "name": "Phường Hạ Long", "code": "6700", "parent_id": pid}).json()
    group = post({"level": "group", "name": "Vành đai ven biển", "parent_id": province["id"],
                  "commune_ids": ["07192", ward["id"]]})
    assert group.status_code == 201, group.text
    assert group.json()["commune_ids"] == sorted([coastal.json()["id"], ward["id"]])
    listed = {a["id"]: a for a in http.get("/api/v1/areas?level=commune", headers=admin).json()}
    assert listed[ward["id"]]["group_ids"] == [group.json()["id"]]
    # The same code at another level is fine, at the same level a 409.
    assert post({"level": "commune", "name": "Xã Hai Hai", "code": "22", "parent_id": pid}).status_code == 201
    assert post({"level": "commune", "name": "Xã Khác", "code": "6700", "parent_id": pid}).status_code == 409
    # A commune under a village, or a village under a province: refused.
    assert post({"level": "village", "name": "Thôn 1", "parent_id": province["id"]}).status_code == 422
    # The pre-2025 shape still works for one release, with a deprecation note.
    district = post({"level": "district", "name": "Huyện Cô Tô", "parent_id": province["id"]})
    assert district.status_code == 201 and district.json()["level"] == "group"
    assert district.headers["deprecation"] == "true"
    under = post({"level": "commune", "name": "Xã Cô Tô", "parent_id": district.json()["id"]})
    assert under.status_code == 201, under.text
    assert under.json()["parent_id"] == pid and under.json()["group_ids"] == [district.json()["id"]]
    assert post({"level": "group", "name": "x"}, _token(panel, "canbo.huyen")).status_code == 403
