"""PATCH /api/v1/broadcasts/{id} (issue 20 item 4): a new start for a one-off broadcast that has
not started yet, through `usecases.broadcasts.reschedule` — the use case the panel's calendar
calls too (tests/integration/test_panel_calendar.py). On SQLite and PostgreSQL, the whole app
in process: the answer's shape, the stations queued again in the same transaction, another
area's broadcast (404) or one reaching beyond the caller's area (403), what may not move
(409), the commune's policy at the new time (422 with `rule`, or an override), and bad input
(422 `request.invalid`), each leaving the stored broadcast as it was."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controller.db.models_dispatch import DispatchQueue
from controller.db.statuses import BroadcastStatus
from tests.support import calendar_data
from tests.support.agenda_data import TZ
from tests.support.browser import Panel, running_panel
from tests.support.calendar_data import local


@pytest.fixture
def panel(tmp_path: Path, database_url: str) -> Iterator[Panel]:
    with running_panel(tmp_path, database_url) as p:
        yield p


def _queued(panel: Panel) -> list[int]:
    with panel.rt.db.session() as s:
        return sorted(s.scalars(select(DispatchQueue.device_id)))


def _admin(panel: Panel) -> dict[str, str]:
    return panel.bearer("admin", panel.settings.admin_password)


def test_patch_moves_a_bulletin_and_tells_its_stations_again(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=2)
    sha = calendar_data.media(panel.rt)
    tomorrow = datetime.now(TZ).date() + timedelta(days=1)
    stations = sorted(ids["devices"][ids["hop_hoa"]])
    bc = calendar_data.bulletin(panel.rt, ids, sha, "Họp dân", local(tomorrow, 10), [ids["hop_hoa"]])
    http = panel.client().http
    before = _queued(panel)
    new = local(tomorrow, 14, 45)
    r = http.patch(f"/api/v1/broadcasts/{bc}", json={"start_at": new.astimezone(TZ).isoformat()},
                   headers=_admin(panel))  # fmt: skip
    assert r.status_code == 200, r.text
    body = r.json()
    assert datetime.fromisoformat(body["start_at"]) == new and body["status"] == "scheduled"
    assert body["approved"] is True and body["stations"] == 2 and body["policy"] == {"status": "ok"}
    assert datetime.fromisoformat(body["previous_start_at"]) == local(tomorrow, 10)
    after = _queued(panel)
    for d in before:
        after.remove(d)
    assert after == stations  # queued with the write: their desired state carries the new time
    got = http.get(f"/api/v1/broadcasts/{bc}", headers=_admin(panel)).json()
    assert datetime.fromisoformat(got["start_at"]) == new
    assert {s["state"] for s in got["stations"]} == {"pending"}  # to be acknowledged again

    # A commune operator may move their own commune's bulletin; without the approval right it
    # waits for an approver again (as when they send one).
    op = panel.bearer("canbo.hophoa")
    r = http.patch(f"/api/v1/broadcasts/{bc}", json={"start_at": local(tomorrow, 16).isoformat()}, headers=op)
    assert r.status_code == 200 and r.json()["approved"] is False and r.json()["status"] == "draft", r.text
    assert calendar_data.start_of(panel.rt, bc) == (local(tomorrow, 16), BroadcastStatus.DRAFT)


def test_patch_refusals_change_nothing(panel: Panel) -> None:
    ids = panel.seed(stations_per_commune=1)
    sha = calendar_data.media(panel.rt)
    now = datetime.now(TZ)
    tomorrow = now.date() + timedelta(days=1)
    hop_hoa = ids["hop_hoa"]
    b = calendar_data.bulletin
    mine = b(panel.rt, ids, sha, "Lịch tiêm phòng", local(tomorrow, 10), [hop_hoa])
    xuan_hoa = b(panel.rt, ids, sha, "Riêng Xuân Hòa", local(tomorrow, 10), [ids["xuan_hoa"]])
    everyone = b(panel.rt, ids, sha, "Toàn tỉnh", local(tomorrow, 15), None)
    started = b(panel.rt, ids, sha, "Đang phát", now - timedelta(minutes=1), [hop_hoa])
    cancelled = b(panel.rt, ids, sha, "Đã thôi", local(tomorrow, 12), [hop_hoa],
                  status=BroadcastStatus.CANCELLED)
    storm = b(panel.rt, ids, sha, "Bão số 3", local(tomorrow, 13), [hop_hoa], priority="emergency",
              emergency=True)  # fmt: skip
    calendar_data.policy(panel.rt, hop_hoa, hours=("06:00", "20:00"))
    kept = (mine, xuan_hoa, everyone, started, cancelled, storm)
    rows = {i: calendar_data.start_of(panel.rt, i) for i in kept}
    http = panel.client().http
    op = panel.bearer("canbo.hophoa")
    fine = {"start_at": local(tomorrow, 11).isoformat()}

    def patch(bid: int, body: dict[str, Any], who: dict[str, str] = op) -> Any:
        return http.patch(f"/api/v1/broadcasts/{bid}", json=body, headers=who)

    r = patch(xuan_hoa, fine)  # another commune's: not found, as GET
    assert r.status_code == 404 and r.json()["code"] == "broadcast.not_found"
    r = patch(everyone, fine)  # seen (it reaches Hợp Hòa) but not theirs to move
    assert r.status_code == 403 and r.json()["code"] == "scope.all_forbidden"
    assert "địa bàn" in r.json()["detail"]
    r = patch(mine, fine, panel.bearer("nguoixem"))
    assert r.status_code == 403 and r.json()["code"] == "auth.forbidden"
    for bid, code, words in ((started, "broadcast.move_started", "đã đến giờ phát"),
                             (cancelled, "broadcast.move_cancelled", "đã bị huỷ"),
                             (storm, "broadcast.move_emergency", "phát khẩn cấp")):  # fmt: skip
        r = patch(bid, fine)
        assert r.status_code == 409 and r.json()["code"] == code and words in r.json()["detail"], r.text
    r = patch(started, fine, {**op, "Accept-Language": "en"})
    assert "can no longer be moved" in r.json()["detail"]

    r = patch(mine, {"start_at": local(tomorrow, 21).isoformat()})  # outside 06:00–20:00
    assert r.status_code == 422 and r.json()["code"] == "policy.outside_hours", r.text
    assert r.json()["rule"]["rule"] == "allowed_hours" and "06:00–20:00" in r.json()["detail"]
    late = {"start_at": local(tomorrow, 21).isoformat(), "override_reason": "Họp khẩn"}
    r = patch(mine, late)
    assert r.status_code == 403 and r.json()["code"] == "policy.override_forbidden"  # no policy.edit right
    r = patch(mine, {"start_at": (now - timedelta(hours=1)).isoformat()})
    assert r.status_code == 422 and r.json()["code"] == "broadcast.move_past"
    assert "đã qua" in r.json()["detail"]
    for body in ({"start_at": "31/02/2027 10:00"}, {"start_at": "2027-02-31T10:00:00+07:00"},
                 {"start_at": "2027-01-05T10:00:00"}, {}, {"start_at": fine["start_at"], "title": "Khác"},
                 {"start_at": None}, {"start_at": "9999-12-31T23:59:00-12:00"}):  # fmt: skip
        r = patch(mine, body)
        assert r.status_code == 422 and r.json()["code"] == "request.invalid", (body, r.text)
        assert r.json()["detail"] and r.json()["errors"]
    assert patch(2**31 - 1, fine).status_code == 404
    assert patch(2**40, fine).status_code == 422
    assert http.patch(f"/api/v1/broadcasts/{mine}", json=fine).status_code == 401
    assert {i: calendar_data.start_of(panel.rt, i) for i in kept} == rows  # nothing changed

    # The admin may give a reason to play outside the policy: an override, said so in the answer.
    r = patch(mine, late, _admin(panel))
    assert r.status_code == 200 and r.json()["policy"]["status"] == "override", r.text
