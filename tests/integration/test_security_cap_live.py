"""Issue 16 (items 1, 2, 6): the emergency path cannot be cancelled, hijacked or starved from
outside its area, on SQLite and PostgreSQL.

Each test performs one attack through the real API (or panel/WebSocket) of an in-process
controller and checks what a user would notice: the status and message code, and that the
other area's broadcast, live session or relay is still as it was.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from starlette.websockets import WebSocketDisconnect

from controller.db.models import Broadcast, Media, User
from controller.db.models_live import LiveStream
from controller.db.models_schedules import CommunePolicy
from controller.services import live
from controller.services.cap import service as cap_service
from controller.services.policy import TZ
from tests.support.browser import PW, Panel, running_panel

SENDER = "canhbao@kttv.gov.vn"
CAP = {"Content-Type": "application/cap+xml", "Accept-Language": "vi"}
SOURCE = "http://radio.example/vov1.mp3"


@pytest.fixture
def panel(tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Panel]:
    """A controller with the demo areas; speech synthesis is replaced (no espeak-ng needed:
    what is under test is who may stop what, not how an alert sounds)."""

    async def fake_speak(rt: Any, session: Session, text: str, voice: str, user: User | None) -> Media:
        sha = hashlib.sha256(text.encode()).hexdigest()
        media = session.get(Media, sha)
        if media is None:
            media = Media(sha256=sha, original_name="cap.opus", content_type="audio/ogg", size=1000,
                          duration_s=5.0, codec="opus", source_sha256=sha)  # fmt: skip
            session.add(media)
            session.flush()
        return media

    monkeypatch.setattr(cap_service, "_speak", fake_speak)
    with running_panel(tmp_path, database_url) as p:
        p.settings.relay_sources = [SOURCE]
        yield p


def _token(panel: Panel, username: str, password: str = PW) -> dict[str, str]:
    return panel.bearer(username, password)


def _admin(panel: Panel) -> dict[str, str]:
    return _token(panel, "admin", panel.settings.admin_password)


# -- item 1: CAP Update / Cancel ------------------------------------------------------------------------
def _alert(identifier: str, areas: list[str], *, msg_type: str = "Alert", refs: str = "") -> bytes:
    """A minor (normal-priority) alert: it becomes a draft, so no broker or station is needed."""
    sent = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    expires = (datetime.now(UTC) + timedelta(hours=3)).strftime("%Y-%m-%dT%H:%M:%S+00:00")
    references = f"<references>{refs}</references>" if refs else ""
    area_xml = "".join(f"<area><areaDesc>{a}</areaDesc></area>" for a in areas)
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>{identifier}</identifier><sender>{SENDER}</sender><sent>{sent}</sent>
  <status>Actual</status><msgType>{msg_type}</msgType><scope>Public</scope>{references}
  <info>
    <language>vi-VN</language><category>Met</category><event>Lũ</event>
    <urgency>Expected</urgency><severity>Minor</severity><certainty>Observed</certainty>
    <expires>{expires}</expires><headline>Mực nước sông lên</headline>
    <instruction>Theo dõi thông báo của xã.</instruction>{area_xml}
  </info>
</alert>""".encode()


def _ref(identifier: str, body: bytes) -> str:
    return f"{SENDER},{identifier},{body.split(b'<sent>')[1].split(b'</sent>')[0].decode()}"


def _aired_by_admin(panel: Panel, identifier: str, areas: list[str]) -> tuple[bytes, int]:
    """The admin's alert, approved: a scheduled broadcast in `areas`."""
    http, admin = panel.client().http, _admin(panel)
    body = _alert(identifier, areas)
    r = http.post("/api/v1/cap", content=body, headers=CAP | admin)
    assert r.status_code == 201 and r.json()["outcome"] == "draft", r.text
    bc_id = r.json()["broadcast_id"]
    assert http.post(f"/api/v1/broadcasts/{bc_id}/approve", headers=admin).status_code == 200
    return body, bc_id


def _status(panel: Panel, bc_id: int) -> str:
    with panel.rt.db.session() as s:
        bc = s.get(Broadcast, bc_id)
        assert bc is not None
        return bc.status


def _broadcast_count(panel: Panel) -> int:
    with panel.rt.db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Broadcast)) or 0)


def test_cap_cancel_of_another_areas_alert_is_refused(panel: Panel) -> None:
    """The attack: a Xã Hợp Hòa operator posts a Cancel referencing the admin's alert for Xã Xuân
    Hòa. Refused (403), the alert stays scheduled; cancelling an alert in their own commune works."""
    panel.seed(stations_per_commune=1)
    theirs, theirs_bc = _aired_by_admin(panel, "VN-XH-1", ["Xã Xuân Hòa"])
    ours, ours_bc = _aired_by_admin(panel, "VN-HH-1", ["Xã Hợp Hòa"])
    http, commune_op = panel.client().http, _token(panel, "canbo.hophoa")

    cancel = _alert("VN-XH-2", ["Xã Xuân Hòa"], msg_type="Cancel", refs=_ref("VN-XH-1", theirs))
    r = http.post("/api/v1/cap", content=cancel, headers=CAP | commune_op)
    assert r.status_code == 403 and r.json()["code"] == "cap.thread_outside_area", r.text
    assert "Xã Xuân Hòa" in r.json()["detail"]
    assert _status(panel, theirs_bc) == "scheduled"  # still going to air

    mine = _alert("VN-HH-2", ["Xã Hợp Hòa"], msg_type="Cancel", refs=_ref("VN-HH-1", ours))
    r = http.post("/api/v1/cap", content=mine, headers=CAP | commune_op)
    assert r.status_code == 200 and r.json()["outcome"] == "cancelled", r.text
    assert _status(panel, ours_bc) == "cancelled"


def test_a_cap_alert_reaches_only_the_senders_own_communes(panel: Panel) -> None:
    """The attack: a Xã Hợp Hòa operator posts an alert naming their commune and Xã Xuân Hòa.
    The broadcast reaches Xã Hợp Hòa alone and the record says which commune was left out; an
    alert naming only Xã Xuân Hòa starts nothing."""
    ids = panel.seed(stations_per_commune=1)
    http, commune_op = panel.client().http, _token(panel, "canbo.hophoa")
    before = _broadcast_count(panel)

    r = http.post("/api/v1/cap", content=_alert("VN-HH-9", ["Xã Hợp Hòa", "Xã Xuân Hòa"]),
                  headers=CAP | commune_op)
    assert r.status_code == 201 and r.json()["outcome"] == "draft", r.text
    with panel.rt.db.session() as s:
        bc = s.get(Broadcast, r.json()["broadcast_id"])
        assert bc is not None and bc.targets == {"communes": [ids["hop_hoa"]]}
    assert f"left out: communes [{ids['xuan_hoa']}]" in " ".join(r.json()["detail"]["areas"])

    r = http.post("/api/v1/cap", content=_alert("VN-XH-9", ["Xã Xuân Hòa"]), headers=CAP | commune_op)
    assert r.json()["outcome"] == "not_for_us", r.text
    assert _broadcast_count(panel) == before + 1


def test_cap_update_of_a_thread_partly_outside_the_area_changes_nothing(panel: Panel) -> None:
    """The attack: an Update referencing an alert that reaches Hợp Hòa and Xuân Hòa, from the
    Hợp Hòa operator. The whole message is refused: nothing stopped, nothing new created."""
    panel.seed(stations_per_commune=1)
    first, bc_id = _aired_by_admin(panel, "VN-BOTH-1", ["Xã Hợp Hòa", "Xã Xuân Hòa"])
    before = _broadcast_count(panel)
    http, commune_op = panel.client().http, _token(panel, "canbo.hophoa")
    update = _alert("VN-BOTH-2", ["Xã Hợp Hòa"], msg_type="Update", refs=_ref("VN-BOTH-1", first))
    r = http.post("/api/v1/cap", content=update, headers=CAP | commune_op)
    assert r.status_code == 403 and r.json()["code"] == "cap.thread_outside_area", r.text
    assert _status(panel, bc_id) == "scheduled" and _broadcast_count(panel) == before
    records = http.get("/api/v1/cap", headers=_admin(panel)).json()
    assert "VN-BOTH-2" not in [rec["identifier"] for rec in records]  # a retry is handled afresh


# -- item 2: live sessions and relays of another area -----------------------------------------------
def _start_live(panel: Panel, who: dict[str, str], commune: int, priority: str = "emergency",
                **extra: Any) -> Any:  # fmt: skip
    body = {"title": "Thông báo khẩn", "targets": {"communes": [commune]}, "priority": priority, **extra}
    return panel.client().http.post("/api/v1/live", json=body, headers=who)


def _live_row(panel: Panel, live_id: int) -> LiveStream:
    with panel.rt.db.session() as s:
        ls = s.get(LiveStream, live_id)
        assert ls is not None
        s.expunge(ls)
        return ls


def test_live_session_of_another_area_cannot_be_read_or_ended(panel: Panel) -> None:
    """The attack: the Hợp Hòa operator (and the district of Tam Dương) read and end the admin's
    live session on Xã Xuân Hòa, over the API and the panel. Refused; the session stays live."""
    ids = panel.seed(stations_per_commune=1)
    started = _start_live(panel, _admin(panel), ids["xuan_hoa"])
    assert started.status_code == 201, started.text
    live_id = started.json()["id"]
    http = panel.client().http
    for user in ("canbo.hophoa", "canbo.huyen"):
        who = _token(panel, user)
        r = http.get(f"/api/v1/live/{live_id}", headers=who)
        assert r.status_code == 403 and r.json()["code"] == "live.forbidden", (user, r.text)
        r = http.post(f"/api/v1/live/{live_id}/end", headers=who)
        assert r.status_code == 403 and r.json()["code"] == "live.forbidden", (user, r.text)
    browser = panel.client()
    browser.login("canbo.hophoa", PW)
    r = browser.post_form(f"/live/{live_id}/end", csrf_from="/live")
    assert r.status_code == 403 and "địa bàn" in r.json()["error"], r.text
    assert _live_row(panel, live_id).status == "active"
    assert http.get(f"/api/v1/live/{live_id}", headers=_admin(panel)).json()["status"] == "active"


def test_live_websocket_of_another_area_is_refused_before_accept(panel: Panel) -> None:
    """The attack: the Hợp Hòa operator opens the live WebSocket of Xuân Hòa's session to speak on
    its stations. The handshake is refused (4403) before accept; no audio reaches the channel."""
    ids = panel.seed(stations_per_commune=1)
    started = _start_live(panel, _admin(panel), ids["xuan_hoa"])
    assert started.status_code == 201, started.text
    live_id = started.json()["id"]
    client = panel.client().http
    who = _token(panel, "canbo.hophoa")
    with pytest.raises(WebSocketDisconnect) as refused, \
            client.websocket_connect(f"/api/v1/live/{live_id}/ws", headers=who) as ws:  # fmt: skip
        ws.send_bytes(b"\x00\x10" * 320)
        ws.receive_text()
    assert refused.value.code == 4403
    channel = live.hub_of(panel.app.state).get(live_id)
    assert channel is None or (channel.received == 0 and not channel.ended)
    assert _live_row(panel, live_id).status == "active"


def test_creator_and_covering_users_keep_their_live_session(panel: Panel) -> None:
    """Not an attack: the creator, the district above, and the admin may still see and end it."""
    ids = panel.seed(stations_per_commune=1)
    commune_op = _token(panel, "canbo.hophoa")
    started = _start_live(panel, commune_op, ids["hop_hoa"])
    assert started.status_code == 201, started.text
    live_id = started.json()["id"]
    http = panel.client().http
    for who in (commune_op, _token(panel, "canbo.huyen"), _admin(panel)):
        assert http.get(f"/api/v1/live/{live_id}", headers=who).status_code == 200
    r = http.post(f"/api/v1/live/{live_id}/end", headers=_token(panel, "canbo.huyen"))
    assert r.status_code == 200 and r.json()["status"] == "ended"


def _relay(panel: Panel, who: dict[str, str], commune: int, **extra: Any) -> Any:
    end = (datetime.now(UTC) + timedelta(hours=1)).isoformat()
    body = {"source_url": SOURCE, "format": "mp3", "targets": {"communes": [commune]}, "end_at": end, **extra}
    return panel.client().http.post("/api/v1/relays", json=body, headers=who)


def test_relay_of_another_area_cannot_be_cancelled_or_listed(panel: Panel) -> None:
    """The attack: the Hợp Hòa operator cancels the admin's relay on Xuân Hòa. Refused; the relay
    stays active, and it is not in their relay list."""
    ids = panel.seed(stations_per_commune=1)
    admin = _admin(panel)
    made = _relay(panel, admin, ids["xuan_hoa"])
    assert made.status_code == 201 and made.json()["status"] == "active", made.text
    relay_id = made.json()["id"]
    http, commune_op = panel.client().http, _token(panel, "canbo.hophoa")
    r = http.post(f"/api/v1/relays/{relay_id}/cancel", headers=commune_op)
    assert r.status_code == 403 and r.json()["code"] == "relay.forbidden", r.text
    assert relay_id not in [x["id"] for x in http.get("/api/v1/relays", headers=commune_op).json()]
    assert [x["status"] for x in http.get("/api/v1/relays", headers=admin).json()] == ["active"]
    assert _status(panel, made.json()["broadcast_id"]) == live.STREAM_STATUS


# -- item 6: approval and policy for live voice and relays ------------------------------------------
def test_normal_live_from_a_user_who_cannot_approve_is_refused(panel: Panel) -> None:
    """The attack: a commune operator, whose normal bulletins become drafts, goes on air at once
    with a normal-priority live session. Refused (403 live.needs_approval), nothing created;
    an emergency live session still goes on air at once."""
    ids = panel.seed(stations_per_commune=1)
    commune_op = _token(panel, "canbo.hophoa")
    for priority in ("normal", "priority"):
        r = _start_live(panel, commune_op, ids["hop_hoa"], priority)
        assert r.status_code == 403 and r.json()["code"] == "live.needs_approval", (priority, r.text)
    with panel.rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(LiveStream)) == 0
    assert _start_live(panel, commune_op, ids["hop_hoa"], "emergency").status_code == 201


def test_relay_from_a_user_who_cannot_approve_is_a_draft_until_approved(panel: Panel) -> None:
    """The attack: a commune operator relays a radio stream on their stations without approval.
    It becomes a draft (not on air); an approver approves it with the bulletin approve endpoint."""
    ids = panel.seed(stations_per_commune=1)
    made = _relay(panel, _token(panel, "canbo.hophoa"), ids["hop_hoa"])
    assert made.status_code == 201 and made.json()["status"] == "draft", made.text
    bc_id = made.json()["broadcast_id"]
    assert _status(panel, bc_id) == "draft"
    http = panel.client().http
    r = http.post(f"/api/v1/broadcasts/{bc_id}/approve", headers=_token(panel, "canbo.huyen"))
    assert r.status_code == 403  # a district operator may not approve
    r = http.post(f"/api/v1/broadcasts/{bc_id}/approve", headers=_token(panel, "duyet"))
    assert r.status_code == 200, r.text
    assert _status(panel, bc_id) == live.STREAM_STATUS
    assert _live_row(panel, made.json()["id"]).status == "active"


def test_policy_applies_to_live_voice_and_relays_but_not_emergencies(panel: Panel) -> None:
    """The attack: live voice and a relay on a day the commune's policy forbids. Refused as a
    bulletin is (422 with the rule), unless an override reason is given by who may; an emergency
    live session stays exempt."""
    ids = panel.seed(stations_per_commune=1)
    today = datetime.now(UTC).astimezone(TZ).isoweekday()
    with panel.rt.db.session() as s:
        s.add(CommunePolicy(commune_id=ids["hop_hoa"], allowed_hours=[], days=[today % 7 + 1]))
        s.commit()
    admin = _admin(panel)
    r = _start_live(panel, admin, ids["hop_hoa"], "normal")
    assert r.status_code == 422 and r.json()["code"] == "policy.outside_days", r.text
    assert r.json()["rule"]["rule"] == "days"
    r = _relay(panel, admin, ids["hop_hoa"])
    assert r.status_code == 422 and r.json()["code"] == "policy.outside_days", r.text
    with panel.rt.db.session() as s:
        assert s.scalar(select(func.count()).select_from(LiveStream)) == 0
    r = _start_live(panel, admin, ids["hop_hoa"], "normal", override_reason="Họp dân đột xuất")
    assert r.status_code == 201, r.text
    assert _start_live(panel, admin, ids["hop_hoa"], "emergency").status_code == 201
